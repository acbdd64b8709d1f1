"""The teacher's ship step: guidance chosen on validation, measured on test, a model card with every table."""

import json

import pytest

from zlab.tiny import build_tiny_pipeline
from zlab.train.recipe import TeacherEval, calibrate_open_prob, ship_teacher
from zlab.train.teacher_card import calibration_table


def test_ship_teacher_chooses_on_validation_and_reports_test(tmp_path):
    pipe = build_tiny_pipeline("micro", seed=0)
    plan = TeacherEval(choose_per_count=1, choose_seeds=2, steps_per_count=1, steps_seeds=2, named_seeds=1,
                       named_prompts=2)
    record = ship_teacher(pipe, tmp_path / "teacher", guidance_candidates=(0.0, 1.0), plan=plan)
    sampling = json.loads((tmp_path / "teacher" / "sampling.json").read_text())
    best = max(record["guidance_sweep_validation"].items(), key=lambda kv: kv[1]["score"])
    assert sampling["guidance_scale"] == float(best[0]) and sampling["num_inference_steps"] == 50
    assert {r["size"] for r in record["named"]} == {"64x64", "64x96", "96x64"}
    settings = {r["setting"] for r in record["steps"]}
    assert len(settings) == 12 and "teacher 1 step, no CFG" in settings and "teacher 50 steps + CFG" in settings
    groups = {r["group"] for r in record["steps"]}
    assert {"0", "1", "2", "3", "4", "5", "2+"} <= groups
    for row in record["steps"]:
        assert 0.0 <= row["valid"] <= 1.0 and row["fd"] >= 0
    card = (tmp_path / "teacher" / "README.md").read_text()
    assert "test set" in card and "| teacher 1 step, no CFG |" in card and "FD to the teacher's own 50-step" in card
    assert "validation" in card and "gap of" in card


def test_calibrate_open_prob_picks_the_best_validation_score():
    plan = TeacherEval(choose_per_count=1, choose_seeds=2)
    candidates = {0.1: build_tiny_pipeline("micro", seed=0), 0.3: build_tiny_pipeline("micro", seed=1)}
    record = calibrate_open_prob(candidates, guidance_candidates=(0.0, 1.0), plan=plan)
    assert set(record["candidates"]) == {"0.1", "0.3"}
    for row in record["candidates"].values():
        assert set(row["sweep"]) == {"0", "1"}
        assert row["score"] == max(v["score"] for v in row["sweep"].values())
    assert record["chosen"] == float(max(record["candidates"], key=lambda p: record["candidates"][p]["score"]))
    assert record["candidates"]["0.1"]["transformer"] != record["candidates"]["0.3"]["transformer"]  # which teacher
    card = calibration_table(record)
    assert "(chosen)" in card and card.count("\n") == 3
    with pytest.raises(ValueError, match="at least 2"):
        calibrate_open_prob({0.3: candidates[0.3]}, plan=plan)
