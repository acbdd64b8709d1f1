"""A short Shapes run end to end, as the phases ``zlab gpu-check`` times: VAE, teacher, synthetic data,
LADD, then teacher vs student on a few prompts.

Every phase calls the recipe's own functions (:func:`~zlab.train.vae.train_vae`,
:func:`~zlab.train.teacher.train_teacher`, :func:`~zlab.train.synth.synthesize_from`,
:func:`~zlab.train.distill.train_student`, :func:`~zlab.distill.student.student_pipeline`,
:func:`zlab.measure.evaluate.measure`) with the GPU profile's configs (``configs/gpu/``) and only the step
counts cut, so the run shows the trainers working on CUDA in bf16, not a good student. On CPU
(``--smoke``) the same code runs the ``micro`` architecture at 64 px for a handful of steps.

The guidance scale is fixed (``guidance_scale``) instead of swept as ``zlab ship-teacher`` does:
the sweep samples all 270 train prompts at 50 steps per candidate, which a short run cannot afford.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from zlab.paths import source_root
from zlab.shapes.world import enumerate_captions, sampling_base

CONFIG_DIR = source_root() / "configs" / "gpu"


@dataclass
class ShapesRunSetup:
    """What the short run overrides in the GPU profile's configs (``configs/gpu/shapes-*.toml``).

    Attributes:
        vae, teacher, ladd: Keyword overrides of :class:`~zlab.train.vae.VAEConfig`,
            :class:`~zlab.train.teacher.TeacherConfig`, :class:`~zlab.train.distill_config.DistillConfig`.
        guidance_scale: diffusers' g of the teacher's ``sampling.json`` (the lab's s = g + 1).
        teacher_steps: the teacher's sampling steps (synthetic data and its evaluation row).
        synth_prompts: train prompts given to ``zlab synth`` (0 = all 270).
        eval_prompts, eval_seeds: the measurement's prompts (spread over the train split) and seeds.
        device, dtype: where the synthetic data and the measurement run (training follows accelerate).
    """

    # Step counts for a few minutes on one H200. The 30M-parameter GPU-profile transformer is bound by
    # diffusers' per-sample Python work (patchify, padding, position ids: ~1 ms per sample per forward and
    # backward on a CPU core), so the budget is samples seen: teacher 400 x 128, LADD 120 x 64.
    vae: dict = field(default_factory=lambda: {"steps": 300, "stats_images": 1024, "checkpoint_every": 300})
    teacher: dict = field(default_factory=lambda: {"steps": 400, "batch_size": 128, "num_latents": 8000,
                                                   "warmup": 100, "checkpoint_every": 400})
    ladd: dict = field(default_factory=lambda: {"train": {"steps": 120, "batch_size": 64, "checkpoint_every": 120},
                                                "data": {"rounds": 1}, "ladd": {"warmup_steps": 40}})
    guidance_scale: float = 2.0
    teacher_steps: int = 50
    synth_prompts: int = 0
    eval_prompts: int = 27
    eval_seeds: int = 2
    device: str = "cuda"
    dtype: str = "bfloat16"


def smoke_shapes_setup() -> ShapesRunSetup:
    """The same run at CPU scale: the ``micro`` architecture at 64 px, a handful of steps and prompts."""
    small = {"size": "micro", "image_size": 64}
    return ShapesRunSetup(
        vae={**small, "steps": 4, "batch_size": 4, "stats_images": 64, "warmup": 2, "checkpoint_every": 4},
        teacher={**small, "steps": 6, "batch_size": 8, "num_latents": 64, "warmup": 2, "checkpoint_every": 6},
        ladd={"train": {"steps": 4, "batch_size": 4, "checkpoint_every": 4}, "data": {"rounds": 1},
              "ladd": {"head_hidden": 8, "warmup_steps": 2}},
        teacher_steps=4, synth_prompts=6, eval_prompts=4, eval_seeds=1, device="cpu", dtype="float32")


def _configs(setup: ShapesRunSetup):
    from zlab.train.config import load_config
    from zlab.train.distill_config import DistillConfig
    from zlab.train.teacher import TeacherConfig
    from zlab.train.vae import VAEConfig

    return (load_config(VAEConfig, CONFIG_DIR / "shapes-vae.toml", **setup.vae),
            load_config(TeacherConfig, CONFIG_DIR / "shapes-teacher.toml", **setup.teacher),
            load_config(DistillConfig, CONFIG_DIR / "shapes-ladd.toml", **setup.ladd))


def spread(prompts: list[str], k: int) -> list[str]:
    """``k`` prompts taken evenly across ``prompts`` (all of them for k = 0)."""
    return prompts[:: max(1, len(prompts) // k)][:k] if k else prompts


def curve(values: list[float]) -> dict:
    """First and last value of a loss curve, each the mean of a window (a twentieth of the run, 1 to 20 steps)."""
    if not values:
        return {"steps": 0, "first": None, "last": None, "finite": False}
    k = max(1, min(20, len(values) // 20))
    first, last = sum(values[:k]) / k, sum(values[-k:]) / k
    return {"steps": len(values), "window": k, "first": first, "last": last,
            "finite": all(math.isfinite(v) for v in values)}


def _losses(run_dir: Path) -> list[float]:
    from zlab.train.loop import CHECKPOINT

    return list(torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=False, mmap=True)["losses"])


def shapes_phases(setup: ShapesRunSetup, run_dir: str | Path, record: dict,
                  progress=print) -> list[tuple[str, tuple[str, ...], Callable[[], None]]]:
    """``(name, phases it needs, run)`` for each step of the short run; ``run()`` writes into ``record``
    (``losses``, ``accuracy``, ``configs``) and the files under ``run_dir``."""
    run_dir = Path(run_dir)
    vae_cfg, teacher_cfg, ladd_cfg = _configs(setup)
    size = teacher_cfg.image_size
    record.update({"run_dir": str(run_dir), "image_size": size, "losses": {}, "accuracy": [],
                   "configs": {"vae": vae_cfg.__dict__, "teacher": teacher_cfg.__dict__}})
    state: dict = {}

    def vae() -> None:
        from zlab.train.vae import train_vae

        train_vae(vae_cfg, run_dir / "vae", progress=False)
        record["losses"]["vae_l1"] = curve(_losses(run_dir / "vae"))

    def teacher() -> None:
        from zlab.train.teacher import train_teacher
        from zlab.zimage import save_pipeline

        pipe = train_teacher(teacher_cfg, run_dir / "vae" / "vae", run_dir / "teacher", progress=False)
        record["losses"]["teacher_flow_matching"] = curve(_losses(run_dir / "teacher"))
        sampling = {"num_inference_steps": setup.teacher_steps, "guidance_scale": setup.guidance_scale,
                    "cfg_truncation": 1.0, **sampling_base(size)}
        save_pipeline(pipe, run_dir / "teacher-pipeline", sampling=sampling)
        record["teacher_sampling"] = sampling

    def synth() -> None:
        from zlab.train.models import DTYPES
        from zlab.train.synth import synthesize_from

        prompts = spread(enumerate_captions("train"), setup.synth_prompts)
        synthesize_from(run_dir / "teacher-pipeline", run_dir / "synth", device=setup.device,
                        dtype=DTYPES[setup.dtype], rounds=ladd_cfg.data.rounds, seed=ladd_cfg.train.seed, prompts=prompts,
                        progress=False)
        record["synth"] = {"prompts": len(prompts), "rounds": ladd_cfg.data.rounds}

    def ladd() -> None:
        from dataclasses import asdict, replace

        from zlab.train.distill import train_student
        from zlab.train.models import fit_config

        data = replace(ladd_cfg.data, teacher=str(run_dir / "teacher-pipeline"), folder=str(run_dir / "synth"))
        config = fit_config(replace(ladd_cfg, data=data),
                            teacher_cfg.architecture().n_layers, "cuda" if torch.cuda.is_available() else "cpu")
        record["configs"]["ladd"] = asdict(config)
        student, _, log = train_student(config, run_dir / "ladd", progress=False)
        state["student"] = student
        record["losses"].update({"ladd_d": curve(log["d_loss"]), "ladd_g": curve(log["g_loss"]),
                                 "ladd_head_accuracy": curve([sum(a) / len(a) for a in log["head_acc"]]),
                                 "ladd_skipped_steps": len(log["skipped"]),
                                 "ladd_heads_skipped_steps": len(log["heads_skipped"])})

    def evaluate() -> None:
        record["accuracy"] = teacher_vs_student(setup, run_dir / "teacher-pipeline", state.pop("student"), progress)

    return [("shapes-vae", (), vae), ("shapes-teacher", ("shapes-vae",), teacher),
            ("shapes-synth", ("shapes-teacher",), synth), ("shapes-ladd", ("shapes-synth",), ladd),
            ("shapes-eval", ("shapes-ladd",), evaluate)]


def teacher_vs_student(setup: ShapesRunSetup, teacher_dir: Path, student, progress=print) -> list[dict]:
    """The teacher with its ``sampling.json`` and the student at 1, 2 and 4 steps (no CFG), through stock
    ``ZImagePipeline`` on the same prompts and seeds: accuracy (with its binomial standard error), NFE, ms."""
    from zlab.distill.student import student_pipeline
    from zlab.measure.evaluate import measure
    from zlab.recipes.student import student_settings
    from zlab.train.models import DTYPES
    from zlab.zimage import load_pipeline, read_sampling

    teacher = load_pipeline(teacher_dir, device=setup.device, dtype=DTYPES[setup.dtype])
    student = student_pipeline(teacher, student.to(setup.device, DTYPES[setup.dtype]))
    sampling = read_sampling(teacher_dir)
    prompts = spread(enumerate_captions("train"), setup.eval_prompts)
    cases = [(p, s * 100_003 + i) for s in range(setup.eval_seeds) for i, p in enumerate(prompts)]
    keep = {k: sampling[k] for k in ("height", "width", "max_sequence_length")}
    plan = [(f"teacher {sampling['num_inference_steps']} steps + CFG (sampling.json)", teacher, sampling)]
    plan += [(name, student, kw) for name, kw in student_settings({**keep, "guidance_scale": 0.0}).items()]
    rows = []
    for name, pipe, setting in plan:
        row, _ = measure(pipe, setting, [p for p, _ in cases], [s for _, s in cases])
        n = len(cases)
        row.update({"setting": name, "images": n,
                    **{f"se_{k}": math.sqrt(row[k] * (1 - row[k]) / n) for k in list(row) if k.startswith("acc_")}})
        rows.append(row)
        progress(f"{name}: joint accuracy {row['acc_joint']:.3f} ± {row['se_acc_joint']:.3f} over {n} images")
    return rows
