"""How a pipeline samples in a measurement, as data; every row's label is derived here, once.

A :class:`Setting` says who samples (the teacher, the student, a baseline), in how many steps, and whether with the
recipe's classifier-free guidance. Tables, records and figures name rows by :attr:`Setting.label`, and read a label
back with :func:`parse`, so no caller builds or splits a label string by hand:

    >>> Setting("teacher", 50, cfg=True, note="sampling.json").label
    'teacher 50 steps + CFG (sampling.json)'
    >>> parse("student 1 step")
    Setting(who='student', steps=1, cfg=None, note='')
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from zlab.distill.schedule import STUDENT_STEPS

_LABEL = re.compile(r"^(?P<who>.+?) (?P<steps>\d+) steps?(?P<cfg> \+ CFG|, no CFG)?(?: \((?P<note>[^()]*)\))?$")


@dataclass(frozen=True)
class Setting:
    """One way of sampling: ``who`` samples in ``steps`` steps; ``cfg`` True keeps the recipe's guidance, False turns
    it off (``guidance_scale = 0``), None says nothing (a student, which samples without it); ``note`` is shown in
    parentheses (``"sampling.json"``: exactly the shipped recipe)."""

    who: str
    steps: int
    cfg: bool | None = None
    note: str = ""

    @property
    def label(self) -> str:
        """The row's name: ``"teacher 4 steps + CFG"``, ``"teacher 1 step, no CFG"``, ``"student 2 steps"``."""
        text = f"{self.who} {self.steps} step{'s' * (self.steps != 1)}"
        text += {True: " + CFG", False: ", no CFG", None: ""}[self.cfg]
        return text + (f" ({self.note})" if self.note else "")

    def kwargs(self, base: dict) -> dict:
        """Stock ``ZImagePipeline`` arguments: ``base`` (a ``sampling.json``) at this step count, without CFG when
        ``cfg`` is False."""
        return {**base, "num_inference_steps": int(self.steps), **({"guidance_scale": 0.0} if self.cfg is False else {})}


def parse(label: str) -> Setting:
    """The :class:`Setting` a label was derived from; ValueError for a string no setting makes."""
    match = _LABEL.match(label)
    if match is None:
        raise ValueError(f"{label!r} is not a setting's label (e.g. 'teacher 4 steps + CFG', 'student 1 step')")
    cfg = {" + CFG": True, ", no CFG": False, None: None}[match["cfg"]]
    return Setting(match["who"], int(match["steps"]), cfg, match["note"] or "")


def by_label(settings: Iterable[Setting], base: dict) -> dict[str, dict]:
    """``{label: stock kwargs}`` of ``settings`` on ``base``: what the evaluators take."""
    return {s.label: s.kwargs(base) for s in settings}


def teacher_steps(steps: Sequence[int], cfg: Sequence[bool] = (True, False)) -> list[Setting]:
    """The teacher cut to each step count, with and without its guidance (the naive few-step baseline)."""
    return [Setting("teacher", n, c) for c in cfg for n in steps]


def student_steps(who: str = "student", steps: Sequence[int] = STUDENT_STEPS) -> list[Setting]:
    """A student at each of its step counts (it samples without CFG)."""
    return [Setting(who, n) for n in steps]
