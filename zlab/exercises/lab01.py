"""Lab 01's exercises: undoing a time shift; the share of logit-normal times above a level."""

from __future__ import annotations

import math

import torch

from zlab import flow
from zlab.exercises.core import Wrong, call, close, exercise

SHIFTS = (0.5, 1.0, 3.0, 6.0)
LAWS = ((0.0, 1.0), (1.0, 1.0), (-1.0, 0.5), (0.5, 1.6))
LEVELS = (0.1, 0.5, 0.9)


@exercise("01.unshift", lambda: flow.time_shift, lambda: lambda t, s: t / s)
def check_unshift(unshift) -> None:
    """``unshift(t_shifted, s)`` returns the uniform time that ``flow.time_shift(., s)`` maps to ``t_shifted``."""
    u = torch.linspace(0.0, 1.0, 21, dtype=torch.float64)
    for s in SHIFTS:
        close(f"unshift(time_shift(u, {s}), {s})", call(unshift, flow.time_shift(u, s), s), u)


def _tail(m: float, s: float, level: float) -> float:
    """P(t > level) for t = sigmoid(m + s z): t > level exactly when z > (logit(level) - m) / s."""
    return 1.0 - 0.5 * (1.0 + math.erf((math.log(level / (1 - level)) - m) / (s * math.sqrt(2))))


@exercise("01.logit_normal_tail",
          lambda: lambda m, s, level: 1.0 - 0.5 * (1.0 + math.erf((level - m) / (s * math.sqrt(2)))),  # level, not logit
          lambda: lambda m, s, level: 1.0 - 0.5 * (1.0 + math.erf((math.log(level / (1 - level)) - m) / math.sqrt(2))))
def check_logit_normal_tail(tail) -> None:
    """``tail(m, s, level)``: the probability that a LogitNormal(m, s) time exceeds ``level``, in closed form."""
    for m, s in LAWS:
        for level in LEVELS:
            value = float(call(tail, m, s, level))
            if not math.isclose(value, _tail(m, s, level), abs_tol=1e-6):
                raise Wrong(f"P(t > {level}) under LogitNormal({m}, {s}) is off: {value:.4f}; a histogram of "
                            f"flow.sample_logit_normal(100_000, m={m}, s={s}) shows what it should be")
