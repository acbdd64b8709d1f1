"""A distillation run's config: the method (``"ladd"`` or ``"dmd"``) and one section per role.

``[ladd]`` (:class:`zlab.distill.ladd.LADDOptions`) or ``[dmd]`` (:class:`zlab.distill.dmd.DMDOptions`) hold the
method's own settings; ``[data]``, ``[train]``, ``[scale]`` and ``[ship]`` are the run's, shared by both methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zlab.checks import check_choice, check_range
from zlab.distill.dmd import DMDOptions
from zlab.distill.ladd import LADDOptions
from zlab.shapes.world import canvas_size
from zlab.train.models import DTYPES, OPTIMIZERS
from zlab.train.synth import SOURCES


@dataclass
class DataConfig:
    """``[data]``: the teacher and the synthetic samples a run trains on (:mod:`zlab.train.synth`)."""

    teacher: str = "checkpoints/shapes-teacher"  # a pipeline folder or hub id
    folder: str = "runs/synth"  # the synthetic data (`zlab synth`): one synth folder, or one per aspect bucket
    rounds: int = 4  # seeds per train prompt that `zlab synth` draws from the teacher
    sizes: tuple = ()  # aspect buckets (height, width) to synthesise and train at; () = the teacher's size
    real: str = "teacher"  # the real side: the teacher's samples (LADD) or "renders" of the world, encoded by its VAE
    # drop the teacher samples that the Shapes world's checker rejects (not one clean object with the named
    # attributes; zlab.train.synth.drop_rejected), counted in the run's log; a Shapes-only option
    drop_rejected: bool = False
    # the teacher's CFG when it synthesises (diffusers' g); < 0 = its own sampling.json (the synthesis-CFG experiment
    # of configs/synth-cfg-search.toml turns it)
    guidance_scale: float = -1.0

    def sampling(self) -> dict | None:
        """The teacher's sampling.json with this section's guidance; None = the teacher's own, unchanged."""
        if self.guidance_scale < 0:
            return None
        from zlab.zimage import read_sampling

        return {**read_sampling(self.teacher), "guidance_scale": self.guidance_scale}

    def validate(self) -> None:
        check_range("data.rounds", self.rounds, 1, 1000)
        if self.guidance_scale >= 0:
            check_range("data.guidance_scale", self.guidance_scale, 0.0, 100.0)
        for size in self.sizes:
            canvas_size(size)  # (height, width), multiples of 16
        check_choice("data.real", self.real, SOURCES)


@dataclass
class TrainConfig:
    """``[train]``: optimisation of the student and the method's other trained parts."""

    steps: int = 1000
    batch_size: int = 32
    student_lr: float = 1e-5
    heads_lr: float = 1e-4  # LADD's discriminator heads
    fake_lr: float = 1e-5  # DMD's fake score (DMD2: the generator's learning rate)
    betas: tuple = (0.0, 0.99)
    grad_clip: float = 1.0
    ema_decay: float = 0.0  # > 0: the student's weights are averaged (EMA with warm-up) and the average ships
    seed: int = 0
    checkpoint_every: int = 100
    # Where the student starts: "" = a copy of the teacher (LADD), or a pipeline folder whose transformer has the
    # teacher's architecture (e.g. the regression student, so LADD fine-tunes a student that already keeps the modes)
    student_init: str = ""
    # A recipe (config file) that `zlab make-student` trains first, on this run's teacher and synthetic data, and
    # starts this student from (its weights replace student_init there): the whole recipe from the teacher in one
    # command. `zlab distill` and the grids read student_init only (experiments start from a shipped folder).
    init_recipe: str = ""

    def validate(self) -> None:
        for name, low, high in (("steps", 1, 10**7), ("batch_size", 1, 4096), ("student_lr", 0.0, 1.0),
                                ("heads_lr", 0.0, 1.0), ("fake_lr", 0.0, 1.0), ("ema_decay", 0.0, 0.99999), ("checkpoint_every", 1, 10**7)):
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
    shift: float = 1.0  # the static time shift the student samples with (1: its trained times; zlab.distill.student)
    shift_candidates: list[float] = field(default_factory=list)  # make-student measures these beside `shift` on validation

    def validate(self) -> None:
        for name, value in [("ship.shift", self.shift)] + [("ship.shift_candidates", s) for s in self.shift_candidates]:
            check_range(name, value, 0.1, 20.0)


METHODS = ("ladd", "dmd")


@dataclass
class DistillConfig:
    """One distillation run (``zlab distill --config configs/shapes-ladd.toml``), one section per role: the method and
    its options (``[ladd]`` or ``[dmd]``), the data, the optimisation, the scale and the shipping."""

    method: str = "ladd"
    ladd: LADDOptions = field(default_factory=LADDOptions)
    dmd: DMDOptions = field(default_factory=DMDOptions)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    ship: ShipConfig = field(default_factory=ShipConfig)

    def validate(self) -> None:
        check_choice("method", self.method, METHODS)
        for section in (self.ladd, self.dmd, self.data, self.train, self.scale, self.ship):
            section.validate()
        if self.method == "dmd" and self.scale.lora_rank and self.dmd.gan_weight:
            raise ValueError("dmd.gan_weight > 0 with a LoRA student (scale.lora_rank > 0) is not supported: set "
                             "dmd.gan_weight = 0, or scale.lora_rank = 0 (full student and fake score)")
        if self.data.real == "renders" and self.regression_weight():
            raise ValueError(f"{self.method}.regression_weight needs the teacher's samples (data.real = \"teacher\"): a render has "
                             "no starting noise to regress from")
        if (self.train.student_init or self.train.init_recipe) and self.scale.lora_rank:
            raise ValueError("train.student_init starts a full student from other weights; a LoRA student "
                             "(scale.lora_rank > 0) shares the teacher's")

    def regression_weight(self) -> float:
        """The active method's regression anchor (its batches then start from the teacher's own noise)."""
        return getattr(self, self.method).regression_weight
