"""``zlab bench``: the real-size Z-Image transformer on a GPU, with random weights (nothing to download).

What it measures, each in one run:

* forward latency of the transformer at 512² and 1024² (bf16, PyTorch SDPA), batch 1;
* the student's 4-step latency at 1024² (four transformer calls and Euler steps; the text encoder
  and VAE are outside the student's cost);
* one training step at 1024² per config: LADD (:func:`zlab.distill.ladd.ladd_step`: student forward, the teacher's
  tapped forward on both paths, heads, both backward passes and optimizer steps) for a LoRA student and for full
  fine-tuning (``configs/zimage-ladd-{lora,full}.toml``), and DMD with a LoRA student and fake score
  (:func:`zlab.distill.dmd.dmd_step`, ``configs/zimage-dmd-lora.toml``): time, measured peak memory and the memory
  model's prediction (:mod:`zlab.train.memory`, :mod:`zlab.train.memory_dmd`);
* ``zlab judge``'s scoring (CLIP score, FD, diversity) of a few images, with a random CLIP of ViT-L/14's size;
* the FLOP-limit ratio: the time ``2 * params * tokens`` FLOPs would take at the device's peak
  dense bf16 rate, divided by the measured forward time. The formula leaves out attention's own
  FLOPs (about 16% more at 1024²), so the ratio understates how busy the GPU really is.

``--smoke`` runs the same code at tiny dims on CPU (float32, 64² and 128²) so CI keeps it working.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import ZImageTransformer2DModel

from zlab.distill.schedule import STUDENT_TIMESTEPS
from zlab.flow import zimage_velocity
from zlab.paths import source_root
from zlab.sampling import sample
from zlab.train.config import load_config
from zlab.train.distill_config import DistillConfig
from zlab.train.memory import make_step, measure, predict, resident_bytes
from zlab.train.models import fit_config
from zlab.zimage import REAL_TRANSFORMER_CONFIG, velocity_model

# Dense bf16 peak of common accelerators, in TFLOP/s (vendor figures, no sparsity).
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A6000": 155.0, "4090": 165.0}
SMOKE_TRANSFORMER = {**REAL_TRANSFORMER_CONFIG, "dim": 64, "n_layers": 4, "n_refiner_layers": 1, "n_heads": 2,
                     "n_kv_heads": 2, "cap_feat_dim": 32, "axes_dims": [8, 12, 12], "axes_lens": [256, 64, 64]}
CONFIG_DIR = source_root() / "configs"


@dataclass
class BenchSetup:
    transformer: dict = field(default_factory=lambda: dict(REAL_TRANSFORMER_CONFIG))
    device: str = "cuda"
    dtype: torch.dtype = torch.bfloat16
    sizes: tuple = (512, 1024)
    train_size: int = 1024
    cap_len: int = 128
    repeats: int = 5
    step_configs: tuple = ("zimage-ladd-lora.toml", "zimage-ladd-full.toml", "zimage-dmd-lora.toml")
    peak_tflops: float | None = None


def smoke_setup() -> BenchSetup:
    return BenchSetup(transformer=dict(SMOKE_TRANSFORMER), device="cpu", dtype=torch.float32, sizes=(64, 128),
                      train_size=128, cap_len=16, repeats=2)


def device_peak_tflops(device: str) -> float | None:
    """The device's dense bf16 peak from :data:`PEAK_BF16_TFLOPS`, by its CUDA name (None if unknown)."""
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_seconds(fn, device: str, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def image_tokens(size: int) -> int:
    return (size // 16) ** 2  # 8x VAE, then 2x2 patches


def build_transformer(setup: BenchSetup) -> ZImageTransformer2DModel:
    """The transformer with random weights, built directly on the device in the bench dtype."""
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(setup.dtype)  # built in bf16 directly: no fp32 copy of 6B weights on the way
    try:
        with torch.device(setup.device):
            model = ZImageTransformer2DModel(**setup.transformer)
    finally:
        torch.set_default_dtype(default)
    return model.eval().requires_grad_(False)


def _inputs(setup: BenchSetup, size: int):
    g = torch.Generator(setup.device).manual_seed(0)
    latents = torch.randn(1, 16, size // 8, size // 8, device=setup.device, generator=g)
    embeds = [torch.randn(setup.cap_len, setup.transformer["cap_feat_dim"], device=setup.device, generator=g,
                          dtype=setup.dtype)]
    return latents, embeds


def new_results(setup: BenchSetup) -> dict:
    """The empty record every bench part fills in (see :func:`bench_parts`)."""
    return {"device": torch.cuda.get_device_name(setup.device) if setup.device.startswith("cuda") else "cpu",
            "dtype": str(setup.dtype).replace("torch.", ""), "forward": [], "train_step": []}


def measure_forward(setup: BenchSetup, results: dict, progress=print) -> None:
    """(a) Forward latency at each of ``setup.sizes`` with the FLOP-limit ratio; sets ``params`` and ``forward``."""
    peak = setup.peak_tflops or device_peak_tflops(setup.device)
    model = build_transformer(setup)
    params = sum(p.numel() for p in model.parameters())
    results["params"] = params
    progress(f"transformer: {params / 1e9:.3f}B parameters on {results['device']} ({results['dtype']})")
    with torch.no_grad():
        for size in setup.sizes:
            latents, embeds = _inputs(setup, size)
            t = torch.full((1,), 0.5, device=setup.device)
            seconds = median_seconds(lambda: zimage_velocity(model, latents, t, embeds), setup.device, setup.repeats)
            tokens = image_tokens(size) + setup.cap_len
            row = {"size": size, "tokens": tokens, "ms": 1000 * seconds,
                   "flop_limit_ratio": (2 * params * tokens / (peak * 1e12)) / seconds if peak else None}
            results["forward"].append(row)
            progress(f"forward {size}x{size}: {row['ms']:.1f} ms"
                     + (f", FLOP-limit ratio {row['flop_limit_ratio']:.2f}" if peak else ""))


def measure_student(setup: BenchSetup, results: dict, progress=print) -> None:
    """(b) The student's 4-step latency at ``setup.train_size``; sets ``student_4_steps_ms``."""
    model = build_transformer(setup)
    results.setdefault("params", sum(p.numel() for p in model.parameters()))
    latents, embeds = _inputs(setup, setup.train_size)
    with torch.no_grad():
        results["student_4_steps_ms"] = 1000 * median_seconds(
            lambda: sample(velocity_model(model), latents, STUDENT_TIMESTEPS, embeds), setup.device, setup.repeats)
    progress(f"student, 4 steps at {setup.train_size}x{setup.train_size}: {results['student_4_steps_ms']:.1f} ms")


def bench_parts(setup: BenchSetup, progress=print) -> list[tuple[str, Callable[[dict], None]]]:
    """The bench as named parts, each ``part(results)`` filling in its share of :func:`new_results`' record:
    ``forward``, ``student``, then ``<method>-<kind>`` per training config (``zimage-ladd-lora.toml`` -> ``ladd-lora``).
    ``zlab bench`` runs them in a row; ``zlab gpu-check`` runs each as a timed phase."""
    parts = [("forward", lambda results: measure_forward(setup, results, progress)),
             ("student", lambda results: measure_student(setup, results, progress))]
    for name in setup.step_configs:
        kind = Path(name).stem.removeprefix("zimage-")
        parts.append((kind, lambda results, name=name: results["train_step"].append(_step_row(setup, name, progress))))
    parts.append(("judge", lambda results: measure_judge(setup, results, progress)))
    return parts


def measure_judge(setup: BenchSetup, results: dict, progress=print, images: int = 8) -> None:
    """(d) ``zlab judge``'s scoring of two pipelines' images (``images`` each, 4 seeds a prompt) at
    ``setup.train_size``: random pixels, a random CLIP of ViT-L/14's dimensions on a GPU (a tiny one in the smoke
    run), the CLIP's own features for FD and diversity. Sets ``judge`` (ms per image scored)."""
    import tempfile

    import numpy as np
    from PIL import Image

    from zlab.measure.judge import Entry, image_path, score
    from zlab.measure.judge_models import load_judges
    from zlab.tiny_judges import save_tiny_clip

    size, seeds = setup.train_size, range(4)
    prompts = [f"a photograph of object {i}" for i in range(images // len(seeds))]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        out, kind = Path(tmp), "large" if setup.device.startswith("cuda") else "tiny"
        for name in ("a", "b"):
            for i in range(len(prompts)):
                for seed in seeds:
                    path = image_path(out, name, i, seed)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
        judges = load_judges(str(save_tiny_clip(out / "clip", size=kind)), device=setup.device)
        entries = [Entry("a", "-"), Entry("b", "-")]
        seconds = median_seconds(lambda: score(entries, prompts, seeds, out, judges, reference="a", progress=False),
                                 setup.device, 1)
    results["judge"] = {"images": 2 * len(prompts) * len(seeds), "size": size, "clip": f"random CLIP ({kind})",
                        "ms_per_image": 1000 * seconds / (2 * len(prompts) * len(seeds))}
    progress(f"judge: {results['judge']['ms_per_image']:.1f} ms per image scored ({kind} CLIP, {size}x{size})")


def run_bench(setup: BenchSetup, progress=print) -> dict:
    """Every measurement of the module docstring; returns them as a dict (and reports lines to ``progress``)."""
    results = new_results(setup)
    for _, part in bench_parts(setup, progress):
        part(results)
    return results


def _step_row(setup: BenchSetup, name: str, progress) -> dict:
    config = fit_config(load_config(DistillConfig, CONFIG_DIR / name), setup.transformer["n_layers"], setup.device)
    size = setup.train_size
    row = {"config": name, "size": size, "batch_size": config.train.batch_size, "lora_rank": config.scale.lora_rank,
           "predicted_bytes": predict(config, setup.transformer, size, size, cap_len=setup.cap_len).total}
    try:
        row["resident_bytes"] = resident_bytes()  # left by earlier phases: not the step's, subtracted from its peak
        step = make_step(config, build_transformer(setup), size, size, cap_len=setup.cap_len)
        row["ms"] = 1000 * median_seconds(step, setup.device, max(1, setup.repeats // 2))
        # the timing above already ran the step (Adam's state exists)
        row["peak_bytes"] = measure(step, warm_up=False, baseline=row["resident_bytes"]).total
        row["predicted_over_measured"] = row["predicted_bytes"] / row["peak_bytes"]
    except torch.cuda.OutOfMemoryError as err:
        row["error"] = f"out of memory: {str(err).splitlines()[0]}"
    finally:
        step = None
        gc.collect()  # the step's models and optimizer state go before the next row is built
        if setup.device.startswith("cuda"):
            torch.cuda.empty_cache()
    shown = f"{row['ms']:.0f} ms, peak {_size(row['peak_bytes'])}" if "ms" in row else row["error"]
    progress(f"training step {name} at {size}x{size}: {shown}; predicted {_size(row['predicted_bytes'])}")
    return row


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def format_results(results: dict) -> str:
    """The bench as Markdown tables (parts not measured, e.g. a failed phase of ``zlab gpu-check``, say so)."""
    params = f"{results['params'] / 1e9:.3f}B parameters" if "params" in results else "parameters not counted"
    lines = [f"device: {results['device']}, {params}, {results['dtype']}", "",
             "| forward, batch 1 | tokens | ms | FLOP-limit ratio |", "|---|---|---|---|"]
    for r in results["forward"]:
        ratio = f"{r['flop_limit_ratio']:.2f}" if r["flop_limit_ratio"] is not None else "n/a (unknown peak)"
        lines.append(f"| {r['size']}² | {r['tokens']} | {r['ms']:.1f} | {ratio} |")
    student = results.get("student_4_steps_ms")
    lines += ["", f"student, 4 steps: {student:.1f} ms" if student is not None else "student, 4 steps: not measured",
              "", "| training step | size | batch | ms | peak memory (measured) | peak memory (memory model) | model / measured |",
              "|---|---|---|---|---|---|---|"]
    for r in results["train_step"]:
        measured = _size(r["peak_bytes"]) if "peak_bytes" in r else r.get("error", "")
        ms = f"{r['ms']:.0f}" if "ms" in r else "-"
        ratio = f"{r['predicted_over_measured']:.2f}" if "predicted_over_measured" in r else "-"
        lines.append(f"| {r['config']} | {r['size']}² | {r['batch_size']} | {ms} | {measured} | "
                     f"{_size(r['predicted_bytes'])} | {ratio} |")
    judge = results.get("judge")
    lines += ["", f"judge (CLIP score, FD, diversity): {judge['ms_per_image']:.1f} ms per image scored, "
                  f"{judge['images']} images at {judge['size']}² ({judge['clip']})" if judge
              else "judge: not measured"]
    return "\n".join(lines)
