"""What distilling the real 6.15B Z-Image costs: teacher synthesis, LADD and DMD steps (docs/real-ladd.md).

    python scripts/real_ladd_costs.py                                   # ESTIMATES: FLOPs counted, speed assumed
    python scripts/real_ladd_costs.py --measured docs/gpu/gpu-check.json  # the same tables from measured times

FLOPs are counted, not guessed: the real transformer runs on PyTorch's ``meta`` device under
``torch.utils.flop_counter.FlopCounterMode`` (matmuls and attention, shapes only, no weights), the
teacher's tapped pass with the config's own :class:`~zlab.features.FeatureTap` (it stops after the
deepest tapped block). Times are then FLOPs / (peak x utilisation) with an ASSUMED utilisation (MFU),
until ``zlab gpu-check`` has measured the forward and LADD-step times on a GPU (``--measured``).

One LADD step per sample (gradient checkpointing on, as the configs set it; backward = 2 x forward
for a trained module, 1 x forward for a frozen one or a LoRA student, whose base gets no weight gradient):
student forward + recompute + backward, the teacher's tapped pass on the real path (no graph) and on
the fake path (forward + recompute + backward to its input). The heads' share is negligible.

One DMD step per sample (zlab.distill.dmd.dmd_step): the student's forward + recompute + backward; per active term
(DM, CA) the teacher's conditional and, with CFG, unconditional x0 (no graph), plus the fake score's x0 for DM; then
``fake_updates`` flow-matching steps of the fake score (forward + recompute + backward), all but the first on a
fresh student sample (a forward, no graph).

Backward simulation (both methods' ``backward_sim``): a t < 1 input made by the student's own sampler costs its
steps down to t as forwards without a graph (t = .75: 1; .5: 1 or 2, evenly; .25: 3; as zlab.distill.schedule).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from diffusers import ZImageTransformer2DModel
from torch.utils.flop_counter import FlopCounterMode

from zlab.features import FeatureTap
from zlab.flow import zimage_velocity
from zlab.measure.bench import PEAK_BF16_TFLOPS
from zlab.train.config import load_config
from zlab.train.distill_config import DistillConfig
from zlab.zimage import REAL_TRANSFORMER_CONFIG

CONFIGS = {"LADD, LoRA": "configs/zimage-ladd-lora.toml", "LADD, full": "configs/zimage-ladd-full.toml",
           "DMD, LoRA": "configs/zimage-dmd-lora.toml"}
SIM_FORWARDS = (0.0, 1.0, 1.5, 3.0)  # the sampler's forwards to reach t = 1, .75, .5, .25 (backward simulation)


def forward_flops(size: int, cap_len: int, blocks: tuple[int, ...] | None = None) -> float:
    """FLOPs of one transformer forward at ``size``² (batch 1); with ``blocks``, the teacher's tapped pass."""
    with torch.device("meta"):
        model = ZImageTransformer2DModel(**REAL_TRANSFORMER_CONFIG)
        x = torch.zeros(1, 16, size // 8, size // 8)
        t = torch.full((1,), 0.5)
        embeds = [torch.zeros(cap_len, REAL_TRANSFORMER_CONFIG["cap_feat_dim"])]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        if blocks is None:
            zimage_velocity(model, x, t, embeds)
        else:
            FeatureTap(model, blocks)(x, t, embeds)
    return float(counter.get_total_flops())


def sim_flops(config: DistillConfig, full: float) -> float:
    """Backward simulation's forwards per sample: the share ``backward_sim`` of the t < 1 inputs, at the method's
    probabilities over the student times (LADD's after warm-up)."""
    options = getattr(config, config.method)
    probs = options.full_probs if config.method == "ladd" else options.student_probs
    return options.backward_sim * full * sum(p * n for p, n in zip(probs, SIM_FORWARDS))


def step_flops(config: DistillConfig, full: float, tapped: float) -> float:
    """FLOPs of one training step per sample (module docstring), for a LoRA or a fully trained student."""
    trained_backward = full if config.scale.lora_rank > 0 else 2 * full
    recompute = full if config.scale.gradient_checkpointing else 0.0
    student = full + recompute + trained_backward + sim_flops(config, full)
    if config.method == "ladd":
        return student + tapped + tapped + tapped + (tapped if recompute else 0)  # real pass; fake fwd, bwd, recompute
    dmd = config.dmd
    teacher = 2 * full if dmd.guidance_scale != 0 else full  # conditional and, with CFG, unconditional x0
    terms = (teacher + full if dmd.dm_weight else 0.0) + (teacher if dmd.ca_weight else 0.0)
    fake_update = full + recompute + trained_backward
    fresh_samples = (dmd.fake_updates - 1) * (full + sim_flops(config, full))
    return student + terms + dmd.fake_updates * fake_update + fresh_samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--cap-len", type=int, default=128, help="caption tokens per prompt")
    parser.add_argument("--mfu", type=float, default=0.4, help="ASSUMED share of the dense bf16 peak reached")
    parser.add_argument("--gpu", default="H200", choices=sorted(PEAK_BF16_TFLOPS))
    parser.add_argument("--steps", type=int, default=50, help="teacher sampling steps (CFG on every step: 2 NFE)")
    parser.add_argument("--prompts", type=int, default=10_000, help="prompts to synthesise, one image each")
    parser.add_argument("--prompt-tokens", type=int, default=256, help="the longest prompt's tokens (text.safetensors "
                        "pads every prompt to it)")
    parser.add_argument("--measured", help="a gpu-check.json: use its measured times instead of the assumed MFU")
    args = parser.parse_args()
    if not 0 < args.mfu <= 1:
        raise SystemExit(f"--mfu must be in (0, 1], got {args.mfu}")
    peak = PEAK_BF16_TFLOPS[args.gpu] * 1e12
    measured = None
    if args.measured:
        record = json.loads(Path(args.measured).read_text())
        if record.get("smoke"):
            raise SystemExit(f"{args.measured} is a --smoke run (tiny model on CPU): no times of the real model")
        measured = record["bench"]
    label = (f"MEASURED ({args.measured})" if measured
             else f"ESTIMATE (MFU {args.mfu:.0%} of {args.gpu}'s {peak / 1e12:.0f} TFLOP/s)")

    full = forward_flops(args.size, args.cap_len)
    print(f"transformer forward at {args.size}² + {args.cap_len} caption tokens: {full / 1e12:.1f} TFLOP")
    forward_s = full / (peak * args.mfu)
    if measured:
        rows = [r for r in measured["forward"] if r["size"] == args.size]
        if not rows:
            raise SystemExit(f"{args.measured} has no forward row at {args.size}²")
        forward_s = rows[0]["ms"] / 1000
    nfe = 2 * args.steps
    image_s = nfe * forward_s
    print(f"\n## Teacher synthesis, {label}\n")
    print("| forward (s) | NFE per image | s per image | images per GPU-hour | GPU-hours for "
          f"{args.prompts:,} prompts |\n|---|---|---|---|---|")
    print(f"| {forward_s:.3f} | {nfe} | {image_s:.1f} | {3600 / image_s:,.0f} | {args.prompts * image_s / 3600:,.1f} |")
    latent_bytes = 16 * (args.size // 8) ** 2 * 4  # float32 latents, one per image (zlab synth keeps no pixels)
    text_bytes = args.prompt_tokens * REAL_TRANSFORMER_CONFIG["cap_feat_dim"] * 4  # float32, padded to the longest
    print(f"\nStorage (counted, not estimated): latents {latent_bytes / 2**20:.1f} MiB per image, "
          f"{args.prompts * latent_bytes / 2**30:,.1f} GiB for {args.prompts:,}; prompt embeddings "
          f"{text_bytes / 2**20:.1f} MiB per prompt at {args.prompt_tokens} tokens, "
          f"{args.prompts * text_bytes / 2**30:,.1f} GiB (both held in RAM by training).")

    print(f"\n## Training steps, {label}\n")
    print("| config | batch per GPU | TFLOP per sample | s per step | 1,000 steps on 1 GPU (h) | "
          "1,000 steps on 8 GPUs: wall h / GPU-h | samples per 1,000 steps (1 / 8 GPUs) |\n|---|---|---|---|---|---|---|")
    with torch.device("meta"):
        params = sum(p.numel() for p in ZImageTransformer2DModel(**REAL_TRANSFORMER_CONFIG).parameters())
    for name, path in CONFIGS.items():
        config = load_config(DistillConfig, path)
        tapped = forward_flops(args.size, args.cap_len, tuple(config.ladd.blocks)) if config.method == "ladd" else 0.0
        per_sample = step_flops(config, full, tapped)
        step_s = config.train.batch_size * per_sample / (peak * args.mfu)
        if measured:
            row = next((r for r in measured["train_step"]
                        if r["config"] == Path(path).name and r["size"] == args.size and "ms" in r), None)
            if row is None:
                raise SystemExit(f"{args.measured} has no measured training step for {Path(path).name} at {args.size}²")
            step_s = row["ms"] / 1000
        if config.scale.lora_rank == 0:
            fsdp_gb = (2 * params * 2 + params * 4) / 1e9  # bf16 gathers for forward and backward, fp32 reduce-scatter
        hours = 1000 * step_s / 3600  # 8 GPUs: the same per-GPU batch and step time (communication overlapped)
        print(f"| {name} ({path}) | {config.train.batch_size} | {per_sample / 1e12:.0f} | {step_s:.2f} | {hours:.2f} | "
              f"{hours:.2f} / {8 * hours:.1f} | {1000 * config.train.batch_size:,} / {8000 * config.train.batch_size:,} |")
    print(f"\nFSDP (full student, 8 GPUs) moves about {fsdp_gb:.0f} GB per GPU per step: the bf16 weights gathered "
          "for the forward and again for the backward (with its recomputation), fp32 gradients reduce-scattered.")


if __name__ == "__main__":
    main()
