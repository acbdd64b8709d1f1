"""The LADD trainer: one loop on ``accelerate`` for one process, DDP or FSDP2.

LADD is Sauer et al. 2024, "Fast High-Resolution Image Synthesis with Latent Adversarial Diffusion
Distillation".

Per step:

1. a batch of teacher samples ``x0`` (:class:`zlab.ladd.data.SynthData`) with their prompts;
2. student times ``t`` from {1, .75, .5, .25} (warm-up schedule), ``x_t = (1 - t) x0 + t eps``
   (or, for a ``backward_sim`` fraction of the ``t < 1`` samples, the ``x_t`` that the student's own
   deterministic sampler reaches from ``x_1 = eps``, see :func:`sampler_inputs`);
3. the student's ``x0_hat = x_t - t v``;
4. one fresh ``eps'`` and ``t_hat ~ LogitNormal(m, s)`` re-noise ``x0`` and ``x0_hat`` alike;
5. the frozen teacher's :class:`~zlab.features.FeatureTap` maps of both (``no_grad`` on the real
   path only: the fake path keeps its graph so L_adv reaches the student *through* the teacher);
6. the heads score both; 7-8. the student steps on L_adv (heads frozen for that backward; plus
   an optional regression term to the teacher's sample of the same noise, ``regression_weight``,
   which alone with ``adv_weight = 0`` is the regression-distillation baseline), then the heads step
   on the GAN loss with the fake maps detached.

Several GPUs: ``accelerate launch`` with configs/accelerate-ddp.yaml (replicas) or
configs/accelerate-fsdp.yaml (the student sharded; what changes is in :mod:`zlab.ladd.sharding`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from diffusers import ZImageTransformer2DModel
from torch import Tensor
from tqdm.auto import tqdm

from zlab.features import FeatureTap, PixelFeatureTap
from zlab.flow import add_noise, euler_step, x0_from_velocity, zimage_velocity
from zlab.ladd.data import SOURCES, SynthData, load_buckets
from zlab.ladd.heads import pool_text
from zlab.ladd.losses import (LOSSES, approximate_r1, discriminator_loss, fake_side, generator_loss, head_accuracy,
                              head_calls, mean_calls, real_side)
from zlab.ladd.schedule import FULL_PROBS, WARMUP_PROBS, sample_student_t, sample_t_hat, student_timestep_probs
from zlab.ladd.setup import DTYPES, OPTIMIZERS, build_models, make_ema, make_optimizers
from zlab.ladd.sharding import (all_finite, any_rank, ema_state, gathered_student, load_ema_state, load_optimizer_state,
                                mixed_precision_policy, model_state, optimizer_state, replicate, uses_fsdp)
from zlab.shapes import canvas_size
from zlab.train.config import check_range
from zlab.train.loop import make_accelerator, resume_run, save_checkpoint, seed_everything

MAX_BAD_STEPS = 10
FEATURES = ("teacher", "pixels")


@dataclass
class LADDConfig:
    """One LADD run (``zlab ladd --config configs/shapes-ladd.toml``)."""

    teacher: str = "checkpoints/shapes-teacher"
    data: str = "runs/synth"
    synth_rounds: int = 4  # seeds per train prompt that `zlab synth` draws from the teacher
    synth_sizes: tuple = ()  # aspect buckets (height, width) to synthesise and train at; () = the teacher's size
    steps: int = 1000
    batch_size: int = 32
    student_lr: float = 1e-5
    heads_lr: float = 1e-4
    betas: tuple = (0.0, 0.99)
    grad_clip: float = 1.0
    blocks: tuple = (0, 1, 2, 3)
    head_hidden: int = 64
    head_text_norm: bool = False  # layer-normalise the heads' pooled text (zlab.ladd.heads)
    # the heads read each tapped block's pooled caption tokens beside its image map (zlab.features.beside_caption);
    # mismatched negatives then run the teacher on the real sample under the wrong caption (one more no-grad pass)
    head_caption: bool = False
    loss: str = "hinge"
    t_hat_m: float = 1.0
    t_hat_s: float = 1.0
    warmup_steps: int = 500  # student timesteps p = warmup_probs before this step, full_probs after
    warmup_probs: tuple = WARMUP_PROBS
    full_probs: tuple = FULL_PROBS
    mixed_precision: str = "no"
    seed: int = 0
    checkpoint_every: int = 100
    stochastic_sampling: bool = False  # see configs/shapes-ladd.toml: stock ZImagePipeline would not be seed-reproducible
    choose_sampling: bool = False  # make-student: measure both modes on validation, ship the better (zlab.ladd.sampling_choice)
    ema_decay: float = 0.0  # > 0: the student's weights are averaged (EMA with warm-up) and the average ships
    # Scale (issue 6): weights in bf16, LoRA student sharing the teacher's weights, recomputation, optimizer kind.
    weights_dtype: str = "float32"  # the frozen teacher (and a LoRA student's shared base)
    student_dtype: str = "float32"  # trained parameters: fp32 master weights, so small Adam steps are not rounded away
    lora_rank: int = 0  # 0 = full fine-tuning of a copy of the teacher
    lora_alpha: float = 0.0  # 0 = lora_rank (scale 1)
    lora_targets: tuple = ("to_q", "to_k", "to_v", "to_out.0")
    gradient_checkpointing: bool = False
    optimizer: str = "adam"  # adam, adam_fused, adam8bit (bitsandbytes)
    backward_sim: float = 0.0  # fraction of t < 1 inputs made by the student's own sampler (0 = LADD's noised data)
    # The student's loss: adv_weight * L_adv + regression_weight * |x0_hat - x0|^2. A regression term pairs each
    # teacher sample with the noise it was drawn from (eps of x_t), as regression distillation does (Luhman and
    # Luhman 2021); adv_weight = 0 is that baseline alone (the heads still train, as a probe, on detached features).
    adv_weight: float = 1.0
    regression_weight: float = 0.0
    # The heads: approximate R1 (weight, and the perturbation in units of each real feature map's std) and
    # mismatched-caption negatives (a teacher sample judged under another prompt's caption counts as fake).
    r1_weight: float = 0.0
    r1_sigma: float = 0.1
    mismatch_weight: float = 0.0
    # The heads' features: the teacher's own blocks on noised latents (LADD), or ("pixels") a frozen discriminative
    # network on clean decoded images, ADD's recipe with ShapesNet in DINOv2's place; blocks then index its convs.
    features: str = "teacher"
    features_net: str = "checkpoints/shapes-net"
    # The real side: the teacher's own samples (LADD's synthetic data) or "renders" of the world, encoded by its VAE.
    real: str = "teacher"
    # Where the student starts: "" = a copy of the teacher (LADD), or a pipeline folder whose transformer has the
    # teacher's architecture (e.g. the regression student, so LADD fine-tunes a student that already keeps the modes)
    student_init: str = ""

    def validate(self) -> None:
        check_range("steps", self.steps, 1, 10**7)
        check_range("synth_rounds", self.synth_rounds, 1, 1000)
        for size in self.synth_sizes:
            canvas_size(size)  # (height, width), multiples of 16
        check_range("batch_size", self.batch_size, 1, 4096)
        check_range("student_lr", self.student_lr, 0.0, 1.0)
        check_range("heads_lr", self.heads_lr, 0.0, 1.0)
        check_range("t_hat_s", self.t_hat_s, 0.01, 10.0)
        check_range("t_hat_m", self.t_hat_m, -10.0, 10.0)
        check_range("backward_sim", self.backward_sim, 0.0, 1.0)
        check_range("adv_weight", self.adv_weight, 0.0, 1000.0)
        check_range("regression_weight", self.regression_weight, 0.0, 1000.0)
        check_range("r1_weight", self.r1_weight, 0.0, 1e6)
        check_range("r1_sigma", self.r1_sigma, 1e-4, 10.0)
        check_range("mismatch_weight", self.mismatch_weight, 0.0, 1000.0)
        if not self.adv_weight and not self.regression_weight:
            raise ValueError("adv_weight and regression_weight are both 0: the student would have no loss")
        check_range("ema_decay", self.ema_decay, 0.0, 0.99999)
        check_range("lora_rank", self.lora_rank, 0, 4096)
        for key in ("weights_dtype", "student_dtype"):
            if getattr(self, key) not in DTYPES:
                raise ValueError(f"{key} must be one of {tuple(DTYPES)}, got {getattr(self, key)!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        check_range("warmup_steps", self.warmup_steps, 0, 10**7)
        if self.real not in SOURCES:
            raise ValueError(f"real must be one of {SOURCES}, got {self.real!r}")
        if self.real == "renders" and self.regression_weight:
            raise ValueError("regression_weight needs the teacher's samples (real = \"teacher\"): a render has no "
                             "starting noise to regress from")
        if self.features not in FEATURES:
            raise ValueError(f"features must be one of {FEATURES}, got {self.features!r}")
        if self.student_init and self.lora_rank:
            raise ValueError("student_init starts a full student from other weights; a LoRA student (lora_rank > 0) "
                             "shares the teacher's")
        if self.head_caption and self.features != "teacher":
            raise ValueError("head_caption reads the teacher's caption tokens: it needs features = \"teacher\"")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.mixed_precision not in ("no", "bf16"):
            raise ValueError(f"mixed_precision must be 'no' or 'bf16', got {self.mixed_precision!r}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if not self.blocks:
            raise ValueError("blocks must name at least one teacher block to tap")
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


def draw_batch(data: SynthData | list[SynthData], config: LADDConfig, step: int, generator: torch.Generator,
               device: torch.device | str = "cpu") -> LADDBatch:
    """Sample a batch and all of its noise (student t, eps, t_hat, eps') from ``generator``. With several
    aspect buckets (:func:`~zlab.ladd.data.load_buckets`), each batch comes from one, drawn uniformly."""
    if isinstance(data, list):
        data = data[int(torch.randint(len(data), (1,), generator=generator))] if len(data) > 1 else data[0]
    n = config.batch_size
    idx = torch.randint(len(data), (n,), generator=generator)
    x0 = data.latents[idx]
    embeds = [data.embeds[i] for i in data.prompt_index[idx].tolist()]
    t = sample_student_t(n, step, config.warmup_steps, generator, warmup=config.warmup_probs, full=config.full_probs)
    eps = torch.randn(x0.shape, generator=generator)
    if config.regression_weight:  # x_t on the teacher's own path from noise to x0 (drawn above all the same,
        eps = data.initial_noise(idx)  # so every other draw stays what it is without the regression term)
    t_hat = sample_t_hat(n, config.t_hat_m, config.t_hat_s, generator)
    eps_hat = torch.randn(x0.shape, generator=generator)
    # Backward simulation: t = .75 and .25 are reached by the 4-step sampler, t = .5 by the 2- or 4-step one.
    simulate = (torch.rand(n, generator=generator) < config.backward_sim) & (t < 1)
    two_step = (t == 0.5) & (torch.rand(n, generator=generator) < 0.5)
    sim_dt = torch.where(simulate, torch.where(two_step, 0.5, 0.25), 0.0)
    to = lambda x: x.to(device)
    text = pool_text(embeds)
    wrong_text = wrong = r1_seed = None
    if config.mismatch_weight:  # each sample under its neighbour's caption (no draw: the batch is already random)
        wrong_text, wrong = text.roll(1, 0), (data.prompt_index[idx] != data.prompt_index[idx].roll(1)).float()
    if config.r1_weight:
        r1_seed = int(torch.randint(2**62, (1,), generator=generator))
    return LADDBatch(to(x0), [to(e) for e in embeds], to(text), to(t), to(eps), to(t_hat), to(eps_hat), to(sim_dt),
                     wrong_text=None if wrong_text is None else to(wrong_text), wrong=None if wrong is None else to(wrong),
                     r1_seed=r1_seed)


def neighbour_captions(embeds: list[Tensor]) -> list[Tensor]:
    """Each sample's neighbour's caption embeddings: the roll by one that :func:`draw_batch` applies to the pooled
    text (``wrong_text``) for mismatched negatives."""
    return embeds[-1:] + embeds[:-1]


@torch.no_grad()
def sampler_inputs(student, batch: LADDBatch) -> Tensor:
    """``x_t`` for the student, where samples with ``sim_dt > 0`` get what its own sampler feeds it at ``t``.

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


def student_loss(fwd: LADDForward, heads, batch: LADDBatch, config: LADDConfig) -> Tensor:
    """``adv_weight * L_adv + regression_weight * mean |x0_hat - x0|^2`` (the heads frozen by the caller)."""
    loss = fwd.x0_hat.new_zeros((), dtype=torch.float32)
    if config.adv_weight:
        loss = loss + config.adv_weight * generator_loss([l.float() for l in heads(fwd.fake_maps, batch.t_hat, batch.text)],
                                                         config.loss)
    if config.regression_weight:
        loss = loss + config.regression_weight * (fwd.x0_hat.float() - batch.x0.float()).pow(2).mean()
    return loss


def load_teacher(path_or_id: str, dtype: str = "float32") -> ZImageTransformer2DModel:
    """The teacher transformer alone, from a pipeline folder or hub id (the text encoder and VAE are
    not needed: ``zlab synth`` stored the prompt embeddings next to the latents)."""
    return ZImageTransformer2DModel.from_pretrained(path_or_id, subfolder="transformer", torch_dtype=DTYPES[dtype])


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


def heads_inputs(fwd: LADDForward, batch: LADDBatch, r1_sigma: float = 0.1) -> tuple[list[Tensor], Tensor, Tensor]:
    """The heads' batch: real maps, detached fake maps, then (if asked) the real maps under the wrong
    captions (with a caption tap, the teacher's maps of the real sample under them) and the real maps
    perturbed for approximate R1 (noise of ``r1_sigma`` times each map's std), each part with its t_hat and
    pooled text."""
    parts = [(fwd.real_maps, batch.text), ([f.detach() for f in fwd.fake_maps], batch.text)]
    if batch.wrong_text is not None:
        parts.append((fwd.wrong_maps or fwd.real_maps, batch.wrong_text))
    if batch.r1_seed is not None:
        generator = torch.Generator(batch.t_hat.device).manual_seed(batch.r1_seed)
        parts.append(([r + r1_sigma * r.std() * torch.randn(r.shape, generator=generator, device=r.device, dtype=r.dtype)
                       for r in fwd.real_maps], batch.text))
    maps = [torch.cat([part[k] for part, _ in parts]) for k in range(len(fwd.real_maps))]
    return maps, batch.t_hat.repeat(len(parts)), torch.cat([text for _, text in parts])


def heads_loss(disc, fwd: LADDForward, batch: LADDBatch, config: LADDConfig) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """The heads' loss ``(d_loss, real logits, fake logits)``: real vs fake, plus the mismatched-caption negatives
    and approximate R1 when the batch carries them, from one forward of the heads over every part (DDP-safe).

    Mismatched negatives (weight ``w``) share the fake side: ``real + (fake + w wrong) / (1 + w)``, as matching-aware
    discriminators weigh them (Reed et al. 2016). Added on top instead, a head that cannot yet tell a sample under
    its own caption from under another's (or real from fake, once the student is good) pays least by calling every
    input fake, where the hinge is flat and passes the student nothing: the dead heads of the first recipe."""
    n = len(batch.t_hat)
    logits = [l.float() for l in disc(*heads_inputs(fwd, batch, config.r1_sigma))]
    real, fake = [l[:n] for l in logits], [l[n:2 * n] for l in logits]
    rest = [l[2 * n:] for l in logits]
    if batch.wrong is None:
        d_loss = discriminator_loss(real, fake, config.loss)
    else:  # the negatives share the fake side's weight; a neighbour with the same prompt is no negative (weight 0)
        wrong = fake_side([l[:n] for l in rest], config.loss, batch.wrong)
        w = config.mismatch_weight
        d_loss = real_side(real, config.loss) + (fake_side(fake, config.loss) + w * wrong) / (1 + w)
        rest = [l[n:] for l in rest]
    if batch.r1_seed is not None:
        d_loss = d_loss + config.r1_weight * approximate_r1(real, rest)
    return d_loss, real, fake


def ladd_step(accelerator, student, disc, heads, tap: FeatureTap, batch: LADDBatch, opt_student, opt_heads,
              config: LADDConfig, sampler=None, ema=None) -> StepResult:
    """One LADD update (steps 2-8 of the module docstring) of the (DDP- or FSDP-prepared, or plain) ``student`` and heads.

    The student steps on L_adv with the heads frozen (``heads`` is the unwrapped ``disc``: no DDP
    sync for that backward, and no gradient for the heads); then the heads step on real vs detached fake, one forward over both halves. A non-finite loss on any rank
    skips its update on every rank and leaves those weights as they were: a non-finite L_adv skips both
    updates (``student_ok`` False); a non-finite heads loss after a good student step skips only the
    heads (``heads_ok`` False), and the student and its EMA have moved.
    """
    with accelerator.autocast():
        fwd = ladd_forward(student, tap, batch, sampler=sampler, adversarial=bool(config.adv_weight))
        heads.requires_grad_(False)
        g_loss = student_loss(fwd, heads, batch, config)
    heads.requires_grad_(True)
    ok = all_finite(accelerator, g_loss)  # every rank skips together: a backward alone would wait for the others
    if ok:
        accelerator.backward(g_loss)
        accelerator.clip_grad_norm_([p for p in student.parameters() if p.requires_grad], config.grad_clip)
        opt_student.step()
        if ema is not None:
            ema.step([p for p in accelerator.unwrap_model(student).parameters() if p.requires_grad])
    opt_student.zero_grad(set_to_none=True)
    with accelerator.autocast():
        d_loss, real, fake = heads_loss(disc, fwd, batch, config)
    heads_ok = ok and all_finite(accelerator, d_loss)
    if heads_ok:
        accelerator.backward(d_loss)
        accelerator.clip_grad_norm_(disc.parameters(), config.grad_clip)
        opt_heads.step()
    opt_heads.zero_grad(set_to_none=True)
    return StepResult(ok, heads_ok, g_loss.detach(), d_loss.detach(), real, fake)


def prepare(accelerator, config: LADDConfig, models, sharded: bool = False):
    """``(student, disc, opt_student, opt_heads, ema)`` ready for :func:`ladd_step` on ``accelerator``.

    ``sharded`` (:func:`~zlab.ladd.sharding.uses_fsdp`, asked before any ``prepare``): accelerate's
    FSDP2 shards the student with its optimizer, one transformer block per unit, with zlab's
    :func:`~zlab.ladd.sharding.mixed_precision_policy`; the small heads are
    replicated with DDP (:func:`~zlab.ladd.sharding.replicate`). The EMA is built afterwards, so under
    FSDP its shadow weights are shards like the parameters.
    """
    opt_student, opt_heads = make_optimizers(config, models)
    if sharded:
        accelerator.state.fsdp_plugin.mixed_precision_policy = mixed_precision_policy(accelerator)
    student, opt_student = accelerator.prepare(models.student, opt_student)
    if sharded:
        disc = replicate(accelerator, models.disc)
    else:
        disc, opt_heads = accelerator.prepare(models.disc, opt_heads)
    return student, disc, opt_student, opt_heads, make_ema(config, models.trainable())


def train_ladd(config: LADDConfig, run_dir: str | Path, resume: bool = False, progress: bool = True,
               callback=None, callback_every: int = 0):
    """Train (or resume) a LADD student in ``run_dir``; returns ``(student transformer, discriminator, log)``.

    The student returned is the one that ships: EMA weights when ``ema_decay > 0``, a LoRA adapter
    merged into the weights when ``lora_rank > 0``. ``callback(step, student, discriminator)`` runs
    on the main process after every ``callback_every`` steps (and before the first), e.g. to draw
    samples over training (lab 05). Under FSDP the student is gathered into a whole, unsharded
    module on the main process; the other ranks get None for the student and the heads.
    """
    run_dir = Path(run_dir)
    accelerator = make_accelerator(config.mixed_precision)
    sharded = uses_fsdp(accelerator, config)
    seed_everything(config.seed)
    data = load_buckets(config.data)  # one synth folder, or one per aspect bucket
    models = build_models(config, load_teacher(config.teacher, config.weights_dtype).to(accelerator.device),
                          data[0].embeds[0].shape[-1])
    # Every rank draws its own batch (seed + rank); DDP/FSDP average the gradients, so weights stay equal.
    generator = torch.Generator().manual_seed(config.seed + 1000 * accelerator.process_index)

    step, _, state = resume_run(run_dir, config, resume, student=models, discriminator=models.disc)
    student_ddp, disc_ddp, opt_student, opt_heads, ema = prepare(accelerator, config, models, sharded)
    heads = accelerator.unwrap_model(disc_ddp)
    names = [name for name, p in accelerator.unwrap_model(student_ddp).named_parameters() if p.requires_grad]
    log = state["log"] if state else {"d_loss": [], "g_loss": [], "head_acc": [], "skipped": [], "heads_skipped": []}
    log.setdefault("heads_skipped", [])  # checkpoints from before the two were told apart
    log.setdefault("head_calls", [])  # checkpoints from before real and fake calls were logged apart
    if state is not None:
        generator.set_state(state["generators"][accelerator.process_index])
        load_optimizer_state(sharded, student_ddp, opt_student, names, state["opt_student"])
        opt_heads.load_state_dict(state["opt_heads"])
        if ema is not None:
            load_ema_state(ema, state["ema"])
        del state  # for a 6B student: ~100 GB of weights, Adam and EMA (memory-mapped, but referenced)
    bar = tqdm(total=config.steps, initial=step, desc="ladd", disable=not progress or not accelerator.is_main_process)

    def checkpoint():
        # Gathering is collective: every rank takes part, the main process writes.
        generators = accelerator.gather(generator.get_state().to(accelerator.device)[None]).cpu()  # a row per rank
        saved = {"student": models.state_dict(model_state(sharded, accelerator, student_ddp)),
                 "discriminator": heads.state_dict(), "opt_heads": opt_heads.state_dict(),  # replicated
                 "opt_student": optimizer_state(sharded, student_ddp, opt_student, names),
                 **({"ema": ema_state(ema, keep=accelerator.is_main_process)} if ema else {})}
        if accelerator.is_main_process:
            save_checkpoint(run_dir, {"config": asdict(config), "step": step, "losses": [], "log": log,
                                      "generators": [g.clone() for g in generators], **saved})

    def shipped(in_place: bool = False):
        if sharded:
            return gathered_student(accelerator, student_ddp, ema), heads if accelerator.is_main_process else None
        return models.shipped(ema, in_place=in_place), heads

    def notify():
        if not callback_every or step % callback_every:
            return
        # Under FSDP every rank takes part in gathering the student, whether or not it has a callback.
        wanted = accelerator.is_main_process and callback is not None
        student, disc = shipped() if sharded or wanted else (None, None)
        if wanted:
            callback(step, student, disc)

    bad = 0
    notify()
    while step < config.steps:
        batch = draw_batch(data, config, step, generator, accelerator.device)
        result = ladd_step(accelerator, student_ddp, disc_ddp, heads, models.tap, batch, opt_student, opt_heads,
                           config, sampler=accelerator.unwrap_model(student_ddp), ema=ema)
        bad = 0 if result.ok else bad + 1
        if not result.student_ok:
            log["skipped"].append(step)  # nothing moved
        elif not result.heads_ok:
            log["heads_skipped"].append(step)  # the student and its EMA moved, the heads did not
        if bad >= MAX_BAD_STEPS:
            raise FloatingPointError(f"{bad} non-finite LADD steps in a row at step {step}; resume from the "
                                     f"last checkpoint in {run_dir} with lower learning rates")
        step += 1
        log["d_loss"].append(result.d_loss.item())
        log["g_loss"].append(result.g_loss.item())
        log["head_acc"].append(head_accuracy(result.real, result.fake))
        log["head_calls"].append(head_calls(result.real, result.fake))
        bar.update(1)
        bar.set_postfix(D=f"{sum(log['d_loss'][-20:]) / len(log['d_loss'][-20:]):.3f}",
                        G=f"{sum(log['g_loss'][-20:]) / len(log['g_loss'][-20:]):.3f}",
                        real_fake=" ".join(f"{r:.2f}:{f:.2f}" for r, f in mean_calls(log["head_calls"], last=20)))
        if step % config.checkpoint_every == 0 or step == config.steps:
            checkpoint()
        notify()
    bar.close()
    del opt_student, opt_heads  # free Adam's state before the student is turned into the shipped model
    accelerator.free_memory()
    student, disc = shipped(in_place=True)
    return (student.eval() if student is not None else None), (disc.eval() if disc is not None else None), log
