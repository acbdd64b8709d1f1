"""Tests for the Shapes world: vocabulary, splits, rendering, dataset determinism and the checker."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zlab.shapes import world
from zlab.shapes.checker import CheckResult, accuracy, check, check_batch, score
from zlab.shapes.dataset import ShapesDataset
from zlab.shapes.draw import gaussian_blur, image_to_tensor, object_box, render, render_batch, tensor_to_image
from zlab.shapes.world import (
    BACKGROUND,
    HELD_OUT_PAIRS,
    PALETTE,
    ShapeSpec,
    canvas_size,
    enumerate_captions,
    enumerate_specs,
    parse_caption,
)


def draws(n: int, seed: int, split: str = "all") -> tuple[list[ShapeSpec], list[tuple[int, int]]]:
    """``n`` random specs of a split with random jitters."""
    rng = np.random.default_rng(seed)
    specs = enumerate_specs(split)
    picked = [specs[i] for i in rng.integers(len(specs), size=n)]
    jitters = [(int(dy), int(dx)) for dy, dx in rng.integers(-2, 3, size=(n, 2))]
    return picked, jitters


def down_up(images: np.ndarray, factor: int = 4) -> np.ndarray:
    """Box-downsample by ``factor`` then bilinear-upsample back: a crude tiny-VAE round trip."""
    x = torch.from_numpy(images).float().permute(0, 3, 1, 2)
    small = F.avg_pool2d(x, factor)
    x = F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


# ---------------------------------------------------------------- vocabulary and captions


def test_palette_and_background():
    assert BACKGROUND == (30, 30, 30)
    # the design's palette, in its order: red, green, blue, yellow, purple, orange
    names = ("red", "green", "blue", "yellow", "purple", "orange")
    rgb = ((220, 40, 40), (40, 180, 60), (40, 80, 220), (230, 210, 40), (150, 60, 190), (240, 130, 30))
    assert list(PALETTE.items()) == list(zip(names, rgb))
    assert world.SHAPES == ("circle", "square", "triangle")
    assert world.HALF_EXTENT == {"small": 0.11, "large": 0.18}


def test_caption_round_trip_over_all_specs():
    specs = enumerate_specs("all")
    captions = enumerate_captions("all")
    assert len(set(captions)) == len(captions) == 324
    for spec, caption in zip(specs, captions):
        assert spec.caption == caption
        assert parse_caption(caption) == spec
        assert ShapeSpec.from_attributes(spec.attributes) == spec
        assert ShapeSpec(**spec.attributes) == spec
    example = ShapeSpec(shape="circle", colour="red", size="large", row="top", column="left")
    assert example.caption == "a large red circle at the top left"


@pytest.mark.parametrize(
    "caption",
    [
        "",
        "a large red circle at the top",
        "A large red circle at the top left",
        "a large red circle at the top left ",
        "a  large red circle at the top left",
        "a huge red circle at the top left",
        "a large pink circle at the top left",
        "a large red circle in the top left",
        "a red large circle at the top left",
        "a large red circle at the left top",
    ],
)
def test_parse_caption_rejects_other_strings(caption):
    with pytest.raises(ValueError, match=r"a \{size\} \{colour\} \{shape\} at the \{row\} \{column\}"):
        parse_caption(caption)


def test_spec_rejects_unknown_attributes():
    with pytest.raises(ValueError, match="shape"):
        ShapeSpec(shape="hexagon", colour="red", size="large", row="top", column="left")
    with pytest.raises(ValueError, match="colour"):
        ShapeSpec(shape="circle", colour="pink", size="large", row="top", column="left")


def test_split_sizes_and_held_out_pairs():
    all_specs, train, heldout = (set(enumerate_specs(s)) for s in ("all", "train", "heldout"))
    assert (len(all_specs), len(train), len(heldout)) == (324, 270, 54)
    assert train | heldout == all_specs and not train & heldout
    assert {(s.colour, s.shape) for s in heldout} == set(HELD_OUT_PAIRS)
    assert set(HELD_OUT_PAIRS) == {("purple", "triangle"), ("orange", "circle"), ("green", "square")}
    assert not any((s.colour, s.shape) in HELD_OUT_PAIRS for s in train)
    assert enumerate_captions("heldout") == [s.caption for s in enumerate_specs("heldout")]
    with pytest.raises(ValueError, match="split"):
        enumerate_specs("test")


# ---------------------------------------------------------------- canvas, rendering, dataset


@pytest.mark.parametrize("size", [32, 48, 64, (32, 96), (96, 32), (48, 80), (128, 64)])
def test_any_multiple_of_16_renders(size):
    height, width = canvas_size(size)
    for spec in enumerate_specs("all")[::7]:
        image = render(spec, size, (2, -2))
        assert image.shape == (height, width, 3) and image.dtype == np.uint8
        assert check(image).spec == spec


@pytest.mark.parametrize("size", [40, 63, 16, 0, -64, (64, 60), (60, 64), (64,), (64, 64, 64), 64.0, "64"])
def test_bad_canvas_size_raises(size):
    with pytest.raises(ValueError, match="multiples of 16 and >= 32"):
        canvas_size(size)
    with pytest.raises(ValueError, match="multiples of 16"):
        ShapesDataset(size=size)


def test_jitter_out_of_range_raises():
    spec = enumerate_specs()[0]
    with pytest.raises(ValueError, match="jitter"):
        render(spec, 64, (3, 0))


def test_rendered_area_matches_geometry():
    """Anti-aliased coverage sums to the shape's exact area (within supersampling error)."""
    for shape, area in (("circle", np.pi), ("square", 4.0), ("triangle", 2.0)):
        for size in ("small", "large"):
            spec = ShapeSpec(shape=shape, colour="blue", size=size, row="middle", column="center")
            image = render(spec, 64).astype(np.float64)
            direction = np.subtract(PALETTE["blue"], BACKGROUND)
            coverage = (image - BACKGROUND) @ direction / (direction @ direction)
            r = world.HALF_EXTENT[size] * 64
            assert coverage.sum() == pytest.approx(area * r * r, rel=0.02)


