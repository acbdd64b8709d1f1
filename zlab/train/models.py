"""What a distillation run holds in memory, built once for the trainer, the memory model and ``zlab bench``.

* the frozen teacher transformer, in ``weights_dtype`` (bf16 for the 6B model), and the student's
  trained parameters in ``student_dtype`` (fp32 master weights: a 1e-5 Adam step is below bf16's
  resolution of a weight, so pure-bf16 training would round most updates away);
* the student: a full copy of the teacher, or (``lora_rank > 0``) a peft LoRA adapter on the
  teacher's own modules. A LoRA student *shares* the 6B base weights with the teacher: the
  teacher's passes simply run with the adapter switched off, so one copy of the weights serves
  both (at 1024 px the memory budget is what makes or breaks LADD on a 6B model);
* the discriminator heads (LADD), always fp32 (they are small and their losses are sensitive), or the fake score
  (DMD), a full fp32 copy of the teacher trained beside the student; beside a LoRA student, a second adapter on
  the same teacher (:mod:`zlab.train.adapters`: a 6B teacher, student and fake score in one copy of the weights);
* gradient checkpointing on the shared/student transformer (recompute each block in backward);
* the optimizers: Adam (``"adam"``), its fused kernel (``"adam_fused"``) or bitsandbytes' 8-bit
  Adam (``"adam8bit"``, states in 1 byte instead of 4).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from diffusers import ZImageTransformer2DModel

from zlab.distill.dmd import DMDCritic
from zlab.distill.heads import Discriminator
from zlab.features import FeatureTap, PixelFeatureTap
from zlab.train.adapters import AdapterView, adapters_off, add_lora, checkpoint_keeping_adapter_state, fuse

OPTIMIZERS = ("adam", "adam_fused", "adam8bit")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass
class DistillModels:
    """The pieces of one distillation step (before ``accelerator.prepare``): LADD's heads and their feature tap, or
    DMD's fake score."""

    teacher: ZImageTransformer2DModel  # frozen; for a LoRA student the same module, adapter off
    student: ZImageTransformer2DModel
    disc: Discriminator | None
    tap: FeatureTap | PixelFeatureTap | None
    lora: bool
    fake: ZImageTransformer2DModel | None = None  # DMD: a trained copy of the teacher that follows the student

    def __post_init__(self):
        self._critic = (self.disc if self.fake is None else self.fake if self.disc is None
                        else DMDCritic(self.fake, self.disc))

    @property
    def critic(self) -> torch.nn.Module:
        """The trained judge of the student's samples: the heads (LADD), the fake score (DMD), or both (DMD with
        DMD2's GAN term, a :class:`~zlab.distill.dmd.DMDCritic`)."""
        return self._critic

    def trainable(self) -> list[torch.nn.Parameter]:
        """The student's trained parameters (all of them, or only the LoRA matrices)."""
        return [p for p in self.student.parameters() if p.requires_grad]

    def state_dict(self, full: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """What a checkpoint keeps of the student: every weight, or only the adapter of a LoRA student.

        ``full`` is the student's complete state dict as accelerate's ``get_state_dict`` returns it;
        by default the local module's.
        """
        full = self.student.state_dict() if full is None else full
        return {k: v for k, v in full.items() if not self.lora or "lora_" in k}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.student.load_state_dict(state, strict=not self.lora)
        if unexpected or any("lora_" in k for k in missing):
            raise KeyError(f"student checkpoint does not match: missing {missing[:3]}, unexpected {unexpected[:3]}")

    def shipped(self, ema=None, in_place: bool = False) -> ZImageTransformer2DModel:
        """A stand-alone student to save: EMA weights copied in, a LoRA adapter merged into the weights.

        By default a copy, so training can go on (the lab's callbacks). ``in_place`` turns the
        student itself into the shipped model without a second copy of the weights (the end of a
        6B run, where a copy would not fit): a LoRA student's shared module stops being the teacher.
        A LoRA adapter is merged at its own precision (fp32), so a small update is not rounded to
        the bf16 base's resolution before it lands.
        """
        if ema is None and not self.lora:
            return self.student
        model = self.student if in_place else copy.deepcopy(self.student)
        base = model.shared if isinstance(model, AdapterView) else model  # a DMD student is a view of the shared model
        base.disable_gradient_checkpointing()  # a copy's recompute closure would keep the original alive
        base.eval()
        if ema is not None:
            ema.copy_to([p for p in model.parameters() if p.requires_grad])
        if self.lora:
            fuse(base, model.name if isinstance(model, AdapterView) else "default")
        return base.requires_grad_(False)


def _in_dtype(model, dtype: torch.dtype):
    return model if model.dtype == dtype else model.to(dtype)


def build_models(config, teacher: ZImageTransformer2DModel, text_dim: int) -> DistillModels:
    """Freeze ``teacher`` and build the student and its critic (heads and feature tap, or a fake score) that
    ``config`` asks for.

    ``config`` is a :class:`zlab.train.distill_config.DistillConfig` (weights_dtype, student_dtype, lora_rank, lora_alpha,
    lora_targets, gradient_checkpointing, blocks, head_hidden, head_text_norm, head_caption, head_whole, student_init).
    """
    teacher = _in_dtype(teacher, DTYPES[config.scale.weights_dtype]).eval().requires_grad_(False)
    lora = config.scale.lora_rank > 0
    if lora and config.method == "dmd":  # two adapters on the one teacher: the student and the fake score
        for name in ("student", "fake"):
            add_lora(teacher, config.scale.lora_rank, config.scale.lora_alpha, config.scale.lora_targets, name,
                     DTYPES[config.scale.student_dtype])
        if config.scale.gradient_checkpointing:
            teacher.enable_gradient_checkpointing(checkpoint_keeping_adapter_state(teacher))
        return DistillModels(AdapterView(teacher, None), AdapterView(teacher, "student"), None, None, lora=True,
                             fake=AdapterView(teacher, "fake"))
    if lora:
        add_lora(teacher, config.scale.lora_rank, config.scale.lora_alpha, config.scale.lora_targets, "default",
                 DTYPES[config.scale.student_dtype])
        student = teacher
        tap = FeatureTap(teacher, config.ladd.blocks, context=adapters_off(teacher), caption=config.ladd.head_caption)
    else:
        student = _in_dtype(copy.deepcopy(teacher), DTYPES[config.scale.student_dtype]).train().requires_grad_(True)
        if config.train.student_init:
            start_from(student, config.train.student_init)
        tap = FeatureTap(teacher, config.ladd.blocks, caption=config.ladd.head_caption)
    if config.scale.gradient_checkpointing:  # the fake path backpropagates through the teacher too: recompute both
        for model in {id(m): m for m in (student, teacher)}.values():
            model.enable_gradient_checkpointing(checkpoint_keeping_adapter_state(model) if lora else None)
    student.train()
    if config.method == "dmd":
        fake = _in_dtype(copy.deepcopy(teacher), DTYPES[config.scale.student_dtype]).train().requires_grad_(True)
        if not config.dmd.gan_weight:
            return DistillModels(teacher, student, None, None, lora=False, fake=fake)
        tap = FeatureTap(teacher, config.dmd.gan_blocks)  # DMD2's GAN term: LADD's heads on the teacher's blocks
        disc = Discriminator(config.dmd.gan_blocks, tap.channels, text_dim, hidden=config.ladd.head_hidden)
        return DistillModels(teacher, student, disc, tap, lora=False, fake=fake)
    if config.ladd.features == "pixels":  # the discriminative ablation: a frozen image network instead of the teacher
        tap = pixel_tap(config, teacher.device)
    disc = Discriminator(config.ladd.blocks, tap.channels, text_dim, hidden=config.ladd.head_hidden, text_norm=config.ladd.head_text_norm,
                         caption=config.ladd.head_caption, whole=config.ladd.head_whole)
    return DistillModels(teacher, student, disc, tap, lora=config.scale.lora_rank > 0)


def start_from(student: ZImageTransformer2DModel, folder: str) -> None:
    """Load the transformer weights of pipeline ``folder`` into ``student`` (same architecture as the teacher)."""
    from pathlib import Path

    sub = Path(folder) / "transformer"
    if not (sub / "config.json").is_file():
        raise FileNotFoundError(f"student_init: {folder!r} has no transformer/config.json (a diffusers pipeline "
                                "folder such as checkpoints/shapes-regression is expected)")
    other = ZImageTransformer2DModel.from_pretrained(sub)
    try:  # strict: every key and shape must match; values are copied into the student's own dtype
        student.load_state_dict(other.state_dict())
    except RuntimeError as err:
        raise ValueError(f"student_init: {folder!r} is not the teacher's architecture: {err}") from None


def pixel_tap(config, device) -> PixelFeatureTap:
    """ShapesNet (``config.ladd.features_net``) on the teacher folder's VAE decodings, on ``device``, in fp32."""
    from diffusers import AutoencoderKL

    from zlab.shapes.net import ShapesNet

    vae = AutoencoderKL.from_pretrained(config.data.teacher, subfolder="vae").to(device)
    return PixelFeatureTap(vae, ShapesNet.load(config.ladd.features_net).to(device), config.ladd.blocks)


def fit_config(config, n_layers: int, device: str = "cuda"):
    """``config`` made runnable on a given model and device: tapped blocks that the model lacks are
    replaced by evenly spread ones, and on CPU everything is float32 with plain Adam (bf16 matmuls
    and bitsandbytes are GPU features). Used to run the real-scale configs on the tiny pipeline."""
    from dataclasses import replace

    blocks = tuple(config.ladd.blocks)
    if max(blocks) >= n_layers:
        k = min(len(blocks), n_layers)
        blocks = tuple(sorted({round(i * (n_layers - 1) / max(1, k - 1)) for i in range(k)}))
    if device == "cpu":
        scale = replace(config.scale, weights_dtype="float32", student_dtype="float32", mixed_precision="no",
                        optimizer="adam")
        return replace(config, ladd=replace(config.ladd, blocks=blocks), scale=scale)
    return replace(config, ladd=replace(config.ladd, blocks=blocks))


def make_optimizers(config, models: DistillModels):
    """``(student optimizer, critic optimizer)`` of a run, as ``config`` asks for them (the heads: plain Adam; the
    fake score: the student's kind, at ``fake_lr``)."""
    opt_student = make_optimizer(config.scale.optimizer, models.trainable(), config.train.student_lr, config.train.betas)
    if models.fake is not None and models.disc is not None:  # DMD with the GAN term: the heads at heads_lr
        groups = [{"params": list(models.fake.parameters()), "lr": config.train.fake_lr},
                  {"params": list(models.disc.parameters()), "lr": config.train.heads_lr}]
        return opt_student, make_optimizer(config.scale.optimizer, groups, config.train.fake_lr, config.train.betas)
    if models.fake is not None:
        return opt_student, make_optimizer(config.scale.optimizer, models.fake.parameters(), config.train.fake_lr,
                                           config.train.betas)
    return opt_student, torch.optim.Adam(models.disc.parameters(), lr=config.train.heads_lr, betas=config.train.betas)


def make_ema(config, params):
    """The student's EMA (diffusers' ``EMAModel`` with warm-up) over ``params``, or None when
    ``ema_decay`` is 0. A GAN student wanders around the equilibrium; the average of its recent
    weights is steadier. Built after ``accelerator.prepare``: under FSDP the shadow copies are then
    shards like the parameters they follow."""
    from diffusers.training_utils import EMAModel

    if config.train.ema_decay <= 0:
        return None
    return EMAModel(list(params), decay=config.train.ema_decay, use_ema_warmup=True, power=0.75)


def make_optimizer(kind: str, params, lr: float, betas) -> torch.optim.Optimizer:
    """Adam in one of :data:`OPTIMIZERS`; a clear error when the 8-bit one is not installed."""
    params = list(params)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas)
    if kind == "adam_fused":
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    if kind == "adam8bit":
        try:
            import bitsandbytes as bnb
        except ImportError as err:
            raise ImportError("optimizer 'adam8bit' needs bitsandbytes (pip install bitsandbytes; CUDA only); "
                              f"or choose one of {OPTIMIZERS[:2]}") from err
        return bnb.optim.Adam8bit(params, lr=lr, betas=betas)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {kind!r}")
