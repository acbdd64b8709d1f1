"""The labs' exercises (``check("<lab>.<name>", answer)``), one module per lab: see :mod:`zlab.exercises.core`."""

from __future__ import annotations

import importlib
import pkgutil

from zlab.exercises.core import EXERCISES, Exercise, NotDone, Wrong, check

__all__ = ["EXERCISES", "Exercise", "NotDone", "Wrong", "check", "load_all"]


def load_all() -> dict[str, Exercise]:
    """Import every ``zlab.exercises.labNN`` module (each registers its checks) and return the registry."""
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("lab"):
            importlib.import_module(f"{__name__}.{module.name}")
    return EXERCISES
