"""A small CNN that reads Shapes attributes; its penultimate layer is zlab's feature space for
Fréchet distance and diversity (the Shapes stand-in for Inception features).

Trained by ``zlab train-shapes-net`` on renders with blur, noise and colour jitter (so that soft,
VAE-decoded images land near their renders), shipped in ``checkpoints/shapes-net/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from zlab.atomic import atomic_file, write_json
from zlab.shapes import world

HEADS = {"shape": world.SHAPES, "colour": world.COLOURS, "size": world.SIZES, "row": world.ROWS,
         "column": world.COLUMNS}


def _at_64(images: Tensor) -> Tensor:
    """Images resized to the 64x64 the network was trained at (other sizes: bilinear, antialiased)."""
    if images.shape[-2:] == (64, 64):
        return images
    return F.interpolate(images, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)


class ShapesNet(nn.Module):
    """Conv features -> 4x4 pooled grid (keeps position) -> ``num_features``-d embedding -> attribute heads.

    Input: float images (B, 3, H, W) in [0, 1], any size (resized to 64x64).
    """

    def __init__(self, width: int = 16, num_features: int = 128):
        super().__init__()
        self.config = {"width": width, "num_features": num_features}
        self.num_features = num_features
        w = width
        self.body = nn.Sequential(  # 64 -> 32 -> 16 -> 8 -> pooled 4x4 grid
            nn.Conv2d(3, w, 4, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.SiLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(4 * w * 16, num_features), nn.SiLU(),
        )
        self.heads = nn.ModuleDict({name: nn.Linear(num_features, len(values)) for name, values in HEADS.items()})

    def forward(self, images: Tensor) -> Tensor:
        """(B, num_features) embedding; this is what torchmetrics' FID calls."""
        return self.body(_at_64(images) * 2 - 1)

    @property
    def conv_channels(self) -> list[int]:
        """Output channels of each conv layer of the body, in order (the maps :meth:`conv_maps` returns)."""
        return [m.out_channels for m in self.body if isinstance(m, nn.Conv2d)]

    def conv_maps(self, images: Tensor) -> list[Tensor]:
        """The body's activations after each conv layer (64x64 input: 32, 16 and 8 px maps), with gradients
        to ``images`` when grad is on: a frozen discriminative feature network for ADD-style heads."""
        h, maps, convs = _at_64(images) * 2 - 1, [], len(self.conv_channels)
        for layer in self.body:
            h = layer(h)
            if isinstance(layer, nn.SiLU):
                maps.append(h)
                if len(maps) == convs:
                    break
        return maps

    def logits(self, images: Tensor) -> dict[str, Tensor]:
        features = self(images)
        return {name: head(features) for name, head in self.heads.items()}

    def save(self, path: str | Path) -> None:
        """Weights and config into ``path`` (each file written atomically; other files there, a card, are kept)."""
        with atomic_file(Path(path) / "model.safetensors") as tmp:
            save_file(self.state_dict(), tmp)
        write_json(Path(path) / "config.json", self.config)

    @classmethod
    def load(cls, path: str | Path) -> ShapesNet:
        path = Path(path)
        if not (path / "model.safetensors").is_file():
            raise FileNotFoundError(f"no ShapesNet at {path} (expected model.safetensors and config.json)")
        net = cls(**json.loads((path / "config.json").read_text()))
        net.load_state_dict(load_file(path / "model.safetensors"))
        return net.eval().requires_grad_(False)


def targets(specs: list[world.ShapeSpec]) -> dict[str, Tensor]:
    """Class indices of each attribute head for a list of specs."""
    return {name: torch.tensor([values.index(getattr(s, name)) for s in specs]) for name, values in HEADS.items()}
