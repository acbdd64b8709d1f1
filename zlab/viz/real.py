"""Lab 09's views of the real Z-Image: the memory plan of one training step, and the losses of a short run.

Data in, figures out: nothing here trains or measures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

GiB = 2**30
# The stacked parts of a memory plan, bottom up: what the step holds throughout (DMD's fake score too). On top, the
# largest of what is never held at once (activations or gradients; for DMD, of either update).
MEMORY_SEGMENTS = ("teacher weights", "student weights", "fake score weights", "heads (weights, grads, Adam)",
                   "optimizer state", "EMA of the student", "gathered blocks (FSDP)")
# Horizontal lines: what one GPU holds, in bytes.
GPU_MEMORY = ((141e9, "H200 141 GB"), (80e9, "H100/A100 80 GB"))


def memory_plan_figure(plan: Mapping[str, object], gpus: Sequence[tuple[float, str]] = GPU_MEMORY) -> go.Figure:
    """Predicted peak memory of one training step per setting, stacked by part in GiB, with one dotted line per GPU.
    ``plan`` {setting: :class:`zlab.train.memory.MemoryEstimate`}; the top segment is the largest of the estimate's
    ``either`` groups (activations with autocast copies, or gradients: backward frees the one as it fills the other;
    DMD's two updates come one after the other), so each bar tops at the estimate's peak."""
    fig = go.Figure()
    for seg in MEMORY_SEGMENTS:
        fig.add_bar(name=seg, x=list(plan), y=[e.parts.get(seg, 0) / GiB for e in plan.values()])
    fig.add_bar(name="activations or gradients, the largest held at once", x=list(plan),
                y=[max(sum(e.parts.get(n, 0) for n in group) for group in e.either) / GiB for e in plan.values()])
    for nbytes, label in gpus:
        fig.add_hline(y=nbytes / GiB, line_dash="dot", annotation_text=label)
    fig.update_layout(barmode="stack", height=430, yaxis_title="GiB at the peak of one step", margin=dict(t=30, b=10),
                      title="predicted peak memory of one training step on the real 6.15B Z-Image")
    return fig


def ladd_losses_figure(log: Mapping[str, Sequence[float]]) -> go.Figure:
    """The discriminator's and the generator's loss of a LADD run, step by step, on one panel; ``log`` the run's
    log (:func:`zlab.train.distill.train_student`) with ``"d_loss"`` and ``"g_loss"``."""
    fig = go.Figure([go.Scatter(y=log["d_loss"], name="D (hinge, summed over heads)"),
                     go.Scatter(y=log["g_loss"], name="G (L_adv)")])
    fig.update_layout(height=300, xaxis_title="step", margin=dict(t=30, b=10), title="LADD losses")
    return fig
