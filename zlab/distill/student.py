"""The shipped student: a stock ``ZImagePipeline`` folder that samples at exactly the trained times.

``ZImagePipeline`` asks its scheduler for ``linspace(1, 1/N, N)`` and then applies the scheduler's
shift. With ``shift = 1`` and no dynamic shifting that schedule *is* the student's: N = 1 gives
{1}, N = 2 gives {1, .5}, N = 4 gives {1, .75, .5, .25}, the times LADD (Sauer et al. 2024)
trains and samples at. So a plain ``pipe(prompt, num_inference_steps=N, guidance_scale=0.0)``
samples the student as trained, with no zlab code. A student may also ship a static ``shift = s``
(``[ship] shift``): its steps then fall at ``s t / (1 + (s - 1) t)`` of those times, still sampled by stock
``ZImagePipeline`` (one step is ``t = 1`` at every shift; ``zlab.recipes.sampling_choice`` chooses ``s``).
Its critic ships next to the pipeline for the app's views: LADD's heads (``discriminator/``) or DMD's fake score
(``fake_score/``); diffusers ignores both folders.
"""

from __future__ import annotations

import json
from pathlib import Path

from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline
from safetensors.torch import load_file, save_file

from zlab.distill.dmd import critic_parts
from zlab.distill.heads import Discriminator
from zlab.distill.schedule import STUDENT_STEPS
from zlab.zimage import SAMPLING_FILE, read_sampling, save_pipeline, schedule

DISCRIMINATOR = "discriminator"  # LADD's heads, beside the pipeline
FAKE_SCORE = "fake_score"  # DMD's fake score (a transformer of the teacher's architecture), beside the pipeline


def student_scheduler(teacher_scheduler: FlowMatchEulerDiscreteScheduler, stochastic: bool = False,
                      shift: float = 1.0) -> FlowMatchEulerDiscreteScheduler:
    """The teacher's scheduler with a static ``shift`` (1: the trained times) and no resolution shift.

    ``stochastic=True`` sets diffusers' ``stochastic_sampling``: each step re-noises the student's
    ``x0_hat`` with fresh noise (a consistency step), exactly the inputs LADD trains on; ``False``
    keeps the deterministic Euler step.
    """
    if not shift > 0:
        raise ValueError(f"a time shift must be positive, got {shift}")
    return FlowMatchEulerDiscreteScheduler.from_config(teacher_scheduler.config, shift=float(shift),
                                                       use_dynamic_shifting=False, stochastic_sampling=stochastic)


def student_pipeline(teacher: ZImagePipeline, transformer, stochastic: bool = False,
                     shift: float = 1.0) -> ZImagePipeline:
    """The teacher's VAE, tokenizer and text encoder around the student transformer and scheduler."""
    pipe = ZImagePipeline(scheduler=student_scheduler(teacher.scheduler, stochastic, shift), vae=teacher.vae,
                          text_encoder=teacher.text_encoder, tokenizer=teacher.tokenizer, transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_discriminator(disc: Discriminator, folder: str | Path) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    head = disc.heads[0]
    widths = [h.conv_in.in_channels for h in disc.heads]
    config = {"blocks": list(disc.blocks), "channels": widths[0] if len(set(widths)) == 1 else widths,
              "text_dim": head.text_proj.in_features, "hidden": head.conv_in.out_channels,
              "t_features": head.t_features, "text_norm": head.text_norm,
              "caption": disc.caption, "whole": disc.whole}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file({k: v.contiguous() for k, v in disc.state_dict().items()}, str(folder / "model.safetensors"))


def load_discriminator(folder: str | Path) -> Discriminator:
    """The heads saved by :func:`save_student` (``<student>/discriminator``)."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} holds no discriminator (config.json missing)")
    disc = Discriminator(**json.loads((folder / "config.json").read_text()))
    disc.load_state_dict(load_file(str(folder / "model.safetensors")))
    return disc.eval()


def save_student(pipe: ZImagePipeline, critic, path: str | Path, sampling: dict,
                 extra: dict[str, str] | None = None) -> Path:
    """Write the student folder atomically: pipeline, ``sampling.json``, its critic (LADD's discriminator heads in
    ``discriminator/``, DMD's fake score in ``fake_score/`` and with DMD2's GAN term its heads in ``discriminator/``,
    for the app's views), extra text files."""

    def write_extra(folder: Path) -> None:
        fake, heads = critic_parts(critic) if not isinstance(critic, Discriminator) else (None, critic)
        if heads is not None:
            save_discriminator(heads, folder / DISCRIMINATOR)
        if fake is not None:
            fake.save_pretrained(folder / FAKE_SCORE)
        for name, text in (extra or {}).items():
            (folder / name).write_text(text)

    return save_pipeline(pipe, path, sampling, write_extra)


def check_student_schedule(pipe: ZImagePipeline, steps=STUDENT_STEPS, height: int = 64, width: int = 64) -> dict[int, list]:
    """The lab times stock ``ZImagePipeline`` will use at each N (read from its scheduler, as it does)."""
    return {n: [round(float(t), 6) for t in schedule(pipe.scheduler, n, height, width,
                                                      vae_scale_factor=pipe.vae_scale_factor)[:-1]] for n in steps}


def save_trained_student(teacher: str, transformer, critic, out: str | Path, stochastic: bool = False,
                         shift: float = 1.0) -> Path:
    """A student folder straight from a run (``zlab distill --out``), for any teacher folder or hub id.

    The teacher's VAE, tokenizer and text encoder around the trained ``transformer`` (the teacher's
    own transformer is not loaded), the scheduler at ``shift`` (1: the trained times), and ``sampling.json``: the teacher's
    (its size and prompt length) with 4 steps and no CFG. The Shapes recipe (``zlab make-student``)
    also measures the student; this only writes it.
    """
    pipe = student_pipeline(ZImagePipeline.from_pretrained(teacher, transformer=transformer), transformer, stochastic,
                            shift)
    teacher_sampling = read_sampling(teacher) if (Path(teacher) / SAMPLING_FILE).is_file() else {}  # none on the hub
    keep = ("height", "width", "max_sequence_length")
    sampling = {"num_inference_steps": 4, "guidance_scale": 0.0, **{k: teacher_sampling[k] for k in keep
                                                                     if k in teacher_sampling}}
    return save_student(pipe, critic, out, sampling)
