"""Exact measures for open captions: validity, accuracy on the named attributes, coverage of the open ones.

Per prompt over K seeds (:func:`prompt_record`), then averaged over prompts with standard errors across
prompts, split by the number of open attributes (:func:`summarise`):

- **valid**: exactly one object, drawn cleanly: one foreground region (8-connected pixels farther than
  :data:`zlab.shapes.checker.FOREGROUND_DISTANCE` from the background) of at least :data:`MIN_REGION_PX` pixels and no
  other region, its core colour within :data:`COLOUR_TOLERANCE` of a palette colour, and a shape template that
  fits it with soft IoU at least :data:`MIN_TEMPLATE_IOU`. An average of modes (two half-bright objects, a
  blend of two colours) is invalid.
- **named accuracy**: the image is valid and every attribute the caption names reads back right.
- **coverage** of each open attribute, over the valid samples: the normalised entropy
  H(p) / log(number of allowed values) of the reads the prompt allows (a value it rules out, such as a
  held-out pair, is an error and not diversity, so the entropy stays in [0, 1]), the total-variation
  distance to the allowed distribution (:meth:`zlab.shapes.open_captions.OpenSpec.allowed_distribution`), and the share of allowed values seen at least
  once. No valid sample: entropy 0, TV 1, share 0.

K samples of the allowed distribution itself do not reach entropy 1 (a finite sample is never exactly
uniform): :func:`prompt_records` of :func:`open_renders` gives the renders' value at the same K, the ceiling
to compare with.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
import torch

from zlab.shapes import checker, draw, world
from zlab.shapes.open_captions import ATTRIBUTES, OpenSpec, parse_open_caption

MIN_REGION_PX = 8
COLOUR_TOLERANCE = 40.0
"""RGB distance from the object's core colour to the nearest palette colour. Half-way blends of two palette
colours lie 45 or more from both (red and orange: 45; blue and purple: 65)."""
MIN_TEMPLATE_IOU = 0.7


def region_sizes(images: np.ndarray) -> list[list[int]]:
    """Pixel counts of the 8-connected foreground regions of each uint8 image (N, H, W, 3), largest first."""
    rgb = torch.from_numpy(np.asarray(images)).float()
    mask = (rgb - torch.tensor(world.BACKGROUND).float()).norm(dim=-1) > checker.FOREGROUND_DISTANCE
    n, h, w = mask.shape
    labels = torch.where(mask, torch.arange(1, h * w + 1).float().view(1, h, w).expand(n, h, w), 0.0)
    while True:  # every pixel takes the largest label in its 3x3 neighbourhood, inside the mask, until stable
        grown = torch.nn.functional.max_pool2d(labels[:, None], 3, stride=1, padding=1)[:, 0] * mask
        if torch.equal(grown, labels):
            break
        labels = grown
    out = []
    for k in range(n):
        _, counts = torch.unique(labels[k][mask[k]], return_counts=True)
        out.append(sorted(counts.tolist(), reverse=True))
    return out


def is_valid(result: checker.CheckResult, regions: Sequence[int]) -> bool:
    """One clean object: one region of >= 8 px and no other, a palette colour, a template's shape."""
    return invalid_reason(result, regions) is None


def invalid_reason(result: checker.CheckResult, regions: Sequence[int]) -> str | None:
    """Why an image is not one clean object (``None`` when it is): what :func:`is_valid` found wrong."""
    if not result.found:
        return result.reason
    if len(regions) != 1:
        return f"{len(regions)} regions"
    if regions[0] < MIN_REGION_PX:
        return "too small"
    colour = np.asarray(world.PALETTE[result.spec.colour], np.float64)
    if np.linalg.norm(np.asarray(result.mean_colour) - colour) > COLOUR_TOLERANCE:
        return "colour off the palette"
    if max(result.ious.values()) < MIN_TEMPLATE_IOU:
        return "no clean shape"
    return None


def open_verdict(image: np.ndarray, prompt: str) -> str:
    """A short caption for one sample of an open or fully named prompt: ``"✗ 2 regions"`` when invalid,
    ``"✗ colour: blue"`` when a named attribute is wrong, else ``"✓"`` followed by what the open attributes
    read (``"✓ small square top right"``)."""
    result = checker.check(image)
    reason = invalid_reason(result, region_sizes(np.asarray(image)[None])[0])
    if reason:
        return f"✗ {reason}"
    named, got = parse_open_caption(prompt).named, result.spec
    wrong = [f"{k}: {getattr(got, k)}" for k, v in named.items() if getattr(got, k) != v]
    if wrong:
        return "✗ " + ", ".join(wrong)
    read = [getattr(got, k) for k in ATTRIBUTES if k not in named]
    return "✓" + (" " + " ".join(read) if read else "")


def failure_kind(verdict: str) -> str:
    """An :func:`open_verdict` as a kind: ``"✓"``, its reason (region counts pooled as ``"several regions"``), or a
    wrong named attribute by attribute (``"wrong colour"``)."""
    if verdict.startswith("✓"):
        return "✓"
    reason = verdict.removeprefix("✗ ")
    if reason.endswith(" regions"):
        return "several regions"
    attribute, colon, _ = reason.partition(":")
    return f"wrong {attribute}" if colon and attribute in ATTRIBUTES else reason


def failure_counts(images: np.ndarray, prompts: Sequence[str]) -> Counter:
    """How many images are valid and right (``"✓"``) and how many fail each way (:func:`failure_kind`)."""
    return Counter(failure_kind(open_verdict(image, prompt)) for image, prompt in zip(images, prompts, strict=True))


