"""The teacher's ship step: guidance chosen on validation, measured on test, a model card with every table."""

import json

import pytest

from zlab.recipes.cards import calibration_table
from zlab.recipes.teacher import (
    Targets,
    TeacherEval,
    best_guidance,
    calibrate_open_prob,
    calibrated_sweep,
    format_calibration,
    profile_image_size,
    ship_teacher,
)
from zlab.tiny import build_tiny_pipeline


def test_ship_teacher_chooses_on_validation_and_reports_test(tmp_path):
    pipe = build_tiny_pipeline("micro", seed=0)
    plan = TeacherEval(choose_per_count=1, choose_open2_per_count=1, choose_seeds=2, steps_per_count=1, steps_seeds=2,
                       named_seeds=1, named_prompts=2)
    record = ship_teacher(pipe, tmp_path / "teacher", guidance_candidates=(0.0, 1.0), plan=plan)
    sampling = json.loads((tmp_path / "teacher" / "sampling.json").read_text())
    sweep = {float(g): v for g, v in record["guidance_sweep_validation"].items()}
    assert sampling["guidance_scale"] == best_guidance(sweep) and sampling["num_inference_steps"] == 50
    for v in sweep.values():
        assert v["shortfall"] == pytest.approx(Targets().shortfall(v)) and set(v["open2"]) == {
            "valid", "named_accuracy", "coverage_entropy"}
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
    plan = TeacherEval(choose_per_count=1, choose_open2_per_count=1, choose_seeds=2)
    candidates = {0.1: build_tiny_pipeline("micro", seed=0), 0.3: build_tiny_pipeline("micro", seed=1)}
    record = calibrate_open_prob(candidates, guidance_candidates=(0.0, 1.0), plan=plan)
    assert set(record["candidates"]) == {"0.1", "0.3"}
    for row in record["candidates"].values():
        assert set(row["sweep"]) == {"0", "1"}
        assert row["score"] == max(v["score"] for v in row["sweep"].values())
    rows = record["candidates"]
    assert record["chosen"] == float(min(rows, key=lambda p: (round(rows[p]["shortfall"], 6), -rows[p]["score"])))
    assert record["candidates"]["0.1"]["transformer"] != record["candidates"]["0.3"]["transformer"]  # which teacher
    card = calibration_table(record)
    assert "(chosen)" in card and card.count("\n") == 3
    with pytest.raises(ValueError, match="at least 2"):
        calibrate_open_prob({0.3: candidates[0.3]}, plan=plan)


def _entry(named_joint, valid, named, coverage, score):
    entry = {"named_joint": named_joint, "score": score,
             "open2": {"valid": valid, "named_accuracy": named, "coverage_entropy": coverage}}
    return {**entry, "shortfall": Targets().shortfall(entry)}


def test_guidance_choice_meets_the_targets_before_the_score():
    # g = 1 has the best score but misses coverage; g = 0.5 meets every target: it wins
    sweep = {0.0: _entry(0.93, 0.94, 0.78, 0.91, 0.84), 0.5: _entry(0.96, 0.95, 0.91, 0.86, 0.87),
             1.0: _entry(0.97, 0.96, 0.93, 0.82, 0.88)}
    assert sweep[0.5]["shortfall"] == 0.0 and sweep[1.0]["shortfall"] == pytest.approx(0.03)
    assert sweep[0.0]["shortfall"] == pytest.approx(0.02 + 0.12)
    assert best_guidance(sweep) == 0.5
    # none meets all: the least total miss; equal misses: the higher score
    del sweep[0.5]
    assert best_guidance(sweep) == 1.0
    tie = {0.0: _entry(0.96, 0.95, 0.89, 0.90, 0.80), 1.0: _entry(0.96, 0.95, 0.90, 0.84, 0.85)}
    assert best_guidance(tie) == 1.0
    # a group with no prompts (NaN) counts no miss
    assert Targets().shortfall(_entry(float("nan"), 0.95, float("nan"), 0.9, 0.9)) == 0.0


def test_make_teacher_runs_the_whole_recipe_and_records_its_time(tmp_path):
    from zlab.recipes.teacher import make_teacher

    (tmp_path / "vae.toml").write_text('size = "micro"\nsteps = 2\nbatch_size = 4\ncheckpoint_every = 2\n'
                                       'stats_images = 64\nwarmup = 1\n')
    (tmp_path / "teacher.toml").write_text('size = "micro"\nsteps = 2\nbatch_size = 8\nnum_latents = 48\n'
                                           'checkpoint_every = 2\nwarmup = 1\nopen_prob = 0.3\n'
                                           'image_sizes = [[64, 64], [64, 96], [96, 64]]\n')
    plan = TeacherEval(choose_per_count=1, choose_open2_per_count=1, choose_seeds=2, steps_per_count=1, steps_seeds=2,
                       named_seeds=1, named_prompts=1)
    calibration = {"candidates": {"0.3": {"best_guidance": 1.0, "valid": 0.9, "named_accuracy": 0.9,
                                          "coverage_entropy": 0.8, "score": 0.87}}, "chosen": 0.3}
    record = make_teacher(tmp_path / "teacher", tmp_path / "vae.toml", tmp_path / "teacher.toml", tmp_path / "runs",
                          progress=False, calibration=calibration, plan=plan, guidance_candidates=(0.0, 1.0))
    timings = record["training"]["timings"]
    assert set(timings) == {"vae_s", "teacher_s", "reconstruction_s"} and all(v > 0 for v in timings.values())
    assert record["training"]["open_prob_calibration"] == calibration
    card = (tmp_path / "teacher" / "README.md").read_text()
    total = (sum(timings.values()) + record["measure_s"]) / 60
    assert f"{total:.1f} min in all" in card and "| 0.3 (chosen) | 1 |" in card and "shortfall" in card
    assert json.loads((tmp_path / "teacher" / "eval.json").read_text())["training"]["teacher_config"]["open_prob"] == 0.3


