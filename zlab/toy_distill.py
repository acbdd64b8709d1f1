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

A **distribution-matching** student (:func:`dmd_student`, DMD's rule of :mod:`zlab.distill.dmd` on the toy) needs
no pairs: a fake score follows the student's own samples, and each sample moves along the difference of the
teacher's and the fake score's clean estimates. That difference points away from places the teacher gives no mass
and towards its modes (reverse KL), so a one-step student lands on blobs; which blobs, and how evenly, is
:func:`mode_shares`.

:func:`off_mode_share` measures it exactly: the share of points that lie on no blob.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from zlab.distill.dmd import normalised
from zlab.toy import BLOB_STD, ToyVelocity, _single_thread, class_centres, sample_toy


def off_mode_share(x: Tensor, stds: float = 2.0) -> float:
    """Share of points farther than ``stds`` blob standard deviations from every blob centre (real data: about
    e^-2 = 0.14 for 2 std, the tail of a 2-D Gaussian)."""
    return float((torch.cdist(x.float(), class_centres()).min(dim=1).values > stds * BLOB_STD).float().mean())


def unconditional(model: ToyVelocity, n: int) -> Tensor:
    """``n`` null conditions: the teacher samples without a class, so every noise has six modes to reach."""
    return model.null_labels(n)


def one_step(model: ToyVelocity, noise: Tensor, labels: Tensor | None = None) -> Tensor:
    """One Euler step from t = 1 to 0 on the linear path: ``x0_hat = eps - v(eps, 1)`` (no class by default)."""
    return noise - model(noise, 1.0, unconditional(model, len(noise)) if labels is None else labels)


def mode_shares(x: Tensor) -> Tensor:
    """(6,) share of the points nearest each blob centre: how evenly a sampler covers the six modes."""
    nearest = torch.cdist(x.float(), class_centres()).argmin(dim=1)
    return torch.bincount(nearest, minlength=len(class_centres())).float() / len(x)


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


def _x0(model: ToyVelocity, x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
    return x - t[:, None] * model(x, t, labels)


@_single_thread
@torch.enable_grad()
def dmd_student(teacher: ToyVelocity, steps: int = 1000, guidance: float = 1.0, dm_weight: float = 1.0,
                ca_weight: float = 1.0, conditional: bool = False, fake_updates: int = 3, batch: int = 512,
                lr: float = 1e-3, seed: int = 0) -> tuple[ToyVelocity, dict[str, list[float]]]:
    """A one-step student, initialised from the teacher, trained by (decoupled) DMD against it.

    Per step: ``x0_hat = one_step(student, eps)``, re-noised at ``tau ~ U(0.02, 0.98)``; the student moves along
    ``dm_weight * (x0_c - x0_fake) + ca_weight * (s - 1)(x0_c - x0_u)``, each term divided by DMD's
    ``mean |x0_hat - x0_real|`` (:func:`zlab.distill.dmd.normalised`, ``x0_real = x0_u + s (x0_c - x0_u)``, lab
    ``s = guidance``); the fake score (a copy of the teacher) steps ``fake_updates`` times by flow matching on the
    student's fresh samples. ``conditional``: each sample has a random class (else every sample is unconditional,
    and CFG has nothing to add). Returns the student (eval mode) and its log: ``dm`` and ``ca`` (mean RMS of each
    normalised direction) and ``fake`` (the fake score's loss)."""
    student = copy.deepcopy(teacher).train().requires_grad_(True)
    fake = copy.deepcopy(teacher).train().requires_grad_(True)
    opt_s, opt_f = torch.optim.Adam(student.parameters(), lr=lr), torch.optim.Adam(fake.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    labels_of = lambda n: (torch.randint(teacher.num_classes, (n,), generator=gen) if conditional
                           else teacher.null_labels(n))
    log: dict[str, list[float]] = {"dm": [], "ca": [], "fake": []}
    for _ in range(steps):
        labels = labels_of(batch)
        x0 = one_step(student, torch.randn(batch, 2, generator=gen), labels)
        tau = 0.02 + 0.96 * torch.rand(batch, generator=gen)
        x = (1 - tau[:, None]) * x0.detach() + tau[:, None] * torch.randn(batch, 2, generator=gen)
        with torch.no_grad():
            cond, uncond = _x0(teacher, x, tau, labels), _x0(teacher, x, tau, teacher.null_labels(batch))
            real = uncond + guidance * (cond - uncond)
            dm = normalised(cond - _x0(fake, x, tau, labels), x0.detach(), real)
            ca = normalised((guidance - 1) * (cond - uncond), x0.detach(), real)
        target = (x0 + dm_weight * dm + ca_weight * ca).detach()
        loss = 0.5 * (x0 - target).pow(2).sum(dim=1).mean()
        opt_s.zero_grad(set_to_none=True)
        loss.backward()
        opt_s.step()
        for _ in range(fake_updates):
            f_labels = labels_of(batch)
            with torch.no_grad():
                sample = one_step(student, torch.randn(batch, 2, generator=gen), f_labels)
            t, eps = torch.rand(batch, generator=gen), torch.randn(batch, 2, generator=gen)
            v = fake((1 - t[:, None]) * sample + t[:, None] * eps, t, f_labels)
            f_loss = (v - (eps - sample)).pow(2).sum(dim=1).mean()
            opt_f.zero_grad(set_to_none=True)
            f_loss.backward()
            opt_f.step()
        log["dm"].append(float(dm.pow(2).sum(1).sqrt().mean()))
        log["ca"].append(float(ca.pow(2).sum(1).sqrt().mean()))
        log["fake"].append(f_loss.item())
    return student.eval().requires_grad_(False), log
