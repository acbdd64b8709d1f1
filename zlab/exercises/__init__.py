"""The labs' exercises (``check("<lab>.<name>", answer)``), one module per lab: see :mod:`zlab.exercises.core`."""

from __future__ import annotations

import importlib
import pkgutil

from zlab.exercises.core import EXERCISES, Exercise, NotDone, Wrong

__all__ = ["EXERCISES", "Exercise", "NotDone", "Wrong", "check", "load_all"]


def load_all() -> dict[str, Exercise]:
    """Import every ``zlab.exercises.labNN`` module (each registers its checks) and return the registry."""
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("lab"):
            importlib.import_module(f"{__name__}.{module.name}")
    return EXERCISES


def check(key: str, answer) -> bool:
    """Check the reader's answer to exercise ``key`` and say so; never raises, so Run All goes on. True if right."""
    load_all()
    if key not in EXERCISES:
        raise KeyError(f"no exercise {key!r}; the labs' exercises are {sorted(EXERCISES)}")
    try:
        EXERCISES[key].check(answer)
    except NotDone:
        print(f"○ {key}: not done yet. Replace the `...` with your answer and run the cell again.")
        return False
    except Wrong as reason:
        print(f"✗ {key}: not right yet. {reason}")
        return False
    except Exception as error:  # the reader's code failed: say how, keep the notebook going
        print(f"✗ {key}: your answer raised {type(error).__name__}: {error}")
        return False
    print(f"✓ {key}: right.")
    return True
