"""Run configs: one dataclass per run kind, read from TOML, validated with errors that name the key."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any, TypeVar

C = TypeVar("C")


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as config overrides, each VALUE read as a TOML value (``steps=200``,
    ``loss="non-saturating"`` or ``loss=non-saturating``, ``blocks=[2, 3]``); ValueError names a bad item."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set takes KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value.strip()  # a bare word is a string
    return out


def load_config(cls: type[C], path: str | Path | None = None, **overrides: Any) -> C:
    """Build ``cls`` from a TOML file plus keyword overrides; unknown keys and bad values raise ValueError."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            values = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path} is not valid TOML: {err}") from err
    values.update({k: v for k, v in overrides.items() if v is not None})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown} for {cls.__name__}; known keys: {sorted(fields)}")
    for name, value in values.items():
        default = fields[name].default
        if isinstance(default, tuple) and isinstance(value, list):
            values[name] = tuple(value)
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            values[name] = float(value)
        expected = type(default) if default is not dataclasses.MISSING else None
        if expected is not None and default is not None and not isinstance(values[name], expected):
            raise ValueError(f"config key {name!r} must be {expected.__name__}, got {value!r}")
    config = cls(**values)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def check_range(name: str, value: float, low: float, high: float) -> None:
    """Raise ValueError naming ``name`` and the accepted range unless ``low <= value <= high``."""
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")


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
