"""The memory model of one DMD step (:func:`zlab.distill.dmd.dmd_step`), beside LADD's in :mod:`zlab.train.memory`.

A DMD step holds three models: the frozen teacher, the student and the fake score (full copies, or two LoRA
adapters on the teacher: :mod:`zlab.train.adapters`), each trained one with its own Adam state. It runs in two
phases that never overlap: the student's update (its forward graph, then its gradients; the teacher and the fake
score run without a graph) and the fake score's flow-matching updates (its graph, then its gradients). Optimizer
steps clear each phase's gradients before the next starts, so the peak is the persistent part plus the larger
phase; within a phase, as in LADD's model, backward frees the activations as it fills the gradients.

Activations are traced, not guessed: the step's own code on the ``meta`` device under
:func:`torch.autograd.graph.saved_tensors_hooks` (:func:`zlab.train.memory_parts.trace_saved`).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from diffusers import ZImageTransformer2DModel

from zlab.distill.dmd import DMDBatch, fake_score_loss, student_x0
from zlab.train.memory_parts import MemoryEstimate, dtype_bytes, live_bytes, trace_saved
from zlab.train.models import DTYPES, build_models
from zlab.zimage import init_kwargs

__all__ = ["predict_dmd", "make_dmd_step"]


def zero_batch(batch_size: int, latent_h: int, latent_w: int, cap_len: int, text_dim: int, device="meta") -> DMDBatch:
    """A one-step student's batch (t = 1) of zeros: shapes are all the memory model needs."""
    z = lambda *s: torch.zeros(*s, device=device)  # noqa: E731
    n, latents = batch_size, (batch_size, 16, latent_h, latent_w)
    levels = torch.full((n,), 0.5, device=device)
    return DMDBatch(z(*latents), [z(cap_len, text_dim) for _ in range(n)], [z(cap_len, text_dim) for _ in range(n)],
                    torch.ones(n, device=device), z(*latents), None, levels, z(*latents), levels.clone(), z(*latents),
                    fake_seed=0)


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def predict_dmd(config, transformer_config: dict, height: int, width: int, cap_len: int = 128,
                text_dim: int | None = None, shards: int = 1):
    """Peak bytes of one DMD step (see the module docstring), the parts named as in LADD's model."""

    if shards != 1:
        raise ValueError("the memory model of a DMD step covers one GPU (shards = 1); a DMD run sharded by FSDP "
                         "trains, but its memory is not modelled yet")
    if config.dmd.gan_weight:
        raise ValueError("the memory model of DMD leaves out DMD2's GAN term: set dmd.gan_weight = 0")
    transformer_config = init_kwargs(transformer_config)
    text_dim = text_dim or transformer_config["cap_feat_dim"]
    with torch.device("meta"):
        plain_run = replace(config, scale=replace(config.scale, gradient_checkpointing=False),
                            train=replace(config.train, student_init="", init_recipe=""))
        models = build_models(plain_run, ZImageTransformer2DModel(**transformer_config), text_dim)
    batch = zero_batch(config.train.batch_size, height // 8, width // 8, cap_len, text_dim)
    three = [models.teacher, models.student, models.fake]
    student_act = trace_saved(three, lambda: student_x0(models.student, batch))
    fake_act = trace_saved(three, lambda: fake_score_loss(models.fake, batch.x0, batch.embeds, config.dmd,
                                                          torch.Generator().manual_seed(0)))
    pick = lambda traced: traced[1] if config.scale.gradient_checkpointing else traced[0]  # noqa: E731

    base = getattr(models.teacher, "shared", models.teacher)
    wbytes = dtype_bytes(DTYPES[config.scale.weights_dtype])
    n_base = sum(p.numel() for n, p in base.named_parameters() if "lora_" not in n)
    n_student, n_fake = _count(models.student), _count(models.fake)
    tbytes = dtype_bytes(next(models.student.parameters()).dtype)
    state_bytes = 1 if config.scale.optimizer == "adam8bit" else tbytes
    parts = {
        "teacher weights": n_base * wbytes,
        "student weights": n_student * tbytes,
        "fake score weights": n_fake * tbytes,
        "optimizer state": 2 * (n_student + n_fake) * state_bytes,
        "student activations": pick(student_act),
        "student gradients": n_student * tbytes,
        "fake score activations": pick(fake_act),
        "fake score gradients": n_fake * tbytes,
    }
    either = [("student activations",), ("student gradients",), ("fake score activations",),
              ("fake score gradients",)]
    if config.train.ema_decay > 0:
        parts["EMA of the student"] = n_student * tbytes
    if config.scale.mixed_precision == "bf16" and tbytes == 4 and not models.lora:
        parts["autocast copies (student)"], parts["autocast copies (fake score)"] = n_student * 2, n_fake * 2
        either[0], either[2] = either[0] + ("autocast copies (student)",), either[2] + ("autocast copies (fake score)",)
    what = (f"LoRA rank {config.scale.lora_rank} adapter on the teacher's weights" if models.lora
            else "a full copy of the teacher")
    notes = {
        "teacher weights": f"{n_base / 1e9:.3f}B parameters x {wbytes} B ({config.scale.weights_dtype})",
        "student weights": f"{what}: {n_student / 1e6:,.1f}M parameters x {tbytes} B",
        "fake score weights": f"{what}: {n_fake / 1e6:,.1f}M parameters x {tbytes} B",
        "optimizer state": f"Adam for both: 2 x {state_bytes} B per trained parameter ({config.scale.optimizer})",
        "student activations": f"the student's graph, {config.train.batch_size} x {height}x{width}, traced"
                               + (" (checkpointed)" if config.scale.gradient_checkpointing else ""),
        "fake score activations": "the fake score's flow-matching graph on the student's samples, traced",
        "EMA of the student": f"shadow copy of the student's parameters (ema_decay {config.train.ema_decay})",
    }
    return MemoryEstimate(parts, notes, either=tuple(either))


def make_dmd_step(config, teacher: ZImageTransformer2DModel, height: int, width: int, cap_len: int = 16,
                  text_dim: int | None = None):
    """A closure running one full DMD update on random data on ``teacher``'s device, in one process: what
    ``zlab bench`` times and :func:`zlab.train.memory.measure` profiles."""
    from zlab.distill.dmd import dmd_step
    from zlab.train.loop import make_accelerator
    from zlab.train.models import make_ema, make_optimizers

    device = teacher.device
    text_dim = text_dim or teacher.config.cap_feat_dim
    models = build_models(config, teacher, text_dim)
    accelerator = make_accelerator(config.scale.mixed_precision, cpu=device.type == "cpu")
    opt_student, opt_fake = make_optimizers(config, models)
    ema = make_ema(config, models.trainable())
    batch = zero_batch(config.train.batch_size, height // 8, width // 8, cap_len, text_dim, device=device)
    generator = torch.Generator().manual_seed(0)
    for x in (batch.x0, batch.eps, batch.eps_dm, batch.eps_ca, *batch.embeds, *batch.null):
        x.normal_(generator=generator) if device.type == "cpu" else x.normal_()
    extra = [batch] * (config.dmd.fake_updates - 1)

    def step():
        result = dmd_step(accelerator, models.student, models.fake, models.teacher, batch, opt_student, opt_fake,
                          config.dmd, fake_batches=extra, grad_clip=config.train.grad_clip, ema=ema)
        if not result.ok:  # a skipped update would measure a step without its backward passes
            raise FloatingPointError(f"non-finite DMD losses (G {result.g_loss.item()}, fake {result.fake_loss.item()})")

    step.live_bytes = lambda: live_bytes(getattr(models.teacher, "shared", models.teacher), models.student,
                                         models.fake, opt_student, opt_fake, ema, batch)
    return step
