"""The discriminator's view of a real/fake pair at a chosen noise level (labs 04-05, the app).

Everything LADD's discriminator sees for one pair of clean latents: both re-noised at ``t_hat``
with the *same* noise (LADD, Sauer et al. 2024), the teacher's tapped maps of both, and, with a
:class:`~zlab.distill.heads.Discriminator`, each head's spatial logits. Sweeping ``t_hat`` shows how
the judgement moves from structure (high ``t_hat``) to texture (low ``t_hat``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from zlab.distill.heads import Discriminator, pool_text
from zlab.features import FeatureTap
from zlab.flow import add_noise


@dataclass
class PairView:
    """One ``t_hat``: noisy latents, tapped maps and (optionally) head logits of real and fake."""

    t_hat: float
    real_noisy: Tensor
    fake_noisy: Tensor
    real_maps: list[Tensor]
    fake_maps: list[Tensor]
    real_logits: list[Tensor] | None = None
    fake_logits: list[Tensor] | None = None


def shared_noise(like: Tensor, seed: int) -> Tensor:
    """The one ``eps'`` both latents are re-noised with (seeded, so a sweep over t_hat is smooth)."""
    return torch.randn(like.shape, generator=torch.Generator().manual_seed(seed)).to(like.device)


@torch.no_grad()
def view_pair(tap: FeatureTap, real: Tensor, fake: Tensor, embeds: Sequence[Tensor], t_hat: float,
              seed: int = 0, disc: Discriminator | None = None) -> PairView:
    """Re-noise ``real`` and ``fake`` (B, C, H, W) at ``t_hat`` with shared noise; tap both; score both."""
    eps = shared_noise(real, seed)
    t = torch.full((len(real),), float(t_hat), device=real.device)
    real_noisy, fake_noisy = add_noise(real, eps, t), add_noise(fake, eps, t)
    real_maps, fake_maps = tap(real_noisy, t, embeds), tap(fake_noisy, t, embeds)
    view = PairView(float(t_hat), real_noisy, fake_noisy, real_maps, fake_maps)
    if disc is not None:
        text = pool_text(embeds).to(real.device)
        view.real_logits, view.fake_logits = disc(real_maps, t, text), disc(fake_maps, t, text)
    return view


def feature_gap(view: PairView) -> list[float]:
    """Per tapped block: ``||phi(fake) - phi(real)|| / ||phi(real)||``, how different the teacher finds them."""
    return [((f - r).norm() / r.norm()).item() for r, f in zip(view.real_maps, view.fake_maps, strict=True)]


def sample_gaps(view: PairView) -> Tensor:
    """:func:`feature_gap` of each pair in the batch apart: (B, blocks), so that a mean over pairs has a standard error."""
    per_block = [(f - r).flatten(1).norm(dim=1) / r.flatten(1).norm(dim=1)
                 for r, f in zip(view.real_maps, view.fake_maps, strict=True)]
    return torch.stack(per_block, -1).cpu()


def sweep_t_hat(tap: FeatureTap, real: Tensor, fake: Tensor, embeds: Sequence[Tensor], t_hats: Sequence[float],
                seed: int = 0, disc: Discriminator | None = None) -> dict[str, Tensor]:
    """Across ``t_hat``: the feature gap per block (T, blocks), the same per pair (``sample_gap``: T, B, blocks) and,
    with ``disc``, the mean head scores of real and fake (T, heads)."""
    gaps, per_sample, real_scores, fake_scores = [], [], [], []
    for t_hat in t_hats:
        view = view_pair(tap, real, fake, embeds, t_hat, seed, disc)
        gaps.append(feature_gap(view))
        per_sample.append(sample_gaps(view))
        if disc is not None:
            real_scores.append(Discriminator.scores(view.real_logits).mean(0))
            fake_scores.append(Discriminator.scores(view.fake_logits).mean(0))
    out = {"t_hat": torch.tensor(list(t_hats)), "gap": torch.tensor(gaps), "sample_gap": torch.stack(per_sample)}
    if disc is not None:
        out.update(real=torch.stack(real_scores), fake=torch.stack(fake_scores))
    return out
