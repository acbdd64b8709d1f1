"""The side-by-side table from shipped eval.json files."""

import json

import pytest

from zlab.baselines import group_table, shipped_rows


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
