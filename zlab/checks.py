"""Range and choice checks whose errors name the setting and what it accepts (every config's ``validate``)."""

from __future__ import annotations

from collections.abc import Sequence


def check_range(name: str, value: float, low: float, high: float) -> None:
    """Raise ValueError naming ``name`` and the accepted range unless ``low <= value <= high``."""
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")


def check_choice(name: str, value, choices: Sequence) -> None:
    """Raise ValueError naming ``name`` and the accepted values unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
