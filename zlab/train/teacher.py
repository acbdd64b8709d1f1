"""Train the tiny Z-Image teacher with flow matching (Lipman et al. 2023) on Shapes latents.

Per step: one aspect bucket (64x64, 64x96, 96x64: one image size per batch, as the tokens of a batch must
line up), latents ``x0`` of train-split renders of that size (encoded once by the trained VAE), their captions
with each attribute left open with probability ``open_prob`` (drawn afresh each step, :mod:`zlab.shapes.open_captions`;
only the train prompts of :mod:`zlab.shapes.prompt_sets`),
the captions' Qwen3 embeddings (computed once; the text encoder stays frozen), caption dropout for CFG,
``t = shift(sigmoid(N(m, s)))`` (logit-normal times, SD3: Esser et al. 2024), ``x_t = (1 - t) x0 + t eps`` and the MSE to ``v = eps - x0``.
The transformer's weights are tracked by an EMA with warm-up; the EMA weights are what ship.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from diffusers import AutoencoderKL, ZImagePipeline, ZImageTransformer2DModel
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from zlab.checks import check_range
from zlab.flow import add_noise, resolution_mu, sample_logit_normal, time_shift, velocity_target, zimage_velocity
from zlab.shapes.dataset import ShapesDataset
from zlab.shapes.draw import image_to_tensor, render_batch
from zlab.shapes.open_captions import ATTRIBUTES, OpenSpec
from zlab.shapes.prompt_sets import prompts
from zlab.shapes.world import canvas_size, enumerate_specs
from zlab.tiny import TINY_SIZES, TinySize, build_scheduler, build_text_encoder, build_tokenizer, build_transformer
from zlab.train.config import ShapesRunConfig, check_common
from zlab.train.loop import fit, make_accelerator, optimizer_step, resume_run, seed_everything, warmup_cosine
from zlab.zimage import encode_images, encode_prompts


@dataclass
class TeacherConfig(ShapesRunConfig):
    """One teacher run. Architecture from :data:`zlab.tiny.TINY_SIZES` with optional overrides."""

    dim: int = 0  # 0 keeps the size's value
    n_layers: int = 0
    # aspect buckets [[height, width], ...], each batch from one; empty: [[image_size, image_size]]
    image_sizes: list = field(default_factory=list)
    open_prob: float = 0.0  # probability that each attribute is left out of a caption (open captions)
    num_latents: int = 20000  # in all, split evenly over the buckets
    steps: int = 10000
    batch_size: int = 64
    warmup: int = 300
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    ema_power: float = 0.75
    caption_dropout: float = 0.1
    t_logit_mean: float = 0.0
    t_logit_std: float = 1.0
    # True: diffusers' resolution-dependent shift exp(mu(tokens)) (scheduler use_dynamic_shifting); else the
    # static `shift`, as the published Z-Image schedulers use (zlab.zimage.REAL_SCHEDULER_CONFIG: 6.0)
    resolution_shift: bool = True
    shift: float = 1.0
    mixed_precision: str = "no"  # "bf16" autocasts matmuls (CPUs with avx512_bf16, GPUs); weights stay fp32
    # torch.compile of the repeated transformer blocks for training only (diffusers' regional compilation);
    # the returned pipeline is eager. scripts/bench_teacher_step.py measures what it buys (1.17-1.29x on 2 CPUs)
    compile_blocks: bool = False
    checkpoint_every: int = 1000

    def validate(self) -> None:
        if self.mixed_precision not in ("no", "bf16"):
            raise ValueError(f"mixed_precision must be 'no' or 'bf16', got {self.mixed_precision!r}")
        check_common(self)
        check_range("caption_dropout", self.caption_dropout, 0.0, 1.0)
        check_range("open_prob", self.open_prob, 0.0, 1.0)
        for size in self.buckets():
            canvas_size(size)
        check_range("ema_decay", self.ema_decay, 0.0, 1.0)
        check_range("shift", self.shift, 0.1, 20.0)
        check_range("t_logit_std", self.t_logit_std, 0.01, 10.0)

    def architecture(self) -> TinySize:
        base = asdict(TINY_SIZES[self.size])
        if self.dim:
            base["dim"] = self.dim
        if self.n_layers:
            base["n_layers"] = self.n_layers
        base["scheduler"] = ({"use_dynamic_shifting": True} if self.resolution_shift
                             else {"shift": self.shift, "use_dynamic_shifting": False})
        return TinySize(**base)

    def buckets(self) -> list[tuple[int, int]]:
        """The ``(height, width)`` aspect buckets."""
        return [tuple(size) for size in self.image_sizes] or [(self.image_size, self.image_size)]

    def training_shift(self, size: tuple[int, int] | None = None) -> float:
        """The shift applied to training times at ``size`` (default: the square ``image_size``), the same one
        the scheduler applies when sampling that size."""
        if not self.resolution_shift:
            return self.shift
        height, width = size or (self.image_size, self.image_size)
        return math.exp(resolution_mu((height // 16) * (width // 16)))


@torch.no_grad()
def encode_dataset(vae: AutoencoderKL, size: tuple[int, int], length: int, seed: int,
                   batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised latents of ``length`` train-split renders at ``size`` (held-out pairs excluded) and the index
    of each one's spec in ``enumerate_specs("train")``."""
    data = ShapesDataset("train", size, length=length, seed=seed)
    index = {spec: i for i, spec in enumerate(data.specs)}
    latents, spec_ids = [], []
    for start in tqdm(range(0, len(data), batch), desc=f"encode latents {size[0]}x{size[1]}", leave=False):
        draws = [data.draw(i) for i in range(start, min(start + batch, len(data)))]
        images = image_to_tensor(render_batch([s for s, _ in draws], data.size, [j for _, j in draws]))
        latents.append(encode_images(vae, images.to(vae.device)).cpu())
        spec_ids += [index[s] for s, _ in draws]
    return torch.cat(latents), torch.tensor(spec_ids)


