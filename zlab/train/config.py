"""Run configs: one dataclass per run kind, read from TOML, validated with errors that name the key."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from zlab.checks import check_range

C = TypeVar("C")


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as config overrides, each VALUE read as a TOML value (``train.steps=200``,
    ``ladd.loss="non-saturating"`` or ``ladd.loss=non-saturating``, ``ladd.blocks=[2, 3]``); a dotted KEY names a
    setting inside a section. ValueError names a bad item."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set takes KEY=VALUE, got {item!r}")
        try:
            value = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = value.strip()  # a bare word is a string
        merge(out, dotted(key.strip(), value))
    return out


def dotted(key: str, value: Any) -> dict[str, Any]:
    """``"ladd.t_hat_m", -2`` -> ``{"ladd": {"t_hat_m": -2}}``."""
    for part in reversed(key.split(".")[1:]):
        value = {part: value}
    return {key.split(".")[0]: value}


def merge(into: dict, more: dict) -> dict:
    """Merge ``more`` into ``into`` in place, section by section (nested dicts merge, other values replace)."""
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value
    return into


def load_config(cls: type[C], path: str | Path | None = None, **overrides: Any) -> C:
    """Build ``cls`` from a TOML file plus keyword overrides (a section's overrides as a dict, ``train={"steps": 2}``,
    or dotted, ``**{"train.steps": 2}``); unknown keys and bad values raise ValueError."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            values = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path} is not valid TOML: {err}") from err
    for key, value in overrides.items():
        if value is not None:
            merge(values, dotted(key, value))
    config = build(cls, values)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def build(cls: type[C], values: dict[str, Any], where: str = "") -> C:
    """``cls`` from a dict whose tables fill its nested dataclass fields (sections); values are checked for type."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown config key(s) {[where + k for k in unknown]} for {cls.__name__}; known keys: "
                         f"{sorted(fields)}")
    out = {}
    for name, value in values.items():
        field = fields[name]
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ValueError(f"config key {where + name!r} is a section ([{where + name}]), got {value!r}")
            out[name] = build(type(default), value, f"{where}{name}.")
            continue
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if default is not dataclasses.MISSING and default is not None and not isinstance(value, type(default)):
            raise ValueError(f"config key {where + name!r} must be {type(default).__name__}, got {value!r}")
        out[name] = value
    return cls(**out)


@dataclass
class ShapesRunConfig:
    """What every Shapes training run (the VAE, the teacher) sets: its architecture and canvas, the optimisation,
    the checkpoints. A run kind adds its own fields and its own defaults."""

    size: str = "tiny"  # an architecture in zlab.tiny.TINY_SIZES
    image_size: int = 64
    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 100  # linear warm-up steps, then cosine (zlab.train.loop.warmup_cosine)
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_every: int = 500


def check_common(config) -> None:
    """Checks shared by every Shapes run config: architecture name, image size, steps, batch, lr."""
    from zlab.tiny import TINY_SIZES

    if config.size not in TINY_SIZES:
        raise ValueError(f"size must be one of {sorted(TINY_SIZES)}, got {config.size!r}")
    if config.image_size % 16 or not 32 <= config.image_size <= 512:
        raise ValueError(f"image_size must be a multiple of 16 in [32, 512], got {config.image_size}")
    check_range("steps", config.steps, 1, 10**7)
    check_range("batch_size", config.batch_size, 1, 4096)
    check_range("lr", config.lr, 1e-7, 1.0)
