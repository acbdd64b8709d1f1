"""Flow matching in the lab's convention, and the one bridge to diffusers' Z-Image convention.

The lab's clock, that of flow matching (Lipman et al. 2023) and rectified flow (Liu et al. 2023) as SD3
(Esser et al. 2024) writes it: ``t`` in [0, 1], **t = 0 is clean data, t = 1 is pure noise**.

.. math::

    x_t = (1 - t)\\, x_0 + t\\, \\epsilon, \\qquad
    v = \\frac{dx_t}{dt} = \\epsilon - x_0, \\qquad
    \\hat x_0 = x_t - t\\, v, \\qquad
    \\hat\\epsilon = x_t + (1 - t)\\, v.

Sampling integrates ``dx/dt = v`` from t = 1 down to t = 0, so an Euler step is
``x_{t'} = x_t + (t' - t) v`` with ``t' < t``.

diffusers' ``ZImageTransformer2DModel`` runs on the opposite clock and sign: it is called with
``1 - t`` and returns ``x_0 - \\epsilon = -v`` (``ZImagePipeline.__call__``: ``timestep = (1000 - t) / 1000``
and ``noise_pred = -noise_pred``). :func:`zimage_velocity` is the only place in zlab that knows this.

This module imports nothing else from zlab.

Example:
    >>> x0, eps = torch.zeros(2, 4), torch.ones(2, 4)
    >>> t = torch.tensor([0.25, 0.75])
    >>> x_t = add_noise(x0, eps, t)
    >>> torch.allclose(x0_from_velocity(x_t, velocity_target(x0, eps), t), x0)
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "add_noise",
    "velocity_target",
    "x0_from_velocity",
    "eps_from_velocity",
    "euler_step",
    "resolution_mu",
    "time_shift",
    "sample_logit_normal",
    "logit_normal_pdf",
    "zimage_velocity",
]


def _expand(t: Tensor | float, like: Tensor) -> Tensor:
    """Broadcast a scalar or per-sample ``t`` of shape (B,) against ``like`` of shape (B, ...)."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.reshape(t.shape + (1,) * (like.ndim - t.ndim)) if t.ndim else t


def add_noise(x0: Tensor, eps: Tensor, t: Tensor | float) -> Tensor:
    """Point on the straight path from data to noise.

    .. math:: x_t = (1 - t)\\, x_0 + t\\, \\epsilon

    Args:
        x0: Clean data, shape (B, ...).
        eps: Gaussian noise, same shape.
        t: Scalar or per-sample times of shape (B,), in [0, 1].
    """
    t = _expand(t, x0)
    return (1 - t) * x0 + t * eps


def velocity_target(x0: Tensor, eps: Tensor) -> Tensor:
    """Flow-matching regression target, constant along each straight path: :math:`v = \\epsilon - x_0`."""
    return eps - x0


def x0_from_velocity(x_t: Tensor, v: Tensor, t: Tensor | float) -> Tensor:
    """Clean-data estimate from a velocity: :math:`\\hat x_0 = x_t - t\\, v`."""
    return x_t - _expand(t, x_t) * v


def eps_from_velocity(x_t: Tensor, v: Tensor, t: Tensor | float) -> Tensor:
    """Noise estimate from a velocity: :math:`\\hat\\epsilon = x_t + (1 - t)\\, v`."""
    return x_t + (1 - _expand(t, x_t)) * v


def euler_step(x_t: Tensor, v: Tensor, t: Tensor | float, t_next: Tensor | float) -> Tensor:
    """One Euler step of the flow ODE from ``t`` to ``t_next``: :math:`x_{t'} = x_t + (t' - t)\\, v`.

    Written as ``FlowMatchEulerDiscreteScheduler.step`` writes it, so both agree bit for bit.
    """
    dt = _expand(t_next, x_t) - _expand(t, x_t)
    return x_t + dt * v


