"""Lab 04's exercises: a block's image tokens as a 2D map; a block's pooled caption state; the noise level at which a
difference shared by k latent elements drowns in the re-noising noise."""

from __future__ import annotations

import math

import torch

from zlab import flow
from zlab.anatomy import token_layout
from zlab.exercises.core import Wrong, call, close, exercise
from zlab.features import caption_state

# (latent height, latent width): the three Shapes buckets (64x64, 64x96, 96x64 px) and one row-heavy odd grid
LATENTS = ((8, 8), (8, 12), (12, 8), (4, 10))
CAPTIONS = ((13,), (5, 13, 40), (1, 33), (32, 2))  # per bucket, the batch's caption lengths: short, long, padded
DIM = 6


def _stream(latent_h: int, latent_w: int, lengths: tuple[int, ...], seed: int) -> torch.Tensor:
    """A block's output (B, S, DIM) for a batch of one image size: each sample's stream, batch-padded to the longest."""
    longest = max(token_layout(latent_h, latent_w, n).length for n in lengths)
    return torch.randn(len(lengths), longest, DIM, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _grid(latent_h: int, latent_w: int) -> tuple[int, int]:
    return latent_h // 2, latent_w // 2


def _n(latent_h: int, latent_w: int) -> int:
    return (latent_h // 2) * (latent_w // 2)


def _tokens(stream: torch.Tensor, latent_h: int, latent_w: int) -> torch.Tensor:
    return stream[:, : _n(latent_h, latent_w)]


@exercise("04.image_map",
          lambda: lambda s, lh, lw: _tokens(s, lh, lw).unflatten(1, _grid(lh, lw)[::-1]).permute(0, 3, 2, 1),  # columns
          lambda: lambda s, lh, lw: _tokens(s, lh, lw).reshape(len(s), -1, *_grid(lh, lw)),  # tokens read as channels
          lambda: lambda s, lh, lw: s[:, -_n(lh, lw):].transpose(1, 2).unflatten(-1, _grid(lh, lw)))  # image tokens last
def check_image_map(image_map) -> None:
    """``image_map(hidden, latent_h, latent_w)``: a block's output (B, S, D) to its image tokens' map (B, D, h, w)."""
    for k, ((lh, lw), lengths) in enumerate(zip(LATENTS, CAPTIONS, strict=True)):
        hidden = _stream(lh, lw, lengths, seed=k)
        target = token_layout(lh, lw, cap_len=lengths[0]).image_grid(hidden)
        close(f"image_map(hidden, {lh}, {lw})", call(image_map, hidden.clone(), lh, lw), target, rtol=0, atol=0)


def _padded_n(latent_h: int, latent_w: int) -> int:
    return 32 * math.ceil(_n(latent_h, latent_w) / 32)


def _pooled(start, width):
    """A wrong pooled caption state: each sample's tokens from ``start(lh, lw)`` over ``width(n)`` positions."""
    return lambda s, lh, lw, lengths: torch.stack([s[i, start(lh, lw): start(lh, lw) + width(n)].mean(0)
                                                   for i, n in enumerate(lengths)])


@exercise("04.caption_state",
          lambda: _pooled(_n, lambda n: n),  # the image padding forgotten
          lambda: _pooled(_padded_n, lambda n: 32 * math.ceil(n / 32)),  # the caption padding averaged in
          lambda: lambda s, lh, lw, lengths: _pooled(_padded_n, lambda n: max(lengths))(s, lh, lw, lengths))  # longest
def check_caption_state(pooled) -> None:
    """``pooled(hidden, latent_h, latent_w, caption_lengths)``: (B, D), each sample's caption tokens averaged, as
    :func:`zlab.features.caption_state` gives them to the heads."""
    for k, ((lh, lw), lengths) in enumerate(zip(LATENTS, CAPTIONS, strict=True)):
        hidden = _stream(lh, lw, lengths, seed=10 + k)
        target = caption_state(hidden, (lh, lw), [torch.zeros(n, 1) for n in lengths])
        close(f"pooled(hidden, {lh}, {lw}, {list(lengths)})", call(pooled, hidden.clone(), lh, lw, list(lengths)),
              target, rtol=1e-5, atol=1e-6)  # caption_state works in float32


DELTAS = (0.01, 0.05, 0.3, 1.0, 2.0)
ELEMENTS = (1, 16, 133, 34_000)


@exercise("04.drown_level",
          lambda: lambda delta, k: delta / (1 + delta),  # no averaging: one element's level
          lambda: lambda delta, k: delta * k / (1 + delta * k),  # the noise's variance shrinks by k, its std by sqrt(k)
          lambda: lambda delta, k: min(1.0, delta * math.sqrt(k)))  # the signal's own (1 - t_hat) forgotten
def check_drown_level(drown_level) -> None:
    """``drown_level(delta, k)``: the t_hat at which a difference of ``delta`` per element, the same over ``k``
    elements and averaged over them, has shrunk to the std of the averaged shared noise."""
    for delta in DELTAS:
        for k in ELEMENTS:
            t = torch.tensor(float(call(drown_level, delta, k)), dtype=torch.float64)
            if not 0 < t < 1:
                raise Wrong(f"drown_level({delta}, {k}) = {float(t):.4g} is not a noise level in (0, 1)")
            one, zero = torch.ones((), dtype=torch.float64), torch.zeros((), dtype=torch.float64)
            signal = flow.add_noise(delta * one, zero, t) - flow.add_noise(zero, zero, t)  # (1 - t) delta
            noise = flow.add_noise(zero, one, t) / math.sqrt(k)  # t eps averaged over k elements: std t / sqrt(k)
            close(f"at t_hat = drown_level({delta}, {k}), the averaged difference over the averaged noise's std",
                  signal / noise, 1.0, rtol=1e-5, atol=0)
