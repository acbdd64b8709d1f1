"""LADD diagnostic: can the heads tell teacher samples from the untrained student's at all?

Trains only the discriminator heads (the student stays the teacher's copy) for a few steps and prints
each head's accuracy over the last 20 steps. Used to choose t_hat's m for the 64-px Shapes world:

    python scripts/heads_only.py '{"t_hat_m": 1.0}'     # LADD's default (Sauer et al. 2024)
    python scripts/heads_only.py '{"t_hat_m": -1.0}'    # configs/shapes-ladd.toml

The JSON overrides configs/shapes-ladd.toml; "steps" sets the number of head updates (default 100).
Needs the synthetic data of `zlab synth` (config key `data`).
"""

import json
import sys

import torch

from zlab.ladd.data import SynthData
from zlab.ladd.losses import discriminator_loss, head_accuracy
from zlab.ladd.setup import build_models
from zlab.ladd.trainer import LADDConfig, draw_batch, ladd_forward, load_teacher
from zlab.train.config import load_config

overrides = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
steps = overrides.pop("steps", 100)
config = load_config(LADDConfig, "configs/shapes-ladd.toml", **overrides)
torch.manual_seed(0)
data = SynthData.load(config.data)
models = build_models(config, load_teacher(config.teacher), data.embeds[0].shape[-1])
opt = torch.optim.Adam(models.disc.parameters(), lr=config.heads_lr, betas=config.betas)
generator = torch.Generator().manual_seed(0)
accs = []
for step in range(steps):
    batch = draw_batch(data, config, step=config.warmup_steps, generator=generator)  # full schedule: mostly t = 1
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        fwd = ladd_forward(models.student, models.tap, batch)
    n = len(batch.t_hat)
    logits = models.disc([torch.cat([r, f]) for r, f in zip(fwd.real_maps, fwd.fake_maps, strict=True)],
                         batch.t_hat.repeat(2), batch.text.repeat(2, 1))
    real, fake = [l[:n] for l in logits], [l[n:] for l in logits]
    loss = discriminator_loss(real, fake, config.loss)
    opt.zero_grad()
    loss.backward()
    opt.step()
    accs.append(head_accuracy(real, fake))
    if (step + 1) % 20 == 0:
        recent = accs[-20:]
        print(f"step {step + 1}: D {loss.item():.3f}, head accuracy (last 20 steps) "
              f"{[round(sum(a[k] for a in recent) / len(recent), 3) for k in range(len(recent[0]))]}", flush=True)
