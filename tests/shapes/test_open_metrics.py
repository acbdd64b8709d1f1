"""Open-caption measures: validity, named accuracy, coverage, and the three disjoint prompt sets."""

import math

import numpy as np
import pytest

from zlab.shapes import checker, draw, prompt_sets, world
from zlab.shapes.metrics import coverage, mean_se, open_renders, prompt_records, region_sizes, summarise, validity
from zlab.shapes.open_captions import parse_open_caption


def _renders(size, seed=0):
    specs = world.enumerate_specs("all")
    rng = np.random.default_rng(seed)
    return specs, draw.render_batch(specs, size, [tuple(int(v) for v in rng.integers(-2, 3, 2)) for _ in specs])


@pytest.mark.parametrize("size", [64, (64, 96), (96, 64)])
def test_validity_is_one_on_renders_and_near_zero_on_averages_of_two(size):
    specs, images = _renders(size)
    assert np.mean(validity(images)[0]) == 1.0
    other = images[np.random.default_rng(1).permutation(len(images))]
    different = [i for i in range(len(images)) if not np.array_equal(other[i], images[i])]
    averages = ((images.astype(int) + other.astype(int)) // 2).astype(np.uint8)[different]
    assert np.mean(validity(averages)[0]) < 0.05


def test_two_objects_make_two_regions_and_an_invalid_image():
    a = draw.render(world.parse_caption("a small red circle at the top left"))
    b = draw.render(world.parse_caption("a small red circle at the bottom right"))
    both = np.where((b != world.BACKGROUND).any(-1, keepdims=True), b, a)
    assert [len(r) for r in region_sizes(np.stack([a, both]))] == [1, 2]
    assert validity(np.stack([a, both]))[0] == [True, False]
    blank = np.full_like(a, world.BACKGROUND)
    assert validity(blank[None])[0] == [False]
    from zlab.shapes.metrics import failure_counts, failure_kind

    counts = failure_counts(np.stack([a, both, blank, a]), ["a red shape", "a red shape", "a shape", "a blue shape"])
    assert counts == {"✓": 1, "too large": 1, "no object": 1, "wrong colour": 1}  # two far objects: one too-large box
    assert [failure_kind(v) for v in ("✓ small circle", "✗ 3 regions", "✗ shape: square", "✗ colour off the palette")] == [
        "✓", "several regions", "wrong shape", "colour off the palette"]


def test_coverage_of_uniform_collapsed_and_off_distributions():
    allowed = {v: 1 / 3 for v in ("top", "middle", "bottom")}
    assert coverage(["top", "middle", "bottom"] * 4, allowed) == {"entropy": pytest.approx(1.0), "tv": pytest.approx(0.0),
                                                                  "seen": 1.0}
    collapsed = coverage(["top"] * 12, allowed)
    assert collapsed["entropy"] == 0.0 and collapsed["tv"] == pytest.approx(2 / 3) and collapsed["seen"] == pytest.approx(1 / 3)
    assert coverage([], allowed) == {"entropy": 0.0, "tv": 1.0, "seen": 0.0}
    # a value the prompt rules out is an error, not diversity: entropy stays in [0, 1], TV counts it
    two = {"circle": 0.5, "square": 0.5}  # e.g. "a purple shape": the triangle is a held-out pair
    ruled_out = coverage(["circle", "square", "triangle"] * 4, two)
    assert ruled_out["entropy"] == pytest.approx(1.0) and ruled_out["tv"] == pytest.approx(1 / 3)
    assert coverage(["triangle"] * 6, two)["entropy"] == 0.0


def test_records_count_named_attributes_only_and_cover_open_ones():
    prompt = "a red shape in the top row"
    seeds = list(range(32))
    images = open_renders([prompt] * 32, seeds)
    record = prompt_records(images, [prompt] * 32, 32)[0]
    assert record["open"] == 3 and record["valid"] == 1.0 and record["named_accuracy"] == 1.0
    assert record["coverage_entropy"] > 0.85 and record["coverage_seen"] == 1.0
    # every seed the same image: named attributes right, coverage collapsed
    same = np.repeat(images[:1], 32, axis=0)
    collapsed = prompt_records(same, [prompt] * 32, 32)[0]
    assert collapsed["named_accuracy"] == 1.0 and collapsed["coverage_entropy"] == 0.0
    # renders of another colour: valid but wrong on the named colour
    wrong = open_renders(["a blue shape in the top row"] * 4, seeds[:4])
    assert prompt_records(wrong, [prompt] * 4, 4)[0]["named_accuracy"] == 0.0


def test_open_renders_follow_the_allowed_distribution():
    spec = parse_open_caption("a purple shape")
    images = open_renders(["a purple shape"] * 200, range(200))
    read = [r.spec.shape for r in checker.check_batch(images)]
    assert set(read) == {"circle", "square"}  # purple triangles are held out
    assert all(r.spec.colour == "purple" for r in checker.check_batch(images[:20]))
    assert spec.allowed_distribution("shape") == {"circle": 0.5, "square": 0.5}


def test_summary_gives_means_and_standard_errors_by_open_count():
    records = [{"open": 0, "valid": 1.0, "named_accuracy": 1.0, "coverage_entropy": math.nan, "coverage_tv": math.nan,
                "coverage_seen": math.nan},
               {"open": 2, "valid": 0.5, "named_accuracy": 0.25, "coverage_entropy": 0.8, "coverage_tv": 0.2,
                "coverage_seen": 1.0},
               {"open": 2, "valid": 0.7, "named_accuracy": 0.75, "coverage_entropy": 0.6, "coverage_tv": 0.4,
                "coverage_seen": 0.5}]
    summary = summarise(records)
    assert set(summary) == {"0", "2", "2+", "all"}
    assert summary["2"]["valid"] == (pytest.approx(0.6), pytest.approx(0.1))
    assert summary["all"]["coverage_entropy"][0] == pytest.approx(0.7)  # NaN (nothing open) is left out
    assert math.isnan(mean_se([math.nan])[0])


def test_prompt_sets_are_disjoint_fixed_and_hold_every_kind():
    sets = {name: set(prompt_sets.prompts(name)) for name in prompt_sets.SETS}
    assert not (sets["train"] & sets["validation"] or sets["train"] & sets["test"] or sets["validation"] & sets["test"])
    assert len(sets["train"]) + len(sets["validation"]) + len(sets["test"]) == 1200
    for name in ("validation", "test"):
        assert all(prompt_sets.prompts(name, min_open=k, max_open=k) for k in range(5))
    assert prompt_sets.prompts("test", min_open=5) == ["a shape"]
    assert prompt_sets.prompts("train", pairs="heldout") == []
    held = set(prompt_sets.prompts("validation", "heldout")) | set(prompt_sets.prompts("test", "heldout"))
    assert len(held) == 144 and not held & set().union(*sets.values())
    seeds = {name: set(prompt_sets.prompts_and_seeds(name, 8)[1] + prompt_sets.prompts_and_seeds(name, 8, "heldout")[1])
             for name in ("validation", "test")}
    seeds["train"] = set(prompt_sets.prompts_and_seeds("train", 8)[1])
    assert not (seeds["train"] & seeds["validation"] or seeds["train"] & seeds["test"]
                or seeds["validation"] & seeds["test"])
    with pytest.raises(ValueError, match="prompt set must be one of"):
        prompt_sets.prompts("dev")


def test_a_subset_keeps_each_prompts_seeds():
    full_prompts, full_seeds = prompt_sets.prompts_and_seeds("test", 2)
    sub_prompts, sub_seeds = prompt_sets.prompts_and_seeds("test", 2, per_count=2)
    lookup = {(p, s) for p, s in zip(full_prompts, full_seeds)}
    assert all((p, s) in lookup for p, s in zip(sub_prompts, sub_seeds))
    assert sorted({len(parse_open_caption(p).open) for p in sub_prompts}) == [0, 1, 2, 3, 4, 5]
