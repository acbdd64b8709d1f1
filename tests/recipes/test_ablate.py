"""`zlab ablate` at tiny size: a grid of two variants x two training seeds, measured, recorded, skipped on restart."""

import json
import math

import pytest

from zlab.measure.settings import Setting
from zlab.recipes import ablate
from zlab.zimage import save_pipeline

T2 = Setting("teacher", 2, cfg=True, note="sampling.json").label  # the teacher reference, at its sampling.json
SAMPLING = {"num_inference_steps": 2, "guidance_scale": 1.0, "cfg_truncation": 1.0, "height": 64, "width": 64}


def _grid_files(tmp_path, teacher, variants: str, split: str = "validation") -> str:
    (tmp_path / "base.toml").write_text(
        f'[data]\nteacher = "{teacher}"\nfolder = "{tmp_path / "synth"}"\nrounds = 1\n'
        '[train]\nsteps = 4\nbatch_size = 3\ncheckpoint_every = 2\nstudent_lr = 1e-4\n'
        '[ladd]\nblocks = [1, 3]\nhead_hidden = 8\nwarmup_steps = 2\n')
    grid = tmp_path / "grid.toml"
    grid.write_text(f'base = "{tmp_path / "base.toml"}"\nseeds = [0, 1]\nsplit = "{split}"\nper_count = 1\n'
                    f'per_prompt = 2\nsynth_prompts = 6\n\n[shared]\ntrain.steps = 2\n\n{variants}')
    return str(grid)


VARIANTS = '''[[variant]]
name = "base"
claim = "the base recipe"

[[variant]]
name = "m-2"
claim = "a lower t-hat mean"
set = { ladd.t_hat_m = -2.0 }
'''


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, tiny_pipe):
    return save_pipeline(tiny_pipe, tmp_path_factory.mktemp("ablate") / "teacher", sampling=SAMPLING)


def test_a_grid_runs_every_variant_and_seed_once_and_a_restart_skips_them(teacher, tmp_path, monkeypatch):
    grid = ablate.load_grid(_grid_files(tmp_path, teacher, VARIANTS))
    out = tmp_path / "ablations.json"
    record = ablate.run_grid(grid, out, tmp_path / "runs", progress=False)
    assert sorted((r["variant"], r["seed"]) for r in record["runs"]) == [("base", 0), ("base", 1), ("m-2", 0),
                                                                         ("m-2", 1)]
    assert json.loads(out.read_text()) == json.loads(json.dumps(record))
    assert record["wall_s"] > sum(r["train_s"] + r["measure_s"] for r in record["runs"])  # + data and references
    for run in record["runs"]:
        assert run["split"] == "validation" and set(run["metrics"]) == {"student 1 step", "student 2 steps", "student 4 steps"}
        for groups in run["metrics"].values():
            assert set(groups) == {"0", "2+", "all"}
            assert 0.0 <= groups["all"]["valid"] <= 1.0 and groups["all"]["fd_teacher"] >= 0
    assert record["runs"][2]["set"] == {"ladd": {"t_hat_m": -2.0}}
    ref = record["references"]["64x64"]  # what the runs are read against: the teacher (2 steps here), the renders
    assert set(ref["teacher"]) == {T2} and set(ref["teacher"][T2]) == {"0", "2+", "all"}
    assert 0.0 <= ref["teacher"][T2]["all"]["valid"] <= 1.0 and ref["teacher"][T2]["all"]["fd_teacher"] >= 0
    assert ref["renders"]["all"]["valid"] > 0.9 and 0.0 <= ref["renders"]["all"]["coverage_entropy"] <= 1.0
    # different training seeds train different students (their runs differ), one teacher's data serves both
    assert (tmp_path / "runs" / "base" / "seed0").is_dir() and (tmp_path / "runs" / "base" / "seed1").is_dir()
    from zlab.shapes import prompt_sets
    from zlab.train.synth import SynthData

    assert SynthData.load(tmp_path / "synth").prompts == prompt_sets.prompts("train")[:6]  # synth_prompts

    def no_training(*args, **kwargs):
        raise AssertionError("a finished (variant, seed) was trained again")

    monkeypatch.setattr(ablate, "train_student", no_training)
    again = ablate.run_grid(grid, out, tmp_path / "runs", progress=False)
    assert len(again["runs"]) == 4 and again["wall_s"] == record["wall_s"]  # nothing left to do: nothing written

    rows = ablate.summary(record)
    assert [(r["variant"], r["setting"]) for r in rows][:3] == [("base", "student 1 step"), ("base", "student 2 steps"), ("base", "student 4 steps")]
    assert all(r["seeds"] == 2 for r in rows)
    verdict = ablate.compare(record, "m-2", "base", Setting("student", 4).label, "all", "valid")
    assert verdict["seeds"] == 2 and verdict["verdict"] in {"better", "worse", "inconclusive"}
    table = ablate.format_summary(record)
    assert "| m-2 | 4 | 2 |" in table and "| *teacher, 64x64* | 2 | – |" in table and "| *renders, 64x64* |" in table


