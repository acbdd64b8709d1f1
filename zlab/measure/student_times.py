"""Which few-step times suit a token count: samplers at shifted times, at the two token counts the shipped teacher
knows (64 x 64: 16 image tokens; 64 x 96: 24).

A time shift ``s`` maps ``t -> s t / (1 + (s - 1) t)`` (SD3, Esser et al. 2024): ``s > 1`` spends the steps at
higher noise. SD3's resolution rule scales ``s`` with ``sqrt(tokens)``: at the same ``t`` an image of more tokens
keeps more of its signal (neighbouring tokens carry the same information, averaging out the noise), so its steps
must start noisier to decide as much. In logit terms the rule moves ``logit t`` by ``ln s``.

Each sampler runs through stock ``ZImagePipeline`` with ``sigmas`` given and its scheduler's own shift switched off
(shift 1, no resolution shift), so the times are exactly the ones named. The measures are the Shapes world's
(:mod:`zlab.shapes.metrics`), per prompt; each shift is compared with shift 1 paired over prompts.

    zlab times --out docs/student-times.json
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from diffusers import ZImagePipeline

from zlab.distill.student import student_scheduler
from zlab.measure.paired import paired_difference, per_prompt
from zlab.shapes import prompt_sets
from zlab.shapes.metrics import GROUPS, mean_se

__all__ = ["SHIFTS", "TOKEN_SIZES", "shifted_times", "exact_times", "sweep", "best_shifts", "format_times"]

SHIFTS = (0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
TOKEN_SIZES = {16: (64, 64), 24: (64, 96)}  # image tokens (2 x 2 patches of the 8x-downsampled latent) -> (H, W)
MEASURES = ("valid", "coverage_entropy")


def shifted_times(steps: int, shift: float) -> list[float]:
    """The ``steps`` start times ``linspace(1, 1/N, N)`` (ZImagePipeline's) moved by ``shift``."""
    if shift <= 0:
        raise ValueError(f"shift must be positive, got {shift}")
    t = torch.linspace(1.0, 1 / steps, steps, dtype=torch.float64)
    return (shift * t / (1 + (shift - 1) * t)).tolist()


def exact_times(pipe: ZImagePipeline) -> ZImagePipeline:
    """``pipe`` with a scheduler that adds no shift of its own: ``sigmas`` given to it are the times sampled."""
    exact = ZImagePipeline(**{**pipe.components, "scheduler": student_scheduler(pipe.scheduler)})
    exact.set_progress_bar_config(disable=True)
    return exact


def sweep(samplers: Mapping[str, tuple[ZImagePipeline, Mapping]], steps: Sequence[int] = (2, 4),
          shifts: Sequence[float] = SHIFTS, sizes: Mapping[int, tuple[int, int]] = TOKEN_SIZES,
          split: str = "validation", per_count: int = 8, k: int = 8, group: str = "2+", progress=None) -> dict:
    """Each sampler (a pipeline and its setting, e.g. its ``sampling.json``) at every shift, step count and size, on
    the same ``split`` prompts and seeds; per cell the mean and SE of each measure on ``group`` prompts and the
    paired difference from shift 1."""
    if 1.0 not in shifts:
        raise ValueError(f"shifts must include 1.0 (the reference), got {list(shifts)}")
    prompts, seeds = prompt_sets.prompts_and_seeds(split, k, per_count=per_count)
    cells = []
    for name, (pipe, base) in samplers.items():
        exact = exact_times(pipe)
        for tokens, (height, width) in sizes.items():
            for n in steps:
                records = {}
                for shift in shifts:
                    setting = {key: v for key, v in base.items() if key != "num_inference_steps"}
                    setting.update(height=height, width=width, sigmas=shifted_times(n, shift))
                    records[shift] = [r for r in per_prompt(exact, setting, prompts, seeds, k)
                                      if r["open"] in GROUPS[group]]
                    if progress:
                        progress(f"{name}, {tokens} tokens, {n} steps, shift {shift:g}")
                for shift, rs in records.items():
                    cell = {"sampler": name, "tokens": tokens, "steps": n, "shift": shift, "prompts": len(rs),
                            "per_prompt": {m: [r[m] for r in rs] for m in MEASURES}}
                    for m in MEASURES:
                        cell[m], cell[f"{m}_se"] = mean_se([r[m] for r in rs])
                        diff = paired_difference([r[m] for r in rs], [r[m] for r in records[1.0]])
                        cell[f"{m}_vs_shift_1"], cell[f"{m}_vs_shift_1_se"] = diff["mean"], diff["se"]
                    cells.append(cell)
    return {"split": split, "per_count": per_count, "seeds_per_prompt": k, "group": group,
            "settings": {name: dict(base) for name, (_, base) in samplers.items()}, "cells": cells}


def best_shifts(record: dict, measure: str = "valid") -> list[dict]:
    """Per sampler, token count and step count: the shift with the highest mean ``measure``, its gain over shift 1
    (paired SE), and the shifts not told apart from it: their paired difference from the best lies within two
    standard errors."""
    out = []
    keys = dict.fromkeys((c["sampler"], c["tokens"], c["steps"]) for c in record["cells"])
    for sampler, tokens, n in keys:
        cells = [c for c in record["cells"] if (c["sampler"], c["tokens"], c["steps"]) == (sampler, tokens, n)]
        best = max(cells, key=lambda c: c[measure])
        near = []
        for c in cells:
            d = paired_difference(best["per_prompt"][measure], c["per_prompt"][measure])
            if c is best or d["mean"] <= 2 * d["se"]:
                near.append(c["shift"])
        out.append({"sampler": sampler, "tokens": tokens, "steps": n, "best_shift": best["shift"],
                    measure: best[measure], "gain_over_shift_1": best[f"{measure}_vs_shift_1"],
                    "gain_se": best[f"{measure}_vs_shift_1_se"], "not_told_apart": near})
    return out


def format_times(record: dict, measure: str = "valid") -> str:
    """Markdown: each cell's mean ± SE and its paired difference from shift 1; then the best shift per row."""
    shifts = sorted({c["shift"] for c in record["cells"]})
    lines = [f"{measure} on {record['group']} open prompts ({record['split']}, {record['seeds_per_prompt']} seeds "
             "each): mean ± SE, and below it the paired difference from shift 1", "",
             "| sampler | tokens | steps | " + " | ".join(f"shift {s:g}" for s in shifts) + " |",
             "|---|---|---|" + "---|" * len(shifts)]
    best = best_shifts(record, measure)
    for row in best:
        cells = {c["shift"]: c for c in record["cells"]
                 if (c["sampler"], c["tokens"], c["steps"]) == (row["sampler"], row["tokens"], row["steps"])}
        text = [f"{cells[s][measure]:.3f} ± {cells[s][f'{measure}_se']:.3f}<br>"
                f"{cells[s][f'{measure}_vs_shift_1']:+.3f} ± {cells[s][f'{measure}_vs_shift_1_se']:.3f}"
                if s in cells else "–" for s in shifts]
        lines.append(f"| {row['sampler']} | {row['tokens']} | {row['steps']} | " + " | ".join(text) + " |")
    lines += ["", "| sampler | tokens | steps | best shift | gain over shift 1 | within 2 paired SEs of the best |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {r['sampler']} | {r['tokens']} | {r['steps']} | {r['best_shift']:g} | "
              f"{r['gain_over_shift_1']:+.3f} ± {r['gain_se']:.3f} | {', '.join(f'{s:g}' for s in r['not_told_apart'])} |"
              for r in best]
    return "\n".join(lines)
