"""One sampler for teacher and student: Euler or consistency steps, CFG in the lab's scale, truncation.

The model is any callable ``model(x, t, cond) -> v`` in the lab's convention (t = 1 noise, t = 0 data,
``v = eps - x0``); :func:`zlab.flow.zimage_velocity` makes one from a Z-Image transformer, and lab 01's
toy MLP is another. ``cond`` is a batch of conditions: a tensor (concatenated on dim 0) or a list
(concatenated with ``+``), so that CFG runs conditional and unconditional halves in one call, as
``ZImagePipeline`` does.

Classifier-free guidance (Ho & Salimans 2022) uses the lab's scale ``s``:

.. math:: v = v_u + s\\,(v_c - v_u)

diffusers' ``guidance_scale`` g means ``v_c + g (v_c - v_u)``, hence **s = g + 1** (see
:func:`guidance_scale_to_s`). s = 1 is the conditional model alone (one evaluation per step).

Example:
    >>> out = sample(model, noise, [1.0, 0.5, 0.0], cond, uncond, s=4.0)
    >>> out.latents.shape, out.nfe
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from zlab.flow import add_noise, euler_step, x0_from_velocity

__all__ = ["SampleOutput", "sample", "guidance_scale_to_s", "s_to_guidance_scale", "cfg_active"]

Model = Callable[[Tensor, Tensor, Any], Tensor]
Callback = Callable[[dict[str, Any]], None]


def guidance_scale_to_s(guidance_scale: float) -> float:
    """diffusers ``guidance_scale`` g (``v_c + g (v_c - v_u)``) to the lab's s (``v_u + s (v_c - v_u)``)."""
    return guidance_scale + 1.0


def s_to_guidance_scale(s: float) -> float:
    """Inverse of :func:`guidance_scale_to_s`."""
    return s - 1.0


def cfg_active(t: float, s: float, cfg_truncation: float = 1.0) -> bool:
    """Whether guidance is applied at lab time ``t``.

    Guidance is on only while noise is high: for ``1 - t <= cfg_truncation`` (truncation 1.0 keeps it
    everywhere, 0.5 drops it for the second half of the path). Same rule as ``ZImagePipeline``.
    """
    # float32 arithmetic, as ZImagePipeline does it, so boundary steps are decided identically
    model_t = (1000 - torch.tensor(t, dtype=torch.float32) * 1000) / 1000
    return s != 1.0 and float(model_t) <= cfg_truncation


@dataclass
class SampleOutput:
    """What :func:`sample` returns: final latents and the number of network evaluations per sample."""

    latents: Tensor
    nfe: int


def _cat(a, b):
    return torch.cat([a, b]) if isinstance(a, Tensor) else list(a) + list(b)


def sample(
    model: Model,
    x: Tensor,
    timesteps: Sequence[float] | Tensor,
    cond: Any,
    uncond: Any = None,
    *,
    s: float = 1.0,
    cfg_truncation: float = 1.0,
    method: Literal["euler", "consistency"] = "euler",
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> SampleOutput:
    """Integrate from noise to data along ``timesteps`` (Euler, or consistency re-noising).

    ``euler``: ``x <- x + (t_next - t) v``, the flow ODE (teacher).
    ``consistency``: ``x <- (1 - t_next) x0_hat + t_next eps'`` with fresh noise eps' (few-step
    student; diffusers' ``FlowMatchEulerDiscreteScheduler(stochastic_sampling=True)`` does the same).

    Args:
        model: ``model(x, t, cond) -> v``, x of shape (B, ...), t of shape (B,).
        x: Starting noise at ``timesteps[0]``, shape (B, ...).
        timesteps: Decreasing lab times; a final 0 is appended if missing.
        cond: Batch of conditions for the B samples.
        uncond: Batch of "empty" conditions, needed when ``s != 1``.
        s: Guidance scale in the lab's convention (1 = no guidance).
        cfg_truncation: Guidance only while ``1 - t <= cfg_truncation``.
        method: ``"euler"`` or ``"consistency"``.
        generator: RNG for the consistency re-noising (global RNG if None).
        callback: Called after each step with ``{"x", "t", "t_next", "x0_hat", "v", "step", "guided"}``.

    Returns:
        :class:`SampleOutput` with float32 latents at the last time and NFE per sample.
    """
    ts = torch.as_tensor(timesteps, dtype=torch.float32).flatten().cpu()
    if ts.numel() == 0 or float(ts[-1]) != 0.0:
        ts = torch.cat([ts, ts.new_zeros(1)])
    if not bool((ts[1:] < ts[:-1]).all()) or float(ts[0]) > 1.0:
        raise ValueError(f"timesteps must decrease within [0, 1]; got {ts.tolist()}")
    if method not in ("euler", "consistency"):
        raise ValueError(f"method must be 'euler' or 'consistency', got {method!r}")
    if s != 1.0 and uncond is None:
        raise ValueError("guidance s != 1 needs `uncond` (the empty-prompt conditions)")

    x = x.float()
    batch, nfe = x.shape[0], 0
    for i in range(len(ts) - 1):
        t, t_next = ts[i].to(x.device), ts[i + 1].to(x.device)
        t_batch = t.expand(batch)
        guided = cfg_active(float(t), s, cfg_truncation)
        if guided:
            v_c, v_u = model(torch.cat([x, x]), t_batch.repeat(2), _cat(cond, uncond)).float().chunk(2)
            v = v_u + s * (v_c - v_u)
            nfe += 2
        else:
            v = model(x, t_batch, cond).float()
            nfe += 1
        x0_hat = x0_from_velocity(x, v, t)
        if method == "euler":
            x_next = euler_step(x, v, t, t_next)
        else:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x_next = add_noise(x0_hat, noise, t_next)
        if callback is not None:
            callback({"x": x, "t": float(t), "t_next": float(t_next), "x0_hat": x0_hat, "v": v, "step": i,
                      "guided": guided})
        x = x_next
    return SampleOutput(latents=x, nfe=nfe)
