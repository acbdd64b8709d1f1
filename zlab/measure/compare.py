"""One prompt, one seed, every column of the app: the teacher with its recipe, the teacher cut to a few
steps, and the student at 1, 2 and 4 steps, all through stock ``ZImagePipeline`` and timed.

Example:
    >>> columns = side_by_side(teacher, student, "a large red circle at the top left", seed=0)
    >>> [(c.name, c.nfe, round(c.ms)) for c in columns]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import ZImagePipeline
from torch import Tensor

from zlab.measure.evaluate import count_nfe
from zlab.measure.settings import Setting, student_steps
from zlab.zimage import check_size, decode

MAX_SIDE = 1024


@dataclass
class Column:
    """One sampled image with what it cost."""

    name: str
    image: np.ndarray  # (H, W, 3) uint8
    latents: Tensor  # (1, C, h, w) normalised latents, for the discriminator view
    nfe: int
    ms: float


def check_request(prompt: str, seed: int, height: int, width: int, guidance_scale: float, cfg_truncation: float,
                  steps: int = 50, max_side: int = MAX_SIDE) -> None:
    """Raise ValueError naming the bad input and the accepted range."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("the prompt is empty: type a caption, e.g. 'a large red circle at the top left'")
    if len(prompt) > 1000:
        raise ValueError(f"the prompt has {len(prompt)} characters; at most 1000 are accepted")
    if not 0 <= int(seed) < 2**31:
        raise ValueError(f"seed must be in [0, 2^31 - 1], got {seed}")
    check_size(height, width, max_side=max_side)
    if not 0 <= guidance_scale <= 20:
        raise ValueError(f"guidance scale (diffusers g) must be in [0, 20], got {guidance_scale}")
    if not 0 <= cfg_truncation <= 1:
        raise ValueError(f"CFG truncation must be in [0, 1], got {cfg_truncation}")
    if int(steps) != steps or not 1 <= steps <= 200:
        raise ValueError(f"steps must be an integer in [1, 200], got {steps}")


def draw(pipe: ZImagePipeline, name: str, prompt: str, seed: int, setting: dict) -> Column:
    """One stock-pipeline sample (latents, then the VAE decode), timed end to end."""
    start = time.perf_counter()
    latents = pipe([prompt], generator=torch.Generator().manual_seed(int(seed)), output_type="latent", **setting).images
    image = decode(pipe, latents)[0]
    ms = 1000 * (time.perf_counter() - start)
    pixels = (image.numpy() * 255).round().astype(np.uint8)
    return Column(name, pixels, latents.float().cpu(), count_nfe(pipe, setting), ms)


def side_by_side(teacher: ZImagePipeline, student: ZImagePipeline, prompt: str, seed: int = 0, height: int = 64,
                 width: int = 64, guidance_scale: float = 2.0, cfg_truncation: float = 1.0, teacher_steps: int = 50,
                 naive_steps: int = 4, progress: Callable[[float, str], None] | None = None,
                 max_sequence_length: int = 512) -> list[Column]:
    """Teacher (``teacher_steps`` + CFG), teacher at ``naive_steps`` + the same CFG, student at 1, 2, 4 steps.

    ``max_sequence_length`` is the stock pipeline's prompt padding (the checkpoint's ``sampling.json`` value).
    """
    check_request(prompt, seed, height, width, guidance_scale, cfg_truncation, teacher_steps)
    size = {"height": int(height), "width": int(width), "max_sequence_length": int(max_sequence_length)}
    guided = {"guidance_scale": float(guidance_scale), "cfg_truncation": float(cfg_truncation), **size}
    plan = [(teacher, s.label, s.kwargs(guided)) for s in (Setting("teacher", int(teacher_steps), cfg=True),
                                                           Setting("teacher", int(naive_steps), cfg=True))]
    plan += [(student, s.label, s.kwargs({"guidance_scale": 0.0, **size})) for s in student_steps()]
    columns = []
    for k, (pipe, name, setting) in enumerate(plan):
        if progress is not None:
            progress(k / len(plan), f"sampling: {name}")
        columns.append(draw(pipe, name, prompt, seed, setting))
    return columns
