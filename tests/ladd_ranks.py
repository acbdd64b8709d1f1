"""Run by ``torch.distributed.run`` from tests/test_fsdp.py: LADD on two CPU ranks, then a resumed run.

    python -m torch.distributed.run --nproc_per_node=2 tests/ladd_ranks.py CONFIG.toml OUT_DIR

With ``ACCELERATE_USE_FSDP=true`` and the ``FSDP_*`` variables that ``accelerate launch`` derives
from configs/accelerate-fsdp.yaml, the student is sharded by FSDP2 through ``accelerator.prepare``.
accelerate itself only turns FSDP on for GPUs (on CPU it quietly falls back to DDP), so this
script switches the accelerator's state to FSDP after creating it; FSDP2 and its collectives run
on CPU over gloo. Writes ``OUT_DIR/result.pt``: the straight and the resumed students (main rank).
"""

import os
import sys
from pathlib import Path

import torch
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

import zlab.ladd.trainer as trainer
from zlab.train.config import load_config

config_path, out = sys.argv[1], Path(sys.argv[2])
make_accelerator = trainer.make_accelerator


def fsdp_on_cpu(*args, **kwargs):
    accelerator = make_accelerator(*args, **kwargs)
    if os.environ.get("ACCELERATE_USE_FSDP") == "true":
        accelerator.state.distributed_type = DistributedType.FSDP
        accelerator.state.fsdp_plugin = FullyShardedDataParallelPlugin()  # reads the FSDP_* variables
    return accelerator


trainer.make_accelerator = fsdp_on_cpu
config = load_config(trainer.LADDConfig, config_path)
straight, heads, log = trainer.train_ladd(config, out / "straight", progress=False)
is_main = int(os.environ["RANK"]) == 0

# Stop after half the steps, then resume the same config to the end.
half = load_config(trainer.LADDConfig, config_path, steps=config.steps // 2)
trainer.train_ladd(half, out / "resumed", progress=False)
torch.distributed.barrier()
if is_main:
    state = torch.load(out / "resumed" / "checkpoint.pt", weights_only=False)
    state["config"]["steps"] = config.steps
    torch.save(state, out / "resumed" / "checkpoint.pt")
torch.distributed.barrier()
resumed, _, _ = trainer.train_ladd(config, out / "resumed", resume=True, progress=False)
if is_main:
    torch.save({"straight": straight.state_dict(), "resumed": resumed.state_dict(), "heads": heads.state_dict(),
                "log": log}, out / "result.pt")
else:
    assert (straight is None) == (os.environ.get("ACCELERATE_USE_FSDP") == "true")
