"""The whole Shapes-teacher recipe: VAE, teacher, guidance choice, measured and shipped folder.

    zlab make-teacher --out checkpoints/shapes-teacher

1. ``train_vae`` (configs/shapes-vae.toml) and ``train_teacher`` (configs/shapes-teacher.toml), each
   resumable from its run directory (``--resume``);
2. :func:`ship_teacher`: pick the guidance scale on the **validation** prompts and seeds of
   :mod:`zlab.shapes.prompt_sets` (validity, named accuracy and coverage at 50 steps), save a stock
   ``ZImagePipeline`` folder with ``sampling.json``, measure on the **test** prompts and seeds through the stock
   pipeline (fully named prompts at every aspect bucket; the steps table with and without CFG, split by the
   number of open attributes: ``eval.json``) and write the model card (``README.md``).

``zlab ship-teacher`` runs step 2 alone on a trained pipeline folder (:func:`ship_teacher_folder`); ``zlab
calibrate-open-prob`` chooses the config's ``open_prob`` beforehand (:func:`calibrate_open_prob`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, ZImagePipeline

from zlab.atomic import write_json, write_text
from zlab.measure.evaluate import evaluate_open, stock_samples, teacher_reference, vae_reconstruction
from zlab.measure.settings import by_label, teacher_steps
from zlab.paths import config_path, repo_root
from zlab.recipes.cards import teacher_card
from zlab.shapes.metrics import prompt_records, summarise
from zlab.shapes.net import ShapesNet
from zlab.shapes.prompt_sets import prompts_and_seeds
from zlab.shapes.world import sampling_base
from zlab.train.config import load_config
from zlab.train.synth import teacher_fingerprint
from zlab.train.teacher import TeacherConfig, train_teacher
from zlab.train.vae import VAEConfig, train_vae
from zlab.zimage import load_pipeline, save_pipeline

STEP_COUNTS = (1, 2, 4, 8, 16, 50)
NO_CFG_STEP_COUNTS = STEP_COUNTS


# g = 0 and g >= 1 fell furthest short of the targets in every sweep on record (g = 0: named accuracy 0.81, g = 2:
# coverage 0.64-0.77); each candidate costs about 4 min now that the choice reads every validation prompt with 2+
# open attributes (make-teacher's 120-minute budget)
GUIDANCE_CANDIDATES = (0.25, 0.5, 0.75)


@dataclass(frozen=True)
class Targets:
    """What the shipped teacher must reach, applied to the **validation** measures when g is chosen: fully named
    joint accuracy, and on prompts with at least two open attributes validity, named accuracy and coverage."""

    named_joint: float = 0.95
    valid: float = 0.90
    named_accuracy: float = 0.90
    coverage_entropy: float = 0.85

    def shortfall(self, measured: dict) -> float:
        """How far ``measured`` (a :func:`choose_guidance` entry) falls below the targets, summed; 0 meets all."""
        pairs = [(self.named_joint, measured["named_joint"])] + [
            (getattr(self, k), measured["open2"][k]) for k in ("valid", "named_accuracy", "coverage_entropy")]
        return float(sum(max(0.0, t - m) for t, m in pairs if m == m))  # a NaN (no such prompt) counts nothing


def aspects(side: int) -> list[tuple[int, int]]:
    """The other aspect buckets of a teacher trained at ``side`` x ``side``: 64 -> 64x96 and 96x64 (h x w)."""
    return [(side, side * 3 // 2), (side * 3 // 2, side)]


@dataclass(frozen=True)
class TeacherEval:
    """How many prompts and seeds each measurement of :func:`ship_teacher` uses (CI shrinks them)."""

    choose_per_count: int = 8  # validation prompts per number of open attributes (0 and 1), for the guidance choice
    # validation prompts with 2+ open attributes per number of open attributes, for the guidance choice; None: all of
    # them. The 2+ measures decide the choice, and 8 per count read 2+ named accuracy at 0.928 where all 70 read 0.894
    choose_open2_per_count: int | None = None
    choose_seeds: int = 16  # as many as the test plan: coverage read from K seeds depends on K
    steps_per_count: int = 10  # test prompts per number of open attributes, for the steps table
    steps_seeds: int = 16
    named_seeds: int = 4  # fully named test prompts (train and held-out pairs), at every aspect
    named_prompts: int | None = None  # None: all of them


def choose_guidance(pipe: ZImagePipeline, candidates: Sequence[float], base: dict, net: ShapesNet,
                    plan: TeacherEval = TeacherEval(), targets: Targets = Targets()) -> dict[float, dict]:
    """Each g's 50-step measures on **validation** prompts and seeds: validity, named accuracy and coverage over all
    prompts and their mean (``score``); fully named joint accuracy (``named_joint``) over every fully named
    validation prompt at ``plan.named_seeds`` seeds, as the test set measures it (a few prompts per count would
    make it hinge on which they are: small objects are the hard ones); the three on prompts with 2+ open
    attributes (``open2``); and the ``shortfall`` from ``targets`` that :func:`best_guidance` minimises."""
    few, few_seeds = prompts_and_seeds("validation", plan.choose_seeds, per_count=plan.choose_per_count, max_open=1)
    open2, open2_seeds = prompts_and_seeds("validation", plan.choose_seeds, per_count=plan.choose_open2_per_count,
                                           min_open=2)
    prompts, seeds = few + open2, few_seeds + open2_seeds
    keys = ("valid", "named_accuracy", "coverage_entropy")
    scores = {}
    for g in candidates:
        setting = {**base, "guidance_scale": g}
        rows = evaluate_open(pipe, {f"g={g:g}": setting}, net, prompts, seeds,
                             plan.choose_seeds, groups={"all": list(range(6)), "2+": [2, 3, 4, 5]})
        row = {r["group"]: r for r in rows}
        scores[g] = {k: row["all"][k] for k in keys}
        scores[g]["score"] = float(np.mean(list(scores[g].values())))
        scores[g]["named_joint"] = named_stats(pipe, setting, "validation", plan.named_seeds,
                                               plan.named_prompts)["named_accuracy"][0]
        scores[g]["open2"] = {k: row["2+"][k] if "2+" in row else float("nan") for k in keys}
        scores[g]["shortfall"] = targets.shortfall(scores[g])
    return scores


def fifty_step_base(image_size: int, cfg_truncation: float = 1.0) -> dict:
    """The teacher's sampling.json before its g: 50 steps at ``image_size`` (what every guidance choice samples)."""
    return {"num_inference_steps": 50, "cfg_truncation": cfg_truncation, **sampling_base(image_size)}


