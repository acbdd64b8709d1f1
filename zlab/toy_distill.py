"""Why one step needs more than regression, on lab 01's 2-D toy: six blobs are six modes.

The teacher is a :class:`zlab.toy.ToyVelocity` sampled without a class (the null condition), so every
noise has six places to go. A one-step student maps noise straight to a point, ``x0_hat = eps - v(eps, 1)``
(the linear path's x0 from velocity at t = 1), and is trained with mean squared error against a target:

- **paired** (Luhman and Luhman 2021): the teacher's many-step sample *of the same noise*. The target is a
  function of the input, so the MSE minimiser is that function, the teacher's noise-to-data map; the student
  is only as good as its fit of it, and where the fit is not yet sharp (near the boundaries between basins)
  MSE puts the point between the modes.
- **unpaired**: a teacher sample of *another* noise. The target is independent of the input, so the MSE
  minimiser is its mean, the centre of the six blobs: the fall to the mean in its purest form.

:func:`off_mode_share` measures it exactly: the share of points that lie on no blob.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from zlab.toy import BLOB_STD, ToyVelocity, _single_thread, class_centres, sample_toy


def off_mode_share(x: Tensor, stds: float = 2.0) -> float:
    """Share of points farther than ``stds`` blob standard deviations from every blob centre (real data: about
    e^-2 = 0.14 for 2 std, the tail of a 2-D Gaussian)."""
    return float((torch.cdist(x.float(), class_centres()).min(dim=1).values > stds * BLOB_STD).float().mean())


def unconditional(model: ToyVelocity, n: int) -> Tensor:
    """``n`` null conditions: the teacher samples without a class, so every noise has six modes to reach."""
    return model.null_labels(n)


def one_step(model: ToyVelocity, noise: Tensor) -> Tensor:
    """One Euler step from t = 1 to 0 on the linear path: ``x0_hat = eps - v(eps, 1)``."""
    return noise - model(noise, 1.0, unconditional(model, len(noise)))


@torch.no_grad()
def teacher_pairs(teacher: ToyVelocity, n: int, steps: int = 50, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n`` noises (from ``seed``) and the teacher's ``steps``-step samples of them, no class, no CFG."""
    noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    return noise, sample_toy(teacher, unconditional(teacher, n), steps=steps, seed=seed)


@_single_thread
@torch.enable_grad()
def regression_student(teacher: ToyVelocity, noise: Tensor, target: Tensor, paired: bool = True, steps: int = 1500,
                       batch: int = 512, lr: float = 1e-3, seed: int = 0) -> tuple[ToyVelocity, list[float]]:
    """A one-step student, initialised from the teacher, trained with MSE of ``one_step(noise)`` to ``target``.

    ``paired``: each noise against its own target (the teacher's sample of it); else against the target of an
    independently drawn other noise. Returns the student (eval mode) and its loss per step.
    """
    if len(noise) != len(target):
        raise ValueError(f"got {len(noise)} noises and {len(target)} targets")
    student = copy.deepcopy(teacher).train().requires_grad_(True)
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        idx = torch.randint(len(noise), (batch,), generator=gen)
        other = idx if paired else torch.randint(len(noise), (batch,), generator=gen)
        loss = (one_step(student, noise[idx]) - target[other]).pow(2).sum(dim=1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return student.eval().requires_grad_(False), losses
