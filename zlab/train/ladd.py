"""LADD in the trainer (:mod:`zlab.train.distill`): its batches and its step's bookkeeping.

The step itself is :func:`zlab.distill.ladd.ladd_step`; this module draws its batches from the teacher's synthetic
samples (every random draw from the run's generator, so a resumed run draws what the straight one did) and logs the
heads' losses and calls.
"""

from __future__ import annotations

import torch

from zlab.distill.head_calls import head_accuracy, head_calls, mean_calls
from zlab.distill.heads import pool_text
from zlab.distill.ladd import LADDBatch, StepResult, ladd_step
from zlab.distill.schedule import backward_sim_dt, sample_student_t, sample_t_hat
from zlab.train.distill_config import DistillConfig
from zlab.train.synth import SynthData, draw_samples

CRITIC = "discriminator"  # the checkpoint's key for the heads, and for their optimizer's state
OPT_CRITIC = "opt_heads"


def new_log() -> dict:
    return {"d_loss": [], "g_loss": [], "head_acc": [], "skipped": [], "heads_skipped": [], "head_calls": []}


def start(config: DistillConfig, data, device) -> None:
    """LADD's batches need nothing beside the data."""
    return None


def draw_batch(data: SynthData | list[SynthData], config: DistillConfig, step: int, generator: torch.Generator,
               device: torch.device | str = "cpu") -> LADDBatch:
    """Sample a batch and all of its noise (student t, eps, t_hat, eps') from ``generator``. With several
    aspect buckets (:func:`~zlab.train.synth.load_buckets`), each batch comes from one, drawn uniformly."""
    data, idx, x0, embeds = draw_samples(data, config.train.batch_size, generator)
    n = len(idx)
    t = sample_student_t(n, step, config.ladd.warmup_steps, generator, warmup=config.ladd.warmup_probs, full=config.ladd.full_probs)
    eps = torch.randn(x0.shape, generator=generator)
    if config.ladd.regression_weight:  # x_t on the teacher's own path from noise to x0 (drawn above all the same,
        eps = data.initial_noise(idx)  # so every other draw stays what it is without the regression term)
    t_hat = sample_t_hat(n, config.ladd.t_hat_m, config.ladd.t_hat_s, generator)
    eps_hat = torch.randn(x0.shape, generator=generator)
    sim_dt = backward_sim_dt(t, config.ladd.backward_sim, generator)
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


def train_step(parts, step: int, generator: torch.Generator) -> StepResult:
    """Draw a batch and take one :func:`~zlab.distill.ladd.ladd_step`."""
    batch = draw_batch(parts.data, parts.config, step, generator, parts.accelerator.device)
    heads = parts.accelerator.unwrap_model(parts.critic)
    return ladd_step(parts.accelerator, parts.student, parts.critic, heads, parts.models.tap, batch, parts.opt_student,
                     parts.opt_critic, parts.config.ladd, grad_clip=parts.config.train.grad_clip, sampler=parts.sampler,
                     ema=parts.ema)


def record(log: dict, result: StepResult, step: int) -> dict[str, str]:
    """Log one step; the progress bar's running means of the last 20 steps."""
    if not result.student_ok:
        log["skipped"].append(step)  # nothing moved
    elif not result.heads_ok:
        log["heads_skipped"].append(step)  # the student and its EMA moved, the heads did not
    log["d_loss"].append(result.d_loss.item())
    log["g_loss"].append(result.g_loss.item())
    log["head_acc"].append(head_accuracy(result.real, result.fake))
    log["head_calls"].append(head_calls(result.real, result.fake))
    return {"D": f"{sum(log['d_loss'][-20:]) / len(log['d_loss'][-20:]):.3f}",
            "G": f"{sum(log['g_loss'][-20:]) / len(log['g_loss'][-20:]):.3f}",
            "real_fake": " ".join(f"{r:.2f}:{f:.2f}" for r, f in mean_calls(log["head_calls"], last=20))}
