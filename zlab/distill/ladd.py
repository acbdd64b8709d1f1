"""LADD, the method: one step of latent adversarial diffusion distillation over a prepared batch.

LADD is Sauer et al. 2024, "Fast High-Resolution Image Synthesis with Latent Adversarial Diffusion Distillation".
Per step (the batch, :class:`LADDBatch`, carries every random draw; :func:`zlab.train.ladd.draw_batch` makes it):

1. teacher samples ``x0`` with their prompts;
2. student times ``t`` from {1, .75, .5, .25}, ``x_t = (1 - t) x0 + t eps`` (or, for a ``backward_sim`` share of
   the ``t < 1`` samples, the ``x_t`` that the student's own deterministic sampler reaches from ``x_1 = eps``,
   :func:`zlab.distill.schedule.sampler_inputs`);
3. the student's ``x0_hat = x_t - t v``;
4. one fresh ``eps'`` and ``t_hat ~ LogitNormal(m, s)`` re-noise ``x0`` and ``x0_hat`` alike;
5. the frozen teacher's :class:`~zlab.features.FeatureTap` maps of both (``no_grad`` on the real path only: the
   fake path keeps its graph so L_adv reaches the student *through* the teacher);
6. the heads (:mod:`zlab.distill.heads`) score both;
7. the student steps on ``adv_weight * L_adv`` (heads frozen for that backward) plus an optional
   ``regression_weight * |x0_hat - x0|^2`` (:mod:`zlab.distill.regression`);
8. the heads step on the GAN loss (:mod:`zlab.distill.losses`) with the fake maps detached.

The step reads the method's settings, :class:`LADDOptions` (a run config's ``[ladd]`` section). It knows no run
plumbing beyond ``accelerate``'s backward and autocast, and no Shapes world: a Shapes-trained critic reaches it as a feature tap.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from zlab.checks import check_choice, check_range
from zlab.distill.losses import LOSSES, approximate_r1, discriminator_loss, fake_side, generator_loss, real_side
from zlab.distill.regression import regression_loss
from zlab.distill.schedule import FULL_PROBS, WARMUP_PROBS, sampler_inputs, student_timestep_probs
from zlab.distill.update import guarded_update
from zlab.features import FeatureTap, PixelFeatureTap
from zlab.flow import add_noise, x0_from_velocity, zimage_velocity

FEATURES = ("teacher", "pixels")


@dataclass
class LADDOptions:
    """LADD's own settings, the ``[ladd]`` section of a run config."""

    # The heads: which blocks they tap, their width, and what they read beside each map.
    blocks: tuple = (0, 1, 2, 3)
    head_hidden: int = 64
    head_text_norm: bool = False  # layer-normalise the heads' pooled text (zlab.distill.heads)
    # the heads read each tapped block's pooled caption tokens beside its image map (zlab.features.beside_caption);
    # mismatched negatives then run the teacher on the real sample under the wrong caption (one more no-grad pass)
    head_caption: bool = False
    # each head also gives one logit for the whole image, added to every position (zlab.distill.heads, whole=True):
    # "one clean object with the named attributes" is a property of the image, not of a patch
    head_whole: bool = False
    # The heads' features: the teacher's own blocks on noised latents (LADD), or ("pixels") a frozen discriminative
    # network on clean decoded images, ADD's recipe with ShapesNet in DINOv2's place; blocks then index its convs.
    features: str = "teacher"
    features_net: str = "checkpoints/shapes-net"
    loss: str = "hinge"  # or "non-saturating" (zlab.distill.losses)
    t_hat_m: float = 1.0  # t_hat ~ LogitNormal(m, s): where the heads judge
    t_hat_s: float = 1.0
    warmup_steps: int = 500  # student timesteps p = warmup_probs before this step, full_probs after
    warmup_probs: tuple = WARMUP_PROBS
    full_probs: tuple = FULL_PROBS
    backward_sim: float = 0.0  # share of t < 1 inputs made by the student's own sampler (0 = LADD's noised data)
    # The student's loss: adv_weight * L_adv + regression_weight * |x0_hat - x0|^2. A regression term pairs each
    # teacher sample with the noise it was drawn from (eps of x_t), as regression distillation does (Luhman and
    # Luhman 2021); adv_weight = 0 is that baseline alone (the heads still train, as a probe, on detached features).
    adv_weight: float = 1.0
    regression_weight: float = 0.0
    # The heads' extras: approximate R1 (weight, and the perturbation in units of each real feature map's std) and
    # mismatched-caption negatives (a teacher sample judged under another prompt's caption counts as fake).
    r1_weight: float = 0.0
    r1_sigma: float = 0.1
    mismatch_weight: float = 0.0

    def validate(self) -> None:
        for name, low, high in (("t_hat_s", 0.01, 10.0), ("t_hat_m", -10.0, 10.0), ("backward_sim", 0.0, 1.0),
                                ("adv_weight", 0.0, 1000.0), ("regression_weight", 0.0, 1000.0), ("r1_weight", 0.0, 1e6),
                                ("r1_sigma", 1e-4, 10.0), ("mismatch_weight", 0.0, 1000.0), ("warmup_steps", 0, 10**7)):
            check_range(f"ladd.{name}", getattr(self, name), low, high)
        if not self.adv_weight and not self.regression_weight:
            raise ValueError("ladd.adv_weight and ladd.regression_weight are both 0: the student would have no loss")
        check_choice("ladd.features", self.features, FEATURES)
        check_choice("ladd.loss", self.loss, LOSSES)
        if self.head_caption and self.features != "teacher":
            raise ValueError("ladd.head_caption reads the teacher's caption tokens: it needs ladd.features = \"teacher\"")
        if not self.blocks:
            raise ValueError("ladd.blocks must name at least one teacher block to tap")
        student_timestep_probs(0, 1, self.warmup_probs, self.full_probs)
        student_timestep_probs(1, 0, self.warmup_probs, self.full_probs)


