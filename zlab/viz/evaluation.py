"""Measured settings as figures: quality against cost, means with their standard errors or intervals across steps,
against the teacher and the renders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from zlab.measure.settings import Setting, parse, student_steps


def arm_figure(summary: Sequence[dict], references: dict | None, arms: Sequence[str],
               measures: Sequence[tuple[str, str]], title: str) -> go.Figure:
    """Lab 07's arms: each arm's mean and 95% interval across seeds at N = 1, 2, 4 (``summary``: the rows of
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


FAMILY_COLOURS = {"teacher + CFG": "crimson", "teacher, no CFG": "royalblue", "LADD start": "grey",
                  "student": "seagreen"}


def family(label: str) -> str:
    """The curve a comparison row belongs to (a key of :data:`FAMILY_COLOURS`), from its setting's label."""
    setting = parse(label)
    if setting.who == "teacher":
        return "teacher + CFG" if setting.cfg else "teacher, no CFG"
    return "LADD start" if setting.who.startswith("LADD start") else "student"


def family_cost_figure(rows: Sequence[dict], prompts: str = "train prompts") -> go.Figure:
    """Lab 06's quality against cost: joint accuracy (on ``prompts``, with 1-SE error bars where the rows hold
    ``acc_joint_se``), FD to renders and batch-1 latency against NFE (log axes), one curve per :func:`family` of the
    rows of :func:`zlab.recipes.compare.comparison`."""
    fig = make_subplots(1, 3, subplot_titles=[f"joint accuracy ({prompts})", "FD to renders (lower is better)",
                                              "ms per image, batch 1"])
    for fam, colour in FAMILY_COLOURS.items():
        members = sorted((r for r in rows if family(r["setting"]) == fam), key=lambda r: r["nfe"])
        for col, key in ((1, "acc_joint"), (2, "fd"), (3, "latency_ms")):
            bars = [r.get(f"{key}_se", np.nan) for r in members]
            fig.add_trace(go.Scatter(x=[r["nfe"] for r in members], y=[r[key] for r in members], mode="lines+markers",
                                     error_y=dict(array=bars) if np.isfinite(bars).any() else None,
                                     name=fam, legendgroup=fam, showlegend=col == 1, line=dict(color=colour),
                                     hovertext=[r["setting"] for r in members]), 1, col)
    fig.update_xaxes(type="log", title_text="NFE per image")
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(height=380, width=1100, margin=dict(t=40, b=10))
    return fig


BASELINE_FAMILIES = {"teacher + CFG": ("teacher", True, "crimson"), "teacher, no CFG": ("teacher", False, "royalblue"),
                     "regression student": ("regression student", None, "darkorange"),
                     "LADD student": ("LADD student", None, "seagreen"), "DMD student": ("DMD student", None, "purple")}


def baseline_curves_figure(rows: Sequence[dict], group: str = "2+") -> go.Figure:
    """Lab 06's baselines: validity, coverage and FD to the teacher against NFE on the prompts of ``group``, one line
    per family of :data:`BASELINE_FAMILIES` with 1-SE error bars (none on FD, one measurement), the teacher at 50
    steps + CFG dotted; ``rows``: :func:`zlab.measure.baselines.shipped_rows`."""
    cell = {(r["setting"], r["group"]): r for r in rows}
    fig = make_subplots(1, 3, subplot_titles=["validity", "coverage (normalised entropy)",
                                              "FD to the teacher (lower is better)"])
    for fam, (who, how, colour) in BASELINE_FAMILIES.items():
        members = [cell[k] for n in (1, 2, 4) if (k := (Setting(who, n, cfg=how).label, group)) in cell]
        for col, key in ((1, "valid"), (2, "coverage_entropy"), (3, "fd_teacher")):
            fig.add_trace(go.Scatter(x=[r["nfe"] for r in members], y=[r.get(key, np.nan) for r in members],
                                     error_y=dict(array=[r.get(f"{key}_se", 0.0) for r in members])
                                     if key != "fd_teacher" else None,
                                     mode="lines+markers", name=fam, legendgroup=fam, showlegend=col == 1,
                                     line=dict(color=colour)), 1, col)
    top = cell.get((Setting("teacher", 50, cfg=True).label, group))
    if top:
        for col, key in ((1, "valid"), (2, "coverage_entropy"), (3, "fd_teacher")):
            fig.add_hline(y=top[key], line_dash="dot", line_color="black", row=1, col=col)
    fig.update_xaxes(type="log", title_text="NFE per image")
    fig.update_layout(height=360, width=1100, margin=dict(t=40, b=10),
                      title=f"{group} open attributes, test set (dotted: the teacher, 50 steps + CFG)")
    return fig


def recipe_search_figure(runs: Mapping[str, dict], shown: Mapping[str, tuple[str, str]],
                         scores: Mapping[str, float]) -> go.Figure:
    """Lab 06's recipe search: 2+ open validity and coverage and fully named accuracy at N = 1, 2, 4 with 1-SE error
    bars, one line per ``{variant: run}`` of the search record, labelled and coloured by ``shown[variant]`` with its
    ``scores[variant]`` (dashed: a run at 2000 steps, twice the budget)."""
    fig = make_subplots(1, 3, subplot_titles=["2+ open: validity", "2+ open: coverage", "fully named: named accuracy"])
    for variant, run in runs.items():
        label, colour = shown[variant]
        line = dict(color=colour, dash="dash" if "2000 steps" in variant else "solid")
        for col, (group, key) in enumerate((("2+", "valid"), ("2+", "coverage_entropy"), ("0", "named_accuracy")), 1):
            cells = [run["metrics"][s.label][group] for s in student_steps()]
            fig.add_trace(go.Scatter(x=[1, 2, 4], y=[c[key] for c in cells],
                                     error_y=dict(array=[c[f"{key}_se"] for c in cells]), mode="lines+markers",
                                     name=f"{label} (score {scores[variant]:.3f})", legendgroup=label,
                                     showlegend=col == 1, line=line), 1, col)
    fig.update_xaxes(type="log", tickvals=[1, 2, 4], title_text="student steps N")
    fig.update_layout(height=420, width=1100, margin=dict(t=40, b=10), legend=dict(orientation="h", y=-0.3),
                      title="the recipe search: validation, one training seed; error bars 1 SE across prompts")
    return fig


def claim_differences_figure(verdicts: Sequence[dict]) -> go.Figure:
    """Lab 07's verdicts at a glance: each other arm minus the favoured one on the end point, with its 95% interval,
    one row per claim and arm (``verdicts``: :func:`zlab.recipes.claims.verdicts`); green where the favoured arm won
    beyond the interval, red where the other did, grey where the interval holds 0."""
    rows = [(f"{v['claim']} · {other}", d) for v in verdicts for other, d in v["diffs"].items()]
    colours = {"worse": "seagreen", "better": "firebrick"}  # the other arm worse: the favoured one won
    fig = go.Figure(go.Scatter(
        x=[d["diff"] for _, d in rows], y=[label for label, _ in rows], mode="markers",
        marker=dict(size=9, color=[colours.get(d["verdict"], "gray") for _, d in rows]),
        error_x=dict(type="data", symmetric=False, array=[d["high"] - d["diff"] for _, d in rows],
                     arrayminus=[d["diff"] - d["low"] for _, d in rows])))
    fig.add_vline(x=0, line_dash="dash", line_color="black")
    fig.update_layout(title="Other arm minus the favoured one: validity, 2+ open, mean over N = 1, 2, 4 "
                            "(95% intervals)",
                      xaxis_title="difference in validity", yaxis=dict(autorange="reversed"),
                      height=120 + 30 * len(rows), width=980, margin=dict(l=380, t=60, b=50))
    return fig


def seeds_grid_figure(columns, cols: int = 2, cell: int = 150) -> go.Figure:
    """The app's seeds grid as one figure: each sampler's column (:class:`zlab.measure.diversity.SeedsColumn`) as a
    framed picture (green valid and right, red not), titled with its name and its measures for the prompt."""
    from zlab.measure.diversity import grid_image
    from zlab.viz.images import image_grid

    pictures = [grid_image(c, cols=cols) for c in columns]
    titles = [f"{c.name}<br>{c.summary()}" for c in columns]
    return image_grid(pictures, titles, cols=len(columns), cell=cell)
