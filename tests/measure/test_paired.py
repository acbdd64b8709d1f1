"""Students compared prompt by prompt (zlab.measure.paired)."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from zlab.measure.paired import compare_arms, format_paired, paired_difference, paired_folders


def test_a_paired_difference_is_the_mean_and_se_of_the_per_prompt_differences():
    d = paired_difference([1.0, 0.5, 1.0, float("nan")], [0.5, 0.5, 0.0, 1.0])
    diffs = np.array([0.5, 0.0, 1.0])  # the NaN prompt is left out of both
    assert d["prompts"] == 3 and d["mean"] == pytest.approx(0.5)
    assert d["se"] == pytest.approx(diffs.std(ddof=1) / math.sqrt(3)) and d["z"] == pytest.approx(0.5 / d["se"])
    # a shared prompt difficulty cancels: the arms' own SEs are large, the paired SE is 0
    same = paired_difference([1.0, 3.0, 2.0], [0.5, 2.5, 1.5])
    assert same["mean"] == 0.5 and same["se"] == pytest.approx(0.0, abs=1e-12) and math.isnan(same["z"])


def test_arms_are_compared_within_a_group_of_open_counts():
    rec = lambda o, v: {"open": o, "valid": v, "coverage_entropy": v / 2, "named_accuracy": float("nan")}
    records = {"a": [rec(0, 1.0), rec(2, 1.0), rec(3, 0.5)], "b": [rec(0, 0.0), rec(2, 0.5), rec(3, 0.5)]}
    comp = compare_arms(records, "2+")
    assert comp["arms"]["a"]["valid"]["mean"] == pytest.approx(0.75) and comp["arms"]["b"]["valid"]["mean"] == pytest.approx(0.5)
    assert comp["pairs"]["a - b"]["valid"]["mean"] == pytest.approx(0.25) and comp["pairs"]["a - b"]["valid"]["prompts"] == 2
    assert compare_arms(records, "0")["pairs"]["a - b"]["valid"]["prompts"] == 1


def test_paired_folders_measure_every_arm_on_the_same_prompts(teacher_and_data, tmp_path):
    teacher = str(teacher_and_data[0])
    record = paired_folders([teacher], [1, 2], split="validation", per_count=1, k=2)
    arms = list(record["prompts"])
    assert arms == ["teacher 1 step", "teacher 2 steps"]
    assert [r["prompt"] for r in record["prompts"][arms[0]]] == [r["prompt"] for r in record["prompts"][arms[1]]]
    assert {c["group"] for c in record["comparisons"]} == {"2+", "0"}
    json.dumps(record)  # the record is JSON
    assert "(paired)" in format_paired(record)
    with pytest.raises(ValueError, match="twice"):
        paired_folders([teacher, teacher], [1])
    with pytest.raises(ValueError, match="at least two arms"):
        paired_folders([teacher], [1])


def test_the_paired_command_refuses_a_bad_split():
    out = subprocess.run([sys.executable, "-m", "zlab.cli", "paired", "--pipelines", "a", "b", "--split", "train"],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "invalid choice: 'train'" in out.stderr