@pytest.mark.parametrize("size", [(64, 64), (64, 96), (96, 64), (32, 32), (32, 96), (96, 32)])
def test_object_stays_inside_canvas_and_cell_at_extreme_jitter(size):
    height, width = size
    for spec in enumerate_specs("all"):
        row, column = world.ROWS.index(spec.row), world.COLUMNS.index(spec.column)
        for jitter in ((-2, -2), (-2, 2), (2, -2), (2, 2)):
            cy, cx, r = object_box(spec, size, jitter)
            margin = world.EDGE_MARGIN - 1e-9
            assert margin <= cy - r and cy + r <= height - margin
            assert margin <= cx - r and cx + r <= width - margin
            assert row * height / 3 < cy < (row + 1) * height / 3
            assert column * width / 3 < cx < (column + 1) * width / 3
            image = render(spec, size, jitter)
            border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
            assert (border == BACKGROUND).all()


def test_tensor_conversion_round_trip():
    image = render(enumerate_specs()[5], (48, 64))
    tensor = image_to_tensor(image)
    assert tensor.shape == (3, 48, 64) and tensor.dtype == torch.float32
    assert -1.0 <= tensor.min() and tensor.max() <= 1.0
    assert np.array_equal(tensor_to_image(tensor), image)
    batch = image_to_tensor(np.stack([image, image]))
    assert batch.shape == (2, 3, 48, 64)
    assert np.array_equal(tensor_to_image(batch)[1], image)
    assert image_to_tensor(np.full((32, 32, 3), 255, np.uint8)).eq(1.0).all()
    assert image_to_tensor(np.zeros((32, 32, 3), np.uint8)).eq(-1.0).all()


def test_dataset_items_and_determinism():
    data = ShapesDataset(split="train", size=64, length=24, seed=0)
    again = ShapesDataset(split="train", size=(64, 64), length=1000, seed=0)
    other = ShapesDataset(split="train", size=64, length=24, seed=1)
    assert len(data) == 24
    differs = False
    for i in range(len(data)):
        item = data[i]
        assert set(item) == {"image", "caption", "attributes"}
        assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
        assert -1.0 <= item["image"].min() and item["image"].max() <= 1.0
        spec = ShapeSpec(**item["attributes"])
        assert item["caption"] == spec.caption and not spec.held_out
        assert data.spec(i) == spec
        twin = again[i]  # item i depends on (seed, i) only, not on the length
        assert twin["caption"] == item["caption"] and torch.equal(twin["image"], item["image"])
        differs |= not torch.equal(other[i]["image"], item["image"])
    assert differs
    with pytest.raises(IndexError):
        data[24]


