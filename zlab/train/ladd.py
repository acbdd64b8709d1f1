"""The LADD trainer: the run plumbing around :func:`zlab.distill.ladd.ladd_step`, on ``accelerate`` for one process,
DDP or FSDP2.

What a run adds to the method: its config (:class:`DistillConfig`), batches of the teacher's synthetic samples with every
random draw (:func:`draw_batch`, from :class:`zlab.train.synth.SynthData`), the models it holds
(:mod:`zlab.train.models`: bf16 weights, a LoRA student sharing the teacher, EMA, optimizers), atomic checkpoints with
exact resume, and the shipped student.

Several GPUs: ``accelerate launch`` with configs/accelerate-ddp.yaml (replicas) or
configs/accelerate-fsdp.yaml (the student sharded; what changes is in :mod:`zlab.train.sharding`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from diffusers import ZImageTransformer2DModel

from zlab.checks import check_choice, check_range
from zlab.distill.heads import pool_text
from zlab.distill.ladd import LADDBatch, LADDOptions, ladd_step
from zlab.distill.head_calls import head_accuracy, head_calls, mean_calls
from zlab.distill.schedule import sample_student_t, sample_t_hat
from zlab.shapes.world import canvas_size
from zlab.train.loop import fit, make_accelerator, resume_run, seed_everything
from zlab.train.models import DTYPES, OPTIMIZERS, build_models, make_ema, make_optimizers
from zlab.train.sharding import (
    ema_state,
    gathered_student,
    load_ema_state,
    load_optimizer_state,
    mixed_precision_policy,
    model_state,
    optimizer_state,
    replicate,
    uses_fsdp,
)
from zlab.train.synth import SOURCES, SynthData, load_buckets

MAX_BAD_STEPS = 10


@dataclass
class DataConfig:
    """``[data]``: the teacher and the synthetic samples a run trains on (:mod:`zlab.train.synth`)."""

    teacher: str = "checkpoints/shapes-teacher"  # a pipeline folder or hub id
    folder: str = "runs/synth"  # the synthetic data (`zlab synth`): one synth folder, or one per aspect bucket
    rounds: int = 4  # seeds per train prompt that `zlab synth` draws from the teacher
    sizes: tuple = ()  # aspect buckets (height, width) to synthesise and train at; () = the teacher's size
    real: str = "teacher"  # the real side: the teacher's samples (LADD) or "renders" of the world, encoded by its VAE

    def validate(self) -> None:
        check_range("data.rounds", self.rounds, 1, 1000)
        for size in self.sizes:
            canvas_size(size)  # (height, width), multiples of 16
        check_choice("data.real", self.real, SOURCES)


@dataclass
class TrainConfig:
    """``[train]``: optimisation of the student and the method's other trained parts."""

    steps: int = 1000
    batch_size: int = 32
    student_lr: float = 1e-5
    heads_lr: float = 1e-4
    betas: tuple = (0.0, 0.99)
    grad_clip: float = 1.0
    ema_decay: float = 0.0  # > 0: the student's weights are averaged (EMA with warm-up) and the average ships
    seed: int = 0
    checkpoint_every: int = 100
    # Where the student starts: "" = a copy of the teacher (LADD), or a pipeline folder whose transformer has the
    # teacher's architecture (e.g. the regression student, so LADD fine-tunes a student that already keeps the modes)
    student_init: str = ""

    def validate(self) -> None:
        for name, low, high in (("steps", 1, 10**7), ("batch_size", 1, 4096), ("student_lr", 0.0, 1.0),
                                ("heads_lr", 0.0, 1.0), ("ema_decay", 0.0, 0.99999), ("checkpoint_every", 1, 10**7)):
            check_range(f"train.{name}", getattr(self, name), low, high)
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"train.betas must be two numbers in [0, 1), got {self.betas!r}")


@dataclass
class ScaleConfig:
    """``[scale]``: what a big model needs (weights in bf16, a LoRA student sharing the teacher's weights,
    recomputation, the optimizer's kind); the defaults suit the tiny Shapes world."""

    mixed_precision: str = "no"  # "bf16": matmuls under autocast
    weights_dtype: str = "float32"  # the frozen teacher (and a LoRA student's shared base)
    student_dtype: str = "float32"  # trained parameters: fp32 master weights, so small Adam steps are not rounded away
    lora_rank: int = 0  # 0 = full fine-tuning of a copy of the teacher
    lora_alpha: float = 0.0  # 0 = lora_rank (scale 1)
    lora_targets: tuple = ("to_q", "to_k", "to_v", "to_out.0")
    gradient_checkpointing: bool = False
    optimizer: str = "adam"  # adam, adam_fused, adam8bit (bitsandbytes)

    def validate(self) -> None:
        check_choice("scale.mixed_precision", self.mixed_precision, ("no", "bf16"))
        check_choice("scale.weights_dtype", self.weights_dtype, tuple(DTYPES))
        check_choice("scale.student_dtype", self.student_dtype, tuple(DTYPES))
        check_range("scale.lora_rank", self.lora_rank, 0, 4096)
        check_choice("scale.optimizer", self.optimizer, OPTIMIZERS)


@dataclass
class ShipConfig:
    """``[ship]``: how the shipped student samples."""

    stochastic_sampling: bool = False  # see configs/shapes-ladd.toml: stock ZImagePipeline would not be seed-reproducible
    choose_sampling: bool = False  # make-student: measure both modes on validation, ship the better (zlab.recipes.sampling_choice)


METHODS = ("ladd",)


