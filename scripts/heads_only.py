"""LADD diagnostic: can the heads tell teacher samples from the untrained student's at all?

Trains only the discriminator heads (the student stays the teacher's copy) for a few steps and prints
each head's accuracy over the last 20 steps. Used to choose t_hat's m for the 64-px Shapes world:

    python scripts/heads_only.py '{"ladd": {"t_hat_m": 1.0}}'     # LADD's default (Sauer et al. 2024)
    python scripts/heads_only.py '{"ladd": {"t_hat_m": -1.0}}'    # configs/shapes-ladd.toml
    python scripts/heads_only.py '{"student": "checkpoints/shapes-student"}'   # fakes from a trained student

The JSON overrides configs/shapes-ladd.toml section by section; "steps" sets the number of head updates (default 100) and
"student" a pipeline folder whose transformer makes the fakes (default: the teacher's copy, as at LADD's
start). With the config's ladd.mismatch_weight > 0 the heads also see each real sample under its neighbour's caption
as fake, as the trainer does. Prints the heads' loss and, per head, the share of real and of fake samples
called right (a head that calls everything fake reads 0 / 1: it tells nothing apart), and how often a real
sample scores higher under its own caption than under a neighbour's different one ("caption": 0.5 is a head that
ignores the caption; the teacher reads the neighbour's caption itself when the config's ladd.head_caption is on).
Needs the synthetic data of `zlab synth` (config key `data.folder`).
"""

import json
import sys

import torch

from zlab.distill.head_calls import head_calls, mean_calls
from zlab.distill.heads import Discriminator
from zlab.distill.ladd import heads_loss, ladd_forward, neighbour_captions
from zlab.flow import add_noise
from zlab.train.config import load_config
from zlab.train.distill import load_teacher
from zlab.train.distill_config import DistillConfig
from zlab.train.ladd import draw_batch
from zlab.train.models import build_models
from zlab.train.synth import load_buckets


@torch.no_grad()
def caption_rank(fwd, batch) -> list[float]:
    """Per head: the share of real samples (whose neighbour has another prompt) scored higher under their own
    caption than under the neighbour's."""
    rolled = neighbour_captions(batch.embeds)
    differ = torch.tensor([a.shape != b.shape or not torch.equal(a, b) for a, b in zip(batch.embeds, rolled)])
    wrong_maps = fwd.wrong_maps  # the trainer's pass, when the config has negatives and a caption tap
    if wrong_maps is None:
        wrong_maps = (models.tap(add_noise(batch.x0, batch.eps_hat, batch.t_hat), batch.t_hat, rolled)
                      if models.tap.caption else fwd.real_maps)
    own = Discriminator.scores(models.disc(fwd.real_maps, batch.t_hat, batch.text))
    other = Discriminator.scores(models.disc(wrong_maps, batch.t_hat, batch.text.roll(1, 0)))
    return (own[differ] > other[differ]).float().mean(0).tolist()


overrides = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
steps = overrides.pop("steps", 100)
student = overrides.pop("student", None)
config = load_config(DistillConfig, "configs/shapes-ladd.toml", **overrides)
torch.manual_seed(0)
data = load_buckets(config.data.folder)  # one synth folder, or one per aspect bucket
models = build_models(config, load_teacher(config.data.teacher), data[0].embeds[0].shape[-1])
if student:
    models.student.load_state_dict(load_teacher(student).state_dict())
opt = torch.optim.Adam(models.disc.parameters(), lr=config.train.heads_lr, betas=config.train.betas)
generator = torch.Generator().manual_seed(0)
accs, ranks = [], []
for step in range(steps):
    batch = draw_batch(data, config, step=config.ladd.warmup_steps, generator=generator)  # full schedule: mostly t = 1
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        fwd = ladd_forward(models.student, models.tap, batch)
    loss, real, fake = heads_loss(models.disc, fwd, batch, config.ladd)  # the trainer's heads loss
    opt.zero_grad()
    loss.backward()
    opt.step()
    accs.append(head_calls(real, fake))
    ranks.append(caption_rank(fwd, batch))
    if (step + 1) % 20 == 0:
        per_head = [(round(r, 2), round(f, 2)) for r, f in mean_calls(accs, last=20)]
        rank = [round(sum(r[k] for r in ranks[-20:]) / 20, 2) for k in range(len(per_head))]
        print(f"step {step + 1}: D {loss.item():.3f}, real / fake called right per head (last 20 steps) "
              f"{per_head}, caption {rank}", flush=True)
