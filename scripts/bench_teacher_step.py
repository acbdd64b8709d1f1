"""Benchmark: what one teacher training step costs on this CPU, and whether anything makes it cheaper.

One forward + backward + AdamW step of the shipped teacher's transformer on random latents of the 64x64 bucket
(8x8 latents, 12 caption tokens), in one process, interleaved rounds so that a busy machine hurts every setting
alike. Prints seconds per step and samples per second for each setting, and each setting's ratio to the
recipe's (fp32, batch 64, all threads, eager):

    python scripts/bench_teacher_step.py            # about 3 minutes on the 2-core CPU, nothing else running

Settings: the recipe; batch 32 and 128 (does a different batch buy more samples per second?); bf16 autocast
(AMX on this Xeon); ``torch.compile`` of the repeated transformer blocks (diffusers' regional compilation).
"""

import time

import torch
from diffusers import ZImagePipeline

from zlab.flow import zimage_velocity

TEACHER = "checkpoints/shapes-teacher"
ROUNDS, STEPS_PER_ROUND, CAPTION_TOKENS = 3, 4, 12


def make_setting(batch: int, bf16: bool = False, compiled: bool = False):
    transformer = ZImagePipeline.from_pretrained(TEACHER).transformer.train()
    if compiled:
        transformer.compile_repeated_blocks(dynamic=False)
    optimizer = torch.optim.AdamW(transformer.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, transformer.config.in_channels, 8, 8, generator=generator)
    embeds = [torch.randn(CAPTION_TOKENS, transformer.config.cap_feat_dim, generator=generator) for _ in range(batch)]
    t = torch.rand(batch, generator=generator)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = zimage_velocity(transformer, x, t, embeds).float().square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(2):  # warm-up (and compilation)
        step()
    return batch, step


settings = {
    "recipe: fp32, batch 64": make_setting(64),
    "batch 32": make_setting(32),
    "batch 128": make_setting(128),
    "bf16 autocast, batch 64": make_setting(64, bf16=True),
    "torch.compile blocks, batch 64": make_setting(64, compiled=True),
}
seconds = {name: 0.0 for name in settings}
for _ in range(ROUNDS):
    for name, (_, step) in settings.items():
        start = time.perf_counter()
        for _ in range(STEPS_PER_ROUND):
            step()
        seconds[name] += (time.perf_counter() - start) / STEPS_PER_ROUND / ROUNDS

base = settings["recipe: fp32, batch 64"][0] / seconds["recipe: fp32, batch 64"]
print(f"threads: {torch.get_num_threads()}")
for name, (batch, _) in settings.items():
    rate = batch / seconds[name]
    print(f"{name:32s} {seconds[name]:.3f} s/step  {rate:6.1f} samples/s  {rate / base:.2f}x the recipe's samples/s")
