"""The Shapes world: a captioned synthetic dataset whose prompt fidelity can be checked exactly.

Every image shows one flat-coloured object on a dark grey background (RGB 30, 30, 30). An object
has five attributes, and its caption states all of them in one fixed grammar::

    a {size} {colour} {shape} at the {row} {column}      e.g. "a large red circle at the top left"

* shape: circle, square or triangle (isosceles, apex up, base equal to height);
* colour: one of six palette entries (:data:`PALETTE`);
* size: small or large, a half-extent of 0.11 or 0.18 of the canvas side (the shorter side on
  non-square canvases);
* row and column: one cell of a 3x3 grid; the object sits at the cell centre, give or take up to
  2 px of integer jitter (large objects in edge cells are nudged inward to stay on the canvas,
  see :func:`object_box`).

That makes 3 * 6 * 2 * 9 = 324 captions. Three colour-shape pairs (:data:`HELD_OUT_PAIRS`) never
appear in the ``"train"`` split, so a model can be asked to compose attributes it has only seen apart.

Because the world is this small, :func:`check` can read the attributes back from any image (a
rendered one, a VAE reconstruction, a generated sample) and :func:`score` / :func:`accuracy`
compare them with the prompt: prompt fidelity becomes a number, attribute by attribute.

Example:
    >>> spec = parse_caption("a large red circle at the top left")
    >>> image = render(spec, size=64)
    >>> image.shape, image.dtype.name
    ((64, 64, 3), 'uint8')
    >>> check(image).spec == spec
    True
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypedDict

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = [
    "BACKGROUND",
    "PALETTE",
    "SHAPES",
    "COLOURS",
    "SIZES",
    "ROWS",
    "COLUMNS",
    "HALF_EXTENT",
    "MAX_JITTER",
    "EDGE_MARGIN",
    "SUPERSAMPLE",
    "FOREGROUND_DISTANCE",
    "CORE_FRACTION",
    "MIN_AREA_FRACTION",
    "MAX_EXTENT_FACTOR",
    "FIT_PAD",
    "HELD_OUT_PAIRS",
    "CAPTION_GRAMMAR",
    "Attributes",
    "ShapeSpec",
    "CheckResult",
    "ShapesDataset",
    "parse_caption",
    "enumerate_specs",
    "enumerate_captions",
    "canvas_size",
    "object_box",
    "render",
    "render_batch",
    "image_to_tensor",
    "tensor_to_image",
    "check",
    "check_batch",
    "score",
    "accuracy",
]

Split = Literal["train", "heldout", "all"]
Size = int | tuple[int, int]

# --------------------------------------------------------------------------------------------
# The world's vocabulary
# --------------------------------------------------------------------------------------------

BACKGROUND: tuple[int, int, int] = (30, 30, 30)
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 210, 40),
    "purple": (150, 60, 190),
    "orange": (240, 130, 30),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
COLOURS: tuple[str, ...] = tuple(PALETTE)
SIZES: tuple[str, ...] = ("small", "large")
ROWS: tuple[str, ...] = ("top", "middle", "bottom")
COLUMNS: tuple[str, ...] = ("left", "center", "right")

HALF_EXTENT: dict[str, float] = {"small": 0.11, "large": 0.18}
"""Object half-extent as a fraction of ``min(height, width)`` of the canvas."""
MAX_JITTER = 2
"""Largest integer offset, in pixels, of the object centre from its cell centre (x and y)."""
EDGE_MARGIN = 1.0
"""Pixels kept clear between the object's box and the canvas border (see :func:`object_box`)."""

PROMPT_TOKENS = 64
"""``max_sequence_length`` for the Shapes checkpoints' ``sampling.json``. With Qwen3's chat template
every caption is at most 13 tokens; the stock default pads each prompt to 512 and runs the text
encoder over all of them, which gives the same embeddings (padding is on the right and attention
is causal) for ~5x the encoder time."""
def sampling_base(size: int = 64) -> dict:
    """Stock ``ZImagePipeline`` arguments every Shapes checkpoint of one image size shares (its ``sampling.json``
    adds steps and CFG): 64 px in the CPU profile, 128 px in the GPU profile."""
    return {"height": size, "width": size, "max_sequence_length": PROMPT_TOKENS}


