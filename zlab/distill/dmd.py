"""Distribution matching distillation, the method: one step of (Decoupled) DMD over a prepared batch.

DMD (Yin et al. 2024, arXiv 2311.18828) and DMD2 (Yin et al. 2024, arXiv 2405.14867) train a few-step student
``G`` so that its samples' distribution matches the teacher's. The gradient of the reverse KL from the student's
distribution to the teacher's, taken at a re-noised student sample ``x_tau = (1 - tau) x0_hat + tau eps'``, is the
difference of two denoisers: the teacher's (the "real" score) and a *fake* score model trained online, by flow
matching, on the student's own samples. In x0 terms, with the lab's ``x0 = x_t - t v``:

    grad = x0_fake(x_tau) - x0_real(x_tau),  x0_hat <- x0_hat - lr * grad / mean|x0_hat - x0_real|

Reverse KL punishes student samples where the teacher has no mass and not the other way round: DMD seeks modes.

With the teacher guided at ``s`` (lab convention: ``x0_real = x0_u + s (x0_c - x0_u)``, diffusers' g = s - 1),
the gradient splits in two (Decoupled DMD, Liu et al. 2025, arXiv 2511.22677, the recipe behind Z-Image-Turbo):

    x0_real - x0_fake = (x0_c - x0_fake)           distribution matching (DM), the regulariser
                        + (s - 1) (x0_c - x0_u)     CFG augmentation (CA), the engine

Each term gets its own weight and its own re-noising law (:class:`NoiseLaw`): Decoupled DMD draws the DM level over
the whole range and the CA level only below the student's own input time; with one draw for both and weights 1, 1 it
is plain DMD with a guided teacher. Each term is normalised by DMD's per-sample ``mean |x0_hat - x0_real|`` at its own
level (Decoupled DMD normalises their sum once; with two levels there are two such distances).

Per step (the batch, :class:`DMDBatch`, carries every random draw):

1. the student's ``x0_hat`` from ``x_t`` at its training time ``t`` (1 for a one-step student);
2. the generator loss: DM and CA targets at their re-noised levels (teacher and fake score without a graph),
   ``0.5 |x0_hat - sg(x0_hat + w * delta / norm)|^2`` whose gradient is ``-w * delta / norm``; plus an optional
   regression anchor to the teacher's sample of the same noise (:mod:`zlab.distill.regression`);
3. the fake score steps by flow matching on the detached ``x0_hat``, then on fresh student samples, ``fake_updates``
   steps per student step in all (DMD2's two-time-scale rule).

Optional, DMD2's GAN term (``gan_weight`` > 0): LADD's heads (:mod:`zlab.distill.heads`) read the frozen teacher's
tapped blocks at a re-noised level ``t_gan``; the student adds ``gan_weight * -D(x0_hat)`` to its loss (through the
teacher, as in LADD) and the heads step on the hinge loss, the teacher's synthetic samples real, the student's fake.
DMD2 puts its heads on the fake score's features; the teacher's are frozen, so the heads' inputs do not drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from zlab.checks import check_choice, check_range
from zlab.distill import losses
from zlab.distill.heads import pool_text
from zlab.distill.regression import regression_loss
from zlab.distill.schedule import sampler_inputs
from zlab.distill.update import guarded_update
from zlab.flow import add_noise, sample_logit_normal, x0_from_velocity, zimage_velocity

LAWS = ("uniform", "logit_normal")


@dataclass
class NoiseLaw:
    """Where a term re-noises the student's sample: ``tau`` uniform, or ``LogitNormal(m, s)``, mapped into
    ``[low, high]``; ``below_t`` lowers ``high`` to the student's own input time ``t`` of each sample (Decoupled DMD's
    CA law: guidance sharpens what is still to be decided at that step, so it acts on levels cleaner than ``t``)."""

    law: str = "uniform"
    low: float = 0.02
    high: float = 0.98
    m: float = 0.0
    s: float = 1.0
    below_t: bool = False

    def validate(self, name: str) -> None:
        check_choice(f"{name}.law", self.law, LAWS)
        check_range(f"{name}.low", self.low, 0.0, 1.0)
        check_range(f"{name}.high", self.high, self.low, 1.0)
        check_range(f"{name}.m", self.m, -10.0, 10.0)
        check_range(f"{name}.s", self.s, 0.01, 10.0)

    def sample(self, t: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One draw per student time in ``t`` (B,): ``low + (high' - low) u`` with ``u`` uniform or
        ``sigmoid(m + s z)``, and ``high' = min(high, t)`` when ``below_t``."""
        u = torch.rand(len(t), generator=generator) if self.law == "uniform" \
            else sample_logit_normal(len(t), self.m, self.s, generator)
        high = torch.minimum(torch.full_like(t, self.high), t.cpu()) if self.below_t else torch.full_like(t, self.high)
        return (self.low + (high.cpu() - self.low).clamp(min=0) * u).to(t.device)


