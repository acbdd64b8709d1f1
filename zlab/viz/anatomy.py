"""Lab 02's views of the S3-DiT: where the parameters live, the prompt and image paths, the single stream and its
RoPE ids, adaLN, QK-norm, and attention maps by kind of token.

Data in, figures out: nothing here runs the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from zlab.anatomy import KINDS

# One colour per segment of the stream (zlab.anatomy.KINDS), shared by every figure that splits by kind.
KIND_COLOURS = {"image": "#1f77b4", "image_pad": "#aec7e8", "caption": "#d62728", "caption_pad": "#ff9896"}


def parameter_treemap_figure(report: Mapping[str, int], block: Mapping[str, int], n_layers: int) -> go.Figure:
    """The model's parameters as a treemap: the parts of ``report`` (:func:`zlab.zimage.real_transformer_report`),
    with "main layers" split into what one block holds (``block``, :func:`zlab.anatomy.block_breakdown`) x ``n_layers``."""
    ids, parents, values = ["S3-DiT"], [""], [report["total"]]
    for part, count in report.items():
        if part != "total":
            ids.append(part)
            parents.append("S3-DiT")
            values.append(count)
    for part, count in block.items():
        if part != "total":
            ids.append(f"{part} (x{n_layers})")
            parents.append("main layers")
            values.append(n_layers * count)
    fig = go.Figure(go.Treemap(ids=ids, labels=ids, parents=parents, values=values, branchvalues="total",
                               texttemplate="%{label}<br>%{value:,.0f}<br>%{percentRoot:.1%}"))
    fig.update_layout(title=f"Z-Image S3-DiT: {report['total']:,} parameters", height=480,
                      margin=dict(t=50, l=10, r=10, b=10))
    return fig


def block_parameters_figure(block: Mapping[str, int], title: str = "One main block (real config)") -> go.Figure:
    """One main block's parameters by module as horizontal bars; ``block`` from :func:`zlab.anatomy.block_breakdown`
    (its ``"total"`` entry is left out)."""
    parts = {k: v for k, v in block.items() if k != "total"}
    fig = go.Figure(go.Bar(x=list(parts.values()), y=list(parts), orientation="h", text=[f"{v:,}" for v in parts.values()]))
    fig.update_layout(title=title, xaxis_title="parameters", height=300, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def hidden_norms_figure(hidden, tokens: Sequence[str], mask, n_show: int = 32) -> go.Figure:
    """The norm of the text encoder's ``hidden_states[-2]`` at the first ``n_show`` positions, real tokens in red and
    padding in grey; ``hidden`` (L, D), ``tokens`` the real tokens' strings, ``mask`` (L,) 1 on real tokens."""
    norms = hidden[:n_show].norm(dim=-1)
    labels = [f"{i}:{tok}" for i, tok in enumerate(tokens)] + [f"{i}:<pad>" for i in range(len(tokens), n_show)]
    fig = go.Figure(go.Bar(x=labels, y=norms, marker_color=["#d62728" if m else "#cccccc" for m in mask[:n_show]]))
    fig.update_layout(title="||hidden_states[-2]|| per position (grey: padding, dropped before the DiT)",
                      height=330, xaxis_tickangle=-60, margin=dict(t=40, b=10))
    return fig


def latent_channels_figure(image: np.ndarray, z, channels: int = 4) -> go.Figure:
    """The picture (H, W, 3 uint8) beside the first ``channels`` channels of its normalised latent ``z`` (C, h, w)."""
    height, width = image.shape[:2]
    fig = make_subplots(1, channels + 1, subplot_titles=[f"image {height}x{width}"]
                        + [f"z channel {c}" for c in range(channels)])
    fig.add_trace(go.Image(z=image), 1, 1)
    for c in range(channels):
        fig.add_trace(go.Heatmap(z=z[c].numpy(), colorscale="RdBu", showscale=False), 1, c + 2)
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{c + 2}", row=1, col=c + 2)
    fig.update_layout(height=230, margin=dict(t=40, b=10, l=10, r=10))
    return fig


def token_grid_figure(image: np.ndarray, grid: tuple[int, int], cell: int = 16) -> go.Figure:
    """The picture (H, W, 3 uint8) cut into its ``grid`` (h, w) of tokens, ``cell`` pixels each, every token numbered
    by its position in the stream (row-major)."""
    height, width = image.shape[:2]
    h, w = grid
    fig = go.Figure(go.Image(z=image))
    for k in range(h * w):
        r, c = divmod(k, w)
        fig.add_annotation(x=cell * c + 7.5, y=cell * r + 7.5, text=str(k), showarrow=False,
                           font=dict(color="white", size=14))
    line = dict(color="white", width=1)
    for r in range(h + 1):
        fig.add_shape(type="line", x0=-0.5, x1=width - 0.5, y0=cell * r - 0.5, y1=cell * r - 0.5, line=line)
    for c in range(w + 1):
        fig.add_shape(type="line", y0=-0.5, y1=height - 0.5, x0=cell * c - 0.5, x1=cell * c - 0.5, line=line)
    fig.update_layout(title=f"{height}x{width} px -> {h}x{w} tokens, numbered in stream order", height=330, width=480,
                      margin=dict(t=40, b=10, l=10, r=10))
    return fig


