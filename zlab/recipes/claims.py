"""LADD's claims as the ablation grid tests them (``configs/ablations.toml``, lab 07): each claim names the arm it
favours and the arms it is tested against; :func:`verdicts` reads every verdict from a record.

A verdict is read on one end point declared before any run (:func:`zlab.recipes.ablate.claim_verdict`: validity on
prompts with 2+ open attributes, averaged over N = 1, 2, 4), paired by training seed with a 95% interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zlab.measure.settings import student_steps
from zlab.recipes import ablate


@dataclass(frozen=True)
class Claim:
    title: str
    said: str  # what the papers say, in our words
    favoured: str  # the arm the claim favours
    others: tuple[str, ...]  # the arms it is tested against
    setting: str = ablate.PRIMARY  # the end point: a student setting (or the mean over N = 1, 2, 4) ...
    measure: str = "valid"  # ... and a measure on prompts with 2+ open attributes


CLAIMS = (
    Claim("Generative vs discriminative features",
          "LADD: the teacher's features of noised latents are a richer, noise-aware signal than ADD's DINOv2 on "
          "pixels, and need no decoding.", "base", ("features: discriminative",)),
    Claim("Synthetic vs real data",
          "LADD: training on the teacher's own samples works at least as well as real images (and aligns better "
          "with the prompt).", "no regression term", ("real: renders",)),
    Claim("A regression term beside the adversarial loss",
          "SANA-Sprint mixes its adversarial loss with another; the base keeps a regression loss to the teacher's "
          "sample of the same noise beside it, one arm drops it (LADD alone).", "base", ("no regression term",)),
    Claim("Heads on several blocks",
          "LADD attaches heads to many of the teacher's blocks; early blocks see layout, late ones detail.",
          "base", ("blocks: early", "blocks: late")),
    Claim("Hinge loss", "ADD and LADD train with the hinge loss.", "base", ("loss: non-saturating",)),
    Claim("Re-noised data vs backward simulation",
          "LADD feeds the student noised teacher data at t < 1; DMD2 feeds it what its own sampler produces.",
          "base", ("backward simulation",)),
    Claim("Approximate R1", "APT: an approximate R1 penalty keeps the heads smooth and training stable.", "R1",
          ("base",)),
    Claim("Mismatched negatives",
          "A real sample under a wrong caption counted as fake makes the heads check the prompt.",
          "base", ("no mismatched negatives",)),
)

ONE_STEP = "student 1 step"

# Distribution matching's claims, as the one-step search tests them (configs/dmd-search.toml, lab 08), at one step.
DMD_CLAIMS = (
    Claim("CFG augmentation is the engine (one step)",
          "Decoupled DMD: the CFG-augmentation half turns many steps into few; without it (DM only) the one-step "
          "student is worse.", "base", ("DM only",), ONE_STEP),
    Claim("Distribution matching is the shield (one step)",
          "Decoupled DMD: without the distribution-matching half (CA only) the student drifts to artefacts.",
          "base", ("CA only",), ONE_STEP),
    Claim("Distribution matching beats regression at the same budget (one step)",
          "DMD2: distribution matching lifts a regression student beyond what more regression gives.",
          "base", ("regression only",), ONE_STEP),
    Claim("A regression anchor restores coverage (one step)",
          "DMD (2023) keeps a regression loss beside distribution matching against mode collapse.",
          "DMD + regression anchor", ("base",), ONE_STEP, "coverage_entropy"),
)

# The t-hat sweep (logit-normal mean m = -2, -1, 0, 1) at two canvas sizes; the base recipe has m = -1 at 64x64.
T_HAT_ARMS = {"64x64": ("t_hat m=-2", "base", "t_hat m=0", "t_hat m=1"),
              "64x96": tuple(f"64x96: t_hat m={m}" for m in (-2, -1, 0, 1))}


def _arm_mean(record: dict, arm: str) -> float:
    return ablate.interval(ablate.seed_values(record, arm, ablate.PRIMARY, "2+", "valid").values())[0]


def sweet_spot_verdict(record: dict, arms) -> dict:
    """Does the t-hat sweep have an interior sweet spot? ``holds`` when the best m (by the end point's mean) is
    inside the sweep and both ends are worse beyond their intervals; ``refuted`` when an end is the best and
    every other m is worse beyond its interval; else ``inconclusive``. Adds ``best`` to the verdict."""
    arms = list(arms)
    means = {a: _arm_mean(record, a) for a in arms}
    best = max(means, key=means.get)
    ends = [arms[0], arms[-1]]
    if best in ends:
        verdict = ablate.claim_verdict(record, best, [a for a in arms if a != best])
        verdict["verdict"] = "refuted" if verdict["verdict"] == "holds" else "inconclusive"
    else:
        verdict = ablate.claim_verdict(record, best, ends)
    return {**verdict, "best": best}


def verdicts(record: dict) -> list[dict]:
    """Every claim whose arms are all in ``record``: ``{"claim", "verdict", "favoured", "diffs", "end_point"}``;
    the t-hat sweep gives one row per canvas size."""
    present = {r["variant"] for r in record["runs"]}
    rows = [{"claim": c.title, **ablate.claim_verdict(record, c.favoured, list(c.others), c.setting, "2+", c.measure)}
            for c in CLAIMS + DMD_CLAIMS if {c.favoured, *c.others} <= present]
    rows += [{"claim": f"t_hat sweet spot at {size}", **sweet_spot_verdict(record, arms)}
             for size, arms in T_HAT_ARMS.items() if set(arms) <= present]
    return rows


def why(verdict: dict) -> str:
    """The arithmetic behind a verdict, in a sentence: which arms are beyond their intervals and which are not,
    and how small a difference the seeds could have told apart (the interval's half-width)."""
    favoured, diffs = verdict["favoured"], verdict["diffs"]
    worse = [o for o, d in diffs.items() if d["verdict"] == "worse"]
    better = [o for o, d in diffs.items() if d["verdict"] == "better"]
    unresolved = {o: d for o, d in diffs.items() if d["verdict"] == "inconclusive"}
    parts = []
    if better:
        parts.append(f"{', '.join(better)} beat{'s' if len(better) == 1 else ''} {favoured} beyond the interval")
    if worse:
        parts.append(f"{', '.join(worse)} {'is' if len(worse) == 1 else 'are'} worse than {favoured} beyond the interval")
    for o, d in unresolved.items():
        if d["seeds"] < 2:
            parts.append(f"{o}: {d['seeds']} paired seed, no interval yet")
            continue
        parts.append(f"{o}'s interval holds 0: with {d['seeds']} seeds, a difference under "
                     f"±{(d['high'] - d['low']) / 2:.3f} cannot be told from the seed-to-seed spread")
    return "; ".join(parts) + "."


# What a verdict leaves out but a reader should see: the end point's measure at each N, validity on fully named
# prompts, and on 2+ open prompts named accuracy, coverage and FD to the teacher (title, setting, group, measure).
SIDE_MEASURES = (*((f"validity, 2+ open, N = {s.steps}", s.label, "2+", "valid") for s in student_steps()),
                 ("validity, fully named", ablate.PRIMARY, "0", "valid"),
                 ("named accuracy, 2+ open", ablate.PRIMARY, "2+", "named_accuracy"),
                 ("coverage, 2+ open", ablate.PRIMARY, "2+", "coverage_entropy"),
                 ("FD to teacher, 2+ open (lower is closer)", ablate.PRIMARY, "2+", "fd_teacher"))


def format_side_measures(record: dict, favoured: str, others) -> str:
    """Each other arm minus the favoured one on :data:`SIDE_MEASURES` (mean over N = 1, 2, 4 unless a row names
    one N), paired by training seed, mean [95% interval], in bold where the interval leaves out 0; and the median
    training time of each arm. Markdown, one column per other arm."""
    others = list(others)
    lines = ["| measure | " + " | ".join(f"{o} − {favoured}" for o in others) + " |", "|---" * (len(others) + 1) + "|"]
    for title, setting, group, measure in SIDE_MEASURES:
        cells = []
        for o in others:
            d = ablate.compare(record, o, favoured, setting, group, measure)
            f = "{:+.0f}" if measure.startswith("fd") else "{:+.3f}"
            text = f"{f.format(d['diff'])} [{f.format(d['low'])}, {f.format(d['high'])}]"
            cells.append(text if d["verdict"] == "inconclusive" else f"**{text}**")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    median = {a: float(np.median([r["train_s"] for r in record["runs"] if r["variant"] == a])) for a in [favoured, *others]}
    lines.append("| training time, median s (this arm / favoured) | "
                 + " | ".join(f"{median[o]:.0f} / {median[favoured]:.0f}" for o in others) + " |")
    return "\n".join(lines)


def format_verdicts(record: dict) -> str:
    """:func:`verdicts` as a Markdown table: each other arm minus the favoured one, mean [95% interval], the
    verdict and :func:`why`."""
    lines = ["| claim | favoured arm | other arm − favoured: mean [95% interval] (seeds) | verdict | why |",
             "|---|---|---|---|---|"]
    for v in verdicts(record):
        diffs = "; ".join(f"{o}: {d['diff']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] ({d['seeds']})"
                          for o, d in v["diffs"].items())
        lines.append(f"| {v['claim']} | {v['favoured']} | {diffs} | **{v['verdict']}** | {why(v)} |")
    return "\n".join(lines)
