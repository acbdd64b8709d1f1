"""One prompt, many seeds, one column per sampler: what each does with the image a prompt leaves open.

The app's seeds grid. Each column samples the same prompt with the same K seeds through stock
``ZImagePipeline`` (the teacher with its recipe, the teacher cut to N steps, a regression-distilled student
when one is loaded, the LADD student at 1, 2 and 4 steps, and another student, e.g. DMD's, when one is loaded at
the step counts it is meant for) and is scored by :mod:`zlab.shapes.metrics`:
validity, accuracy on the named attributes and coverage of the open ones, the same measures as the
model cards, here for one prompt. A collapsed sampler shows as a column of one picture with coverage near 0.

Example:
    >>> plan = column_plan(teacher, student, teacher_sampling, naive_steps=4)
    >>> columns = seeds_columns(plan, "a red shape", seeds=range(8))
    >>> [(c.name, round(c.record["coverage_entropy"], 2)) for c in columns]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from diffusers import ZImagePipeline

from zlab.distill.schedule import STUDENT_STEPS
from zlab.measure.evaluate import count_nfe, stock_samples
from zlab.measure.settings import Setting, student_steps
from zlab.shapes.metrics import open_verdict, prompt_records
from zlab.viz.images import enlarge

MIN_SEEDS, MAX_SEEDS = 8, 32
BORDER = {"✓": (40, 170, 70), "✗": (210, 40, 40)}  # valid and right / invalid or a named attribute wrong


@dataclass
class SeedsColumn:
    """K samples of one prompt by one sampler, with their verdicts and the prompt's measures."""

    name: str
    images: np.ndarray  # (K, H, W, 3) uint8, in seed order
    verdicts: list[str]  # zlab.shapes.metrics.open_verdict of each image
    record: dict  # zlab.shapes.metrics.prompt_record: valid, named_accuracy, coverage_* (NaN when not defined)
    nfe: int
    ms: float  # per image, at batch K

    def summary(self) -> str:
        """``valid 7/8 · named 6/8 · coverage 0.81``: what a reader checks under the column."""
        k = len(self.images)
        parts = [f"valid {round(self.record['valid'] * k)}/{k}"]
        if self.record["named_accuracy"] == self.record["named_accuracy"]:
            parts.append(f"named {round(self.record['named_accuracy'] * k)}/{k}")
        if self.record["coverage_entropy"] == self.record["coverage_entropy"]:
            parts.append(f"coverage {self.record['coverage_entropy']:.2f}")
        return " · ".join(parts)


def check_seeds(first_seed: int, k: int) -> list[int]:
    """The K consecutive seeds from ``first_seed``; ValueError naming the accepted ranges."""
    if int(k) != k or not MIN_SEEDS <= k <= MAX_SEEDS:
        raise ValueError(f"the seeds grid takes {MIN_SEEDS} to {MAX_SEEDS} seeds, got {k}")
    if not 0 <= int(first_seed) <= 2**31 - 1 - k:
        raise ValueError(f"the first seed must be in [0, 2^31 - 1 - K], got {first_seed}")
    return list(range(int(first_seed), int(first_seed) + int(k)))


def meant_steps(num_inference_steps: int) -> tuple[int, ...]:
    """The step counts a student is meant for, from its ``sampling.json``'s ``num_inference_steps``: those of
    :data:`~zlab.distill.schedule.STUDENT_STEPS` up to it (a one-step student: ``(1,)``, a 4-step one:
    ``(1, 2, 4)``)."""
    steps = tuple(n for n in STUDENT_STEPS if n <= int(num_inference_steps))
    if not steps:
        raise ValueError(f"a student samples in at least 1 step, got num_inference_steps = {num_inference_steps}")
    return steps


def column_plan(teacher: ZImagePipeline, student: ZImagePipeline, teacher_sampling: dict, naive_steps: int = 4,
                baseline: ZImagePipeline | None = None, baseline_steps: Sequence[int] = (1, 4),
                size: dict | None = None, extra: ZImagePipeline | None = None, extra_who: str = "DMD student",
                extra_steps: Sequence[int] = (1,)) -> list[tuple[ZImagePipeline, str, dict]]:
    """(pipeline, column name, setting) of each column: the teacher with ``teacher_sampling`` (steps, g,
    truncation), the same teacher cut to ``naive_steps``, the regression student ``baseline`` at
    ``baseline_steps`` when given, the student at 1, 2 and 4 steps without CFG, and last another student ``extra``
    (named ``extra_who``, e.g. a DMD student) at ``extra_steps`` without CFG when given. ``size`` overrides the
    height and width (any aspect bucket)."""
    size = {**{k: teacher_sampling[k] for k in ("height", "width", "max_sequence_length") if k in teacher_sampling},
            **(size or {})}
    guided = {**teacher_sampling, **size}
    g = guided.get("guidance_scale", 0)
    teachers = [Setting("teacher", int(n), cfg=g > 0, note=f"g = {g:g}")
                for n in (guided.get("num_inference_steps", 50), naive_steps)]
    plan = [(teacher, s.label, s.kwargs(guided)) for s in teachers]
    unguided = {**size, "guidance_scale": 0.0}
    if baseline is not None:
        plan += [(baseline, s.label, s.kwargs(unguided)) for s in student_steps("regression student", baseline_steps)]
    plan += [(student, s.label, s.kwargs(unguided)) for s in student_steps("LADD student")]
    if extra is not None:
        plan += [(extra, s.label, s.kwargs(unguided)) for s in student_steps(extra_who, extra_steps)]
    return plan


def seeds_columns(plan: Sequence[tuple[ZImagePipeline, str, dict]], prompt: str, seeds: Sequence[int],
                  progress: Callable[[float, str], None] | None = None) -> list[SeedsColumn]:
    """Sample ``prompt`` with every seed in every column of ``plan`` (one batch per column) and score it."""
    columns = []
    for k, (pipe, name, setting) in enumerate(plan):
        if progress is not None:
            progress(k / len(plan), f"sampling: {name}")
        images, ms = stock_samples(pipe, [prompt] * len(seeds), list(seeds), setting, batch_size=len(seeds))
        record = prompt_records(images, [prompt] * len(seeds), len(seeds))[0]
        columns.append(SeedsColumn(name, images, [open_verdict(im, prompt) for im in images], record,
                                   count_nfe(pipe, setting), ms))
    return columns


def grid_image(column: SeedsColumn, cols: int = 2, scale: int = 3, border: int = 3) -> np.ndarray:
    """The column's samples as one uint8 picture, ``cols`` wide, each enlarged ``scale`` times (nearest
    neighbour, so every pixel the model drew stays visible) in a green (valid and right) or red frame."""
    tiles = []
    for image, verdict in zip(column.images, column.verdicts, strict=True):
        tile = enlarge(image, scale)
        frame = np.empty((tile.shape[0] + 2 * border, tile.shape[1] + 2 * border, 3), np.uint8)
        frame[:] = BORDER[verdict[0]]
        frame[border:-border, border:-border] = tile
        tiles.append(frame)
    while len(tiles) % cols:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.concatenate(tiles[i:i + cols], 1) for i in range(0, len(tiles), cols)]
    return np.concatenate(rows, 0)