def test_intervals_use_student_t():
    mean, low, high = ablate.interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and high - mean == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    assert math.isnan(ablate.interval([1.0])[1])
    assert ablate.t95(40) == 1.96 and ablate.t95(11) == 2.228  # between tabled dofs: the wider one below
    record = {"runs": [{"variant": v, "seed": s, "metrics": {"student 1 step": {"2+": {"valid": x}}}}
                       for v, xs in (("a", (0.5, 0.6, 0.7)), ("b", (0.7, 0.8, 0.9))) for s, x in enumerate(xs)]}
    better = ablate.compare(record, "b", "a", "student 1 step", "2+", "valid")  # +0.2 on every seed: an interval of width 0
    assert better["diff"] == pytest.approx(0.2) and better["verdict"] == "better"
    assert ablate.compare(record, "a", "b", "student 1 step", "2+", "valid")["verdict"] == "worse"


def test_a_claim_holds_only_when_every_other_arm_is_worse_beyond_its_interval():
    def run(variant, seed, valid):
        return {"variant": variant, "seed": seed,
                "metrics": {Setting("student", n).label: {"2+": {"valid": valid + 0.01 * n}} for n in (1, 2, 4)}}

    record = {"runs": [run("lad", s, 0.8 + 0.01 * s) for s in range(3)] + [run("alt", s, 0.6 + 0.02 * s) for s in range(3)]
              + [run("same", s, 0.8 + (0.05 if s == 1 else -0.02 * s)) for s in range(3)]}
    held = ablate.claim_verdict(record, "lad", ["alt"])
    assert held["verdict"] == "holds" and held["diffs"]["alt"]["diff"] == pytest.approx(-0.2 + 0.01)
    assert ablate.claim_verdict(record, "alt", ["lad"])["verdict"] == "refuted"
    assert ablate.claim_verdict(record, "lad", ["alt", "same"])["verdict"] == "inconclusive"


def test_grid_errors_name_the_problem(teacher, tmp_path):
    bad_key = VARIANTS + '\n[[variant]]\nname = "x"\nset = { ladd.t_hat_mean = 1.0 }\n'
    with pytest.raises(ValueError, match="t_hat_mean"):
        ablate.load_grid(_grid_files(tmp_path, teacher, bad_key))
    with pytest.raises(ValueError, match="split must be one of"):
        ablate.load_grid(_grid_files(tmp_path, teacher, VARIANTS, split="train"))
    with pytest.raises(ValueError, match="its own name"):
        ablate.load_grid(_grid_files(tmp_path, teacher, VARIANTS + '\n[[variant]]\nname = "base"\n'))
    grid = ablate.load_grid(_grid_files(tmp_path, teacher, VARIANTS))
    with pytest.raises(ValueError, match="not in the grid"):
        ablate.run_grid(grid, tmp_path / "a.json", tmp_path / "runs", only=["nope"], progress=False)


