"""Train the tiny ``AutoencoderKL`` on Shapes renders, then measure its latent shift and scale.

Loss: L1 reconstruction + a small KL to N(0, I) (the Flux/SD recipe without the GAN and LPIPS terms,
which flat-coloured shapes do not need). After training, ``shift_factor`` and ``scaling_factor`` are
measured on data so that normalised latents ``z = (z_raw - shift) * scale`` have zero mean and unit
variance (as ``ZImagePipeline`` expects), and written into the VAE's config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from torch.utils.data import DataLoader

from zlab.atomic import write_folder
from zlab.checks import check_range
from zlab.shapes.dataset import ShapesDataset
from zlab.tiny import TINY_SIZES, build_vae
from zlab.train.config import ShapesRunConfig, check_common
from zlab.train.loop import fit, make_accelerator, optimizer_step, resume_run, seed_everything, warmup_cosine


@dataclass
class VAEConfig(ShapesRunConfig):
    """One VAE run. ``size`` names the architecture in :data:`zlab.tiny.TINY_SIZES`."""

    steps: int = 3000
    kl_weight: float = 1e-6
    stats_images: int = 2048
    min_roundtrip_joint: float = 0.0  # make-teacher stops before the teacher if round trips score lower

    def validate(self) -> None:
        check_common(self)
        check_range("kl_weight", self.kl_weight, 0.0, 1.0)
        check_range("min_roundtrip_joint", self.min_roundtrip_joint, 0.0, 1.0)


def _batches(config: VAEConfig, start_step: int):
    """Endless deterministic stream of image batches; resuming skips straight to ``start_step``."""
    data = ShapesDataset("train", config.image_size, length=config.steps * config.batch_size, seed=config.seed)
    start = start_step * config.batch_size
    subset = torch.utils.data.Subset(data, range(start, len(data)))
    return iter(DataLoader(subset, batch_size=config.batch_size, shuffle=False, num_workers=0))


@torch.no_grad()
def measure_latent_stats(vae: AutoencoderKL, n_images: int, image_size: int, seed: int = 12345) -> tuple[float, float]:
    """``(shift_factor, scaling_factor)`` = (mean, 1 / std) of raw latents (posterior mode) over renders."""
    data = ShapesDataset("train", image_size, length=n_images, seed=seed)
    latents = [vae.encode(b["image"].to(vae.device)).latent_dist.mode().cpu()  # the VAE may be on a GPU
               for b in DataLoader(data, batch_size=128)]
    z = torch.cat(latents)
    return float(z.mean()), float(1.0 / z.std())


def train_vae(config: VAEConfig, run_dir: str | Path, resume: bool = False, progress: bool = True) -> AutoencoderKL:
    """Train (or resume) a VAE in ``run_dir``; writes ``run_dir/vae`` (diffusers format) at the end."""
    run_dir = Path(run_dir)
    accelerator = make_accelerator()
    seed_everything(config.seed)
    vae = build_vae(TINY_SIZES[config.size])
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, config.warmup, config.steps))
    step, losses, _ = resume_run(run_dir, config, resume, model=vae, optimizer=optimizer, scheduler=scheduler)
    vae, optimizer = accelerator.prepare(vae, optimizer)
    batches = _batches(config, step)

    def state(step: int) -> dict | None:
        return {"config": asdict(config), "step": step, "losses": losses, "model": accelerator.unwrap_model(vae).state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()} if accelerator.is_main_process else None

    def train_step(step: int) -> dict[str, str]:
        images = next(batches)["image"].to(accelerator.device)
        posterior = vae.encode(images).latent_dist
        recon = vae.decode(posterior.sample()).sample
        rec_loss = (recon - images).abs().mean()
        kl = posterior.kl().mean() / images[0].numel()
        optimizer_step(accelerator, rec_loss + config.kl_weight * kl, vae, optimizer, scheduler, config.grad_clip, step)
        losses.append(rec_loss.item())
        return {"l1": f"{rec_loss.item():.4f}", "kl": f"{kl.item():.1f}"}

    vae.train()
    fit(train_step, step, config.steps, desc="vae", progress=progress and accelerator.is_main_process, run_dir=run_dir,
        state_fn=state, checkpoint_every=config.checkpoint_every)

    vae = accelerator.unwrap_model(vae).eval()
    shift, scale = measure_latent_stats(vae, config.stats_images, config.image_size)
    vae.register_to_config(shift_factor=shift, scaling_factor=scale)
    if accelerator.is_main_process:
        write_folder(run_dir / "vae", vae.save_pretrained)
    return vae
