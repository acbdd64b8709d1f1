"""Run by ``torch.distributed.run`` from tests/train/test_fsdp.py: the memory model of a sharded step against
PyTorch's CPU memory profiler on every rank (the tiny pipeline, batch 4 per rank, 64x64).

    python -m torch.distributed.run --nproc_per_node=2 tests/fsdp_memory_ranks.py OUT.json

Under the variables of :func:`ranks.fsdp_env` the student is sharded by FSDP2 (see ranks.on_cpu).
Writes, from the main rank, ``{"memory": {config name: [[predicted, measured, predicted unsharded] bytes per
rank]}, "time_dtypes": [the dtypes the student's timestep embedder received]}``.
"""

import json
import sys

import torch
from ranks import leave, on_cpu

from zlab.tiny import build_tiny_pipeline
from zlab.train.config import load_config
from zlab.train.distill_config import DistillConfig
from zlab.train.loop import make_accelerator
from zlab.train.memory import make_step, measure, predict

pipe = build_tiny_pipeline(seed=0)
world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
BASE = {"ladd.blocks": (1, 3), "ladd.head_hidden": 16, "train.batch_size": 4}
cases = {"full fp32, Adam, EMA": {"train.ema_decay": 0.9},
         "full fp32, checkpointing": {"scale.gradient_checkpointing": True},
         "full, bf16 autocast, checkpointing, EMA": {"scale.mixed_precision": "bf16", "scale.gradient_checkpointing": True,
                                                    "train.ema_decay": 0.9}}
results = {}
time_dtypes = set()  # what reaches the student's timestep embedder (FSDP must not cast it to bf16)
torch.nn.modules.module.register_module_forward_pre_hook(
    lambda module, args: time_dtypes.add(str(args[0].dtype)) if type(module).__name__ == "TimestepEmbedder" else None)
for name, options in cases.items():
    config = load_config(DistillConfig, **{**BASE, **options})
    accelerator = on_cpu(make_accelerator)(config.scale.mixed_precision, cpu=True)
    world = accelerator.num_processes
    predicted = predict(config, pipe.transformer.config, 64, 64, cap_len=16, shards=world)
    teacher = build_tiny_pipeline(seed=0).transformer
    measured = measure(make_step(config, teacher, 64, 64, cap_len=16, accelerator=accelerator), by_events=True)
    whole = predict(config, pipe.transformer.config, 64, 64, cap_len=16)  # the same step on one process
    pair = torch.tensor([float(predicted.total), float(measured.total), float(whole.total)])
    results[name] = accelerator.gather(pair[None]).tolist()
if accelerator.is_main_process:
    with open(sys.argv[1], "w") as f:
        json.dump({"memory": results, "time_dtypes": sorted(time_dtypes)}, f)
leave()
