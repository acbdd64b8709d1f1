"""Benchmark: would torch.compile shorten make-teacher's two other parts, the VAE's training and the sampling
that measures the teacher?

In one process, interleaved rounds so that a busy machine hurts every setting alike:

* one VAE training step (batch 16 of 64x64 renders, encode, sample, decode, L1 + KL, AdamW), eager against the
  whole ``AutoencoderKL`` compiled;
* one stock ``ZImagePipeline`` call (32 prompts, 10 steps with CFG, 64x64: what the guidance choice and the
  steps table run), eager against the transformer's repeated blocks compiled (diffusers' regional compilation).

    python scripts/bench_recipe_parts.py      # about 5 minutes on the 2-core CPU, nothing else running

Prints seconds per call and each compiled setting's speed-up over its eager one.
"""

import copy
import time

import torch
from diffusers import AutoencoderKL, ZImagePipeline

from zlab.shapes.dataset import ShapesDataset
from zlab.tiny import TINY_SIZES, build_vae

TEACHER = "checkpoints/shapes-teacher"
ROUNDS = 3


def vae_step(compiled: bool):
    vae = build_vae(TINY_SIZES["tiny"]).train()
    if compiled:
        vae.compile()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=1e-4)
    data = ShapesDataset("train", 64, length=16, seed=0)
    images = torch.stack([data[i]["image"] for i in range(16)])

    def step() -> None:
        posterior = vae.encode(images).latent_dist
        loss = (vae.decode(posterior.sample()).sample - images).abs().mean() + 1e-6 * posterior.kl().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return step


def sampling_call(pipe: ZImagePipeline, compiled: bool):
    pipe = copy.deepcopy(pipe)
    if compiled:
        pipe.transformer.compile_repeated_blocks(dynamic=False)
    prompts = [f"a {c} shape" for c in ("red", "green", "blue", "yellow")] * 8

    def call() -> None:
        gens = [torch.Generator().manual_seed(s) for s in range(len(prompts))]
        pipe(prompts, generator=gens, num_inference_steps=10, guidance_scale=0.5, height=64, width=64,
             output_type="np")

    return call


teacher = ZImagePipeline.from_pretrained(TEACHER)
teacher.set_progress_bar_config(disable=True)
settings = {"vae step, eager": vae_step(False), "vae step, compiled": vae_step(True),
            "sampling call, eager": sampling_call(teacher, False),
            "sampling call, compiled blocks": sampling_call(teacher, True)}
for run in settings.values():  # warm-up (and compilation)
    run(), run()
seconds = dict.fromkeys(settings, 0.0)
repeats = {name: 8 if name.startswith("vae") else 1 for name in settings}
for _ in range(ROUNDS):
    for name, run in settings.items():
        start = time.perf_counter()
        for _ in range(repeats[name]):
            run()
        seconds[name] += (time.perf_counter() - start) / repeats[name] / ROUNDS
print(f"threads: {torch.get_num_threads()}")
for name in settings:
    print(f"{name:32s} {seconds[name]:.3f} s")
for part in ("vae step", "sampling call"):
    eager = seconds[f"{part}, eager"]
    compiled = next(v for k, v in seconds.items() if k.startswith(part) and "compiled" in k)
    print(f"{part}: compiled is {eager / compiled:.2f}x eager's speed")
