"""The distribution-matching view of one student sample at a chosen noise level (the app, the DMD lab).

What DMD's gradient is made of for one clean student sample ``x0_hat``: re-noised at ``tau`` with seeded noise, the
teacher's conditional and unconditional clean estimates, the guided one, the fake score's, and the two directions
the student is pushed along (:func:`zlab.distill.dmd.dmd_directions` takes the same differences in training):
distribution matching ``x0_c - x0_fake`` and CFG augmentation ``(s - 1)(x0_c - x0_u)``. Low ``tau`` leaves texture to
correct, high ``tau`` layout. A shipped DMD student keeps its fake score beside the pipeline
(:func:`load_fake_score`) and the guidance it was distilled with in its ``eval.json`` (:func:`trained_guidance_scale`).

Example:
    >>> fake = load_fake_score("checkpoints/shapes-dmd", like=teacher.transformer)
    >>> view = dmd_view(teacher.transformer, fake, x0_hat, embeds, encode_prompts(teacher, [""]), tau=0.5,
    ...                 guidance_scale=trained_guidance_scale("checkpoints/shapes-dmd", 0.5))
    >>> view.strengths()
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import ZImageTransformer2DModel
from torch import Tensor

from zlab.distill.dmd import rms, teacher_estimates, x0_of
from zlab.distill.student import FAKE_SCORE
from zlab.flow import add_noise
from zlab.train.adapters import is_adapter_folder, load_adapter_fused


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
    cond, uncond, guided = teacher_estimates(teacher, noisy, t, embeds, null, s)
    if s == 1.0:  # the view shows the unconditional estimate even when guidance leaves it out
        uncond = x0_of(teacher, noisy, t, null)
    fake_x0 = x0_of(fake, noisy, t, embeds)
    return DMDView(float(tau), noisy, cond, uncond, guided, fake_x0, cond - fake_x0, (s - 1.0) * (cond - uncond))


def load_fake_score(student: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                    like: ZImageTransformer2DModel | None = None) -> ZImageTransformer2DModel:
    """The fake score shipped beside a DMD student (``<student>/fake_score``). FileNotFoundError when the folder holds
    none; ValueError when ``like`` (the teacher's transformer) has another architecture, which the fake score must
    share: both are called on the same noisy latents and prompt embeddings."""
    folder = Path(student) / FAKE_SCORE
    if is_adapter_folder(folder):  # a LoRA run's fake score: an adapter on the teacher's own weights
        if like is None:
            raise ValueError(f"the fake score in {folder} is a LoRA adapter: pass the teacher's transformer as `like`")
        return load_adapter_fused(folder, like).to(device=device, dtype=dtype).eval()
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{student} holds no fake score ({FAKE_SCORE}/config.json is missing): "
                                "not a DMD student folder")
    fake = ZImageTransformer2DModel.from_pretrained(str(folder), torch_dtype=dtype)
    if like is not None:
        # as config.json stores them (a built model's tuples are a loaded one's lists)
        arch = lambda model: json.loads(json.dumps({k: v for k, v in model.config.items() if not k.startswith("_")}))
        ours, theirs = arch(fake), arch(like)
        differ = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
        if differ:
            raise ValueError(f"the fake score in {folder} is not of the teacher's architecture (differs in "
                             f"{', '.join(differ)}): load the DMD student distilled from this teacher")
    return fake.to(device).eval()


def trained_guidance_scale(student: str | Path, fallback: float) -> float:
    """The guidance g (diffusers' convention) a DMD student was distilled with: its ``eval.json`` config's
    ``dmd.guidance_scale``, 0 when its CFG-augmentation term was off (``dmd.ca_weight`` 0: DM alone matches the
    unguided teacher); ``fallback`` (e.g. the teacher's ``sampling.json`` g) when that is not recorded."""
    try:
        config = json.loads((Path(student) / "eval.json").read_text()).get("config", {})
    except (OSError, ValueError):
        return float(fallback)
    dmd = config.get("dmd", {})
    if dmd.get("ca_weight", 1.0) == 0:
        return 0.0
    return float(dmd.get("guidance_scale", fallback))
