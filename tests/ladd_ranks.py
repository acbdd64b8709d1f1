"""Run by ``torch.distributed.run`` from tests/train/test_fsdp.py: LADD on two CPU ranks, then a resumed run.

    python -m torch.distributed.run --nproc_per_node=2 tests/ladd_ranks.py CONFIG.toml OUT_DIR [HALF_CHECKPOINT]

Under the variables of :func:`ranks.fsdp_env` the student is sharded by FSDP2 (see ranks.on_cpu);
without them the ranks run DDP. Writes ``OUT_DIR/result.pt`` (main rank): the straight and the
resumed students (and the one resumed from HALF_CHECKPOINT), the heads, the log and what the
training callback received; ``OUT_DIR/half/checkpoint.pt`` is the checkpoint half-way.
"""

import os
import sys
from pathlib import Path

import torch
from ranks import leave, on_cpu

import zlab.train.distill as trainer
from zlab.train.config import load_config

config_path, out = sys.argv[1], Path(sys.argv[2])
trainer.make_accelerator = on_cpu(trainer.make_accelerator)
seen = []
config = load_config(trainer.DistillConfig, config_path)
straight, heads, log = trainer.train_student(config, out / "straight", progress=False, callback_every=config.train.steps,
                                          callback=lambda step, student, disc: seen.append(
                                              (step, type(student).__name__, type(disc).__name__)))
is_main = int(os.environ["RANK"]) == 0



def resume_from(checkpoint: Path, run: Path):
    """Continue a half-way checkpoint (maybe written by another launch) to ``config.train.steps``."""
    if is_main:
        state = torch.load(checkpoint, weights_only=False)
        state["config"]["train"]["steps"] = config.train.steps
        run.mkdir(parents=True, exist_ok=True)
        torch.save(state, run / "checkpoint.pt")
    torch.distributed.barrier()
    return trainer.train_student(config, run, resume=True, progress=False)[0]


# Stop after half the steps (keeping that checkpoint as half.pt), then resume the same config to the end.
half = load_config(trainer.DistillConfig, config_path, **{"train.steps": config.train.steps // 2})
trainer.train_student(half, out / "half", progress=False)
torch.distributed.barrier()
resumed = resume_from(out / "half" / "checkpoint.pt", out / "resumed")
# A half-way checkpoint of another launch (argv[3], e.g. DDP's for this FSDP run) resumes here too.
crossed = resume_from(Path(sys.argv[3]), out / "crossed") if len(sys.argv) > 3 else None
if is_main:
    from zlab.distill.student import save_trained_student

    save_trained_student(config.data.teacher, straight, heads, out / "student")
    torch.save({"straight": straight.state_dict(), "resumed": resumed.state_dict(), "heads": heads.state_dict(),
                "crossed": crossed.state_dict() if crossed is not None else None,
                "log": log, "callback": seen},
               out / "result.pt")
else:
    assert (straight is None) == (os.environ.get("ACCELERATE_USE_FSDP") == "true") and not seen
leave()
