"""Three disjoint prompt-and-seed sets: train, validation, test.

- **train**: what models train on. The teacher's captions are drawn only from the train prompts; the LADD
  student's synthetic data uses train prompts and train seeds.
- **validation**: what every choice uses: the guidance scale, the probability of leaving an attribute open,
  LADD's settings, the step at which a run stops.
- **test**: what model cards, notes and labs report. No reported number was used to choose a setting.

The prompts are the open captions of the train colour-shape pairs (:func:`zlab.shapes.open_captions.enumerate_open_specs`),
split at random within each number of open attributes (0 to 5), so that every set holds prompts of every
kind: :data:`TEST_FRACTION` go to test first, then :data:`VALIDATION_FRACTION` to validation, and the rest
train. ``"a shape"``, the only caption with all five open, is a test prompt. The teacher has thus never
seen a validation or test caption, only its words and its images under other captions (a fully named
test caption such as ``"a small red circle at the top left"`` names a spec the teacher drew for ``"a red
circle"``). Captions that name a held-out colour-shape pair are never trained on; they split between
validation and test alone.

Seeds are disjoint by range: ``seed(set, prompt_index, k)`` is ``BASE[set] + 1000 * prompt_index + k``.

Example:
    >>> len(set(prompts("train")) & set(prompts("test")))
    0
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from zlab.shapes.open_captions import OpenSpec, enumerate_open_specs, parse_open_caption
from zlab.shapes.world import HELD_OUT_PAIRS

SETS: tuple[str, ...] = ("train", "validation", "test")
TEST_FRACTION = 0.15
VALIDATION_FRACTION = 0.15
SPLIT_SEED = 2026
"""The seed of the fixed permutation that splits the prompts (never changed once a model is trained)."""
BASE: dict[str, int] = {"train": 0, "validation": 10_000_000, "test": 20_000_000}
"""First seed of each set; a set's seeds stay below the next set's base (prompt index < 10,000, k < 1000)."""
MAX_SEEDS_PER_PROMPT = 1000


def _check(which: str) -> None:
    if which not in SETS:
        raise ValueError(f"prompt set must be one of {SETS}, got {which!r}")


def _named_heldout(spec: OpenSpec) -> bool:
    return (spec.colour, spec.shape) in HELD_OUT_PAIRS


@cache
def _split(pairs: str) -> dict[str, tuple[str, ...]]:
    if pairs == "train":
        specs = enumerate_open_specs("train")
    elif pairs == "heldout":
        specs = [s for s in enumerate_open_specs("heldout") if _named_heldout(s)]
    else:
        raise ValueError(f"pairs must be 'train' (the pairs models train on) or 'heldout', got {pairs!r}")
    out: dict[str, list[str]] = {name: [] for name in SETS}
    for k in range(6):
        group = sorted(s.caption for s in specs if len(s.open) == k)
        order = np.random.default_rng([SPLIT_SEED, k]).permutation(len(group))
        group = [group[i] for i in order]
        if pairs == "heldout":  # never trained on: half validation, half test
            out["test"] += group[0::2]
            out["validation"] += group[1::2]
            continue
        n_test = math.ceil(TEST_FRACTION * len(group))
        n_val = min(math.ceil(VALIDATION_FRACTION * len(group)), len(group) - n_test)
        out["test"] += group[:n_test]
        out["validation"] += group[n_test:n_test + n_val]
        out["train"] += group[n_test + n_val:]
    return {name: tuple(captions) for name, captions in out.items()}


def prompts(which: str, pairs: str = "train", max_open: int = 5, min_open: int = 0) -> list[str]:
    """The captions of one set, in a fixed order (by number of open attributes, then at random).

    Args:
        which: ``"train"``, ``"validation"`` or ``"test"``.
        pairs: ``"train"``: captions of the colour-shape pairs models train on; ``"heldout"``: captions that
            name a held-out pair (validation and test only; ``"train"`` holds none).
        min_open, max_open: Keep captions with this many open attributes (0: fully named, 5: ``"a shape"``).
    """
    _check(which)
    return [c for c in _split(pairs)[which] if min_open <= len(parse_open_caption(c).open) <= max_open]


def seed(which: str, prompt_index: int, k: int = 0) -> int:
    """The ``k``-th seed of prompt ``prompt_index`` in set ``which`` (disjoint between sets)."""
    _check(which)
    if not 0 <= k < MAX_SEEDS_PER_PROMPT or not 0 <= prompt_index < 10_000:
        raise ValueError(f"k must be in [0, {MAX_SEEDS_PER_PROMPT}) and prompt_index in [0, 10000), "
                         f"got {k} and {prompt_index}")
    return BASE[which] + MAX_SEEDS_PER_PROMPT * prompt_index + k


def prompts_and_seeds(which: str, per_prompt: int, pairs: str = "train", per_count: int | None = None,
                      **filters) -> tuple[list[str], list[int]]:
    """The prompts of a set repeated ``per_prompt`` times, with their own seeds (prompt-major order).

    Args:
        per_count: Keep only the first ``per_count`` prompts of each number of open attributes (the set's order
            is random within a count, so this is a fixed random subset with every kind of prompt).
    """
    index = {c: i for i, c in enumerate(prompts(which, pairs))}  # seeds follow the prompt's place in the whole set
    captions = prompts(which, pairs, **filters)
    if per_count is not None:
        kept: dict[int, int] = {}
        chosen = []
        for c in captions:
            k = len(parse_open_caption(c).open)
            if kept.get(k, 0) < per_count:
                kept[k] = kept.get(k, 0) + 1
                chosen.append(c)
        captions = chosen
    offset = 5_000 if pairs == "heldout" else 0
    return ([c for c in captions for _ in range(per_prompt)],
            [seed(which, offset + index[c], k) for c in captions for k in range(per_prompt)])
