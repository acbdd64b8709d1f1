"""``zlab gpu-check``: the one command a session with a borrowed GPU runs, within 8 minutes on one H200.

    zlab gpu-check --out docs/gpu            # on the GPU: writes docs/gpu/gpu-check.{json,md}
    zlab gpu-check --smoke --out /tmp/check  # the same code at tiny dims on CPU (CI runs it)

Phases, each with a time budget (seconds on one H200), run in this order:

* ``forward``, ``student``, ``ladd-lora``, ``ladd-full``, ``dmd-lora``, ``judge``: :mod:`zlab.measure.bench`'s
  parts (the real-size transformer with random weights: forward latency at 512² and 1024² with the FLOP-limit
  ratio, the student's 4-step latency, one LADD or DMD step per config with its measured peak memory against
  :func:`zlab.train.memory.predict`, and ``zlab judge``'s scoring of a few images);
* ``shapes-vae`` ... ``shapes-eval``: :mod:`zlab.recipes.shapes_run`, a short GPU-profile Shapes run (VAE,
  teacher, synthetic data, LADD in bf16) and the teacher against its student at 1/2/4 steps.

A phase starts only if its budget fits in what is left of the total (else it is recorded as
skipped, with the reason), and is stopped when it overruns its budget (recorded as ``timeout``).
A phase that raises (CUDA out of memory, anything) is recorded with its error and the next one
runs; a phase whose input failed is skipped. The command exits non-zero if any phase failed or
timed out, after writing both files.
"""

from __future__ import annotations

import contextlib
import gc
import platform
import signal
import subprocess
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from zlab.atomic import write_json, write_text
from zlab.measure.bench import BenchSetup, bench_parts, format_results, new_results, smoke_setup
from zlab.paths import source_root
from zlab.recipes.shapes_run import ShapesRunSetup, shapes_phases, smoke_shapes_setup

# Seconds per phase on one H200: estimates with room to spare (set before any H200 run; the JSON records
# the real times). They add up to more than the total on purpose: a phase is skipped only if the ones
# before it ran long.
GPU_BUDGETS = {"forward": 40, "student": 30, "ladd-lora": 70, "ladd-full": 80, "dmd-lora": 70, "judge": 30,
               "shapes-vae": 30,
               "shapes-teacher": 90, "shapes-synth": 40, "shapes-ladd": 60, "shapes-eval": 30}
# On CPU the budgets only exercise the code: generous, so that a busy machine never turns a smoke phase into a timeout.
SMOKE_BUDGETS = dict.fromkeys(GPU_BUDGETS, 600)
SMOKE_TOTAL_S = 3600
TOTAL_BUDGET_S = 450  # of the 8 minutes: the rest is the interpreter's start and writing the files
PHASES = tuple(GPU_BUDGETS)
FAILED = ("failed", "timeout")


class PhaseTimeout(BaseException):  # not an Exception: a library's `except Exception` must not swallow it
    """A phase ran past its budget."""


