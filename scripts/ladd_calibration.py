"""LADD calibration on the **validation** set: a short run with config overrides, measured every ``eval_every``
steps through stock ZImagePipeline at N = 1, 2, 4 (validity, named accuracy, coverage and FD, by number of
open attributes: fully named, 2+ open, all).

    python scripts/ladd_calibration.py c5 '{"steps": 300, "eval_every": 100, "skip0": true}'

The JSON overrides configs/shapes-ladd.toml (``per_count`` and ``seeds`` set the validation plan: prompts per
number of open attributes, seeds per prompt; 8 x 16 by default); the run directory is runs/calib/<name>, the
results runs/calib/<name>.json. Lines starting with EVAL give {setting: {group: [valid, named, coverage, FD]}}.
Only validation prompts and seeds are used (zlab.shapes.prompt_sets): a setting chosen here leaves the test set clean.
"""

import json
import sys
import time

from zlab.shapes import prompt_sets
from zlab.shapes import world
from zlab.measure.evaluate import evaluate_open
from zlab.distill.student import student_pipeline
from zlab.train.ladd import LADDConfig, train_ladd
from zlab.shapes.net import ShapesNet
from zlab.train.config import load_config
from zlab.zimage import load_pipeline

GROUPS = {"0": [0], "2+": [2, 3, 4, 5], "all": list(range(6))}
MEASURES = ("valid", "named_accuracy", "coverage_entropy", "fd")

name = sys.argv[1]
overrides = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
eval_every = overrides.pop("eval_every", 0)
skip0 = overrides.pop("skip0", False)
per_count, n_seeds = overrides.pop("per_count", 8), overrides.pop("seeds", 16)
config = load_config(LADDConfig, "configs/shapes-ladd.toml", **overrides)
net = ShapesNet.load("checkpoints/shapes-net")
teacher = load_pipeline(config.teacher)
prompts, seeds = prompt_sets.prompts_and_seeds("validation", n_seeds, per_count=per_count)
settings = {f"N={n}": {"num_inference_steps": n, "guidance_scale": 0.0, **world.SAMPLING_BASE} for n in (1, 2, 4)}
results = []


def evaluate(step, student, disc):
    if skip0 and step == 0:
        return
    rows = evaluate_open(student_pipeline(teacher, student), settings, net, prompts, seeds, n_seeds, groups=GROUPS)
    line = {"step": step}
    for r in rows:
        line.setdefault(r["setting"], {})[r["group"]] = [round(float(r.get(k, float("nan"))), 3) for k in MEASURES]
    results.append(line)
    print("EVAL", json.dumps(line), flush=True)


start = time.perf_counter()
train_ladd(config, f"runs/calib/{name}", callback=evaluate, callback_every=eval_every or config.steps)
print(f"TRAIN_S {time.perf_counter() - start:.0f}")
with open(f"runs/calib/{name}.json", "w") as f:
    json.dump({"config": overrides, "plan": {"per_count": per_count, "seeds": n_seeds}, "results": results}, f)
