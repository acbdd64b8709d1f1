"""``zlab judge``: real-image pipelines side by side on a prompt file, each scored three ways.

- **CLIP score** (prompt following): torchmetrics' ``100 max(cos(E_image, E_text), 0)``, per prompt over its seeds;
- **FD to the reference** (how far the pipeline's images lie from the reference pipeline's, usually the teacher at
  50 steps): the Fréchet distance of the two image sets in a vision model's feature space;
- **diversity**: per prompt, the mean pairwise cosine distance between the features of its seeds' images (what a
  distilled model loses first: Z-Image-Turbo's own card rates its diversity lower than the base model's).

Means over prompts come with their standard error over prompts. Images are written one PNG per (pipeline, prompt,
seed), all seeds of a prompt in one batch; a cut run resumes at the first prompt with a missing image, and scoring
reads the images back, so a re-run with more pipelines samples only the new ones.

Prompt files (``read_prompts``): text (one prompt a line, ``#`` comments), JSON lists, JSON lines, CSV or TSV with a
``prompt`` column in any case. PartiPrompts is ``PartiPrompts.tsv`` in google-research/parti (column ``Prompt``),
DrawBench a CSV released with Imagen (Saharia et al. 2022; column ``Prompts``), and GenEval's
``evaluation_metadata.jsonl`` (djghosh13/geneval; key ``prompt``). The repository's ``prompts/`` holds small files
of its own for tests and the lab.

Example (the real comparison, on a GPU with the weights in reach)::

    zlab judge --prompts PartiPrompts.tsv --limit 200 --seeds 4 --size 1024x1024 --device cuda --dtype bfloat16 \\
        --pipeline teacher=Tongyi-MAI/Z-Image@steps=50,guidance=4 \\
        --pipeline turbo=Tongyi-MAI/Z-Image-Turbo@steps=8,guidance=0 \\
        --pipeline student-1=runs/zimage-student@steps=1 --pipeline student-4=runs/zimage-student@steps=4 \\
        --pipeline student-4-shift6=runs/zimage-student@steps=4,shift=6 \\
        --clip openai/clip-vit-large-patch14 --features facebook/dinov2-base --out runs/judge
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchmetrics.image.fid import FrechetInceptionDistance
from tqdm.auto import tqdm

from zlab.atomic import atomic_file, write_json, write_text
from zlab.distill.student import student_scheduler
from zlab.measure.judge_models import Judges, prompt_clip_score
from zlab.shapes.metrics import mean_se
from zlab.zimage import SAMPLING_FILE, check_size, load_pipeline

__all__ = ["Entry", "parse_entry", "parse_size", "read_prompts", "sample_missing", "score", "judge", "format_markdown"]

SETTING_KEYS = {"steps": ("num_inference_steps", int), "guidance": ("guidance_scale", float),
                "truncation": ("cfg_truncation", float), "shift": ("shift", float)}  # shift: the scheduler's, not a call's


@dataclass(frozen=True)
class Entry:
    """One pipeline at one sampling setting: ``name=path[@steps=N,guidance=G,truncation=T,shift=S]``. Unset keys
    come from the folder's ``sampling.json`` when it has one (its size too), else from the pipeline's own defaults.
    ``shift`` replaces the scheduler's time shift by a static one (e.g. a student's sampling times, compared at 3
    and 6 on the user's prompts)."""

    name: str
    path: str
    setting: dict = field(default_factory=dict)

    def call_kwargs(self) -> dict:
        local = Path(self.path) / SAMPLING_FILE
        base = json.loads(local.read_text()) if local.is_file() else {}
        return {**base, **{k: v for k, v in self.setting.items() if k != "shift"}}

    def scheduler_setting(self) -> dict:
        return {k: v for k, v in self.setting.items() if k == "shift"}

    def load(self, device: str = "cpu", dtype=torch.float32):
        """The pipeline, its scheduler at the entry's static ``shift`` when one is given (as a student ships one)."""
        pipe = load_pipeline(self.path, device=device, dtype=dtype)
        if "shift" in self.setting:
            pipe.scheduler = student_scheduler(pipe.scheduler, pipe.scheduler.config.get("stochastic_sampling", False),
                                               self.setting["shift"])
        return pipe


