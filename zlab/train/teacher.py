"""Train the tiny Z-Image teacher with flow matching (Lipman et al. 2023) on Shapes latents.

Per step: latents ``x0`` of train-split renders (encoded once by the trained VAE), their captions'
Qwen3 embeddings (computed once; the text encoder stays frozen), caption dropout for CFG,
``t = shift(sigmoid(N(m, s)))`` (logit-normal times, SD3: Esser et al. 2024), ``x_t = (1 - t) x0 + t eps`` and the MSE to ``v = eps - x0``.
The transformer's weights are tracked by an EMA with warm-up; the EMA weights are what ship.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, ZImagePipeline
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from zlab.flow import add_noise, resolution_mu, sample_logit_normal, time_shift, velocity_target, zimage_velocity
from zlab.shapes import ShapesDataset, enumerate_captions, image_to_tensor, render_batch
from zlab.tiny import TINY_SIZES, TinySize, build_scheduler, build_text_encoder, build_tokenizer, build_transformer
from zlab.train.config import check_common, check_range
from zlab.train.loop import make_accelerator, optimizer_step, resume_run, save_checkpoint, seed_everything, warmup_cosine
from zlab.zimage import encode_images, encode_prompts


@dataclass
class TeacherConfig:
    """One teacher run. Architecture from :data:`zlab.tiny.TINY_SIZES` with optional overrides."""

    size: str = "tiny"
    dim: int = 0  # 0 keeps the size's value
    n_layers: int = 0
    image_size: int = 64
    num_latents: int = 20000
    steps: int = 10000
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 300
    weight_decay: float = 0.0
    grad_clip: float = 1.0
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
    seed: int = 0
    checkpoint_every: int = 1000

    def validate(self) -> None:
        if self.mixed_precision not in ("no", "bf16"):
            raise ValueError(f"mixed_precision must be 'no' or 'bf16', got {self.mixed_precision!r}")
        check_common(self)
        check_range("caption_dropout", self.caption_dropout, 0.0, 1.0)
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

    def training_shift(self) -> float:
        """The shift applied to training times, the same one the scheduler applies when sampling."""
        if not self.resolution_shift:
            return self.shift
        tokens = (self.image_size // 16) ** 2
        return math.exp(resolution_mu(tokens))


@torch.no_grad()
def encode_dataset(vae: AutoencoderKL, config: TeacherConfig, batch: int = 256) -> tuple[torch.Tensor, list[str]]:
    """Normalised latents and captions of ``num_latents`` train-split renders (held-out pairs excluded)."""
    data = ShapesDataset("train", config.image_size, length=config.num_latents, seed=config.seed + 1)
    latents, captions = [], []
    for start in tqdm(range(0, len(data), batch), desc="encode latents", leave=False):
        draws = [data.draw(i) for i in range(start, min(start + batch, len(data)))]
        images = image_to_tensor(render_batch([s for s, _ in draws], data.size, [j for _, j in draws]))
        latents.append(encode_images(vae, images.to(vae.device)).cpu())
        captions += [s.caption for s, _ in draws]
    return torch.cat(latents), captions


def build_teacher_pipeline(config: TeacherConfig, vae: AutoencoderKL) -> ZImagePipeline:
    """Fresh teacher pipeline around a trained VAE; the Qwen3 encoder is random and stays frozen."""
    size = config.architecture()
    seed_everything(config.seed)
    tokenizer = build_tokenizer()
    pipe = ZImagePipeline(scheduler=build_scheduler(size), vae=vae, tokenizer=tokenizer,
                          text_encoder=build_text_encoder(size, len(tokenizer)), transformer=build_transformer(size))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def train_teacher(config: TeacherConfig, vae_path: str | Path, run_dir: str | Path, resume: bool = False,
                  progress: bool = True) -> ZImagePipeline:
    """Train (or resume) the teacher in ``run_dir``; returns the pipeline carrying the EMA weights."""
    run_dir = Path(run_dir)
    accelerator = make_accelerator(config.mixed_precision)
    vae = AutoencoderKL.from_pretrained(vae_path).eval()
    pipe = build_teacher_pipeline(config, vae)
    transformer = pipe.transformer
    generator = seed_everything(config.seed)

    latents, captions = encode_dataset(vae.to(accelerator.device), config)  # on the GPU when there is one
    vae.to("cpu")  # the pipeline's other parts (text encoder) stay on the CPU during training
    vocab = enumerate_captions("train") + [""]
    caption_ids = torch.tensor([vocab.index(c) for c in captions])
    with torch.no_grad():
        text = [e.to(accelerator.device) for e in encode_prompts(pipe, vocab)]
    empty = len(vocab) - 1

    optimizer = torch.optim.AdamW(transformer.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, config.warmup, config.steps))
    ema = EMAModel(transformer.parameters(), decay=config.ema_decay, use_ema_warmup=True, power=config.ema_power)
    step, losses, state = resume_run(run_dir, config, resume, model=transformer, optimizer=optimizer,
                                     scheduler=scheduler, ema=ema)
    if state is not None:
        generator.set_state(state["generator"])
    model, optimizer = accelerator.prepare(transformer, optimizer)
    ema.to(accelerator.device)  # the shadow weights were made where the model was built (CPU); ema.step needs them together
    bar = tqdm(total=config.steps, initial=step, desc="teacher", disable=not progress or not accelerator.is_main_process)

    def checkpoint():
        if accelerator.is_main_process:
            save_checkpoint(run_dir, {"config": asdict(config), "step": step, "losses": losses,
                                      "model": accelerator.unwrap_model(model).state_dict(),
                                      "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                      "ema": ema.state_dict(), "generator": generator.get_state()})

    model.train()
    while step < config.steps:
        idx = torch.randint(len(latents), (config.batch_size,), generator=generator)
        x0 = latents[idx].to(accelerator.device)
        ids = caption_ids[idx].clone()
        ids[torch.rand(config.batch_size, generator=generator) < config.caption_dropout] = empty
        t = time_shift(sample_logit_normal(config.batch_size, config.t_logit_mean, config.t_logit_std, generator),
                       config.training_shift()).to(accelerator.device)
        eps = torch.randn(x0.shape, generator=generator).to(accelerator.device)
        with accelerator.autocast():
            v = zimage_velocity(model, add_noise(x0, eps, t), t, [text[i] for i in ids.tolist()])
        loss = torch.nn.functional.mse_loss(v, velocity_target(x0, eps))
        optimizer_step(accelerator, loss, model, optimizer, scheduler, config.grad_clip, step)
        ema.step(accelerator.unwrap_model(model).parameters())
        step += 1
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}", lr=f"{scheduler.get_last_lr()[0]:.1e}")
        if step % config.checkpoint_every == 0 or step == config.steps:
            checkpoint()
    bar.close()

    pipe.transformer = accelerator.unwrap_model(model).eval()
    ema.copy_to(pipe.transformer.parameters())
    return pipe.to(accelerator.device)  # whole on one device: diffusers sends prompt ids where the transformer is
