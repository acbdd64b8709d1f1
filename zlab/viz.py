"""Plotly figures shared by the notebooks and the app: image grids titled by the Shapes checker.

Data in, figures out: nothing here trains or samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.colors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from zlab.anatomy import KINDS
from zlab.measure.settings import student_steps
from zlab.shapes.metrics import open_verdict
from zlab.toy import NUM_CLASSES


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


# Lab 01's 2D toy: points and paths coloured by class, panels with equal axes.
TOY_COLOURS = plotly.colors.qualitative.Plotly
PATH_COLOURS = {"linear": "#1f77b4", "vp": "#d62728"}  # the straight (rectified-flow) path and the curved VP path


def equal_axes(fig: go.Figure, n: int = 1) -> None:
    """One unit on x is one unit on y in each of the first ``n`` panels: angles and curvature are not distorted."""
    for i in range(1, n + 1):
        fig.layout["yaxis" + ("" if i == 1 else str(i))].update(scaleanchor="x" + ("" if i == 1 else str(i)))


def class_scatter(fig: go.Figure, x, labels, row=None, col=None, size: int = 4, showlegend: bool = True,
                  opacity: float = 0.8) -> None:
    """2D points ``x`` (N, 2), one trace per class of ``labels`` (N,)."""
    for k in range(NUM_CLASSES):
        pts = x[labels == k].numpy()
        fig.add_scatter(x=pts[:, 0], y=pts[:, 1], mode="markers", name=f"class {k}", legendgroup=f"class {k}",
                        marker=dict(color=TOY_COLOURS[k], size=size, opacity=opacity), showlegend=showlegend,
                        row=row, col=col)


def class_lines(fig: go.Figure, xs, labels, row=None, col=None, width: int = 1) -> None:
    """Trajectories ``xs`` (T, B, 2), one trace per class, paths separated by NaN gaps."""
    for k in range(NUM_CLASSES):
        paths = xs[:, labels == k].numpy()
        if paths.shape[1] == 0:
            continue
        pts = np.concatenate([paths, np.full((1, paths.shape[1], 2), np.nan)]).transpose(1, 0, 2).reshape(-1, 2)
        fig.add_scatter(x=pts[:, 0], y=pts[:, 1], mode="lines", line=dict(color=TOY_COLOURS[k], width=width),
                        showlegend=False, row=row, col=col)


def text_table(rows, columns) -> str:
    """A plain-text table: one line per row, columns padded to their widest entry."""
    cells = [[str(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)) for line in [list(columns), *cells])


def moving_average(values, window: int) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, means)``: the mean of each ``window`` consecutive values, placed at the step that ends it (a training
    curve's trend beside its raw, noisy line)."""
    values = np.asarray(values, dtype=float)
    window = max(1, min(int(window), len(values)))
    means = np.convolve(values, np.ones(window) / window, mode="valid")
    return np.arange(window - 1, len(values)), means


def attention_figure(probs, layout, words: Sequence[str], word: int, image: np.ndarray, title: str) -> go.Figure:
    """Lab 02's attention view of one layer and head: the full (query, key) map with the stream's parts marked, the
    image tokens' attention to the caption's tokens, and the image patches' attention to caption token ``word``
    over the picture. ``probs`` (S, S) attention probabilities; ``layout`` the stream's :class:`zlab.anatomy.TokenLayout`."""
    word_map = layout.image_grid(probs[:, layout.caption.start + word, None][None])[0, 0]  # on the (h, w) grid
    fig = make_subplots(1, 3, column_widths=[0.36, 0.3, 0.34], horizontal_spacing=0.08,
                        subplot_titles=["full attention (query rows, key columns)", "image -> caption",
                                        f"image patches -> '{words[word].split(': ')[-1]}'"])
    fig.add_trace(go.Heatmap(z=probs.numpy(), colorscale="Viridis", showscale=False), 1, 1)
    for kind in KINDS[1:]:
        b = getattr(layout, kind).start - 0.5
        fig.add_hline(y=b, line=dict(color="white", width=1), row=1, col=1)
        fig.add_vline(x=b, line=dict(color="white", width=1), row=1, col=1)
    fig.add_trace(go.Heatmap(z=probs[layout.image, layout.caption].numpy(), x=list(words), colorscale="Viridis",
                             showscale=False), 1, 2)
    fig.add_trace(go.Image(z=image, opacity=0.5), 1, 3)
    fig.add_trace(go.Heatmap(z=word_map.numpy(), x0=7.5, dx=16, y0=7.5, dy=16, colorscale="Hot", opacity=0.6,
                             colorbar=dict(len=0.8, x=1.02)), 1, 3)
    for col in (1, 2, 3):
        fig.update_yaxes(autorange="reversed", row=1, col=col)
    fig.update_xaxes(tickangle=-60, row=1, col=2)
    fig.update_layout(height=420, margin=dict(t=50, b=10, l=10, r=10), title=title)
    return fig


def arm_figure(summary: Sequence[dict], references: dict | None, arms: Sequence[str], measures: Sequence[tuple[str, str]],
               title: str) -> go.Figure:
    """Lab 08's arms: each arm's mean and 95% interval across seeds at N = 1, 2, 4 (``summary``: the rows of
    :func:`zlab.recipes.ablate.summary`), one panel per ``(measure, title)``, against the teacher at its recipe
    (dashed) and the renders (dotted) measured on the same prompts and seeds (``references`` of one size)."""
    fig = make_subplots(1, len(measures), subplot_titles=[t for _, t in measures])
    rows = {(r["variant"], r["setting"]): r for r in summary}
    for k, arm in enumerate(arms):
        pts = [rows[(arm, s.label)] for s in student_steps() if (arm, s.label) in rows]
        for col, (m, _) in enumerate(measures, start=1):
            fig.add_trace(go.Scatter(
                x=[n + 0.08 * (k - len(arms) / 2) for n in (1, 2, 4)][:len(pts)], y=[p[m] for p in pts],
                error_y=dict(type="data", symmetric=False, array=[p[f"{m}_high"] - p[m] for p in pts],
                             arrayminus=[p[m] - p[f"{m}_low"] for p in pts]),
                mode="markers+lines", name=arm, legendgroup=arm, showlegend=col == 1,
                marker=dict(color=f"hsl({int(360 * k / max(1, len(arms)))}, 60%, 45%)")), 1, col)
    for col, (m, _) in enumerate(measures, start=1):
        if references:
            fig.add_hline(y=next(iter(references["teacher"].values()))["2+"][m], line_dash="dash", line_color="gray",
                          row=1, col=col, annotation_text="teacher 50", annotation_position="bottom right")
            if m in references["renders"]["2+"]:
                fig.add_hline(y=references["renders"]["2+"][m], line_dash="dot", line_color="gray", row=1, col=col,
                              annotation_text="renders", annotation_position="top right")
    fig.update_xaxes(tickvals=[1, 2, 4], title_text="steps N")
    fig.update_layout(title=title, height=330, width=980, margin=dict(t=70, b=40))
    return fig