@dataclass
class LADDBatch:
    """What one step needs: teacher samples, their prompts' embeddings, and every random draw."""

    x0: Tensor
    embeds: list[Tensor]
    text: Tensor
    t: Tensor
    eps: Tensor
    t_hat: Tensor
    eps_hat: Tensor
    sim_dt: Tensor | None = None  # per sample: 0 = x_t is noised data; 1/N = from the student's own N-step sampler
    wrong_text: Tensor | None = None  # mismatched negatives: each sample's pooled text replaced by another prompt's
    wrong: Tensor | None = None  # (B,) 1 where that other prompt really differs, else 0
    r1_seed: int | None = None  # seeds the approximate-R1 perturbation of the real feature maps


@dataclass
class LADDForward:
    """One forward pass of LADD: the student's estimate and both paths' teacher features."""

    x0_hat: Tensor
    real_maps: list[Tensor]
    fake_maps: list[Tensor]
    wrong_maps: list[Tensor] | None = None  # caption taps: the real sample's maps under the mismatched caption


def neighbour_captions(embeds: list[Tensor]) -> list[Tensor]:
    """Each sample's neighbour's caption embeddings: the roll by one that :func:`draw_batch` applies to the pooled
    text (``wrong_text``) for mismatched negatives."""
    return embeds[-1:] + embeds[:-1]


def ladd_forward(student, tap: FeatureTap | PixelFeatureTap, batch: LADDBatch, sampler=None, adversarial: bool = True) -> LADDForward:
    """LADD steps 2-5: noise, denoise with the student, re-noise both, tap the teacher.

    ``sampler`` is the unwrapped student used for backward simulation (defaults to ``student``).
    ``adversarial=False`` (no L_adv for the student): the fake path runs without a graph too.
    """
    x_t = sampler_inputs(sampler or student, batch)
    x0_hat = x0_from_velocity(x_t, zimage_velocity(student, x_t, batch.t, batch.embeds), batch.t)
    renoise = (lambda x: add_noise(x, batch.eps_hat, batch.t_hat)) if getattr(tap, "noised", True) else (lambda x: x)
    wrong_maps = None
    with torch.no_grad():
        real = renoise(batch.x0)
        real_maps = tap(real, batch.t_hat, batch.embeds)
        if batch.wrong is not None and getattr(tap, "caption", False):  # the teacher reads the wrong caption itself
            wrong_maps = tap(real, batch.t_hat, neighbour_captions(batch.embeds))
    with torch.set_grad_enabled(adversarial and torch.is_grad_enabled()):
        fake_maps = tap(renoise(x0_hat), batch.t_hat, batch.embeds)
    return LADDForward(x0_hat, real_maps, fake_maps, wrong_maps)


def student_loss(fwd: LADDForward, heads, batch: LADDBatch, options: LADDOptions) -> Tensor:
    """``adv_weight * L_adv + regression_weight * mean |x0_hat - x0|^2`` (the heads frozen by the caller)."""
    loss = fwd.x0_hat.new_zeros((), dtype=torch.float32)
    if options.adv_weight:
        fake = [l.float() for l in heads(fwd.fake_maps, batch.t_hat, batch.text)]
        loss = loss + options.adv_weight * generator_loss(fake, options.loss)
    if options.regression_weight:
        loss = loss + options.regression_weight * regression_loss(fwd.x0_hat, batch.x0)
    return loss


@dataclass
class StepResult:
    """What one :func:`ladd_step` did: ``student_ok`` (the student and its EMA stepped) and ``heads_ok``
    (the heads stepped too); the losses and the heads' logits on real and fake."""

    student_ok: bool
    heads_ok: bool
    g_loss: Tensor
    d_loss: Tensor
    real: list[Tensor]
    fake: list[Tensor]

    @property
    def ok(self) -> bool:
        """Both updates happened."""
        return self.student_ok and self.heads_ok


@dataclass
class HeadsInput:
    """One named part of the heads' batch: feature maps (one per head) under a t_hat and a pooled caption."""

    maps: list[Tensor]
    t_hat: Tensor
    text: Tensor


