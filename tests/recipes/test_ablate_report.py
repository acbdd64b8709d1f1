"""zlab.recipes.ablate_report: what ``zlab ablate`` prints of a record, by the split its grid is measured on."""

from zlab.measure.settings import Setting
from zlab.recipes import ablate
from zlab.recipes.ablate_report import format_report


def run(variant, seed, valid, named=0.7, coverage=0.7, **extra):
    metrics = {Setting("student", n).label: {"2+": {"valid": valid, "coverage_entropy": coverage, "fd_teacher": 700.0},
                                             "0": {"named_accuracy": named}} for n in (1, 2, 4)}
    return {"variant": variant, "seed": seed, "split": "validation", "set": extra, "metrics": metrics}


def test_the_choice_lists_scores_best_first_then_the_chosen_variant():
    assert ablate.format_choice({"chosen": "b", "scores": {"a": 0.5, "b": 0.61234}}) == (
        "0.612  b\n0.500  a\nchosen on validation: b")


def test_a_validation_report_ends_with_the_recipe_chosen_among_ladd_runs():
    record = {"runs": [run("collapsed", 0, 0.9, 0.5, 0.2), run("balanced", 0, 0.7),
                       run("regression only", 0, 1.0, 1.0, 1.0, ladd={"adv_weight": 0.0})]}
    text = format_report(record, "validation")
    assert text.startswith(ablate.format_summary(record) + "\n") and "Verdicts" not in text
    assert text.endswith("\n0.700  balanced\n0.533  collapsed\nchosen on validation: balanced")
    baseline_only = {"runs": [run("regression only", 0, 1.0, ladd={"adv_weight": 0.0})]}  # nothing to choose
    assert format_report(baseline_only, "validation") == ablate.format_summary(baseline_only)


def test_a_test_report_gives_the_claims_verdicts_and_chooses_nothing():
    record = {"runs": [run(name, s, x) for name, values in (("base", (0.7, 0.72, 0.71)),
                                                            ("features: discriminative", (0.5, 0.55, 0.5)))
                       for s, x in enumerate(values)]}
    text = format_report(record, "test")
    assert "\n\nVerdicts (validity, 2+ open, mean over N = 1, 2, 4; paired by training seed):\n\n| claim |" in text
    assert "| Generative vs discriminative features | base |" in text and "**holds**" in text
    assert "chosen on validation" not in text


def test_a_validation_report_gives_the_verdicts_of_the_claims_it_can_read():
    record = {"rule": "one_step", "runs": [run(name, s, x) for name, values in (("base", (0.7, 0.72)),
                                                                                  ("CA only", (0.1, 0.12)))
                                           for s, x in enumerate(values)]}
    text = format_report(record, "validation")
    assert "Verdicts on validation prompts" in text and "| Distribution matching is the shield (one step) | base |" in text
    assert text.endswith("chosen on validation: base")


def test_reference_and_guidance_points_read_the_records():
    import json
    from pathlib import Path

    from zlab.recipes.ablate_report import guidance_points, reference_points

    record = json.loads(Path("docs/dmd-search.json").read_text())
    points = reference_points(record)
    ref = record["references"]["64x64"]
    assert points["teacher"] == ref["teacher"]["teacher 50 steps + CFG (sampling.json)"]["2+"]
    assert points["renders"]["valid"] == 1.0
    teacher = json.loads(Path("checkpoints/shapes-teacher/eval.json").read_text())
    curve = guidance_points(teacher)
    assert set(curve) == set(teacher["guidance_sweep_validation"]) and 0 < curve["0.5"]["coverage_entropy"] < 1
