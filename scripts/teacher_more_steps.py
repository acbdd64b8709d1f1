"""Teacher diagnostic: would more training steps fix the named-accuracy miss on open prompts?

A from-scratch teacher with more steps does not fit a session on a slow day, so this continues the shipped
teacher's training instead: its (EMA) weights, the shipped recipe's data and loss, a fresh AdamW entering the
cosine schedule of a ``10000 + EXTRA``-step run at step 10000 (lr about 1.4e-4, down to 1e-4), then measures the
result as ``scripts/named_errors.py`` does, on every VALIDATION prompt with 2+ open attributes x 16 seeds at the
shipped sampling.json, next to the shipped teacher:

    python scripts/teacher_more_steps.py 1500     # extra steps; about 15 min on the 2-core CPU, then 2 x 4 min

Only a hint for the next recipe (fresh Adam moments, not the run's), and validation only: nothing here is reported
as a test number or chosen from one.
"""

import sys
from dataclasses import asdict
from pathlib import Path

import torch
from diffusers.training_utils import EMAModel

from zlab.shapes import prompt_sets
from zlab.measure.evaluate import stock_samples
from zlab.shapes.metrics import prompt_records, summarise
from zlab.tiny import build_transformer
from zlab.train.config import load_config
from zlab.train.loop import save_checkpoint, warmup_cosine
from zlab.train.teacher import TeacherConfig, train_teacher
from zlab.zimage import load_pipeline, read_sampling

TEACHER = Path("checkpoints/shapes-teacher")
RUN = Path("runs/teacher-more-steps")
SEEDS = 16
SHIPPED_STEPS = 10000

extra = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
config = load_config(TeacherConfig, "configs/shapes-teacher.toml", steps=SHIPPED_STEPS + extra)
if not (RUN / "checkpoint.pt").is_file():  # a run that enters the schedule at step 10000 with the shipped weights
    transformer = build_transformer(config.architecture())
    transformer.load_state_dict(load_pipeline(TEACHER).transformer.state_dict())
    optimizer = torch.optim.AdamW(transformer.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, config.warmup, config.steps))
    for _ in range(SHIPPED_STEPS):
        optimizer.step()  # no gradients yet: only keeps the scheduler's step order
        scheduler.step()
    ema = EMAModel(transformer.parameters(), decay=config.ema_decay, use_ema_warmup=True, power=config.ema_power)
    ema.optimization_step = SHIPPED_STEPS
    save_checkpoint(RUN, {"config": asdict(config), "step": SHIPPED_STEPS, "losses": [],
                          "model": transformer.state_dict(), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), "ema": ema.state_dict(),
                          "generator": torch.Generator().manual_seed(config.seed + 7).get_state()})
continued = train_teacher(config, TEACHER / "vae", RUN, resume=True)
continued.set_progress_bar_config(disable=True)

prompts, seeds = prompt_sets.prompts_and_seeds("validation", SEEDS, min_open=2)
for name, pipe in ((f"shipped ({SHIPPED_STEPS} steps)", load_pipeline(TEACHER)),
                   (f"continued to {config.steps} steps", continued)):
    images, _ = stock_samples(pipe, prompts, seeds, read_sampling(TEACHER))
    row = summarise(prompt_records(images, prompts, SEEDS))["2+"]
    print(name, {m: round(row[m][0], 3) for m in ("valid", "named_accuracy", "coverage_entropy")}, flush=True)
