"""Lab 03's exercises: the time shift of each aspect bucket; what a sampling setting costs in network evaluations;
the coverage of an open attribute from the checker's counts."""

from __future__ import annotations

import math
from collections import Counter
from types import SimpleNamespace

from zlab import flow
from zlab.exercises.core import Wrong, call, exercise
from zlab.shapes import metrics, world

SIZES = ((64, 64), (64, 96), (96, 64), (128, 128), (256, 256), (512, 768), (1024, 1024))
STEPS = (1, 2, 4, 8, 50)
GUIDANCE = (0.0, 0.5, 3.0)
TRUNCATIONS = (1.0, 0.75, 0.5, 0.25, 0.0)
COUNTS = (
    ({"circle": 6, "square": 5, "triangle": 5}, world.SHAPES),
    ({"circle": 16}, world.SHAPES),
    ({"circle": 7, "square": 7, "triangle": 2}, ("circle", "square")),  # `a purple shape`: triangles are held out
    ({"red": 5, "blue": 4, "green": 2, "yellow": 1}, world.COLOURS),    # two colours never read
    ({"small": 9, "large": 7}, world.SIZES),
    ({"triangle": 4}, ("circle", "square")),                            # no allowed read at all
    ({}, world.SIZES),
)


def _tiny_scheduler():
    from zlab.tiny import TINY_SIZES, build_scheduler  # diffusers: imported when a lab 03 check runs, not before

    return build_scheduler(TINY_SIZES["tiny"])


@exercise("03.bucket_shift",
          lambda: lambda h, w: math.exp(flow.resolution_mu((h // 8) * (w // 8))),  # latent pixels, not 2x2 patches
          lambda: lambda h, w: flow.resolution_mu((h // 16) * (w // 16)),           # mu, not the shift e^mu
          lambda: lambda h, w: 1.0)                                                 # the config's static `shift`
def check_bucket_shift(bucket_shift) -> None:
    """``bucket_shift(height, width)``: the time shift the tiny teacher's scheduler applies at that size in pixels."""
    from zlab.zimage import sampling_shift

    config = _tiny_scheduler().config
    for height, width in SIZES:
        value = float(call(bucket_shift, height, width))
        target = sampling_shift(config, height, width)[1]
        if not math.isclose(value, target, rel_tol=1e-6):
            raise Wrong(f"the shift at {height}x{width} pixels is off ({value:.4f}); count the image tokens first "
                        "(pixels, then 8x smaller latents, then 2x2 patches), then mu, then the shift")


def _nfe_cases():
    from zlab.measure.evaluate import count_nfe
    from zlab.zimage import schedule

    scheduler = _tiny_scheduler()
    pipe = SimpleNamespace(scheduler=scheduler, vae_scale_factor=8)
    for steps in STEPS:
        ts = schedule(scheduler, steps, 64, 64)[:-1]
        for g in GUIDANCE:
            for tau in TRUNCATIONS:
                setting = {"num_inference_steps": steps, "guidance_scale": g, "cfg_truncation": tau,
                           "height": 64, "width": 64}
                yield ts, g, tau, count_nfe(pipe, setting)


@exercise("03.nfe",
          lambda: lambda ts, g, tau: len(ts) * (2 if g > 0 else 1),                                 # no truncation
          lambda: lambda ts, g, tau: sum(2 if g > 0 and float(t) <= tau else 1 for t in ts),       # guides low noise
          lambda: lambda ts, g, tau: sum(2 if 1 - float(t) <= tau else 1 for t in ts))             # guides at g = 0
def check_nfe(nfe) -> None:
    """``nfe(ts, g, tau)``: transformer calls per image of stock ``ZImagePipeline`` at lab times ``ts`` (t = 1
    first, the final 0 left out), ``guidance_scale`` g and ``cfg_truncation`` tau."""
    for ts, g, tau, target in _nfe_cases():
        value = call(nfe, ts, g, tau)
        if int(value) != target:
            raise Wrong(f"{len(ts)} steps at g = {g:g}, cfg_truncation = {tau:g}: you count {value} evaluations; "
                        "which of the steps does the pipeline guide?")


def _entropy(counts, allowed, keep=lambda v, allowed: v in allowed, norm=lambda counts, allowed: len(allowed)):
    kept = {v: c for v, c in counts.items() if keep(v, allowed) and c}
    total, k = sum(kept.values()), norm(kept, allowed)
    if not total or k < 2:
        return 0.0
    return -sum(c / total * math.log(c / total) for c in kept.values()) / math.log(k)


@exercise("03.coverage_entropy",
          lambda: lambda counts, allowed: _entropy(counts, allowed, norm=lambda kept, allowed: len(kept)),  # seen
          lambda: lambda counts, allowed: _entropy(counts, allowed, keep=lambda v, allowed: True),          # errors too
          lambda: lambda counts, allowed: _entropy(counts, allowed) * math.log(len(allowed)))             # in nats
def check_coverage_entropy(coverage_entropy) -> None:
    """``coverage_entropy(counts, allowed)``: the normalised entropy of the allowed values read, as
    :func:`zlab.shapes.metrics.coverage` computes it (``counts``: value -> samples that read it)."""
    for counts, allowed in COUNTS:
        value = float(call(coverage_entropy, dict(counts), tuple(allowed)))
        reads = list(Counter(counts).elements())
        target = metrics.coverage(reads, {v: 1 / len(allowed) for v in allowed})["entropy"]
        if not math.isclose(value, target, abs_tol=1e-9):
            raise Wrong(f"counts {counts} with allowed values {tuple(allowed)}: you give {value:.4f}; which reads "
                        "count, and what divides the entropy?")
