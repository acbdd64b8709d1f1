"""Lab 08's exercises: DMD's per-sample normaliser; the DMD direction from the networks' velocities; reverse against
forward KL for a one-Gaussian student of a two-mode teacher."""

from __future__ import annotations

import math

import torch

from zlab.distill.dmd import normalised
from zlab.exercises.core import Wrong, call, close, exercise
from zlab.flow import x0_from_velocity


def _per_sample_scale(x0_hat, x0_real):
    return (x0_hat - x0_real).abs().flatten(1).mean(1).view(-1, 1, 1, 1)


@exercise("08.normaliser",
          lambda: lambda delta, x0_hat, x0_real: delta / (x0_hat - x0_real).abs().mean(),  # one scale for the batch
          lambda: lambda delta, x0_hat, x0_real: delta / (x0_hat - x0_real).pow(2).flatten(1).mean(1).sqrt()
          .view(-1, 1, 1, 1),  # the RMS, not the mean absolute difference
          lambda: lambda delta, x0_hat, x0_real: delta * _per_sample_scale(x0_hat, x0_real))  # multiplied
def check_normaliser(normaliser) -> None:
    """``normaliser(delta, x0_hat, x0_real)``: ``delta`` over each sample's mean ``|x0_hat - x0_real|``, as
    :func:`zlab.distill.dmd.normalised`."""
    g = torch.Generator().manual_seed(0)
    for shape in ((3, 4, 5, 5), (2, 16, 4, 6)):
        delta, x0_hat, x0_real = torch.randn(3, *shape, generator=g, dtype=torch.float64).unbind(0)
        x0_real = x0_real + torch.linspace(-3.0, 4.0, shape[0], dtype=torch.float64).view(-1, 1, 1, 1)  # far and near
        close(f"the normalised direction of a batch of shape {shape}", call(normaliser, delta, x0_hat, x0_real),
              normalised(delta, x0_hat, x0_real))


def _direction(x_tau, tau, v_c, v_u, v_fake, s):
    """``x0_real - x0_fake`` the library's way: each velocity to a clean estimate, then CFG on the estimates."""
    cond, uncond, fake = (x0_from_velocity(x_tau, v, tau) for v in (v_c, v_u, v_fake))
    return uncond + s * (cond - uncond) - fake


@exercise("08.direction_from_velocities",
          lambda: lambda x, tau, v_c, v_u, v_fake, s: v_u + s * (v_c - v_u) - v_fake,  # the velocity gap, as it is
          lambda: lambda x, tau, v_c, v_u, v_fake, s: tau.view(-1, 1, 1, 1) * (v_u + s * (v_c - v_u) - v_fake),  # sign
          lambda: lambda x, tau, v_c, v_u, v_fake, s: tau.view(-1, 1, 1, 1) * (v_fake - v_c - s * (v_c - v_u)))  # g, not s
def check_direction_from_velocities(direction) -> None:
    """``direction(x_tau, tau, v_c, v_u, v_fake, s)``: DMD's unnormalised ``x0_real - x0_fake`` with the lab's CFG
    (``x0_real = x0_u + s (x0_c - x0_u)``) and ``x0 = x_tau - tau v``, for per-sample ``tau`` of shape (B,)."""
    g = torch.Generator().manual_seed(1)
    x, v_c, v_u, v_fake = torch.randn(4, 4, 3, 6, 6, generator=g, dtype=torch.float64).unbind(0)
    tau = torch.tensor([0.9, 0.6, 0.3, 0.05], dtype=torch.float64)
    for s in (1.0, 1.5, 4.0):
        close(f"the direction at s = {s}", call(direction, x, tau, v_c, v_u, v_fake, s),
              _direction(x, tau, v_c, v_u, v_fake, s))


GRID = torch.linspace(-15.0, 15.0, 6001, dtype=torch.float64)
CASES = ((0.0, 3.0), (2.5, 3.0), (-1.0, 2.0), (1.0, 0.5))


def _log_normal(x, mean):
    return -0.5 * (x - mean) ** 2 - 0.5 * math.log(2 * math.pi)


def _reverse_kl(mu: float, a: float) -> float:
    """KL(N(mu, 1) || 0.5 N(-a, 1) + 0.5 N(a, 1)) by the trapezoid rule on :data:`GRID`."""
    log_q = _log_normal(GRID, mu)
    log_p = torch.logaddexp(_log_normal(GRID, -a), _log_normal(GRID, a)) - math.log(2)
    return float(torch.trapezoid(log_q.exp() * (log_q - log_p), GRID))


@exercise("08.reverse_kl",
          lambda: lambda mu, a: float(torch.trapezoid(  # forward KL(p || q): the mean-seeking one
              ((_log_normal(GRID, -a).exp() + _log_normal(GRID, a).exp()) / 2)
              * (torch.logaddexp(_log_normal(GRID, -a), _log_normal(GRID, a)) - math.log(2) - _log_normal(GRID, mu)),
              GRID)),
          lambda: lambda mu, a: float(torch.trapezoid(  # the cross-entropy -E_q log p, without the student's entropy
              -_log_normal(GRID, mu).exp() * (torch.logaddexp(_log_normal(GRID, -a), _log_normal(GRID, a))
                                              - math.log(2)), GRID)),
          lambda: lambda mu, a: float(torch.trapezoid(  # KL to the nearer mode alone, forgetting the mixture
              _log_normal(GRID, mu).exp() * (_log_normal(GRID, mu) - _log_normal(GRID, math.copysign(a, mu))), GRID)))
def check_reverse_kl(reverse_kl) -> None:
    """``reverse_kl(mu, a)``: KL(q || p) for the student q = N(mu, 1) and the teacher p = 0.5 N(-a, 1) + 0.5 N(a, 1)."""
    for mu, a in CASES:
        value = call(reverse_kl, mu, a)
        try:
            close(f"reverse_kl({mu}, {a})", value, _reverse_kl(mu, a), rtol=1e-3, atol=1e-4)
        except Wrong as off:
            raise Wrong(f"{off}: it is an expectation over the student's q, of log q - log p") from None
