"""Lab 03's exercises: the time shift of each aspect bucket; what a sampling setting costs in network evaluations;
the distribution of an open attribute that an open caption allows."""

from __future__ import annotations

import math
from collections import Counter
from functools import cache
from types import SimpleNamespace

from zlab import flow
from zlab.exercises.core import Wrong, call, exercise
from zlab.shapes.open_captions import VALUES, parse_open_caption

SIZES = ((64, 64), (64, 96), (96, 64), (128, 128), (256, 256), (512, 768), (1024, 1024))
STEPS = (1, 2, 4, 8, 50)
GUIDANCE = (0.0, 0.5, 3.0)
TRUNCATIONS = (1.0, 0.75, 0.5, 0.25, 0.0)  # no sampled time of STEPS lies within float32 rounding of these
OPEN = (("a shape", "colour"), ("a shape", "shape"), ("a shape", "row"), ("a purple shape", "shape"),
        ("a red shape in the top row", "column"), ("a large triangle", "colour"),
        ("a green shape in the left column", "shape"), ("a small orange shape", "shape"))  # no held-out pair named


def _tiny_scheduler():
    """The scheduler the teacher recipe builds: the tiny size's, with the resolution-dependent shift."""
    from zlab.tiny import build_scheduler  # diffusers: imported when a lab 03 check runs, not before
    from zlab.train.teacher import TeacherConfig

    return build_scheduler(TeacherConfig(size="tiny", resolution_shift=True).architecture())


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


@cache
def _nfe_cases() -> tuple:
    from zlab.measure.evaluate import count_nfe
    from zlab.zimage import schedule

    scheduler = _tiny_scheduler()
    pipe = SimpleNamespace(scheduler=scheduler, vae_scale_factor=8)
    cases = []
    for steps in STEPS:
        ts = schedule(scheduler, steps, 64, 64)[:-1]
        for g in GUIDANCE:
            for tau in TRUNCATIONS:
                setting = {"num_inference_steps": steps, "guidance_scale": g, "cfg_truncation": tau,
                           "height": 64, "width": 64}
                cases.append((ts, g, tau, count_nfe(pipe, setting)))
    return tuple(cases)


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
            raise Wrong(f"{len(ts)} step{'s' * (len(ts) > 1)} at g = {g:g}, cfg_truncation = {tau:g}: you count {value} evaluations; "
                        "which of the steps does the pipeline guide?")


def _marginal(caption: str, attribute: str, split: str = "train") -> dict[str, float]:
    specs = parse_open_caption(caption).allowed(split)
    counts = Counter(getattr(spec, attribute) for spec in specs)
    return {value: count / len(specs) for value, count in counts.items()}


def _uniform_over_allowed(caption: str, attribute: str) -> dict[str, float]:
    values = parse_open_caption(caption).allowed_distribution(attribute, "train")
    return {value: 1 / len(values) for value in values}


@exercise("03.allowed_distribution",
          lambda: lambda caption, attribute: {v: 1 / len(VALUES[attribute]) for v in VALUES[attribute]},  # the world's
          lambda: _uniform_over_allowed,                                     # the allowed values, but not weighted
          lambda: lambda caption, attribute: _marginal(caption, attribute, "all"))  # held-out pairs drawn too
def check_allowed_distribution(allowed_distribution) -> None:
    """``allowed_distribution(caption, attribute)``: ``{value: probability}`` of ``attribute`` when a spec is drawn
    uniformly from the train specs the caption allows (:meth:`zlab.shapes.open_captions.OpenSpec.allowed_distribution`)."""
    for caption, attribute in OPEN:
        answer = call(allowed_distribution, caption, attribute)
        if not isinstance(answer, dict):
            raise Wrong(f"expected a dict {{value: probability}}, got {type(answer).__name__}")
        value = {v: float(p) for v, p in answer.items() if float(p) > 0}
        target = parse_open_caption(caption).allowed_distribution(attribute, "train")
        if set(value) != set(target) or any(not math.isclose(value[v], p, abs_tol=1e-9) for v, p in target.items()):
            raise Wrong(f"the {attribute} of {caption!r} is off: {({v: round(p, 3) for v, p in value.items()})}; "
                        "which specs may the caption's image be, and how often does each value occur among them?")
