"""Per-column ms of the app's ``side_by_side`` on the shipped checkpoints: one warm-up call, then the
median over 5 prompts, each drawn as a single image.

    python scripts/app_columns_ms.py
"""
import statistics

from zlab.measure.compare import side_by_side
from zlab.zimage import load_pipeline, read_sampling

teacher, student = load_pipeline("checkpoints/shapes-teacher"), load_pipeline("checkpoints/shapes-student")
sampling = read_sampling("checkpoints/shapes-teacher")
kw = dict(guidance_scale=sampling["guidance_scale"], max_sequence_length=sampling["max_sequence_length"])
side_by_side(teacher, student, "a large red circle at the top left", 0, **kw)  # warm-up
prompts = ["a small blue square at the bottom right", "a large green triangle at the middle center",
           "a small yellow circle at the top right", "a large purple square at the bottom left",
           "a small red triangle at the middle left"]
runs = [side_by_side(teacher, student, p, i, **kw) for i, p in enumerate(prompts)]
for k, col in enumerate(runs[0]):
    print(f"| {col.name} | {col.nfe} | {statistics.median(r[k].ms for r in runs):.0f} |")
