"""The distribution-matching view of one student sample at a chosen noise level (the app, the DMD lab).

What DMD's gradient is made of for one clean student sample ``x0_hat``: re-noised at ``tau`` with seeded noise, the
teacher's conditional and unconditional clean estimates, the guided one, the fake score's, and the two directions
the student is pushed along (:func:`zlab.distill.dmd.dmd_directions` takes the same differences in training):
distribution matching ``x0_c - x0_fake`` and CFG augmentation ``(s - 1)(x0_c - x0_u)``. Low ``tau`` leaves texture to
correct, high ``tau`` layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from zlab.distill.dmd import x0_of
from zlab.flow import add_noise


@dataclass
class DMDView:
    """One ``tau``: the noisy input, the clean estimates and the two directions, all (B, C, H, W) latents."""

    tau: float
    noisy: Tensor
    teacher_cond: Tensor
    teacher_uncond: Tensor
    teacher_guided: Tensor
    fake: Tensor
    dm: Tensor  # x0_c - x0_fake
    ca: Tensor  # (s - 1)(x0_c - x0_u)

    def strengths(self) -> dict[str, float]:
        """Mean per-sample RMS of each direction: how hard each term pushes at this ``tau``."""
        rms = lambda d: float(d.float().pow(2).flatten(1).mean(1).sqrt().mean())
        return {"distribution matching": rms(self.dm), "CFG augmentation": rms(self.ca)}


@torch.no_grad()
def dmd_view(teacher, fake, x0_hat: Tensor, embeds: Sequence[Tensor], null: Sequence[Tensor], tau: float,
             guidance_scale: float, seed: int = 0) -> DMDView:
    """Re-noise ``x0_hat`` at ``tau`` (seeded noise) and take every estimate DMD compares there; ``guidance_scale``
    is diffusers' g (lab s = g + 1), ``null`` the empty prompt's embeddings (one per sample)."""
    if not 0.0 < tau < 1.0:
        raise ValueError(f"tau must be in (0, 1) (0 = clean, 1 = noise), got {tau}")
    eps = torch.randn(x0_hat.shape, generator=torch.Generator().manual_seed(seed)).to(x0_hat.device, x0_hat.dtype)
    t = torch.full((len(x0_hat),), float(tau), device=x0_hat.device)
    noisy = add_noise(x0_hat, eps, t)
    s = guidance_scale + 1.0
    cond, uncond, fake_x0 = x0_of(teacher, noisy, t, embeds), x0_of(teacher, noisy, t, null), x0_of(fake, noisy, t, embeds)
    return DMDView(float(tau), noisy, cond, uncond, uncond + s * (cond - uncond), fake_x0, cond - fake_x0,
                   (s - 1.0) * (cond - uncond))
