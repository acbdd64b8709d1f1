"""Lab 05's figures: panels, traces and the plotted values are the data given."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zlab import flow, toy
from zlab.distill.schedule import STUDENT_TIMESTEPS
from zlab.toy_distill import off_mode_share
from zlab.viz.curves import moving_average
from zlab.viz.ladd import noise_levels_figure, toy_clouds_figure, training_log_figure


def test_toy_clouds_one_panel_per_cloud_with_its_points_and_discs():
    gen = torch.Generator().manual_seed(0)
    clouds = {"data": toy.sample_data(50, seed=5)[0], "origin": 0.01 * torch.randn(40, 2, generator=gen)}
    fig = toy_clouds_figure(clouds, shown=30)
    blobs = len(toy.class_centres())
    assert len(fig.data) == len(clouds) * (1 + blobs)
    titles = [a.text for a in fig.layout.annotations]
    assert titles == [f"{k}<br>off: {off_mode_share(v):.2f}" for k, v in clouds.items()]
    assert titles[1].endswith("off: 1.00")  # every point at the origin is on no blob
    points = fig.data[1 + blobs]  # the second panel's cloud
    assert points.xaxis == "x2" and np.allclose(points.x, clouds["origin"][:30, 0]) and len(points.y) == 30
    disc = fig.data[1]
    cx, cy = toy.class_centres()[0].tolist()
    radius = np.hypot(np.array(disc.x) - cx, np.array(disc.y) - cy)
    assert np.allclose(radius, 2 * toy.BLOB_STD)


def test_noise_levels_stacks_the_student_times_and_draws_the_chosen_m_thick():
    probs = np.array([[0.0, 0.0, 0.5, 0.5]] * 3 + [[0.7, 0.1, 0.1, 0.1]] * 5)
    draws = torch.rand(3000, generator=torch.Generator().manual_seed(0))
    fig = noise_levels_figure(probs, 3, draws, t_hat_m=-1.0)
    assert [a.text for a in fig.layout.annotations][0] == "student time probabilities (warm-up: 3 steps)"
    times, curves, hist = fig.data[:4], fig.data[4:8], fig.data[8]
    assert [t.name for t in times] == [f"t = {t}" for t in STUDENT_TIMESTEPS]
    assert np.allclose(times[0].y, probs[:, 0]) and list(times[0].x) == list(range(8))
    assert [c.line.width for c in curves] == [4, 1.5, 1.5, 1.5]
    assert np.allclose(curves[2].y, flow.logit_normal_pdf(torch.tensor(curves[2].x), 1.0, 1.0), atol=1e-5)
    assert hist.name == "3k draws, m = -1" and len(hist.x) == 3000


@pytest.mark.parametrize("heads", [1, 3])
def test_training_log_has_two_loss_panels_and_two_calls_per_head(heads):
    steps = 30
    rng = np.random.default_rng(0)
    log = {"d_loss": list(rng.random(steps)), "g_loss": list(rng.random(steps)),
           "head_calls": rng.random((steps, heads, 2)).tolist()}
    fig = training_log_figure(log, blocks=list(range(heads)), window=5)
    assert len(fig.data) == 4 + 2 * heads
    assert list(fig.data[0].y) == log["d_loss"] and list(fig.data[2].y) == log["g_loss"]
    assert np.allclose(fig.data[3].y, moving_average(log["g_loss"], 5)[1])
    fake_called_fake = fig.data[5]
    assert fake_called_fake.line.dash == "dot" and not fake_called_fake.showlegend
    assert np.allclose(fake_called_fake.y, moving_average(np.array(log["head_calls"])[:, 0, 1], 5)[1])
    assert fig.data[4].name == "head on block 0" and fig.data[4].xaxis == "x3"
