"""Drawing the Shapes world: an object's box on the canvas, anti-aliased renders, image/tensor conversion."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from zlab.shapes.world import (
    BACKGROUND,
    COLUMNS,
    EDGE_MARGIN,
    HALF_EXTENT,
    MAX_JITTER,
    PALETTE,
    ROWS,
    ShapeSpec,
    Size,
    canvas_size,
)

SUPERSAMPLE = 4
"""Sub-samples per pixel side used to anti-alias edges (coverage = mean of 4 x 4 point tests)."""

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


def template_coverage(
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
    cover = template_coverage(spec.shape, cy - y0, cx - x0, r, r, y1 - y0, x1 - x0)[..., None]
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


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of uint8 (N, H, W, 3) images, edges replicated, rounded to uint8."""
    x = torch.from_numpy(images).float().permute(0, 3, 1, 2)
    radius = int(np.ceil(3 * sigma))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1).float() / sigma) ** 2)
    taps = (taps / taps.sum()).repeat(3, 1, 1, 1)
    x = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (radius, radius, 0, 0), mode="replicate"), taps.view(3, 1, 1, -1), groups=3)
    x = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (0, 0, radius, radius), mode="replicate"), taps.view(3, 1, -1, 1), groups=3)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
