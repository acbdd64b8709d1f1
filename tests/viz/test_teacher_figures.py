"""Lab 03's figures: panels, traces, and plotted values and error bars equal to the data given."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zlab.sampling import cfg_active
from zlab.viz.teacher import (
    caption_similarity_figure,
    guidance_sweep_figure,
    nfe_sweep_figure,
    recipe_figure,
    settings_grid,
    token_gap_figure,
    truncation_figure,
)


def test_recipe_figure_plots_time_densities_sampler_times_lr_and_decay():
    g = torch.Generator().manual_seed(0)
    t_raw = torch.rand(4000, generator=g)
    sampler_ts = torch.linspace(1.0, 0.1, 10)
    steps = np.arange(1, 6)
    lr, decay = [1e-4, 2e-4, 3e-4, 2e-4, 1e-4], [0.0, 0.5, 0.9, 0.95, 0.97]
    fig = recipe_figure(t_raw, t_raw**2, 1.5, sampler_ts, steps, lr, decay)
    assert [a.text for a in fig.layout.annotations] == ["training times t", "learning rate", "EMA decay per step"]
    assert [t.name for t in fig.data[:3]] == ["σ(m + s z)", "shifted by 1.50", "10 sampler times"]
    raw = fig.data[0]
    assert len(raw.x) == 80 and np.sum(raw.y) / 80 == pytest.approx(1.0)  # a density on [0, 1]
    assert np.allclose(fig.data[2].x, sampler_ts.numpy()) and not np.any(fig.data[2].y)
    assert list(fig.data[3].y) == lr and list(fig.data[4].y) == decay and list(fig.data[4].x) == [1, 2, 3, 4, 5]
    assert (fig.data[3].xaxis, fig.data[4].xaxis) == ("x2", "x3")
    assert tuple(fig.layout.yaxis3.range) == (0.9, 1.0)


def test_token_gap_figure_plots_each_variants_distance_per_token():
    base = torch.zeros(4, 3)
    variant = torch.zeros(4, 3)
    variant[2:] = torch.tensor([3.0, 4.0, 0.0])   # identical before the changed token, distance 5 from it on
    fig = token_gap_figure(base, ["<a>", "b", "c", "d"], {"size: b": variant, "same": base.clone()}, "a b c d")
    assert [t.name for t in fig.data] == ["size: b", "same"]
    assert np.allclose(fig.data[0].y, [0, 0, 5, 5]) and not np.any(fig.data[1].y)
    assert list(fig.layout.xaxis.ticktext) == ["<a>", "b", "c", "d"]
    assert fig.layout.title.text == "‖h(variant) − h(base)‖ per token, base = 'a b c d'"


def test_caption_similarity_figure_is_cosine_before_and_after_removing_the_mean():
    pooled = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, 1.0]])
    fig = caption_similarity_figure(pooled, [0, 1, 3], ["a", "b", "d"])
    raw, centred = (np.array(t.z) for t in fig.data)
    assert raw.shape == (3, 3) and np.allclose(np.diag(raw), 1.0)
    assert raw[0, 1] == pytest.approx(0.0) and raw[0, 2] == pytest.approx(3 / np.sqrt(10))
    v = pooled - pooled.mean(0)
    v = v[[0, 1, 3]] / v[[0, 1, 3]].norm(dim=-1, keepdim=True)
    assert np.allclose(centred, (v @ v.T).numpy())
    assert list(fig.data[0].x) == ["a", "b", "d"] and [t.showscale for t in fig.data] == [False, True]


def sweep_rows(n: int) -> list[dict]:
    return [{"fd": 10.0 * k, **{f"acc_{key}": 0.1 * k + j / 100 for j, key in
                                enumerate(("joint", "shape", "colour", "size", "position"))}} for k in range(n)]


def test_guidance_sweep_figure_plots_accuracies_fd_and_the_card_scores():
    s_values, rows = [1.0, 2.0, 4.0], sweep_rows(3)
    fig = guidance_sweep_figure(s_values, rows, 3.0)
    assert [t.name for t in fig.data] == ["joint", "shape", "colour", "size", "position", "FD"]
    assert list(fig.data[1].y) == [r["acc_shape"] for r in rows] and list(fig.data[5].y) == [0.0, 10.0, 20.0]
    assert fig.data[5].xaxis == "x2" and list(fig.layout.xaxis.ticktext)[1] == "s=2<br>g=1"
    assert [s.x0 for s in fig.layout.shapes] == [3.0, 3.0] and fig.layout.title.text.endswith("s = 3")
    with_card = guidance_sweep_figure(s_values, rows, 3.0, {"1.5": {"score": 0.4}, "3": {"score": 0.7}})
    diamonds = with_card.data[-1]
    assert len(with_card.data) == 7 and list(diamonds.x) == [2.5, 4.0] and list(diamonds.y) == [0.4, 0.7]


def test_truncation_figure_marks_the_guided_steps():
    ts = torch.tensor([1.0, 0.75, 0.5, 0.25])
    fig = truncation_figure(ts, [1.0, 0.5], 3.0)
    assert len(fig.data) == 2 and [t.y[0] for t in fig.data] == ["τ = 1", "τ = 0.5"]
    for trace, tau in zip(fig.data, [1.0, 0.5]):
        assert list(trace.marker.color) == ["crimson" if cfg_active(float(t), 3.0, tau) else "lightgrey" for t in ts]
    assert list(fig.data[1].marker.color) == ["crimson", "crimson", "crimson", "lightgrey"]
    assert all(c == "lightgrey" for c in truncation_figure(ts, [1.0], 1.0).data[0].marker.color)  # s = 1: no CFG
    assert fig.layout.title.text == "guided steps (red) of a 4-step schedule at s = 3"


def test_nfe_sweep_figure_plots_groups_with_their_standard_errors():
    rows = []
    for setting, nfe in (("1 step", 1), ("4 steps", 4), ("4 steps + CFG", 8)):
        for group in ("0", "1", "2+"):
            rows.append({"setting": setting, "nfe": nfe, "group": group, "valid": nfe / 10, "valid_se": nfe / 100,
                         "named_accuracy": 0.5, "named_accuracy_se": 0.01, "coverage_entropy": 0.3,
                         "coverage_entropy_se": 0.02})
    fig = nfe_sweep_figure(rows)
    assert len(fig.data) == 2 * 2 * 3   # CFG on/off x groups 0 and 2+ x three panels; group "1" is left out
    no_cfg_open = [t for t in fig.data if t.name == "2+ open, no CFG"]
    assert list(no_cfg_open[0].x) == [1, 4] and list(no_cfg_open[0].y) == [0.1, 0.4]
    assert list(no_cfg_open[0].error_y.array) == [0.01, 0.04] and list(no_cfg_open[2].error_y.array) == [0.02, 0.02]
    assert [t.showlegend for t in no_cfg_open] == [True, False, False]
    assert no_cfg_open[0].line.dash == "dot" and no_cfg_open[0].line.color == "crimson"
    with_cfg = next(t for t in fig.data if t.name == "0 open, with CFG")
    assert list(with_cfg.x) == [8] and with_cfg.line.color == "grey"
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis3.type == "log"


def test_settings_grid_shows_the_first_images_of_each_setting_in_rows():
    blank = np.zeros((16, 16, 3), np.uint8)
    images = {"a": np.stack([blank + k for k in range(4)]), "b": np.stack([blank + 10 + k for k in range(4)])}
    fig = settings_grid(images, ["a large red circle at the top left"] * 4, 2, "strip")
    assert len(fig.data) == 4 and [int(t.z[0, 0, 0]) for t in fig.data] == [0, 1, 10, 11]
    assert fig.layout.yaxis.title.text == "a" and fig.layout.yaxis3.title.text == "b"
    assert fig.layout.title.text == "strip" and all(a.text.startswith("✗") for a in fig.layout.annotations)