@dataclass
class DMDOptions:
    """DMD's own settings, the ``[dmd]`` section of a run config."""

    guidance_scale: float = 0.5  # the real score's CFG, diffusers' g (lab s = g + 1); the teacher's sampling.json
    dm_weight: float = 1.0  # distribution matching: x0_c - x0_fake
    ca_weight: float = 1.0  # CFG augmentation: (s - 1)(x0_c - x0_u); 0 with dm_weight 1 = DMD with an unguided teacher
    dm_noise: NoiseLaw = field(default_factory=NoiseLaw)  # DMD2: tau ~ U(0.02, 0.98)
    ca_noise: NoiseLaw = field(default_factory=lambda: NoiseLaw(below_t=True))  # Decoupled DMD: tau below the input's t
    fake_updates: int = 5  # fake-score updates per student update (DMD2's two-time-scale rule)
    fake_noise: NoiseLaw = field(default_factory=lambda: NoiseLaw(low=0.0, high=1.0))  # the fake score's training times
    # the student's training times over zlab.distill.schedule.STUDENT_TIMESTEPS {1, .75, .5, .25}: a one-step student
    # trains at t = 1 only; t < 1 inputs come from its own sampler (backward simulation, DMD2) with probability backward_sim
    student_probs: tuple = (1.0, 0.0, 0.0, 0.0)
    backward_sim: float = 1.0
    regression_weight: float = 0.0  # anchor: |x0_hat - x0|^2 to the teacher's sample of the same noise
    # DMD2's GAN term: LADD's heads on the teacher's blocks gan_blocks at t_gan ~ gan_noise (0 = off)
    gan_weight: float = 0.0
    gan_blocks: tuple = (2, 3)
    gan_noise: NoiseLaw = field(default_factory=lambda: NoiseLaw(law="logit_normal", low=0.0, high=1.0, m=-1.0))

    def validate(self) -> None:
        check_range("dmd.guidance_scale", self.guidance_scale, 0.0, 100.0)
        for name in ("dm_weight", "ca_weight", "regression_weight", "gan_weight"):
            check_range(f"dmd.{name}", getattr(self, name), 0.0, 1000.0)
        if not (self.dm_weight or self.ca_weight or self.regression_weight or self.gan_weight):
            raise ValueError("dmd.dm_weight, dmd.ca_weight, dmd.regression_weight and dmd.gan_weight are all 0: the "
                             "student has no loss")
        if not self.gan_blocks:
            raise ValueError("dmd.gan_blocks must name at least one teacher block")
        check_range("dmd.fake_updates", self.fake_updates, 1, 100)
        check_range("dmd.backward_sim", self.backward_sim, 0.0, 1.0)
        for name in ("dm_noise", "ca_noise", "fake_noise", "gan_noise"):
            getattr(self, name).validate(f"dmd.{name}")
        probs = torch.tensor(self.student_probs, dtype=torch.float64)
        if probs.shape != (4,) or (probs < 0).any() or abs(float(probs.sum()) - 1) > 1e-6:
            raise ValueError(f"dmd.student_probs must be 4 non-negative numbers summing to 1 (for t = 1, .75, .5, .25), "
                             f"got {list(self.student_probs)}")


@dataclass
class DMDBatch:
    """What one step needs: prompts' embeddings (and the empty prompt's), teacher samples, every random draw."""

    x0: Tensor  # the teacher's samples (only the regression anchor reads them)
    embeds: list[Tensor]
    null: list[Tensor]  # the empty prompt's embedding, once per sample (CFG's unconditional branch)
    t: Tensor  # the student's times
    eps: Tensor  # the student's starting noise (the teacher's own noise of x0 with a regression anchor)
    sim_dt: Tensor | None
    tau_dm: Tensor
    eps_dm: Tensor
    tau_ca: Tensor
    eps_ca: Tensor
    fake_seed: int  # seeds the fake score's re-noising draws
    t_gan: Tensor | None = None  # the GAN term's level and noise (drawn only when gan_weight > 0)
    eps_gan: Tensor | None = None


class DMDCritic(nn.Module):
    """DMD's trained judges when the GAN term is on: the fake score and the heads, one module for the run's
    checkpoint and optimizer (without the GAN term the critic is the fake score itself)."""

    def __init__(self, fake: nn.Module, heads: nn.Module):
        super().__init__()
        self.fake, self.heads = fake, heads


