"""Lab 05's views of LADD: the toy's clouds of one-step samples, where the noise goes, and a training run's log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.colors
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from zlab import flow, toy
from zlab.distill.schedule import STUDENT_TIMESTEPS
from zlab.toy_distill import off_mode_share
from zlab.viz.curves import moving_average


def toy_clouds_figure(clouds: Mapping[str, torch.Tensor], shown: int = 1500) -> go.Figure:
    """One panel per ``{name: points (N, 2)}`` cloud of the unlabelled toy (its first ``shown`` points), each blob's
    2-std disc drawn in grey (inside it counts as on a mode) and the share off every blob in the panel's title."""
    titles = [f"{k}<br>off: {off_mode_share(v):.2f}" for k, v in clouds.items()]
    fig = make_subplots(1, len(clouds), subplot_titles=titles, horizontal_spacing=0.02)
    theta = np.linspace(0, 2 * np.pi, 60)
    for col, x in enumerate(clouds.values(), start=1):
        fig.add_trace(go.Scattergl(x=x[:shown, 0], y=x[:shown, 1], mode="markers",
                                   marker=dict(size=2, color="royalblue"), showlegend=False), 1, col)
        for cx, cy in toy.class_centres().tolist():
            fig.add_trace(go.Scatter(x=cx + 2 * toy.BLOB_STD * np.cos(theta), y=cy + 2 * toy.BLOB_STD * np.sin(theta),
                                     mode="lines", line=dict(color="grey", width=1), showlegend=False), 1, col)
        fig.update_xaxes(range=[-4.5, 4.5], visible=False, row=1, col=col)
        fig.update_yaxes(range=[-4.5, 4.5], visible=False, scaleanchor=f"x{col if col > 1 else ''}", row=1, col=col)
    fig.update_layout(height=300, width=1300, margin=dict(t=60, b=0, l=0, r=0), font=dict(size=10))
    return fig


def noise_levels_figure(probs: np.ndarray, warmup_steps: int, t_hat_draws: torch.Tensor, t_hat_m: float,
                        ms: Sequence[float] = (-1.0, 0.0, 1.0, 2.0)) -> go.Figure:
    """Where LADD's noise goes: left, the student-time probabilities ``probs`` (steps, 4) of
    :data:`STUDENT_TIMESTEPS` stacked over training steps; right, the logit-normal densities of
    :math:`\\hat t` for each mean in ``ms`` (s = 1; the config's ``t_hat_m`` drawn thick) over a histogram of
    ``t_hat_draws`` sampled at ``t_hat_m``."""
    fig = make_subplots(1, 2, subplot_titles=[f"student time probabilities (warm-up: {warmup_steps} steps)",
                                              "discriminator noise t̂ ~ LogitNormal(m, s)"])
    steps = np.arange(len(probs))
    for j, t in enumerate(STUDENT_TIMESTEPS):
        fig.add_trace(go.Scatter(x=steps, y=probs[:, j], stackgroup="p", name=f"t = {t}"), 1, 1)
    grid = torch.linspace(0.005, 0.995, 199)
    for m in ms:
        fig.add_trace(go.Scatter(x=grid, y=flow.logit_normal_pdf(grid, m, 1.0), name=f"m = {m:g}, s = 1",
                                 line=dict(width=4 if m == t_hat_m else 1.5)), 1, 2)
    fig.add_trace(go.Histogram(x=t_hat_draws, histnorm="probability density", nbinsx=50, opacity=0.3,
                               name=f"{len(t_hat_draws) // 1000}k draws, m = {t_hat_m:g}"), 1, 2)
    fig.update_xaxes(title_text="training step", row=1, col=1)
    fig.update_xaxes(title_text="t̂", row=1, col=2)
    fig.update_layout(height=360, width=1050, margin=dict(t=40, b=10))
    return fig


def training_log_figure(log: Mapping[str, Sequence], blocks: Sequence[int], window: int | None = None) -> go.Figure:
    """A LADD run's log (the trainer's third return value): the heads' hinge D loss and the student's whole loss, L_adv
    plus the recipe's regression term where it has one (raw in grey,
    moving average of ``window`` steps on top, by default a fifteenth of the run), and each head's two calls
    (``log["head_calls"]`` (steps, heads, 2): real called real solid, fake called fake dotted), one colour per head
    on the tapped ``blocks``."""
    window = window or max(1, len(log["d_loss"]) // 15)
    fig = make_subplots(1, 3, subplot_titles=["heads: hinge D loss", "student: L_adv (+ regression term)",
                                              "heads: real called real (solid), fake called fake (dotted)"])
    for col, key in ((1, "d_loss"), (2, "g_loss")):
        fig.add_trace(go.Scatter(y=log[key], mode="lines", line=dict(color="lightgrey"), showlegend=False), 1, col)
        steps, smooth = moving_average(log[key], window)
        fig.add_trace(go.Scatter(x=steps, y=smooth, mode="lines", showlegend=False), 1, col)
    calls = np.array(log["head_calls"])
    colours = plotly.colors.qualitative.Plotly  # one colour per head, its two curves alike
    for h, block in enumerate(blocks):
        for side, dash in ((0, "solid"), (1, "dot")):
            steps, smooth = moving_average(calls[:, h, side], window)
            fig.add_trace(go.Scatter(x=steps, y=smooth, mode="lines",
                                     line=dict(color=colours[h % len(colours)], dash=dash),
                                     name=f"head on block {block}", showlegend=side == 0), 1, 3)
    fig.update_xaxes(title_text="step")
    fig.update_layout(height=330, width=1050, margin=dict(t=40, b=10))
    return fig
