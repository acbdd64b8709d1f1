"""The whole Shapes-teacher recipe: VAE, teacher, guidance choice, measured and shipped folder.

    zlab make-teacher --out checkpoints/shapes-teacher

1. ``train_vae`` (configs/shapes-vae.toml) and ``train_teacher`` (configs/shapes-teacher.toml), each
   resumable from its run directory (``--resume``);
2. :func:`ship_teacher`: pick the guidance scale with the best 50-step joint accuracy on train
   prompts, save a stock ``ZImagePipeline`` folder with ``sampling.json``, measure the steps table
   through the stock pipeline (``eval.json``) and write the model card (``README.md``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from diffusers import ZImagePipeline

from zlab.evaluate import evaluate_settings, format_table, prompt_accuracy, stock_samples, vae_reconstruction
from zlab.shapes import enumerate_captions, sampling_base
from zlab.shapes_net import ShapesNet
from zlab.train.config import load_config
from zlab.train.teacher import TeacherConfig, train_teacher
from zlab.train.vae import VAEConfig, train_vae
from zlab.zimage import save_pipeline

STEP_COUNTS = (1, 2, 4, 8, 16, 50)
NO_CFG_STEP_COUNTS = (1, 2, 4)


def choose_guidance(pipe: ZImagePipeline, candidates: Sequence[float], base: dict, seed: int = 1) -> dict[float, float]:
    """50-step joint accuracy on all train prompts (one seed, distinct from evaluation seeds) per g."""
    prompts = enumerate_captions("train")
    seeds = [seed * 100_003 + 77_777 + i for i in range(len(prompts))]
    scores = {}
    for g in candidates:
        images, _ = stock_samples(pipe, prompts, seeds, {**base, "guidance_scale": g})
        scores[g] = prompt_accuracy(images, prompts)["joint"]
    return scores


def teacher_settings(sampling: dict) -> dict[str, dict]:
    """The steps table: teacher + CFG at 1..50 steps and teacher without CFG at 1, 2, 4 steps."""
    settings = {f"teacher {n} step{'s' * (n > 1)} + CFG": {**sampling, "num_inference_steps": n} for n in STEP_COUNTS}
    settings.update({f"teacher {n} step{'s' * (n > 1)}, no CFG": {**sampling, "num_inference_steps": n, "guidance_scale": 0.0}
                     for n in NO_CFG_STEP_COUNTS})
    return settings


def ship_teacher(pipe: ZImagePipeline, out: str | Path, guidance_candidates: Sequence[float] = (1.0, 2.0, 3.0, 4.0),
                 cfg_truncation: float = 1.0, seeds: Sequence[int] = (0,), shapes_net: str | Path = "checkpoints/shapes-net",
                 training: dict | None = None, image_size: int = 64) -> list[dict]:
    """Choose g, save the folder with sampling.json (at ``image_size``, the size the teacher was trained at),
    measure it, write eval.json and the model card."""
    base = {"num_inference_steps": 50, "cfg_truncation": cfg_truncation, **sampling_base(image_size)}
    scores = choose_guidance(pipe, guidance_candidates, base)
    best = max(scores, key=scores.get)
    sampling = {**base, "guidance_scale": best}
    out = save_pipeline(pipe, out, sampling=sampling)
    pipe.set_progress_bar_config(disable=True)
    rows = evaluate_settings(pipe, teacher_settings(sampling), ShapesNet.load(shapes_net), seeds=seeds)
    record = {"guidance_sweep_joint_accuracy": {str(g): a for g, a in scores.items()}, "rows": rows,
              "training": training or {}}
    (out / "eval.json").write_text(json.dumps(record, indent=2) + "\n")
    write_model_card(out, sampling, rows, scores, training or {})
    return rows


def write_model_card(out: Path, sampling: dict, rows: list[dict], sweep: dict[float, float], training: dict) -> None:
    """README.md of the shipped teacher: what it is, how it was made, what was measured."""
    sweep_text = ", ".join(f"g = {g:g} (s = {g + 1:g}): {a:.3f}" for g, a in sweep.items())
    timings = training.get("timings", {})
    vae = training.get("vae_reconstruction")
    vae_text = (f"VAE round trips of {vae['n']} fresh renders: PSNR {vae['psnr_db']:.1f} dB, checker joint accuracy "
                f"{vae['acc_joint']:.3f}." if vae else "")
    time_text = (f"Measured wall time of the recipe on the 2-core CPU: VAE {timings['vae_s'] / 60:.1f} min, "
                 f"teacher {timings['teacher_s'] / 60:.1f} min." if timings else "")
    text = f"""# shapes-teacher: a tiny Z-Image trained on the Shapes world

