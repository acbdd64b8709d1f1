"""Lab 03's figures of the teacher: its training recipe, its frozen text encoder, guidance and step sweeps.

Data in, figures out: nothing here trains or samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from zlab.sampling import cfg_active, guidance_scale_to_s, s_to_guidance_scale
from zlab.viz.images import image_grid, mark


def recipe_figure(t_raw, t_shifted, shift: float, sampler_ts, steps, lr: Sequence[float],
                  decay: Sequence[float]) -> go.Figure:
    """The teacher's recipe in three panels: the density of training times ``t_raw`` (logit-normal) and ``t_shifted``
    (after the time shift ``shift``) with the sampler's times ``sampler_ts`` as dots; the learning rate ``lr`` and the
    EMA decay ``decay`` at each of ``steps``."""
    fig = make_subplots(1, 3, subplot_titles=["training times t", "learning rate", "EMA decay per step"])
    for t, name in ((t_raw, "σ(m + s z)"), (t_shifted, f"shifted by {shift:.2f}")):
        density, edges = np.histogram(np.asarray(t), bins=80, range=(0, 1), density=True)
        fig.add_trace(go.Scatter(x=(edges[1:] + edges[:-1]) / 2, y=density, mode="lines", line_shape="hvh",
                                 fill="tozeroy", name=name), 1, 1)
    sampler_ts = np.asarray(sampler_ts)
    fig.add_trace(go.Scatter(x=sampler_ts, y=np.zeros(len(sampler_ts)), mode="markers",
                             name=f"{len(sampler_ts)} sampler times", marker=dict(size=5, color="black")), 1, 1)
    fig.add_trace(go.Scatter(x=steps, y=lr, mode="lines", showlegend=False), 1, 2)
    fig.add_trace(go.Scatter(x=steps, y=decay, mode="lines", showlegend=False), 1, 3)
    fig.update_layout(height=340, width=1000, legend=dict(orientation="h", y=-0.2), margin=dict(t=40, b=10))
    fig.update_xaxes(title_text="t (0 = clean, 1 = noise)", row=1, col=1)
    fig.update_xaxes(title_text="step", row=1, col=2)
    fig.update_xaxes(title_text="step", row=1, col=3)
    fig.update_yaxes(range=[0.9, 1.0], row=1, col=3)
    return fig


def token_gap_figure(base_embeds: torch.Tensor, tokens: Sequence[str], variants: Mapping[str, torch.Tensor],
                     base_prompt: str) -> go.Figure:
    """Per token, the L2 distance between each variant caption's text encoding (``{legend name: (tokens, dim)}``) and
    the base caption's ``base_embeds``; ``tokens`` label the x axis."""
    fig = go.Figure()
    for name, embeds in variants.items():
        gap = (embeds - base_embeds).norm(dim=-1)
        fig.add_trace(go.Scatter(x=list(range(len(gap))), y=gap.numpy(), mode="lines+markers", name=name))
    fig.update_xaxes(tickvals=list(range(len(tokens))), ticktext=list(tokens), tickangle=-45)
    fig.update_layout(title=f"‖h(variant) − h(base)‖ per token, base = {base_prompt!r}", yaxis_title="L2 distance",
                      height=380, width=900, margin=dict(t=40, b=10))
    return fig


def caption_similarity_figure(pooled: torch.Tensor, shown: Sequence[int], labels: Sequence[str]) -> go.Figure:
    """Cosine similarity between the pooled caption encodings of rows ``shown`` of ``pooled`` (all captions, (N, dim)),
    labelled ``labels``: left raw, right after subtracting the mean over all N captions."""
    fig = make_subplots(1, 2, subplot_titles=["cosine, pooled encodings", "cosine, after removing the mean caption"],
                        horizontal_spacing=0.02)
    for col, vecs in ((1, pooled), (2, pooled - pooled.mean(0))):
        v = torch.nn.functional.normalize(vecs[list(shown)], dim=-1)
        sim = (v @ v.T).numpy()
        fig.add_trace(go.Heatmap(z=sim, x=list(labels), y=list(labels), zmin=-1, zmax=1, colorscale="RdBu",
                                 reversescale=True, texttemplate="%{z:.2f}", showscale=col == 2), 1, col)
    fig.update_yaxes(autorange="reversed")
    fig.update_yaxes(showticklabels=False, row=1, col=2)
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(height=460, width=1100, margin=dict(t=40, b=10, l=10))
    return fig


