"""Where the labs and the app find the repository, its configs and its checkpoints.

One switch picks the Shapes world's scale: ``ZLAB_PROFILE=cpu`` (the tiny 64-px world of the shipped
checkpoints) or ``gpu`` (``configs/gpu/``: 128 px, a wider and deeper transformer, bf16, big
batches; its outputs go under ``runs/gpu/``). Unset, the profile is ``gpu`` when CUDA is present.
The code is the same; only config files and output folders change.

Trainers write with :func:`config_path` and :func:`output_path`. Labs and the app read through
:func:`shapes_set`: a profile is one whole set, its configs *and* the checkpoints trained with them,
never configs of one profile with a checkpoint of the other.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

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
    return source_root()


def source_root() -> Path:
    """The folder that holds the ``zlab`` package (the checkout, for an editable install)."""
    return Path(__file__).resolve().parents[1]


def find_checkpoint(env_var: str, root: Path | None = None) -> Path | None:
    """The pipeline folder that ``$env_var`` names (as given, relative to the repository or to labs/), or
    ``None`` when the variable is unset. Raises FileNotFoundError when it names no pipeline folder."""
    root = root or repo_root()
    name = os.environ.get(env_var)
    if not name:
        return None
    tries = [Path(name).expanduser(), root / name, root / "labs" / name]
    found = next((p.resolve() for p in tries if (p / "model_index.json").is_file()), None)
    if found is None:
        raise FileNotFoundError(f"{env_var}={name!r}: no pipeline folder (model_index.json) at any of {tries}")
    return found


CHECKPOINTS = {"teacher": ("shapes-teacher", "ZLAB_TEACHER"), "student": ("shapes-student", "ZLAB_STUDENT")}
MAKES = {"teacher": "zlab make-teacher", "student": "zlab make-student"}


@dataclass(frozen=True)
class ShapesSet:
    """One Shapes world as a whole: the profile's run configs and the checkpoints made from them.

    Attributes:
        profile: ``"cpu"`` (``configs/``, the shipped ``checkpoints/``) or ``"gpu"`` (``configs/gpu/``,
            ``runs/gpu/checkpoints/``).
        root: the repository root.
        teacher, student: pipeline folders, or None where the set has none (a lab may then train one live,
            or start LADD from the teacher).
        note: why this set was chosen, when it is not simply the requested profile's (printed by labs).
    """

    profile: str
    root: Path
    teacher: Path | None
    student: Path | None
    note: str = ""

    def config(self, name: str) -> Path:
        """The profile's run config ``name`` (e.g. ``"shapes-ladd.toml"``)."""
        return self.root / ("configs/gpu" if self.profile == "gpu" else "configs") / name

    @property
    def shapes_net(self) -> Path:
        """The feature network for FD and diversity; it resizes any image to 64 px, so both profiles share it."""
        return self.root / "checkpoints" / "shapes-net"

    @property
    def config_image_size(self) -> int:
        """The side the profile's teacher config trains at."""
        return int(tomllib.loads(self.config("shapes-teacher.toml").read_text()).get("image_size", 64))

    @property
    def image_size(self) -> int:
        """The side the profile's teacher was trained at: its ``sampling.json`` height, else the teacher config's."""
        sampled = sampled_size(self.teacher) if self.teacher is not None else None
        return sampled if sampled is not None else self.config_image_size

    def describe(self) -> str:
        lines = [f"Shapes set: profile {self.profile!r}, configs {self.config('').relative_to(self.root)}/, "
                 f"{self.image_size} px", f"  teacher: {self.teacher}", f"  student: {self.student}"]
        return "\n".join(lines + ([f"  note: {self.note}"] if self.note else []))


def make_command(missing: list[str], profile_name: str) -> str:
    """The one command line that makes a profile's ``missing`` checkpoints (a student needs a teacher first).
    The profile is always named: on a CUDA machine a bare ``zlab make-teacher`` means the GPU profile."""
    return " && ".join(f"{PROFILE_ENV}={profile_name} {MAKES[name]}" for name in ("teacher", "student") if name in missing)


def shapes_set(need: tuple[str, ...] = ("teacher",), root: Path | None = None) -> ShapesSet:
    """The Shapes set that labs and the app use: configs and checkpoints of one profile.

    ``$ZLAB_TEACHER`` / ``$ZLAB_STUDENT`` name folders explicitly; otherwise the profile's own folders are
    used (``checkpoints/`` for cpu, ``runs/gpu/checkpoints/`` for gpu). When the GPU profile lacks a checkpoint in
    ``need``: if it was asked for by ``ZLAB_PROFILE=gpu``, FileNotFoundError names the command that makes it; if it
    was only implied by CUDA being present, the CPU set is used as a whole and ``note`` says why. A named
    teacher must match the profile's configs (image size, tapped blocks), else ValueError says which profile fits.

    Args:
        need: the checkpoints the caller cannot do without (``"teacher"``, ``"student"``).
        root: the repository root (default: :func:`repo_root`).
    """
    unknown = set(need) - set(CHECKPOINTS)
    if unknown:
        raise ValueError(f"need must name checkpoints among {sorted(CHECKPOINTS)}, got {sorted(unknown)}")
    root = root or repo_root()
    wanted = profile()
    explicit = bool(os.environ.get(PROFILE_ENV, "").strip())
    found, missing = _find(root, wanted, need)
    note = ""
    if missing and wanted == "gpu":
        where = ", ".join(f"runs/gpu/checkpoints/{CHECKPOINTS[name][0]}" for name in missing)
        message = (f"the GPU profile's {' and '.join(missing)} is not trained yet (no {where}); make it with "
                   f"`{make_command(missing, 'gpu')}`")
        if explicit:
            raise FileNotFoundError(f"{PROFILE_ENV}=gpu: {message}, or set {PROFILE_ENV}=cpu for the shipped tiny set")
        note = f"CUDA is present, but {message}. Using the shipped CPU set (configs/, checkpoints/) as a whole."
        print(f"zlab: {note}", file=sys.stderr)
        wanted = "cpu"
        found, missing = _find(root, wanted, need)
    if missing:
        names = " and ".join(f"checkpoints/{CHECKPOINTS[name][0]}" for name in missing)
        raise FileNotFoundError(f"no {names} in {root}; make it with `{make_command(missing, wanted)}`")
    chosen = ShapesSet(wanted, root, found["teacher"], found["student"], note)
    check_set(chosen)
    return chosen


