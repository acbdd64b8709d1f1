"""Lab 07's exercises: a difference paired by training seed with its Student-t interval; how many seeds shrink an
interval by a factor; a claim's verdict read from its intervals by the rule declared before the runs."""

from __future__ import annotations

import math

import numpy as np

from zlab.exercises.core import Wrong, call, close, exercise
from zlab.measure.settings import Setting
from zlab.recipes import ablate

# Per-seed values {training seed: value} of two arms: keys in different orders, and a seed one arm lacks.
PAIRS = (({0: 0.642, 1: 0.628, 2: 0.625}, {2: 0.600, 0: 0.611, 1: 0.583}),
         ({0: 0.50, 1: 0.61, 2: 0.58, 3: 0.70}, {1: 0.57, 0: 0.49, 2: 0.55}),
         ({s: 0.3 + 0.05 * math.sin(s) for s in range(6)}, {s: 0.28 + 0.04 * math.cos(3 * s) for s in range(6)}))


def _unpaired(a, b):  # the arms as independent samples (Student's two-sample t), not paired by seed
    xa, xb = np.array(list(a.values())), np.array(list(b.values()))
    mean = xa.mean() - xb.mean()
    half = ablate.t95(len(xa) + len(xb) - 2) * math.sqrt(xa.var(ddof=1) / len(xa) + xb.var(ddof=1) / len(xb))
    return mean, mean - half, mean + half


def _normal(a, b):  # paired, but 1.96 where Student's t belongs
    d = np.array([a[s] - b[s] for s in sorted(set(a) & set(b))])
    half = 1.96 * d.std(ddof=1) / math.sqrt(len(d))
    return d.mean(), d.mean() - half, d.mean() + half


def _zipped(a, b):  # pairs the values in the order the dicts hold them, not by seed
    d = np.array([x - y for x, y in zip(a.values(), b.values(), strict=False)])
    half = ablate.t95(len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return d.mean(), d.mean() - half, d.mean() + half


@exercise("07.paired_interval", lambda: _unpaired, lambda: _normal, lambda: _zipped)
def check_paired_interval(paired_interval) -> None:
    """``paired_interval(a, b)``: the mean of a - b over the training seeds both arms have, and its 95% interval
    (Student t, n - 1 degrees of freedom), as ``(mean, low, high)``; checked against :func:`ablate.interval`."""
    for a, b in PAIRS:
        got = tuple(float(x) for x in call(paired_interval, dict(a), dict(b)))
        want = ablate.interval([a[s] - b[s] for s in sorted(set(a) & set(b))])
        if len(got) != 3:
            raise Wrong(f"expected (mean, low, high), got {len(got)} numbers")
        close("the mean of the paired differences", got[0], want[0], rtol=1e-6, atol=1e-9)
        close(f"the interval ({len(set(a) & set(b))} paired seeds)", got[1:], want[1:], rtol=1e-6, atol=1e-9)


def _half_width(n: int) -> float:
    """The 95% half-width of a mean over n seeds, in units of the seed-to-seed standard deviation."""
    return ablate.t95(n - 1) / math.sqrt(n)


CASES = ((3, 0.5), (3, 1 / 3), (2, 0.5), (5, 0.5), (4, 0.8))


@exercise("07.seeds_to_shrink", lambda: lambda n, f: math.ceil(n / f ** 2), lambda: lambda n, f: math.ceil(n / f),
          lambda: lambda n, f: next(m for m in range(2, 10_000)  # the interval as t / n, no square root
                                    if ablate.t95(m - 1) / m <= f * ablate.t95(n - 1) / n))
def check_seeds_to_shrink(seeds_to_shrink) -> None:
    """``seeds_to_shrink(n, factor)``: the fewest seeds whose 95% interval (Student t) is at most ``factor`` times as
    wide as the one from ``n`` seeds, at the same seed-to-seed spread; checked against :func:`ablate.t95`."""
    for n, factor in CASES:
        want = next(m for m in range(2, 10_000) if _half_width(m) <= factor * _half_width(n))
        got = call(seeds_to_shrink, n, factor)
        if got != want:
            raise Wrong(f"seeds_to_shrink({n}, {factor:.3g}) = {got} is not the fewest seeds that narrow the interval "
                        f"that much: compare t95(m - 1) / sqrt(m) for each m with the one for {n} seeds")


def _record(arms: dict[str, tuple[float, ...]]) -> dict:
    """A record whose arm has end-point validity ``values[s]`` at training seed s, the same at N = 1, 2, 4."""
    return {"runs": [{"variant": name, "seed": s,
                      "metrics": {Setting("student", n).label: {"2+": {"valid": x}} for n in (1, 2, 4)}}
                     for name, values in arms.items() for s, x in enumerate(values)]}


# The favoured arm and two others, each a different verdict (or the trap a shortcut falls into).
CLAIM_CASES = (
    {"fav": (0.70, 0.72, 0.71), "a": (0.60, 0.63, 0.61), "b": (0.65, 0.66, 0.66)},  # both worse beyond: holds
    {"fav": (0.70, 0.72, 0.71), "a": (0.60, 0.63, 0.61), "b": (0.69, 0.62, 0.74)},  # one worse, one unresolved
    {"fav": (0.70, 0.72, 0.71), "a": (0.60, 0.63, 0.61), "b": (0.75, 0.78, 0.76)},  # one worse, one better
    {"fav": (0.70, 0.72, 0.71), "a": (0.60, 0.63, 0.61), "b": (0.80, 0.70, 0.75)},  # one worse, one ahead in mean only
)


def _diffs(case: dict) -> tuple[dict, str]:
    v = ablate.claim_verdict(_record(case), "fav", ["a", "b"])
    return {o: (d["diff"], d["low"], d["high"]) for o, d in v["diffs"].items()}, v["verdict"]


def _by_means(diffs):
    means = [m for m, _, _ in diffs.values()]
    return "refuted" if any(m > 0 for m in means) else "holds" if all(m < 0 for m in means) else "inconclusive"


def _any_worse(diffs):
    return ("refuted" if any(low > 0 for _, low, _ in diffs.values()) else
            "holds" if any(high < 0 for _, _, high in diffs.values()) else "inconclusive")


def _all_better(diffs):
    return ("refuted" if all(low > 0 for _, low, _ in diffs.values()) else
            "holds" if all(high < 0 for _, _, high in diffs.values()) else "inconclusive")


@exercise("07.verdict", lambda: _by_means, lambda: _any_worse, lambda: _all_better)
def check_verdict(verdict) -> None:
    """``verdict(diffs)``, ``diffs`` = ``{other arm: (mean, low, high)}`` of other minus favoured on the end point
    (higher is better): ``"holds"``, ``"refuted"`` or ``"inconclusive"`` as :func:`ablate.claim_verdict` decides."""
    for case in CLAIM_CASES:
        diffs, want = _diffs(case)
        got = call(verdict, dict(diffs))
        if got != want:
            shown = "; ".join(f"{o}: {m:+.3f} [{lo:+.3f}, {hi:+.3f}]" for o, (m, lo, hi) in diffs.items())
            raise Wrong(f"on {shown} you say {got!r}: read the rule again, one arm's interval at a time")