def critic_parts(critic: nn.Module) -> tuple[nn.Module, nn.Module | None]:
    """``(fake score, heads or None)`` of a DMD critic: a :class:`DMDCritic`, or a bare fake score."""
    return (critic.fake, critic.heads) if isinstance(critic, DMDCritic) else (critic, None)


def x0_of(model, x: Tensor, t: Tensor, embeds) -> Tensor:
    """A denoiser's clean estimate ``x - t v`` in float32."""
    return x0_from_velocity(x.float(), zimage_velocity(model, x, t, embeds).float(), t)


def student_x0(student, batch: DMDBatch, sampler=None) -> Tensor:
    """DMD step 1: the student's ``x0_hat`` from ``x_t`` (noise at t = 1, or its own sampler's output below)."""
    x_t = sampler_inputs(sampler or student, batch)
    return x0_of(student, x_t, batch.t, batch.embeds)


def teacher_estimates(teacher, x: Tensor, tau: Tensor, embeds, null, s: float) -> tuple[Tensor, Tensor, Tensor]:
    """The teacher's conditional, unconditional and guided clean estimates at ``x_tau``
    (``x0_real = x0_u + s (x0_c - x0_u)``; at ``s = 1`` the unconditional pass is skipped)."""
    cond = x0_of(teacher, x, tau, embeds)
    uncond = x0_of(teacher, x, tau, null) if s != 1.0 else cond
    return cond, uncond, uncond + s * (cond - uncond)


def rms(direction: Tensor) -> float:
    """Mean over samples of a direction's per-sample RMS: how hard a term pushes."""
    return float(direction.float().pow(2).flatten(1).mean(1).sqrt().mean())


def normalised(delta: Tensor, x0_hat: Tensor, x0_real: Tensor) -> Tensor:
    """DMD's normalisation: ``delta / mean |x0_hat - x0_real|`` per sample, so the step size does not depend on how
    far the sample is from the teacher's estimate (Yin et al. 2024, eq. 8)."""
    scale = (x0_hat - x0_real).abs().flatten(1).mean(1).clamp(min=1e-6)
    return delta / scale.view(-1, *([1] * (delta.dim() - 1)))


@torch.no_grad()
def dmd_directions(teacher, fake, x0_hat: Tensor, batch: DMDBatch, options: DMDOptions) -> dict[str, Tensor]:
    """The normalised directions that move ``x0_hat`` towards the teacher: ``"dm"`` (``x0_c - x0_fake`` at
    ``tau_dm``) and ``"ca"`` (``(s - 1)(x0_c - x0_u)`` at ``tau_ca``), each divided by ``mean |x0_hat - x0_real|``
    with ``x0_real = x0_u + s (x0_c - x0_u)`` at its own level. Terms with weight 0 are not computed."""
    s = options.guidance_scale + 1.0
    out = {}
    for name, tau, eps, weight in (("dm", batch.tau_dm, batch.eps_dm, options.dm_weight),
                                   ("ca", batch.tau_ca, batch.eps_ca, options.ca_weight)):
        if not weight:
            continue
        x = add_noise(x0_hat.detach(), eps, tau)
        cond, uncond, real = teacher_estimates(teacher, x, tau, batch.embeds, batch.null, s)
        delta = cond - x0_of(fake, x, tau, batch.embeds) if name == "dm" else (s - 1.0) * (cond - uncond)
        out[name] = normalised(delta, x0_hat.detach().float(), real)
    return out


def generator_loss(x0_hat: Tensor, directions: dict[str, Tensor], batch: DMDBatch, options: DMDOptions) -> Tensor:
    """``sum_k 0.5 w_k |x0_hat - sg(x0_hat + d_k)|^2`` (its gradient is ``-w_k d_k``: a step along each direction)
    plus ``regression_weight * |x0_hat - x0|^2``; means over every element."""
    x0_hat = x0_hat.float()
    loss = x0_hat.new_zeros(())
    for name, weight in (("dm", options.dm_weight), ("ca", options.ca_weight)):
        if name in directions:
            target = (x0_hat + directions[name]).detach()
            loss = loss + weight * 0.5 * (x0_hat - target).pow(2).mean()
    if options.regression_weight:
        loss = loss + options.regression_weight * regression_loss(x0_hat, batch.x0)
    return loss


