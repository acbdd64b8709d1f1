"""The tiny LADD world the training tests share: prompts, the teacher's sampling, its synthetic data, a run config."""

from pathlib import Path

from zlab.train.config import load_config, merge
from zlab.train.distill_config import DistillConfig
from zlab.train.synth import synthesize
from zlab.zimage import save_pipeline

PROMPTS = ["a large red circle at the top left", "a small blue square at the bottom right",
           "a large green triangle at the middle center"]
SAMPLING = {"num_inference_steps": 2, "guidance_scale": 1.0, "cfg_truncation": 1.0, "height": 64, "width": 64}


def teacher_and_data(root: Path, pipe) -> tuple[Path, Path]:
    """``pipe`` saved as a teacher folder under ``root``, and its synthetic data (2 rounds of :data:`PROMPTS`)."""
    teacher = save_pipeline(pipe, root / "teacher", sampling=SAMPLING)
    data = synthesize(pipe, root / "synth", SAMPLING, rounds=2, prompts=PROMPTS, batch_size=2, progress=False)
    return teacher, data


def ladd_config(teacher_and_data, **sections) -> DistillConfig:
    """A tiny LADD run on the tiny teacher's data; ``sections`` override it by section (``train={"steps": 2}``)."""
    teacher, data = teacher_and_data
    base = {"data": {"teacher": str(teacher), "folder": str(data)},
            "train": {"steps": 4, "batch_size": 3, "checkpoint_every": 2, "student_lr": 1e-4, "heads_lr": 1e-3},
            "ladd": {"blocks": (1, 3), "head_hidden": 8, "warmup_steps": 2}}
    return load_config(DistillConfig, **merge(base, sections))


def stopped_and_resumed(config: DistillConfig, run_dir: Path):
    """``config``'s run trained for half its steps, then resumed to the end in the same folder (the stored config's
    steps rewritten to ``config``'s, the only difference): ``(student, critic, log)`` to compare with a straight run."""
    import dataclasses

    import torch

    from zlab.train.distill import train_student

    half = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=config.train.steps // 2))
    train_student(half, run_dir, progress=False)
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    state["config"]["train"]["steps"] = config.train.steps
    torch.save(state, run_dir / "checkpoint.pt")
    return train_student(config, run_dir, resume=True, progress=False)