def parse_entry(text: str) -> Entry:
    """``name=path`` with optional ``@key=value,...`` (keys: steps, guidance, truncation); clear errors otherwise."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise ValueError(f"--pipeline takes NAME=PATH[@steps=N,guidance=G,truncation=T,shift=S], got {text!r}")
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"pipeline name {name!r} must be letters, digits, '-' or '_' (it names a folder)")
    path, _, options = rest.partition("@")
    setting = {}
    for option in filter(None, options.split(",")):
        key, _, value = option.partition("=")
        if key not in SETTING_KEYS:
            raise ValueError(f"unknown setting {key!r} in {text!r}; accepted: {sorted(SETTING_KEYS)}")
        name_in_call, cast = SETTING_KEYS[key]
        try:
            setting[name_in_call] = cast(value)
        except ValueError:
            raise ValueError(f"{key} must be a number, got {value!r} in {text!r}") from None
    if setting.get("num_inference_steps", 1) < 1:
        raise ValueError(f"steps must be at least 1, got {setting['num_inference_steps']} in {text!r}")
    if setting.get("shift", 1.0) <= 0:
        raise ValueError(f"shift must be positive, got {setting['shift']} in {text!r}")
    return Entry(name, path, setting)


def parse_size(text: str) -> tuple[int, int]:
    """``HxW`` (e.g. ``1024x1024``), both sides checked as the pipeline checks them."""
    try:
        height, width = (int(side) for side in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size takes HEIGHTxWIDTH, e.g. 1024x1024, got {text!r}") from None
    check_size(height, width, max_side=4096)
    return height, width


def read_prompts(path: str | Path, limit: int | None = None) -> list[str]:
    """The prompts of a text, JSON, JSON-lines, CSV or TSV file (see the module docstring), in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no prompt file at {path}")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        rows = list(csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ","))
        column = next((c for c in (rows[0] if rows else {}) if c and c.strip().lower() in ("prompt", "prompts")), None)
        if column is None:
            raise ValueError(f"{path} has no 'prompt' or 'prompts' column")
        prompts = [row[column] for row in rows]
    elif suffix in (".json", ".jsonl"):
        items = json.loads(text) if suffix == ".json" else [json.loads(line) for line in text.splitlines() if line.strip()]
        prompts = [item if isinstance(item, str) else item.get("prompt") or item.get("Prompt") for item in items]
    else:
        prompts = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    prompts = [p.strip() for p in prompts if p and p.strip()]
    if not prompts:
        raise ValueError(f"{path} holds no prompts")
    return prompts[:limit] if limit else prompts


def image_path(out: Path, entry: str, index: int, seed: int) -> Path:
    return out / "images" / entry / f"{index:05d}-seed{seed}.png"


def sample_missing(entries: Sequence[Entry], prompts: Sequence[str], seeds: Sequence[int], out: Path,
                   size: tuple[int, int] | None = None, device: str = "cpu", dtype=torch.float32,
                   progress: bool = True) -> int:
    """Write every missing image (all seeds of a prompt in one stock call); returns how many prompts were sampled.
    A pipeline whose images all exist is not even loaded."""
    todo = [(e, [i for i in range(len(prompts)) if not all(image_path(out, e.name, i, s).is_file() for s in seeds)])
            for e in entries]
    bar = tqdm(total=sum(len(missing) for _, missing in todo), desc="judge: sampling", disable=not progress)
    for entry, missing in todo:
        if not missing:
            continue
        pipe = entry.load(device, dtype)
        kwargs = entry.call_kwargs()
        if size is not None:
            kwargs.update(height=size[0], width=size[1])
        for i in missing:
            generators = [torch.Generator(device).manual_seed(int(s)) for s in seeds]
            images = pipe([prompts[i]] * len(seeds), generator=generators, output_type="pil", **kwargs).images
            for seed, image in zip(seeds, images):
                with atomic_file(image_path(out, entry.name, i, seed)) as tmp:
                    image.save(tmp, format="PNG")
            bar.update(1)
        del pipe
    bar.close()
    return sum(len(missing) for _, missing in todo)