def resolution_mu(
    image_seq_len: int,
    base_seq_len: int = 256,
    max_seq_len: int = 4096,
    base_shift: float = 0.5,
    max_shift: float = 1.15,
) -> float:
    """Resolution-dependent shift parameter: linear in the number of image tokens.

    .. math:: \\mu = b_0 + (b_1 - b_0)\\,\\frac{n - n_0}{n_1 - n_0}

    With the defaults, 256 tokens (256 px in Z-Image: 8x VAE, 2x2 patches) give mu = 0.5 and 4096
    tokens (1024 px) give mu = 1.15. Same numbers as diffusers' ``calculate_shift``, which
    ``ZImagePipeline`` always calls; the scheduler turns mu into the time shift ``exp(mu)`` only when
    its config sets ``use_dynamic_shifting`` (the published Z-Image configs do not: they use a static
    shift, see :func:`zlab.zimage.sampling_shift`).
    """
    slope = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return image_seq_len * slope + (base_shift - slope * base_seq_len)


def time_shift(t: Tensor, shift: float) -> Tensor:
    """Warp times towards noise: :math:`t' = \\frac{s\\, t}{1 + (s - 1)\\, t}`.

    ``shift`` s > 1 spends more of a schedule (or of training) at high noise, where global
    structure is decided; s = 1 is the identity. The resolution-dependent form of diffusers
    ("exponential", ``e^mu / (e^mu + 1/t - 1)``) is the same map with ``s = exp(mu)``.
    """
    return shift * t / (1 + (shift - 1) * t)


def sample_logit_normal(
    n: int, m: float = 0.0, s: float = 1.0, generator: torch.Generator | None = None, device=None
) -> Tensor:
    """Draw ``t = sigmoid(m + s * z)``, ``z ~ N(0, 1)``: the logit-normal law used for training
    times (SD3, Z-Image) and for LADD's discriminator noise ``t_hat`` (m = 1, s = 1)."""
    z = torch.randn(n, generator=generator, device=device)
    return torch.sigmoid(m + s * z)


def logit_normal_pdf(t: Tensor, m: float = 0.0, s: float = 1.0) -> Tensor:
    """Density of :func:`sample_logit_normal`.

    .. math:: \\pi(t; m, s) = \\frac{1}{s\\sqrt{2\\pi}}\\,\\frac{1}{t(1-t)}
              \\exp\\Big(-\\frac{(\\operatorname{logit}(t) - m)^2}{2 s^2}\\Big)
    """
    logit = torch.log(t) - torch.log1p(-t)
    return torch.exp(-((logit - m) ** 2) / (2 * s**2)) / (s * math.sqrt(2 * math.pi) * t * (1 - t))


def zimage_velocity(transformer, x_t: Tensor, t: Tensor, prompt_embeds: Sequence[Tensor]) -> Tensor:
    """Velocity in the lab's convention from a diffusers ``ZImageTransformer2DModel``.

    The single convention bridge of zlab: the model is fed ``1 - t`` and its output is negated.
    The model time is computed exactly as ``ZImagePipeline`` computes it from scheduler timesteps
    (``(1000 - 1000 t) / 1000``), so that zlab and the stock pipeline agree to the last bit.

    Args:
        transformer: A ``ZImageTransformer2DModel`` (or anything with its call signature).
        x_t: Latents of shape (B, C, H, W) at lab time ``t``.
        t: Lab times, shape (B,).
        prompt_embeds: One (L_i, D) tensor per sample, padding already dropped.

    Returns:
        ``v = eps - x0`` as float32, shape (B, C, H, W).
    """
    model_t = (1000 - t.float() * 1000) / 1000
    dtype = getattr(transformer, "module", transformer).dtype  # DDP/FSDP wrappers keep the model in .module
    frames = list(x_t.to(dtype).unsqueeze(2).unbind(0))  # (C, F=1, H, W) per sample
    out = transformer(frames, model_t, list(prompt_embeds), return_dict=False)[0]
    return -torch.stack([o.float() for o in out]).squeeze(2)
