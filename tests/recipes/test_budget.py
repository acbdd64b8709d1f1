"""One-step validity against the training budget (zlab.recipes.budget): points from a record, a line in log2(steps)."""

import json
import math

import pytest

from zlab.recipes.budget import budget_points, format_budget, log_fit, steps_to


def _run(variant, seed, valid):
    return {"variant": variant, "seed": seed, "metrics": {"student 1 step": {"2+": {"valid": valid}}}}


def test_a_family_is_read_from_its_record_and_its_line_predicts_a_budget(tmp_path):
    record = {"runs": [_run("a", 0, 0.60), _run("a", 1, 0.62), _run("a, x4", 0, 0.70), _run("a, x4", 1, 0.72),
                       _run("other", 0, 0.9)]}
    (tmp_path / "r.json").write_text(json.dumps(record))
    families = {"a": ("r.json", {100: "a", 400: "a, x4"}), "missing": ("none.json", {1: "a", 2: "b"})}
    points = budget_points(tmp_path, families)
    assert list(points) == ["a"]  # a family without its record on disk is left out
    assert points["a"] == [{"steps": 100, "value": pytest.approx(0.61), "seeds": 2, "spread": pytest.approx(0.02)},
                           {"steps": 400, "value": pytest.approx(0.71), "seeds": 2, "spread": pytest.approx(0.02)}]
    intercept, per_doubling = log_fit(points["a"])
    assert per_doubling == pytest.approx(0.05)  # +0.10 over two doublings
    assert steps_to(0.81, (intercept, per_doubling)) == pytest.approx(1600)
    assert "1,600 (4x the largest budget measured)" in format_budget(points, 0.81)
    assert "they differ by 0.020 to 0.020 at one step, so read" in format_budget(points, 0.81)


def test_a_recipe_that_does_not_grow_never_reaches_the_target():
    assert steps_to(0.9, (0.7, 0.0)) == math.inf
    assert steps_to(0.9, (0.7, -0.01)) == math.inf
    with pytest.raises(ValueError, match="two different budgets"):
        log_fit([{"steps": 10, "value": 0.5}, {"steps": 10, "value": 0.6}])
