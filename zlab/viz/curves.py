"""Training curves and plain-text tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots


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


def loss_panels(curves: Mapping[str, Sequence[float]], window: int | None = None, width: int = 450,
                height: int = 320) -> go.Figure:
    """One panel per ``{title: values}`` training curve: the raw values in grey and their moving average (``window``
    steps, by default a twentieth of the curve) on top, so the trend reads through the noise."""
    fig = make_subplots(1, len(curves), subplot_titles=list(curves))
    for col, values in enumerate(curves.values(), start=1):
        steps, smooth = moving_average(values, window or max(1, len(values) // 20))
        fig.add_trace(go.Scatter(y=list(values), mode="lines", line={"color": "lightgrey"}, showlegend=False), 1, col)
        fig.add_trace(go.Scatter(x=steps, y=smooth, mode="lines", showlegend=False), 1, col)
        fig.update_xaxes(title_text="step", row=1, col=col)
    fig.update_layout(height=height, width=width * len(curves), margin={"t": 40, "b": 10})
    return fig