def test_the_recipe_is_chosen_on_validation_among_ladd_runs_by_the_declared_score():
    def run(variant, seed, valid, named, coverage, split="validation", **extra):
        metrics = {Setting("student", n).label: {"2+": {"valid": valid, "coverage_entropy": coverage}, "0": {"named_accuracy": named}}
                   for n in (1, 2, 4)}
        return {"variant": variant, "seed": seed, "split": split, "set": extra, "metrics": metrics}

    record = {"runs": [run("valid but collapsed", 0, 0.9, 0.5, 0.2), run("balanced", 0, 0.7, 0.7, 0.7),
                       run("balanced", 1, 0.6, 0.7, 0.7),  # seeds are averaged: 0.683 beats 0.533
                       run("regression only", 0, 1.0, 1.0, 1.0, ladd={"adv_weight": 0.0})]}  # a baseline, never chosen
    choice = ablate.choose_recipe(record)
    assert choice["chosen"] == "balanced" and set(choice["scores"]) == {"valid but collapsed", "balanced"}
    assert choice["scores"]["balanced"] == pytest.approx((0.65 + 0.7 + 0.7) / 3)
    with pytest.raises(ValueError, match="validation set, not on 'test'"):
        ablate.choose_recipe(record, split="test")
    record["runs"].append(run("peeked", 0, 1.0, 1.0, 1.0, split="test"))
    with pytest.raises(ValueError, match="measured on 'test'"):
        ablate.choose_recipe(record)


def test_the_one_step_rule_weighs_one_step_validity_twice_and_never_chooses_a_baseline():
    def run(variant, seed, valid, coverage, named, baseline=False):
        at = lambda n: {"2+": {"valid": valid if n == 1 else 1.0, "coverage_entropy": coverage},
                        "0": {"named_accuracy": named}}  # N = 2, 4 perfect: the rule reads N = 1 only
        return {"variant": variant, "seed": seed, "split": "validation", "set": {}, "baseline": baseline,
                "metrics": {Setting("student", n).label: at(n) for n in (1, 2, 4)}}

    record = {"rule": "one_step", "runs": [run("valid, one mode", 0, 0.8, 0.3, 0.9), run("covering", 0, 0.7, 0.8, 0.9),
                                           run("regression only", 0, 1.0, 1.0, 1.0, baseline=True)]}
    choice = ablate.choose_recipe(record)
    assert choice["chosen"] == "covering" and set(choice["scores"]) == {"valid, one mode", "covering"}
    assert choice["scores"]["valid, one mode"] == pytest.approx((1.6 + 0.3 + 0.9) / 4)


def test_the_mean_n_rule_scores_as_the_ladd_rule_but_any_non_baseline_variant_is_a_candidate():
    metrics = {Setting("student", n).label: {"2+": {"valid": 0.6, "coverage_entropy": 0.3}, "0": {"named_accuracy": 0.9}}
               for n in (1, 2, 4)}
    record = {"rule": "mean_n", "runs": [
        {"variant": "g = 1.5", "seed": 0, "split": "validation", "set": {"ladd": {"adv_weight": 0.0}}, "metrics": metrics},
        {"variant": "baseline", "seed": 0, "split": "validation", "set": {}, "baseline": True, "metrics": metrics}]}
    choice = ablate.choose_recipe(record)
    assert choice == {"chosen": "g = 1.5", "scores": {"g = 1.5": pytest.approx(0.6)}}


def test_a_synthesis_guidance_changes_the_data_and_its_folder(tmp_path):
    grid = ablate.load_grid("configs/synth-cfg-search.toml")
    configs = [grid.config(v, 0, tmp_path) for v in grid.variants]
    assert [c.data.sampling()["guidance_scale"] for c in configs] == [0.5, 0.0, 1.5, 3.0]
    assert len({c.data.folder for c in configs}) == 4  # each guidance its own synthetic data
    assert configs[0].data.sampling()["num_inference_steps"] == 50  # the rest is the teacher's sampling.json
    from zlab.train.config import load_config
    from zlab.train.distill_config import DistillConfig

    assert load_config(DistillConfig).data.sampling() is None  # by default, the teacher's own
    with pytest.raises(ValueError, match="data.guidance_scale"):
        load_config(DistillConfig, data={"guidance_scale": 1000.0})


@pytest.mark.parametrize("path", ["configs/ablations.toml", "configs/ladd-search.toml", "configs/dmd-search.toml",
                                  "configs/ladd-remake-search.toml", "configs/pairs-search.toml",
                                  "configs/dmd-followup.toml", "configs/synth-cfg-search.toml"])
