"""The memory model against PyTorch's CPU memory profiler: one LADD step of the tiny pipeline, batch 4,
64x64, four configurations (tests/train/test_scale.py asserts the same 0.8-1.2 band).

    python scripts/memory_model_check.py

Prints | config | predicted MiB | measured MiB | ratio | traced activations MiB | profiler's activation MiB |
measured by events MiB |: the last column is ``measure(by_events=True)`` (live storages + the running sum of
allocations), the method the sharded-step check on FSDP ranks uses, next to the categorised profiler.
"""

import copy
from dataclasses import replace

from zlab.tiny import build_tiny_pipeline
from zlab.train.config import load_config
from zlab.train.distill_config import DistillConfig
from zlab.train.memory import make_step, measure, predict

MiB = 2**20
pipe = build_tiny_pipeline(seed=0)
base = load_config(DistillConfig, ladd={"blocks": (1, 3), "head_hidden": 16}, train={"batch_size": 4})
cases = {"full fp32, Adam": {},
         "full, bf16 autocast, checkpointing": {"mixed_precision": "bf16", "gradient_checkpointing": True},
         "LoRA r8, bf16 weights, checkpointing": {"weights_dtype": "bfloat16", "lora_rank": 8,
                                                  "gradient_checkpointing": True},
         "LoRA r8, fp32, no checkpointing": {"lora_rank": 8}}
for name, options in cases.items():
    config = replace(base, scale=replace(base.scale, **options))
    predicted = predict(config, pipe.transformer.config, 64, 64, cap_len=16)
    measured = measure(make_step(config, copy.deepcopy(pipe.transformer), 64, 64, cap_len=16))
    by_events = measure(make_step(config, copy.deepcopy(pipe.transformer), 64, 64, cap_len=16), by_events=True)
    print(f"| {name} | {predicted.total / MiB:.2f} | {measured.total / MiB:.2f} | {predicted.total / measured.total:.2f} "
          f"| {predicted.parts['activations'] / MiB:.2f} | {measured.parts.get('activation', 0) / MiB:.2f} "
          f"| {by_events.total / MiB:.2f} |", flush=True)