def best_guidance(scores: dict[float, dict]) -> float:
    """The g of a :func:`choose_guidance` sweep closest to the targets on validation (least shortfall; meeting
    all of them, 0); a tie goes to the higher score."""
    return min(scores, key=lambda g: _rank(scores[g]))


def _rank(entry: dict) -> tuple[float, float]:
    """Sort key of a validation entry: least shortfall from the targets first, then the higher score."""
    return round(entry["shortfall"], 6), -entry["score"]


def calibrate_open_prob(candidates: dict[float, ZImagePipeline], guidance_candidates: Sequence[float] = GUIDANCE_CANDIDATES,
                        shapes_net: str | Path = "checkpoints/shapes-net", image_size: int = 64,
                        plan: TeacherEval = TeacherEval()) -> dict:
    """Choose ``open_prob`` on **validation**: teachers trained alike but for the probability of leaving each
    attribute open (``{open_prob: pipeline}``), each at its own best g (:func:`choose_guidance`, the same
    prompts, seeds and criterion: least shortfall from the targets, then score). Returns every candidate's
    sweep and the chosen ``open_prob``."""
    if len(candidates) < 2:
        raise ValueError(f"calibrating open_prob needs at least 2 candidate teachers, got {len(candidates)}")
    net = ShapesNet.load(shapes_net)
    base = fifty_step_base(image_size)
    record = {}
    for open_prob, pipe in sorted(candidates.items()):
        pipe.set_progress_bar_config(disable=True)
        scores = choose_guidance(pipe, guidance_candidates, base, net, plan)
        best = best_guidance(scores)
        record[f"{open_prob:g}"] = {"best_guidance": best, **scores[best],
                                    "sweep": {f"{g:g}": v for g, v in scores.items()},
                                    "transformer": teacher_fingerprint(pipe.transformer)}
    chosen = min(record, key=lambda p: _rank(record[p]))
    return {"candidates": record, "chosen": float(chosen), "plan": asdict(plan)}


def format_calibration(record: dict) -> str:
    """A :func:`calibrate_open_prob` record in a few lines: each candidate at its best g, then the chosen one."""
    lines = [f"open_prob {p}: best g {row['best_guidance']:g}, validity {row['valid']:.3f}, named accuracy "
             f"{row['named_accuracy']:.3f}, coverage {row['coverage_entropy']:.3f}, score {row['score']:.3f}"
             for p, row in record["candidates"].items()]
    return "\n".join([*lines, f"chosen on validation: open_prob = {record['chosen']:g}"])


