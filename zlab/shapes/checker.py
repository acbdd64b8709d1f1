"""The Shapes checker: reads an image's object back (shape, colour, size, position) and scores it against a caption."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from torch import Tensor

from zlab.shapes.draw import template_coverage
from zlab.shapes.world import (
    BACKGROUND,
    COLOURS,
    COLUMNS,
    HALF_EXTENT,
    PALETTE,
    ROWS,
    SHAPES,
    Attributes,
    ShapeSpec,
    parse_caption,
)

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
    template = template_coverage(shape, box_cy, cx, r, r, *alpha.shape)
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
