"""What ``zlab ablate`` prints of a record: the summary table; on a **test** grid every claim's verdict
(:mod:`zlab.recipes.claims`), on another grid the verdicts of the claims whose arms it has; on a **validation** grid
with candidate runs the recipe it chooses
(:func:`zlab.recipes.ablate.choose_recipe`, by the rule the grid declares)."""

from __future__ import annotations

from zlab.recipes import ablate
from zlab.recipes.claims import format_verdicts, verdicts


def format_report(record: dict, split: str) -> str:
    """The report of an ablation ``record`` whose grid is measured on ``split``."""
    parts = [ablate.format_summary(record)]
    if split == "test":
        parts += ["\nVerdicts (validity, 2+ open, mean over N = 1, 2, 4; paired by training seed):\n",
                  format_verdicts(record)]
    elif verdicts(record):  # e.g. the one-step search's claims (zlab.recipes.claims.DMD_CLAIMS)
        parts += [f"\nVerdicts on {split} prompts (2+ open; each claim's end point in its title, validity unless it "
                  "names coverage; paired by training seed):\n", format_verdicts(record)]
    if split == "validation" and any(ablate.is_candidate(record, r) for r in record["runs"]):
        parts.append(ablate.format_choice(ablate.choose_recipe(record)))
    return "\n".join(parts)


def reference_points(record: dict, group: str = "2+") -> dict[str, dict]:
    """The teacher at its ``sampling.json`` and the renders of a grid's first canvas size, in ``group``:
    ``{"teacher": {measure: value}, "renders": {...}}`` (one measurement each, no interval)."""
    ref = next(iter(record["references"].values()))
    (teacher,) = ref["teacher"].values()
    return {"teacher": teacher[group], "renders": ref["renders"][group]}


def guidance_points(teacher_eval: dict, sweep: str = "guidance_sweep_validation") -> dict[str, dict]:
    """The teacher's validity and coverage on 2+ open validation prompts at each guidance scale its calibration
    measured (``eval.json`` of ``zlab make-teacher``): ``{g: {"valid", "coverage_entropy", ...}}``."""
    return {g: v["open2"] for g, v in teacher_eval.get(sweep, {}).items()}