def fake_score_loss(fake, x0_hat: Tensor, embeds, options: DMDOptions, generator: torch.Generator) -> Tensor:
    """Flow matching on the student's detached samples: ``|v_fake(x_tau) - (eps - x0_hat)|^2`` at
    ``tau ~ fake_noise``, so the fake score learns the student's current distribution."""
    x0 = x0_hat.detach().float()
    tau = options.fake_noise.sample(torch.ones(len(x0)), generator).to(x0.device)
    eps = torch.randn(x0.shape, generator=generator).to(x0.device)
    v = zimage_velocity(fake, add_noise(x0, eps, tau), tau, embeds).float()
    return (v - (eps - x0)).pow(2).mean()


def gan_logits(tap, heads, x0: Tensor, batch: DMDBatch) -> list[Tensor]:
    """The heads' logit maps of ``x0`` re-noised at the batch's ``t_gan`` (the teacher's tapped blocks; a graph
    through the teacher to ``x0`` when grad is on)."""
    x = add_noise(x0, batch.eps_gan, batch.t_gan)
    return heads(tap(x, batch.t_gan, batch.embeds), batch.t_gan, pool_text(batch.embeds).to(x.device))


@dataclass
class DMDStepResult:
    """What one :func:`dmd_step` did: whether the student and the fake score stepped, and the losses."""

    student_ok: bool
    fake_ok: bool
    g_loss: Tensor
    fake_loss: Tensor
    grad_norms: dict[str, float]  # mean per-sample RMS of each normalised direction (how hard each term pushes)
    gan_g_loss: Tensor | None = None  # the GAN term: the student's -D and the heads' hinge loss
    gan_d_loss: Tensor | None = None

    @property
    def ok(self) -> bool:
        return self.student_ok and self.fake_ok


def dmd_step(accelerator, student, critic, teacher, batch: DMDBatch, opt_student, opt_critic, options: DMDOptions,
             fake_batches: list[DMDBatch] = (), grad_clip: float = 1.0, sampler=None, ema=None, tap=None) -> DMDStepResult:
    """One DMD update: the student along the DM and CA directions (the teacher and the fake score frozen, no
    graph through them; with the GAN term also along ``-D`` through the teacher's ``tap``), then the heads' hinge step
    (GAN term only), then the fake score's flow-matching steps: one on this step's detached sample and one on a
    fresh student sample (no graph) of each of ``fake_batches`` (``fake_updates - 1`` of them, DMD2's rule)."""
    fake, heads = critic_parts(accelerator.unwrap_model(critic))
    trained_fake = critic if heads is None else fake  # the prepared module (DDP's gradient sync) when it is the critic
    gan = heads is not None and options.gan_weight > 0
    with accelerator.autocast():
        x0_hat = student_x0(student, batch, sampler)
        directions = dmd_directions(teacher, fake, x0_hat, batch, options)
        g_loss = generator_loss(x0_hat, directions, batch, options)
        if gan:
            heads.requires_grad_(False)  # the student's pass: no gradient lands on the heads
            gan_g = -sum(l.mean() for l in gan_logits(tap, heads, x0_hat.float(), batch))
            heads.requires_grad_(True)
            g_loss = g_loss + options.gan_weight * gan_g
    trained = lambda: [p for p in student.parameters() if p.requires_grad]
    ema_step = (lambda: ema.step([p for p in accelerator.unwrap_model(student).parameters() if p.requires_grad])) \
        if ema is not None else None
    student_ok = guarded_update(accelerator, g_loss, trained, opt_student, grad_clip, after=ema_step)
    gan_d = None
    if gan:
        with accelerator.autocast():
            real = gan_logits(tap, heads, batch.x0.float(), batch)
            gan_d = losses.discriminator_loss(real, gan_logits(tap, heads, x0_hat.detach().float(), batch))
    heads_ok = not gan or guarded_update(accelerator, gan_d, heads.parameters, opt_critic, grad_clip)
    fake_ok, fake_losses = heads_ok, []
    for k, fake_batch in enumerate([batch, *fake_batches]):
        with accelerator.autocast():
            if k:
                with torch.no_grad():
                    x0_hat = student_x0(student, fake_batch, sampler)
            generator = torch.Generator().manual_seed(fake_batch.fake_seed)
            fake_loss = fake_score_loss(trained_fake, x0_hat, fake_batch.embeds, options, generator)
        fake_ok = guarded_update(accelerator, fake_loss, fake.parameters, opt_critic, grad_clip) and fake_ok
        fake_losses.append(fake_loss.detach())
    norms = {k: rms(d) for k, d in directions.items()}
    return DMDStepResult(student_ok, fake_ok, g_loss.detach(), torch.stack(fake_losses).mean(), norms,
                         gan_g.detach() if gan else None, gan_d.detach() if gan else None)
