"""Students compared prompt by prompt: the same open prompts and seeds through each stock pipeline, and the
difference of a measure between two of them, paired over prompts.

Two students measured on the same prompts share each prompt's difficulty: the standard error of their difference,
paired, is smaller than the two SEs side by side suggest.

    zlab paired --pipelines checkpoints/shapes-dmd checkpoints/shapes-regression --steps 1 --split test
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
from diffusers import ZImagePipeline

from zlab.measure.evaluate import stock_samples
from zlab.shapes import prompt_sets
from zlab.shapes.metrics import GROUPS, mean_se, prompt_records

MEASURES = ("valid", "coverage_entropy", "named_accuracy")


def per_prompt(pipe: ZImagePipeline, setting: Mapping, prompts: Sequence[str], seeds: Sequence[int], k: int,
               batch_size: int = 64) -> list[dict]:
    """:func:`~zlab.shapes.metrics.prompt_record` of each prompt (prompt-major ``prompts``, ``k`` seeds each)."""
    images, _ = stock_samples(pipe, prompts, seeds, setting, batch_size)
    return prompt_records(images, prompts, k)


def paired_difference(a: Sequence[float], b: Sequence[float]) -> dict:
    """Mean of ``a - b`` over the prompts where both are finite, its SE, the prompts counted and the difference in
    SEs (``z``; NaN without a spread)."""
    d = [x - y for x, y in zip(a, b, strict=True) if np.isfinite(x) and np.isfinite(y)]
    mean, se = mean_se(d)
    return {"mean": mean, "se": se, "prompts": len(d), "z": mean / se if se and np.isfinite(se) else float("nan")}


def compare_arms(records: Mapping[str, list[dict]], group: str = "2+", measures: Sequence[str] = MEASURES) -> dict:
    """Each arm's mean and SE over the prompts of ``group`` and every pair's paired difference, per measure."""
    counts = GROUPS[group]
    values = {arm: {m: [r[m] for r in rs if r["open"] in counts] for m in measures} for arm, rs in records.items()}
    return {"group": group,
            "arms": {arm: {m: dict(zip(("mean", "se"), mean_se(v[m]))) for m in measures} for arm, v in values.items()},
            "pairs": {f"{a} - {b}": {m: paired_difference(values[a][m], values[b][m]) for m in measures}
                      for a, b in itertools.combinations(values, 2)}}


def paired_record(arms: Mapping[str, tuple[ZImagePipeline, Mapping]], split: str = "test", per_count: int = 10,
                  k: int = 16, groups: Sequence[str] = ("2+", "0")) -> dict:
    """Every arm (a pipeline and its setting) on the same ``split`` prompts (``per_count`` per number of open
    attributes) and seeds (``k`` each), compared in each group."""
    prompts, seeds = prompt_sets.prompts_and_seeds(split, k, per_count=per_count)
    records = {name: per_prompt(pipe, setting, prompts, seeds, k) for name, (pipe, setting) in arms.items()}
    return {"split": split, "per_count": per_count, "seeds_per_prompt": k,
            "settings": {name: dict(setting) for name, (_, setting) in arms.items()},
            "comparisons": [compare_arms(records, group) for group in groups], "prompts": records}


def paired_folders(pipelines: Sequence[str], steps: Sequence[int], split: str = "test", per_count: int = 10,
                   k: int = 16) -> dict:
    """``zlab paired``: each pipeline folder at its ``sampling.json`` and each of ``steps`` (one arm per folder and
    step count, named as ``zlab eval`` names them), through :func:`paired_record`."""
    from zlab.measure.evaluate import folder_settings
    from zlab.zimage import load_pipeline

    if len(set(pipelines)) != len(pipelines):
        raise ValueError(f"--pipelines names a folder twice: {list(pipelines)}")
    arms = {}
    for folder in pipelines:
        pipe = load_pipeline(folder)
        pipe.set_progress_bar_config(disable=True)
        arms.update({name: (pipe, setting) for name, setting in folder_settings(folder, steps).items()})
    if len(arms) < 2:
        raise ValueError("a paired comparison needs at least two arms: two folders, or one folder at two step counts")
    return {**paired_record(arms, split, per_count, k), "pipelines": list(pipelines)}


def format_paired(record: dict) -> str:
    """Markdown: each arm's mean ± SE, then each pair's paired difference ± SE (and how many SEs it is)."""
    lines = []
    for comp in record["comparisons"]:
        measures = [m for m in MEASURES if any(np.isfinite(a[m]["mean"]) for a in comp["arms"].values())]
        lines += [f"\n{comp['group']} open attributes ({record['split']} prompts, {record['seeds_per_prompt']} seeds each):\n",
                  "| arm | " + " | ".join(measures) + " |", "|---|" + "---|" * len(measures)]
        lines += [f"| {arm} | " + " | ".join(f"{v[m]['mean']:.3f} ± {v[m]['se']:.3f}" for m in measures) + " |"
                  for arm, v in comp["arms"].items()]
        lines += [f"| {pair} (paired) | " + " | ".join(f"{d[m]['mean']:+.3f} ± {d[m]['se']:.3f} ({d[m]['z']:+.1f} SE)"
                                                       for m in measures) + " |" for pair, d in comp["pairs"].items()]
    return "\n".join(lines)