def training_captions(config: TeacherConfig) -> list[str]:
    """The captions :func:`train_teacher` encodes once, before its first step, the empty caption (CFG's) last: with
    open captions the train prompts of :mod:`zlab.shapes.prompt_sets` only (validation and test captions are never
    seen); with ``open_prob = 0`` the fully named captions of the train split, as before open captions."""
    return (prompts("train") if config.open_prob else [s.caption for s in enumerate_specs("train")]) + [""]


def caption_table(open_prob: float, vocab: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (train spec, caption) pair the teacher trains on, as caption indices in ``vocab`` (270, 32) and
    weights: each of a spec's 32 captions (each subset of its attributes left open) has weight
    ``open_prob ** open * (1 - open_prob) ** named`` if ``vocab`` (the train prompts, :mod:`zlab.shapes.prompt_sets`)
    holds it, else 0.

    Pairs are drawn from the whole table at once (spec and caption together). Given a caption, the spec is
    then uniform over the specs that agree with it, as the world demands; drawing the spec first and then
    only its allowed captions would favour specs with few allowed captions."""
    masks = list(itertools.product((False, True), repeat=len(ATTRIBUTES)))
    prior = torch.tensor([open_prob ** sum(m) * (1 - open_prob) ** (len(m) - sum(m)) for m in masks])
    ids, weights = [], []
    for spec in enumerate_specs("train"):
        captions = [OpenSpec.from_spec(spec, tuple(a for a, o in zip(ATTRIBUTES, m) if o)).caption for m in masks]
        ids.append([vocab.get(c, -1) for c in captions])
        weights.append(prior * torch.tensor([c in vocab for c in captions]))
    weights = torch.stack(weights)
    if not (weights.sum(1) > 0).all():
        raise ValueError(f"open_prob {open_prob} leaves some train spec without a train caption")
    return torch.tensor(ids), weights


def by_spec(spec_ids: torch.Tensor, n_specs: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Latent indices sorted by spec, each spec's first position and count: ``order[start[s] + j]`` for
    ``j < count[s]`` are the latents of spec ``s`` (``spec_ids`` indexes ``enumerate_specs("train")``)."""
    order = torch.argsort(spec_ids, stable=True)
    count = torch.bincount(spec_ids, minlength=n_specs)
    return order, torch.cumsum(count, 0) - count, count


def build_teacher_pipeline(config: TeacherConfig, vae: AutoencoderKL) -> ZImagePipeline:
    """Fresh teacher pipeline around a trained VAE; the Qwen3 encoder is random and stays frozen."""
    size = config.architecture()
    seed_everything(config.seed)
    tokenizer = build_tokenizer()
    pipe = ZImagePipeline(scheduler=build_scheduler(size), vae=vae, tokenizer=tokenizer,
                          text_encoder=build_text_encoder(size, len(tokenizer)), transformer=build_transformer(size))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def eager_copy(transformer: ZImageTransformer2DModel) -> ZImageTransformer2DModel:
    """An uncompiled transformer with ``transformer``'s weights: sampling runs many batch sizes and buckets, each a
    recompilation (and a fallback to eager past torch's recompile limit) for compiled blocks."""
    eager = ZImageTransformer2DModel.from_config(transformer.config)
    eager.load_state_dict(transformer.state_dict())
    return eager


def train_teacher(config: TeacherConfig, vae_path: str | Path, run_dir: str | Path, resume: bool = False,
                  progress: bool = True) -> ZImagePipeline:
    """Train (or resume) the teacher in ``run_dir``; returns the pipeline carrying the EMA weights."""
    run_dir = Path(run_dir)
    accelerator = make_accelerator(config.mixed_precision)
    vae = AutoencoderKL.from_pretrained(vae_path).eval()
    pipe = build_teacher_pipeline(config, vae)
    transformer = pipe.transformer
    generator = seed_everything(config.seed)

    buckets = config.buckets()
    vae.to(accelerator.device)  # encoding on the GPU when there is one
    data = [encode_dataset(vae, size, config.num_latents // len(buckets), seed=config.seed + 1 + k)
            for k, size in enumerate(buckets)]
    vae.to("cpu")  # the pipeline's other parts (text encoder) stay on the CPU during training
    captions = training_captions(config)
    vocab = {caption: i for i, caption in enumerate(captions)}
    table_ids, table_weights = caption_table(config.open_prob, vocab)
    index = [by_spec(spec_ids, len(table_ids)) for _, spec_ids in data]
    # per bucket, only specs with a latent there (all of them at 10,000 latents a bucket; not in tiny tests)
    joint = [(table_weights * (count > 0)[:, None]).flatten() for _, _, count in index]
    with torch.no_grad():
        text = [e.to(accelerator.device) for e in encode_prompts(pipe, captions)]
    empty = vocab[""]

    optimizer = torch.optim.AdamW(transformer.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, config.warmup, config.steps))
    ema = EMAModel(transformer.parameters(), decay=config.ema_decay, use_ema_warmup=True, power=config.ema_power)
    step, losses, state = resume_run(run_dir, config, resume, model=transformer, optimizer=optimizer,
                                     scheduler=scheduler, ema=ema)
    if state is not None:
        generator.set_state(state["generator"])
    if config.compile_blocks:
        transformer.compile_repeated_blocks(dynamic=False)
    model, optimizer = accelerator.prepare(transformer, optimizer)
    ema.to(accelerator.device)  # the shadow weights were made where the model was built (CPU); ema.step needs them together

    def state(step: int) -> dict | None:
        return {"config": asdict(config), "step": step, "losses": losses,
                "model": accelerator.unwrap_model(model).state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "ema": ema.state_dict(),
                "generator": generator.get_state()} if accelerator.is_main_process else None

    def train_step(step: int) -> dict[str, str]:
        bucket = int(torch.randint(len(buckets), (1,), generator=generator))
        pair = torch.multinomial(joint[bucket], config.batch_size, replacement=True, generator=generator)
        specs, ids = pair // table_ids.shape[1], table_ids.flatten()[pair]
        order, start, count = index[bucket]
        pick = (torch.rand(config.batch_size, generator=generator) * count[specs]).long()
        x0 = data[bucket][0][order[start[specs] + pick]].to(accelerator.device)
        ids[torch.rand(config.batch_size, generator=generator) < config.caption_dropout] = empty
        t = time_shift(sample_logit_normal(config.batch_size, config.t_logit_mean, config.t_logit_std, generator),
                       config.training_shift(buckets[bucket])).to(accelerator.device)
        eps = torch.randn(x0.shape, generator=generator).to(accelerator.device)
        with accelerator.autocast():
            v = zimage_velocity(model, add_noise(x0, eps, t), t, [text[i] for i in ids.tolist()])
        loss = torch.nn.functional.mse_loss(v, velocity_target(x0, eps))
        optimizer_step(accelerator, loss, model, optimizer, scheduler, config.grad_clip, step)
        ema.step(accelerator.unwrap_model(model).parameters())
        losses.append(loss.item())
        return {"loss": f"{sum(losses[-50:]) / len(losses[-50:]):.4f}", "lr": f"{scheduler.get_last_lr()[0]:.1e}"}

    model.train()
    fit(train_step, step, config.steps, desc="teacher", progress=progress and accelerator.is_main_process,
        run_dir=run_dir, state_fn=state, checkpoint_every=config.checkpoint_every)

    trained = accelerator.unwrap_model(model)
    pipe.transformer = (eager_copy(trained) if config.compile_blocks else trained).eval()
    ema.copy_to(pipe.transformer.parameters())
    return pipe.to(accelerator.device)  # whole on one device: diffusers sends prompt ids where the transformer is