def calibrated_sweep(calibration: dict, fingerprint: str) -> dict[float, dict] | None:
    """The guidance sweep a :func:`calibrate_open_prob` record holds for its chosen ``open_prob``, when that sweep
    measured this teacher (its transformer's :func:`~zlab.train.synth.teacher_fingerprint` is ``fingerprint``)
    under today's criterion (every entry has a ``shortfall``); None otherwise: the sweep must be measured again."""
    chosen = calibration["candidates"][f"{calibration['chosen']:g}"]
    if chosen.get("transformer") != fingerprint or not all("shortfall" in v for v in chosen["sweep"].values()):
        return None
    return {float(g): v for g, v in chosen["sweep"].items()}


def profile_image_size() -> int:
    """The side the profile's teacher trains at (its ``shapes-teacher.toml``): what a teacher is shipped and
    calibrated at unless told otherwise."""
    return load_config(TeacherConfig, repo_root() / config_path("shapes-teacher.toml")).image_size


def teacher_settings(sampling: dict) -> dict[str, dict]:
    """The steps table: the teacher at 1..50 steps with its CFG and without CFG."""
    return by_label(teacher_steps(STEP_COUNTS, cfg=(True,)) + teacher_steps(NO_CFG_STEP_COUNTS, cfg=(False,)), sampling)


def named_stats(pipe: ZImagePipeline, setting: dict, which: str, per_prompt: int, n_prompts: int | None = None,
                pairs: str = "train") -> dict:
    """Fully named prompts of set ``which`` (``n_prompts`` of them, None: all) at ``per_prompt`` seeds through the
    stock pipeline: :func:`zlab.shapes.metrics.summarise` of them (joint accuracy is the named accuracy)."""
    prompts, seeds = prompts_and_seeds(which, per_prompt, pairs=pairs, per_count=n_prompts, max_open=0)
    images, _ = stock_samples(pipe, prompts, seeds, setting)
    return summarise(prompt_records(images, prompts, per_prompt), {"0": [0]})["0"]


def named_rows(pipe: ZImagePipeline, sampling: dict, per_prompt: int, n_prompts: int | None = None) -> list[dict]:
    """Fully named **test** prompts at the teacher's sampling.json, at 64x64 and the other aspect buckets: joint
    accuracy (= named accuracy) and validity, mean ± SE across prompts, for train and held-out pairs."""
    rows = []
    for height, width in ((sampling["height"], sampling["width"]), *aspects(sampling["height"])):
        for pairs in ("train", "heldout"):
            stats = named_stats(pipe, {**sampling, "height": height, "width": width}, "test", per_prompt, n_prompts,
                                pairs)
            rows.append({"size": f"{height}x{width}", "pairs": pairs, "prompts": stats["prompts"], "seeds": per_prompt,
                         "joint": stats["named_accuracy"], "valid": stats["valid"]})
    return rows


def steps_rows(pipe: ZImagePipeline, sampling: dict, net: ShapesNet, plan: TeacherEval = TeacherEval()) -> list[dict]:
    """The steps table on **test** prompts: every setting of :func:`teacher_settings`, split by open attributes,
    FD to renders and to the teacher's own 50-step samples of the same prompts with other seeds."""
    prompts, seeds = prompts_and_seeds("test", plan.steps_seeds, per_count=plan.steps_per_count)
    reference = teacher_reference(pipe, sampling, prompts, seeds)
    return evaluate_open(pipe, teacher_settings(sampling), net, prompts, seeds, plan.steps_seeds, reference)


def ship_teacher(pipe: ZImagePipeline, out: str | Path, guidance_candidates: Sequence[float] = GUIDANCE_CANDIDATES,
                 cfg_truncation: float = 1.0, shapes_net: str | Path = "checkpoints/shapes-net",
                 training: dict | None = None, image_size: int = 64, plan: TeacherEval = TeacherEval(),
                 sweep: dict[float, dict] | None = None) -> dict:
    """Choose g on validation, save the folder with sampling.json (at ``image_size``), measure it on test,
    write eval.json and the model card. Returns the eval record. ``sweep``: this teacher's guidance sweep,
    already measured by :func:`calibrate_open_prob` (the same validation prompts, seeds and criterion)."""
    net = ShapesNet.load(shapes_net)
    pipe.set_progress_bar_config(disable=True)
    base = fifty_step_base(image_size, cfg_truncation)
    start = time.perf_counter()
    scores = sweep or choose_guidance(pipe, guidance_candidates, base, net, plan)
    best = best_guidance(scores)
    sampling = {**base, "guidance_scale": best}
    out = save_pipeline(pipe, out, sampling=sampling)
    record = {"guidance_sweep_validation": {str(g): v for g, v in scores.items()},
              "named": named_rows(pipe, sampling, plan.named_seeds, plan.named_prompts),
              "steps": steps_rows(pipe, sampling, net, plan), "plan": asdict(plan), "training": training or {}}
    record["measure_s"] = time.perf_counter() - start
    write_json(out / "eval.json", record)
    write_text(out / "README.md", teacher_card(sampling, record))
    return record