def accepts(image: np.ndarray, prompt: str) -> bool:
    """Whether the checker accepts ``image`` as a sample of ``prompt``: one clean object whose named attributes are the
    prompt's (:func:`open_verdict` reads ``✓``)."""
    return open_verdict(image, prompt).startswith("✓")


def validity(images: np.ndarray) -> tuple[list[bool], list[checker.CheckResult]]:
    """:func:`is_valid` of each image, with the checker's readings."""
    results = checker.check_batch(images)
    return [is_valid(r, g) for r, g in zip(results, region_sizes(images))], results


@lru_cache(maxsize=4096)
def _allowed_split(spec: OpenSpec) -> str:
    return "train" if spec.allowed("train") else "heldout"


@lru_cache(maxsize=4096)
def _distribution(spec: OpenSpec, attribute: str) -> tuple[tuple[str, float], ...]:
    return tuple(spec.allowed_distribution(attribute, _allowed_split(spec)).items())


def coverage(values: Sequence[str], allowed: Mapping[str, float]) -> dict[str, float]:
    """Normalised entropy, TV distance to ``allowed`` and share of allowed values seen, of the read ``values``.

    The entropy is that of the reads that are allowed values, over log(number of allowed values), so it lies in
    [0, 1]: a value the prompt rules out (a held-out pair, e.g. a triangle for ``a purple shape``) is an error,
    not diversity. It counts against the TV distance, which compares every read with ``allowed``."""
    if not values:
        return {"entropy": 0.0, "tv": 1.0, "seen": 0.0}
    counts = Counter(values)
    p = {v: c / len(values) for v, c in counts.items()}
    inside = [c for v, c in counts.items() if v in allowed]
    total = sum(inside)
    entropy = -sum(c / total * math.log(c / total) for c in inside)
    return {"entropy": entropy / math.log(len(allowed)) if len(allowed) > 1 else float(bool(inside)),
            "tv": 0.5 * sum(abs(p.get(v, 0.0) - allowed.get(v, 0.0)) for v in set(p) | set(allowed)),
            "seen": sum(v in counts for v in allowed) / len(allowed)}


def prompt_record(prompt: str, valid: Sequence[bool], results: Sequence[checker.CheckResult]) -> dict:
    """Validity, named accuracy and coverage of one prompt's K samples."""
    spec = parse_open_caption(prompt)
    named = spec.named
    read = [r.spec for r, ok in zip(results, valid) if ok]
    right = [ok and all(getattr(r.spec, k) == v for k, v in named.items()) for r, ok in zip(results, valid)]
    record = {"prompt": prompt, "open": len(spec.open), "k": len(valid), "valid": float(np.mean(valid)),
              "named_accuracy": float(np.mean(right)) if named else float("nan")}
    covered = [coverage([getattr(s, a) for s in read], dict(_distribution(spec, a))) for a in spec.open]
    for key in ("entropy", "tv", "seen"):
        record[f"coverage_{key}"] = float(np.mean([c[key] for c in covered])) if covered else float("nan")
    return record


def prompt_records(images: np.ndarray, prompts: Sequence[str], per_prompt: int) -> list[dict]:
    """:func:`prompt_record` of each prompt; ``images`` and ``prompts`` are prompt-major, ``per_prompt`` each."""
    valid, results = validity(images)
    return [prompt_record(prompts[i], valid[i:i + per_prompt], results[i:i + per_prompt])
            for i in range(0, len(prompts), per_prompt)]


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (across prompts) of the finite values; NaN when there are none."""
    x = np.asarray([v for v in values if not math.isnan(v)], np.float64)
    if len(x) == 0:
        return float("nan"), float("nan")
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")


METRICS = ("valid", "named_accuracy", "coverage_entropy", "coverage_tv", "coverage_seen")
GROUPS: dict[str, list[int]] = {**{str(k): [k] for k in range(6)}, "2+": [2, 3, 4, 5], "all": list(range(6))}
"""Groups of open-attribute counts: each count 0 (fully named) to 5 (``"a shape"``), ``"2+"`` and ``"all"``."""
REPORT_GROUPS: list[str] = [*map(str, range(6)), "2+"]
"""The columns of the reported tables."""


def summarise(records: Sequence[Mapping], groups: Mapping[str, Sequence[int]] | None = None) -> dict[str, dict]:
    """Mean and SE of each metric over prompts, per group of open-attribute counts.

    Args:
        groups: Group name to the open counts it holds; default :data:`GROUPS`.
    """
    groups = groups or GROUPS
    out = {}
    for name, counts in groups.items():
        members = [r for r in records if r["open"] in counts]
        if members:
            out[name] = {"prompts": len(members),
                         **{m: mean_se([r[m] for r in members]) for m in METRICS}}
    return out


def open_renders(prompts: Sequence[str], seeds: Sequence[int], size=64) -> np.ndarray:
    """Ground-truth renders: for each prompt a spec drawn from its allowed distribution and a jitter, both
    from the seed (a fully named prompt always renders its one spec)."""
    specs, jitters = [], []
    for prompt, seed in zip(prompts, seeds):
        rng = np.random.default_rng([int(seed), 7])
        jitters.append(tuple(int(v) for v in rng.integers(-world.MAX_JITTER, world.MAX_JITTER + 1, size=2)))
        spec = parse_open_caption(prompt)
        specs.append(spec.draw(rng, _allowed_split(spec)))
    return draw.render_batch(specs, size, jitters)

