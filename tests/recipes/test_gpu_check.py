"""``zlab gpu-check``: the smoke run writes every phase, a failing phase is recorded, budgets skip, bad input is named."""

import json
import math
import subprocess
import sys
import time

import pytest
import torch

from zlab.cli import main
from zlab.measure import bench
from zlab.recipes.gpu_check import PHASES, Phase, run_phases


def test_smoke_writes_every_phase_and_its_numbers(tmp_path):
    out = tmp_path / "gpu"
    run = subprocess.run([sys.executable, "-m", "zlab.cli", "gpu-check", "--smoke", "--out", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    record = json.loads((out / "gpu-check.json").read_text())
    assert [p["name"] for p in record["phases"]] == list(PHASES)
    assert all(p["status"] == "ok" and p["seconds"] >= 0 for p in record["phases"]), record["phases"]
    assert record["environment"]["torch"] == torch.__version__ and record["environment"]["device"] == "cpu"

    results = record["bench"]
    assert [r["size"] for r in results["forward"]] == [64, 128] and all(r["ms"] > 0 for r in results["forward"])
    assert results["student_4_steps_ms"] > 0
    rows = {r["config"]: r for r in results["train_step"]}
    assert set(rows) == {"zimage-ladd-lora.toml", "zimage-ladd-full.toml", "zimage-dmd-lora.toml"}
    for row in rows.values():
        assert row["predicted_bytes"] > 0 and row["peak_bytes"] > 0
        assert row["predicted_over_measured"] == pytest.approx(row["predicted_bytes"] / row["peak_bytes"])

    assert results["judge"]["ms_per_image"] > 0 and results["judge"]["images"] == 16

    shapes = record["shapes"]
    for name in ("vae_l1", "teacher_flow_matching", "ladd_d", "ladd_g", "ladd_head_accuracy"):
        curve = shapes["losses"][name]
        assert curve["steps"] > 0 and curve["finite"] and math.isfinite(curve["first"]) and math.isfinite(curve["last"])
    assert 0 <= shapes["losses"]["ladd_head_accuracy"]["last"] <= 1
    settings = [r["setting"] for r in shapes["accuracy"]]
    assert settings == ["teacher 4 steps + CFG (sampling.json)", "student 1 step", "student 2 steps", "student 4 steps"]
    assert [r["nfe"] for r in shapes["accuracy"]] == [8, 1, 2, 4]  # CFG doubles the teacher's calls, none for the student
    for row in shapes["accuracy"]:
        assert row["images"] == 4
        for key in ("acc_joint", "acc_shape", "acc_colour", "acc_size", "acc_position"):
            assert 0 <= row[key] <= 1 and 0 <= row[f"se_{key}"] <= 0.5

    report = (out / "gpu-check.md").read_text()
    assert all(f"| {name} | ok |" in report for name in PHASES)
    assert "| training step |" in report and "| student 4 steps | 4 | 4 |" in report
    assert sorted(p.name for p in out.iterdir()) == ["gpu-check.json", "gpu-check.md"]  # no temp files left


def test_a_failing_phase_is_recorded_and_the_command_exits_non_zero(tmp_path, monkeypatch, capsys):
    def broken(setup, results, progress=print):
        raise RuntimeError("CUDA out of memory (injected)")

    monkeypatch.setattr(bench, "measure_forward", broken)
    code = main(["gpu-check", "--smoke", "--phases", "forward,student", "--out", str(tmp_path)])
    assert code == 1 and "failed: forward" in capsys.readouterr().out
    record = json.loads((tmp_path / "gpu-check.json").read_text())
    forward, student = record["phases"]
    assert forward["status"] == "failed" and "CUDA out of memory (injected)" in forward["error"]
    assert student["status"] == "ok" and record["bench"]["student_4_steps_ms"] > 0  # the next phase still ran
    assert "| forward | failed |" in (tmp_path / "gpu-check.md").read_text()


def test_phases_beyond_the_budget_or_after_a_failure_are_skipped_and_overruns_stopped():
    ran = []

    def never_ends():
        while True:
            time.sleep(0.05)

    phases = [Phase("a", 1, lambda: ran.append("a")), Phase("too-long", 100, lambda: ran.append("too-long")),
              Phase("after", 1, lambda: ran.append("after"), needs=("too-long",)),
              Phase("stuck", 0.5, never_ends), Phase("fails", 1, lambda: 1 / 0)]
    records = {r["name"]: r for r in run_phases(phases, total_s=50, started=time.perf_counter(), progress=lambda s: None)}
    assert ran == ["a"]
    assert records["a"]["status"] == "ok"
    assert records["too-long"]["status"] == "skipped" and "budget" in records["too-long"]["reason"]
    assert records["after"]["status"] == "skipped" and "too-long" in records["after"]["reason"]
    assert records["stuck"]["status"] == "timeout"
    assert records["fails"]["status"] == "failed" and "ZeroDivisionError" in records["fails"]["error"]


@pytest.mark.parametrize("args, message", [
    (["--smoke", "--phases", "forward,nope"], "shapes-eval"),  # names the accepted phases
    (["--smoke", "--budget", "0"], "[10, 3600]"),
    (["--smoke", "--run", "checkpoints/check"], "checkpoints"),
])
def test_bad_arguments_are_named(tmp_path, capsys, args, message):
    assert main(["gpu-check", "--out", str(tmp_path / "out"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_without_a_gpu_the_real_check_stops_at_once(tmp_path):
    with pytest.raises(SystemExit, match="--smoke"):
        main(["gpu-check", "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
