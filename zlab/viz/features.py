"""Lab 04's and the app's views of what the discriminator reads: tapped maps in PCA colours, the feature gap
across the noise level t̂, the t̂ law, and the heads' logits and scores.

Data in, figures out: nothing here trains or samples (the maps, views and sweeps come from
:mod:`zlab.features` and :mod:`zlab.measure.discriminator_view`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

from zlab.distill.heads import Discriminator
from zlab.features import pca_rgb
from zlab.flow import logit_normal_pdf
from zlab.measure.discriminator_view import PairView
from zlab.viz.images import enlarge, image_grid, to_uint8


def pca_map_tiles(real_maps: Sequence[Tensor], fake_maps: Sequence[Tensor],
                  scale: int = 16) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per tapped block, the first sample's (real, fake) map (B, C, h, w) in the *real* map's first three principal
    components (:func:`zlab.features.pca_rgb`: equal colours mean equal features), enlarged ``scale`` times, uint8."""
    tiles = []
    for real, fake in zip(real_maps, fake_maps, strict=True):
        rgb_real, basis = pca_rgb(real)
        rgb_fake, _ = pca_rgb(fake, basis)
        tiles.append((to_uint8(enlarge(rgb_real[0], scale)), to_uint8(enlarge(rgb_fake[0], scale))))
    return tiles


def pca_maps_image(real_maps: Sequence[Tensor], fake_maps: Sequence[Tensor], scale: int = 16,
                   pad: int = 2) -> np.ndarray:
    """The :func:`pca_map_tiles` as one uint8 image (the app's panel): rows real / fake, one column per block, each
    tile framed by ``pad`` white pixels."""
    tiles = pca_map_tiles(real_maps, fake_maps, scale)
    framed = lambda tile: np.pad(tile, ((pad, pad), (pad, pad), (0, 0)), constant_values=255)
    return np.concatenate([np.concatenate([framed(pair[row]) for pair in tiles], 1) for row in (0, 1)], 0)


def renoised_pair_figure(views: Sequence[PairView], noisy: dict[str, Sequence[np.ndarray]],
                         blocks: Sequence[int]) -> go.Figure:
    """Lab 04 section 2, one column per t̂: the decoded noisy real and fake latents (``noisy["real"]``,
    ``noisy["fake"]``: one uint8 image per view), then each tapped block's real and fake maps in the real maps' PCA
    colours (``blocks`` names the views' tapped blocks)."""
    panels, labels = [], []
    for name in ("real", "fake"):
        panels += list(noisy[name])
        labels.append(f"{name}, decoded")
    tiles = [pca_map_tiles(v.real_maps, v.fake_maps) for v in views]
    for b, block in enumerate(blocks):
        for i, name in enumerate(("real", "fake")):
            panels += [view_tiles[b][i] for view_tiles in tiles]
            labels.append(f"{name}, block {block}")
    titles = [f"t̂ = {v.t_hat:g}" for v in views] + [""] * (len(panels) - len(views))
    return image_grid(panels, titles, cols=len(views), row_labels=labels, cell=110,
                      title="the same noise re-noises both; maps in the real maps' PCA colours")


def pair_view_figure(decoded: Sequence[np.ndarray], view: PairView, blocks: Sequence[int], title: str) -> go.Figure:
    """Lab 04's "your turn" view: ``decoded`` (uint8) real and fake clean, then real and fake at ``view.t_hat``;
    below, each tapped block's real and fake maps in the real maps' PCA colours, four panels a row."""
    titles = ["real (clean)", "fake (clean)", f"real at t̂={view.t_hat:g}", f"fake at t̂={view.t_hat:g}"]
    panels = list(decoded)
    for block, (real, fake) in zip(blocks, pca_map_tiles(view.real_maps, view.fake_maps), strict=True):
        panels += [real, fake]
        titles += [f"real, block {block}", f"fake, block {block}"]
    return image_grid(panels, titles, cols=4, cell=120, title=title)