A stock diffusers `ZImagePipeline` folder (safetensors): tiny `ZImageTransformer2DModel` (refiners,
3-axis RoPE), tiny `AutoencoderKL` (16 latent channels, 8x), frozen random tiny Qwen3 with a
word-level tokenizer and a Qwen chat template, `FlowMatchEulerDiscreteScheduler` with a
resolution-dependent shift (`use_dynamic_shifting`: exp(mu) of the image-token count; the
published Z-Image checkpoints use a static shift instead). Nothing of zlab is needed to run it:

```python
import json
from diffusers import ZImagePipeline
pipe = ZImagePipeline.from_pretrained("checkpoints/shapes-teacher")
sampling = json.load(open("checkpoints/shapes-teacher/sampling.json"))
image = pipe("a large red circle at the top left", **sampling).images[0]
```

`sampling.json` (diffusers' `guidance_scale` g; the lab's CFG scale is s = g + 1):

```json
{json.dumps(sampling, indent=2)}
```

`max_sequence_length` pads prompts to {sampling.get("max_sequence_length", 512)} tokens instead of the stock 512: Shapes captions are at
most 13 tokens, and the prompt embeddings are bit-identical either way.

## How it was made

`zlab make-teacher --out checkpoints/shapes-teacher` (configs `configs/shapes-vae.toml`,
`configs/shapes-teacher.toml`): the VAE on train-split renders (L1 + small KL), its latent shift
and scale measured on data; then flow matching with velocity target, logit-normal t with the
resolution shift, caption dropout for CFG, EMA with warm-up (the EMA weights ship), gradient
clipping, bf16 autocast; held-out colour-shape pairs never seen. {time_text} {vae_text}

Guidance chosen by 50-step joint accuracy on the 270 train prompts (seed set apart from the
evaluation seeds): {sweep_text}.

## Measured through stock ZImagePipeline (`zlab.evaluate`, one run)

Accuracy over all 270 train prompts (and the 54 held-out-pair prompts) per seed; FD in ShapesNet
feature space against renders of the same prompts; diversity = mean pairwise feature distance of 8
seeds of one prompt relative to renders of that prompt; milliseconds per image on this CPU.

{format_table(rows)}

{training.get("notes", "")}
"""
    (out / "README.md").write_text(text)


def make_teacher(out: str | Path, vae_config: str | Path, teacher_config: str | Path, run_dir: str | Path = "runs",
                 resume: bool = False, progress: bool = True, **ship_kwargs) -> list[dict]:
    """Train VAE then teacher (resumable), then :func:`ship_teacher`; returns the measured rows."""
    run_dir = Path(run_dir)
    vae_cfg = load_config(VAEConfig, vae_config)
    teacher_cfg = load_config(TeacherConfig, teacher_config)
    start = time.perf_counter()
    if not (resume and (run_dir / "vae" / "vae" / "config.json").is_file()):
        train_vae(vae_cfg, run_dir / "vae", resume=resume, progress=progress)
    vae_s = time.perf_counter() - start
    pipe = train_teacher(teacher_cfg, run_dir / "vae" / "vae", run_dir / "teacher", resume=resume, progress=progress)
    training = {"vae_config": vae_cfg.__dict__, "teacher_config": teacher_cfg.__dict__,
                "timings": {"vae_s": vae_s, "teacher_s": time.perf_counter() - start - vae_s},
                "vae_reconstruction": {"n": 500, **vae_reconstruction(pipe.vae, 500, size=teacher_cfg.image_size)}}
    return ship_teacher(pipe, out, training=training, image_size=teacher_cfg.image_size, **ship_kwargs)
