"""The whole student recipe from a shipped teacher: synthetic data, LADD, a stock student folder.

    zlab make-student --config configs/shapes-ladd.toml --out checkpoints/shapes-student

1. ``zlab synth``: the teacher's ``sampling.json`` samples of every train prompt x ``synth_rounds``
   seeds (a shard already there is kept if the same prompts, sampling, seed and teacher made it, else
   regenerated);
2. ``zlab ladd``: the adversarial trainer (resumable);
3. :func:`ship_student`: the student pipeline with the shift-1 scheduler, ``sampling.json`` (4
   steps, no CFG), the discriminator heads, ``eval.json`` and a model card, written atomically.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch
from diffusers import ZImagePipeline

from zlab.shapes import prompt_sets
from zlab.measure.evaluate import (evaluate_open, evaluate_settings, format_open_table, format_table, latency_ms, teacher_reference)
from zlab.train.synth import synthesize_from
from zlab.distill.heads import Discriminator
from zlab.distill.losses import dead_heads, mean_calls
from zlab.recipes.sampling_choice import choose_sampling_mode
from zlab.distill.schedule import STUDENT_STEPS
from zlab.distill.student import check_student_schedule, save_student, student_pipeline
from zlab.train.ladd import LADDConfig, train_ladd
from zlab.shapes.world import canvas_size, enumerate_captions, sampling_base
from zlab.shapes.net import ShapesNet
from zlab.train.loop import load_checkpoint
from zlab.zimage import read_sampling


def student_settings(sampling: dict) -> dict[str, dict]:
    """Student rows of the comparison: N = 1, 2, 4 steps, no CFG."""
    return {f"student {n} step{'s' * (n > 1)}": {**sampling, "num_inference_steps": n} for n in STUDENT_STEPS}


def student_sampling(image_size: int = 64) -> dict:
    """The student's sampling.json: 4 steps, no CFG, at the teacher's size."""
    return {"num_inference_steps": 4, "guidance_scale": 0.0, **sampling_base(image_size)}


def ship_student(teacher: ZImagePipeline, transformer, disc: Discriminator | None, out: str | Path,
                 record: dict, shapes_net: str | Path = "checkpoints/shapes-net", seeds=(0,),
                 stochastic: bool = False, measure: bool = True, image_size: int = 64,
                 teacher_sampling: dict | None = None, open_plan: tuple[int, int] = (10, 16)) -> list[dict]:
    """Save the student folder and measure it through stock ``ZImagePipeline`` (``eval.json``, model card).

    ``measure=False`` skips the evaluation (tests of the folder format only). With ``teacher_sampling`` (the
    teacher's sampling.json) the student at 1, 2, 4 steps is also measured on open **test** prompts
    (``open_plan`` = prompts per number of open attributes, seeds per prompt) beside the teacher's 50 steps.
    """
    pipe = student_pipeline(teacher, transformer, stochastic)
    sampling = student_sampling(image_size)
    rows = (evaluate_settings(pipe, student_settings(sampling), ShapesNet.load(shapes_net), seeds=seeds)
            if measure else [])
    record = {**record, "rows": rows, "schedule": check_student_schedule(pipe), "stochastic_sampling": stochastic}
    if measure and teacher_sampling is not None:
        record["open"] = open_test_rows(teacher, teacher_sampling, pipe, sampling, ShapesNet.load(shapes_net), open_plan)
    files = {"eval.json": json.dumps(record, indent=2) + "\n", "README.md": model_card(sampling, record)}
    save_student(pipe, disc, out, sampling, files)
    return rows


def open_test_rows(teacher: ZImagePipeline, teacher_sampling: dict, student: ZImagePipeline, sampling: dict,
                   net: ShapesNet, plan: tuple[int, int] = (10, 16)) -> list[dict]:
    """Teacher (its sampling.json) and student at 1, 2, 4 steps on open test prompts: validity, named accuracy,
    coverage, FD to renders and to the teacher's 50-step samples (other seeds), by number of open attributes."""
    per_count, per_prompt = plan
    prompts, seeds = prompt_sets.prompts_and_seeds("test", per_prompt, per_count=per_count)
    reference = teacher_reference(teacher, teacher_sampling, prompts, seeds)
    rows = evaluate_open(teacher, {"teacher 50 steps + CFG (sampling.json)": teacher_sampling}, net, prompts, seeds,
                         per_prompt, reference)
    return rows + evaluate_open(student, {f"student {n} step{'s' * (n > 1)}": {**sampling, "num_inference_steps": n}
                                          for n in STUDENT_STEPS}, net, prompts, seeds, per_prompt, reference)


def objective(config: dict) -> str:
    """The student's loss in words, from its config (``adv_weight``, ``regression_weight``, ``loss``)."""
    adv, reg = config.get("adv_weight", 1.0), config.get("regression_weight", 0.0)
    regression = (f"MSE of its x0_hat to the teacher's sample of the same starting noise (regression distillation, "
                  f"Luhman and Luhman 2021), weight {reg:g}")
    if not adv:
        return f"regression alone: {regression}; the heads train beside it as a probe and never reach the student"
    adversarial = f"the adversarial loss ({config.get('loss', '?')}, weight {adv:g})"
    return f"{adversarial} plus {regression}" if reg else f"{adversarial} alone"


def student_title(config: dict) -> str:
    """The model card's title: a LADD student, a regression-distilled one, or LADD plus regression."""
    adv, reg = config.get("adv_weight", 1.0), config.get("regression_weight", 0.0)
    kind = "regression-distilled" if not adv else "LADD + regression" if reg else "LADD"
    return f"{student_folder(config)}: a 1/2/4-step {kind} student of shapes-teacher"


def student_folder(config: dict) -> str:
    """The shipped folder's name under ``checkpoints/``: the regression baseline or the (LADD) student."""
    return "shapes-student" if config.get("adv_weight", 1.0) else "shapes-regression"


def model_card(sampling: dict, record: dict) -> str:
    timings = record.get("timings", {})
    time_text = ", ".join(f"{k.removesuffix('_s')} {v / 60:.1f} min" for k, v in timings.items())
    if record.get("trained_earlier_in"):
        time_text += (f" (the training had finished earlier in `{record['trained_earlier_in']}`, which this run "
                      "resumed: its time is not in this figure)")
    config = json.loads(json.dumps(record.get("config", {})))  # as eval.json stores it: tuples read as lists
    buckets = config.get("synth_sizes") or ()
    bucket_text = (" at the aspect buckets " + ", ".join(f"{h}x{w}" for h, w in buckets) + " (each batch from one)"
                   if buckets else "")
    return f"""# {student_title(config)}

A stock diffusers `ZImagePipeline` folder. Its scheduler has `shift = 1` and no dynamic shift, so
the stock call samples at exactly the timesteps the student was trained at:

```python
from diffusers import ZImagePipeline
pipe = ZImagePipeline.from_pretrained("checkpoints/{student_folder(config)}")
image = pipe("a large red circle at the top left", num_inference_steps=4, guidance_scale=0.0).images[0]
```

Lab times per N, read back from the shipped scheduler: {json.dumps(record.get("schedule", {}))}.
{sampling_text(record)}

`sampling.json`: `{json.dumps(sampling)}`. `discriminator/` holds the trained heads (used by the
app's discriminator view; diffusers ignores the folder).

## How it was made

`zlab make-student --config configs/shapes-ladd.toml` (LADD, Sauer et al. 2024): teacher samples with its
own `sampling.json` (50 steps + CFG) for the {len(prompt_sets.prompts("train"))} train prompts of `zlab.shapes.prompt_sets` (fully named and open captions) x
{config.get("synth_rounds", "?")} seed(s){bucket_text}; student
initialised from the teacher, trained on {objective(config)} for
{config.get("steps", "?")} steps of batch {config.get("batch_size", "?")} at learning rate {config.get("student_lr", "?")} (heads
{config.get("heads_lr", "?")}){heads_extras(config)}; heads on teacher blocks
{config.get("blocks", "?")}; t_hat ~ LogitNormal({config.get("t_hat_m", "?")}, {config.get("t_hat_s", "?")});
student timesteps {{1, .75, .5, .25}} with p = {config.get("warmup_probs", "?")} for the first
{config.get("warmup_steps", "?")} steps, then {config.get("full_probs", "?")}.{heads_text(record)}{
    f" The shipped weights are the EMA (decay {config['ema_decay']}, with warm-up) of the student's weights."
    if config.get("ema_decay") else ""} Measured wall time on the 2-core CPU: {time_text}.

## Measured through stock ZImagePipeline (`zlab.measure.evaluate`, one run)

Fully named captions of the train colour-shape pairs (all 270, some of them validation and test prompts of
`zlab.shapes.prompt_sets`) and the 54 held-out-pair captions, one seed each:

{format_table(record.get("rows", []))}
{open_section(record.get("open"))}
The side-by-side comparison with the teacher is `zlab compare` and lab 06.
"""


def heads_extras(config: dict) -> str:
    """The model card's words for the heads' options that are on: mismatched negatives, approximate R1, normalised
    text, caption tokens."""
    parts = [f"mismatched-caption negatives sharing the fake side (weight {config['mismatch_weight']:g})"
             if config.get("mismatch_weight") else "",
             f"approximate R1 (weight {config['r1_weight']:g})" if config.get("r1_weight") else "",
             "layer-normalised pooled text" if config.get("head_text_norm") else "",
             "each block's caption tokens beside its image map" if config.get("head_caption") else ""]
    parts = [p for p in parts if p]
    return "; the heads train with " + " and ".join(parts) if parts else ""


def heads_text(record: dict, last: int = 100) -> str:
    """The model card's sentence on what the heads told apart over the last ``last`` training steps (when the
    log has :func:`~zlab.distill.losses.head_calls`), and a warning when every head called every input fake."""
    calls = record.get("log", {}).get("head_calls") or []
    if not calls or not record.get("config", {}).get("adv_weight"):
        return ""
    shares = mean_calls(calls, last)
    text = (f" Over the last {min(last, len(calls))} training steps the heads called real samples real / the "
            "student's samples fake in " + ", ".join(f"{r:.2f} / {f:.2f}" for r, f in shares) + " of cases (one pair per head).")
    if dead_heads(calls, last):
        text += (" **Every head called every input fake**: the adversarial term passed the student no signal, so this "
                 "student learnt from its other terms alone.")
    return text


def sampling_text(record: dict) -> str:
    """The model card's sentence on how the student steps between its times, and why (when chosen on validation)."""
    stochastic = record.get("stochastic_sampling", record.get("config", {}).get("stochastic_sampling", False))
    text = ("The scheduler has diffusers' `stochastic_sampling` on: between steps it re-noises the student's x0_hat "
            "with fresh noise, exactly the input LADD trains the student on (x_t = (1 - t) x0 + t eps with fresh eps). "
            "`ZImagePipeline` does not pass its generator to the scheduler, so that noise comes from torch's global "
            "RNG: call `torch.manual_seed` before sampling to repeat a picture." if stochastic else
            "Deterministic Euler steps between the trained times.")
    choice = record.get("sampling_choice")
    return text + (f" Chosen on validation: {choice['why']}." if choice else "")


def open_section(rows: list[dict] | None) -> str:
    """The model card's open-prompt tables (test prompts), when measured."""
    if not rows:
        return ""
    tables = "\n\n".join(f"**{title}**, by number of open attributes:\n\n{format_open_table(rows, metric)}"
                          for metric, title in (("valid", "Validity"), ("named_accuracy", "Named accuracy"),
                                                ("coverage_entropy", "Coverage of the open attributes"),
                                                ("fd_teacher", "FD to the teacher's 50-step samples")))
    return f"""
## Open test prompts (`zlab.shapes.prompt_sets`, never used to choose anything)

Mean ± standard error across prompts; coverage is the normalised entropy of what the checker reads over the
seeds (renders reach about 0.94 at 16 seeds). A student that draws the same picture for every seed keeps its
validity and accuracy and loses its coverage.

{tables}
"""


def make_student(config: LADDConfig, out: str | Path, run_dir: str | Path = "runs/ladd", resume: bool = False,
                 progress: bool = True, measure: bool = True) -> list[dict]:
    """Synth (if needed), train, ship: the whole student recipe, timed stage by stage (one process)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # every rank would synthesise and ship the same folders
        raise ValueError("make-student is the one-process Shapes recipe; under `accelerate launch` run `zlab synth` "
                         "once, then `accelerate launch ... -m zlab.cli ladd --config ... --out DIR`")
    start = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    synthesize_from(config.teacher, config.data, rounds=config.synth_rounds, seed=config.seed, progress=progress,
                    device=device, sizes=[canvas_size(size) for size in config.synth_sizes], source=config.real)
    synth_s = time.perf_counter() - start
    before = load_checkpoint(run_dir) if resume else None  # a finished run (e.g. the search's chosen one) only ships
    finished_before = before is not None and before["step"] >= config.steps
    del before
    transformer, disc, log = train_ladd(config, run_dir, resume=resume, progress=progress)
    train_s = time.perf_counter() - start - synth_s
    teacher = ZImagePipeline.from_pretrained(config.teacher).to(transformer.device)  # one device, the student's
    record = {"config": asdict(config), "timings": {"synth_s": synth_s, "train_s": train_s},
              "log": {k: v[-200:] for k, v in log.items()}}
    if finished_before:  # e.g. the run of the recipe search that was chosen: its training time is in that record
        record["trained_earlier_in"] = str(run_dir)
    start = time.perf_counter()
    teacher_sampling = read_sampling(config.teacher)
    image_size = teacher_sampling.get("height", 64)  # the student samples at its teacher's size
    stochastic = config.stochastic_sampling
    if config.choose_sampling and measure:
        record["sampling_choice"] = choose_sampling_mode(teacher, transformer, student_sampling(image_size))
        stochastic = record["sampling_choice"]["chosen"] == "stochastic"
    rows = ship_student(teacher, transformer, disc, out, record, measure=measure, stochastic=stochastic,
                        image_size=image_size, teacher_sampling=teacher_sampling)
    print(f"synth {synth_s / 60:.1f} min, LADD {train_s / 60:.1f} min, measure + ship "
          f"{(time.perf_counter() - start) / 60:.1f} min")
    return rows


def comparison(teacher: ZImagePipeline, teacher_sampling: dict, student: ZImagePipeline, net: ShapesNet, seeds=(0,),
               include_init: bool = True, evaluate=evaluate_settings, latency_prompts: int = 8) -> list[dict]:
    """The issue's side-by-side table, every row through stock ``ZImagePipeline`` in one run.

    Teacher with ``teacher_sampling`` (its ``sampling.json``: 50 steps + CFG), teacher at N = 1, 2, 4 Euler steps with the
    same CFG and without CFG, the student at N = 1, 2, 4; with ``include_init`` also the student's
    starting point (the teacher's weights on the student's shift-1 schedule), which shows what the
    adversarial training itself added. ``evaluate(pipe, settings, net, seeds=...)`` may be swapped for
    a quicker measurement (lab 06 in small-run mode). Each row also gets the batch-1 latency
    (:func:`zlab.measure.evaluate.latency_ms`, median over ``latency_prompts`` train prompts).
    """
    base = {"height": 64, "width": 64, **teacher_sampling}
    settings = {"teacher 50 steps + CFG (sampling.json)": base}
    for n in STUDENT_STEPS:
        settings[f"teacher {n} step{'s' * (n > 1)} + CFG"] = {**base, "num_inference_steps": n}
    for n in STUDENT_STEPS:
        settings[f"teacher {n} step{'s' * (n > 1)}, no CFG"] = {**base, "num_inference_steps": n, "guidance_scale": 0.0}
    student_base = {"guidance_scale": 0.0, **{k: base[k] for k in ("height", "width", "max_sequence_length") if k in base}}
    plan = [(teacher, settings)]
    if include_init:
        init = student_pipeline(teacher, teacher.transformer)
        plan.append((init, {name.replace("student", "LADD start (teacher weights, student schedule),"): kw
                            for name, kw in student_settings(student_base).items()}))
    plan.append((student, student_settings(student_base)))
    rows = []
    timed = enumerate_captions("train")[::max(1, 270 // max(1, latency_prompts))][:latency_prompts]
    for pipe, group in plan:
        group_rows = evaluate(pipe, group, net, seeds=seeds)
        for row in group_rows:
            if timed:
                row["latency_ms"] = latency_ms(pipe, group[row["setting"]], timed, list(range(len(timed))))
        rows += group_rows
    return rows


def speedup(rows: list[dict], slow: str = "teacher 50 steps + CFG (sampling.json)", fast: str = "student 4 steps",
            key: str = "latency_ms") -> float:
    """Wall-clock ratio of two rows measured in the same run: batch-1 latency (``key="latency_ms"``)
    or batch-64 throughput (``key="ms_per_image"``)."""
    by_name = {r["setting"]: r for r in rows}
    return by_name[slow][key] / by_name[fast][key]
