"""Lab 06's and lab 07's figures: panels, traces, and plotted values and error bars equal to the data given."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zlab.measure.settings import Setting, student_steps
from zlab.viz.evaluation import (
    arm_figure,
    baseline_curves_figure,
    claim_differences_figure,
    family,
    family_cost_figure,
    recipe_search_figure,
)


def comparison_row(setting: Setting, nfe: int, acc: float) -> dict:
    return {"setting": setting.label, "nfe": nfe, "acc_joint": acc, "fd": 100 / nfe, "latency_ms": 2.0 * nfe}


def test_family_reads_the_setting_label():
    assert family(Setting("teacher", 4, cfg=True).label) == "teacher + CFG"
    assert family(Setting("teacher", 4, cfg=False).label) == "teacher, no CFG"
    assert family(Setting("student", 2).label) == "student"
    assert family(Setting("LADD start", 2).label) == "LADD start"


def test_family_cost_sorts_each_family_by_nfe_and_plots_its_values():
    rows = [comparison_row(Setting("student", 4), 4, 0.9), comparison_row(Setting("student", 1), 1, 0.6),
            comparison_row(Setting("teacher", 50, cfg=True), 100, 0.95),
            comparison_row(Setting("teacher", 4, cfg=True), 8, 0.1)]
    fig = family_cost_figure(rows)
    assert len(fig.data) == 4 * 3  # four families, three panels each (empty families keep their traces)
    student = [t for t in fig.data if t.name == "student"]
    assert list(student[0].x) == [1, 4] and list(student[0].y) == [0.6, 0.9]
    assert list(student[1].y) == [100.0, 25.0] and list(student[2].y) == [2.0, 8.0]
    assert [t.showlegend for t in student] == [True, False, False]
    teacher = next(t for t in fig.data if t.name == "teacher + CFG")
    assert list(teacher.x) == [8, 100]
    assert list(teacher.hovertext) == ["teacher 4 steps + CFG", "teacher 50 steps + CFG"]
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis2.type == "log" and fig.layout.yaxis.type != "log"
    assert student[0].error_y.array is None  # rows without a standard error draw no bars


def test_family_cost_names_the_prompts_and_draws_the_standard_errors():
    rows = [{**comparison_row(Setting("student", n), n, 0.5), "acc_joint_se": 0.01 * n} for n in (1, 2)]
    fig = family_cost_figure(rows, prompts="test prompts")
    assert fig.layout.annotations[0].text == "joint accuracy (test prompts)"
    accuracy = next(t for t in fig.data if t.name == "student")
    assert list(accuracy.error_y.array) == [0.01, 0.02]


def baseline_row(who: str, n: int, cfg, valid: float, group: str = "2+") -> dict:
    return {"setting": Setting(who, n, cfg=cfg).label, "group": group, "nfe": n * (2 if cfg else 1), "valid": valid,
            "valid_se": valid / 10, "coverage_entropy": 0.5, "coverage_entropy_se": 0.05, "fd_teacher": 300.0 / n}


def test_baseline_curves_error_bars_are_the_ses_and_the_teacher_is_a_dotted_line():
    rows = [baseline_row("LADD student", n, None, v) for n, v in ((1, 0.4), (2, 0.6), (4, 0.8))]
    rows += [baseline_row("teacher", 50, True, 0.95), baseline_row("LADD student", 1, None, 0.99, group="0")]
    fig = baseline_curves_figure(rows)
    assert len(fig.data) == 5 * 3  # teacher with and without CFG, the regression, LADD and DMD students
    assert [a.text for a in fig.layout.annotations] == ["validity", "coverage (normalised entropy)",
                                                       "FD to the teacher (lower is better)"]
    valid, coverage, fd = [t for t in fig.data if t.name == "LADD student"]
    assert list(valid.y) == [0.4, 0.6, 0.8] and np.allclose(valid.error_y.array, [0.04, 0.06, 0.08])
    assert list(coverage.error_y.array) == [0.05] * 3
    assert fd.error_y.array is None and list(fd.y) == [300.0, 150.0, 75.0]
    assert [s.y0 for s in fig.layout.shapes] == [0.95, 0.5, 6.0] and fig.layout.shapes[0].line.dash == "dot"
    assert fig.layout.title.text.startswith("2+ open attributes")


def test_baseline_curves_without_the_teacher_row_draw_no_line():
    fig = baseline_curves_figure([baseline_row("LADD student", 1, None, 0.4)], group="2+")
    assert not fig.layout.shapes


def search_run(valid: float) -> dict:
    cell = {"valid": valid, "valid_se": 0.01, "coverage_entropy": 0.7, "coverage_entropy_se": 0.02,
            "named_accuracy": 0.9, "named_accuracy_se": 0.03}
    return {"metrics": {s.label: {"2+": cell, "0": cell} for s in student_steps()}}


def test_recipe_search_labels_each_run_with_its_score_and_dashes_the_longer_budget():
    runs = {"a": search_run(0.5), "a, 2000 steps": search_run(0.6)}
    shown = {"a": ("recipe a", "grey"), "a, 2000 steps": ("recipe a, 2000 steps", "black")}
    fig = recipe_search_figure(runs, shown, {"a": 0.51234, "a, 2000 steps": 0.6})
    assert len(fig.data) == 2 * 3
    assert fig.data[0].name == "recipe a (score 0.512)" and fig.data[0].line.dash == "solid"
    assert fig.data[3].line.dash == "dash" and fig.data[3].line.color == "black"
    assert list(fig.data[3].y) == [0.6] * 3 and list(fig.data[1].error_y.array) == [0.02] * 3
    assert list(fig.data[2].y) == [0.9] * 3 and list(fig.data[0].x) == [1, 2, 4]


def test_claim_differences_one_row_per_arm_coloured_by_verdict():
    verdicts = [{"claim": "A", "diffs": {"x": {"diff": -0.1, "low": -0.2, "high": -0.05, "verdict": "worse"},
                                         "y": {"diff": 0.02, "low": -0.01, "high": 0.04, "verdict": "inconclusive"}}},
                {"claim": "B", "diffs": {"z": {"diff": 0.1, "low": 0.05, "high": 0.2, "verdict": "better"}}}]
    fig = claim_differences_figure(verdicts)
    (trace,) = fig.data
    assert list(trace.y) == ["A · x", "A · y", "B · z"] and list(trace.x) == [-0.1, 0.02, 0.1]
    assert list(trace.marker.color) == ["seagreen", "gray", "firebrick"]
    assert np.allclose(trace.error_x.array, [0.05, 0.02, 0.1])
    assert np.allclose(trace.error_x.arrayminus, [0.1, 0.03, 0.05])
    assert fig.layout.height == 120 + 30 * 3 and fig.layout.shapes[0].x0 == 0


@pytest.mark.parametrize("with_references", [True, False])
def test_arm_figure_one_trace_per_arm_and_measure_with_its_interval(with_references):
    summary = [{"variant": arm, "setting": s.label, "valid": v, "valid_low": v - 0.1, "valid_high": v + 0.2}
               for arm, v in (("base", 0.5), ("other", 0.3)) for s in student_steps()]
    references = {"teacher": {"teacher 50 steps + CFG": {"2+": {"valid": 0.9}}}, "renders": {"2+": {"valid": 0.95}}}
    fig = arm_figure(summary, references if with_references else None, ["base", "other"], [("valid", "validity")], "t")
    assert len(fig.data) == 2 and fig.data[0].name == "base" and list(fig.data[1].y) == [0.3] * 3
    assert np.allclose(fig.data[0].error_y.array, [0.2] * 3) and np.allclose(fig.data[0].error_y.arrayminus, [0.1] * 3)
    assert [s.y0 for s in fig.layout.shapes] == ([0.9, 0.95] if with_references else [])
    assert math.isclose(fig.data[1].x[0] - fig.data[0].x[0], 0.08)


def test_seeds_grid_figure_shows_each_column_framed_and_titled_with_its_measures():
    from zlab.measure.diversity import SeedsColumn, grid_image
    from zlab.viz.evaluation import seeds_grid_figure

    images = np.zeros((4, 8, 8, 3), np.uint8)
    record = {"valid": 0.75, "named_accuracy": float("nan"), "coverage_entropy": 0.5}
    columns = [SeedsColumn(name, images, ["✓"] * 3 + ["✗ shape"], record, 1, 1.0) for name in ("a", "b")]
    fig = seeds_grid_figure(columns, cols=2)
    assert len(fig.data) == 2 and np.array_equal(fig.data[1].z, grid_image(columns[1], cols=2))
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["a<br>valid 3/4 · coverage 0.50", "b<br>valid 3/4 · coverage 0.50"]
