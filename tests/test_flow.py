"""Each identity of zlab.flow, pinned numerically."""

import math

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from zlab import flow


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 4, 6, 6, generator=g), torch.randn(8, 4, 6, 6, generator=g), torch.rand(8, generator=g)


def test_endpoints_are_data_and_noise(pair):
    x0, eps, _ = pair
    assert torch.equal(flow.add_noise(x0, eps, 0.0), x0)
    assert torch.equal(flow.add_noise(x0, eps, 1.0), eps)
    assert torch.allclose(flow.add_noise(x0, eps, 0.25), 0.75 * x0 + 0.25 * eps)


def test_velocity_is_time_derivative_of_path(pair):
    x0, eps, t = pair
    h = 1e-3
    fd = (flow.add_noise(x0.double(), eps.double(), t.double() + h) - flow.add_noise(x0.double(), eps.double(), t.double() - h)) / (2 * h)
    assert torch.allclose(fd, flow.velocity_target(x0, eps).double(), atol=1e-9)


def test_x0_and_eps_recovery_from_true_velocity(pair):
    x0, eps, t = pair
    x_t, v = flow.add_noise(x0, eps, t), flow.velocity_target(x0, eps)
    assert torch.allclose(flow.x0_from_velocity(x_t, v, t), x0, atol=1e-5)
    assert torch.allclose(flow.eps_from_velocity(x_t, v, t), eps, atol=1e-5)


def test_one_euler_step_with_true_velocity_is_exact(pair):
    # The path is straight: a single Euler step from t = 1 to t = 0 lands on x0.
    x0, eps, _ = pair
    x1 = flow.add_noise(x0, eps, 1.0)
    assert torch.allclose(flow.euler_step(x1, flow.velocity_target(x0, eps), 1.0, 0.0), x0, atol=1e-6)
    x_half = flow.euler_step(x1, flow.velocity_target(x0, eps), 1.0, 0.5)
    assert torch.allclose(x_half, flow.add_noise(x0, eps, 0.5), atol=1e-6)


def test_time_shift_fixed_points_and_monotone():
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    for s in (0.5, 1.0, 3.0, 6.0):
        w = flow.time_shift(t, s)
        assert w[0] == 0 and w[-1] == 1
        assert bool((w[1:] > w[:-1]).all())
    assert torch.allclose(flow.time_shift(t, 1.0), t)
    assert math.isclose(float(flow.time_shift(torch.tensor(0.5), 3.0)), 0.75)


@pytest.mark.parametrize("dynamic,shift,seq_len", [(False, 3.0, 16), (True, 1.0, 16), (True, 1.0, 4096)])
def test_time_shift_matches_scheduler(dynamic, shift, seq_len):
    sched = FlowMatchEulerDiscreteScheduler(shift=shift, use_dynamic_shifting=dynamic)
    base = torch.linspace(1.0, 1 / 8, 8)
    mu = flow.resolution_mu(seq_len)
    sched.set_timesteps(sigmas=base.tolist(), mu=mu)
    ours = flow.time_shift(base.double(), math.exp(mu) if dynamic else shift)
    assert torch.allclose(sched.sigmas[:-1].double(), ours, atol=1e-6)


def test_resolution_mu_endpoints():
    assert math.isclose(flow.resolution_mu(256), 0.5)
    assert math.isclose(flow.resolution_mu(4096), 1.15)
    assert math.isclose(flow.resolution_mu(1024), 0.5 + 0.65 * 768 / 3840)


def test_logit_normal_density_and_samples():
    t = torch.linspace(1e-4, 1 - 1e-4, 200001, dtype=torch.float64)
    for m, s in ((0.0, 1.0), (1.0, 1.0), (-0.5, 0.7)):
        pdf = flow.logit_normal_pdf(t, m, s)
        assert abs(float(torch.trapezoid(pdf, t)) - 1.0) < 1e-3
        draws = flow.sample_logit_normal(200_000, m, s, generator=torch.Generator().manual_seed(1))
        assert 0 < float(draws.min()) and float(draws.max()) < 1
        # median of a logit-normal is sigmoid(m)
        assert abs(float(draws.median()) - 1 / (1 + math.exp(-m))) < 5e-3
        mean = float(torch.trapezoid(pdf * t, t))
        assert abs(float(draws.mean()) - mean) < 3e-3


class _Recorder(torch.nn.Module):
    """Stands in for ZImageTransformer2DModel: records what it is called with, returns x0 - eps."""

    dtype = torch.float32

    def forward(self, frames, t, caps, return_dict=False):
        self.t, self.frames = t, frames
        return ([-torch.ones_like(f) * 2 for f in frames],)


def test_zimage_bridge_flips_clock_and_sign():
    rec = _Recorder()
    x = torch.randn(3, 16, 4, 6)
    t = torch.tensor([1.0, 0.75, 0.1])
    v = flow.zimage_velocity(rec, x, t, [torch.zeros(2, 8)] * 3)
    assert torch.allclose(rec.t, torch.tensor([0.0, 0.25, 0.9]))  # model clock: 1 = clean
    assert rec.frames[0].shape == (16, 1, 4, 6)  # (C, F, H, W) per sample
    assert v.shape == x.shape and torch.all(v == 2.0)  # sign flipped