@dataclass
class Phase:
    name: str
    budget_s: float
    run: Callable[[], None]
    needs: tuple[str, ...] = ()


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise :class:`PhaseTimeout` in the main thread after ``seconds`` (SIGALRM); elsewhere no limit."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def stop(signum, frame):
        raise PhaseTimeout(f"stopped: ran past its budget of {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_phases(phases: list[Phase], total_s: float, started: float, progress=print) -> list[dict]:
    """Run each phase under its budget; one record per phase: ``name``, ``status`` (ok, failed,
    timeout, skipped), ``seconds``, ``budget_s`` and ``error`` or ``reason``. ``started`` is the
    ``time.perf_counter()`` the total budget counts from."""
    records, status = [], {}
    for phase in phases:
        record = {"name": phase.name, "budget_s": phase.budget_s, "seconds": 0.0}
        elapsed = time.perf_counter() - started
        blocked = [n for n in phase.needs if status.get(n) != "ok"]
        if blocked:
            record.update(status="skipped", reason=f"needs {', '.join(blocked)}, which did not finish")
        elif elapsed + phase.budget_s > total_s:
            record.update(status="skipped", reason=f"budget: {elapsed:.0f} s spent + {phase.budget_s:.0f} s for "
                                                   f"this phase > {total_s:.0f} s in all")
        else:
            progress(f"[{elapsed:5.0f} s] {phase.name} (budget {phase.budget_s:.0f} s)")
            start = time.perf_counter()
            try:
                with time_limit(phase.budget_s):
                    phase.run()
                record["status"] = "ok"
            except PhaseTimeout as err:
                record.update(status="timeout", error=str(err))
            except Exception as err:  # noqa: BLE001 - any failure is recorded and the next phase runs
                record.update(status="failed", error=f"{type(err).__name__}: {err}".splitlines()[0][:500],
                              traceback=traceback.format_exc().splitlines()[-12:])
            record["seconds"] = time.perf_counter() - start
            _free_memory()
            if record["status"] != "ok":
                progress(f"  {phase.name} {record['status']}: {record['error']}")
        status[phase.name] = record["status"]
        records.append(record)
    return records


def environment(device: str) -> dict:
    """What the numbers were measured on: GPU, library versions, CUDA, date, commit."""
    import diffusers
    import transformers

    env = {"date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), "python": platform.python_version(),
           "platform": platform.platform(), "torch": torch.__version__, "diffusers": diffusers.__version__,
           "transformers": transformers.__version__, "cuda": torch.version.cuda, "device": device}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   cudnn=torch.backends.cudnn.version())
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=source_root())
        if commit.returncode == 0:
            env["commit"] = commit.stdout.strip()
    return env


def build_phases(bench: BenchSetup, shapes: ShapesRunSetup, run_dir: Path, results: dict, budgets: dict,
                 progress=print) -> list[Phase]:
    """Every phase of the check, bench parts first; ``results`` collects ``bench`` and ``shapes``."""
    phases = []
    for name, part in bench_parts(bench, progress):
        phases.append(Phase(name, budgets[name], _bench_phase(part, results["bench"])))
    for name, needs, run in shapes_phases(shapes, run_dir, results["shapes"], progress):
        phases.append(Phase(name, budgets[name], run, needs))
    return phases


def _bench_phase(part, bench_results: dict) -> Callable[[], None]:
    def run() -> None:
        rows = len(bench_results["train_step"])
        part(bench_results)
        for row in bench_results["train_step"][rows:]:  # zlab bench keeps going after an OOM row; a check fails it
            if "error" in row:
                raise RuntimeError(f"{row['config']}: {row['error']}")
    return run


def check_arguments(phases: str | None, total_s: float, run_dir: str | None) -> list[str]:
    """The phases asked for (default all); ValueError naming what is accepted otherwise."""
    names = [p.strip() for p in phases.split(",") if p.strip()] if phases else list(PHASES)
    unknown = [n for n in names if n not in PHASES]
    if unknown or not names:
        raise ValueError(f"unknown phase(s) {unknown}; choose from {', '.join(PHASES)}")
    if not 10 <= total_s <= 3600:
        raise ValueError(f"--budget must be in [10, 3600] seconds, got {total_s}")
    if run_dir is not None and "checkpoints" in Path(run_dir).resolve().parts:
        raise ValueError(f"--run {run_dir} is under checkpoints/: the check never writes over shipped checkpoints")
    return names


