"""DMD in the trainer (:mod:`zlab.train.distill`): its batches and its step's bookkeeping.

The step itself is :func:`zlab.distill.dmd.dmd_step`. Its batches need the prompts' embeddings (from the teacher's
synthetic samples, whose latents only the regression anchor reads), the empty prompt's embedding for the teacher's
unconditional branch, and every random draw from the run's generator (a resumed run draws what the straight one did).
"""

from __future__ import annotations

import torch
from torch import Tensor

from zlab.distill.dmd import DMDBatch, DMDStepResult, dmd_step
from zlab.distill.schedule import STUDENT_TIMESTEPS, backward_sim_dt
from zlab.train.distill_config import DistillConfig
from zlab.train.synth import SynthData, draw_samples

CRITIC = "fake_score"  # the checkpoint's key for the fake score, and for its optimizer's state
OPT_CRITIC = "opt_fake"


def new_log() -> dict:
    return {"g_loss": [], "fake_loss": [], "dm_norm": [], "ca_norm": [], "skipped": [], "fake_skipped": []}


def start(config: DistillConfig, data, device) -> Tensor:
    """The empty prompt's embedding (CFG's unconditional branch), by the teacher's own text encoder."""
    from zlab.zimage import encode_prompts, load_pipeline

    pipe = load_pipeline(config.data.teacher)
    with torch.no_grad():
        null = encode_prompts(pipe, [""])[0]
    del pipe
    return null.to(device)


def draw_batch(data: SynthData | list[SynthData], config: DistillConfig, generator: torch.Generator, null: Tensor,
               device: torch.device | str = "cpu") -> DMDBatch:
    """A batch of prompts (one aspect bucket) and all of its noise: the student's times and starting noise, the DM
    and CA re-noising levels and noises, and the fake score's seed."""
    options = config.dmd
    data, idx, x0, embeds = draw_samples(data, config.train.batch_size, generator)
    n = len(idx)
    times = torch.tensor(STUDENT_TIMESTEPS, dtype=torch.float32)
    t = times[torch.multinomial(torch.tensor(options.student_probs, dtype=torch.float64), n, replacement=True,
                                generator=generator)]
    eps = data.initial_noise(idx) if options.regression_weight else torch.randn(x0.shape, generator=generator)
    sim_dt = backward_sim_dt(t, options.backward_sim, generator)
    tau_dm, eps_dm = options.dm_noise.sample(t, generator), torch.randn(x0.shape, generator=generator)
    tau_ca, eps_ca = options.ca_noise.sample(t, generator), torch.randn(x0.shape, generator=generator)
    fake_seed = int(torch.randint(2**62, (1,), generator=generator))
    to = lambda x: x.to(device) if x is not None else None
    t_gan = eps_gan = None
    if options.gan_weight:  # drawn last: without the GAN term a run draws exactly what it drew before the term existed
        t_gan, eps_gan = options.gan_noise.sample(torch.ones(n), generator), torch.randn(x0.shape, generator=generator)
    return DMDBatch(to(x0), [to(e) for e in embeds], [null] * n, to(t), to(eps), to(sim_dt), to(tau_dm), to(eps_dm),
                    to(tau_ca), to(eps_ca), fake_seed, to(t_gan), to(eps_gan))


def train_step(parts, step: int, generator: torch.Generator) -> DMDStepResult:
    """Draw a batch (and ``fake_updates - 1`` more for the fake score) and take one :func:`~zlab.distill.dmd.dmd_step`."""
    draw = lambda: draw_batch(parts.data, parts.config, generator, parts.extra, parts.accelerator.device)
    batch, fake_batches = draw(), [draw() for _ in range(parts.config.dmd.fake_updates - 1)]
    return dmd_step(parts.accelerator, parts.student, parts.critic, parts.models.teacher, batch, parts.opt_student,
                    parts.opt_critic, parts.config.dmd, fake_batches=fake_batches,
                    grad_clip=parts.config.train.grad_clip, sampler=parts.sampler, ema=parts.ema, tap=parts.models.tap)


def record(log: dict, result: DMDStepResult, step: int) -> dict[str, str]:
    """Log one step; the progress bar's running means of the last 20 steps."""
    if not result.student_ok:
        log["skipped"].append(step)
    if not result.fake_ok:
        log["fake_skipped"].append(step)
    log["g_loss"].append(result.g_loss.item())
    log["fake_loss"].append(result.fake_loss.item())
    for name in ("dm", "ca"):
        log[f"{name}_norm"].append(result.grad_norms.get(name, 0.0))
    if result.gan_d_loss is not None:
        log.setdefault("gan_g_loss", []).append(result.gan_g_loss.item())
        log.setdefault("gan_d_loss", []).append(result.gan_d_loss.item())
    mean = lambda key: sum(log[key][-20:]) / len(log[key][-20:])
    return {"G": f"{mean('g_loss'):.3f}", "fake": f"{mean('fake_loss'):.3f}", "dm": f"{mean('dm_norm'):.2f}",
            "ca": f"{mean('ca_norm'):.2f}"}
