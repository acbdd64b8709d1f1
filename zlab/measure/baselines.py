"""Teacher, regression-distilled student and LADD student side by side, read from the shipped ``eval.json`` files.

Each folder was measured through stock ``ZImagePipeline`` when it was made, on the same open **test** prompts
and seeds (``zlab.shapes.prompt_sets``: 10 per number of open attributes x 16 seeds): the teacher's steps table (its
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
from dataclasses import replace
from pathlib import Path

from zlab.measure.evaluate import format_cell
from zlab.measure.settings import Setting, parse

COLUMNS = (("valid", "validity"), ("named_accuracy", "named accuracy"), ("coverage_entropy", "coverage"),
           ("fd_teacher", "FD to teacher"), ("fd", "FD to renders"))


def shipped_rows(teacher: str | Path, students: Mapping[str, str | Path]) -> list[dict]:
    """The teacher's steps rows and every student's 1/2/4-step rows (renamed ``"<name> N steps"``), checked to
    hold the same prompts per group. A student folder without open rows raises ValueError naming it."""
    rows = list(json.loads((Path(teacher) / "eval.json").read_text())["steps"])
    prompts = {r["group"]: r["prompts"] for r in rows}
    for name, folder in students.items():
        record = json.loads((Path(folder) / "eval.json").read_text())
        mine = [r for r in record.get("open", []) if parse(r["setting"]).who == "student"]
        if not mine:
            raise ValueError(f"{folder}/eval.json has no open test rows (ship it with the teacher's sampling.json)")
        for r in mine:
            if prompts.get(r["group"], r["prompts"]) != r["prompts"]:
                raise ValueError(f"{folder}: {r['prompts']} prompts with {r['group']} open, the teacher's table has "
                                 f"{prompts[r['group']]}: not the same test plan")
            rows.append({**r, "setting": replace(parse(r["setting"]), who=name).label})
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


FINDING_MEASURES = (("2+", "valid", "validity, 2+ open"), ("2+", "coverage_entropy", "coverage, 2+ open"),
                    ("0", "named_accuracy", "named accuracy, fully named"),
                    ("2+", "fd_teacher", "FD to teacher, 2+ open"))
"""What :func:`student_findings` reads: ``(group, measure, title)``; higher is better except for FD."""
TEACHER_RECIPE = Setting("teacher", 50, cfg=True).label


def _generic(other: str | tuple[str, bool | None]) -> str:
    """A column's name: a fixed label as it is, a ``(who, cfg)`` pair at "N steps"."""
    return other if isinstance(other, str) else Setting(other[0], 2, other[1]).label.replace(" 2 steps", " N steps")


def student_findings(rows: Sequence[Mapping], student: str = "LADD student",
                     others: Sequence[str | tuple[str, bool | None]] = (TEACHER_RECIPE, ("teacher", False),
                                                                        ("regression student", None)),
                     steps: Sequence[int] = (1, 2, 4), measures=FINDING_MEASURES) -> list[dict]:
    """Where a student stands, as differences with their standard errors (no targets), on :func:`shipped_rows`.

    At each N and for each measure: the student's mean and SE across the prompts of the measure's group, and against
    each of ``others`` (a fixed label such as the teacher at its recipe, or a ``(who, cfg)`` pair taken at the
    student's N) the difference student - other with SE sqrt(SE_student² + SE_other²). Both were measured on the same
    prompts, whose difficulty they share; ``eval.json`` keeps only the means, so this SE treats the two as independent
    and is larger than the paired SE (:mod:`zlab.measure.paired`) would be. FD is one number per setting: no SE.
    Missing rows (a student never shipped) leave their entries out."""
    cell = {(r["setting"], r["group"]): r for r in rows}
    out = []
    for n in steps:
        for group, key, title in measures:
            mine = cell.get((Setting(student, n).label, group))
            if mine is None or key not in mine:
                continue
            for other in others:
                label = other if isinstance(other, str) else Setting(other[0], n, other[1]).label
                theirs = cell.get((label, group))
                if theirs is None or key not in theirs or label == mine["setting"]:
                    continue
                se, other_se = mine.get(f"{key}_se", float("nan")), theirs.get(f"{key}_se", float("nan"))
                diff, diff_se = mine[key] - theirs[key], (se ** 2 + other_se ** 2) ** 0.5
                out.append({"steps": n, "group": group, "key": key, "measure": title, "prompts": mine.get("prompts"),
                            "student": mine["setting"], "value": mine[key], "se": se, "other": label,
                            "column": _generic(other), "other_value": theirs[key], "other_se": other_se,
                            "difference": diff, "difference_se": diff_se,
                            "z": diff / diff_se if diff_se and diff_se == diff_se else float("nan")})
    return out


def format_findings(findings: Sequence[Mapping]) -> str:
    """:func:`student_findings` as a Markdown table: a row per N and measure, the student's mean ± SE, then per other
    setting the difference student - other ± SE and how many SEs it is (FD: the difference alone)."""
    columns = list(dict.fromkeys(f["column"] for f in findings))
    by_row: dict[tuple, dict] = {}
    for f in findings:
        by_row.setdefault((f["steps"], f["measure"]), {"first": f})[f["column"]] = f
    lines = ["| N | measure (test prompts) | student | " + " | ".join(f"student - {c}" for c in columns) + " |",
             "|" + "---|" * (len(columns) + 3)]
    for (n, measure), cells in by_row.items():
        first = cells["first"]
        fd = first["key"].startswith("fd")
        mine = f"{first['value']:.1f}" if fd else f"{first['value']:.3f} ± {first['se']:.3f}"
        diffs = [("" if c not in cells else f"{cells[c]['difference']:+.1f}" if fd else
                  f"{cells[c]['difference']:+.3f} ± {cells[c]['difference_se']:.3f} ({cells[c]['z']:+.1f} SE)")
                 for c in columns]
        count = f" ({first['prompts']} prompts)" if first.get("prompts") else ""
        lines.append(f"| {n} | {measure}{count} | {mine} | " + " | ".join(diffs) + " |")
    return "\n".join(lines)


def finding_lines(findings: Sequence[Mapping], column: str | None = None) -> str:
    """What :func:`student_findings` says against one column (default: each in turn), a line per measure: at which N
    the student is ahead or behind by more than 2 SE and where the two lie within 2 SE (a measurement that cannot
    tell them apart, which is not the same as equal); FD (no SE) by sign."""
    if column is None:
        return "\n".join(finding_lines(findings, c) for c in dict.fromkeys(f["column"] for f in findings))
    lines = []
    for measure in dict.fromkeys(f["measure"] for f in findings if f["column"] == column):
        cells = [f for f in findings if f["column"] == column and f["measure"] == measure]
        fd = cells[0]["key"].startswith("fd")
        kinds: dict[str, list[int]] = {}
        for f in cells:
            if fd:
                kind = f"{'closer to' if f['difference'] < 0 else 'farther from'} the teacher's samples"
            else:
                kind = ("ahead by more than 2 SE" if f["z"] > 2 else "behind by more than 2 SE" if f["z"] < -2
                        else "within 2 SE")
            kinds.setdefault(kind, []).append(f["steps"])
        said = "; ".join(f"{kind} at N = {', '.join(map(str, ns))}" for kind, ns in kinds.items())
        lines.append(f"- {measure}, student - {column}: {said}" + (" (one FD each, no SE)" if fd else ""))
    return "\n".join(lines)
