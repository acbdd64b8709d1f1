"""Lab 01's toy figures (zlab.viz.toy): the traces, panels and titles they draw carry the data they were given."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zlab import flow, toy
from zlab.viz.curves import moving_average
from zlab.viz.toy import (
    PATH_COLOURS,
    PATH_TITLES,
    TOY_COLOURS,
    class_points_figure,
    euler_error_figure,
    logit_normal_figure,
    nearest_class,
    pair_paths_figure,
    sample_panels_figure,
    shift_density_figure,
    time_shift_figure,
    training_loss_figure,
    trajectories_figure,
    x0_settling_figure,
)

K = toy.NUM_CLASSES


def points(n=30, seed=0):
    """``n`` 2D points and class labels covering every class."""
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed)), torch.arange(n) % K


def subplot_titles(fig):
    return [a.text for a in fig.layout.annotations]


def test_nearest_class_is_the_class_of_the_nearest_centre():
    centres = toy.class_centres()
    assert nearest_class(centres * 1.1).tolist() == list(range(K))
    assert nearest_class(centres[[3, 0]] + 0.1).tolist() == [3, 0]


def test_class_points_figure_draws_the_grey_cloud_then_one_trace_per_class():
    x, labels = points()
    grey = torch.randn(7, 2)
    fig = class_points_figure(x, labels, "a title", grey=grey, grey_name="noise ε", axis_range=[-3, 3])
    assert len(fig.data) == 1 + K
    assert fig.data[0].name == "noise ε" and np.allclose(fig.data[0].x, grey[:, 0].numpy())
    for k, trace in enumerate(fig.data[1:]):
        assert trace.name == f"class {k}" and np.allclose(trace.y, x[labels == k, 1].numpy())
    assert fig.layout.title.text == "a title" and fig.layout.yaxis.scaleanchor == "x"
    assert list(fig.layout.xaxis.range) == [-3, 3] and list(fig.layout.yaxis.range) == [-3, 3]
    assert len(class_points_figure(x, labels, "no cloud").data) == K


def test_sample_panels_figure_one_panel_per_entry_legend_once():
    (a, labels), (b, _) = points(seed=1), points(seed=2)
    fig = sample_panels_figure({"left": a, "right": b}, labels, size=3, axis_range=[-6, 6], title="guided")
    assert subplot_titles(fig) == ["left", "right"]
    assert len(fig.data) == 2 * K
    assert [t.showlegend for t in fig.data] == [True] * K + [False] * K
    assert np.allclose(fig.data[K].x, b[labels == 0, 0].numpy()) and fig.data[0].marker.size == 3
    assert list(fig.layout.xaxis2.range) == [-6, 6] and fig.layout.yaxis2.scaleanchor == "x2"
    assert fig.layout.title.text == "guided"
    plain = sample_panels_figure({"only": a}, labels, margin=dict(t=50))
    assert plain.layout.title.text is None and plain.layout.margin.t == 50


def test_pair_paths_figure_marks_data_noise_and_the_one_step_landing():
    x0, labels = points(6)
    eps = torch.randn(6, 2)
    ts = torch.linspace(0, 1, 5)
    paths = {p: toy.conditional_paths(p, x0, eps, ts) for p in ("linear", "vp")}
    one_step = {"linear": x0 + 0.5, "vp": x0 - 0.5}
    fig = pair_paths_figure(paths, one_step, x0, eps, labels)
    assert subplot_titles(fig) == [PATH_TITLES["linear"], PATH_TITLES["vp"]]
    landings = [t for t in fig.data if t.name == "one Euler step"]
    assert len(landings) == 2 and np.allclose(landings[1].x, (x0 - 0.5)[:, 0].numpy())
    assert [t.xaxis for t in landings] == ["x", "x2"]
    assert len(fig.data) == 2 * (K + 3)  # per panel: a line per class, then x0, ε and the landing points


def test_training_loss_figure_plots_the_moving_average_of_each_path():
    losses = {"linear": list(np.linspace(1, 0, 120)), "vp": list(np.linspace(2, 1, 120))}
    fig = training_loss_figure(losses, window=10)
    assert [t.name for t in fig.data] == ["linear", "vp"]
    steps, smooth = moving_average(losses["vp"], 10)
    assert np.allclose(fig.data[1].x, steps) and np.allclose(fig.data[1].y, smooth)
    assert fig.data[1].line.color == PATH_COLOURS["vp"]
    assert fig.layout.title.text == "Training loss (moving average of 10 steps)"


def test_trajectories_figure_two_panels_a_row_end_points_are_the_last_states():
    xs = torch.randn(5, 12, 2)
    labels = torch.arange(12) % K
    panels = {f"panel {i}": (xs + i, labels) for i in range(4)}
    fig = trajectories_figure(panels, "learned")
    assert subplot_titles(fig) == list(panels) and fig.layout.height == 900
    ends = [t for t in fig.data if t.mode == "markers"]
    assert len(ends) == 4 and np.allclose(ends[3].y, (xs[-1] + 3)[:, 1].numpy())
    assert ends[3].xaxis == "x4" and fig.layout.yaxis4.scaleanchor == "x4"
    assert len(fig.data) == 4 * (K + 1)


def test_euler_error_figure_plots_the_errors_and_a_one_over_n_line():
    steps = (1, 2, 4, 8)
    errors = {("linear", "class label"): {1: 0.5, 2: 0.3, 4: 0.1, 8: 0.04},
              ("vp", "no label"): {1: 0.9, 2: 0.6, 4: 0.3, 8: 0.2}}
    fig = euler_error_figure(errors, steps)
    assert [t.name for t in fig.data] == ["linear · class label", "vp · no label", "∝ 1/N"]
    assert list(fig.data[1].y) == [0.9, 0.6, 0.3, 0.2]
    assert [fig.data[0].line.dash, fig.data[1].line.dash] == ["solid", "dash"]
    assert np.allclose(fig.data[2].y, [0.04 * 8 / n for n in steps])  # through the first curve at the largest N
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"


def test_x0_settling_figure_solid_estimates_dotted_states():
    t = torch.linspace(1, 0, 6)
    distances = {("linear", "x̂0"): torch.rand(6), ("linear", "x_t"): torch.rand(6), ("vp", "x̂0"): torch.rand(6)}
    fig = x0_settling_figure(t, distances)
    assert [t_.line.dash for t_ in fig.data] == ["solid", "dot", "solid"]
    assert fig.data[2].name.startswith("VP: x̂0") and fig.data[2].line.color == PATH_COLOURS["vp"]
    assert np.allclose(fig.data[1].y, distances["linear", "x_t"].numpy())
    assert fig.layout.xaxis.autorange == "reversed"


def test_time_shift_figure_draws_each_shift_and_its_grid():
    shifts = {"a": 1.5, "b": 3.0}
    fig = time_shift_figure(shifts, steps=4)
    assert len(fig.data) == 1 + 2 * len(shifts) + 1
    curve, grid = fig.data[3], fig.data[4]
    assert curve.name == "b: s = 3.00"
    assert np.allclose(curve.y, flow.time_shift(torch.linspace(0, 1, 201), 3.0).numpy())
    assert np.allclose(grid.x, flow.time_shift(toy.uniform_timesteps(4), 3.0).numpy()) and set(grid.y) == {"b"}
    assert subplot_titles(fig)[1] == "where 4 uniform steps land after the shift"


def test_shift_density_figure_titles_the_share_above_one_half():
    shifted = torch.tensor([0.1, 0.6, 0.7, 0.9])
    t = torch.linspace(0.1, 0.9, 5)
    fig = shift_density_figure(shifted, t, toy.time_shift_pdf(t, 2.0), 2.0)
    assert fig.layout.title.text == "shift s = 2.00: 75% of times above 0.5"
    assert np.allclose(fig.data[0].x, shifted.numpy()) and np.allclose(fig.data[1].y, toy.time_shift_pdf(t, 2.0))


@pytest.mark.parametrize("m, s, colour", [(1.0, 1.0, TOY_COLOURS[1]), (0.5, 2.0, "black")])
def test_logit_normal_figure_pdfs_and_samples(m, s, colour):
    params = [(0.0, 1.0), (1.0, 1.0)]
    samples = torch.rand(50)
    fig = logit_normal_figure(params, samples, m=m, s=s)
    assert len(fig.data) == len(params) + 2
    assert [t.name for t in fig.data[:2]] == ["m = 0, s = 1", "m = 1, s = 1"]
    hist, pdf = fig.data[2], fig.data[3]
    assert np.allclose(hist.x, samples.numpy()) and hist.xaxis == "x2"
    assert np.allclose(pdf.y, flow.logit_normal_pdf(torch.linspace(0.002, 0.998, 300), m, s).numpy())
    assert pdf.line.color == colour
    assert subplot_titles(fig)[1] == f"LADD's t̂ ~ LogitNormal({m:g}, {s:g}): samples vs pdf"
