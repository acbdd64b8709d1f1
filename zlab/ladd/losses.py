"""GAN losses of LADD, summed over discriminator heads (LADD, Sauer et al. 2024).

Each head returns a spatial logit map; a loss averages it over positions and batch, then the
heads' losses add up ("sum over all layers provides multi-scale feedback"). The student is trained
on the adversarial loss alone: the synthetic teacher data already carries the teacher's
distribution, so no distillation or reconstruction term is added.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

LOSSES = ("hinge", "non-saturating")


def _check(kind: str) -> None:
    if kind not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")


def discriminator_loss(real: Sequence[Tensor], fake: Sequence[Tensor], kind: str = "hinge") -> Tensor:
    """Heads' loss on real (teacher-sample) and fake (student-sample) logits.

    hinge: ``E[relu(1 - D(real))] + E[relu(1 + D(fake))]``; non-saturating:
    ``E[softplus(-D(real))] + E[softplus(D(fake))]``. Summed over heads.
    """
    _check(kind)
    if kind == "hinge":
        return sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake, strict=True))
    return sum(F.softplus(-r).mean() + F.softplus(f).mean() for r, f in zip(real, fake, strict=True))


def generator_loss(fake: Sequence[Tensor], kind: str = "hinge") -> Tensor:
    """The student's L_adv: hinge ``-E[D(fake)]``, non-saturating ``E[softplus(-D(fake))]``, summed over heads."""
    _check(kind)
    if kind == "hinge":
        return sum(-f.mean() for f in fake)
    return sum(F.softplus(-f).mean() for f in fake)


def head_accuracy(real: Sequence[Tensor], fake: Sequence[Tensor]) -> list[float]:
    """Per head: the fraction of samples it calls right (mean logit > 0 on real, < 0 on fake)."""
    out = []
    for r, f in zip(real, fake, strict=True):
        right = (r.flatten(1).mean(1) > 0).float().sum() + (f.flatten(1).mean(1) < 0).float().sum()
        out.append((right / (len(r) + len(f))).item())
    return out
