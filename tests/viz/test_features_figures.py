import numpy as np
import pytest
import torch

from zlab.features import pca_rgb
from zlab.flow import logit_normal_pdf
from zlab.measure.discriminator_view import PairView
from zlab.viz.features import (
    feature_gap_figure,
    feature_gap_table,
    gap_ratio,
    head_logits_figure,
    head_score_sweep_figure,
    head_scores_table,
    pair_gap_table,
    pair_view_figure,
    pca_map_tiles,
    pca_maps_image,
    renoised_pair_figure,
    t_hat_density_figure,
)

BLOCKS = (0, 3)


def _maps(seed: int, blocks: int = 2) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(1, 8, 4, 4, generator=gen) for _ in range(blocks)]


def _view(t_hat: float, seed: int = 0) -> PairView:
    return PairView(t_hat, torch.zeros(1, 16, 8, 8), torch.zeros(1, 16, 8, 8), _maps(seed), _maps(seed + 100))


def _annotations(fig) -> list[str]:
    return [a.text for a in fig.layout.annotations]


def test_pca_map_tiles_colour_fake_in_the_real_basis():
    real, fake = _maps(0), _maps(1)
    tiles = pca_map_tiles(real, fake, scale=3)
    assert len(tiles) == 2 and all(t.shape == (12, 12, 3) and t.dtype == np.uint8 for pair in tiles for t in pair)
    rgb_real, basis = pca_rgb(real[1])
    rgb_fake, _ = pca_rgb(fake[1], basis)
    np.testing.assert_array_equal(tiles[1][0][::3, ::3], (rgb_real[0].numpy() * 255).round().astype(np.uint8))
    np.testing.assert_array_equal(tiles[1][1][::3, ::3], (rgb_fake[0].numpy() * 255).round().astype(np.uint8))
    assert not np.array_equal(tiles[1][1], pca_map_tiles(fake, fake, scale=3)[1][1])  # not the fake's own basis


def test_pca_maps_image_is_rows_real_fake_of_framed_tiles():
    real, fake = _maps(0, blocks=3), _maps(1, blocks=3)
    image = pca_maps_image(real, fake, scale=16, pad=2)
    assert image.shape == (2 * (64 + 4), 3 * (64 + 4), 3) and image.dtype == np.uint8
    tiles = pca_map_tiles(real, fake, scale=16)
    np.testing.assert_array_equal(image[68 + 2:68 + 66, 2 * 68 + 2:2 * 68 + 66], tiles[2][1])  # fake row, block 2
    assert (image[:2] == 255).all() and (image[:, 66:70] == 255).all()  # white frames


def test_renoised_pair_figure_rows_and_titles():
    views = [_view(t, seed=i) for i, t in enumerate((0.05, 0.5, 0.95))]
    noisy = {name: [np.full((8, 8, 3), i, np.uint8) for i in range(3)] for name in ("real", "fake")}
    fig = renoised_pair_figure(views, noisy, BLOCKS)
    assert len(fig.data) == 3 * (2 + 2 * len(BLOCKS))
    assert [a for a in _annotations(fig) if a][:3] == ["t̂ = 0.05", "t̂ = 0.5", "t̂ = 0.95"]
    assert [fig.layout[f"yaxis{r * 3 + 1 if r else ''}"].title.text for r in range(6)] == [
        "real, decoded", "fake, decoded", "real, block 0", "fake, block 0", "real, block 3", "fake, block 3"]
    np.testing.assert_array_equal(fig.data[3 + 2].z, noisy["fake"][2])
    np.testing.assert_array_equal(fig.data[3 * 5 + 1].z, pca_map_tiles(views[1].real_maps, views[1].fake_maps)[1][1])


def test_pair_view_figure_panels():
    view = _view(0.7)
    decoded = [np.full((8, 8, 3), i, np.uint8) for i in range(4)]
    fig = pair_view_figure(decoded, view, BLOCKS, title="a prompt")
    assert len(fig.data) == 4 + 2 * len(BLOCKS) and fig.layout.title.text == "a prompt"
    assert _annotations(fig) == ["real (clean)", "fake (clean)", "real at t̂=0.7", "fake at t̂=0.7",
                                 "real, block 0", "fake, block 0", "real, block 3", "fake, block 3"]
    np.testing.assert_array_equal(fig.data[2].z, decoded[2])


