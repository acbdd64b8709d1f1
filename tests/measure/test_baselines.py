"""The side-by-side table from shipped eval.json files."""

import json

import pytest

from zlab.measure.baselines import (
    TEACHER_RECIPE,
    finding_lines,
    format_findings,
    group_table,
    shipped_rows,
    student_findings,
)


def _row(setting, group, valid, prompts=10, nfe=1):
    return {"setting": setting, "group": group, "nfe": nfe, "prompts": prompts, "valid": valid, "valid_se": 0.01,
            "named_accuracy": 0.5, "named_accuracy_se": 0.02, "coverage_entropy": float("nan"),
            "coverage_entropy_se": float("nan"), "fd": 12.34, "fd_teacher": 5.0}


def test_rows_of_teacher_and_students_side_by_side(tmp_path):
    for name, record in {"teacher": {"steps": [_row("teacher 1 step, no CFG", "2+", 0.4, 24),
                                               _row("teacher 50 steps + CFG", "2+", 0.95, 24, 100)]},
                         "ladd": {"open": [_row("teacher 50 steps + CFG (sampling.json)", "2+", 0.95, 24, 100),
                                           _row("student 1 step", "2+", 0.8, 24)]},
                         "reg": {"open": [_row("student 1 step", "2+", 0.3, 24)]},
                         "bad": {"open": [_row("student 1 step", "2+", 0.3, 12)]}, "none": {}}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "eval.json").write_text(json.dumps(record))
    rows = shipped_rows(tmp_path / "teacher", {"LADD student": tmp_path / "ladd", "regression student": tmp_path / "reg"})
    assert [r["setting"] for r in rows] == ["teacher 1 step, no CFG", "teacher 50 steps + CFG", "LADD student 1 step",
                                            "regression student 1 step"]
    table = group_table(rows, "2+")
    assert "| LADD student 1 step | 1 | 0.800 ± 0.010 | 0.500 ± 0.020 |  | 5.0 | 12.3 |" in table
    assert table.count("\n") == 5
    with pytest.raises(ValueError, match="not the same test plan"):
        shipped_rows(tmp_path / "teacher", {"x": tmp_path / "bad"})
    with pytest.raises(ValueError, match="no open test rows"):
        shipped_rows(tmp_path / "teacher", {"x": tmp_path / "none"})


def _open(setting, group, valid, coverage=0.8, fd_teacher=5.0, named=0.9, nfe=1):
    return {"setting": setting, "group": group, "nfe": nfe, "valid": valid, "valid_se": 0.01,
            "coverage_entropy": coverage, "coverage_entropy_se": 0.02, "named_accuracy": named,
            "named_accuracy_se": 0.02, "fd_teacher": fd_teacher}


def test_findings_are_differences_with_their_standard_errors_and_no_verdicts():
    rows = [_open("teacher 50 steps + CFG", "2+", 0.95, 0.85, 1.0, nfe=100),
            _open("teacher 1 step, no CFG", "2+", 0.45, 0.7, 40.0),
            _open("LADD student 1 step", "2+", 0.94, 0.66, 25.0), _open("LADD student 2 steps", "2+", 0.7, 0.8, 9.0)]
    rows[2]["prompts"] = 24
    found = student_findings(rows, steps=(1, 2))
    one = {(f["column"], f["key"]): f for f in found if f["steps"] == 1}
    valid = one[(TEACHER_RECIPE, "valid")]
    assert valid["difference"] == pytest.approx(-0.01) and valid["difference_se"] == pytest.approx(0.02 ** 0.5 / 10)
    assert one[("teacher N steps, no CFG", "valid")]["difference"] == pytest.approx(0.49)
    assert ("regression student N steps", "valid") not in one  # never shipped: left out
    assert not any(f["steps"] == 2 and f["column"] == "teacher N steps, no CFG" for f in found)
    table = format_findings(found)
    assert "| 1 | validity, 2+ open (24 prompts) | 0.940 ± 0.010 | -0.010 ± 0.014 (-0.7 SE) | +0.490 ± 0.014 (+34.6 SE) |" in table
    lines = finding_lines(found, TEACHER_RECIPE)
    assert "- validity, 2+ open, student - teacher 50 steps + CFG: within 2 SE at N = 1; behind by more than 2 SE at N = 2" in lines
    assert "FD to teacher, 2+ open, student - teacher 50 steps + CFG: farther from the teacher's samples at N = 1, 2" in lines
    assert "PASS" not in table + lines and "FAIL" not in table + lines
    assert lines in finding_lines(found) and "student - teacher N steps, no CFG: ahead" in finding_lines(found)
