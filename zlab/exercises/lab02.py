"""Lab 02's exercises: the length of the single stream for a picture and a caption; patchifying a latent by hand."""

from __future__ import annotations

import functools
import math

import torch

from zlab.anatomy import token_layout
from zlab.exercises.core import Wrong, call, close, exercise
from zlab.tiny import TINY_SIZES, build_transformer
from zlab.zimage import REAL_TRANSFORMER_CONFIG

VAE_SCALE = 2 ** (len(TINY_SIZES["tiny"].vae_channels) - 1)  # diffusers' vae_scale_factor: 8, as in the Flux VAE
PATCH = REAL_TRANSFORMER_CONFIG["all_patch_size"][0]  # 2
# (height, width, caption tokens): the lab's picture, portrait, 1024² with short and long captions, odd grids
STREAMS = ((64, 96, 13), (96, 64, 1), (1024, 1024, 13), (1024, 1024, 100), (768, 1344, 32), (48, 80, 33),
           (512, 512, 64))
LATENTS = ((16, 8, 12), (4, 6, 4), (3, 2, 10))  # (C, H, W): the lab's latent, portrait, one row of patches


def _padded(n: int, multiple: int = 32) -> int:
    return multiple * math.ceil(n / multiple)


@exercise("02.stream_length",
          lambda: lambda height, width, cap: _padded((height // 8) * (width // 8)) + _padded(cap),  # no 2x2 patches
          lambda: lambda height, width, cap: _padded((height // 16) * (width // 16) + cap),  # padded once, in all
          lambda: lambda height, width, cap: _padded((height // 16) * (width // 16)) + cap)  # caption not padded
def check_stream_length(stream_length) -> None:
    """``stream_length(height, width, caption_tokens)``: positions in one sample's stream, padding included."""
    for height, width, cap in STREAMS:
        value = call(stream_length, height, width, cap)
        target = token_layout(height // VAE_SCALE, width // VAE_SCALE, cap).length
        if float(value) != target:
            raise Wrong(f"a {height}x{width} picture with a {cap}-token caption: {value} positions is off; count the "
                        f"image tokens and the caption tokens apart (explore_layout({height}, {width}, {cap}) draws "
                        f"this stream)")


@functools.cache
def _meta_transformer():
    """A tiny Z-Image transformer without weights: its ``patchify_and_embed`` is the model's own patchify."""
    with torch.device("meta"):
        return build_transformer(TINY_SIZES["tiny"])


def _model_patches(z: torch.Tensor) -> torch.Tensor:
    """The image tokens diffusers makes of a latent ``z`` (C, H, W), padding left out: (H/2 * W/2, 4C)."""
    x, *_ = _meta_transformer().patchify_and_embed([z[:, None]], [torch.zeros(1, 1)], PATCH, 1)
    return x[0][: (z.shape[1] // PATCH) * (z.shape[2] // PATCH)]


def _patchify_in_order(order: tuple[int, ...]):
    """A patchify that lists (C, grid row, patch row, grid column, patch column) in ``order``: plausible wrongs."""
    def patchify(z):
        c, h, w = z.shape
        return z.reshape(c, h // 2, 2, w // 2, 2).permute(order).reshape(-1, 4 * c)
    return patchify


@exercise("02.patchify",
          lambda: _patchify_in_order((3, 1, 2, 4, 0)),  # tokens column-major over the grid
          lambda: _patchify_in_order((1, 3, 0, 2, 4)),  # channels slowest inside a token
          lambda: _patchify_in_order((1, 3, 4, 2, 0)),  # the patch's columns before its rows
          lambda: lambda z: z.flatten(1).T)              # no patches: one token per latent pixel
def check_patchify(patchify) -> None:
    """``patchify(z)``: a latent (C, H, W) to its image tokens (H/2 * W/2, 4C), in the model's order."""
    generator = torch.Generator().manual_seed(0)
    for shape in LATENTS:
        z = torch.randn(shape, generator=generator)
        close(f"patchify(z) for z of shape {shape}", call(patchify, z.clone()), _model_patches(z), rtol=0, atol=0)
