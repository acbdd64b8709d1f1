"""Where LADD puts noise: the student's discrete timesteps, its inputs at them, and the discriminator's t_hat.

Follows LADD (Sauer et al. 2024, "Fast High-Resolution Image Synthesis with Latent Adversarial
Diffusion Distillation").

The student trains (and later samples) at ``t`` in {1, 0.75, 0.5, 0.25}. For the first
``warmup_steps`` it sees only the easy low-noise steps, ``p = [0, 0, .5, .5]``, then mostly the
hard pure-noise step, ``p = [.7, .1, .1, .1]`` (LADD's multi-step schedule for high resolutions).
The discriminator judges both latents re-noised at ``t_hat ~ LogitNormal(m, s)``: high ``t_hat``
leaves only layout to judge, low ``t_hat`` leaves edges and texture.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from zlab.collective import any_rank
from zlab.flow import add_noise, euler_step, sample_logit_normal, zimage_velocity

STUDENT_TIMESTEPS = (1.0, 0.75, 0.5, 0.25)
STUDENT_STEPS = (1, 2, 4)  # the step counts the student samples with: {1}, {1, .5}, {1, .75, .5, .25}
WARMUP_PROBS = (0.0, 0.0, 0.5, 0.5)
FULL_PROBS = (0.7, 0.1, 0.1, 0.1)


def student_timestep_probs(step: int, warmup_steps: int, warmup: Sequence[float] = WARMUP_PROBS,
                           full: Sequence[float] = FULL_PROBS) -> Tensor:
    """Probabilities over :data:`STUDENT_TIMESTEPS` at training step ``step`` (warm-up, then full)."""
    probs = torch.tensor(warmup if step < warmup_steps else full, dtype=torch.float64)
    if probs.shape != (len(STUDENT_TIMESTEPS),) or (probs < 0).any() or abs(probs.sum().item() - 1) > 1e-6:
        raise ValueError(f"timestep probabilities must be {len(STUDENT_TIMESTEPS)} non-negative numbers summing "
                         f"to 1, got {probs.tolist()}")
    return probs


def sample_student_t(n: int, step: int, warmup_steps: int, generator: torch.Generator | None = None,
                     **probs: Sequence[float]) -> Tensor:
    """``n`` student times drawn from :data:`STUDENT_TIMESTEPS` with :func:`student_timestep_probs`."""
    index = torch.multinomial(student_timestep_probs(step, warmup_steps, **probs), n, replacement=True,
                              generator=generator)
    return torch.tensor(STUDENT_TIMESTEPS, dtype=torch.float32)[index]


def sample_t_hat(n: int, m: float = 1.0, s: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """Discriminator noise levels ``t_hat ~ LogitNormal(m, s)`` (LADD's m = s = 1 by default)."""
    return sample_logit_normal(n, m, s, generator)


def backward_sim_dt(t: Tensor, share: float, generator: torch.Generator | None = None) -> Tensor:
    """Per sample, the Euler step size of the student's own sampler that makes its ``x_t`` (0 = noised data): a
    ``share`` of the ``t < 1`` samples are simulated; t = .75 and .25 are reached by the 4-step sampler (1/4), t = .5
    by the 2- or 4-step one (1/2 or 1/4, evenly)."""
    n = len(t)
    simulate = (torch.rand(n, generator=generator) < share) & (t < 1)
    two_step = (t == 0.5) & (torch.rand(n, generator=generator) < 0.5)
    return torch.where(simulate, torch.where(two_step, 0.5, 0.25), 0.0)


@torch.no_grad()
def sampler_inputs(student, batch) -> Tensor:
    """``x_t`` for the student, where samples with ``sim_dt > 0`` get what its own sampler feeds it at ``t``.

    ``batch`` carries ``x0``, ``eps``, ``t``, ``sim_dt`` and ``embeds`` (:class:`zlab.distill.ladd.LADDBatch`).

    Those samples start at ``x_1 = eps`` and take deterministic Euler steps of ``sim_dt`` (stock
    ``ZImagePipeline`` with the student's shift-1 scheduler) down to ``t``, with no gradient: the
    student then learns the step it will really be asked to take (DMD2's "backward simulation"),
    instead of only steps from noised teacher data. The others get ``(1 - t) x0 + t eps``.
    """
    x = add_noise(batch.x0, batch.eps, batch.t)
    if batch.sim_dt is None:
        return x
    now = torch.ones_like(batch.t)
    x_sim = batch.eps.clone()
    while True:
        idx = ((batch.sim_dt > 0) & (now > batch.t + 1e-6)).nonzero().squeeze(1)
        if not any_rank(len(idx) > 0, student):
            break
        if len(idx) == 0:  # done here, but a sharded student's forward is collective: join the other ranks' pass
            zimage_velocity(student, x_sim[:1], now[:1], batch.embeds[:1])
            continue
        v = zimage_velocity(student, x_sim[idx], now[idx], [batch.embeds[i] for i in idx.tolist()])
        after = now[idx] - batch.sim_dt[idx]
        x_sim[idx] = euler_step(x_sim[idx], v, now[idx], after).to(x_sim.dtype)
        now[idx] = after
    return torch.where((batch.sim_dt > 0)[:, None, None, None], x_sim, x)
