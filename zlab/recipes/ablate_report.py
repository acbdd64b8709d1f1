"""What ``zlab ablate`` prints of a record: the summary table; on a **test** grid every claim's verdict
(:mod:`zlab.recipes.claims`); on a **validation** grid with LADD runs the recipe it chooses
(:func:`zlab.recipes.ablate.choose_recipe`, by the rule the grid declares)."""

from __future__ import annotations

from zlab.recipes import ablate
from zlab.recipes.claims import format_verdicts


def format_report(record: dict, split: str) -> str:
    """The report of an ablation ``record`` whose grid is measured on ``split``."""
    parts = [ablate.format_summary(record)]
    if split == "test":
        parts += ["\nVerdicts (validity, 2+ open, mean over N = 1, 2, 4; paired by training seed):\n",
                  format_verdicts(record)]
    if split == "validation" and any(ablate.is_candidate(record, r) for r in record["runs"]):
        parts.append(ablate.format_choice(ablate.choose_recipe(record)))
    return "\n".join(parts)
