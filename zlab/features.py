"""What the teacher "sees": image tokens after chosen blocks, as 2D feature maps (LADD, Sauer et al. 2024).

LADD's discriminator reads the frozen teacher's hidden states. In Z-Image's single stream every
main block outputs ``[image tokens, image padding, caption tokens, caption padding]`` per sample
(see :func:`zlab.anatomy.token_layout`); the image tokens, put back on their ``h x w`` patch grid,
are a ``(B, C, h, w)`` map that a 2D-convolutional head can read at any aspect ratio.

The caption tokens of the same block have attended to those image tokens, so their state says how image
and caption agree. ``caption=True`` puts each sample's pooled caption state beside its map, broadcast over
the grid, so that a head can judge "right for this caption" and not only "looks like a teacher sample".

Example:
    >>> tap = FeatureTap(pipe.transformer, blocks=(0, 3))
    >>> maps = tap(x_t, t_hat, prompt_embeds)        # [(B, dim, H/2, W/2), (B, dim, H/2, W/2)]
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from zlab.anatomy import token_layout
from zlab.flow import zimage_velocity
from zlab.zimage import raw_latents


class _EarlyExit(Exception):
    """Raised after the last tapped block: the rest of the transformer is not needed."""


class FeatureTap:
    """Forward hooks on main blocks of a ``ZImageTransformer2DModel`` returning image-token maps.

    Gradients flow through the maps when the call runs with grad enabled (the fake path of LADD
    needs them: LADD's student learns through the frozen teacher); the tap itself never changes the model or its weights.

    Args:
        transformer: The (frozen) teacher transformer; DDP/FSDP wrappers are unwrapped for hooks.
        blocks: Indices into ``transformer.layers`` whose outputs are returned, in that order.
        early_exit: Stop the forward pass after the deepest tapped block (saves the later blocks
            and the final layer, which the discriminator never reads).
        context: A context-manager factory entered around each pass, e.g. one that switches a
            LoRA adapter off so that a LoRA student's own modules act as the teacher.
        caption: Return :func:`beside_caption` maps, ``2 * dim`` channels: the image map and the block's
            pooled caption state, each normalised per sample.
    """

    def __init__(self, transformer, blocks: Sequence[int], early_exit: bool = True,
                 context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                 caption: bool = False):
        self.transformer = transformer
        self.caption = caption
        self.context = context
        layers = getattr(transformer, "module", transformer).layers
        if not blocks:
            raise ValueError("tap at least one block")
        bad = [b for b in blocks if not 0 <= b < len(layers)]
        if bad:
            raise ValueError(f"blocks {bad} out of range: the transformer has blocks 0..{len(layers) - 1}")
        self.blocks = tuple(blocks)
        self.layers = layers
        self.early_exit = early_exit

    @property
    def channels(self) -> int:
        """Channels of every map (the transformer's width; twice that with ``caption``)."""
        return getattr(self.transformer, "module", self.transformer).config.dim * (2 if self.caption else 1)

    def __call__(self, x_t: Tensor, t: Tensor, prompt_embeds: Sequence[Tensor]) -> list[Tensor]:
        """Maps ``(B, dim, H/2, W/2)`` of ``x_t`` (lab time ``t``, shape (B,)) after each tapped block."""
        layout = token_layout(x_t.shape[-2], x_t.shape[-1], cap_len=1)
        outputs: dict[int, Tensor] = {}
        last = max(self.blocks)

        def hook_for(index: int):
            def hook(module, args, output):
                outputs[index] = output
                if self.early_exit and index == last:
                    raise _EarlyExit
            return hook

        wanted = sorted(set(self.blocks))
        handles = [self.layers[b].register_forward_hook(hook_for(b)) for b in wanted]
        try:
            with self.context():
                zimage_velocity(self.transformer, x_t, t, prompt_embeds)
        except _EarlyExit:
            pass
        finally:
            for handle in handles:
                handle.remove()
        # Batches share one image size, so every sample's image tokens sit at layout.image.
        maps = [layout.image_grid(outputs[b]).float() for b in self.blocks]
        if self.caption:
            size = x_t.shape[-2:]
            maps = [beside_caption(m, caption_state(outputs[b], size, prompt_embeds)) for m, b in zip(maps, self.blocks)]
        return maps


def caption_state(hidden: Tensor, latent_size: Sequence[int], prompt_embeds: Sequence[Tensor]) -> Tensor:
    """(B, dim): each sample's caption tokens in a block's output ``hidden`` (B, seq, dim), averaged over its
    real tokens (each caption has its own length, so its own place in the stream)."""
    return torch.stack([hidden[i, token_layout(*latent_size, cap_len=len(e)).caption].float().mean(0)
                        for i, e in enumerate(prompt_embeds)])


def beside_caption(image_map: Tensor, caption: Tensor) -> Tensor:
    """``[image map, caption state]`` along channels, the state broadcast over the grid: (B, 2C, h, w). Each half
    is normalised per sample (hidden states grow with depth and with the noise level), so neither drowns the other."""
    state = F.layer_norm(caption, caption.shape[-1:])[..., None, None].expand(-1, -1, *image_map.shape[-2:])
    return torch.cat([F.group_norm(image_map, 1), state], 1)


class PixelFeatureTap:
    """A frozen *discriminative* network on decoded pixels, for the ablation of LADD's first claim.

    ADD (Sauer et al. 2023) trains its heads on DINOv2 features of clean images; LADD replaces them with the
    teacher's own features of noised latents. Here the shipped :class:`~zlab.shapes.net.ShapesNet` (trained to read
    the world's attributes) stands in for DINOv2: the VAE decodes the latents, and ``blocks`` index ShapesNet's conv
    layers (0, 1, 2). ``noised = False``: LADD's forward hands it clean ``x0`` and ``x0_hat``, as ADD does; the
    call signature is :class:`FeatureTap`'s, so the heads and losses are the same.
    """

    noised = False

    def __init__(self, vae, net, blocks: Sequence[int]):
        convs = len(net.conv_channels)
        bad = [b for b in blocks if not 0 <= b < convs]
        if not blocks or bad:
            raise ValueError(f"blocks {list(blocks)} must index the feature network's conv layers 0..{convs - 1}")
        self.vae, self.net, self.blocks = vae.eval().requires_grad_(False), net.eval().requires_grad_(False), tuple(blocks)

    @property
    def channels(self) -> list[int]:
        """Channels of each tapped map."""
        return [self.net.conv_channels[b] for b in self.blocks]

    def __call__(self, x0: Tensor, t: Tensor, prompt_embeds: Sequence[Tensor]) -> list[Tensor]:
        """Maps of the decoded images of normalised latents ``x0`` (``t`` and the prompt are not read)."""
        images = self.vae.decode(raw_latents(self.vae, x0), return_dict=False)[0].float() / 2 + 0.5
        maps = self.net.conv_maps(images)
        return [maps[b].float() for b in self.blocks]


def pca_rgb(maps: Tensor, basis: dict[str, Tensor] | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Project feature maps (B, C, h, w) on their first 3 principal components, scaled to [0, 1].

    Returns ``(images (B, h, w, 3), basis)``; pass ``basis`` back to colour another batch (say, the
    student's maps) in exactly the coordinates and colour range of the first (the teacher's).
    """
    flat = maps.detach().float().movedim(1, -1).reshape(-1, maps.shape[1])
    if basis is None:
        mean = flat.mean(0)
        _, _, v = torch.linalg.svd(flat - mean, full_matrices=False)
        proj = (flat - mean) @ v[:3].T
        basis = {"mean": mean, "components": v[:3].T,
                 "low": proj.quantile(0.01, dim=0), "high": proj.quantile(0.99, dim=0)}
    proj = (flat - basis["mean"]) @ basis["components"]
    rgb = ((proj - basis["low"]) / (basis["high"] - basis["low"]).clamp_min(1e-8)).clamp(0, 1)
    return rgb.reshape(maps.shape[0], *maps.shape[2:], 3), basis
