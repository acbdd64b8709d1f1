"""The distillation trainer: one run loop for every method, on ``accelerate`` for one process, DDP or FSDP2.

A run holds a student and a *critic*, the trained judge of the student's samples: LADD's discriminator heads
(:mod:`zlab.train.ladd`), DMD's fake score (:mod:`zlab.train.dmd`). What the run adds to the method: its config
(:class:`~zlab.train.distill_config.DistillConfig`), the teacher's synthetic samples (:class:`zlab.train.synth.SynthData`),
the models (:mod:`zlab.train.models`: bf16 weights, a LoRA student sharing the teacher, EMA, optimizers), atomic
checkpoints with exact resume, and the student that ships. A method module gives ``CRITIC`` (its checkpoint key),
``OPT_CRITIC`` (its optimizer's), ``new_log()``, ``start(config, data, device)`` (what its batches need beside the data), ``train_step(parts, step,
generator)`` and ``record(log, result, step)``.

Several GPUs: ``accelerate launch`` with configs/accelerate-ddp.yaml (replicas) or
configs/accelerate-fsdp.yaml (the student sharded; what changes is in :mod:`zlab.train.sharding`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import ZImageTransformer2DModel

from zlab.train import dmd, ladd
from zlab.train.adapters import AdapterView
from zlab.train.distill_config import DistillConfig
from zlab.train.loop import fit, make_accelerator, resume_run, seed_everything
from zlab.train.models import DTYPES, DistillModels, build_models, make_ema, make_optimizers
from zlab.train.sharding import (
    ema_state,
    gathered_student,
    is_sharded,
    load_critic_optimizer,
    load_ema_state,
    load_optimizer_state,
    mixed_precision_policy,
    model_state,
    optimizer_state,
    replicate,
    uses_fsdp,
)
from zlab.train.synth import drop_rejected, load_buckets

METHOD_RUNS = {"ladd": ladd, "dmd": dmd}
MAX_BAD_STEPS = 10


@dataclass
class RunParts:
    """What a method's ``train_step`` works with: the prepared student and critic, their optimizers, the data."""

    accelerator: Any
    config: DistillConfig
    models: DistillModels
    student: torch.nn.Module  # DDP- or FSDP-prepared (or plain)
    critic: torch.nn.Module  # prepared
    opt_student: torch.optim.Optimizer
    opt_critic: torch.optim.Optimizer
    ema: Any
    data: list
    extra: Any = None  # the method's own (``start``): DMD's empty-prompt embedding

    @property
    def sampler(self):
        """The unwrapped student, for backward simulation without the wrapper's collectives."""
        return self.accelerator.unwrap_model(self.student)


def load_teacher(path_or_id: str, dtype: str = "float32") -> ZImageTransformer2DModel:
    """The teacher transformer alone, from a pipeline folder or hub id (the text encoder and VAE are
    not needed: ``zlab synth`` stored the prompt embeddings next to the latents)."""
    return ZImageTransformer2DModel.from_pretrained(path_or_id, subfolder="transformer", torch_dtype=DTYPES[dtype])


def prepare(accelerator, config: DistillConfig, models: DistillModels, sharded: bool = False):
    """``(student, critic, opt_student, opt_critic, ema)`` ready for a method's step on ``accelerator``.

    ``sharded`` (:func:`~zlab.train.sharding.uses_fsdp`, asked before any ``prepare``): accelerate's
    FSDP2 shards the student with its optimizer, one transformer block per unit, with zlab's
    :func:`~zlab.train.sharding.mixed_precision_policy`; the small heads are
    replicated with DDP (:func:`~zlab.train.sharding.replicate`). The EMA is built afterwards, so under
    FSDP its shadow weights are shards like the parameters.
    """
    opt_student, opt_critic = make_optimizers(config, models)
    if config.method == "dmd" and config.scale.lora_rank and accelerator.num_processes > 1:
        raise ValueError("method \"dmd\" with LoRA (the student and the fake score as two adapters on one teacher) "
                         "runs in one process; use scale.lora_rank = 0 under `accelerate launch`")
    if config.method == "dmd" and config.dmd.gan_weight and accelerator.num_processes > 1:
        raise ValueError("dmd.gan_weight > 0 (the fake score and the heads as one critic) runs in one process; "
                         "set it to 0 under `accelerate launch`")
    if sharded:
        accelerator.state.fsdp_plugin.mixed_precision_policy = mixed_precision_policy(accelerator)
    student, opt_student = accelerator.prepare(models.student, opt_student)
    if sharded and config.method == "ladd":  # LADD's small heads: replicated
        critic = replicate(accelerator, models.critic)
    else:  # DMD's fake score, a whole transformer: sharded as the student is under FSDP
        critic, opt_critic = accelerator.prepare(models.critic, opt_critic)
    return student, critic, opt_student, opt_critic, make_ema(config, models.trainable())