SAMPLING_BASE = sampling_base(64)
""":func:`sampling_base` of the shipped 64-px checkpoints."""

HELD_OUT_PAIRS: tuple[tuple[str, str], ...] = (
    ("purple", "triangle"),
    ("orange", "circle"),
    ("green", "square"),
)
"""(colour, shape) pairs absent from the ``"train"`` split and alone in the ``"heldout"`` split."""

CAPTION_GRAMMAR = (
    "a {size} {colour} {shape} at the {row} {column}, with size in "
    f"{'|'.join(SIZES)}, colour in {'|'.join(COLOURS)}, shape in {'|'.join(SHAPES)}, "
    f"row in {'|'.join(ROWS)}, column in {'|'.join(COLUMNS)}"
)
_CAPTION_RE = re.compile(
    rf"a ({'|'.join(SIZES)}) ({'|'.join(COLOURS)}) ({'|'.join(SHAPES)}) "
    rf"at the ({'|'.join(ROWS)}) ({'|'.join(COLUMNS)})"
)

SUPERSAMPLE = 4
"""Sub-samples per pixel side used to anti-alias edges (coverage = mean of 4 x 4 point tests)."""

# Checker thresholds (see :func:`check`).
FOREGROUND_DISTANCE = 60.0
"""RGB distance from the background above which a pixel may belong to the object."""
CORE_FRACTION = 0.8
"""Core pixels (used for the colour) reach this fraction of the 95th-percentile foreground distance."""
MIN_AREA_FRACTION = 0.25
"""An object covering less than this fraction of the smallest object's area counts as no object."""
MAX_EXTENT_FACTOR = 1.5
"""A blob whose half-extent exceeds this many large half-extents is not a Shapes object."""
FIT_PAD = 6
"""Pixels added around the mask's bounding box when fitting templates (room for ~3 sigma of blur)."""


class Attributes(TypedDict):
    """The dict form of a :class:`ShapeSpec`, as found in dataset items."""

    shape: str
    colour: str
    size: str
    row: str
    column: str


