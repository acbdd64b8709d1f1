"""The whole student recipe from a shipped teacher: synthetic data, LADD, a stock student folder.

    zlab make-student --config configs/shapes-ladd.toml --out checkpoints/shapes-student

1. ``zlab synth``: the teacher's ``sampling.json`` samples of every train prompt x ``synth_rounds``
   seeds (a shard already there is kept if the same prompts, sampling, seed and teacher made it, else
   regenerated);
2. ``train.init_recipe``, if the config names one (e.g. DMD's regression student): that recipe's trainer on the
   same data, whose student this one starts from (resumable);
3. ``zlab distill``: the method's trainer (resumable);
4. :func:`ship_student`: the student pipeline with the shift-1 scheduler, ``sampling.json`` (4
   steps, no CFG), the discriminator heads, ``eval.json`` and a model card, written atomically.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from diffusers import ZImagePipeline

from zlab.atomic import write_folder
from zlab.distill.heads import Discriminator
from zlab.distill.student import check_student_schedule, save_student, student_pipeline
from zlab.measure.evaluate import evaluate_open, evaluate_settings, teacher_reference
from zlab.measure.settings import Setting, by_label, student_steps
from zlab.recipes.cards import shipped_steps, student_card, timings_text
from zlab.recipes.sampling_choice import choose_sampling_mode, choose_shift
from zlab.shapes import prompt_sets
from zlab.shapes.net import ShapesNet
from zlab.shapes.world import canvas_size, sampling_base
from zlab.train.distill import train_student
from zlab.train.distill_config import DistillConfig
from zlab.train.loop import load_checkpoint
from zlab.train.synth import synthesize_from
from zlab.zimage import read_sampling


def student_settings(sampling: dict) -> dict[str, dict]:
    """Student rows of the comparison: N = 1, 2, 4 steps, no CFG."""
    return by_label(student_steps(), sampling)


def student_sampling(image_size: int = 64, steps: int = 4) -> dict:
    """The student's sampling.json: 4 steps (1 for a one-step student), no CFG, at the teacher's size."""
    return {"num_inference_steps": steps, "guidance_scale": 0.0, **sampling_base(image_size)}


def ship_student(teacher: ZImagePipeline, transformer, disc: Discriminator | None, out: str | Path,
                 record: dict, shapes_net: str | Path = "checkpoints/shapes-net", seeds=(0,),
                 stochastic: bool = False, measure: bool = True, image_size: int = 64,
                 teacher_sampling: dict | None = None, open_plan: tuple[int, int] = (10, 16), steps: int = 4,
                 measure_since: float | None = None, shift: float = 1.0) -> list[dict]:
    """Save the student folder and measure it through stock ``ZImagePipeline`` (``eval.json``, model card).

    ``measure=False`` skips the evaluation (tests of the folder format only). With ``teacher_sampling`` (the
    teacher's sampling.json) the student at 1, 2, 4 steps is also measured on open **test** prompts
    (``open_plan`` = prompts per number of open attributes, seeds per prompt) beside the teacher's 50 steps.
    """
    pipe = student_pipeline(teacher, transformer, stochastic, shift)
    sampling = student_sampling(image_size, steps)
    rows = (evaluate_settings(pipe, student_settings(sampling), ShapesNet.load(shapes_net), seeds=seeds)
            if measure else [])
    record = {**record, "rows": rows, "schedule": check_student_schedule(pipe), "stochastic_sampling": stochastic,
              "shift": shift}
    if measure and teacher_sampling is not None:
        record["open"] = open_test_rows(teacher, teacher_sampling, pipe, sampling, ShapesNet.load(shapes_net), open_plan)
    if measure_since is not None and "timings" in record:
        timings = {**record["timings"], "measure_and_ship_s": time.perf_counter() - measure_since}
        record["timings"] = {**timings, "total_s": sum(timings.values())}
    files = {"eval.json": json.dumps(record, indent=2) + "\n", "README.md": student_card(sampling, record)}
    save_student(pipe, disc, out, sampling, files)
    return rows


def open_test_rows(teacher: ZImagePipeline, teacher_sampling: dict, student: ZImagePipeline, sampling: dict,
                   net: ShapesNet, plan: tuple[int, int] = (10, 16)) -> list[dict]:
    """Teacher (its sampling.json) and student at 1, 2, 4 steps on open test prompts: validity, named accuracy,
    coverage, FD to renders and to the teacher's 50-step samples (other seeds), by number of open attributes."""
    per_count, per_prompt = plan
    prompts, seeds = prompt_sets.prompts_and_seeds("test", per_prompt, per_count=per_count)
    reference = teacher_reference(teacher, teacher_sampling, prompts, seeds)
    rows = evaluate_open(teacher, {Setting("teacher", 50, cfg=True, note="sampling.json").label: teacher_sampling}, net, prompts, seeds,
                         per_prompt, reference)
    return rows + evaluate_open(student, student_settings(sampling), net, prompts, seeds, per_prompt, reference)


def log_tail(log: dict, last: int) -> dict:
    """A training log for a record: the last ``last`` entries of each per-step series, other entries (e.g. the
    count of synthetic samples the checker dropped) as they are."""
    return {k: v[-last:] if isinstance(v, list) else v for k, v in log.items()}


def train_init_stage(config: DistillConfig, run_dir: str | Path, resume: bool = False,
                     progress: bool = True) -> tuple[DistillConfig, dict]:
    """``train.init_recipe``: train that recipe on ``config``'s teacher and synthetic data in ``<run_dir>-init`` and
    return ``config`` started from its student (saved there as ``student/transformer``) and the stage's record."""
    from zlab.train.config import load_config

    init = load_config(DistillConfig, config.train.init_recipe)
    if init.train.init_recipe:
        raise ValueError(f"train.init_recipe: {config.train.init_recipe} names an init_recipe of its own; one stage "
                         "before the student is supported")
    init = replace(init, data=config.data)  # the same teacher and the same synthetic pairs (synthesised once)
    stage_dir = Path(f"{run_dir}-init")
    transformer, _, log = train_student(init, stage_dir, resume=resume, progress=progress)
    folder = stage_dir / "student"
    write_folder(folder, lambda tmp: transformer.save_pretrained(tmp / "transformer"))
    return (replace(config, train=replace(config.train, student_init=str(folder))),
            {"recipe": config.train.init_recipe, "config": asdict(init), "log": log_tail(log, 50)})


def make_student(config: DistillConfig, out: str | Path, run_dir: str | Path = "runs/ladd", resume: bool = False,
                 progress: bool = True, measure: bool = True, config_file: str | None = None) -> list[dict]:
    """Synth (if needed), an init stage (``train.init_recipe``, if any), train, measure, ship: the whole student
    recipe from the teacher, timed stage by stage (one process)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # every rank would synthesise and ship the same folders
        raise ValueError("make-student is the one-process Shapes recipe; under `accelerate launch` run `zlab synth` "
                         "once, then `accelerate launch ... -m zlab.cli distill --config ... --out DIR`")
    clock = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        timings[f"{name}_s"] = time.perf_counter() - clock
        clock = time.perf_counter()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    synthesize_from(config.data.teacher, config.data.folder, sampling=config.data.sampling(), rounds=config.data.rounds,
                    seed=config.train.seed, progress=progress,
                    device=device, sizes=[canvas_size(size) for size in config.data.sizes], source=config.data.real)
    lap("synth")
    init_record = None
    if config.train.init_recipe:
        config, init_record = train_init_stage(config, run_dir, resume, progress)
        lap("init")
    before = load_checkpoint(run_dir) if resume else None  # a finished run (e.g. the search's chosen one) only ships
    finished_before = before is not None and before["step"] >= config.train.steps
    del before
    transformer, disc, log = train_student(config, run_dir, resume=resume, progress=progress)
    lap("train")
    teacher = ZImagePipeline.from_pretrained(config.data.teacher).to(transformer.device)  # one device, the student's
    record = {"config": asdict(config), "timings": timings, "log": log_tail(log, 200)}
    if config_file:  # the card names the command that made it
        record["config_file"] = str(config_file)
    if init_record is not None:
        record["init_stage"] = init_record
    if finished_before:  # e.g. the run of the recipe search that was chosen: its training time is in that record
        record["trained_earlier_in"] = str(run_dir)
    elif resume:  # restarted after a cut: what had finished before the restart is not in these timings
        record["resumed"] = True
    teacher_sampling = read_sampling(config.data.teacher)
    image_size = teacher_sampling.get("height", 64)  # the student samples at its teacher's size
    stochastic, shift, sampling = config.ship.stochastic_sampling, config.ship.shift, student_sampling(image_size)
    if config.ship.choose_sampling and measure:
        record["sampling_choice"] = choose_sampling_mode(teacher, transformer, sampling, shift=shift)
        stochastic = record["sampling_choice"]["chosen"] == "stochastic"
    if config.ship.shift_candidates and measure:
        record["shift_choice"] = choose_shift(teacher, transformer, sampling, config.ship.shift_candidates, shift,
                                              stochastic)
        shift = record["shift_choice"]["chosen"]
    rows = ship_student(teacher, transformer, disc, out, record, measure=measure, stochastic=stochastic,
                        image_size=image_size, teacher_sampling=teacher_sampling,
                        steps=shipped_steps(json.loads(json.dumps(asdict(config)))), measure_since=clock,
                        shift=shift)
    print(timings_text(record["timings"]))
    return rows