def run_check(out: str | Path, smoke: bool = False, phases: str | None = None, total_s: float | None = None,
              run_dir: str | Path | None = None, started: float | None = None, progress=print) -> dict:
    """Run the check and write ``gpu-check.json`` and ``gpu-check.md`` into ``out``; returns the record.

    ``started`` (a ``time.perf_counter()`` value, default now) is when the total budget began: the
    CLI passes the moment before its heavy imports, so start-up counts.
    """
    started = time.perf_counter() if started is None else started
    if total_s is None:
        total_s = SMOKE_TOTAL_S if smoke else TOTAL_BUDGET_S
    names = check_arguments(phases, total_s, run_dir)
    if not smoke and not torch.cuda.is_available():
        raise SystemExit("zlab gpu-check needs a CUDA GPU (the real 6B transformer, the GPU-profile Shapes run); "
                         "`zlab gpu-check --smoke --out DIR` runs the same code on CPU")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder")
    bench, shapes = (smoke_setup(), smoke_shapes_setup()) if smoke else (BenchSetup(), ShapesRunSetup())
    budgets = SMOKE_BUDGETS if smoke else GPU_BUDGETS
    results = {"bench": new_results(bench), "shapes": {}}
    with contextlib.ExitStack() as stack:
        if run_dir is None:
            run_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="zlab-gpu-check-"))
            kept = False
        else:
            kept = True
        every = build_phases(bench, shapes, Path(run_dir), results, budgets, progress)
        env = environment(bench.device)  # initialises CUDA: part of the start-up
        startup_s = time.perf_counter() - started
        chosen = [p for p in every if p.name in names]
        records = run_phases(chosen, total_s, started, progress)
        results["shapes"]["run_dir"] = str(run_dir) if kept else "(a temporary folder, removed)"
    record = {"command": "zlab gpu-check" + (" --smoke" if smoke else ""), "smoke": smoke,
              "environment": env, "total_budget_s": total_s, "startup_s": startup_s,
              "wall_s": time.perf_counter() - started, "phases": records, **results}
    write_outputs(out, record)
    return record


def failed(record: dict) -> list[str]:
    """Names of the phases that failed or timed out."""
    return [p["name"] for p in record["phases"] if p["status"] in FAILED]


def write_outputs(out: Path, record: dict) -> None:
    """``gpu-check.json`` (everything) and ``gpu-check.md`` (the report), each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "gpu-check.json", record, default=str)
    write_text(out / "gpu-check.md", format_report(record))


def format_report(record: dict) -> str:
    """The check as Markdown: environment, phases, the bench tables, the Shapes run."""
    env = record["environment"]
    commit = f", commit {env['commit'][:10]}" if "commit" in env else ""
    lines = [f"# `{record['command']}`", "",
             f"{env.get('gpu', env['device'])}, torch {env['torch']}, CUDA {env['cuda']}, "
             f"diffusers {env['diffusers']}, {env['date_utc']}{commit}", "",
             f"Wall time {record['wall_s']:.0f} s (start-up {record['startup_s']:.0f} s) of a "
             f"{record['total_budget_s']:.0f} s budget. One run: every number below comes from this one run.", "",
             "| phase | status | seconds | budget s | note |", "|---|---|---|---|---|"]
    for p in record["phases"]:
        note = p.get("error") or p.get("reason") or ""
        lines.append(f"| {p['name']} | {p['status']} | {p['seconds']:.1f} | {p['budget_s']:.0f} | {note} |")
    lines += ["", "## Real-size transformer, random weights (`zlab bench`)", "", format_results(record["bench"])]
    shapes = record["shapes"]
    synth = shapes.get("synth", {})
    lines += ["", "## A short GPU-profile Shapes run", "",
              f"{shapes.get('image_size', '?')} px; run folder {shapes.get('run_dir', '?')}; synthetic data "
              f"{synth.get('prompts', '?')} prompts x {synth.get('rounds', '?')} seeds.",
              "", "| curve | steps | first | last |", "|---|---|---|---|"]
    for name, c in shapes.get("losses", {}).items():
        if isinstance(c, dict):
            shown = [f"{c[k]:.4g}" if c[k] is not None else "-" for k in ("first", "last")]
            lines.append(f"| {name} | {c['steps']} | {shown[0]} | {shown[1]} |")
    lines += ["", "First and last are means over a window of steps (a twentieth of the run, at most 20).", "",
              "| setting | NFE | images | joint accuracy | shape | colour | size | position | ms / image |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in shapes.get("accuracy", []):
        acc = [f"{r[k]:.3f} ± {r['se_' + k]:.3f}" for k in ("acc_joint", "acc_shape", "acc_colour", "acc_size",
                                                            "acc_position")]
        lines.append(f"| {r['setting']} | {r['nfe']} | {r['images']} | {' | '.join(acc)} | {r['ms_per_image']:.1f} |")
    lines += ["", "Accuracy ± its binomial standard error over the images (few prompts and seeds: a check that the "
              "trainers work on this device, not a measurement of a good student).", ""]
    return "\n".join(lines)
