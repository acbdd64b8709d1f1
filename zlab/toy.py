"""Lab 01's 2D toy world: class-conditional blobs, a tiny velocity MLP and two noising paths.

Both paths run on the lab's clock (t = 0 clean data, t = 1 pure noise) and both models predict
``dx_t/dt``, so the one sampler :func:`zlab.sampling.sample` integrates either of them.

**linear** (flow matching, Lipman et al. 2023; rectified flow, Liu et al. 2023; the maths lives in :mod:`zlab.flow`):

.. math:: x_t = (1 - t)\\, x_0 + t\\, \\epsilon, \\qquad v = \\frac{dx_t}{dt} = \\epsilon - x_0

**vp** (a DDPM-style variance-preserving path with the cosine schedule, written here because
:mod:`zlab.flow` holds only the linear path):

.. math::

    \\alpha_t = \\cos\\frac{\\pi t}{2}, \\quad \\sigma_t = \\sin\\frac{\\pi t}{2}, \\qquad
    x_t = \\alpha_t x_0 + \\sigma_t \\epsilon, \\qquad
    v = \\frac{dx_t}{dt} = \\dot\\alpha_t x_0 + \\dot\\sigma_t \\epsilon
      = \\frac{\\pi}{2}\\big(-\\sigma_t x_0 + \\alpha_t \\epsilon\\big)

Each (x0, eps) pair moves along a straight segment on the linear path and along a quarter of an ellipse
on the vp path; Euler steps follow the first exactly and cut the corners of the second.

Example:
    >>> model, losses = train_toy("linear", steps=2000, progress=False)
    >>> labels = torch.arange(NUM_CLASSES).repeat_interleave(100)
    >>> x = sample_toy(model, labels, steps=8, s=2.0)
    >>> nearest_centre_accuracy(x, labels) > 0.9
    True
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from zlab.flow import add_noise, velocity_target
from zlab.sampling import sample

__all__ = [
    "NUM_CLASSES",
    "RADIUS",
    "BLOB_STD",
    "Path",
    "class_centres",
    "sample_data",
    "vp_alpha_sigma",
    "vp_add_noise",
    "vp_velocity_target",
    "vp_x0_from_velocity",
    "noised_and_target",
    "conditional_paths",
    "ToyVelocity",
    "train_toy",
    "uniform_timesteps",
    "trajectory",
    "sample_toy",
    "euler_error_vs_steps",
    "straightness",
    "distance_to_centre",
    "nearest_centre_accuracy",
    "time_shift_pdf",
]

Path = Literal["linear", "vp"]

NUM_CLASSES = 6
"""Number of classes (blobs); the model reserves one more index, ``NUM_CLASSES``, for "no class"."""
RADIUS = 2.5
"""Distance of each blob centre from the origin (the noise has unit scale)."""
BLOB_STD = 0.5
"""Standard deviation of each blob: wide enough that neighbouring classes overlap a little
(about 1% of points lie nearer another class's centre), so that guidance has something to sharpen."""


# --------------------------------------------------------------------------- data


def class_centres(num_classes: int = NUM_CLASSES, radius: float = RADIUS) -> Tensor:
    """Blob centres evenly spaced on a circle, class 0 at the top; shape (K, 2)."""
    angles = math.pi / 2 + 2 * math.pi * torch.arange(num_classes, dtype=torch.float32) / num_classes
    return radius * torch.stack([angles.cos(), angles.sin()], dim=1)


def sample_data(
    n: int, seed: int | None = 0, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Draw ``n`` labelled points: a class uniformly, then a point of its Gaussian blob.

    Args:
        n: Number of points.
        seed: Seed for a fresh generator (ignored when ``generator`` is given).
        generator: RNG to draw from, e.g. a training loop's stream.

    Returns:
        ``(x, labels)`` of shapes (n, 2) float32 and (n,) int64, labels in 0..K-1.
    """
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else seed)
    labels = torch.randint(NUM_CLASSES, (n,), generator=generator)
    x = class_centres()[labels] + BLOB_STD * torch.randn(n, 2, generator=generator)
    return x, labels


# --------------------------------------------------------------------------- the vp path


def vp_alpha_sigma(t: Tensor | float) -> tuple[Tensor, Tensor]:
    """Cosine schedule: :math:`\\alpha_t = \\cos(\\pi t / 2)`, :math:`\\sigma_t = \\sin(\\pi t / 2)`
    (so :math:`\\alpha_t^2 + \\sigma_t^2 = 1`, t = 0 data, t = 1 noise)."""
    t = torch.as_tensor(t)
    t = t if t.is_floating_point() else t.float()
    return torch.cos(math.pi * t / 2), torch.sin(math.pi * t / 2)


def _col(t: Tensor | float, like: Tensor) -> Tensor:
    """Per-sample times (B,) or a scalar as a column that broadcasts against (B, D)."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.reshape(-1, *([1] * (like.ndim - 1))) if t.ndim else t


def vp_add_noise(x0: Tensor, eps: Tensor, t: Tensor | float) -> Tensor:
    """Point on the vp path: :math:`x_t = \\alpha_t x_0 + \\sigma_t \\epsilon`."""
    alpha, sigma = vp_alpha_sigma(_col(t, x0))
    return alpha * x0 + sigma * eps


def vp_velocity_target(x0: Tensor, eps: Tensor, t: Tensor | float) -> Tensor:
    """Time derivative of the vp path, the vp model's regression target.

    .. math:: v = \\dot\\alpha_t x_0 + \\dot\\sigma_t \\epsilon
              = \\frac{\\pi}{2}\\big(-\\sigma_t x_0 + \\alpha_t \\epsilon\\big)

    Unlike the linear target it depends on t: the velocity turns as the point moves on its arc.
    """
    alpha, sigma = vp_alpha_sigma(_col(t, x0))
    return (math.pi / 2) * (-sigma * x0 + alpha * eps)


def vp_x0_from_velocity(x_t: Tensor, v: Tensor, t: Tensor | float) -> Tensor:
    """Clean-data estimate on the vp path: :math:`\\hat x_0 = \\alpha_t x_t - \\tfrac{2}{\\pi}\\sigma_t v`.

    Solves the two equations for x_t and v above for x0 (the vp counterpart of ``x_t - t v``).
    """
    alpha, sigma = vp_alpha_sigma(_col(t, x_t))
    return alpha * x_t - (2 / math.pi) * sigma * v


def noised_and_target(path: Path, x0: Tensor, eps: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """``(x_t, dx_t/dt)`` for a batch on either path; linear uses :mod:`zlab.flow` itself."""
    if path == "linear":
        return add_noise(x0, eps, t), velocity_target(x0, eps)
    if path == "vp":
        return vp_add_noise(x0, eps, t), vp_velocity_target(x0, eps, t)
    raise ValueError(f"path must be 'linear' or 'vp', got {path!r}")


def conditional_paths(path: Path, x0: Tensor, eps: Tensor, ts: Tensor) -> Tensor:
    """Exact per-pair trajectories ``x_t`` for each pair (x0[i], eps[i]) at times ``ts``.

    Returns:
        Tensor of shape (len(ts), B, D).
    """
    return torch.stack([noised_and_target(path, x0, eps, t.expand(len(x0)))[0] for t in ts])


# --------------------------------------------------------------------------- the model


def _single_thread(fn: Callable) -> Callable:
    """Run ``fn`` on one intra-op thread: for a 128-wide MLP, syncing threads costs more than it
    saves (several times slower on a busy 2-core machine)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return wrapper


class ToyVelocity(nn.Module):
    """A small MLP ``v = model(x, t, cond)`` on the lab's clock, usable by :func:`zlab.sampling.sample`.

    The input is ``[x, sin/cos features of t, class embedding]``; class index ``num_classes``
    (:attr:`null_class`) is the empty condition that CFG's unconditional branch uses, learnt by
    dropping labels during training.

    Args:
        num_classes: Number of real classes K.
        width: Hidden width.
        depth: Number of hidden layers.
        time_features: Number of sinusoidal features of t (half sin, half cos).
        class_dim: Size of the class embedding.
    """

    def __init__(
        self, num_classes: int = NUM_CLASSES, width: int = 128, depth: int = 3, time_features: int = 16,
        class_dim: int = 16,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.null_class = num_classes
        # frequencies pi/2 .. 2^(n-1) pi/2 resolve t on [0, 1] from coarse to fine
        self.register_buffer("freqs", (math.pi / 2) * 2.0 ** torch.arange(time_features // 2))
        self.class_embed = nn.Embedding(num_classes + 1, class_dim)
        layers: list[nn.Module] = []
        dim = 2 + time_features + class_dim
        for _ in range(depth):
            layers += [nn.Linear(dim, width), nn.SiLU()]
            dim = width
        layers.append(nn.Linear(dim, 2))
        self.net = nn.Sequential(*layers)

    def null_labels(self, n: int) -> Tensor:
        """A batch of ``n`` empty conditions (the ``uncond`` of :func:`zlab.sampling.sample`)."""
        return torch.full((n,), self.null_class, dtype=torch.long, device=self.freqs.device)

    def forward(self, x: Tensor, t: Tensor | float, cond: Tensor) -> Tensor:
        """Velocity ``dx_t/dt`` at points x (B, 2), times t (B,) or scalar, classes cond (B,)."""
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0])
        angles = t[:, None] * self.freqs
        h = torch.cat([x, angles.sin(), angles.cos(), self.class_embed(cond)], dim=1)
        return self.net(h)


@_single_thread
def train_toy(
    path: Path = "linear",
    steps: int = 2000,
    batch: int = 512,
    lr: float = 3e-3,
    cond_drop: float = 0.1,
    seed: int = 0,
    progress: bool = True,
    width: int = 128,
) -> tuple[ToyVelocity, list[float]]:
    """Train a :class:`ToyVelocity` by velocity regression on the chosen path.

    Each step draws fresh data x0, noise eps and times t ~ U(0, 1), forms ``x_t`` and the target
    ``dx_t/dt`` with :func:`noised_and_target`, and minimises ``|model(x_t, t, c) - target|^2``.
    A fraction ``cond_drop`` of labels is replaced by the null class so the same network also
    learns the unconditional velocity that CFG needs.

    Args:
        path: ``"linear"`` (flow matching) or ``"vp"`` (cosine variance-preserving).
        steps: Optimiser steps.
        batch: Batch size.
        lr: Peak Adam learning rate (cosine-decayed to zero).
        cond_drop: Probability of replacing a label with the null class.
        seed: Seeds the weights and the data, noise, time and dropout streams.
        progress: Show a tqdm bar with the running loss.
        width: Hidden width of the MLP.

    Returns:
        ``(model, losses)``: the trained model in eval mode and the loss of every step.
    """
    from tqdm.auto import tqdm

    if path not in ("linear", "vp"):
        raise ValueError(f"path must be 'linear' or 'vp', got {path!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ToyVelocity(width=width)
    gen = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    losses: list[float] = []
    bar = tqdm(range(steps), desc=f"train {path}", disable=not progress, mininterval=0.25)
    for step in bar:
        x0, labels = sample_data(batch, generator=gen)
        eps = torch.randn(batch, 2, generator=gen)
        t = torch.rand(batch, generator=gen)
        drop = torch.rand(batch, generator=gen) < cond_drop
        labels = torch.where(drop, torch.full_like(labels, model.null_class), labels)
        x_t, target = noised_and_target(path, x0, eps, t)
        loss = (model(x_t, t, labels) - target).pow(2).sum(dim=1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.3f}")
    return model.eval().requires_grad_(False), losses


# --------------------------------------------------------------------------- sampling helpers


def uniform_timesteps(steps: int) -> Tensor:
    """``steps + 1`` evenly spaced lab times from 1 (noise) to 0 (data)."""
    return torch.linspace(1.0, 0.0, steps + 1)


@torch.no_grad()
def trajectory(
    model: ToyVelocity,
    noise: Tensor,
    cond: Tensor,
    timesteps: Sequence[float] | Tensor,
    s: float = 1.0,
    cfg_truncation: float = 1.0,
) -> dict[str, Tensor]:
    """Integrate with :func:`zlab.sampling.sample` (Euler) and record every step via its callback.

    Returns:
        ``{"t": (N+1,), "x": (N+1, B, 2), "v": (N, B, 2)}``: the times, the states at those times
        (``x[0]`` is the noise, ``x[-1]`` the sample) and the (guided) velocity used at each step.
    """
    xs, vs = [], []

    def record(info: dict) -> None:  # the callback sees the state *before* each step
        xs.append(info["x"])
        vs.append(info["v"])

    out = sample(model, noise, timesteps, cond, model.null_labels(len(cond)), s=s, cfg_truncation=cfg_truncation,
                 callback=record)
    xs.append(out.latents)
    ts = torch.as_tensor(timesteps, dtype=torch.float32)
    if float(ts[-1]) != 0.0:
        ts = torch.cat([ts, ts.new_zeros(1)])
    return {"t": ts, "x": torch.stack(xs), "v": torch.stack(vs)}


@torch.no_grad()
def sample_toy(
    model: ToyVelocity,
    labels: Tensor,
    steps: int = 32,
    s: float = 1.0,
    cfg_truncation: float = 1.0,
    seed: int = 0,
    timesteps: Sequence[float] | Tensor | None = None,
) -> Tensor:
    """Samples for the given class labels: noise from ``seed``, Euler on a uniform grid, CFG scale ``s``."""
    noise = torch.randn(len(labels), 2, generator=torch.Generator().manual_seed(seed))
    ts = uniform_timesteps(steps) if timesteps is None else timesteps
    return sample(model, noise, ts, labels, model.null_labels(len(labels)), s=s, cfg_truncation=cfg_truncation).latents


@_single_thread
@torch.no_grad()
def euler_error_vs_steps(
    model: ToyVelocity,
    noise: Tensor,
    cond: Tensor,
    steps: Sequence[int] = (1, 2, 4, 8, 16, 32, 64),
    reference_steps: int = 1024,
) -> dict[int, float]:
    """Discretisation error of Euler: mean L2 distance between the end point after N uniform steps
    and a fine solve of the same ODE from the same noise (``reference_steps`` steps).

    Returns:
        ``{N: error}`` for each N in ``steps``.
    """
    ref = sample(model, noise, uniform_timesteps(reference_steps), cond).latents
    return {
        n: float((sample(model, noise, uniform_timesteps(n), cond).latents - ref).norm(dim=1).mean()) for n in steps
    }


def straightness(traj: dict[str, Tensor]) -> Tensor:
    """How far each trajectory is from a straight line walked at constant speed (0 = perfectly straight).

    The straightness of Liu et al. (2022, Rectified Flow), on the lab's clock:

    .. math:: S = \int_0^1 \big\| (x_1 - x_0) - v_t \big\|^2 \, dt

    where :math:`x_1 - x_0` is the average velocity (noise end minus data end). S = 0 exactly when
    the velocity never changes along the path, which is when one Euler step is exact; a path that
    turns, or that speeds up and slows down, has S > 0.

    Args:
        traj: A :func:`trajectory` record (``t`` (N+1,), ``x`` (N+1, B, D), ``v`` (N, B, D)).

    Returns:
        Tensor of shape (B,), the integral approximated with the trajectory's own steps.
    """
    mean_velocity = traj["x"][0] - traj["x"][-1]  # x[0] is the noise (t = 1), x[-1] the sample (t = 0)
    dt = (traj["t"][:-1] - traj["t"][1:]).reshape(-1, 1)
    return (((traj["v"] - mean_velocity) ** 2).sum(dim=-1) * dt).sum(dim=0)


def distance_to_centre(x: Tensor, labels: Tensor) -> float:
    """Mean distance of each point to its own class centre (BLOB_STD * sqrt(pi / 2) ~ 0.63 for real data)."""
    return float((x.float() - class_centres()[labels]).norm(dim=1).mean())


def nearest_centre_accuracy(x: Tensor, labels: Tensor) -> float:
    """Fraction of points whose nearest blob centre is the centre of their own class."""
    return float((torch.cdist(x.float(), class_centres()).argmin(dim=1) == labels).float().mean())


def time_shift_pdf(t: Tensor, shift: float) -> Tensor:
    """Density of :func:`zlab.flow.time_shift` applied to ``u ~ U(0, 1)``.

    Inverting :math:`t = s u / (1 + (s - 1) u)` gives :math:`u = t / (s - (s - 1) t)`, hence

    .. math:: p(t) = \\frac{du}{dt} = \\frac{s}{\\big(s - (s - 1)\\, t\\big)^2}

    which for s > 1 piles probability up near t = 1 (high noise).
    """
    return shift / (shift - (shift - 1) * t) ** 2