def test_the_shipped_grids_load(path):
    grid = ablate.load_grid(path)  # builds every variant's config: a bad key or value fails here, not hours in
    assert len({v.name for v in grid.variants}) == len(grid.variants)
    assert grid.split == ("test" if "ablations" in path else "validation")
    assert grid.rule == ("one_step" if "dmd" in path or "pairs" in path else "mean_n" if "synth-cfg" in path else "ladd")
    for variant in grid.variants:  # each variant's config builds, the grid's pins in it
        config = grid.config(variant, 0, __import__("pathlib").Path("runs/x"))
        assert config.train.seed == 0 and config.method in ("ladd", "dmd")


def _record(arms: dict[str, tuple[float, ...]]) -> dict:
    """A record whose arm ``name`` has end-point validity ``values[s]`` for training seed s (flat over N)."""
    return {"runs": [{"variant": name, "seed": s, "metrics": {Setting("student", n).label: {"2+": {"valid": x}} for n in (1, 2, 4)}}
                     for name, values in arms.items() for s, x in enumerate(values)]}


def test_the_t_hat_sweet_spot_holds_inside_the_sweep_and_is_refuted_at_an_end():
    from zlab.recipes import claims

    arms = ("m=-2", "m=-1", "m=0", "m=1")
    inside = _record({"m=-2": (0.5, 0.52, 0.51), "m=-1": (0.6, 0.63, 0.61), "m=0": (0.7, 0.72, 0.73),
                      "m=1": (0.55, 0.56, 0.58)})
    v = claims.sweet_spot_verdict(inside, arms)
    assert v["best"] == "m=0" and v["verdict"] == "holds" and set(v["diffs"]) == {"m=-2", "m=1"}
    at_end = _record({"m=-2": (0.5, 0.52, 0.51), "m=-1": (0.6, 0.63, 0.61), "m=0": (0.7, 0.72, 0.73),
                      "m=1": (0.8, 0.83, 0.82)})
    assert claims.sweet_spot_verdict(at_end, arms)["verdict"] == "refuted"
    noisy_end = _record({"m=-2": (0.5, 0.52, 0.51), "m=-1": (0.6, 0.63, 0.61), "m=0": (0.79, 0.72, 0.9),
                         "m=1": (0.8, 0.83, 0.82)})  # m=1 best, but m=0 not worse beyond its interval
    assert claims.sweet_spot_verdict(noisy_end, arms)["verdict"] == "inconclusive"


def test_every_claim_with_all_its_arms_in_the_record_gets_a_row():
    from zlab.recipes import claims

    record = _record({"base": (0.7, 0.72, 0.71), "features: discriminative": (0.5, 0.55, 0.5),
                      "no regression term": (0.7, 0.75, 0.7)})  # "real: renders" is missing: no synthetic-data row
    rows = {v["claim"]: v for v in claims.verdicts(record)}
    assert set(rows) == {"Generative vs discriminative features", "A regression term beside the adversarial loss"}
    assert rows["Generative vs discriminative features"]["verdict"] == "holds"
    table = claims.format_verdicts(record)
    assert table.count("\n| ") == 2 and "**holds**" in table
    assert claims.why(rows["Generative vs discriminative features"]) == (
        "features: discriminative is worse than base beyond the interval.")
    regression = claims.why(rows["A regression term beside the adversarial loss"])  # +0.013, seeds disagree
    assert regression.startswith("no regression term's interval holds 0: with 3 seeds, a difference under ±0.")
    grid = {v.name for v in ablate.load_grid("configs/ablations.toml").variants}  # every arm named is in the grid
    assert {a for c in claims.CLAIMS for a in (c.favoured, *c.others)} <= grid
    assert {a for arms in claims.T_HAT_ARMS.values() for a in arms} <= grid