def test_dataset_splits_and_shapes():
    heldout = ShapesDataset(split="heldout", size=(32, 96), length=40, seed=3)
    assert heldout[0]["image"].shape == (3, 32, 96)
    assert all(heldout.spec(i).held_out for i in range(len(heldout)))
    loader = torch.utils.data.DataLoader(heldout, batch_size=8)
    batch = next(iter(loader))
    assert batch["image"].shape == (8, 3, 32, 96) and len(batch["caption"]) == 8


# ---------------------------------------------------------------- checker


@pytest.mark.parametrize("size", [(64, 64), (64, 96), (96, 64)])
def test_checker_is_exact_on_renders(size):
    specs, jitters = draws(2000, seed=sum(size))
    results = check_batch(render_batch(specs, size, jitters))
    assert accuracy(results, specs) == {
        "shape": 1.0, "colour": 1.0, "size": 1.0, "position": 1.0, "joint": 1.0, "found": 1.0
    }


def test_checker_accepts_tensors():
    specs, jitters = draws(16, seed=7)
    images = render_batch(specs, (48, 80), jitters)
    from_tensors = check_batch(image_to_tensor(images))
    assert [r.spec for r in from_tensors] == specs
    assert check(image_to_tensor(images[0])).spec == specs[0]


def noisy(images: np.ndarray, std: float, seed: int = 0) -> np.ndarray:
    """Adds Gaussian pixel noise of ``std`` levels, clipped to uint8."""
    noise = np.random.default_rng(seed).normal(0.0, std, images.shape)
    return np.clip(images + noise, 0, 255).round().astype(np.uint8)


@pytest.mark.parametrize(
    "degrade",
    [
        lambda x: gaussian_blur(x, 1.5),
        lambda x: gaussian_blur(x, 2.0),
        down_up,
        lambda x: noisy(gaussian_blur(x, 1.5), 8.0),
    ],
    ids=["gaussian-1.5", "gaussian-2.0", "down4-up", "gaussian-1.5+noise-8"],
)
def test_checker_survives_soft_edges(degrade):
    specs, jitters = draws(500, seed=11)
    results = check_batch(degrade(render_batch(specs, 64, jitters)))
    assert accuracy(results, specs)["joint"] >= 0.99


def test_blank_and_flat_canvases_have_no_object():
    blank = np.full((64, 64, 3), BACKGROUND, np.uint8)
    result = check(blank)
    assert not result.found and result.spec is None and result.attributes is None
    assert result.reason == "no object"
    spec = enumerate_specs()[0]
    assert score(result, spec) == dict.fromkeys(("shape", "colour", "size", "position", "joint"), False)
    assert accuracy([result], [spec])["found"] == 0.0
    for rgb in [(40, 40, 40), (128, 128, 128), (255, 255, 255), (0, 0, 0), PALETTE["red"]]:
        flat = check(np.full((64, 96, 3), rgb, np.uint8))
        assert not flat.found and flat.spec is None
    speck = blank.copy()
    speck[30:32, 30:32] = PALETTE["red"]  # a few pixels are not an object
    assert check(speck).reason == "no object"
    assert not check(torch.zeros(3, 64, 64)).found  # flat mid grey as a tensor


def test_score_and_accuracy():
    truth = parse_caption("a small blue square at the middle right")
    result = check(render(truth, 64))
    assert result.score(truth)["joint"] and score(result, truth.caption)["joint"]
    wrong = parse_caption("a small red square at the bottom right")
    assert score(result, wrong) == {
        "shape": True, "colour": False, "size": True, "position": False, "joint": False
    }
    acc = accuracy([result, result, CheckResult(found=False, reason="no object")], [truth, wrong, truth])
    assert acc["shape"] == pytest.approx(2 / 3) and acc["colour"] == pytest.approx(1 / 3)
    assert acc["joint"] == pytest.approx(1 / 3) and acc["found"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        accuracy([result], [truth, truth])
    with pytest.raises(ValueError):
        accuracy([], [])


def test_module_doctests():
    failures, _ = doctest.testmod(world)
    assert failures == 0
