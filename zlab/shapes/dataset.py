"""The Shapes dataset: captioned renders drawn deterministically from a split, open captions included."""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset

from zlab.shapes.draw import image_to_tensor, render
from zlab.shapes.open_captions import ATTRIBUTES, OpenSpec
from zlab.shapes.world import MAX_JITTER, ShapeSpec, Size, Split, canvas_size, enumerate_specs


class ShapesDataset(Dataset):
    """A deterministic dataset of captioned Shapes images, rendered on the fly.

    Item ``i`` depends only on ``(seed, i)``: its spec is drawn uniformly from the split and its
    jitter uniformly from ``[-2, 2]^2`` with ``numpy.random.default_rng([seed, i])``. With
    ``open_prob > 0`` each attribute is then left out of the caption with that probability
    (:mod:`zlab.shapes.open_captions`): ``attributes`` holds ``None`` where the caption leaves it open. The
    image stays a uniform draw from the split, so given an open caption it is uniform over the specs
    the split allows with the named attributes.

    Args:
        split: ``"train"``, ``"heldout"`` or ``"all"`` (see :func:`enumerate_specs`).
        size: Canvas size, ``int`` or ``(height, width)``.
        length: Number of items.
        seed: Non-negative integer seed.
        open_prob: Probability in [0, 1] that each attribute is left open; 0 names everything.

    Example:
        >>> item = ShapesDataset(split="train", size=64, length=8, seed=0)[3]
        >>> item["image"].shape, item["caption"] == ShapeSpec(**item["attributes"]).caption
        (torch.Size([3, 64, 64]), True)
    """

    def __init__(self, split: Split = "train", size: Size = 64, length: int = 10_000, seed: int = 0,
                 open_prob: float = 0.0):
        if length < 0 or seed < 0:
            raise ValueError(f"length and seed must be non-negative, got {length} and {seed}")
        if not 0.0 <= open_prob <= 1.0:
            raise ValueError(f"open_prob must be in [0, 1], got {open_prob!r}")
        self.open_prob = float(open_prob)
        self.split = split
        self.size = canvas_size(size)
        self.length = int(length)
        self.seed = int(seed)
        self.specs = enumerate_specs(split)

    def __len__(self) -> int:
        return self.length

    def draw(self, index: int) -> tuple[ShapeSpec, tuple[int, int]]:
        """The spec and jitter ``(dy, dx)`` of item ``index``, without rendering it."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        rng = np.random.default_rng([self.seed, int(index)])
        spec = self.specs[int(rng.integers(len(self.specs)))]
        dy, dx = rng.integers(-MAX_JITTER, MAX_JITTER + 1, size=2)
        return spec, (int(dy), int(dx))

    def spec(self, index: int) -> ShapeSpec:
        """The spec of item ``index``."""
        return self.draw(index)[0]

    def caption_spec(self, index: int):
        """The :class:`~zlab.shapes.open_captions.OpenSpec` of item ``index``'s caption (its spec, some attributes open)."""

        spec, _ = self.draw(index)
        rng = np.random.default_rng([self.seed, int(index), 1])
        left_open = rng.random(len(ATTRIBUTES)) < self.open_prob
        return OpenSpec.from_spec(spec, tuple(a for a, o in zip(ATTRIBUTES, left_open) if o))

    def __getitem__(self, index: int) -> dict:
        """Returns ``{"image": float (3, H, W) in [-1, 1], "caption": str, "attributes": dict}``; an open
        attribute is ``None`` in ``attributes``."""
        spec, jitter = self.draw(index)
        named = self.caption_spec(index) if self.open_prob else None
        return {
            "image": image_to_tensor(render(spec, self.size, jitter)),
            "caption": named.caption if named else spec.caption,
            "attributes": {k: getattr(named, k) for k in spec.attributes} if named else dict(spec.attributes),
        }
