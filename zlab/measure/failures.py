"""How samplers fail: the share of valid-and-right images and of each way of failing (the Shapes checker's reasons,
:func:`zlab.shapes.metrics.failure_kind`), each sampler on the same prompts and seeds.

A one-step student that averages the modes a caption leaves open draws two half-objects ("several regions") or a
box spanning two places or sizes ("too large"); one that commits to a mode but draws it badly fails on colour or
shape. The table tells those apart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from zlab.measure.evaluate import stock_samples
from zlab.shapes.metrics import failure_counts


def failure_shares(arms: Mapping[str, tuple], prompts: Sequence[str], seeds: Sequence[int]) -> dict[str, Counter]:
    """Each arm's :func:`~zlab.shapes.metrics.failure_counts` on ``prompts`` with ``seeds`` (one seed per prompt
    entry); ``arms`` maps a name to ``(pipeline, setting)``."""
    return {name: failure_counts(stock_samples(pipe, prompts, seeds, setting)[0], prompts)
            for name, (pipe, setting) in arms.items()}


def format_failures(counts: Mapping[str, Counter], top: int = 6) -> str:
    """Markdown: one row per arm, the share of each kind (the ``top`` commonest over all arms, the rest pooled)."""
    total = sum((c for c in counts.values()), Counter())
    kinds = ["✓"] + [k for k, _ in total.most_common() if k != "✓"][:top]
    lines = ["| sampler | images | " + " | ".join("valid and right" if k == "✓" else k for k in kinds) + " | other |",
             "|---|---|" + "---|" * (len(kinds) + 1)]
    for name, c in counts.items():
        n = sum(c.values())
        shares = [c[k] / n for k in kinds]
        lines.append(f"| {name} | {n} | " + " | ".join(f"{s:.2f}" for s in shares) + f" | {1 - sum(shares):.2f} |")
    return "\n".join(lines)