def _read(out: Path, entry: str, index: int, seeds: Sequence[int]) -> torch.Tensor:
    """uint8 (len(seeds), 3, H, W) images of one prompt."""
    arrays = [np.asarray(Image.open(image_path(out, entry, index, s)).convert("RGB")) for s in seeds]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


class _Features(torch.nn.Module):
    """The identity on feature rows: torchmetrics' Fréchet distance fed features already computed (once per image,
    for FD and diversity alike)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return rows


def score(entries: Sequence[Entry], prompts: Sequence[str], seeds: Sequence[int], out: Path, judges: Judges,
          reference: str | None = None, progress: bool = True) -> dict[str, dict]:
    """Each entry's CLIP score and diversity (mean and SE over prompts) and FD to ``reference``'s images. The
    reference is scored first: its features are FD's real side for every other entry."""
    fd = FrechetInceptionDistance(feature=_Features(judges.features.num_features), reset_real_features=False) \
        if reference else None
    rows = {}
    for entry in tqdm(sorted(entries, key=lambda e: e.name != reference), desc="judge: scoring", disable=not progress):
        clip, diversity = [], []
        for i, prompt in enumerate(prompts):
            images = _read(out, entry.name, i, seeds)
            clip.append(prompt_clip_score(judges, images, prompt))
            features = judges.features(images)
            if len(seeds) > 1:
                f = torch.nn.functional.normalize(features, dim=-1)
                n = len(f)
                diversity.append(float((1 - f @ f.T).sum() / (n * (n - 1))))
            if fd is not None:
                fd.update(features, real=entry.name == reference)
        row = {"path": entry.path, "setting": {**entry.call_kwargs(), **entry.scheduler_setting()},
               "images": len(prompts) * len(seeds)}
        row["clip"], row["clip_se"] = mean_se(clip)
        row["diversity"], row["diversity_se"] = mean_se(diversity)
        if fd is not None and entry.name == reference:
            row["fd_to_reference"] = 0.0
        elif fd is not None:
            row["fd_to_reference"] = float(fd.compute())
            fd.reset()  # the fake side only: the reference's features stay
        rows[entry.name] = row
    return {e.name: rows[e.name] for e in entries}


def judge(entries: Sequence[Entry], prompts: Sequence[str], seeds: Sequence[int], out: str | Path, judges: Judges,
          reference: str | None = None, size: tuple[int, int] | None = None, device: str = "cpu",
          dtype=torch.float32, progress: bool = True) -> dict:
    """Sample what is missing, score everything, write ``judge.json`` and ``judge.md`` into ``out``; returns the
    record."""
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"pipeline names must differ, got {names}")
    if reference is not None and reference not in names:
        raise ValueError(f"--reference {reference!r} is none of the pipelines {names}")
    if not seeds:
        raise ValueError("need at least one seed (diversity needs two)")
    out = Path(out)
    sampled = sample_missing(entries, prompts, seeds, out, size, device, dtype, progress)
    record = {"prompts": list(prompts), "seeds": list(seeds), "size": list(size) if size else None,
              "reference": reference, "judges": judges.sources, "sampled_now": sampled,
              "rows": score(entries, prompts, seeds, out, judges, reference, progress)}
    write_json(out / "judge.json", record)
    write_text(out / "judge.md", format_markdown(record))
    return record


def format_markdown(record: dict) -> str:
    """The record as a Markdown table: one row per pipeline, mean ± SE over prompts."""
    ref = record["reference"]
    head = ["pipeline", "setting", "CLIP score", "diversity"] + ([f"FD to {ref}"] if ref else [])
    lines = [f"{len(record['prompts'])} prompts x {len(record['seeds'])} seeds; CLIP: {record['judges']['clip']}; "
             f"features: {record['judges']['features']}; mean ± SE over prompts", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in record["rows"].items():
        setting = ", ".join(f"{k}={v}" for k, v in row["setting"].items() if not isinstance(v, (list, dict)))
        cells = [name, setting, f"{row['clip']:.2f} ± {row['clip_se']:.2f}",
                 f"{row['diversity']:.4f} ± {row['diversity_se']:.4f}"]
        if ref:
            cells.append(f"{row['fd_to_reference']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