def guidance_sweep_figure(s_values: Sequence[float], rows: Sequence[dict], s0: float,
                          card_sweep: Mapping[str, dict] | None = None) -> go.Figure:
    """Accuracy per attribute (``acc_*``) and FD of each row of a guidance sweep against the lab scale ``s_values``,
    the shipped ``s0`` dotted; ``card_sweep`` (the model card's ``{g: {"score": ...}}``) adds its scores as diamonds."""
    ticks = [f"s={s:g}<br>g={s_to_guidance_scale(s):g}" for s in s_values]
    fig = make_subplots(1, 2, subplot_titles=["accuracy vs guidance", "FD vs guidance (lower is better)"])
    for key in ("joint", "shape", "colour", "size", "position"):
        fig.add_trace(go.Scatter(x=s_values, y=[r[f"acc_{key}"] for r in rows], mode="lines+markers", name=key,
                                 line=dict(width=4 if key == "joint" else 1.5)), 1, 1)
    fig.add_trace(go.Scatter(x=s_values, y=[r["fd"] for r in rows], mode="lines+markers", name="FD",
                             line=dict(color="black")), 1, 2)
    if card_sweep:  # how make-teacher chose g: validity, named accuracy and coverage on validation prompts
        fig.add_trace(go.Scatter(x=[guidance_scale_to_s(float(g)) for g in card_sweep],
                                 y=[v["score"] for v in card_sweep.values()], mode="markers",
                                 marker=dict(symbol="diamond", size=11, color="grey"),
                                 name="model card's choice score (validation, 50 steps)"), 1, 1)
    for col in (1, 2):
        fig.update_xaxes(tickvals=s_values, ticktext=ticks, row=1, col=col)
        fig.add_vline(x=s0, line=dict(dash="dot", color="grey"), row=1, col=col)
    fig.update_yaxes(range=[0, 1.02], row=1, col=1)
    fig.update_layout(height=380, width=1000, margin=dict(t=40, b=10), title=f"dotted: the shipped setting s = {s0:g}")
    return fig


def truncation_figure(ts, truncations: Sequence[float], s: float) -> go.Figure:
    """Which of the sampler's lab times ``ts`` are guided (red, two evaluations) at scale ``s``, one row per CFG
    truncation in ``truncations`` (:func:`zlab.sampling.cfg_active`)."""
    ts = np.asarray(ts)
    fig = go.Figure()
    for k, tau in enumerate(truncations):
        guided = [cfg_active(float(t), s, tau) for t in ts]
        fig.add_trace(go.Scatter(x=ts, y=[f"τ = {tau:g}"] * len(ts), mode="markers", showlegend=k == 0,
                                 name="guided (2 NFE)",
                                 marker=dict(size=9, color=["crimson" if gd else "lightgrey" for gd in guided])))
    fig.update_xaxes(autorange="reversed", title_text="lab time t of each step (sampling runs from t = 1, left, to t = 0)")
    fig.update_layout(height=120 + 40 * len(truncations), width=900, margin=dict(t=30, b=10),
                      title=f"guided steps (red) of a {len(ts)}-step schedule at s = {s:g}", showlegend=False)
    return fig


def nfe_sweep_figure(rows: Sequence[dict]) -> go.Figure:
    """Validity, named accuracy and coverage (each with its standard error, ``*_se``) against the NFE per image, for
    fully named prompts (group ``"0"``, grey) and prompts with 2+ open attributes (red), with CFG (solid) and without
    (dotted); ``rows``: :func:`zlab.measure.evaluate.evaluate_open`'s."""
    fig = make_subplots(1, 3, subplot_titles=["validity", "named accuracy", "coverage of open attributes"])
    for cfg_on, dash in ((True, "solid"), (False, "dot")):
        for group, colour in (("0", "grey"), ("2+", "crimson")):
            part = [r for r in rows if r["group"] == group and ("+ CFG" in r["setting"]) == cfg_on]
            for col, key in ((1, "valid"), (2, "named_accuracy"), (3, "coverage_entropy")):
                fig.add_trace(go.Scatter(x=[r["nfe"] for r in part], y=[r[key] for r in part], mode="lines+markers",
                                         error_y=dict(array=[r[f"{key}_se"] for r in part]),
                                         line=dict(color=colour, dash=dash), showlegend=col == 1,
                                         name=f"{group} open, {'with CFG' if cfg_on else 'no CFG'}"), 1, col)
    fig.update_xaxes(type="log", title_text="NFE per image (log)")
    fig.update_yaxes(range=[0, 1.05])
    fig.update_layout(height=400, width=1150, margin=dict(t=40, b=10),
                      title="grey: fully named prompts; red: prompts with 2 or more open attributes; dotted: no CFG")
    return fig


def settings_grid(images: Mapping[str, Sequence[np.ndarray]], prompts: Sequence[str], n_show: int,
                  title: str) -> go.Figure:
    """One row per setting of ``images`` (``{setting: images, one per prompt}``), its first ``n_show`` images as
    columns, each titled by the checker's verdict on its prompt."""
    strip = [images[name][i] for name in images for i in range(n_show)]
    return image_grid(strip, [mark(im, prompts[i % n_show]) for i, im in enumerate(strip)], cols=n_show,
                      row_labels=list(images), title=title)