def train_student(config: DistillConfig, run_dir: str | Path, resume: bool = False, progress: bool = True,
                  callback=None, callback_every: int = 0):
    """Train (or resume) a student by ``config.method`` in ``run_dir``; returns ``(student transformer, critic, log)``.

    The student returned is the one that ships: EMA weights when ``ema_decay > 0``, a LoRA adapter
    merged into the weights when ``lora_rank > 0``. ``callback(step, student, critic)`` runs
    on the main process after every ``callback_every`` steps (and before the first), e.g. to draw
    samples over training (lab 05). Under FSDP the student is gathered into a whole, unsharded
    module on the main process; the other ranks get None for the student and the critic.
    """
    run_dir, method = Path(run_dir), METHOD_RUNS[config.method]
    accelerator = make_accelerator(config.scale.mixed_precision)
    sharded = uses_fsdp(accelerator, config)
    seed_everything(config.train.seed)
    data = load_buckets(config.data.folder)  # one synth folder, or one per aspect bucket
    checked = None
    if config.data.drop_rejected:
        from diffusers import AutoencoderKL

        data, checked = drop_rejected(data, AutoencoderKL.from_pretrained(config.data.teacher, subfolder="vae"))
    models = build_models(config, load_teacher(config.data.teacher, config.scale.weights_dtype).to(accelerator.device),
                          data[0].embeds[0].shape[-1])
    # Every rank draws its own batch (seed + rank); DDP/FSDP average the gradients, so weights stay equal.
    generator = torch.Generator().manual_seed(config.train.seed + 1000 * accelerator.process_index)

    step, _, state = resume_run(run_dir, config, resume, student=models, **{method.CRITIC: models.critic})
    parts = RunParts(accelerator, config, models, *prepare(accelerator, config, models, sharded), data=data,
                     extra=method.start(config, data, accelerator.device))
    critic = accelerator.unwrap_model(parts.critic)
    names = [name for name, p in parts.sampler.named_parameters() if p.requires_grad]
    critic_sharded = is_sharded(parts.critic)  # DMD's fake score under FSDP
    critic_names = [name for name, p in critic.named_parameters() if p.requires_grad]
    log = method.new_log()
    if checked is not None:
        log["synth_checked"] = checked  # {"kept": n, "rejected": m}: what the checker let through
    if state is not None:
        log.update(state["log"])
        generator.set_state(state["generators"][accelerator.process_index])
        load_optimizer_state(sharded, parts.student, parts.opt_student, names, state["opt_student"])
        load_critic_optimizer(critic_sharded, parts.critic, parts.opt_critic, critic_names, state[method.OPT_CRITIC])
        if parts.ema is not None:
            load_ema_state(parts.ema, state["ema"])
        del state  # for a 6B student: ~100 GB of weights, Adam and EMA (memory-mapped, but referenced)

    def checkpoint(step: int) -> dict | None:
        # Gathering is collective: every rank takes part, the main process writes.
        generators = accelerator.gather(generator.get_state().to(accelerator.device)[None]).cpu()  # a row per rank
        saved = {"student": models.state_dict(model_state(sharded, accelerator, parts.student)),
                 method.CRITIC: model_state(True, accelerator, parts.critic) if critic_sharded else critic.state_dict(),
                 method.OPT_CRITIC: (optimizer_state(True, parts.critic, parts.opt_critic, critic_names)
                                     if critic_sharded else parts.opt_critic.state_dict()),
                 "opt_student": optimizer_state(sharded, parts.student, parts.opt_student, names),
                 **({"ema": ema_state(parts.ema, keep=accelerator.is_main_process)} if parts.ema else {})}
        if not accelerator.is_main_process:
            return None
        return {"config": asdict(config), "step": step, "losses": [], "log": log,
                "generators": [g.clone() for g in generators], **saved}

    def shipped(in_place: bool = False):
        if sharded:
            student = gathered_student(accelerator, parts.student, parts.ema)
            judge = gathered_student(accelerator, parts.critic) if critic_sharded else critic  # collective, too
            return student, judge if accelerator.is_main_process else None
        judge = critic.stored() if isinstance(critic, AdapterView) else critic  # before the student is merged in place
        return models.shipped(parts.ema, in_place=in_place), judge

    def notify(step: int) -> None:
        if not callback_every or step % callback_every:
            return
        # Under FSDP every rank takes part in gathering the student, whether or not it has a callback.
        wanted = accelerator.is_main_process and callback is not None
        student, judge = shipped() if sharded or wanted else (None, None)
        if wanted:
            callback(step, student, judge)

    bad = 0

    def train_step(step: int) -> dict[str, str]:
        nonlocal bad
        result = method.train_step(parts, step, generator)
        bad = 0 if result.ok else bad + 1
        if bad >= MAX_BAD_STEPS:
            raise FloatingPointError(f"{bad} non-finite {config.method} steps in a row at step {step}; resume from "
                                     f"the last checkpoint in {run_dir} with lower learning rates")
        return method.record(log, result, step)

    notify(step)
    fit(train_step, step, config.train.steps, desc=config.method, progress=progress and accelerator.is_main_process,
        run_dir=run_dir, state_fn=checkpoint, checkpoint_every=config.train.checkpoint_every, after=notify)
    del parts.opt_student, parts.opt_critic  # free Adam's state before the student is turned into the shipped model
    accelerator.free_memory()
    student, critic = shipped(in_place=True)
    return (student.eval() if student is not None else None), (critic.eval() if critic is not None else None), log
