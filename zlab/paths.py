"""Where the labs and the app find the repository and its shipped checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

import zlab


def repo_root() -> Path:
    """The repository root: from the working directory up, else next to the installed package."""
    for p in (Path.cwd(), *Path.cwd().parents):
        if (p / "pyproject.toml").is_file() and (p / "zlab").is_dir():
            return p
    return Path(zlab.__file__).resolve().parents[1]


def find_checkpoint(env_var: str, default: str, root: Path | None = None) -> Path | None:
    """A pipeline folder named by ``$env_var`` (as given, relative to the repository or to labs/),
    else ``checkpoints/<default>`` when it is there; ``None`` when neither exists.

    Raises FileNotFoundError when the variable is set but names no pipeline folder (model_index.json).
    """
    root = root or repo_root()
    name = os.environ.get(env_var)
    if not name:
        path = root / "checkpoints" / default
        return path if (path / "model_index.json").is_file() else None
    tries = [Path(name).expanduser(), root / name, root / "labs" / name]
    found = next((p.resolve() for p in tries if (p / "model_index.json").is_file()), None)
    if found is None:
        raise FileNotFoundError(f"{env_var}={name!r}: no pipeline folder (model_index.json) at any of {tries}")
    return found
