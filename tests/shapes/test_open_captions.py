"""Open captions: the grammar round-trips, named captions are today's, open attributes draw from what training allows."""

from collections import Counter

import numpy as np
import pytest

from zlab.shapes import world
from zlab.shapes.open_captions import ATTRIBUTES, OpenSpec, enumerate_open_specs, parse_open_caption


def test_fully_named_captions_are_exactly_todays():
    for spec in world.enumerate_specs("all"):
        assert OpenSpec.from_spec(spec).caption == spec.caption
        assert parse_open_caption(spec.caption) == OpenSpec.from_spec(spec)


def test_every_open_spec_round_trips_through_its_caption():
    specs = enumerate_open_specs("all")
    assert len(specs) == 3 * 7 * 4 * 4 * 4  # each attribute: a value or open
    captions = [s.caption for s in specs]
    assert len(set(captions)) == len(captions)
    assert all(parse_open_caption(c) == s for c, s in zip(captions, specs))


@pytest.mark.parametrize("caption, open_attributes", [
    ("a shape", ATTRIBUTES),
    ("a red shape", ("size", "shape", "row", "column")),
    ("a large circle", ("colour", "row", "column")),
    ("a blue triangle in the top row", ("size", "column")),
    ("a small shape in the left column", ("colour", "shape", "row")),
    ("a large red circle at the top left", ()),
])
def test_design_examples_parse(caption, open_attributes):
    spec = parse_open_caption(caption)
    assert spec.open == open_attributes and spec.caption == caption


@pytest.mark.parametrize("caption", ["", "a red", "a circle at the top", "a huge circle", "a red shape in the top column",
                                     "a circle in the top row at the top left", "A shape"])
def test_bad_captions_name_the_grammar(caption):
    with pytest.raises(ValueError, match="unconditional|expected a \\[size\\]"):
        parse_open_caption(caption)


def test_open_attributes_draw_only_what_training_renders():
    purple = parse_open_caption("a purple shape")
    assert {s.shape for s in purple.allowed("train")} == {"circle", "square"}  # (purple, triangle) is held out
    assert purple.allowed_distribution("shape") == {"circle": 0.5, "square": 0.5}
    rng = np.random.default_rng(0)
    draws = Counter(purple.draw(rng).shape for _ in range(400))
    assert set(draws) == {"circle", "square"} and min(draws.values()) > 150
    held = parse_open_caption("a purple triangle")
    assert held.allowed("train") == [] and len(held.allowed("heldout")) == 2 * 3 * 3
    with pytest.raises(ValueError, match="held-out"):
        held.draw(rng)
    assert len(enumerate_open_specs("train")) < len(enumerate_open_specs("all"))


def test_the_allowed_distribution_is_the_marginal_of_the_uniform_draw():
    anything = OpenSpec()
    colours = anything.allowed_distribution("colour")
    assert sum(colours.values()) == pytest.approx(1.0)
    assert colours["red"] == pytest.approx(3 / 15) and colours["purple"] == pytest.approx(2 / 15)  # 15 train pairs
    with pytest.raises(ValueError, match="attribute must be"):
        anything.allowed_distribution("texture")
    with pytest.raises(ValueError, match="open"):
        OpenSpec(colour="teal")


def test_the_builder_writes_open_captions():
    from zlab.shapes.open_captions import ANY, build_caption

    assert build_caption("large", "red", "circle", "top", "left") == "a large red circle at the top left"
    assert build_caption("large", "red", ANY, "top", ANY) == "a large red shape in the top row"
    assert build_caption() == "a shape"
    assert build_caption(colour="blue", column="right") == "a blue shape in the right column"
    with pytest.raises(ValueError, match="colour must be None"):
        build_caption(colour="teal")
