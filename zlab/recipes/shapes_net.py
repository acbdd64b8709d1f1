"""Train :class:`zlab.shapes.net.ShapesNet`, the feature network behind zlab's Fréchet distance.

Renders of all 324 captions with random jitter, degraded the way decoders degrade images (Gaussian
blur, pixel noise, colour gain), classified attribute by attribute with cross-entropy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from zlab.shapes import draw, world
from zlab.shapes.net import ShapesNet, targets
from zlab.train.loop import fit, seed_everything


@dataclass
class ShapesNetConfig:
    """ShapesNet's training (``zlab train-shapes-net``): degraded renders of every spec, AdamW, one-cycle rate."""

    width: int = 16  # channels of the first convolution (doubled at each stage)
    num_features: int = 128  # the feature vector FD and diversity read
    steps: int = 1500
    batch_size: int = 64
    lr: float = 2e-3  # the one-cycle schedule's peak
    seed: int = 0


def degrade(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random blur (sigma up to 1.5 px), noise (std up to 0.05) and gain (0.85-1.15) on [0, 1] images."""
    b = images.shape[0]
    sigma = torch.rand(b, generator=generator) * 1.5
    radius = 4
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernels = torch.exp(-x[None] ** 2 / (2 * sigma[:, None].clamp(min=1e-3) ** 2))
    kernels = kernels / kernels.sum(1, keepdim=True)  # (B, K)
    padded = F.pad(images, (radius,) * 4, mode="replicate")
    c, h, w = images.shape[1:]
    # separable blur, one kernel per image: grouped conv over the batch folded into channels
    flat = padded.reshape(1, b * c, h + 2 * radius, w + 2 * radius)
    k = kernels.repeat_interleave(c, 0)
    flat = F.conv2d(flat, k[:, None, None, :], groups=b * c)
    flat = F.conv2d(flat, k[:, None, :, None], groups=b * c)
    out = flat.reshape(b, c, h, w)
    gain = 0.85 + 0.3 * torch.rand(b, 1, 1, 1, generator=generator)
    noise = torch.randn(out.shape, generator=generator) * 0.05 * torch.rand(b, 1, 1, 1, generator=generator)
    return (out * gain + noise).clamp(0, 1)


def train_shapes_net(config: ShapesNetConfig, progress: bool = True) -> tuple[ShapesNet, dict[str, float]]:
    """Train the network; returns it with its attribute accuracies on fresh degraded renders."""
    generator = seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    specs = world.enumerate_specs("all")
    net = ShapesNet(config.width, config.num_features)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=config.steps)

    def batch(n: int):
        chosen = [specs[i] for i in rng.integers(len(specs), size=n)]
        jitter = [tuple(int(v) for v in rng.integers(-world.MAX_JITTER, world.MAX_JITTER + 1, size=2)) for _ in chosen]
        images = torch.from_numpy(draw.render_batch(chosen, 64, jitter)).permute(0, 3, 1, 2).float() / 255
        return degrade(images, generator), targets(chosen)

    def train_step(step: int) -> dict[str, str]:
        images, labels = batch(config.batch_size)
        logits = net.logits(images)
        loss = sum(F.cross_entropy(logits[k], labels[k]) for k in logits)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        return {"loss": f"{loss.item():.3f}"}

    fit(train_step, 0, config.steps, desc="shapes-net", progress=progress)
    net.eval().requires_grad_(False)
    images, labels = batch(2000)
    with torch.no_grad():
        logits = net.logits(images)
    accuracy = {k: float((logits[k].argmax(1) == labels[k]).float().mean()) for k in logits}
    return net, accuracy