def test_distribution_matchings_claims_are_read_at_one_step_on_their_own_measure():
    from zlab.recipes import claims

    def run(variant, seed, valid, coverage):  # one-step values as given; 2 and 4 steps favour the other way
        at = lambda n: {"2+": {"valid": valid if n == 1 else 1 - valid, "coverage_entropy": coverage if n == 1 else 0.0}}
        return {"variant": variant, "seed": seed, "metrics": {Setting("student", n).label: at(n) for n in (1, 2, 4)}}

    arms = {"base": ((0.70, 0.50), (0.72, 0.52), (0.71, 0.49)), "DM only": ((0.60, 0.60), (0.61, 0.62), (0.62, 0.61)),
            "DMD + regression anchor": ((0.71, 0.60), (0.72, 0.61), (0.70, 0.62))}
    record = {"runs": [run(name, s, v, c) for name, values in arms.items() for s, (v, c) in enumerate(values)]}
    rows = {v["claim"]: v for v in claims.verdicts(record)}
    assert set(rows) == {"CFG augmentation is the engine (one step)", "A regression anchor restores coverage (one step)"}
    assert rows["CFG augmentation is the engine (one step)"]["verdict"] == "holds"  # one-step validity, not N = 2, 4
    anchor = rows["A regression anchor restores coverage (one step)"]
    assert anchor["verdict"] == "holds" and anchor["end_point"] == "coverage_entropy, 2+ open, student 1 step"
    one_seed = {"runs": [r for r in record["runs"] if r["seed"] == 0]}
    assert claims.why(claims.verdicts(one_seed)[0]) == "DM only: 1 paired seed, no interval yet."
    grid = {v.name for v in ablate.load_grid("configs/dmd-search.toml").variants}
    assert {a for c in claims.DMD_CLAIMS for a in (c.favoured, *c.others)} <= grid


def test_recipe_runs_show_the_declared_score_and_its_three_parts_per_seed():
    metrics = {Setting("student", n).label: {"2+": {"valid": 0.5 + 0.1 * k, "coverage_entropy": 0.4},
                                             "0": {"named_accuracy": 0.9}} for k, n in enumerate((1, 2, 4))}
    table = ablate.format_recipe_runs({"before": [{"seed": 3, "metrics": metrics}]})
    assert ablate.recipe_score(metrics) == pytest.approx((0.6 + 0.4 + 0.9) / 3)
    assert ("| before | 3 | 0.633 | 0.500 / 0.600 / 0.700; 0.600 | 0.400 / 0.400 / 0.400; 0.400 | "
            "0.900 / 0.900 / 0.900; 0.900 |") in table


def test_side_measures_are_paired_by_seed_and_bold_only_beyond_their_interval():
    from zlab.recipes import claims

    def run(variant, seed, shift, fd, train_s):
        groups = {"2+": {"valid": 0.6 + shift + 0.01 * seed, "named_accuracy": 0.5 + 0.01 * seed,
                         "coverage_entropy": 0.7 + 0.03 * (-1) ** seed, "fd_teacher": fd + seed},
                  "0": {"valid": 0.9}}
        return {"variant": variant, "seed": seed, "train_s": train_s,
                "metrics": {Setting("student", n).label: groups for n in (1, 2, 4)}}

    record = {"runs": [run("base", s, 0.0, 500.0, 100.0 + s) for s in range(3)]
              + [run("alt", s, 0.05, 400.0, 300.0) for s in range(3)]}
    table = claims.format_side_measures(record, "base", ["alt"])
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1].removesuffix(" |") for line in table.splitlines()[2:]}
    assert rows["validity, 2+ open, N = 1"] == "**+0.050 [+0.050, +0.050]**"  # the same gain on every seed
    assert rows["coverage, 2+ open"] == "+0.000 [+0.000, +0.000]"  # the seeds differ, the arms do not: no bold
    assert rows["FD to teacher, 2+ open (lower is closer)"] == "**-100 [-100, -100]**"
    assert rows["training time, median s (this arm / favoured)"] == "300 / 101"


def test_seed_scores_pair_the_chosen_variant_with_each_other_by_seed():
    import json
    from pathlib import Path

    from zlab.recipes.ablate import format_seed_scores

    record = json.loads((Path(__file__).resolve().parents[2] / "docs" / "ladd-remake-search.json").read_text())
    text = format_seed_scores(record)
    assert "chosen by the rule: '+ whole-image heads'" in text and text.count("(paired by seed)") == 2
