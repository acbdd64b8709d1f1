"""Load, save and run a Z-Image pipeline, tiny or real, through zlab's one sampler.

A zlab checkpoint is a stock diffusers ``ZImagePipeline`` folder; the same functions open the shipped
tiny folders, a local copy of the real model, or a hub id such as ``Tongyi-MAI/Z-Image``.

Example:
    >>> pipe = load_pipeline("checkpoints/shapes-teacher")
    >>> out = generate(pipe, ["a large red circle at the top left"], num_inference_steps=50, s=5.0, seed=0)
    >>> images = decode(pipe, out.latents)          # (B, H, W, 3) floats in [0, 1]
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor

from zlab.atomic import write_folder
from zlab.flow import resolution_mu, zimage_velocity
from zlab.sampling import Callback, SampleOutput, sample

__all__ = [
    "REAL_TRANSFORMER_CONFIG", "load_pipeline", "save_pipeline", "read_sampling", "encode_prompts",
    "schedule", "velocity_model", "initial_noise", "generate", "decode", "encode_images",
    "check_size", "parameter_breakdown", "real_transformer_report", "init_kwargs",
    "REAL_SCHEDULER_CONFIG", "REAL_TURBO_SCHEDULER_CONFIG", "REAL_VAE_LATENT_NORM", "sampling_shift",
]

# transformer/config.json of the published Z-Image checkpoints (diffusers' defaults are the same).
REAL_TRANSFORMER_CONFIG = {
    "all_patch_size": [2], "all_f_patch_size": [1], "in_channels": 16, "dim": 3840, "n_layers": 30,
    "n_refiner_layers": 2, "n_heads": 30, "n_kv_heads": 30, "norm_eps": 1e-05, "qk_norm": True,
    "cap_feat_dim": 2560, "rope_theta": 256.0, "t_scale": 1000.0, "axes_dims": [32, 48, 48],
    "axes_lens": [1536, 512, 512],
}

# scheduler/scheduler_config.json of the published checkpoints, as shipped on the Hugging Face hub:
# Tongyi-MAI/Z-Image (the base model, 28-50 steps with CFG: the teacher LADD distils) and
# Tongyi-MAI/Z-Image-Turbo (the distilled 8-step model). Both use a *static* shift: with
# use_dynamic_shifting false the stock scheduler ignores the mu that ZImagePipeline computes.
REAL_SCHEDULER_CONFIG = {
    "_class_name": "FlowMatchEulerDiscreteScheduler", "_diffusers_version": "0.37.0.dev0",
    "num_train_timesteps": 1000, "use_dynamic_shifting": False, "shift": 6.0,
}
REAL_TURBO_SCHEDULER_CONFIG = {
    "_class_name": "FlowMatchEulerDiscreteScheduler", "_diffusers_version": "0.36.0.dev0",
    "num_train_timesteps": 1000, "use_dynamic_shifting": False, "shift": 3.0,
}

# vae/config.json of the published checkpoints (the Flux VAE): z = (z_raw - shift_factor) * scaling_factor
REAL_VAE_LATENT_NORM = {"shift_factor": 0.1159, "scaling_factor": 0.3611}

SAMPLING_FILE = "sampling.json"
MIN_SIDE, MAX_SIDE = 32, 2048


def check_size(height: int, width: int, multiple: int = 16, max_side: int = MAX_SIDE) -> None:
    """Raise a ValueError unless both sides are multiples of ``multiple`` within [32, ``max_side``]."""
    for name, side in (("height", height), ("width", width)):
        if not isinstance(side, int) or side % multiple or not MIN_SIDE <= side <= max_side:
            raise ValueError(f"{name} must be a multiple of {multiple} in [{MIN_SIDE}, {max_side}], got {side!r}")


def load_pipeline(path_or_id: str | os.PathLike, device: str | torch.device = "cpu",
                  dtype: torch.dtype = torch.float32) -> ZImagePipeline:
    """Open a Z-Image pipeline from a local folder or a hub id, with clear errors for anything else."""
    path = Path(path_or_id)
    if path.exists():
        index = path / "model_index.json"
        if not index.is_file():
            raise ValueError(f"{path} is not a diffusers pipeline folder (no model_index.json)")
        cls = json.loads(index.read_text()).get("_class_name")
        if cls != "ZImagePipeline":
            raise ValueError(f"{path} holds a {cls}, not a ZImagePipeline")
    elif str(path_or_id).count("/") != 1 or str(path_or_id).startswith((".", "/")):
        raise FileNotFoundError(f"no pipeline folder at {path_or_id!s} (and it is not a hub id like 'org/name')")
    pipe = ZImagePipeline.from_pretrained(str(path_or_id), dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def save_pipeline(pipe: ZImagePipeline, path: str | os.PathLike, sampling: dict | None = None,
                  write_extra=None) -> Path:
    """Write ``pipe`` (safetensors) and optional ``sampling.json`` atomically (see :func:`zlab.atomic.write_folder`).

    ``write_extra(folder)``, if given, adds files of its own (a model card, discriminator heads)
    inside the same all-or-nothing write.
    """

    def write(tmp: Path) -> None:
        pipe.save_pretrained(tmp, safe_serialization=True)
        if sampling is not None:
            (tmp / SAMPLING_FILE).write_text(json.dumps(sampling, indent=2) + "\n")
        if write_extra is not None:
            write_extra(tmp)

    return write_folder(path, write)


def read_sampling(path: str | os.PathLike) -> dict:
    """The stock-pipeline keyword arguments a checkpoint is meant to be sampled with."""
    return json.loads((Path(path) / SAMPLING_FILE).read_text())


def encode_prompts(pipe: ZImagePipeline, prompts: Sequence[str], max_sequence_length: int = 512) -> list[Tensor]:
    """Qwen3 prompt path of the stock pipeline: chat template, hidden_states[-2], padding dropped.

    Returns one (L_i, D) tensor per prompt; ``""`` gives the unconditional embedding used by CFG.
    """
    embeds, _ = pipe.encode_prompt(list(prompts), device=pipe.device, do_classifier_free_guidance=False,
                                   max_sequence_length=max_sequence_length)
    return embeds


def schedule(scheduler: FlowMatchEulerDiscreteScheduler, num_steps: int, height: int, width: int,
             sigmas: Sequence[float] | None = None, vae_scale_factor: int = 8) -> Tensor:
    """Lab times t_0 = 1 > ... > t_N = 0 that ``ZImagePipeline`` would use for this scheduler.

    The scheduler's noise level sigma *is* the lab's t. Default ``linspace(1, 1/N, N)`` as in
    ``ZImagePipeline``, then the scheduler's own (static or resolution-dependent) shift.
    """
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    sched = FlowMatchEulerDiscreteScheduler.from_config(scheduler.config)
    image_seq_len = (height // (2 * vae_scale_factor)) * (width // (2 * vae_scale_factor))
    cfg = sched.config
    mu = resolution_mu(image_seq_len, cfg.get("base_image_seq_len", 256), cfg.get("max_image_seq_len", 4096),
                       cfg.get("base_shift", 0.5), cfg.get("max_shift", 1.15))
    if sigmas is None:
        sigmas = torch.linspace(1.0, 1 / num_steps, num_steps).tolist()
    sched.set_timesteps(sigmas=list(sigmas), mu=mu)
    return sched.sigmas.clone()


def sampling_shift(scheduler_config: dict, height: int, width: int, vae_scale_factor: int = 8) -> tuple[float, float]:
    """``(mu, s)``: the mu ``ZImagePipeline`` computes for this size, and the shift s its scheduler applies.

    The pipeline always computes ``mu`` from the number of image tokens and passes it on;
    ``FlowMatchEulerDiscreteScheduler.set_timesteps`` uses it (``s = exp(mu)``) only when the config
    sets ``use_dynamic_shifting``, and otherwise applies the config's static ``shift``.
    """
    cfg = dict(FlowMatchEulerDiscreteScheduler.from_config(scheduler_config).config)
    image_seq_len = (height // (2 * vae_scale_factor)) * (width // (2 * vae_scale_factor))
    mu = resolution_mu(image_seq_len, cfg["base_image_seq_len"], cfg["max_image_seq_len"], cfg["base_shift"],
                       cfg["max_shift"])
    if not cfg["use_dynamic_shifting"]:
        return mu, float(cfg["shift"])
    if cfg["time_shift_type"] != "exponential":
        raise ValueError(f"only the exponential time shift is s = exp(mu), got {cfg['time_shift_type']!r}")
    return mu, math.exp(mu)


def velocity_model(transformer: ZImageTransformer2DModel):
    """``model(x, t, prompt_embeds) -> v`` for :func:`zlab.sampling.sample`."""
    return functools.partial(zimage_velocity, transformer)


def initial_noise(pipe: ZImagePipeline, batch: int, height: int, width: int,
                  generator: torch.Generator | list[torch.Generator] | None = None) -> Tensor:
    """Starting latents, drawn exactly as ``ZImagePipeline.prepare_latents`` draws them."""
    check_size(height, width, 2 * pipe.vae_scale_factor)
    f = 2 * pipe.vae_scale_factor
    shape = (batch, pipe.transformer.config.in_channels, 2 * (height // f), 2 * (width // f))
    return randn_tensor(shape, generator=generator, device=pipe.device, dtype=torch.float32)


def generate(pipe: ZImagePipeline, prompts: Sequence[str], *, num_inference_steps: int = 50,
             s: float = 1.0, cfg_truncation: float = 1.0, height: int = 64, width: int = 64,
             seed: int | None = None, generator: torch.Generator | None = None, latents: Tensor | None = None,
             timesteps: Sequence[float] | None = None, method: str = "euler", negative_prompt: str = "",
             callback: Callback | None = None) -> SampleOutput:
    """Text to latents with zlab's sampler on ``pipe``'s own components.

    With a seed (or generator), the same starting noise as ``ZImagePipeline(..., generator=...)``.
    ``timesteps`` overrides the scheduler's schedule with explicit lab times.
    """
    if not prompts or any(not isinstance(p, str) or not p.strip() for p in prompts):
        raise ValueError("prompts must be a non-empty list of non-empty strings")
    if generator is None and seed is not None:
        generator = torch.Generator(device="cpu").manual_seed(seed)
    if latents is None:
        latents = initial_noise(pipe, len(prompts), height, width, generator)
    if timesteps is None:
        timesteps = schedule(pipe.scheduler, num_inference_steps, height, width, vae_scale_factor=pipe.vae_scale_factor)
    with torch.no_grad():
        cond = encode_prompts(pipe, prompts)
        uncond = encode_prompts(pipe, [negative_prompt] * len(prompts)) if s != 1.0 else None
        return sample(velocity_model(pipe.transformer), latents, timesteps, cond, uncond, s=s,
                      cfg_truncation=cfg_truncation, method=method, generator=generator, callback=callback)


def raw_latents(vae, latents: Tensor) -> Tensor:
    """Normalised latents back to what the VAE decodes: ``z_raw = z / scale + shift`` (its config's factors)."""
    return latents.to(vae.dtype) / vae.config.scaling_factor + vae.config.shift_factor


def decode(pipe: ZImagePipeline, latents: Tensor) -> Tensor:
    """Normalised latents to images (B, H, W, 3) in [0, 1] with the pipeline's VAE (:func:`decode_with`)."""
    return decode_with(pipe.vae, latents)


def decode_with(vae, latents: Tensor) -> Tensor:
    """Normalised latents to images (B, H, W, 3) in [0, 1]: ``z_raw = z / scale + shift``, then ``vae``."""
    with torch.no_grad():
        image = vae.decode(raw_latents(vae, latents.to(vae.device, vae.dtype)), return_dict=False)[0]
    return (image.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu()


def encode_images(vae, images: Tensor, generator: torch.Generator | None = None, sample_posterior: bool = False) -> Tensor:
    """Images (B, 3, H, W) in [-1, 1] to normalised latents ``z = (z_raw - shift) * scale`` (VAE config factors)."""
    dist = vae.encode(images.to(vae.dtype)).latent_dist
    z_raw = dist.sample(generator) if sample_posterior else dist.mode()
    return (z_raw - vae.config.shift_factor) * vae.config.scaling_factor


def parameter_breakdown(transformer: torch.nn.Module) -> dict[str, int]:
    """Parameter counts of a Z-Image transformer by part: main layers, refiners, embedders, final layer."""
    parts = {"main layers": ("layers",), "noise refiner": ("noise_refiner",),
             "context refiner": ("context_refiner",),
             "embedders": ("all_x_embedder", "cap_embedder", "t_embedder", "x_pad_token", "cap_pad_token",
                           "siglip_embedder", "siglip_refiner", "siglip_pad_token"),
             "final layer": ("all_final_layer",)}
    counts = {name: 0 for name in parts}
    for pname, p in transformer.named_parameters():
        top = pname.split(".")[0]
        part = next((name for name, prefixes in parts.items() if top in prefixes), None)
        if part is None:
            raise KeyError(f"parameter {pname} belongs to no known part")
        counts[part] += p.numel()
    counts["total"] = sum(counts.values())
    return counts


def init_kwargs(config) -> dict:
    """A diffusers model config (``model.config`` or a config.json dict) without its private ``_`` keys."""
    return {k: v for k, v in dict(config).items() if not k.startswith("_")}


def real_transformer_report(config: dict | None = None) -> dict[str, int]:
    """Build the real 6B transformer on the meta device (no memory, no download) and count it."""
    with torch.device("meta"):
        transformer = ZImageTransformer2DModel(**(config or REAL_TRANSFORMER_CONFIG))
    return parameter_breakdown(transformer)
