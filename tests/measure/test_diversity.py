"""The seeds grid: same prompt and seeds in every column, scored by the open-caption measures."""

import numpy as np
import pytest

from zlab.measure.diversity import (
    BORDER,
    SeedsColumn,
    check_seeds,
    column_plan,
    grid_image,
    meant_steps,
    seeds_columns,
)
from zlab.shapes.metrics import open_renders, prompt_records
from zlab.tiny import build_tiny_pipeline

PROMPT = "a red shape in the top row"


def test_columns_sample_every_seed_and_score_the_prompt():
    teacher, student = build_tiny_pipeline("micro", seed=0), build_tiny_pipeline("micro", seed=1)
    sampling = {"num_inference_steps": 3, "guidance_scale": 1.0, "height": 64, "width": 64, "max_sequence_length": 64}
    plan = column_plan(teacher, student, sampling, naive_steps=1, baseline=student, size={"width": 96})
    names = [name for _, name, _ in plan]
    assert names == ["teacher 3 steps + CFG (g = 1)", "teacher 1 step + CFG (g = 1)", "regression student 1 step",
                     "regression student 4 steps", "LADD student 1 step", "LADD student 2 steps", "LADD student 4 steps"]
    assert all(setting["width"] == 96 and setting["height"] == 64 for _, _, setting in plan)
    assert [setting["guidance_scale"] for _, _, setting in plan] == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    seen = []
    columns = seeds_columns(plan[:2] + plan[4:5], PROMPT, check_seeds(5, 8), progress=lambda f, t: seen.append(f))
    assert seen == [0, 1 / 3, 2 / 3]
    assert [c.nfe for c in columns] == [6, 2, 1]  # CFG doubles the teacher's evaluations
    for c in columns:
        assert c.images.shape == (8, 64, 96, 3) and c.images.dtype == np.uint8 and len(c.verdicts) == 8
        assert 0.0 <= c.record["valid"] <= 1.0 and c.ms > 0
        assert sum(v.startswith("✓") for v in c.verdicts) <= round(c.record["valid"] * 8)


def test_summary_and_grid_of_a_collapsed_and_a_diverse_column():
    seeds = check_seeds(0, 8)
    renders = open_renders([PROMPT] * 8, seeds)  # the allowed distribution itself: valid, varied
    diverse = SeedsColumn("renders", renders, ["✓"] * 8, prompt_records(renders, [PROMPT] * 8, 8)[0], 0, 1.0)
    same = np.repeat(renders[:1], 8, 0)  # one picture for every seed: valid, right, coverage 0
    collapsed = SeedsColumn("one picture", same, ["✓"] * 8, prompt_records(same, [PROMPT] * 8, 8)[0], 1, 1.0)
    assert diverse.summary().startswith("valid 8/8 · named 8/8 · coverage 0.")
    assert collapsed.summary() == "valid 8/8 · named 8/8 · coverage 0.00"
    assert diverse.record["coverage_entropy"] > 0.5
    collapsed.verdicts[3] = "✗ 2 regions"
    grid = grid_image(collapsed, cols=2, scale=3, border=3)
    tile = 64 * 3 + 6
    assert grid.shape == (4 * tile, 2 * tile, 3)
    assert tuple(grid[tile, tile]) == BORDER["✗"] and tuple(grid[0, 0]) == BORDER["✓"]  # 4th image: row 2, column 2
    assert np.array_equal(grid[3:3 + 192:3, 3:3 + 192:3], same[0])  # nearest neighbour: every pixel kept


def test_an_extra_student_comes_last_at_its_steps_without_cfg():
    teacher, student, dmd = (build_tiny_pipeline("micro", seed=s) for s in (0, 1, 2))
    sampling = {"num_inference_steps": 3, "guidance_scale": 1.0, "height": 64, "width": 64}
    without = column_plan(teacher, student, sampling, naive_steps=1, baseline=student)
    plan = column_plan(teacher, student, sampling, naive_steps=1, baseline=student, extra=dmd, extra_steps=(1,))
    assert plan[:-1] == without  # the existing columns, in their order
    pipe, name, setting = plan[-1]
    assert pipe is dmd and name == "DMD student 1 step"
    assert setting == {"height": 64, "width": 64, "guidance_scale": 0.0, "num_inference_steps": 1}
    four = column_plan(teacher, student, sampling, extra=dmd, extra_who="DMD", extra_steps=meant_steps(4))
    assert [n for _, n, _ in four[-3:]] == ["DMD 1 step", "DMD 2 steps", "DMD 4 steps"] and len(four) == 2 + 3 + 3


@pytest.mark.parametrize("steps, meant", [(1, (1,)), (2, (1, 2)), (3, (1, 2)), (4, (1, 2, 4)), (8, (1, 2, 4))])
def test_meant_steps_reads_a_students_sampling_steps(steps, meant):
    assert meant_steps(steps) == meant


def test_meant_steps_refuses_zero_steps():
    with pytest.raises(ValueError, match="at least 1 step"):
        meant_steps(0)


@pytest.mark.parametrize("first, k, message", [(0, 4, "8 to 32 seeds"), (0, 33, "8 to 32 seeds"),
                                               (-1, 8, "first seed must be in")])
def test_bad_seeds_are_clear_errors(first, k, message):
    with pytest.raises(ValueError, match=message):
        check_seeds(first, k)
