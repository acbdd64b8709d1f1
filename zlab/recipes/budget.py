"""What more training would buy at one step: one-step validity against the training budget, read from the searches'
records, and the budget a straight line in log2(steps) would need to reach a target.

Each family is one recipe measured at two or more budgets in the same search (same split, prompts and seeds);
validity on validation prompts with 2+ open attributes, mean over its training seeds. The fit is least squares
of validity on log2(steps): its slope is the gain per doubling of the budget. With two or three budgets and one or
two seeds it is a direction, not a forecast: :func:`format_budget` says so beside every prediction.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from zlab.recipes.ablate import read_record, seed_values
from zlab.recipes.claims import ONE_STEP

__all__ = ["FAMILIES", "budget_points", "log_fit", "steps_to", "format_budget"]

# family -> (record, {training steps: variant}); each variant differs from the others of its family in steps only
FAMILIES = {
    "LADD + regression": ("docs/ladd-adv-weight.json", {
        1000: "LADD + regression, lr 3e-5, caption heads, shared negatives",
        1700: "LADD + regression, lr 3e-5, caption heads, shared negatives, 1700 steps",
        2000: "LADD + regression, lr 3e-5, caption heads, shared negatives, 2000 steps"}),
    "regression": ("docs/ladd-adv-weight.json", {1000: "regression only, lr 1e-4",
                                                 2000: "regression only, lr 1e-4, 2000 steps"}),
    "DMD, DM only (from the regression student)": ("docs/dmd-followup.json", {300: "DM only, as chosen",
                                                                              900: "DM only, 900 steps"}),
}


def budget_points(root: str | Path, families: dict = FAMILIES, group: str = "2+",
                  measure: str = "valid") -> dict[str, list[dict]]:
    """Per family with a record on disk: ``[{"steps", "value", "seeds", "spread"}]`` at one step, for each budget
    measured (``spread``: the largest seed minus the smallest)."""
    out = {}
    for name, (path, variants) in families.items():
        path = Path(root) / path
        if not path.is_file():
            continue
        record = read_record(path)
        points = []
        for steps, variant in sorted(variants.items()):
            values = [v for v in seed_values(record, variant, ONE_STEP, group, measure).values() if math.isfinite(v)]
            if values:
                points.append({"steps": steps, "value": float(np.mean(values)), "seeds": len(values),
                               "spread": float(max(values) - min(values))})
        if len(points) >= 2:
            out[name] = points
    return out


def log_fit(points: list[dict]) -> tuple[float, float]:
    """``(intercept, gain per doubling)`` of the least-squares line of value on log2(steps)."""
    x = np.log2([p["steps"] for p in points])
    y = np.array([p["value"] for p in points])
    if len(set(x)) < 2:
        raise ValueError("a budget fit needs at least two different budgets")
    slope, intercept = np.polyfit(x, y, 1)
    return float(intercept), float(slope)


def steps_to(target: float, fit: tuple[float, float]) -> float:
    """The budget at which the fitted line reaches ``target`` (inf when it does not grow)."""
    intercept, slope = fit
    return float(2 ** ((target - intercept) / slope)) if slope > 0 else math.inf


def format_budget(points: dict[str, list[dict]], target: float) -> str:
    """A Markdown table: each family's budgets and one-step validity, its gain per doubling and the budget the line
    would need for ``target``."""
    lines = ["| recipe | steps: one-step validity (seeds) | gain per doubling | steps the line needs for "
             f"{target:.2f} |", "|---|---|---|---|"]
    for name, rows in points.items():
        fit = log_fit(rows)
        need = steps_to(target, fit)
        measured = ", ".join(f"{r['steps']}: {r['value']:.3f} ({r['seeds']})" for r in rows)
        lines.append(f"| {name} | {measured} | {fit[1]:+.3f} | "
                     + (f"{need:,.0f} ({need / rows[-1]['steps']:,.0f}x the largest budget measured)"
                        if math.isfinite(need) else "never (no gain)") + " |")
    spreads = [r["spread"] for rows in points.values() for r in rows if r["seeds"] > 1]
    single = [name for name, rows in points.items() if all(r["seeds"] == 1 for r in rows)]
    seeds = (f"where a budget has two or more seeds here they differ by {min(spreads):.3f} to {max(spreads):.3f} "
             "at one step" if spreads else "no budget here has two seeds to measure their spread")
    return "\n".join(lines) + (f"\n\nEach line runs through two or three budgets: {seeds}"
                               + (f", and {', '.join(single)} rest on one seed per budget" if single else "")
                               + ", so read the last column as an order of magnitude.")
