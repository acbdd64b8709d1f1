"""What labs 01 and 03 say about the time shift: the mu ZImagePipeline computes vs the shift its scheduler applies."""

import json
import math
from pathlib import Path

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from zlab.flow import resolution_mu, time_shift
from zlab.zimage import REAL_SCHEDULER_CONFIG, REAL_TURBO_SCHEDULER_CONFIG, sampling_shift, schedule

ROOT = Path(__file__).resolve().parents[1]
TINY_TEACHER = ROOT / "checkpoints" / "shapes-teacher" / "scheduler" / "scheduler_config.json"


def stock_sigmas(config: dict, steps: int, mu: float | None) -> torch.Tensor:
    """Sigmas of the stock scheduler, called as ZImagePipeline calls it (linspace(1, 1/N, N) and mu)."""
    sched = FlowMatchEulerDiscreteScheduler.from_config(config)
    sched.set_timesteps(sigmas=torch.linspace(1.0, 1 / steps, steps).tolist(), mu=mu)
    return sched.sigmas[:-1]


@pytest.mark.parametrize("config, shift", [(REAL_SCHEDULER_CONFIG, 6.0), (REAL_TURBO_SCHEDULER_CONFIG, 3.0)])
def test_real_configs_sample_with_their_static_shift_at_1024(config, shift):
    mu, s = sampling_shift(config, 1024, 1024)
    assert mu == pytest.approx(1.15)  # what the pipeline computes from 4096 tokens...
    assert s == shift  # ...and what the scheduler applies instead
    grid = torch.linspace(1.0, 1 / 50, 50)
    expected = time_shift(grid, shift)
    for passed_mu in (mu, 0.0, 5.0, None):  # static shift: the mu passed changes nothing
        torch.testing.assert_close(stock_sigmas(config, 50, passed_mu), expected)
    assert not torch.allclose(expected, time_shift(grid, math.exp(mu)))  # e^1.15 = 3.16 is not used


def test_dynamic_shifting_uses_the_pipelines_mu():
    dynamic = {**REAL_SCHEDULER_CONFIG, "use_dynamic_shifting": True}
    mu, s = sampling_shift(dynamic, 1024, 1024)
    assert s == pytest.approx(math.exp(1.15))
    grid = torch.linspace(1.0, 1 / 50, 50)
    torch.testing.assert_close(stock_sigmas(dynamic, 50, mu), time_shift(grid, s))
    assert not torch.allclose(stock_sigmas(dynamic, 50, 0.0), stock_sigmas(dynamic, 50, mu))


def test_tiny_teacher_samples_and_trains_with_exp_mu_of_its_16_tokens():
    config = json.loads(TINY_TEACHER.read_text())
    assert config["use_dynamic_shifting"] is True
    mu, s = sampling_shift(config, 64, 64)
    assert mu == pytest.approx(resolution_mu(16)) and s == pytest.approx(1.583, abs=1e-3)
    sched = FlowMatchEulerDiscreteScheduler.from_config(config)
    torch.testing.assert_close(schedule(sched, 50, 64, 64)[:-1], stock_sigmas(config, 50, mu))
    torch.testing.assert_close(stock_sigmas(config, 50, mu), time_shift(torch.linspace(1.0, 1 / 50, 50), s))

    from zlab.train.config import load_config
    from zlab.train.teacher import TeacherConfig

    teacher = load_config(TeacherConfig, ROOT / "configs" / "shapes-teacher.toml")
    assert teacher.image_size == 64 and teacher.training_shift() == pytest.approx(s)  # trains where it samples
