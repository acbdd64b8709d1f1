"""GAN losses of LADD, summed over discriminator heads (LADD, Sauer et al. 2024).

Each head returns a spatial logit map; a loss averages it over positions and batch, then the
heads' losses add up ("sum over all layers provides multi-scale feedback"). LADD trains the student
on the adversarial loss alone (the synthetic teacher data already carries the teacher's
distribution); zlab's trainer can add a regression term (``regression_weight``), and the heads an
approximate R1 penalty and mismatched-caption negatives, each off by default.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

LOSSES = ("hinge", "non-saturating")


def _check(kind: str) -> None:
    if kind not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")


def _penalty(logits: Tensor, sign: int, kind: str) -> Tensor:
    """Per position: hinge ``relu(1 + sign D)``, non-saturating ``softplus(sign D)``; ``sign`` -1 asks D to say real."""
    _check(kind)
    return F.relu(1 + sign * logits) if kind == "hinge" else F.softplus(sign * logits)


def real_side(real: Sequence[Tensor], kind: str = "hinge") -> Tensor:
    """The heads' loss on logits that should say real: hinge ``E[relu(1 - D)]``, non-saturating
    ``E[softplus(-D)]``, summed over heads."""
    return sum(_penalty(r, -1, kind).mean() for r in real)


def fake_side(fake: Sequence[Tensor], kind: str = "hinge", weight: Tensor | None = None) -> Tensor:
    """The heads' loss on logits that should say fake: hinge ``E[relu(1 + D)]``, non-saturating
    ``E[softplus(D)]``, summed over heads (also for real samples under a wrong caption). ``weight``
    (B,): a weighted mean over samples instead (0 leaves a sample out)."""
    if weight is None:
        return sum(_penalty(f, 1, kind).mean() for f in fake)
    per_sample = [_penalty(f, 1, kind).flatten(1).mean(1) for f in fake]
    return sum((loss * weight).sum() for loss in per_sample) / weight.sum().clamp(min=1)


def discriminator_loss(real: Sequence[Tensor], fake: Sequence[Tensor], kind: str = "hinge") -> Tensor:
    """Heads' loss on real (teacher-sample) and fake (student-sample) logits: :func:`real_side` +
    :func:`fake_side`."""
    if len(real) != len(fake):
        raise ValueError(f"{len(real)} real and {len(fake)} fake logit maps: one of each per head")
    return real_side(real, kind) + fake_side(fake, kind)


def approximate_r1(real: Sequence[Tensor], perturbed: Sequence[Tensor]) -> Tensor:
    """Approximate R1 (Lin et al. 2025, "Diffusion Adversarial Post-Training"): the squared change of each
    head's per-sample score when its real input is slightly perturbed, ``E (D(f) - D(f + noise))^2``, summed
    over heads. Like R1 it keeps the heads smooth around real data, without a second-order backward."""
    return sum((r.flatten(1).mean(1) - q.flatten(1).mean(1)).pow(2).mean() for r, q in zip(real, perturbed, strict=True))


def generator_loss(fake: Sequence[Tensor], kind: str = "hinge") -> Tensor:
    """The student's L_adv: hinge ``-E[D(fake)]``, non-saturating ``E[softplus(-D(fake))]``, summed over heads."""
    _check(kind)
    return sum(-f.mean() if kind == "hinge" else _penalty(f, -1, kind).mean() for f in fake)