@dataclass
class DistillConfig:
    """One distillation run (``zlab ladd --config configs/shapes-ladd.toml``), one section per role: the method and
    its options (``[ladd]``), the data, the optimisation, the scale and the shipping."""

    method: str = "ladd"
    ladd: LADDOptions = field(default_factory=LADDOptions)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    ship: ShipConfig = field(default_factory=ShipConfig)

    def validate(self) -> None:
        check_choice("method", self.method, METHODS)
        for section in (self.ladd, self.data, self.train, self.scale):
            section.validate()
        if self.data.real == "renders" and self.ladd.regression_weight:
            raise ValueError("ladd.regression_weight needs the teacher's samples (data.real = \"teacher\"): a render has "
                             "no starting noise to regress from")
        if self.train.student_init and self.scale.lora_rank:
            raise ValueError("train.student_init starts a full student from other weights; a LoRA student "
                             "(scale.lora_rank > 0) shares the teacher's")


def draw_batch(data: SynthData | list[SynthData], config: DistillConfig, step: int, generator: torch.Generator,
               device: torch.device | str = "cpu") -> LADDBatch:
    """Sample a batch and all of its noise (student t, eps, t_hat, eps') from ``generator``. With several
    aspect buckets (:func:`~zlab.train.synth.load_buckets`), each batch comes from one, drawn uniformly."""
    if isinstance(data, list):
        data = data[int(torch.randint(len(data), (1,), generator=generator))] if len(data) > 1 else data[0]
    n = config.train.batch_size
    idx = torch.randint(len(data), (n,), generator=generator)
    x0 = data.latents[idx]
    embeds = [data.embeds[i] for i in data.prompt_index[idx].tolist()]
    t = sample_student_t(n, step, config.ladd.warmup_steps, generator, warmup=config.ladd.warmup_probs, full=config.ladd.full_probs)
    eps = torch.randn(x0.shape, generator=generator)
    if config.ladd.regression_weight:  # x_t on the teacher's own path from noise to x0 (drawn above all the same,
        eps = data.initial_noise(idx)  # so every other draw stays what it is without the regression term)
    t_hat = sample_t_hat(n, config.ladd.t_hat_m, config.ladd.t_hat_s, generator)
    eps_hat = torch.randn(x0.shape, generator=generator)
    # Backward simulation: t = .75 and .25 are reached by the 4-step sampler, t = .5 by the 2- or 4-step one.
    simulate = (torch.rand(n, generator=generator) < config.ladd.backward_sim) & (t < 1)
    two_step = (t == 0.5) & (torch.rand(n, generator=generator) < 0.5)
    sim_dt = torch.where(simulate, torch.where(two_step, 0.5, 0.25), 0.0)
    to = lambda x: x.to(device)
    text = pool_text(embeds)
    wrong_text = wrong = r1_seed = None
    if config.ladd.mismatch_weight:  # each sample under its neighbour's caption (no draw: the batch is already random)
        wrong_text, wrong = text.roll(1, 0), (data.prompt_index[idx] != data.prompt_index[idx].roll(1)).float()
    if config.ladd.r1_weight:
        r1_seed = int(torch.randint(2**62, (1,), generator=generator))
    return LADDBatch(to(x0), [to(e) for e in embeds], to(text), to(t), to(eps), to(t_hat), to(eps_hat), to(sim_dt),
                     wrong_text=None if wrong_text is None else to(wrong_text), wrong=None if wrong is None else to(wrong),
                     r1_seed=r1_seed)


def load_teacher(path_or_id: str, dtype: str = "float32") -> ZImageTransformer2DModel:
    """The teacher transformer alone, from a pipeline folder or hub id (the text encoder and VAE are
    not needed: ``zlab synth`` stored the prompt embeddings next to the latents)."""
    return ZImageTransformer2DModel.from_pretrained(path_or_id, subfolder="transformer", torch_dtype=DTYPES[dtype])


def prepare(accelerator, config: DistillConfig, models, sharded: bool = False):
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


def train_ladd(config: DistillConfig, run_dir: str | Path, resume: bool = False, progress: bool = True,
               callback=None, callback_every: int = 0):
    """Train (or resume) a LADD student in ``run_dir``; returns ``(student transformer, discriminator, log)``.

    The student returned is the one that ships: EMA weights when ``ema_decay > 0``, a LoRA adapter
    merged into the weights when ``lora_rank > 0``. ``callback(step, student, discriminator)`` runs
    on the main process after every ``callback_every`` steps (and before the first), e.g. to draw
    samples over training (lab 05). Under FSDP the student is gathered into a whole, unsharded
    module on the main process; the other ranks get None for the student and the heads.
    """
    run_dir = Path(run_dir)
    accelerator = make_accelerator(config.scale.mixed_precision)
    sharded = uses_fsdp(accelerator, config)
    seed_everything(config.train.seed)
    data = load_buckets(config.data.folder)  # one synth folder, or one per aspect bucket
    models = build_models(config, load_teacher(config.data.teacher, config.scale.weights_dtype).to(accelerator.device),
                          data[0].embeds[0].shape[-1])
    # Every rank draws its own batch (seed + rank); DDP/FSDP average the gradients, so weights stay equal.
    generator = torch.Generator().manual_seed(config.train.seed + 1000 * accelerator.process_index)

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
                           config.ladd, grad_clip=config.train.grad_clip, sampler=accelerator.unwrap_model(student_ddp),
                           ema=ema)
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
    fit(train_step, step, config.train.steps, desc="ladd", progress=progress and accelerator.is_main_process, run_dir=run_dir,
        state_fn=checkpoint, checkpoint_every=config.train.checkpoint_every, after=notify)
    del opt_student, opt_heads  # free Adam's state before the student is turned into the shipped model
    accelerator.free_memory()
    student, disc = shipped(in_place=True)
    return (student.eval() if student is not None else None), (disc.eval() if disc is not None else None), log
