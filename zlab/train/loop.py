"""The one training loop and what every run shares: :func:`fit` (progress bar, atomic checkpoints, exact resume),
seeding, learning-rate warm-up, the accelerator.

The VAE, the teacher, ShapesNet and every distillation method run on :func:`fit`: each hands it a ``step_fn`` that
takes one optimisation step, and a ``state_fn`` that says what a checkpoint holds.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from tqdm.auto import tqdm

from zlab.atomic import atomic_file

CHECKPOINT = "checkpoint.pt"


def make_accelerator(mixed_precision: str = "no", cpu: bool | None = None) -> Accelerator:
    """The ``Accelerator`` of one run (CPU when no GPU is present, or when ``cpu`` is True).

    One process may run several trainings in a row with different precisions (``zlab make-teacher``:
    the VAE in fp32, then the teacher in bf16); accelerate keeps the precision in a process-wide
    singleton, so it is cleared first. The process group (``PartialState``) is kept.
    """
    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(cpu=not torch.cuda.is_available() if cpu is None else cpu, mixed_precision=mixed_precision)


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch generator for data noise (deterministic on CPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def warmup_cosine(step: int, warmup: int, total: int, final_fraction: float = 0.1) -> float:
    """Learning-rate multiplier: linear warm-up over ``warmup`` steps, then cosine down to ``final_fraction``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))


def save_checkpoint(run_dir: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``run_dir/checkpoint.pt`` atomically (temp file + rename): a crash mid-write
    leaves the previous checkpoint intact."""
    run_dir = Path(run_dir)
    state = dict(state, rng={"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                             "python": random.getstate()})
    with atomic_file(run_dir / CHECKPOINT) as tmp:
        torch.save(state, tmp)
    return run_dir / CHECKPOINT


def load_checkpoint(run_dir: str | Path) -> dict[str, Any] | None:
    """The last checkpoint of a run (restoring global RNG state), or None if there is none."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)  # ranks share the file's pages
    rng = state.get("rng")
    if rng:
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
    return state


# Where a run's weights start: read at step 0 only, so a checkpoint (which holds the weights) resumes whatever path
# names that start now (e.g. a grid that pins a moved copy of the same student)
START_ONLY = ("student_init", "init_recipe")


def _past_start(config: dict) -> dict:
    """``config`` without the settings that only choose the starting weights."""
    train = {k: v for k, v in config.get("train", {}).items() if k not in START_ONLY}
    return {**config, "train": train} if "train" in config else config


def same_config(stored: dict, config) -> bool:
    """Whether a checkpoint's config is ``config``: equal, or equal once the settings added to the code since it was
    written take their defaults (a run checkpointed before a new option existed resumes as it ran); the settings that
    only choose the starting weights (``START_ONLY``) do not count, since the checkpoint holds the weights."""
    current = _past_start(dataclasses.asdict(config))
    if _past_start(stored) == current:
        return True
    from zlab.train.config import build

    try:
        return _past_start(dataclasses.asdict(build(type(config), copy.deepcopy(stored)))) == current
    except (ValueError, TypeError):
        return False


def resume_run(run_dir: str | Path, config, resume: bool, **objects) -> tuple[int, list[float], dict | None]:
    """Restore ``objects`` (anything with ``load_state_dict``) from the run's checkpoint when resuming.

    Returns ``(step, losses, state)``; a fresh start gives ``(0, [], None)``. A checkpoint written
    with another config is refused: resuming it would silently mix two runs.
    """
    state = load_checkpoint(run_dir) if resume else None
    if state is None:
        return 0, [], None
    if not same_config(state["config"], config):
        raise ValueError(f"{run_dir} was trained with a different config; start a new run directory")
    for name, obj in objects.items():
        obj.load_state_dict(state[name])
    return state["step"], state["losses"], state


def optimizer_step(accelerator, loss, model, optimizer, scheduler, grad_clip: float, step: int) -> None:
    """Backward, clip, step and zero the gradients; a non-finite loss stops the run before it
    can reach the weights (the last checkpoint on disk stays good)."""
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite loss at step {step}; resume from the last checkpoint with a lower lr")
    accelerator.backward(loss)
    accelerator.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def fit(step_fn: Callable[[int], dict[str, str] | None], start: int, steps: int, *, desc: str, progress: bool = True,
        run_dir: str | Path | None = None, state_fn: Callable[[int], dict | None] | None = None,
        checkpoint_every: int = 0, after: Callable[[int], None] | None = None) -> None:
    """Run ``step_fn(step)`` for ``step`` in ``[start, steps)``.

    What ``step_fn`` returns is shown beside the progress bar. Every ``checkpoint_every`` steps and after the last,
    ``state_fn(steps_done)`` is called on every process (gathering a sharded model is collective) and what it returns
    on the main process is written atomically to ``run_dir/checkpoint.pt`` (None: nothing to write here).
    ``after(steps_done)`` runs after each step (a lab's callback, say). A run resumed at ``start`` from that
    checkpoint (:func:`resume_run`) continues exactly where it stopped.
    """
    bar = tqdm(total=steps, initial=start, desc=desc, disable=not progress)
    for step in range(start, steps):
        shown = step_fn(step)
        bar.update(1)
        if shown:
            bar.set_postfix(**shown)
        done = step + 1
        if state_fn is not None and (done % checkpoint_every == 0 or done == steps):
            state = state_fn(done)
            if state is not None:
                save_checkpoint(run_dir, state)
        if after is not None:
            after(done)
    bar.close()
