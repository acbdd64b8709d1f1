"""Lab 01's toy world: the vp path's formulas, the helpers' numbers, and what the trained models show."""

import math

import pytest
import torch

from zlab import flow, toy
from zlab.sampling import sample


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 2, generator=g).double(), torch.randn(16, 2, generator=g).double(), torch.rand(16, generator=g).double()


def test_sample_data_is_deterministic_and_labelled():
    x, labels = toy.sample_data(500, seed=3)
    x2, labels2 = toy.sample_data(500, seed=3)
    assert torch.equal(x, x2) and torch.equal(labels, labels2)
    assert not torch.equal(x, toy.sample_data(500, seed=4)[0])
    assert x.shape == (500, 2) and labels.min() >= 0 and labels.max() < toy.NUM_CLASSES
    # each blob is centred on its class centre with the documented spread
    big, big_labels = toy.sample_data(6000, seed=0)
    for k in range(toy.NUM_CLASSES):
        pts = big[big_labels == k]
        assert torch.allclose(pts.mean(0), toy.class_centres()[k], atol=0.1)
        assert abs(float(pts.std(0).mean()) - toy.BLOB_STD) < 0.05


def test_vp_velocity_is_time_derivative_of_path(pair):
    x0, eps, t = pair
    h = 1e-5
    fd = (toy.vp_add_noise(x0, eps, t + h) - toy.vp_add_noise(x0, eps, t - h)) / (2 * h)
    assert torch.allclose(fd, toy.vp_velocity_target(x0, eps, t), atol=1e-8)


def test_vp_path_endpoints_and_x0_recovery(pair):
    x0, eps, t = pair
    assert torch.allclose(toy.vp_add_noise(x0, eps, 0.0), x0)
    assert torch.allclose(toy.vp_add_noise(x0, eps, 1.0), eps, atol=1e-12)
    x_t = toy.vp_add_noise(x0, eps, t)
    assert torch.allclose(toy.vp_x0_from_velocity(x_t, toy.vp_velocity_target(x0, eps, t), t), x0, atol=1e-12)
    # at t = 1 the vp velocity is -(pi/2) x0: one Euler step lands at eps + (pi/2) x0, not at x0
    one_step = flow.euler_step(eps, toy.vp_velocity_target(x0, eps, 1.0), 1.0, 0.0)
    assert torch.allclose(one_step, eps + math.pi / 2 * x0, atol=1e-12)


def test_conditional_paths_match_flow_and_straightness_separates_them(pair):
    x0, eps, _ = pair
    ts = torch.linspace(1, 0, 201, dtype=torch.float64)
    lin = toy.conditional_paths("linear", x0, eps, ts)
    assert lin.shape == (201, 16, 2)
    assert torch.allclose(lin[50], flow.add_noise(x0, eps, ts[50]))
    records = {}
    for path in ("linear", "vp"):
        xs = toy.conditional_paths(path, x0, eps, ts)
        vs = torch.stack([toy.noised_and_target(path, x0, eps, t.expand(16))[1] for t in ts[:-1]])
        records[path] = toy.straightness({"t": ts, "x": xs, "v": vs})
    assert float(records["linear"].abs().max()) < 1e-20  # a straight segment at constant speed
    assert float(records["vp"].min()) > 0.01
    with pytest.raises(ValueError):
        toy.noised_and_target("ddim", x0, eps, ts[:16])


def test_time_shift_pdf_is_the_density_of_shifted_uniform_times():
    u = torch.rand(200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for shift in (0.5, 1.0, 3.0):
        grid = torch.linspace(0, 1, 100_001, dtype=torch.float64)
        assert abs(float(torch.trapezoid(toy.time_shift_pdf(grid, shift), grid)) - 1) < 1e-6
        hist = torch.histc(flow.time_shift(u, shift), bins=20, min=0, max=1) / (len(u) * 0.05)
        centres = torch.arange(20, dtype=torch.float64) * 0.05 + 0.025
        assert torch.allclose(hist, toy.time_shift_pdf(centres, shift), rtol=0.05)


def test_model_shapes_and_cfg_call_count():
    model = toy.ToyVelocity()
    x = torch.randn(10, 2)
    labels = torch.arange(10) % toy.NUM_CLASSES
    assert model(x, torch.rand(10), labels).shape == (10, 2)
    assert model(x, 0.5, labels).shape == (10, 2)  # scalar t broadcasts
    assert model.null_labels(3).tolist() == [toy.NUM_CLASSES] * 3
    ts = toy.uniform_timesteps(8)
    assert sample(model, x, ts, labels).nfe == 8
    assert sample(model, x, ts, labels, model.null_labels(10), s=3.0).nfe == 16
    # truncation 0.5 guides the steps at t in {1, 7/8, ..., 1/2}: 5 of the 8
    assert sample(model, x, ts, labels, model.null_labels(10), s=3.0, cfg_truncation=0.5).nfe == 13


def test_trajectory_records_the_sampler_path():
    model = toy.ToyVelocity()
    noise = torch.randn(7, 2)
    labels = torch.arange(7) % toy.NUM_CLASSES
    traj = toy.trajectory(model, noise, labels, toy.uniform_timesteps(5), s=2.0)
    assert traj["t"].shape == (6,) and traj["x"].shape == (6, 7, 2) and traj["v"].shape == (5, 7, 2)
    assert torch.equal(traj["x"][0], noise)
    final = sample(model, noise, toy.uniform_timesteps(5), labels, model.null_labels(7), s=2.0).latents
    assert torch.equal(traj["x"][-1], final)
    # consecutive states differ by exactly one Euler step with the recorded velocity
    for i in range(5):
        step = flow.euler_step(traj["x"][i], traj["v"][i], traj["t"][i], traj["t"][i + 1])
        assert torch.allclose(step, traj["x"][i + 1], atol=1e-6)


@pytest.fixture(scope="module")
def trained():
    return {path: toy.train_toy(path, steps=800, seed=0, progress=False) for path in ("linear", "vp")}


def test_training_lowers_the_loss(trained):
    for _, losses in trained.values():
        assert sum(losses[-100:]) / 100 < 0.8 * sum(losses[:20]) / 20


def test_straight_path_has_smaller_few_step_euler_error(trained):
    noise = torch.randn(600, 2, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(600) % toy.NUM_CLASSES
    err = {path: toy.euler_error_vs_steps(model, noise, labels, steps=(1, 2, 64), reference_steps=256)
           for path, (model, _) in trained.items()}
    # measured ~0.55 vs ~1.3 at one step, ~0.35 vs ~0.7 at two
    assert err["linear"][1] < 0.7 * err["vp"][1]
    assert err["linear"][2] < 0.7 * err["vp"][2]
    for path in err:  # and Euler converges: 64 steps is close to the reference
        assert err[path][64] < 0.1 * err[path][1]


def test_guidance_increases_class_separation(trained):
    model, _ = trained["linear"]
    labels = torch.arange(3000) % toy.NUM_CLASSES
    acc = {s: toy.nearest_centre_accuracy(toy.sample_toy(model, labels, steps=16, s=s, seed=2), labels)
           for s in (1.0, 2.0)}
    data_acc = toy.nearest_centre_accuracy(*toy.sample_data(3000, seed=2))
    assert abs(acc[1.0] - data_acc) < 0.02  # s = 1 keeps the overlap of real data (~1% strays; measured 99.1%)
    assert acc[2.0] > acc[1.0] + 0.005  # guidance pulls the strays into their own blob (measured 100%)
