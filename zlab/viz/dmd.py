"""The app's distribution-matching view: what DMD compares for one student sample at one noise level ``tau``.

The decoded estimates side by side (the student's sample, its re-noised input, the teacher's guided and the fake
score's clean estimates), the two directions the student is pushed along as per-position heatmaps, and their
strengths. Data in, figures out: nothing here trains or samples (the view comes from
:func:`zlab.measure.dmd_view.dmd_view`).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

from zlab.measure.dmd_view import DMDView
from zlab.viz.images import enlarge, to_uint8

# the decoded panels, in stack_estimates' order; the two directions of DMD's gradient
# (zlab.distill.dmd.dmd_directions): the view's field -> (name, difference)
ESTIMATES = ("student sample (clean)", "noisy input at τ", "teacher's guided estimate of x0",
             "fake score's estimate of x0")
DIRECTIONS = {"dm": ("distribution matching", "x0_c − x0_fake"),
              "ca": ("CFG augmentation", "(s − 1)(x0_c − x0_u)")}


def estimate_panels(decoded: Tensor, scale: int = 4) -> list[np.ndarray]:
    """Decoded images (N, H, W, 3) in [0, 1] (e.g. the student's sample, the noisy input, the teacher's guided and
    the fake score's estimate) as uint8 panels enlarged ``scale`` times, nearest neighbour: every pixel stays
    visible."""
    return [to_uint8(enlarge(image, scale)) for image in decoded]


def direction_norm(direction: Tensor) -> np.ndarray:
    """The first sample's direction (B, C, H, W) as an (H, W) map: its norm over channels at each latent position,
    where the term pushes the student and how hard."""
    return direction[0].float().norm(dim=0).cpu().numpy()


def directions_figure(view: DMDView) -> go.Figure:
    """The DM and CA directions of ``view`` as per-position norm heatmaps on one colour scale (so their sizes
    compare), each titled with its strength (:meth:`DMDView.strengths`)."""
    norms = {key: direction_norm(getattr(view, key)) for key in DIRECTIONS}
    strengths = view.strengths()
    top = max(float(norm.max()) for norm in norms.values()) or 1.0  # all-zero directions: a flat map, not NaN
    fig = make_subplots(1, 2, horizontal_spacing=0.08, subplot_titles=[
        f"{name}: ‖{formula}‖ (strength {strengths[name]:.3g})" for name, formula in DIRECTIONS.values()])
    for col, norm in enumerate(norms.values(), start=1):
        fig.add_trace(go.Heatmap(z=norm[::-1], zmin=0, zmax=top, colorscale="Viridis", showscale=col == 2,
                                 colorbar=dict(title="norm")), 1, col)  # flipped: latent row 0 at the top
        fig.update_yaxes(scaleanchor=f"x{col if col > 1 else ''}", row=1, col=col)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=12)
    fig.update_layout(height=360, margin=dict(t=60, b=10), plot_bgcolor="white",
                      title=f"where each direction pushes the student at τ = {view.tau:.2f} (norm over channels)")
    return fig


def strengths_table(view: DMDView) -> str:
    """Markdown table of the two directions' strengths (mean per-sample RMS, :meth:`DMDView.strengths`) at
    ``view.tau``."""
    strengths = view.strengths()
    rows = [f"| {name} | {formula} | {strengths[name]:.4g} |" for name, formula in DIRECTIONS.values()]
    return f"| direction (τ = {view.tau:.2f}) | difference | strength (RMS) |\n|---|---|---|\n" + "\n".join(rows)


def stack_estimates(x0_hat: Tensor, view: DMDView) -> Tensor:
    """The first sample's latents to decode in one VAE call, in :data:`ESTIMATES` order: the student's sample, the
    noisy input, the teacher's guided estimate, the fake score's estimate."""
    return torch.cat([x[:1].float() for x in (x0_hat, view.noisy, view.teacher_guided, view.fake)])


def trade_off_figure(rows, teacher_sweep=None, teacher=None, renders=None) -> go.Figure:
    """Validity against coverage (2+ open prompts) at one step: one point per variant of a search (``rows`` of
    :func:`zlab.recipes.ablate.summary` with ``valid`` and ``coverage_entropy`` and their 95% intervals across
    seeds, drawn as error bars), the teacher at each guidance scale of ``teacher_sweep`` (``{g: {"valid", "coverage_entropy"}}``,
    joined by a line), the teacher at its ``sampling.json`` and the renders (``{"valid", "coverage_entropy"}``)."""
    fig = go.Figure()
    for row in rows:
        bar = lambda m: dict(type="data", symmetric=False, array=[row[f"{m}_high"] - row[m]],
                             arrayminus=[row[m] - row[f"{m}_low"]]) if np.isfinite(row[f"{m}_low"]) else None
        fig.add_trace(go.Scatter(x=[row["coverage_entropy"]], y=[row["valid"]], mode="markers", name=row["variant"],
                                 error_x=bar("coverage_entropy"), error_y=bar("valid"), marker=dict(size=11)))
    if teacher_sweep:
        gs = sorted(teacher_sweep, key=float)
        fig.add_trace(go.Scatter(x=[teacher_sweep[g]["coverage_entropy"] for g in gs], y=[teacher_sweep[g]["valid"] for g in gs],
                                 mode="lines+markers+text", text=[f"s = {float(g) + 1:g}" for g in gs], textposition="top center",
                                 name="teacher, 50 steps, by guidance", line=dict(color="gray", dash="dot")))
    for name, point, symbol in (("teacher (sampling.json)", teacher, "star"), ("renders", renders, "diamond")):
        if point:
            fig.add_trace(go.Scatter(x=[point["coverage_entropy"]], y=[point["valid"]], mode="markers", name=name,
                                     marker=dict(symbol=symbol, size=14, color="black")))
    fig.update_layout(height=440, xaxis_title="coverage (normalised entropy of the open attributes)",
                      yaxis_title="validity", plot_bgcolor="white",
                      title="one step, 2+ open prompts: validity against coverage (bars: 95% interval across seeds)")
    fig.update_xaxes(gridcolor="#eee")
    fig.update_yaxes(gridcolor="#eee")
    return fig
