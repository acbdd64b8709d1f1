"""The LADD trainer: the run plumbing around :func:`zlab.distill.ladd.ladd_step`, on ``accelerate`` for one process,
DDP or FSDP2.

What a run adds to the method: its config (:class:`LADDConfig`), batches of the teacher's synthetic samples with every
random draw (:func:`draw_batch`, from :class:`zlab.train.synth.SynthData`), the models it holds
(:mod:`zlab.train.models`: bf16 weights, a LoRA student sharing the teacher, EMA, optimizers), atomic checkpoints with
exact resume, and the shipped student.

Several GPUs: ``accelerate launch`` with configs/accelerate-ddp.yaml (replicas) or
configs/accelerate-fsdp.yaml (the student sharded; what changes is in :mod:`zlab.train.sharding`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from diffusers import ZImageTransformer2DModel

from zlab.distill.heads import pool_text
from zlab.distill.ladd import LADDBatch, ladd_step
from zlab.distill.losses import LOSSES, head_accuracy, head_calls, mean_calls
from zlab.distill.schedule import FULL_PROBS, WARMUP_PROBS, sample_student_t, sample_t_hat, student_timestep_probs
from zlab.shapes.world import canvas_size
from zlab.train.config import check_range
from zlab.train.loop import fit, make_accelerator, resume_run, seed_everything
from zlab.train.models import DTYPES, OPTIMIZERS, build_models, make_ema, make_optimizers
from zlab.train.sharding import (ema_state, gathered_student, load_ema_state, load_optimizer_state, mixed_precision_policy, model_state, optimizer_state, replicate, uses_fsdp)
from zlab.train.synth import SOURCES, SynthData, load_buckets

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
    head_text_norm: bool = False  # layer-normalise the heads' pooled text (zlab.distill.heads)
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
    choose_sampling: bool = False  # make-student: measure both modes on validation, ship the better (zlab.recipes.sampling_choice)
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


def draw_batch(data: SynthData | list[SynthData], config: LADDConfig, step: int, generator: torch.Generator,
               device: torch.device | str = "cpu") -> LADDBatch:
    """Sample a batch and all of its noise (student t, eps, t_hat, eps') from ``generator``. With several
    aspect buckets (:func:`~zlab.train.synth.load_buckets`), each batch comes from one, drawn uniformly."""
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


def load_teacher(path_or_id: str, dtype: str = "float32") -> ZImageTransformer2DModel:
    """The teacher transformer alone, from a pipeline folder or hub id (the text encoder and VAE are
    not needed: ``zlab synth`` stored the prompt embeddings next to the latents)."""
    return ZImageTransformer2DModel.from_pretrained(path_or_id, subfolder="transformer", torch_dtype=DTYPES[dtype])


def prepare(accelerator, config: LADDConfig, models, sharded: bool = False):
    """``(student, disc, opt_student, opt_heads, ema)`` ready for :func:`ladd_step` on ``accelerator``.

    ``sharded`` (:func:`~zlab.train.sharding.uses_fsdp`, asked before any ``prepare``): accelerate's
    FSDP2 shards the student with its optimizer, one transformer block per unit, with zlab's
    :func:`~zlab.train.sharding.mixed_precision_policy`; the small heads are
    replicated with DDP (:func:`~zlab.train.sharding.replicate`). The EMA is built afterwards, so under
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

    def checkpoint(step: int) -> dict | None:
        # Gathering is collective: every rank takes part, the main process writes.
        generators = accelerator.gather(generator.get_state().to(accelerator.device)[None]).cpu()  # a row per rank
        saved = {"student": models.state_dict(model_state(sharded, accelerator, student_ddp)),
                 "discriminator": heads.state_dict(), "opt_heads": opt_heads.state_dict(),  # replicated
                 "opt_student": optimizer_state(sharded, student_ddp, opt_student, names),
                 **({"ema": ema_state(ema, keep=accelerator.is_main_process)} if ema else {})}
        if not accelerator.is_main_process:
            return None
        return {"config": asdict(config), "step": step, "losses": [], "log": log,
                "generators": [g.clone() for g in generators], **saved}

    def shipped(in_place: bool = False):
        if sharded:
            return gathered_student(accelerator, student_ddp, ema), heads if accelerator.is_main_process else None
        return models.shipped(ema, in_place=in_place), heads

    def notify(step: int) -> None:
        if not callback_every or step % callback_every:
            return
        # Under FSDP every rank takes part in gathering the student, whether or not it has a callback.
        wanted = accelerator.is_main_process and callback is not None
        student, disc = shipped() if sharded or wanted else (None, None)
        if wanted:
            callback(step, student, disc)

    bad = 0

    def train_step(step: int) -> dict[str, str]:
        nonlocal bad
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
        log["d_loss"].append(result.d_loss.item())
        log["g_loss"].append(result.g_loss.item())
        log["head_acc"].append(head_accuracy(result.real, result.fake))
        log["head_calls"].append(head_calls(result.real, result.fake))
        return {"D": f"{sum(log['d_loss'][-20:]) / len(log['d_loss'][-20:]):.3f}",
                "G": f"{sum(log['g_loss'][-20:]) / len(log['g_loss'][-20:]):.3f}",
                "real_fake": " ".join(f"{r:.2f}:{f:.2f}" for r, f in mean_calls(log["head_calls"], last=20))}

    notify(step)
    fit(train_step, step, config.steps, desc="ladd", progress=progress and accelerator.is_main_process, run_dir=run_dir,
        state_fn=checkpoint, checkpoint_every=config.checkpoint_every, after=notify)
    del opt_student, opt_heads  # free Adam's state before the student is turned into the shipped model
    accelerator.free_memory()
    student, disc = shipped(in_place=True)
    return (student.eval() if student is not None else None), (disc.eval() if disc is not None else None), log