def feature_gap_figure(t_hats: np.ndarray, gaps: dict[str, Tensor], m: float = 1.0, s: float = 1.0) -> go.Figure:
    """Lab 04 section 3. Left: the feature gap (T, blocks) of each pair across ``t_hats`` per block, the structural
    pair first (solid), the textural pair second (dashed), over the LogitNormal(m, s) density of t̂; right: the
    second pair's gap over the first's at the last block."""
    fig = make_subplots(1, 2, subplot_titles=["feature gap per block (solid: layout, dashed: edges)",
                                              "edge gap / layout gap (last block)"], specs=[[{"secondary_y": True}, {}]])
    density = logit_normal_pdf(torch.tensor(t_hats), m, s).numpy()
    fig.add_trace(go.Scatter(x=t_hats, y=density, fill="tozeroy", line=dict(color="lightgrey"),
                             name=f"t̂ density, LogitNormal({m:g}, {s:g})"), 1, 1, secondary_y=True)
    for (name, gap), dash in zip(gaps.items(), ("solid", "dash"), strict=True):
        for b in range(gap.shape[1]):
            fig.add_trace(go.Scatter(x=t_hats, y=gap[:, b].numpy(), mode="lines", line=dict(dash=dash),
                                     name=f"{name}, block {b}", legendgroup=name), 1, 1)
    fig.add_trace(go.Scatter(x=t_hats, y=gap_ratio(gaps).numpy(), mode="lines+markers", showlegend=False), 1, 2)
    fig.update_xaxes(title_text="t̂ (noise level of the re-noised pair)")
    fig.update_yaxes(title_text="density", secondary_y=True, row=1, col=1, showgrid=False)
    fig.update_layout(height=420, width=1050, margin=dict(t=40, b=10))
    return fig


def gap_ratio(gaps: dict[str, Tensor]) -> Tensor:
    """The second pair's feature gap over the first's at the last block, per t̂ (edges over layout in lab 04)."""
    first, second = gaps.values()
    return second[:, -1] / first[:, -1]


def feature_gap_table(t_hats: np.ndarray, gaps: dict[str, Tensor]) -> str:
    """Lab 04 section 3's printout: each pair's last-block gap per t̂, and their :func:`gap_ratio`."""
    lines = ["t̂:                " + " ".join(f"{t:6.2f}" for t in t_hats)]
    lines += [f"{name:19}" + " ".join(f"{g:6.3f}" for g in gap[:, -1].tolist()) + "   (last block)"
              for name, gap in gaps.items()]
    return "\n".join(lines + [f"{'edge / layout':19}" + " ".join(f"{r:6.3f}" for r in gap_ratio(gaps).tolist())])


def pair_gap_table(t_hats: np.ndarray, sample_gaps: dict[str, Tensor], marks: dict[str, float]) -> str:
    """Lab 04 section 3 per object, with standard errors. ``sample_gaps``: two pairs' gaps (T, objects) at one block.
    At the swept t̂ nearest each of ``marks`` (label -> t̂): each pair's gap as a share of its own gap at the lowest
    t̂, and the second pair's gap over the first's, each the mean ± standard error over the objects."""
    columns = {label: int(np.abs(np.asarray(t_hats) - t).argmin()) for label, t in marks.items()}
    first, second = sample_gaps.values()
    rows = {f"{name}: share left": gap / gap[:1] for name, gap in sample_gaps.items()}
    rows["edge / layout"] = second / first

    def cell(values: Tensor) -> str:
        return f"{values.mean():.3f} ± {values.std() / len(values) ** 0.5:.3f}"

    heads = [f"{label}, t̂ = {t_hats[i]:.2f}" for label, i in columns.items()]
    width, col = max(map(len, rows)) + 2, max(map(len, heads)) + 3
    lines = [f"{'':{width}}" + "".join(f"{head:>{col}}" for head in heads)]
    lines += [f"{name:{width}}" + "".join(f"{cell(values[i]):>{col}}" for i in columns.values()) for name, values in rows.items()]
    return "\n".join(lines + [f"(mean ± standard error over {first.shape[1]} objects)"])


