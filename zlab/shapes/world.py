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
    >>> from zlab.shapes.checker import check
    >>> from zlab.shapes.draw import render
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
from dataclasses import dataclass
from typing import Literal, TypedDict

import numpy as np

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