def test_feature_gap_figure_and_table():
    t_hats = np.linspace(0.02, 0.98, 5)
    layout_gap = torch.rand(5, 3) + 1
    gaps = {"layout pair (moved)": layout_gap, "edge pair (blurred)": layout_gap / 2}
    fig = feature_gap_figure(t_hats, gaps)
    assert len(fig.data) == 1 + 2 * 3 + 1
    np.testing.assert_allclose(fig.data[0].y, logit_normal_pdf(torch.tensor(t_hats), 1.0, 1.0).numpy())
    assert fig.data[0].name == "t̂ density, LogitNormal(1, 1)" and fig.data[0].yaxis == "y2"
    assert fig.data[5].name == "edge pair (blurred), block 1" and fig.data[5].line.dash == "dash"
    np.testing.assert_allclose(fig.data[5].y, layout_gap[:, 1].numpy() / 2)
    np.testing.assert_allclose(fig.data[-1].y, 0.5, rtol=1e-6)  # right panel: edge / layout at the last block
    assert fig.data[-1].xaxis == "x2" and fig.data[1].yaxis == "y" and _annotations(fig)[1] == "edge gap / layout gap (last block)"
    assert gap_ratio(gaps).tolist() == pytest.approx([0.5] * 5)
    table = feature_gap_table(t_hats, gaps).splitlines()
    assert len(table) == 4 and table[0].split()[1:] == [f"{t:.2f}" for t in t_hats]
    assert table[1].startswith("layout pair (moved)") and table[3].split()[-1] == "0.500"


def test_pair_gap_table_means_and_standard_errors_over_objects():
    t_hats = np.linspace(0.0, 1.0, 5)
    layout = torch.tensor([[2.0, 4.0]] * 5) * torch.linspace(1.0, 0.2, 5)[:, None]  # (T, objects)
    edges = layout * torch.tensor([[0.1, 0.3]])
    table = pair_gap_table(t_hats, {"layout": layout, "edges": edges}, {"low": 0.0, "median": 0.7}).splitlines()
    assert table[0].split() == ["low,", "t̂", "=", "0.00", "median,", "t̂", "=", "0.75"]  # the nearest swept t̂
    assert table[1].split()[-6:] == ["1.000", "±", "0.000", "0.400", "±", "0.000"]  # each gap over its own at t̂ = 0
    assert table[3].split()[-3:] == ["0.200", "±", "0.100"]  # edges / layout: 0.1 and 0.3, SE = std / sqrt(2)
    assert table[-1] == "(mean ± standard error over 2 objects)"


def test_t_hat_density_figure():
    fig = t_hat_density_figure(-1.0, 0.5, 0.27)
    np.testing.assert_allclose(fig.data[0].y, logit_normal_pdf(torch.linspace(0.005, 0.995, 199), -1.0, 0.5),
                               rtol=1e-6)
    assert fig.data[0].name == "LogitNormal(-1, 0.5)" and fig.layout.shapes[0].x0 == 0.27
    assert fig.layout.annotations[0].text == "t̂ = 0.27"


def test_head_logits_figure_rows_real_fake():
    real = [torch.randn(2, 1, 4, 4) for _ in BLOCKS]
    fake = [torch.randn(2, 1, 4, 4) for _ in BLOCKS]
    fig = head_logits_figure(real, fake, BLOCKS)
    assert len(fig.data) == 4 and _annotations(fig) == ["block 0, real", "block 3, real", "block 0, fake", "block 3, fake"]
    np.testing.assert_array_equal(fig.data[3].z, fake[1][0, 0].numpy()[::-1])  # flipped: row 0 at the top
    assert [d.showscale for d in fig.data] == [True, False, False, False]
    assert len(head_logits_figure(None, None, BLOCKS).data) == 0


def test_head_scores_table():
    real = [torch.full((1, 1, 2, 2), 0.5), torch.full((1, 1, 2, 2), -1.0)]
    fake = [torch.full((1, 1, 2, 2), -0.25), torch.full((1, 1, 2, 2), 2.0)]
    rows = head_scores_table(real, fake, BLOCKS).splitlines()
    assert rows[2:] == ["| 0 | +0.500 | -0.250 |", "| 3 | -1.000 | +2.000 |"]


def test_head_score_sweep_figure():
    t_hats = np.linspace(0.05, 0.95, 4)
    sweep = {"real": torch.rand(4, 2), "fake": torch.rand(4, 2)}
    fig = head_score_sweep_figure(t_hats, sweep, BLOCKS, 0.6)
    assert [d.name for d in fig.data] == ["block 0, real", "block 0, fake", "block 3, real", "block 3, fake"]
    np.testing.assert_array_equal(fig.data[3].y, sweep["fake"][:, 1].numpy())
    assert fig.data[3].line.dash == "dash" and fig.layout.shapes[0].x0 == 0.6
    empty = head_score_sweep_figure(t_hats, None, BLOCKS, 0.6)
    assert len(empty.data) == 0 and empty.layout.title.text == fig.layout.title.text
