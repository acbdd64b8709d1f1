"""LADD's discriminator: independent 2D-convolutional heads on the frozen teacher's tapped blocks.

Each head reads one block's image-token map (B, C, h, w) from :class:`zlab.features.FeatureTap`
and returns a *spatial* logit map (B, 1, h, w), conditioned on the noise level ``t_hat`` and on a
pooled text embedding (LADD, Sauer et al. 2024). 2D convolutions keep rows and columns apart, so
one head serves every aspect ratio (1D convolutions over the flattened tokens would mix them up).

Conditioning, per head:

* the input map is normalised per sample (teacher hidden states grow with depth and with
  ``t_hat``; a head should judge their pattern, not their scale);
* ``t_hat`` (Fourier features) and the pooled text embedding scale and shift the hidden
  channels (FiLM), so a head knows what level of detail to expect;
* a projection term ``<h(x), W text>`` adds a prompt-alignment score (projection discriminator,
  Miyato & Koyama 2018): a red circle that should have been blue can be called fake;
* ``text_norm=True`` layer-normalises the pooled text first: the tiny Shapes encoder's pooled prompts differ too
  faintly for the heads to read them otherwise (docs/ladd-adv-weight.json).

With ``caption=True`` each block's pooled caption state sits beside its image map
(:func:`zlab.features.beside_caption`), so the first convolution sees image and caption together.

With ``whole=True`` each head also judges the image as a whole: the mean and the maximum of its hidden map over
positions go through a small MLP (FiLM-conditioned like the map) to one logit per sample, plus its own projection
term on the text, added to every position of the logit map. A patch-wise head can pass two half-shapes or a shape
beside a stray blob patch by patch; "one clean object with the named attributes" is a property of the whole image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def fourier_features(t: Tensor, n: int = 8) -> Tensor:
    """(B,) times in [0, 1] to (B, 2n) features ``[sin(2^k pi t), cos(2^k pi t)]``."""
    freqs = math.pi * 2.0 ** torch.arange(n, device=t.device, dtype=torch.float32)
    angles = t.float()[:, None] * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def pool_text(prompt_embeds: Sequence[Tensor]) -> Tensor:
    """Mean over each prompt's real tokens: (B, D) pooled text embeddings for the heads."""
    return torch.stack([e.float().mean(0) for e in prompt_embeds])


class DiscriminatorHead(nn.Module):
    """One head: features (B, C, h, w), t_hat (B,), text (B, D) -> logits (B, 1, h, w).

    Args:
        channels: Channels of the tapped map (the teacher's width).
        text_dim: Width of the pooled text embedding.
        hidden: Channels inside the head.
        t_features: Number of Fourier frequencies for ``t_hat``.
    """

    def __init__(self, channels: int, text_dim: int, hidden: int = 64, t_features: int = 8, text_norm: bool = False,
                 whole: bool = False):
        super().__init__()
        self.t_features = t_features
        self.text_norm = text_norm
        self.norm = nn.GroupNorm(1, channels, affine=False)
        self.conv_in = nn.Conv2d(channels, hidden, 3, padding=1)
        self.film = nn.Sequential(nn.Linear(2 * t_features + text_dim, hidden), nn.SiLU(),
                                  nn.Linear(hidden, 2 * hidden))
        nn.init.zeros_(self.film[-1].weight)  # starts as plain convolutions; conditioning is learnt
        nn.init.zeros_(self.film[-1].bias)
        self.conv_mid = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.to_logit = nn.Conv2d(hidden, 1, 1)
        self.text_proj = nn.Linear(text_dim, hidden, bias=False)
        self.act = nn.LeakyReLU(0.2)
        self.whole = (nn.ModuleDict({"mlp": nn.Sequential(nn.Linear(2 * hidden, hidden), nn.LeakyReLU(0.2)),
                                     "to_logit": nn.Linear(hidden, 1), "text_proj": nn.Linear(text_dim, hidden, bias=False)})
                      if whole else None)

    def forward(self, features: Tensor, t_hat: Tensor, text: Tensor) -> Tensor:
        if self.text_norm:
            text = F.layer_norm(text.float(), text.shape[-1:])
        h = self.act(self.conv_in(self.norm(features.float())))
        scale, shift = self.film(torch.cat([fourier_features(t_hat, self.t_features), text], -1)).chunk(2, -1)
        h = h * (1 + scale[..., None, None]) + shift[..., None, None]
        h = self.act(self.conv_mid(h))
        projection = (h * self.text_proj(text)[..., None, None]).sum(1, keepdim=True) / math.sqrt(h.shape[1])
        logits = self.to_logit(h) + projection
        if self.whole is not None:
            g = self.whole["mlp"](torch.cat([h.mean((2, 3)), h.amax((2, 3))], -1))
            score = self.whole["to_logit"](g) + (g * self.whole["text_proj"](text)).sum(-1, keepdim=True) / math.sqrt(g.shape[-1])
            logits = logits + score[..., None, None]
        return logits


class Discriminator(nn.Module):
    """The heads, one per tapped block; :meth:`forward` maps a list of feature maps to a list of logit maps."""

    def __init__(self, blocks: Sequence[int], channels: int | Sequence[int], text_dim: int, hidden: int = 64,
                 t_features: int = 8, text_norm: bool = False, caption: bool = False, whole: bool = False):
        super().__init__()
        self.blocks = tuple(blocks)
        self.caption, self.whole = caption, whole
        widths = [channels] * len(self.blocks) if isinstance(channels, int) else list(channels)
        if len(widths) != len(self.blocks):
            raise ValueError(f"{len(widths)} channel counts for {len(self.blocks)} tapped blocks")
        self.heads = nn.ModuleList(DiscriminatorHead(c, text_dim, hidden, t_features, text_norm, whole) for c in widths)

    def forward(self, maps: Sequence[Tensor], t_hat: Tensor, text: Tensor) -> list[Tensor]:
        if len(maps) != len(self.heads):
            raise ValueError(f"{len(self.heads)} heads (blocks {self.blocks}) got {len(maps)} feature maps")
        return [head(m, t_hat, text) for head, m in zip(self.heads, maps, strict=True)]

    @staticmethod
    def scores(logits: Sequence[Tensor]) -> Tensor:
        """(B, heads) per-sample score of each head: its logit map averaged over positions."""
        return torch.stack([l.flatten(1).mean(1) for l in logits], dim=1)
