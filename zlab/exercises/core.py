"""Exercises that check themselves, for the labs: the registry and the checks' helpers (``zlab.exercises.check``
runs one).

Each lab exercise is three cells: a markdown cell headed "Exercise", the reader's cell (a stub whose answer is
``...``, which :func:`check` reports as not done yet without raising, so Run All goes on) and a solution cell,
collapsed, whose ``assert check(...)`` passes only on a right answer. A check compares the answer with the library
(``zlab.flow``, ``zlab.distill``, ...) or with a number the lab's own objects give, never with a typed constant.

Example::

    def x0_hat(x_t, v, t):
        return ...                      # the reader's cell: "not done yet"

    check("05.x0_from_velocity", x0_hat)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class Wrong(Exception):
    """An answer the check refuses; its message says what is off (not what the answer is)."""


class NotDone(Exception):
    """The reader's answer still holds the stub's ``...``."""


@dataclass(frozen=True)
class Exercise:
    """One exercise: ``check(answer)`` raises :class:`Wrong` unless the answer is right; ``wrong`` makes answers a
    learner might plausibly give (the tests feed each to ``check`` and expect a refusal)."""

    key: str
    check: Callable[[Any], None]
    wrong: tuple[Callable[[], Any], ...]


EXERCISES: dict[str, Exercise] = {}


def exercise(key: str, *wrong: Callable[[], Any]):
    """Register ``check`` under ``key`` ("<lab>.<name>", e.g. "05.x0_from_velocity") with its wrong answers."""
    if not wrong:
        raise ValueError(f"exercise {key!r}: give at least one wrong answer for the tests to feed it")

    def register(check: Callable[[Any], None]) -> Callable[[Any], None]:
        if key in EXERCISES:
            raise ValueError(f"exercise {key!r} is registered twice")
        EXERCISES[key] = Exercise(key, check, tuple(wrong))
        return check

    return register


def given(value):
    """The reader's answer, or :class:`NotDone` if it (or what a reader's function returned) is still ``...``."""
    if value is ...:
        raise NotDone
    return value


def call(function: Callable, *args, **kwargs):
    """Call the reader's function; :class:`NotDone` if it is still the stub (it returns ``...``)."""
    if not callable(given(function)):
        raise Wrong(f"expected a function, got {type(function).__name__}")
    return given(function(*args, **kwargs))


def close(name: str, value, target, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Raise :class:`Wrong` unless ``value`` (a number or tensor) is within tolerance of ``target``."""
    import torch

    value_t = torch.as_tensor(given(value), dtype=torch.float64)
    target_t = torch.as_tensor(target, dtype=torch.float64)
    if value_t.shape != target_t.shape:
        raise Wrong(f"{name}: expected shape {tuple(target_t.shape)}, got {tuple(value_t.shape)}")
    if not torch.allclose(value_t, target_t, rtol=rtol, atol=atol):
        raise Wrong(f"{name} is off (largest gap {float((value_t - target_t).abs().max()):.3g})")

