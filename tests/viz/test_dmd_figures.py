import numpy as np
import pytest
import torch

from zlab.measure.dmd_view import DMDView
from zlab.viz.dmd import (
    DIRECTIONS,
    ESTIMATES,
    direction_norm,
    directions_figure,
    estimate_panels,
    stack_estimates,
    strengths_table,
)


def _view(tau: float = 0.4) -> DMDView:
    gen = torch.Generator().manual_seed(0)
    latents = [torch.randn(2, 16, 4, 6, generator=gen) for _ in range(5)]
    cond, uncond, fake = latents[1:4]
    return DMDView(tau, latents[0], cond, uncond, uncond + 1.5 * (cond - uncond), fake, cond - fake,
                   0.5 * (cond - uncond))


def test_estimate_panels_enlarge_every_pixel():
    decoded = torch.rand(4, 8, 12, 3)
    panels = estimate_panels(decoded, scale=4)
    assert len(panels) == 4 and all(p.shape == (32, 48, 3) and p.dtype == np.uint8 for p in panels)
    np.testing.assert_array_equal(panels[2][::4, ::4], (decoded[2].numpy() * 255).round().astype(np.uint8))
    np.testing.assert_array_equal(panels[2][3::4, 3::4], panels[2][::4, ::4])  # blocks, not interpolation


def test_direction_norm_is_the_first_samples_norm_over_channels():
    view = _view()
    norm = direction_norm(view.dm)
    assert norm.shape == (4, 6)
    np.testing.assert_allclose(norm[1, 2], float(view.dm[0, :, 1, 2].pow(2).sum().sqrt()), rtol=1e-6)
    assert not np.allclose(norm, direction_norm(view.dm[1:]))  # the second sample is not shown


def test_directions_figure_shares_one_scale_and_names_the_strengths():
    view = _view()
    fig = directions_figure(view)
    assert len(fig.data) == 2 and [d.type for d in fig.data] == ["heatmap", "heatmap"]
    np.testing.assert_allclose(fig.data[0].z, direction_norm(view.dm)[::-1])  # flipped: latent row 0 at the top
    np.testing.assert_allclose(fig.data[1].z, direction_norm(view.ca)[::-1])
    top = max(direction_norm(view.dm).max(), direction_norm(view.ca).max())
    assert all(d.zmin == 0 and abs(d.zmax - top) < 1e-6 for d in fig.data)
    assert [d.showscale for d in fig.data] == [False, True]
    strengths = view.strengths()
    titles = [a.text for a in fig.layout.annotations]
    assert titles == [f"{name}: ‖{formula}‖ (strength {strengths[name]:.3g})" for name, formula in DIRECTIONS.values()]
    assert "τ = 0.40" in fig.layout.title.text


def test_directions_figure_of_zero_directions_is_flat_not_nan():
    view = _view()
    view.dm, view.ca = torch.zeros_like(view.dm), torch.zeros_like(view.ca)
    assert all(d.zmax == 1.0 for d in directions_figure(view).data)


def test_strengths_table_reads_back_the_views_strengths():
    view = _view(0.25)
    lines = strengths_table(view).splitlines()
    assert lines[0].startswith("| direction (τ = 0.25) |") and len(lines) == 4
    read = {row.split("|")[1].strip(): float(row.split("|")[3]) for row in lines[2:]}
    assert read.keys() == view.strengths().keys()
    for name, value in view.strengths().items():
        assert abs(read[name] - value) <= 5e-4 * value  # 4 significant digits


def test_stack_estimates_in_panel_order():
    view = _view()
    x0_hat = torch.randn(2, 16, 4, 6)
    stacked = stack_estimates(x0_hat, view)
    assert stacked.shape == (len(ESTIMATES), 16, 4, 6)
    for got, want in zip(stacked, (x0_hat, view.noisy, view.teacher_guided, view.fake), strict=True):
        torch.testing.assert_close(got, want[0])


def test_trade_off_figure_plots_each_variant_with_its_interval_and_the_teacher_by_guidance():
    from zlab.viz.dmd import trade_off_figure

    rows = [{"variant": "base", "valid": 0.7, "valid_low": 0.6, "valid_high": 0.85, "coverage_entropy": 0.5,
             "coverage_entropy_low": 0.45, "coverage_entropy_high": 0.52},
            {"variant": "one seed", "valid": 0.6, "valid_low": float("nan"), "valid_high": float("nan"),
             "coverage_entropy": 0.4, "coverage_entropy_low": float("nan"), "coverage_entropy_high": float("nan")}]
    sweep = {"0.75": {"valid": 0.95, "coverage_entropy": 0.83}, "0.25": {"valid": 0.94, "coverage_entropy": 0.9}}
    fig = trade_off_figure(rows, sweep, teacher={"valid": 0.94, "coverage_entropy": 0.81})
    base, single, curve, teacher = fig.data
    assert (base.x[0], base.y[0]) == (0.5, 0.7)
    assert base.error_y.array[0] == pytest.approx(0.15) and base.error_y.arrayminus[0] == pytest.approx(0.1)
    assert single.error_y.array is None  # one seed: no interval drawn
    assert list(curve.x) == [0.9, 0.83] and list(curve.text) == ["s = 1.25", "s = 1.75"]  # sorted by guidance
    assert teacher.name == "teacher (sampling.json)" and len(fig.data) == 4