def ship_teacher_folder(pipeline: str | Path, out: str | Path,
                        guidance_candidates: Sequence[float] = GUIDANCE_CANDIDATES, training: dict | None = None,
                        calibration: dict | None = None, image_size: int = 64) -> dict:
    """:func:`ship_teacher` of a trained pipeline folder (``zlab ship-teacher``). ``training``: a training record
    from elsewhere, marked ``measured_apart`` (its times and this measurement's are not one run); ``calibration``:
    the :func:`calibrate_open_prob` record that chose this teacher's ``open_prob``, kept in the record, whose
    sweep is reused when it measured this very teacher (:func:`calibrated_sweep`). Returns the eval record."""
    if training is not None:
        training = {**training, "measured_apart": True}
    pipe, sweep = load_pipeline(pipeline), None
    if calibration is not None:
        training = {**(training or {}), "open_prob_calibration": calibration}
        sweep = calibrated_sweep(calibration, teacher_fingerprint(pipe.transformer))
    return ship_teacher(pipe, out, guidance_candidates, training=training, image_size=image_size, sweep=sweep)


def check_vae_roundtrip(vae_dir: Path, config: VAEConfig, n: int = 500) -> dict:
    """Round-trip ``n`` fresh square renders through the trained VAE; raise before the teacher trains if the
    checker's joint accuracy is below ``config.min_roundtrip_joint``: a latent teacher cannot draw better
    shapes than its decoder gives back, so a weak VAE would cap every later number."""
    with torch.no_grad():
        scores = vae_reconstruction(AutoencoderKL.from_pretrained(vae_dir).eval(), n, size=config.image_size)
    if scores["acc_joint"] < config.min_roundtrip_joint:
        raise RuntimeError(f"the VAE in {vae_dir} round-trips {n} renders at checker joint accuracy "
                           f"{scores['acc_joint']:.3f} (PSNR {scores['psnr_db']:.1f} dB), below min_roundtrip_joint = "
                           f"{config.min_roundtrip_joint}; train it longer (steps in the VAE config) in a new run directory")
    return scores


def make_teacher(out: str | Path, vae_config: str | Path, teacher_config: str | Path, run_dir: str | Path = "runs",
                 resume: bool = False, progress: bool = True, calibration: dict | None = None, **ship_kwargs) -> dict:
    """Train VAE then teacher (resumable), then :func:`ship_teacher`; returns the eval record. ``calibration``:
    the :func:`calibrate_open_prob` record behind the config's ``open_prob``, kept in the record and card."""
    run_dir = Path(run_dir)
    vae_cfg = load_config(VAEConfig, vae_config)
    teacher_cfg = load_config(TeacherConfig, teacher_config)
    start = time.perf_counter()
    train_vae(vae_cfg, run_dir / "vae", resume=resume, progress=progress)  # a finished run resumes in seconds
    check_vae_roundtrip(run_dir / "vae" / "vae", vae_cfg)
    vae_s = time.perf_counter() - start
    pipe = train_teacher(teacher_cfg, run_dir / "vae" / "vae", run_dir / "teacher", resume=resume, progress=progress)
    teacher_s = time.perf_counter() - start - vae_s
    reconstruction = {f"{h}x{w}": {"n": 500, **vae_reconstruction(pipe.vae, 500, size=(h, w))}
                      for h, w in teacher_cfg.buckets()}
    training = {"vae_config": vae_cfg.__dict__, "teacher_config": teacher_cfg.__dict__,
                "timings": {"vae_s": vae_s, "teacher_s": teacher_s,
                            "reconstruction_s": time.perf_counter() - start - vae_s - teacher_s},
                "vae_reconstruction": reconstruction,
                **({"open_prob_calibration": calibration} if calibration else {})}
    return ship_teacher(pipe, out, training=training, image_size=teacher_cfg.image_size, **ship_kwargs)
