"""Open captions: Shapes prompts that name some attributes and leave the others to the model.

A real prompt names a few things and leaves the rest open, so the image given the prompt has many
modes. Any of the five attributes may be left out of a Shapes caption::

    a [size] [colour] {shape | "shape"} [position]
    position: "at the {row} {column}" | "in the {row} row" | "in the {column} column" | nothing

``"a shape"``, ``"a red shape"``, ``"a large circle"``, ``"a blue triangle in the top row"``. A caption that
names everything is exactly :attr:`zlab.shapes.world.ShapeSpec.caption`; the empty caption stays the unconditional
prompt of classifier-free guidance and is not an open caption.

The image for an open caption is a spec drawn uniformly from the full specs of a split that agree with every
named attribute (:meth:`OpenSpec.allowed`): in training, held-out colour-shape pairs are never drawn, so
``"a purple shape"`` is a purple circle or square. The marginal of that uniform draw is the distribution
each open attribute should cover (:meth:`OpenSpec.allowed_distribution`).

Example:
    >>> spec = parse_open_caption("a red shape in the top row")
    >>> spec.open
    ('size', 'shape', 'column')
    >>> spec.draw(np.random.default_rng(0)).caption  # doctest: +SKIP
    'a small red square at the top right'
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from zlab.shapes.world import COLOURS, COLUMNS, ROWS, SHAPES, SIZES, ShapeSpec, Split, enumerate_specs

ATTRIBUTES: tuple[str, ...] = ("size", "colour", "shape", "row", "column")
VALUES: dict[str, tuple[str, ...]] = {"size": SIZES, "colour": COLOURS, "shape": SHAPES, "row": ROWS,
                                      "column": COLUMNS}
OPEN_GRAMMAR = (f'a [size] [colour] {{shape | "shape"}} [at the {{row}} {{column}} | in the {{row}} row | '
                f"in the {{column}} column], with size in {'|'.join(SIZES)}, colour in {'|'.join(COLOURS)}, "
                f"shape in {'|'.join(SHAPES)}, row in {'|'.join(ROWS)}, column in {'|'.join(COLUMNS)}")
_OPEN_RE = re.compile(
    rf"a(?: ({'|'.join(SIZES)}))?(?: ({'|'.join(COLOURS)}))? ({'|'.join(SHAPES)}|shape)"
    rf"(?: at the ({'|'.join(ROWS)}) ({'|'.join(COLUMNS)})| in the ({'|'.join(ROWS)}) row"
    rf"| in the ({'|'.join(COLUMNS)}) column)?"
)


@dataclass(frozen=True)
class OpenSpec:
    """What an open caption names: each attribute a value of the world, or None where the caption leaves it open.

    Raises:
        ValueError: If a named attribute is outside the world's vocabulary.
    """

    size: str | None = None
    colour: str | None = None
    shape: str | None = None
    row: str | None = None
    column: str | None = None

    def __post_init__(self) -> None:
        for name in ATTRIBUTES:
            value = getattr(self, name)
            if value is not None and value not in VALUES[name]:
                raise ValueError(f"{name} must be None (open) or one of {VALUES[name]}, got {value!r}")

    @classmethod
    def from_spec(cls, spec: ShapeSpec, open_attributes: tuple[str, ...] = ()) -> OpenSpec:
        """``spec`` with ``open_attributes`` left open."""
        unknown = set(open_attributes) - set(ATTRIBUTES)
        if unknown:
            raise ValueError(f"open attributes must be among {ATTRIBUTES}, got {sorted(unknown)}")
        return cls(**{name: None if name in open_attributes else getattr(spec, name) for name in ATTRIBUTES})

    @property
    def open(self) -> tuple[str, ...]:
        """The attributes the caption leaves open, in :data:`ATTRIBUTES` order."""
        return tuple(name for name in ATTRIBUTES if getattr(self, name) is None)

    @property
    def named(self) -> dict[str, str]:
        """The attributes the caption names, with their values."""
        return {name: getattr(self, name) for name in ATTRIBUTES if getattr(self, name) is not None}

    @property
    def caption(self) -> str:
        """The caption in the open grammar; with nothing open, exactly ``ShapeSpec.caption``."""
        words = ["a", *(w for w in (self.size, self.colour) if w), self.shape or "shape"]
        if self.row and self.column:
            words.append(f"at the {self.row} {self.column}")
        elif self.row:
            words.append(f"in the {self.row} row")
        elif self.column:
            words.append(f"in the {self.column} column")
        return " ".join(words)

    def allowed(self, split: Split = "train") -> list[ShapeSpec]:
        """The full specs of ``split`` that agree with every named attribute (the modes of the caption)."""
        named = self.named
        return [spec for spec in enumerate_specs(split) if all(getattr(spec, k) == v for k, v in named.items())]

    def draw(self, rng: np.random.Generator, split: Split = "train") -> ShapeSpec:
        """One spec drawn uniformly from :meth:`allowed`.

        Raises:
            ValueError: If ``split`` allows no spec with the named attributes (a held-out pair in training).
        """
        allowed = self.allowed(split)
        if not allowed:
            raise ValueError(f"{self.caption!r} names nothing the {split!r} split renders "
                             "(a held-out colour-shape pair is never drawn in training)")
        return allowed[int(rng.integers(len(allowed)))]

    def allowed_distribution(self, attribute: str, split: Split = "train") -> dict[str, float]:
        """The probability of each value of ``attribute`` under :meth:`draw` (what coverage is measured against)."""
        if attribute not in ATTRIBUTES:
            raise ValueError(f"attribute must be one of {ATTRIBUTES}, got {attribute!r}")
        counts = Counter(getattr(spec, attribute) for spec in self.allowed(split))
        total = sum(counts.values())
        return {value: counts[value] / total for value in VALUES[attribute] if counts[value]}


ANY = "any"
"""What a prompt builder offers for an attribute the caption leaves open."""


def build_caption(size: str = ANY, colour: str = ANY, shape: str = ANY, row: str = ANY, column: str = ANY) -> str:
    """The caption a builder writes from its five choices, :data:`ANY` leaving an attribute open:
    ``build_caption("large", "red", "any", "top", "any") == "a large red shape in the top row"``."""
    choices = dict(size=size, colour=colour, shape=shape, row=row, column=column)
    return OpenSpec(**{k: None if v == ANY else v for k, v in choices.items()}).caption


def parse_open_caption(caption: str) -> OpenSpec:
    """Reads an open caption back into an :class:`OpenSpec` (the inverse of :attr:`OpenSpec.caption`).

    Raises:
        ValueError: If the caption does not follow :data:`OPEN_GRAMMAR`; the message states the grammar.
    """
    if caption == "":
        raise ValueError("the empty caption is the unconditional prompt (CFG), not an open caption")
    match = _OPEN_RE.fullmatch(caption) if isinstance(caption, str) else None
    if match is None:
        raise ValueError(f"not a Shapes caption: {caption!r}; expected {OPEN_GRAMMAR}")
    size, colour, shape, row, column, row_only, column_only = match.groups()
    return OpenSpec(size=size, colour=colour, shape=None if shape == "shape" else shape,
                    row=row or row_only, column=column or column_only)


def enumerate_open_specs(split: Split = "train") -> list[OpenSpec]:
    """Every open spec (each attribute a value or open) that ``split`` can render, in a fixed order."""
    choices = [(*VALUES[name], None) for name in ATTRIBUTES]
    specs = (OpenSpec(*combo) for combo in itertools.product(*choices))
    return [spec for spec in specs if spec.allowed(split)]

