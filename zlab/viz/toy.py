"""Lab 01's 2D toy: points and paths coloured by class, panels with equal axes, and the lab's figures of paths,
trajectories, Euler errors, time shift, logit-normal times and guided samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.colors
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

from zlab import flow, toy
from zlab.toy import NUM_CLASSES
from zlab.viz.curves import moving_average

TOY_COLOURS = plotly.colors.qualitative.Plotly
PATH_COLOURS = {"linear": "#1f77b4", "vp": "#d62728"}  # the straight (rectified-flow) path and the curved VP path
PATH_TITLES = {"linear": "linear: (1−t)·x0 + t·ε", "vp": "VP: cos(πt/2)·x0 + sin(πt/2)·ε"}
# (path, what is measured) -> legend name: the x̂0 read off each path's velocity, or the state x_t itself
ESTIMATE_NAMES = {
    ("linear", "x̂0"): "linear: x̂0 = x_t − t·v",
    ("linear", "x_t"): "linear: x_t itself",
    ("vp", "x̂0"): "VP: x̂0 = α_t·x_t − (2/π)·σ_t·v",
    ("vp", "x_t"): "VP: x_t itself",
}


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


def nearest_class(x: Tensor) -> Tensor:
    """The class whose blob centre is nearest each point of ``x`` (N, 2): the colour of a sample drawn without a
    label."""
    return torch.cdist(x, toy.class_centres()).argmin(dim=1)


def class_points_figure(x: Tensor, labels: Tensor, title: str, grey: Tensor | None = None, grey_name: str = "",
                        size: int = 4, axis_range: Sequence[float] | None = None, width: int = 620,
                        height: int = 520) -> go.Figure:
    """One panel of 2D points ``x`` (N, 2) coloured by class ``labels`` (N,), over an optional grey cloud ``grey``
    (M, 2) named ``grey_name`` (the noise, or the states x_t), with equal axes."""
    fig = go.Figure()
    if grey is not None:
        fig.add_scatter(x=grey[:, 0].numpy(), y=grey[:, 1].numpy(), mode="markers", name=grey_name,
                        marker=dict(color="lightgrey", size=4))
    class_scatter(fig, x, labels, size=size)
    equal_axes(fig)
    fig.update_layout(title=title, width=width, height=height)
    if axis_range is not None:
        fig.update_layout(xaxis_range=list(axis_range), yaxis_range=list(axis_range))
    return fig


def sample_panels_figure(panels: Mapping[str, Tensor], labels: Tensor, size: int = 4, title: str | None = None,
                         axis_range: Sequence[float] | None = None, width: int = 950, height: int = 470,
                         margin: dict | None = None) -> go.Figure:
    """Side by side, one panel per ``{subplot title: samples (N, 2)}``, all coloured by the same class ``labels``
    (N,), with equal axes (e.g. each path's samples at a step count, or one model at several CFG scales)."""
    fig = make_subplots(1, len(panels), subplot_titles=list(panels))
    for col, x in enumerate(panels.values(), start=1):
        class_scatter(fig, x, labels, row=1, col=col, showlegend=col == 1, size=size)
    equal_axes(fig, len(panels))
    if axis_range is not None:
        fig.update_xaxes(range=list(axis_range))
        fig.update_yaxes(range=list(axis_range))
    fig.update_layout(width=width, height=height)
    if margin is not None:
        fig.update_layout(margin=margin)
    if title is not None:
        fig.update_layout(title=title)
    return fig


def pair_paths_figure(paths: Mapping[str, Tensor], one_step: Mapping[str, Tensor], x0: Tensor, eps: Tensor,
                      labels: Tensor) -> go.Figure:
    """One panel per path (``"linear"``, ``"vp"``): each pair's exact path ``paths[path]`` (T, B, 2) from data ``x0``
    (B, 2) to noise ``eps`` (B, 2), coloured by class ``labels`` (B,), and where a single Euler step from the noise
    lands, ``one_step[path]`` (B, 2), marked ×."""
    fig = make_subplots(1, len(paths), subplot_titles=[PATH_TITLES.get(p, p) for p in paths])
    for col, (path, xs) in enumerate(paths.items(), start=1):
        class_lines(fig, xs, labels, row=1, col=col, width=2)
        fig.add_scatter(x=x0[:, 0].numpy(), y=x0[:, 1].numpy(), mode="markers", name="x0 (t=0)",
                        marker=dict(color=[TOY_COLOURS[k] for k in labels.tolist()], size=10),
                        showlegend=col == 1, row=1, col=col)
        fig.add_scatter(x=eps[:, 0].numpy(), y=eps[:, 1].numpy(), mode="markers", name="ε (t=1)",
                        marker=dict(color="grey", size=8, symbol="square"), showlegend=col == 1, row=1, col=col)
        fig.add_scatter(x=one_step[path][:, 0].numpy(), y=one_step[path][:, 1].numpy(), mode="markers",
                        name="one Euler step", marker=dict(color="black", size=9, symbol="x"), showlegend=col == 1,
                        row=1, col=col)
    equal_axes(fig, len(paths))
    fig.update_layout(width=950, height=480, title="Per-pair paths (exact, no network yet)")
    return fig


def training_loss_figure(losses: Mapping[str, Sequence[float]], window: int = 50) -> go.Figure:
    """The moving average (``window`` steps) of each path's training loss ``{path: per-step losses}``, one line per
    path in its colour."""
    fig = go.Figure()
    for path, curve in losses.items():
        steps, smooth = moving_average(curve, window)
        fig.add_scatter(x=steps, y=smooth, mode="lines", name=path, line=dict(color=PATH_COLOURS[path]))
    fig.update_layout(title=f"Training loss (moving average of {window} steps)", xaxis_title="step",
                      yaxis_title="‖v_θ − target‖²", width=700, height=380)
    return fig


def trajectories_figure(panels: Mapping[str, tuple[Tensor, Tensor]], title: str) -> go.Figure:
    """Two panels a row, one per ``{subplot title: (states (T, B, 2), class labels (B,))}``: each trajectory as a
    line and its end point as a dot, coloured by class, with equal axes."""
    rows = (len(panels) + 1) // 2
    fig = make_subplots(rows, 2, subplot_titles=list(panels), vertical_spacing=0.08)
    for i, (xs, labels) in enumerate(panels.values()):
        row, col = divmod(i, 2)
        class_lines(fig, xs, labels, row=row + 1, col=col + 1)
        fig.add_scatter(x=xs[-1, :, 0].numpy(), y=xs[-1, :, 1].numpy(), mode="markers", showlegend=False,
                        marker=dict(color=[TOY_COLOURS[k] for k in labels.tolist()], size=5), row=row + 1,
                        col=col + 1)
    equal_axes(fig, len(panels))
    fig.update_layout(width=900, height=450 * rows, title=title)
    return fig


def euler_error_figure(errors: Mapping[tuple[str, str], Mapping[int, float]], steps: Sequence[int]) -> go.Figure:
    """End-point error against Euler steps on log-log axes, one line per ``{(path, condition): {N: error}}``
    (solid with ``"class label"``, dashed otherwise), beside a 1/N line through the first curve at the largest N."""
    fig = go.Figure()
    for (path, name), err in errors.items():
        fig.add_scatter(x=list(steps), y=[err[n] for n in steps], mode="lines+markers", name=f"{path} · {name}",
                        line=dict(color=PATH_COLOURS[path], dash="solid" if name == "class label" else "dash"))
    ref = next(iter(errors.values()))[steps[-1]] * steps[-1]
    fig.add_scatter(x=list(steps), y=[ref / n for n in steps], mode="lines", name="∝ 1/N",
                    line=dict(color="lightgrey", dash="dot"))
    fig.update_xaxes(type="log", title="Euler steps N", tickvals=list(steps))
    fig.update_yaxes(type="log", title="mean ‖x_N − x_ref‖")
    fig.update_layout(title="Euler end-point error (solid: with class label, dashed: unconditional)", width=800,
                      height=480)
    return fig


def x0_settling_figure(t: Tensor, distances: Mapping[tuple[str, str], Tensor]) -> go.Figure:
    """Mean distance to the final sample against time ``t`` (N,), one line per ``{(path, "x̂0" or "x_t"): (N,)}``:
    solid for the estimate x̂0 read off the velocity, dotted for the state x_t itself."""
    fig = go.Figure()
    for (path, what), dist in distances.items():
        fig.add_scatter(x=t.numpy(), y=dist.numpy(), mode="lines", name=ESTIMATE_NAMES.get((path, what), what),
                        line=dict(color=PATH_COLOURS[path], dash="dot" if what == "x_t" else "solid"))
    fig.update_xaxes(title="t (1 = noise → 0 = data)", autorange="reversed")
    fig.update_yaxes(title="mean distance to the final sample")
    fig.update_layout(title="Distance to the final sample along the way (unconditional sampling)", width=800,
                      height=420)
    return fig


def time_shift_figure(shifts: Mapping[str, float], steps: int = 8) -> go.Figure:
    """Left: ``flow.time_shift`` as a map of t for each ``{name: shift s}`` beside s = 1; right: where ``steps``
    uniform steps land after each shift."""
    t = torch.linspace(0, 1, 201)
    fig = make_subplots(1, 2, subplot_titles=["t' = time_shift(t, s)",
                                              f"where {steps} uniform steps land after the shift"])
    fig.add_scatter(x=t.numpy(), y=t.numpy(), mode="lines", name="s = 1", line=dict(color="grey", dash="dot"),
                    row=1, col=1)
    for j, (name, s) in enumerate(shifts.items()):
        fig.add_scatter(x=t.numpy(), y=flow.time_shift(t, s).numpy(), mode="lines", name=f"{name}: s = {s:.2f}",
                        line=dict(color=TOY_COLOURS[j]), row=1, col=1)
        grid = flow.time_shift(toy.uniform_timesteps(steps), s)
        fig.add_scatter(x=grid.numpy(), y=[name] * len(grid), mode="markers", marker=dict(color=TOY_COLOURS[j], size=9),
                        showlegend=False, row=1, col=2)
    grid = toy.uniform_timesteps(steps)
    fig.add_scatter(x=grid.numpy(), y=["s = 1"] * len(grid), mode="markers", marker=dict(color="grey", size=9),
                    showlegend=False, row=1, col=2)
    fig.update_xaxes(title="t", row=1, col=1)
    fig.update_xaxes(title="t (1 = noise)", row=1, col=2)
    fig.update_layout(width=1000, height=420)
    return fig


def shift_density_figure(shifted: Tensor, t: Tensor, pdf: Tensor, shift: float) -> go.Figure:
    """The histogram of shifted uniform times ``shifted`` (N,) against the density ``pdf`` evaluated at ``t``, titled
    with the shift and the share of times above 0.5."""
    fig = go.Figure()
    fig.add_histogram(x=shifted.numpy(), histnorm="probability density", name="time_shift(u), u ~ U(0,1)",
                      xbins=dict(start=0, end=1, size=0.025), marker_color="lightsteelblue")
    fig.add_scatter(x=t.numpy(), y=pdf.numpy(), mode="lines", name="s / (s − (s−1)t)²", line=dict(color="black"))
    fig.update_layout(title=f"shift s = {shift:.2f}: {float((shifted > 0.5).float().mean()):.0%} of times above 0.5",
                      xaxis_title="t", yaxis_title="density", width=750, height=400)
    return fig


def logit_normal_figure(params: Sequence[tuple[float, float]], samples: Tensor, m: float = 1.0,
                        s: float = 1.0) -> go.Figure:
    """Left: ``flow.logit_normal_pdf`` for each ``(m, s)`` of ``params``; right: the histogram of ``samples`` drawn
    from LogitNormal(``m``, ``s``) against its pdf."""
    t = torch.linspace(0.002, 0.998, 300)
    fig = make_subplots(1, 2, subplot_titles=["logit_normal_pdf for several (m, s)",
                                              f"LADD's t̂ ~ LogitNormal({m:g}, {s:g}): samples vs pdf"])
    for j, (mj, sj) in enumerate(params):
        fig.add_scatter(x=t.numpy(), y=flow.logit_normal_pdf(t, mj, sj).numpy(), mode="lines",
                        name=f"m = {mj:g}, s = {sj:g}", line=dict(color=TOY_COLOURS[j]), row=1, col=1)
    fig.add_histogram(x=samples.numpy(), histnorm="probability density", xbins=dict(start=0, end=1, size=0.025),
                      marker_color="lightsteelblue", name=f"sample_logit_normal(m={m:g}, s={s:g})", row=1, col=2)
    colour = TOY_COLOURS[list(params).index((m, s))] if (m, s) in params else "black"
    fig.add_scatter(x=t.numpy(), y=flow.logit_normal_pdf(t, m, s).numpy(), mode="lines", line=dict(color=colour),
                    showlegend=False, row=1, col=2)
    fig.update_xaxes(title="t")
    fig.update_layout(width=1000, height=420)
    return fig
