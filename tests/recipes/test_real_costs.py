"""scripts/real_ladd_costs.py counts each method's forwards per training sample as its step runs them."""

import importlib.util
from pathlib import Path

import pytest

from zlab.train.config import load_config
from zlab.train.distill_config import DistillConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def costs():
    spec = importlib.util.spec_from_file_location("real_costs", ROOT / "scripts" / "real_ladd_costs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_dmd_step_counts_the_student_both_terms_and_every_fake_update(costs):
    config = load_config(DistillConfig, ROOT / "configs" / "zimage-dmd-lora.toml")
    sim = 0.25 * (1 + 1.5 + 3)  # uniform student times, every t < 1 input simulated
    student = 1 + 1 + 1 + sim  # forward, recompute, backward to the adapter (LoRA: no weight gradient of the base)
    terms = (2 + 1) + 2  # DM: teacher cond + uncond (CFG on), fake score; CA: teacher cond + uncond
    fake = 3 * 3 + 2 * (1 + sim)  # three flow-matching updates, two of them on fresh student samples
    assert costs.step_flops(config, 1.0, 0.0) == pytest.approx(student + terms + fake)


def test_a_ladd_step_counts_the_tapped_teacher_on_both_paths(costs):
    config = load_config(DistillConfig, ROOT / "configs" / "zimage-ladd-full.toml")
    sim = 0.1 * 1 + 0.1 * 1.5 + 0.1 * 3  # LADD's [.7, .1, .1, .1] after warm-up, all simulated
    assert costs.step_flops(config, 1.0, 0.5) == pytest.approx(1 + 1 + 2 + sim + 4 * 0.5)
