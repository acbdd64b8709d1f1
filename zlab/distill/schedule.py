"""Where LADD puts noise: the student's discrete timesteps and the discriminator's t_hat.

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

from zlab.flow import sample_logit_normal

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
