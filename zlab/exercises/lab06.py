"""Lab 06's exercises: a validity rate's standard error across prompts; coverage as a normalised entropy; a
difference between two settings, paired over the prompts both were measured on."""

from __future__ import annotations

import math

import numpy as np
import torch

from zlab.exercises.core import Wrong, call, close, exercise
from zlab.measure.paired import paired_difference
from zlab.shapes.metrics import coverage, mean_se

# valid samples per prompt and seeds per prompt: some prompts always right, some mostly wrong, as a real set is
COUNTS = (((16, 16, 16, 4, 2, 16, 15, 0), 16), ((8, 7, 8, 8, 6), 8), ((3, 1, 2, 0, 3, 2), 4))


def _binomial(counts, k):
    """The SE that treats every image as independent: seeds of one prompt share its difficulty, so it is too small."""
    p = sum(counts) / (len(counts) * k)
    return p, math.sqrt(p * (1 - p) / (len(counts) * k))


def _population(counts, k):
    rates = np.asarray(counts, np.float64) / k
    return float(rates.mean()), float(rates.std() / math.sqrt(len(rates)))  # ddof 0: the spread of a sample, too small


@exercise("06.validity_se", lambda: _binomial, lambda: _population)
def check_validity_se(validity_se) -> None:
    """``validity_se(valid_counts, k)``: the validity rate over prompts with ``k`` seeds each, and its standard error
    across prompts, as :func:`zlab.shapes.metrics.mean_se` gives it from each prompt's rate."""
    for counts, k in COUNTS:
        answer = call(validity_se, list(counts), k)
        if not isinstance(answer, tuple | list) or len(answer) != 2:
            raise Wrong("return two numbers: (validity, its standard error)")
        close(f"(validity, SE) of counts {counts} out of {k}", torch.tensor([float(a) for a in answer]),
              torch.tensor(mean_se([c / k for c in counts])))


READS = ((["small"] * 8 + ["large"] * 8, ["small", "large"]),
         (["small"] * 16, ["small", "large"]),
         (["circle", "circle", "triangle", "square", "triangle", "circle"], ["circle", "square"]),  # a purple shape
         (["top", "top", "middle", "top", "bottom", "middle", "top", "top"], ["top", "middle", "bottom"]),
         (["triangle", "triangle"], ["circle", "square"]),
         ([], ["red", "green", "blue", "yellow", "purple", "orange"]))


def _nats(reads, allowed):
    counts = np.unique([r for r in reads if r in allowed], return_counts=True)[1]
    p = counts / counts.sum() if len(counts) else counts
    return float(-(p * np.log(p)).sum())  # not divided by log(len(allowed)): a fair coin scores 0.69, not 1


def _with_errors(reads, allowed):
    counts = np.unique(reads, return_counts=True)[1]
    p = counts / counts.sum() if len(counts) else counts
    return float(-(p * np.log(p)).sum() / math.log(len(allowed)))  # a ruled-out read counted as diversity


@exercise("06.coverage_entropy", lambda: _nats, lambda: _with_errors)
def check_coverage_entropy(coverage_entropy) -> None:
    """``coverage_entropy(reads, allowed)``: the normalised entropy of the reads that are allowed values, over
    log(number of allowed values); 0 when no read is allowed (:func:`zlab.shapes.metrics.coverage`)."""
    for reads, allowed in READS:
        target = coverage(reads, {v: 1 / len(allowed) for v in allowed})["entropy"]
        value = float(call(coverage_entropy, list(reads), list(allowed)))
        if not math.isclose(value, target, abs_tol=1e-6):
            raise Wrong(f"coverage of reads {reads} with allowed values {allowed} is off: {value:.4f}")


def _pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """Two settings' per-prompt rates that share each prompt's difficulty (as two samplers on the same prompts do)."""
    rng = np.random.default_rng(6)
    out = []
    for n in (24, 10, 40):
        difficulty = rng.uniform(0.2, 1.0, n)
        a = (difficulty + rng.normal(0, 0.05, n)).clip(0, 1)
        out.append((a, (difficulty - 0.05 + rng.normal(0, 0.05, n)).clip(0, 1)))
    return out


def _unpaired(a, b):
    (ma, sa), (mb, sb) = mean_se(a), mean_se(b)
    return ma - mb, math.sqrt(sa ** 2 + sb ** 2)  # the two SEs side by side: ignores what the prompts share


def _spread(a, b):
    d = np.asarray(a) - np.asarray(b)
    return float(d.mean()), float(d.std(ddof=1))  # the spread of the differences, not the SE of their mean


@exercise("06.paired_difference", lambda: _unpaired, lambda: _spread)
def check_paired_difference(paired) -> None:
    """``paired(a, b)``: the mean over prompts of ``a - b`` and its standard error, paired over the prompts (both
    measured on the same ones), as :func:`zlab.measure.paired.paired_difference` gives them."""
    for a, b in _pairs():
        answer = call(paired, a.copy(), b.copy())
        if not isinstance(answer, tuple | list) or len(answer) != 2:
            raise Wrong("return two numbers: (mean difference, its standard error)")
        target = paired_difference(list(a), list(b))
        close(f"(mean difference, SE) over {len(a)} prompts", torch.tensor([float(x) for x in answer]),
              torch.tensor([target["mean"], target["se"]]))
