"""Image grids titled by the Shapes checker, and the conversions that feed them.

Data in, figures out: nothing here trains or samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from zlab.shapes.metrics import open_verdict


def image_grid(images: Sequence[np.ndarray], titles: Sequence[str], cols: int, row_labels: Sequence[str] | None = None,
               cell: int = 130, title: str | None = None) -> go.Figure:
    """Images (H, W, 3 uint8) as a grid of ``go.Image`` panels; titles may hold ``<br>`` (up to 3 lines)."""
    rows = -(-len(images) // cols)
    gap, top = 48, 70 if title and "<br>" in title else 55   # pixels: room for 3 title lines between rows
    plot_h = rows * cell + (rows - 1) * gap
    fig = make_subplots(rows, cols, subplot_titles=list(titles), horizontal_spacing=0.02,
                        vertical_spacing=gap / plot_h if rows > 1 else 0.0)
    for i, image in enumerate(images):
        fig.add_trace(go.Image(z=image, hoverinfo="skip"), i // cols + 1, i % cols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    for r, label in enumerate(row_labels or []):
        fig.update_yaxes(title_text=label, title_font_size=11, row=r + 1, col=1)
    fig.update_annotations(font_size=10)
    left = 160 if row_labels else 10
    fig.update_layout(width=left + cols * (cell + 10), height=plot_h + top + gap + 10, title=title,
                      title_font_size=13, margin=dict(l=left, r=10, t=top + gap, b=10))
    return fig


def mark(image: np.ndarray, prompt: str, prefix: str = "") -> str:
    """The checker's verdict as a panel title (open prompts too, :func:`zlab.shapes.metrics.open_verdict`): ``✓``
    (with what the open attributes read), or ``✗`` with at most two wrong attributes, one per line."""
    v = open_verdict(image, prompt)
    if not v.startswith("✗ ") or ":" not in v:
        return prefix + v
    wrong = v[2:].split(", ")
    return prefix + "✗ " + "<br>".join(wrong[:2] + ([f"+{len(wrong) - 2} more"] if len(wrong) > 2 else []))


def two_lines(prompt: str) -> str:
    """``"a large red circle at the top left"`` -> ``"a large red circle<br>at the top left"`` (and ``" in the "``)."""
    return prompt.replace(" at the ", "<br>at the ").replace(" in the ", "<br>in the ")


def enlarge(image, scale: int):
    """Nearest-neighbour upscaling of an (h, w, C) image (torch or numpy): one block of pixels per token."""
    return image.repeat_interleave(scale, 0).repeat_interleave(scale, 1) if hasattr(image, "repeat_interleave") \
        else np.repeat(np.repeat(image, scale, 0), scale, 1)


def to_uint8(images) -> np.ndarray:
    """Images in [0, 1] (torch or numpy, (..., H, W, 3)) as uint8 for ``go.Image``."""
    array = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    return (np.clip(array, 0, 1) * 255).round().astype(np.uint8)