@dataclass(frozen=True)
class ShapeSpec:
    """What one image shows: the five attributes of its single object.

    Attributes:
        shape: One of :data:`SHAPES`.
        colour: One of :data:`COLOURS`.
        size: One of :data:`SIZES`.
        row: One of :data:`ROWS`.
        column: One of :data:`COLUMNS`.

    Raises:
        ValueError: If any attribute is outside the world's vocabulary.
    """

    shape: str
    colour: str
    size: str
    row: str
    column: str

    def __post_init__(self) -> None:
        for name, allowed in (
            ("shape", SHAPES),
            ("colour", COLOURS),
            ("size", SIZES),
            ("row", ROWS),
            ("column", COLUMNS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")

    @property
    def caption(self) -> str:
        """The caption in the world's grammar, e.g. ``"a large red circle at the top left"``."""
        return f"a {self.size} {self.colour} {self.shape} at the {self.row} {self.column}"

    @property
    def attributes(self) -> Attributes:
        """The attributes as a plain dict."""
        return Attributes(
            shape=self.shape, colour=self.colour, size=self.size, row=self.row, column=self.column
        )

    @classmethod
    def from_attributes(cls, attributes: Attributes) -> ShapeSpec:
        """Builds a spec from its dict form (the inverse of :attr:`attributes`)."""
        return cls(**{key: attributes[key] for key in Attributes.__annotations__})

    @property
    def held_out(self) -> bool:
        """Whether this spec's (colour, shape) pair is one of :data:`HELD_OUT_PAIRS`."""
        return (self.colour, self.shape) in HELD_OUT_PAIRS


def parse_caption(caption: str) -> ShapeSpec:
    """Reads a caption back into a :class:`ShapeSpec` (the inverse of :attr:`ShapeSpec.caption`).

    Args:
        caption: A caption that follows :data:`CAPTION_GRAMMAR` exactly (lower case, single spaces).

    Returns:
        The spec the caption describes.

    Raises:
        ValueError: If the caption does not follow the grammar; the message states the grammar.
    """
    match = _CAPTION_RE.fullmatch(caption) if isinstance(caption, str) else None
    if match is None:
        raise ValueError(f"not a Shapes caption: {caption!r}; expected {CAPTION_GRAMMAR}")
    size, colour, shape, row, column = match.groups()
    return ShapeSpec(shape=shape, colour=colour, size=size, row=row, column=column)


def enumerate_specs(split: Split = "all") -> list[ShapeSpec]:
    """Lists every spec of a split, in a fixed order.

    Args:
        split: ``"all"`` (324 specs), ``"train"`` (all but the held-out pairs, 270) or
            ``"heldout"`` (only the held-out pairs, 54).

    Returns:
        The specs, ordered by shape, colour, size, row, column.

    Raises:
        ValueError: For an unknown split.
    """
    if split not in ("train", "heldout", "all"):
        raise ValueError(f"split must be 'train', 'heldout' or 'all', got {split!r}")
    specs = [ShapeSpec(*combo) for combo in itertools.product(SHAPES, COLOURS, SIZES, ROWS, COLUMNS)]
    if split == "train":
        return [spec for spec in specs if not spec.held_out]
    if split == "heldout":
        return [spec for spec in specs if spec.held_out]
    return specs


def enumerate_captions(split: Split = "all") -> list[str]:
    """Lists every caption of a split, in the order of :func:`enumerate_specs`."""
    return [spec.caption for spec in enumerate_specs(split)]


# --------------------------------------------------------------------------------------------
# Geometry and rendering
# --------------------------------------------------------------------------------------------


def canvas_size(size: Size) -> tuple[int, int]:
    """Validates a canvas size and returns it as ``(height, width)``.

    Args:
        size: One int for a square canvas, or ``(height, width)``.

    Returns:
        ``(height, width)``.

    Raises:
        ValueError: Unless both sides are multiples of 16 and at least 32.
    """
    try:
        sides = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    except TypeError:  # neither an int nor a pair
        sides = ()
    if len(sides) != 2 or any(
        isinstance(side, bool) or not isinstance(side, (int, np.integer)) or side < 32 or side % 16
        for side in sides
    ):
        raise ValueError(
            "canvas height and width must be integers that are multiples of 16 and >= 32 "
            f"(32, 48, 64, 80, 96, ...), given as an int or (height, width); got {size!r}"
        )
    return int(sides[0]), int(sides[1])


def object_box(
    spec: ShapeSpec, size: Size = 64, jitter: tuple[int, int] = (0, 0)
) -> tuple[float, float, float]:
    """Where the object of ``spec`` lies on the canvas.

    Coordinates are continuous: pixel ``(i, j)`` covers ``[i, i + 1] x [j, j + 1]``. The object's
    box (its bounding box; for the triangle, apex at the top and base at the bottom) is the square
    ``[cy - r, cy + r] x [cx - r, cx + r]``.

    The half-extent ``r`` is ``HALF_EXTENT[size] * min(height, width)``: on square canvases that is
    the fraction of the width, and on non-square ones the shorter side keeps the object inside the
    canvas and inside its grid row or column.

    The centre is the cell centre ``((i + 0.5) / 3 * height, (j + 0.5) / 3 * width)`` plus the
    jitter, then clamped so the box keeps :data:`EDGE_MARGIN` px from every border. Only large
    objects in edge cells are clamped (a 0.18 half-extent overhangs a 1/6 cell centre); the centre
    stays well inside its cell.

    Args:
        spec: The object.
        size: Canvas size, ``int`` or ``(height, width)``.
        jitter: Integer offset ``(dy, dx)``, each in ``[-MAX_JITTER, MAX_JITTER]``.

    Returns:
        ``(cy, cx, r)`` in pixels.

    Raises:
        ValueError: For an invalid canvas size or jitter.
    """
    height, width = canvas_size(size)
    dy, dx = jitter
    if max(abs(int(dy)), abs(int(dx))) > MAX_JITTER or (dy, dx) != (int(dy), int(dx)):
        raise ValueError(f"jitter must be integers in [-{MAX_JITTER}, {MAX_JITTER}], got {jitter!r}")
    r = HALF_EXTENT[spec.size] * min(height, width)
    cy = (ROWS.index(spec.row) + 0.5) / 3 * height + int(dy)
    cx = (COLUMNS.index(spec.column) + 0.5) / 3 * width + int(dx)
    cy = float(np.clip(cy, r + EDGE_MARGIN, height - r - EDGE_MARGIN))
    cx = float(np.clip(cx, r + EDGE_MARGIN, width - r - EDGE_MARGIN))
    return cy, cx, r


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Point-in-shape test for a shape normalised to the box ``[-1, 1]^2`` (u right, v down)."""
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
    if shape == "triangle":  # apex (0, -1), base from (-1, 1) to (1, 1)
        return (v <= 1.0) & (np.abs(u) <= (v + 1.0) / 2.0)
    raise ValueError(f"unknown shape {shape!r}")


def _coverage(
    shape: str, cy: float, cx: float, ry: float, rx: float, height: int, width: int
) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a ``height x width`` patch by a shape in its box.

    The box is centred at ``(cy, cx)`` (patch coordinates) with half-extents ``(ry, rx)``.
    """
    s = SUPERSAMPLE
    ys = (np.arange(height * s) + 0.5) / s
    xs = (np.arange(width * s) + 0.5) / s
    hits = _inside(shape, (xs[None, :] - cx) / rx, (ys[:, None] - cy) / ry)
    return hits.reshape(height, s, width, s).sum(axis=(1, 3)) / (s * s)


def render(spec: ShapeSpec, size: Size = 64, jitter: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Draws one object, anti-aliased by 4 x 4 supersampling.

    Args:
        spec: The object to draw.
        size: Canvas size, ``int`` or ``(height, width)``; sides are multiples of 16, >= 32.
        jitter: Integer offset ``(dy, dx)`` of the centre, each in ``[-2, 2]``.

    Returns:
        ``uint8`` array of shape ``(height, width, 3)``.
    """
    height, width = canvas_size(size)
    cy, cx, r = object_box(spec, (height, width), jitter)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = BACKGROUND
    y0, y1 = int(np.floor(cy - r)), int(np.ceil(cy + r))
    x0, x1 = int(np.floor(cx - r)), int(np.ceil(cx + r))
    cover = _coverage(spec.shape, cy - y0, cx - x0, r, r, y1 - y0, x1 - x0)[..., None]
    background = np.asarray(BACKGROUND, np.float64)
    patch = background + cover * (np.asarray(PALETTE[spec.colour], np.float64) - background)
    image[y0:y1, x0:x1] = np.rint(patch).astype(np.uint8)
    return image


def render_batch(
    specs: Sequence[ShapeSpec],
    size: Size = 64,
    jitters: Sequence[tuple[int, int]] | None = None,
) -> np.ndarray:
    """Draws many objects; returns ``uint8`` of shape ``(n, height, width, 3)``."""
    jitters = [(0, 0)] * len(specs) if jitters is None else jitters
    if len(jitters) != len(specs):
        raise ValueError(f"got {len(specs)} specs but {len(jitters)} jitters")
    height, width = canvas_size(size)
    out = np.empty((len(specs), height, width, 3), np.uint8)
    for k, (spec, jitter) in enumerate(zip(specs, jitters)):
        out[k] = render(spec, (height, width), jitter)
    return out


def image_to_tensor(image: np.ndarray) -> Tensor:
    """Converts ``uint8`` HxWx3 (or NxHxWx3) to float32 CHW (or NCHW) in [-1, 1], the VAE convention."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)).float().div(127.5).sub(1.0)
    return tensor.movedim(-1, -3).contiguous()


def tensor_to_image(tensor: Tensor) -> np.ndarray:
    """Converts float CHW (or NCHW) in [-1, 1] back to ``uint8`` HxWx3 (or NxHxWx3), rounding."""
    pixels = (tensor.detach().float().cpu().clamp(-1.0, 1.0) + 1.0) * 127.5
    return pixels.round().to(torch.uint8).movedim(-3, -1).numpy()


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------


class ShapesDataset(Dataset):
    """A deterministic dataset of captioned Shapes images, rendered on the fly.

    Item ``i`` depends only on ``(seed, i)``: its spec is drawn uniformly from the split and its
    jitter uniformly from ``[-2, 2]^2`` with ``numpy.random.default_rng([seed, i])``. With
    ``open_prob > 0`` each attribute is then left out of the caption with that probability
    (:mod:`zlab.open_captions`): ``attributes`` holds ``None`` where the caption leaves it open. The
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
        """The :class:`~zlab.open_captions.OpenSpec` of item ``index``'s caption (its spec, some attributes open)."""
        from zlab.open_captions import ATTRIBUTES, OpenSpec  # open_captions builds on this module

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


# --------------------------------------------------------------------------------------------
# Checker
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """What :func:`check` read from one image.

    Attributes:
        found: Whether exactly one plausible object was found.
        spec: The attributes read back, or ``None`` when nothing was found.
        reason: ``"ok"``, ``"no object"`` or ``"too large"``.
        centre: Estimated object box centre ``(cy, cx)`` in pixels, if found.
        half_extent: Estimated half-extent of the object box in pixels (decides the size), if found.
        ious: Soft IoU of each fitted (blurred) shape template with the object, if found.
        blur: Gaussian sigma, in pixels, of the best template fit (0 for a sharp render).
        mean_colour: Mean RGB of the object's core pixels, if any foreground was seen.
    """

    found: bool
    spec: ShapeSpec | None = None
    reason: str = "ok"
    centre: tuple[float, float] | None = None
    half_extent: float | None = None
    ious: dict[str, float] = field(default_factory=dict)
    blur: float | None = None
    mean_colour: tuple[float, float, float] | None = None

    @property
    def attributes(self) -> Attributes | None:
        """The read-back attributes as a dict, or ``None``."""
        return None if self.spec is None else self.spec.attributes

    def score(self, spec: ShapeSpec | str) -> dict[str, bool]:
        """Same as :func:`score` ``(self, spec)``."""
        return score(self, spec)


def _as_rgb(image: np.ndarray | Tensor) -> np.ndarray:
    """Float64 HxWx3 in [0, 255] from uint8/float HxWx3 numpy (0..255) or a CHW tensor in [-1, 1]."""
    if isinstance(image, Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a (3, H, W) tensor, got shape {tuple(image.shape)}")
        pixels = (image.detach().double().cpu().clamp(-1.0, 1.0) + 1.0) * 127.5
        return pixels.permute(1, 2, 0).numpy()
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) array, got shape {array.shape}")
    return array.astype(np.float64)


def _moments(weights: np.ndarray) -> tuple[float, float, float, float, float]:
    """Mass, centroid ``(cy, cx)`` and variances ``(vyy, vxx)`` of a 2-D weight map (pixel centres)."""
    ys = np.arange(weights.shape[0]) + 0.5
    xs = np.arange(weights.shape[1]) + 0.5
    mass = float(weights.sum())
    py, px = weights.sum(axis=1) / mass, weights.sum(axis=0) / mass
    cy, cx = float(py @ ys), float(px @ xs)
    return mass, cy, cx, float(py @ (ys - cy) ** 2), float(px @ (xs - cx) ** 2)


def _blur(weights: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (zero padding) of a small 2-D map, as two matrix products."""
    if sigma < 0.25:
        return weights

    radius = int(np.ceil(3 * sigma))
    norm = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).sum()

    def kernel_matrix(n: int) -> np.ndarray:
        offsets = np.arange(n)[:, None] - np.arange(n)[None, :]
        return np.exp(-0.5 * (offsets / sigma) ** 2) * (np.abs(offsets) <= radius) / norm

    return kernel_matrix(weights.shape[0]) @ weights @ kernel_matrix(weights.shape[1])


_AREA = {"circle": np.pi, "square": 4.0, "triangle": 2.0}
"""Area of each shape in units of its squared half-extent."""
_CENTROID_DROP = {"circle": 0.0, "square": 0.0, "triangle": 1.0 / 3.0}
"""How far below its box centre each shape's centroid sits, in units of its half-extent."""


def _nearest_colour(rgb: np.ndarray) -> str:
    """The palette entry nearest to ``rgb``, allowing for partial coverage.

    The distance to an entry is the distance from ``rgb`` to the segment joining the background
    to that entry, i.e. to the entry blended with the background at any coverage. A fully covered
    pixel is thus matched to its nearest palette entry, and a faded one (the core of a small,
    blurred object) still to its own hue rather than to a darker neighbour (yellow to orange).
    """
    background = np.asarray(BACKGROUND, np.float64)
    directions = np.asarray(list(PALETTE.values()), np.float64) - background
    offset = np.asarray(rgb, np.float64) - background
    coverage = np.clip(directions @ offset / (directions * directions).sum(axis=1), 0.0, 1.0)
    distances = np.linalg.norm(offset - coverage[:, None] * directions, axis=1)
    return COLOURS[int(np.argmin(distances))]


def _fit_template(shape: str, alpha: np.ndarray) -> tuple[float, float, float, float, float]:
    """Fits one shape, blurred, to a coverage map by its blur-invariant moments.

    Symmetric blur keeps an object's mass and centroid and adds its own variance to the object's
    variances. So the mass gives the half-extent ``r``, the centroid gives the centre, and the
    variance in excess of the sharp template's gives the blur ``sigma``.

    Args:
        shape: The template to fit.
        alpha: Unclipped coverage around the object (moments use it as is; the IoU clips it).

    Returns:
        ``(soft IoU of the blurred template with alpha, cy, cx, r, sigma)``.
    """
    mass, cy, cx, vyy, vxx = _moments(alpha)
    alpha = np.clip(alpha, 0.0, 1.0)
    r = float(np.sqrt(mass / _AREA[shape]))
    box_cy = cy - _CENTROID_DROP[shape] * r
    template = _coverage(shape, box_cy, cx, r, r, *alpha.shape)
    _, _, _, tyy, txx = _moments(template)
    sigma = float(np.sqrt(max(0.0, 0.5 * (vyy - tyy + vxx - txx))))
    template = _blur(template, sigma)
    iou = float(np.minimum(alpha, template).sum() / np.maximum(alpha, template).sum())
    return iou, box_cy, cx, r, sigma


def check(image: np.ndarray | Tensor) -> CheckResult:
    """Reads shape, colour, size and grid cell back from one image.

    The steps, and why they survive soft edges (blur, a small VAE's rounded corners):

    1. Foreground: pixels farther than :data:`FOREGROUND_DISTANCE` (60) in RGB from the background.
       The nearest palette colour (green) lies 153 away, so 60 keeps any pixel at least ~40%
       covered and ignores noise of a few levels. Less than :data:`MIN_AREA_FRACTION` (1/4) of the
       smallest object (a small triangle) means "no object".
    2. Colour: the palette entry nearest to the mean of the core, the foreground pixels at least
       :data:`CORE_FRACTION` (0.8) as far from the background as the 95th percentile; edge pixels
       blended with the background would drag the mean towards grey. "Nearest" allows for partial
       coverage (see :func:`_nearest_colour`), so the faded core of a tiny blurred object keeps
       its hue.
    3. Coverage: each pixel's ``alpha``, its offset from the background projected onto that
       colour's (0 background, 1 full colour). ``alpha > 0.5`` is the object mask: the 50% contour
       is where the true edge was, whatever the colour. The fit below uses ``alpha`` unclipped,
       so zero-mean pixel noise around the object averages out instead of adding mass.
    4. Shape: each template (circle, square, apex-up triangle) is fitted to ``alpha`` inside the
       mask's bounding box grown by :data:`FIT_PAD` px, and the best soft IoU wins. Blur keeps the
       mass and centroid and only adds variance, so the fit takes the half-extent from the mass,
       the centre from the centroid, and blurs the template by the excess variance. Sharp renders
       then match their template exactly, and blurred ones match a blurred template: a blurred
       triangle loses its apex, a square its corners, yet neither turns into the circle.
    5. Size: the half-extent against the midpoint of the small and large half-extents,
       ``0.145 * min(height, width)``. The half-extent is the larger of the mask's bounding-box
       half-extents and the fitted template's (from its mass); blur erodes the first (a
       triangle's apex), dimming shrinks the second, neither inflates. A mask whose bounding box
       exceeds :data:`MAX_EXTENT_FACTOR` (1.5) large half-extents is "too large" (e.g. a flat
       canvas of another colour), not an object.
    6. Position: the centroid of ``alpha``, less the fitted shape's centroid offset from its box
       centre (a triangle's centroid sits a third of its half-extent lower), mapped to the 3x3 grid.

    Args:
        image: ``uint8`` (or float in 0..255) array ``(H, W, 3)``, or a float tensor ``(3, H, W)``
            in [-1, 1].

    Returns:
        A :class:`CheckResult`; ``found`` is False (and ``spec`` None) when there is no object.
    """
    rgb = _as_rgb(image)
    height, width = rgb.shape[:2]
    side = min(height, width)
    background = np.asarray(BACKGROUND, np.float64)
    offset = rgb - background
    distance = np.linalg.norm(offset, axis=-1)
    min_area = MIN_AREA_FRACTION * 2.0 * (HALF_EXTENT["small"] * side) ** 2

    foreground = distance > FOREGROUND_DISTANCE
    if foreground.sum() < min_area:
        return CheckResult(found=False, reason="no object")

    far = np.sort(distance[foreground])[int(0.95 * (foreground.sum() - 1))]  # 95th percentile
    core = foreground & (distance >= CORE_FRACTION * far)
    mean_colour = rgb[core].mean(axis=0)
    colour = _nearest_colour(mean_colour)
    mean_colour_t = tuple(float(c) for c in mean_colour)

    direction = np.asarray(PALETTE[colour], np.float64) - background
    raw_alpha = offset @ direction / (direction @ direction)  # unclipped: noise averages out
    alpha = np.clip(raw_alpha, 0.0, 1.0)
    mask = alpha > 0.5
    if mask.sum() < min_area:
        return CheckResult(found=False, reason="no object", mean_colour=mean_colour_t)

    rows, cols = np.nonzero(mask)
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    ry, rx = (y1 - y0) / 2.0, (x1 - x0) / 2.0
    if max(ry, rx) > MAX_EXTENT_FACTOR * HALF_EXTENT["large"] * side:
        return CheckResult(found=False, reason="too large", mean_colour=mean_colour_t)

    wy0, wx0 = max(y0 - FIT_PAD, 0), max(x0 - FIT_PAD, 0)
    window = raw_alpha[wy0 : y1 + FIT_PAD, wx0 : x1 + FIT_PAD]
    fits = {shape: _fit_template(shape, window) for shape in SHAPES}
    shape = max(SHAPES, key=lambda name: fits[name][0])
    _, cy, cx, _, _ = fits[shape]
    cy, cx = cy + wy0, cx + wx0
    row = ROWS[int(np.clip(cy * 3 // height, 0, 2))]
    column = COLUMNS[int(np.clip(cx * 3 // width, 0, 2))]

    midpoint = 0.5 * (HALF_EXTENT["small"] + HALF_EXTENT["large"]) * side
    half_extent = max(ry, rx, fits[shape][3])
    size = "large" if half_extent > midpoint else "small"
    return CheckResult(
        found=True,
        spec=ShapeSpec(shape=shape, colour=colour, size=size, row=row, column=column),
        centre=(cy, cx),
        half_extent=float(half_extent),
        ious={name: fit[0] for name, fit in fits.items()},
        blur=fits[shape][4],
        mean_colour=mean_colour_t,
    )


def check_batch(images: np.ndarray | Tensor | Iterable[np.ndarray | Tensor]) -> list[CheckResult]:
    """Runs :func:`check` on each image.

    Args:
        images: A float tensor ``(N, 3, H, W)`` in [-1, 1], a ``uint8`` array ``(N, H, W, 3)``, or
            any iterable of images :func:`check` accepts.

    Returns:
        One :class:`CheckResult` per image.
    """
    return [check(image) for image in images]


def score(result: CheckResult, spec: ShapeSpec | str) -> dict[str, bool]:
    """Compares a check result with the prompted spec (or caption).

    Returns:
        ``{"shape", "colour", "size", "position", "joint"}`` booleans; position needs both row and
        column right, joint needs all four. Everything is False when no object was found.
    """
    spec = parse_caption(spec) if isinstance(spec, str) else spec
    got = result.spec
    if not result.found or got is None:
        return dict.fromkeys(("shape", "colour", "size", "position", "joint"), False)
    marks = {
        "shape": got.shape == spec.shape,
        "colour": got.colour == spec.colour,
        "size": got.size == spec.size,
        "position": (got.row, got.column) == (spec.row, spec.column),
    }
    marks["joint"] = all(marks.values())
    return marks


def accuracy(
    results: Sequence[CheckResult], specs: Sequence[ShapeSpec | str]
) -> dict[str, float]:
    """Per-attribute and joint accuracy of check results against prompted specs (or captions).

    Returns:
        Fractions in [0, 1] under ``"shape"``, ``"colour"``, ``"size"``, ``"position"``, ``"joint"``
        and ``"found"`` (images where an object was found at all).

    Raises:
        ValueError: If the sequences are empty or differ in length.
    """
    if len(results) != len(specs) or not results:
        raise ValueError(f"need equally many results and specs, got {len(results)} and {len(specs)}")
    marks = [score(result, spec) for result, spec in zip(results, specs)]
    totals = {key: sum(mark[key] for mark in marks) / len(marks) for key in marks[0]}
    totals["found"] = sum(result.found for result in results) / len(results)
    return totals


def verdict(image: np.ndarray, prompt: str) -> str:
    """``"✓"`` when the checker reads back every attribute of ``prompt``, else what it read instead.

    Example: ``"✗ colour: blue, position: middle left"`` or ``"✗ no object"``.
    """
    result = check(image)
    marks = score(result, prompt)
    if marks["joint"]:
        return "✓"
    if not result.found or result.spec is None:
        return f"✗ {result.reason}"
    got = result.spec
    read = {"shape": got.shape, "colour": got.colour, "size": got.size, "position": f"{got.row} {got.column}"}
    return "✗ " + ", ".join(f"{k}: {read[k]}" for k in ("shape", "colour", "size", "position") if not marks[k])


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of uint8 (N, H, W, 3) images, edges replicated, rounded to uint8."""
    x = torch.from_numpy(images).float().permute(0, 3, 1, 2)
    radius = int(np.ceil(3 * sigma))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1).float() / sigma) ** 2)
    taps = (taps / taps.sum()).repeat(3, 1, 1, 1)
    x = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (radius, radius, 0, 0), mode="replicate"), taps.view(3, 1, 1, -1), groups=3)
    x = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (0, 0, radius, radius), mode="replicate"), taps.view(3, 1, -1, 1), groups=3)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
