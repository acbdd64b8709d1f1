"""Regression distillation (Luhman and Luhman 2021): the student's one-step sample of a noise, pulled towards the
teacher's many-step sample of the same noise.

Alone (LADD's ``adv_weight = 0``) it is the regression baseline; beside L_adv it ties each noise to the teacher's
sample of it. Its known failure is the mean: where a caption leaves several images open, the squared error is
smallest at their average.
"""

from __future__ import annotations

from torch import Tensor


def regression_loss(x0_hat: Tensor, x0: Tensor) -> Tensor:
    """``mean |x0_hat - x0|^2`` in float32, with ``x0`` the teacher's sample of the noise that ``x0_hat`` started from."""
    return (x0_hat.float() - x0.float()).pow(2).mean()