def _find(root: Path, profile_name: str, need: tuple[str, ...]) -> tuple[dict[str, Path | None], list[str]]:
    """Every checkpoint of a profile (None where absent), and those of ``need`` that are absent."""
    found = {name: _checkpoint(root, profile_name, folder, env) for name, (folder, env) in CHECKPOINTS.items()}
    return found, [name for name in need if found[name] is None]


def _checkpoint(root: Path, profile_name: str, folder: str, env_var: str) -> Path | None:
    if os.environ.get(env_var):
        return find_checkpoint(env_var, root)
    path = root / ("runs/gpu/checkpoints" if profile_name == "gpu" else "checkpoints") / folder
    return path if (path / "model_index.json").is_file() else None


def sampled_size(pipeline: Path) -> int | None:
    """The image side a pipeline folder's ``sampling.json`` samples at, or None without one."""
    path = Path(pipeline) / "sampling.json"
    return int(json.loads(path.read_text()).get("height", 64)) if path.is_file() else None


def check_pair(teacher: Path, student: Path) -> None:
    """ValueError when a teacher and a student folder sample at different sizes (made in different profiles)."""
    sizes = sampled_size(teacher), sampled_size(student)
    if None not in sizes and sizes[0] != sizes[1]:
        raise ValueError(f"teacher {teacher} samples at {sizes[0]} px but student {student} at {sizes[1]} px: "
                         "they come from different Shapes profiles; name a pair made together")


def check_set(chosen: ShapesSet) -> None:
    """ValueError when the set's teacher does not fit its configs: another image size, or fewer blocks than the
    LADD config taps (what the labs would otherwise find out deep inside a feature tap); or when its student
    samples at another size than its teacher."""
    if chosen.teacher is None:
        return
    if chosen.student is not None:
        check_pair(chosen.teacher, chosen.student)
    other = "cpu" if chosen.profile == "gpu" else "gpu"
    fix = f"use the configs it was made with (e.g. {PROFILE_ENV}={other}) or name a teacher of this profile"
    config_size = chosen.config_image_size
    if chosen.image_size != config_size:
        raise ValueError(f"teacher {chosen.teacher} samples at {chosen.image_size} px but the {chosen.profile!r} "
                         f"profile's {chosen.config('shapes-teacher.toml').relative_to(chosen.root)} is for "
                         f"{config_size} px: {fix}")
    layers = json.loads((chosen.teacher / "transformer" / "config.json").read_text())["n_layers"]
    blocks = tomllib.loads(chosen.config("shapes-ladd.toml").read_text()).get("ladd", {}).get("blocks", [])
    if blocks and max(blocks) >= layers:
        raise ValueError(f"teacher {chosen.teacher} has {layers} blocks but the {chosen.profile!r} profile's "
                         f"{chosen.config('shapes-ladd.toml').relative_to(chosen.root)} taps blocks {blocks}: {fix}")


SMALL_RUN_ENV = "ZLAB_SMALL_RUN"


@dataclass(frozen=True)
class Lab:
    """What a lab's first cell knows: whether this is a small run, and where the Shapes set it reads lives.

    Attributes:
        small: ``$ZLAB_SMALL_RUN == "1"`` (CI and ``pytest --nbval-lax``): heavy cells run at a small size.
        root: the repository root.
        shapes: the profile's Shapes set (configs and checkpoints), or None for a lab that reads none.
    """

    small: bool
    root: Path
    shapes: ShapesSet | None

    def __getattr__(self, name: str):
        """The Shapes set's folders and configs directly: ``lab.teacher``, ``lab.student``, ``lab.config(...)``."""
        shapes = object.__getattribute__(self, "shapes")
        if shapes is None:
            raise AttributeError(f"this lab reads no Shapes set, so it has no {name!r}")
        return getattr(shapes, name)


def lab_setup(need: tuple[str, ...] | None = ("teacher",)) -> Lab:
    """The first cell of every lab: the small-run switch and the Shapes set the lab reads (``need``: the checkpoints
    it cannot run without; None: none at all), printed so the reader sees what the lab will use."""
    small = os.environ.get(SMALL_RUN_ENV) == "1"
    shapes = None if need is None else shapes_set(need=need)
    lab = Lab(small, shapes.root if shapes else repo_root(), shapes)
    print(f"small run: {small} (${SMALL_RUN_ENV}); repository {lab.root}")
    if shapes is not None:
        print(shapes.describe())
    return lab
