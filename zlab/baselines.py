"""Teacher, regression-distilled student and LADD student side by side, read from the shipped ``eval.json`` files.

Each folder was measured through stock ``ZImagePipeline`` when it was made, on the same open **test** prompts
and seeds (``zlab.prompt_sets``: 10 per number of open attributes x 16 seeds): the teacher's steps table (its
``sampling.json``, and cut to N steps with and without CFG) and each student at 1, 2 and 4 steps. FD to the
teacher uses the same reference (the teacher's 50-step samples of the same prompts with other seeds).

Example:
    >>> rows = shipped_rows("checkpoints/shapes-teacher", {"LADD student": "checkpoints/shapes-student",
    ...                                                    "regression student": "checkpoints/shapes-regression"})
    >>> print(group_table(rows, "2+"))
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from zlab.evaluate import format_cell

COLUMNS = (("valid", "validity"), ("named_accuracy", "named accuracy"), ("coverage_entropy", "coverage"),
           ("fd_teacher", "FD to teacher"), ("fd", "FD to renders"))


def shipped_rows(teacher: str | Path, students: Mapping[str, str | Path]) -> list[dict]:
    """The teacher's steps rows and every student's 1/2/4-step rows (renamed ``"<name> N steps"``), checked to
    hold the same prompts per group. A student folder without open rows raises ValueError naming it."""
    rows = list(json.loads((Path(teacher) / "eval.json").read_text())["steps"])
    prompts = {r["group"]: r["prompts"] for r in rows}
    for name, folder in students.items():
        record = json.loads((Path(folder) / "eval.json").read_text())
        mine = [r for r in record.get("open", []) if r["setting"].startswith("student")]
        if not mine:
            raise ValueError(f"{folder}/eval.json has no open test rows (ship it with the teacher's sampling.json)")
        for r in mine:
            if prompts.get(r["group"], r["prompts"]) != r["prompts"]:
                raise ValueError(f"{folder}: {r['prompts']} prompts with {r['group']} open, the teacher's table has "
                                 f"{prompts[r['group']]}: not the same test plan")
            rows.append({**r, "setting": r["setting"].replace("student", name, 1)})
    return rows


def group_table(rows: Sequence[Mapping], group: str = "2+", settings: Sequence[str] | None = None) -> str:
    """One group of open-attribute counts as a markdown table: a row per setting (NFE), a column per measure,
    mean ± standard error across prompts (FD without)."""
    cell = {r["setting"]: r for r in rows if r["group"] == group}
    names = [s for s in (settings or cell) if s in cell]
    lines = ["| setting | NFE | " + " | ".join(title for _, title in COLUMNS) + " |", "|" + "---|" * (len(COLUMNS) + 2)]
    for name in names:
        cells = [format_cell(cell[name], key) for key, _ in COLUMNS]
        lines.append(f"| {name} | {cell[name]['nfe']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