def t_hat_density_figure(m: float, s: float, t_hat: float) -> go.Figure:
    """The app's t̂ law: the LogitNormal(m, s) density on (0, 1), the chosen ``t_hat`` marked."""
    grid = torch.linspace(0.005, 0.995, 199)
    fig = go.Figure(go.Scatter(x=grid, y=logit_normal_pdf(grid, float(m), float(s)), fill="tozeroy",
                               name=f"LogitNormal({m:g}, {s:g})"))
    fig.add_vline(x=float(t_hat), line_color="crimson", annotation_text=f"t̂ = {t_hat:.2f}")
    fig.update_layout(height=260, margin=dict(t=30, b=10), xaxis_title="t̂", yaxis_title="density")
    return fig


def head_logits_figure(real_logits: Sequence[Tensor] | None, fake_logits: Sequence[Tensor] | None,
                       blocks: Sequence[int]) -> go.Figure:
    """Each head's spatial logits (B, 1, h, w) of the first sample, rows real / fake, one column per block (red =
    'real'); an empty figure when there are no heads (``None``)."""
    if real_logits is None or fake_logits is None:
        return go.Figure()
    fig = make_subplots(2, len(blocks), subplot_titles=[f"block {b}, {w}" for w in ("real", "fake") for b in blocks],
                        vertical_spacing=0.12)
    for row, logits in ((1, real_logits), (2, fake_logits)):
        for col, logit in enumerate(logits, start=1):
            z = logit[0, 0].float().cpu().numpy()
            fig.add_trace(go.Heatmap(z=z[::-1], zmid=0, colorscale="RdBu", showscale=col == 1 and row == 1,
                                     colorbar=dict(title="logit")), row, col)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=380, margin=dict(t=40, b=10), title="each head's spatial logits (red = 'real')")
    return fig


def head_scores_table(real_logits: Sequence[Tensor], fake_logits: Sequence[Tensor], blocks: Sequence[int]) -> str:
    """Markdown table of each head's score (its logit map's mean, :meth:`Discriminator.scores`) on the first real and
    fake sample."""
    real_scores = Discriminator.scores(real_logits)[0].tolist()
    fake_scores = Discriminator.scores(fake_logits)[0].tolist()
    return "| head (block) | real score | fake score |\n|---|---|---|\n" + "\n".join(
        f"| {b} | {r:+.3f} | {f:+.3f} |" for b, r, f in zip(blocks, real_scores, fake_scores, strict=True))


def head_score_sweep_figure(t_hats: np.ndarray, sweep: dict[str, Tensor] | None, blocks: Sequence[int],
                            t_hat: float) -> go.Figure:
    """The app's head scores across ``t_hats`` (``sweep["real"]``, ``sweep["fake"]``: (T, heads) from
    :func:`zlab.measure.discriminator_view.sweep_t_hat`), solid real, dashed fake, the chosen ``t_hat`` marked;
    only the axes when there are no heads (``sweep=None``)."""
    fig = go.Figure()
    if sweep is not None:
        for h, b in enumerate(blocks):
            fig.add_trace(go.Scatter(x=t_hats, y=sweep["real"][:, h], name=f"block {b}, real", mode="lines"))
            fig.add_trace(go.Scatter(x=t_hats, y=sweep["fake"][:, h], name=f"block {b}, fake", mode="lines",
                                     line=dict(dash="dash")))
        fig.add_vline(x=float(t_hat), line_color="crimson")
    fig.update_layout(height=320, margin=dict(t=30, b=10), xaxis_title="t̂", yaxis_title="head score",
                      title="head scores across t̂ (solid real, dashed fake)")
    return fig
