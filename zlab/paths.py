"""Where the labs and the app find the repository, its configs and its checkpoints.

One switch picks the Shapes world's scale: ``ZLAB_PROFILE=cpu`` (the tiny 64-px world of the shipped
checkpoints) or ``gpu`` (``configs/gpu/``: 128 px, a wider and deeper transformer, bf16, big
batches; its outputs go under ``runs/gpu/``). Unset, the profile is ``gpu`` when CUDA is present.
The code is the same; only config files and output folders change.
"""

from __future__ import annotations

import os
from pathlib import Path

import zlab


PROFILE_ENV = "ZLAB_PROFILE"
PROFILES = ("cpu", "gpu")


def profile() -> str:
    """The active Shapes profile: ``$ZLAB_PROFILE`` if set, else ``gpu`` when CUDA is available."""
    name = os.environ.get(PROFILE_ENV, "").strip().lower()
    if name and name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV} must be one of {PROFILES}, got {name!r}")
    if name:
        return name
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def config_path(name: str) -> str:
    """``configs/<name>`` in the CPU profile, ``configs/gpu/<name>`` in the GPU profile (relative to the repo)."""
    return f"configs/gpu/{name}" if profile() == "gpu" else f"configs/{name}"


def output_path(path: str) -> str:
    """Where a trainer writes by default: ``runs/x`` and ``checkpoints/x`` move under ``runs/gpu/`` in the
    GPU profile, so that GPU-trained models never overwrite the shipped CPU checkpoints."""
    if profile() != "gpu":
        return path
    rest = path.removeprefix("runs").strip("/")
    return "runs/gpu" + (f"/{rest}" if rest else "")


def repo_root() -> Path:
    """The repository root: from the working directory up, else next to the installed package."""
    for p in (Path.cwd(), *Path.cwd().parents):
        if (p / "pyproject.toml").is_file() and (p / "zlab").is_dir():
            return p
    return Path(zlab.__file__).resolve().parents[1]


def find_checkpoint(env_var: str, default: str, root: Path | None = None) -> Path | None:
    """A pipeline folder named by ``$env_var`` (as given, relative to the repository or to labs/),
    else the profile's own ``<default>`` (:func:`output_path` of ``checkpoints/<default>``), else the
    shipped ``checkpoints/<default>``; ``None`` when none exists.

    Raises FileNotFoundError when the variable is set but names no pipeline folder (model_index.json).
    """
    root = root or repo_root()
    name = os.environ.get(env_var)
    if not name:
        tries = [root / output_path(f"checkpoints/{default}"), root / "checkpoints" / default]
        return next((p for p in tries if (p / "model_index.json").is_file()), None)
    tries = [Path(name).expanduser(), root / name, root / "labs" / name]
    found = next((p.resolve() for p in tries if (p / "model_index.json").is_file()), None)
    if found is None:
        raise FileNotFoundError(f"{env_var}={name!r}: no pipeline folder (model_index.json) at any of {tries}")
    return found