def heads_inputs(fwd: LADDForward, batch: LADDBatch, r1_sigma: float = 0.1) -> dict[str, HeadsInput]:
    """The heads' batch by name: ``real`` maps, detached ``fake`` maps, then, when the batch asks for them, ``wrong``
    (the real maps under the mismatched captions; with a caption tap, the teacher's maps of the real sample under
    them) and ``r1`` (the real maps perturbed by noise of ``r1_sigma`` times each map's std)."""
    parts = {"real": HeadsInput(fwd.real_maps, batch.t_hat, batch.text),
             "fake": HeadsInput([f.detach() for f in fwd.fake_maps], batch.t_hat, batch.text)}
    if batch.wrong_text is not None:
        parts["wrong"] = HeadsInput(fwd.wrong_maps or fwd.real_maps, batch.t_hat, batch.wrong_text)
    if batch.r1_seed is not None:
        generator = torch.Generator(batch.t_hat.device).manual_seed(batch.r1_seed)
        noise = lambda r: r1_sigma * r.std() * torch.randn(r.shape, generator=generator, device=r.device, dtype=r.dtype)
        parts["r1"] = HeadsInput([r + noise(r) for r in fwd.real_maps], batch.t_hat, batch.text)
    return parts


def heads_logits(disc, parts: dict[str, HeadsInput]) -> dict[str, list[Tensor]]:
    """Every part's logits (float32, one map per head) from *one* forward of the heads over all parts: under DDP a
    module runs once per backward."""
    names = list(parts)
    maps = [torch.cat([parts[name].maps[k] for name in names]) for k in range(len(parts[names[0]].maps))]
    logits = disc(maps, torch.cat([parts[name].t_hat for name in names]), torch.cat([parts[name].text for name in names]))
    sizes = [len(parts[name].t_hat) for name in names]
    split = [l.float().split(sizes) for l in logits]
    return {name: [per_head[i] for per_head in split] for i, name in enumerate(names)}


def heads_loss(disc, fwd: LADDForward, batch: LADDBatch, options: LADDOptions) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """The heads' loss ``(d_loss, real logits, fake logits)``: real vs fake, plus the mismatched-caption negatives
    and approximate R1 when the batch carries them.

    Mismatched negatives (weight ``w``) share the fake side: ``real + (fake + w wrong) / (1 + w)``, as matching-aware
    discriminators weigh them (Reed et al. 2016). Added on top instead, a head that cannot yet tell a sample under
    its own caption from under another's (or real from fake, once the student is good) pays least by calling every
    input fake (each negative of logit ``a`` adds ``w relu(1 + a)``, so the loss falls as ``a`` does): the dead heads of
    the first recipe. The student's ``L_G = -D`` still has a gradient there, but it points wherever the head's logit
    rises, which no longer means "more like the teacher's samples"."""
    logits = heads_logits(disc, heads_inputs(fwd, batch, options.r1_sigma))
    real, fake = logits["real"], logits["fake"]
    if "wrong" in logits:  # a neighbour with the same prompt is no negative (weight 0)
        wrong = fake_side(logits["wrong"], options.loss, batch.wrong)
        w = options.mismatch_weight
        d_loss = real_side(real, options.loss) + (fake_side(fake, options.loss) + w * wrong) / (1 + w)
    else:
        d_loss = discriminator_loss(real, fake, options.loss)
    if "r1" in logits:
        d_loss = d_loss + options.r1_weight * approximate_r1(real, logits["r1"])
    return d_loss, real, fake


def ladd_step(accelerator, student, disc, heads, tap: FeatureTap, batch: LADDBatch, opt_student, opt_heads,
              options: LADDOptions, grad_clip: float = 1.0, sampler=None, ema=None) -> StepResult:
    """One LADD update (steps 2-8 of the module docstring) of the (DDP- or FSDP-prepared, or plain) ``student`` and heads.

    The student steps on L_adv with the heads frozen (``heads`` is the unwrapped ``disc``: no DDP
    sync for that backward, and no gradient for the heads); then the heads step on real vs detached fake, one forward over both halves. A non-finite loss on any rank
    skips its update on every rank and leaves those weights as they were: a non-finite L_adv skips both
    updates (``student_ok`` False); a non-finite heads loss after a good student step skips only the
    heads (``heads_ok`` False), and the student and its EMA have moved.
    """
    with accelerator.autocast():
        fwd = ladd_forward(student, tap, batch, sampler=sampler, adversarial=bool(options.adv_weight))
        heads.requires_grad_(False)
        g_loss = student_loss(fwd, heads, batch, options)
    heads.requires_grad_(True)
    trained = lambda: [p for p in student.parameters() if p.requires_grad]
    ema_step = (lambda: ema.step([p for p in accelerator.unwrap_model(student).parameters() if p.requires_grad])) \
        if ema is not None else None
    ok = guarded_update(accelerator, g_loss, trained, opt_student, grad_clip, after=ema_step)
    with accelerator.autocast():
        d_loss, real, fake = heads_loss(disc, fwd, batch, options)
    heads_ok = guarded_update(accelerator, d_loss, disc.parameters, opt_heads, grad_clip, enabled=ok)
    return StepResult(ok, heads_ok, g_loss.detach(), d_loss.detach(), real, fake)