def test_make_teacher_stops_before_the_teacher_when_the_vae_round_trips_badly(tmp_path):
    from zlab.recipes.teacher import make_teacher

    # a 2-step VAE cannot give shapes back; the gate must refuse it before any teacher step runs
    (tmp_path / "vae.toml").write_text('size = "micro"\nsteps = 2\nbatch_size = 4\ncheckpoint_every = 2\n'
                                       'stats_images = 64\nwarmup = 1\nmin_roundtrip_joint = 0.5\n')
    (tmp_path / "teacher.toml").write_text('size = "micro"\nsteps = 2\nbatch_size = 8\nnum_latents = 48\n'
                                           'checkpoint_every = 2\nwarmup = 1\n')
    with pytest.raises(RuntimeError, match=r"joint accuracy 0\.\d+ .*below min_roundtrip_joint = 0.5"):
        make_teacher(tmp_path / "teacher", tmp_path / "vae.toml", tmp_path / "teacher.toml", tmp_path / "runs",
                     progress=False)
    assert (tmp_path / "runs" / "vae" / "vae" / "config.json").is_file()
    assert not (tmp_path / "runs" / "teacher").exists() and not (tmp_path / "teacher").exists()


def _calibration(fingerprint: str, criterion: bool = True) -> dict:
    """A calibration record that chose open_prob 0.3, whose sweep measured the teacher ``fingerprint``."""
    entry = {"score": 0.8, **({"shortfall": 0.1} if criterion else {})}
    return {"chosen": 0.3, "candidates": {"0.1": {"transformer": "first", "sweep": {"0.5": entry}},
                                          "0.3": {"transformer": fingerprint, "sweep": {"0.25": entry, "0.5": entry}}}}


def test_a_calibrated_sweep_is_reused_only_for_the_chosen_teacher_under_todays_criterion():
    entry = {"score": 0.8, "shortfall": 0.1}
    assert calibrated_sweep(_calibration("abc"), "abc") == {0.25: entry, 0.5: entry}
    assert calibrated_sweep(_calibration("abc"), "first") is None  # a candidate's teacher, but not the chosen one
    assert calibrated_sweep(_calibration("abc", criterion=False), "abc") is None  # measured before the targets


def test_ship_teacher_folder_marks_outside_training_and_reuses_the_calibrated_sweep(tmp_path, monkeypatch):
    from zlab.recipes import teacher
    from zlab.train.synth import teacher_fingerprint
    from zlab.zimage import load_pipeline, save_pipeline

    folder = save_pipeline(build_tiny_pipeline("micro", seed=0), tmp_path / "trained")
    calls = []
    monkeypatch.setattr(teacher, "ship_teacher", lambda pipe, out, guidance, **kw: calls.append((guidance, kw)) or {})
    calibration = _calibration(teacher_fingerprint(load_pipeline(folder).transformer))
    teacher.ship_teacher_folder(folder, tmp_path / "out", (0.5,), training={"teacher_s": 1.0}, calibration=calibration,
                                image_size=96)
    guidance, kw = calls[-1]
    assert guidance == (0.5,) and kw["image_size"] == 96
    assert kw["training"] == {"teacher_s": 1.0, "measured_apart": True, "open_prob_calibration": calibration}
    assert set(kw["sweep"]) == {0.25, 0.5}
    other = _calibration("another teacher")
    teacher.ship_teacher_folder(folder, tmp_path / "out", calibration=other)
    assert calls[-1][1]["training"] == {"open_prob_calibration": other} and calls[-1][1]["sweep"] is None
    teacher.ship_teacher_folder(folder, tmp_path / "out")
    assert calls[-1][1]["training"] is None and calls[-1][1]["sweep"] is None


def test_format_calibration_lists_each_candidate_at_its_best_guidance_then_the_choice():
    def row(g, valid):
        return {"best_guidance": g, "valid": valid, "named_accuracy": 0.9, "coverage_entropy": 0.8, "score": 0.85}

    text = format_calibration({"candidates": {"0.1": row(0.25, 0.91), "0.3": row(0.5, 0.9549)}, "chosen": 0.3})
    assert text.splitlines() == [
        "open_prob 0.1: best g 0.25, validity 0.910, named accuracy 0.900, coverage 0.800, score 0.850",
        "open_prob 0.3: best g 0.5, validity 0.955, named accuracy 0.900, coverage 0.800, score 0.850",
        "chosen on validation: open_prob = 0.3"]


@pytest.mark.parametrize("profile,side", [("cpu", 64), ("gpu", 128)])
def test_the_profile_image_size_is_the_profiles_teacher_config(monkeypatch, profile, side):
    monkeypatch.setenv("ZLAB_PROFILE", profile)
    assert profile_image_size() == side
