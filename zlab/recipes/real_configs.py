"""The real model's configs read as evidence: every setting beside the comment that says which measurement chose it.

``configs/zimage-*.toml`` carry what the Shapes experiments measured into the real recipe, one comment per line
(or a comment block above a setting). :func:`config_evidence` pairs each setting with its comment, so a lab or a
test can show, or check, that none is left unexplained.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

__all__ = ["config_evidence", "format_evidence"]

_SETTING = re.compile(r'^(?P<key>[A-Za-z_][\w.]*)\s*=\s*(?P<value>"[^"]*"|\[[^\]]*\]|[^#]*?)\s*(#\s*(?P<comment>.*))?$')


def config_evidence(path: str | Path) -> list[dict]:
    """``[{"section", "key", "value", "why"}]`` for every setting of a TOML config: ``why`` is its end-of-line
    comment, else the comment block right above it ("" when there is none: a setting left unexplained)."""
    lines = Path(path).read_text().splitlines()
    tomllib.loads("\n".join(lines))  # a file that does not parse is refused before it is read line by line
    rows, section, block = [], "", []
    for line in lines:
        text = line.strip()
        if text.startswith("["):
            section, block = text.split("]")[0].strip("[ "), []
        elif text.startswith("#"):
            block.append(text.lstrip("# "))
        elif (match := _SETTING.match(text)) is not None:
            why = match["comment"] or " ".join(block)
            rows.append({"section": section, "key": match["key"], "value": match["value"], "why": why.strip()})
            block = []
        else:
            block = []
    return rows


def format_evidence(path: str | Path, sections: tuple[str, ...] = ()) -> str:
    """A config's settings and their reasons as a Markdown table (``sections``: only those, default all)."""
    rows = [r for r in config_evidence(path) if not sections or r["section"].split(".")[0] in sections]
    lines = [f"`{Path(path).name}`", "", "| setting | value | why |", "|---|---|---|"]
    lines += [f"| {r['section'] + '.' if r['section'] else ''}{r['key']} | `{r['value']}` | {r['why'] or '–'} |"
              for r in rows]
    return "\n".join(lines)
