"""The whole Shapes-teacher recipe in one call: VAE, teacher, assembled pipeline folder.

    zlab make-teacher --out checkpoints/shapes-teacher

runs ``train_vae`` (configs/shapes-vae.toml), ``train_teacher`` (configs/shapes-teacher.toml), then
writes a stock ``ZImagePipeline`` folder with ``sampling.json``. Each stage resumes from its run
directory if interrupted (``--resume``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from zlab.train.config import load_config
from zlab.train.teacher import TeacherConfig, train_teacher
from zlab.train.vae import VAEConfig, train_vae
from zlab.zimage import save_pipeline

DEFAULT_SAMPLING = {"num_inference_steps": 50, "guidance_scale": 3.0, "cfg_truncation": 1.0, "height": 64, "width": 64}


def write_model_card(out: str | Path, title: str, how: str, rows: list[dict], notes: str = "") -> None:
    """README.md of a shipped checkpoint: what it is, how it was made, what was measured."""
    from zlab.evaluate import format_table

    sampling = json.loads((Path(out) / "sampling.json").read_text())
    text = (f"# {title}\n\nA stock diffusers `ZImagePipeline` folder (safetensors). Load it with\n\n"
            "```python\nfrom diffusers import ZImagePipeline\n"
            f"pipe = ZImagePipeline.from_pretrained(\"{Path(out).as_posix()}\")\n"
            "image = pipe(\"a large red circle at the top left\", **sampling).images[0]\n```\n\n"
            f"with `sampling` = `sampling.json`:\n\n```json\n{json.dumps(sampling, indent=2)}\n```\n\n"
            f"## How it was made\n\n{how}\n\n## Measured (stock ZImagePipeline, zlab.evaluate)\n\n"
            f"{format_table(rows)}\n\n{notes}\n")
    (Path(out) / "README.md").write_text(text)


def make_teacher(out: str | Path, vae_config: str | Path, teacher_config: str | Path, run_dir: str | Path = "runs",
                 sampling: dict | None = None, resume: bool = False, progress: bool = True) -> dict:
    """Train VAE then teacher, save the pipeline to ``out``; returns timings in seconds."""
    run_dir = Path(run_dir)
    timings = {}
    start = time.perf_counter()
    vae_cfg = load_config(VAEConfig, vae_config)
    teacher_cfg = load_config(TeacherConfig, teacher_config)
    vae_done = (run_dir / "vae" / "vae" / "config.json").is_file()
    if not (resume and vae_done):
        train_vae(vae_cfg, run_dir / "vae", resume=resume, progress=progress)
    timings["vae_s"] = time.perf_counter() - start
    pipe = train_teacher(teacher_cfg, run_dir / "vae" / "vae", run_dir / "teacher", resume=resume, progress=progress)
    timings["teacher_s"] = time.perf_counter() - start - timings["vae_s"]
    save_pipeline(pipe, out, sampling=sampling or DEFAULT_SAMPLING)
    timings["total_s"] = time.perf_counter() - start
    (Path(out) / "training.json").write_text(json.dumps(
        {"vae_config": vae_cfg.__dict__, "teacher_config": teacher_cfg.__dict__, "timings": timings}, indent=2) + "\n")
    return timings
