"""Teacher diagnostic: where do named-attribute errors on open prompts come from?

Samples the shipped teacher (its sampling.json, guidance overridden) on every VALIDATION prompt with 2+ open
attributes x 16 seeds through stock ZImagePipeline, and prints validity, named accuracy and coverage by number of
open attributes, why invalid samples are invalid, and which named attribute read back as what:

    python scripts/named_errors.py 0.25 0.75        # guidance scales to compare

Behind issue 13's closing note (the circle->square errors on small objects). Validation only: nothing is chosen
from, or reported on, the test set here.
"""

import json
import sys
from collections import Counter

from zlab.shapes import prompt_sets
from zlab.measure.evaluate import stock_samples
from zlab.shapes.open_captions import parse_open_caption
from zlab.shapes.metrics import invalid_reason, prompt_records, region_sizes, summarise, validity
from zlab.zimage import load_pipeline, read_sampling

TEACHER = "checkpoints/shapes-teacher"
SEEDS = 16

pipe = load_pipeline(TEACHER)
prompts, seeds = prompt_sets.prompts_and_seeds("validation", SEEDS, min_open=2)
for g in [float(x) for x in sys.argv[1:] or ["0.25"]]:
    images, _ = stock_samples(pipe, prompts, seeds, {**read_sampling(TEACHER), "guidance_scale": g})
    valid, results = validity(images)
    invalid, wrong, small_circles = Counter(), Counter(), Counter()
    for prompt, ok, result, image in zip(prompts, valid, results, images):
        if not ok:
            invalid[invalid_reason(result, region_sizes(image[None])[0])] += 1
            continue
        named = parse_open_caption(prompt).named
        for key, value in named.items():
            if getattr(result.spec, key) != value:
                wrong[f"{key} {value} -> {getattr(result.spec, key)}"] += 1
        if named.get("shape") == "circle":
            small_circles[("size named" if "size" in named else "size open", result.spec.size,
                           result.spec.shape == "circle")] += 1
    table = summarise(prompt_records(images, prompts, SEEDS))
    print(f"g = {g:g}, {len(set(prompts))} validation prompts x {SEEDS} seeds")
    print(json.dumps({group: {m: round(table[group][m][0], 3) for m in ("valid", "named_accuracy", "coverage_entropy")}
                      for group in table if group in ("2", "3", "4", "5", "2+")}))
    print("  invalid:", invalid.most_common(8))
    print("  named attribute read wrong:", wrong.most_common(12))
    print("  valid samples of captions naming a circle, (size named?, size drawn, read as a circle):",
          sorted(small_circles.items()))
