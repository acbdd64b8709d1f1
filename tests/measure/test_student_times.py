"""Samplers at shifted times (zlab.measure.student_times)."""

import math

import pytest
import torch

from zlab.measure.student_times import best_shifts, exact_times, format_times, shifted_times, sweep
from zlab.zimage import load_pipeline, read_sampling, schedule


def test_a_shift_moves_logit_t_by_its_log_and_keeps_the_ends():
    times = shifted_times(4, 3.0)
    assert times[0] == pytest.approx(1.0)
    for t, u in zip(times[1:], shifted_times(4, 1.0)[1:]):
        assert math.log(t / (1 - t)) - math.log(u / (1 - u)) == pytest.approx(math.log(3.0))
    assert shifted_times(4, 1.0) == pytest.approx([1.0, 0.75, 0.5, 0.25])
    with pytest.raises(ValueError, match="positive"):
        shifted_times(2, 0.0)


def test_the_pipeline_samples_exactly_the_times_given(tiny_pipe):
    exact = exact_times(tiny_pipe)
    times = shifted_times(4, 2.0)
    got = schedule(exact.scheduler, 4, 64, 96, sigmas=times)[:-1]
    torch.testing.assert_close(got, torch.tensor(times, dtype=got.dtype))
    shifted = schedule(tiny_pipe.scheduler, 4, 64, 96, sigmas=times)[:-1]  # the teacher's own scheduler shifts again
    assert not torch.allclose(shifted, got)


def test_a_sweep_measures_every_cell_and_names_the_best_shift():
    teacher = "checkpoints/shapes-teacher"
    samplers = {"teacher": (load_pipeline(teacher), read_sampling(teacher))}
    record = sweep(samplers, steps=(2,), shifts=(1.0, 3.0), sizes={16: (64, 64)}, per_count=2, k=2)
    cells = {c["shift"]: c for c in record["cells"]}
    assert set(cells) == {1.0, 3.0} and all(c["prompts"] > 0 for c in cells.values())
    assert cells[1.0]["valid_vs_shift_1"] == 0 and 0 <= cells[3.0]["valid"] <= 1
    best = best_shifts(record)[0]
    assert best["best_shift"] == max(cells, key=lambda s: cells[s]["valid"]) and best["best_shift"] in best["not_told_apart"]
    table = format_times(record)
    assert "| teacher | 16 | 2 |" in table and "shift 3" in table
    with pytest.raises(ValueError, match="include 1.0"):
        sweep(samplers, shifts=(2.0,))