def stream_layout_figure(named_layouts: Mapping[str, object]) -> go.Figure:
    """One stacked bar per ``{name: TokenLayout}``: how many positions of the stream each kind of token takes."""
    fig = go.Figure()
    for kind in KINDS:
        lengths = [len(range(*getattr(lay, kind).indices(lay.length))) for lay in named_layouts.values()]
        fig.add_trace(go.Bar(y=list(named_layouts), x=lengths, name=kind, orientation="h", marker_color=KIND_COLOURS[kind],
                             text=[f"{kind} {n}" if n else "" for n in lengths], textposition="inside"))
    fig.update_layout(barmode="stack", height=120 + 50 * len(named_layouts), xaxis_title="position in the stream",
                      margin=dict(t=30, b=10, l=10, r=10),
                      legend=dict(orientation="h", y=-0.5 if len(named_layouts) == 1 else -0.3))
    return fig


def rope_ids_figure(position_ids: np.ndarray, layout) -> go.Figure:
    """The three RoPE position ids (``position_ids`` (S, 3)) along one sample's stream as a heatmap, the boundaries
    of the stream's parts (``layout``, a :class:`zlab.anatomy.TokenLayout`) marked in white."""
    hover = [f"{kind}" for kind in layout.kinds()]
    fig = go.Figure(go.Heatmap(z=position_ids.T, y=["axis 0 (order)", "axis 1 (row)", "axis 2 (col)"],
                               colorscale="Viridis", customdata=np.array([hover] * 3),
                               hovertemplate="pos %{x}, %{y}: %{z}<br>%{customdata}<extra></extra>"))
    for kind in KINDS[1:]:
        fig.add_vline(x=getattr(layout, kind).start - 0.5, line=dict(color="white", width=2))
    fig.update_layout(title="RoPE position ids along the stream  |  image | image pad | caption | caption pad",
                      height=260, xaxis_title="position in the stream", margin=dict(t=40, b=10))
    return fig


def rope_grid_figure(grid_ids) -> go.Figure:
    """The image tokens' three RoPE ids on the token grid, one panel per axis; ``grid_ids`` (3, h, w)."""
    fig = make_subplots(1, 3, subplot_titles=["axis 0 on the image grid", "axis 1 = row", "axis 2 = column"])
    for a in range(3):
        fig.add_trace(go.Heatmap(z=grid_ids[a].numpy(), colorscale="Viridis", showscale=False, texttemplate="%{z:.0f}"),
                      1, a + 1)
        fig.update_yaxes(autorange="reversed", row=1, col=a + 1)
    fig.update_layout(height=240, margin=dict(t=40, b=10))
    return fig


def modulation_figure(ts, values, title: str, channels: int = 16) -> go.Figure:
    """One adaLN quantity against lab time: the first ``channels`` channels as thin lines and their mean over all
    channels in black; ``ts`` (T,), ``values`` (T, dim) (:func:`zlab.anatomy.adaln_modulation`)."""
    fig = go.Figure()
    for ch in range(min(channels, values.shape[1])):
        fig.add_trace(go.Scatter(x=ts, y=values[:, ch], mode="lines", line=dict(width=1), showlegend=False))
    fig.add_trace(go.Scatter(x=ts, y=values.mean(1), mode="lines", name="mean over channels",
                             line=dict(width=4, color="black")))
    fig.update_layout(title=title, xaxis_title="t (0 = clean, 1 = noise)", height=330, margin=dict(t=40, b=10))
    return fig


def qk_norm_figure(q, q_normed) -> go.Figure:
    """Histograms of the RMS of every (token, head) query before and after QK-norm; ``q``, ``q_normed``
    (..., heads, head_dim)."""
    def rms(v):
        return v.pow(2).mean(-1).sqrt().flatten()

    fig = go.Figure([go.Histogram(x=rms(q), name="RMS of q per (token, head), before", opacity=0.7),
                     go.Histogram(x=rms(q_normed), name="after QK-norm", opacity=0.7)])
    fig.update_layout(barmode="overlay", height=280, margin=dict(t=30, b=10), title="QK-norm pins every query's scale")
    return fig


def attention_by_kind_figure(probs_by_layer: Mapping[int, object], layout) -> go.Figure:
    """Per layer, the share of the image tokens' attention that goes to each kind of key (mean over heads and image
    queries), stacked; ``probs_by_layer`` {layer: (heads, S, S) probabilities of one sample}."""
    fig = go.Figure()
    for kind in KINDS:
        share = [float(p[:, layout.image, getattr(layout, kind)].sum(-1).mean()) for p in probs_by_layer.values()]
        fig.add_trace(go.Bar(x=[f"layers.{i}" for i in probs_by_layer], y=share, name=kind,
                             marker_color=KIND_COLOURS[kind]))
    fig.update_layout(barmode="stack", title="Attention of image tokens, split by the kind of key", yaxis_title="share",
                      height=300, margin=dict(t=40, b=10))
    return fig


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
