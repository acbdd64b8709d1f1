"""LADD calibration: a short run with config overrides, the student's accuracy / held-out accuracy / FD
at N = 1, 2, 4 on every train and held-out prompt every ``eval_every`` steps (stock ZImagePipeline).

    python scripts/ladd_calibration.py c5 '{"steps": 300, "eval_every": 300, "skip0": true}'

The JSON overrides configs/shapes-ladd.toml; the run directory is runs/calib/<name>, the results
runs/calib/<name>.json. Lines starting with EVAL give {setting: (train joint, held-out joint, FD)}.
"""

import json
import sys
import time

from zlab import shapes
from zlab.ladd.student import student_pipeline
from zlab.ladd.trainer import LADDConfig, train_ladd
from zlab.shapes_net import ShapesNet
from zlab.teacher_lab import evaluate_prompts
from zlab.train.config import load_config
from zlab.zimage import load_pipeline

name = sys.argv[1]
overrides = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
eval_every = overrides.pop("eval_every", 0)
skip0 = overrides.pop("skip0", False)
config = load_config(LADDConfig, "configs/shapes-ladd.toml", **overrides)
net = ShapesNet.load("checkpoints/shapes-net")
teacher = load_pipeline(config.teacher)
train, held = shapes.enumerate_captions("train"), shapes.enumerate_captions("heldout")
settings = {f"N={n}": {"num_inference_steps": n, "guidance_scale": 0.0, **shapes.SAMPLING_BASE} for n in (1, 2, 4)}
results = []


def evaluate(step, student, disc):
    if skip0 and step == 0:
        return
    pipe = student_pipeline(teacher, student)
    rows, _ = evaluate_prompts(pipe, settings, net, train)
    held_rows, _ = evaluate_prompts(pipe, settings, None, held)
    line = {"step": step, **{r["setting"]: (round(r["acc_joint"], 3), round(h["acc_joint"], 3), round(r["fd"], 1))
                             for r, h in zip(rows, held_rows, strict=True)}}
    results.append(line)
    print("EVAL", json.dumps(line), flush=True)


start = time.perf_counter()
train_ladd(config, f"runs/calib/{name}", callback=evaluate, callback_every=eval_every or config.steps)
print(f"TRAIN_S {time.perf_counter() - start:.0f}")
with open(f"runs/calib/{name}.json", "w") as f:
    json.dump({"config": overrides, "results": results}, f)
