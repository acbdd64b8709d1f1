"""Lab 02's figures (zlab.viz.anatomy) on small synthetic inputs: traces, panels, titles, and plotted values.

Named ``test_anatomy_figures`` rather than ``test_anatomy``: tests/test_anatomy.py already holds that module name.
"""

import numpy as np
import pytest
import torch

from zlab.anatomy import KINDS, token_layout
from zlab.viz.anatomy import (
    KIND_COLOURS,
    attention_by_kind_figure,
    attention_figure,
    block_parameters_figure,
    hidden_norms_figure,
    latent_channels_figure,
    modulation_figure,
    parameter_treemap_figure,
    qk_norm_figure,
    rope_grid_figure,
    rope_ids_figure,
    stream_layout_figure,
    token_grid_figure,
)

REPORT = {"embedders": 10, "noise refiner": 20, "context refiner": 15, "main layers": 300, "total": 345}
BLOCK = {"attention": 40, "SwiGLU feed-forward": 55, "adaLN modulation": 5, "total": 100}
LAYOUT = token_layout(4, 6, 13)   # a 2x3 grid of image tokens, 13 caption tokens


def _image(h=32, w=48):
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_parameter_treemap_splits_main_layers_by_block():
    fig = parameter_treemap_figure(REPORT, BLOCK, n_layers=3)
    tree = fig.data[0]
    assert list(tree.ids) == ["S3-DiT", "embedders", "noise refiner", "context refiner", "main layers",
                              "attention (x3)", "SwiGLU feed-forward (x3)", "adaLN modulation (x3)"]
    assert list(tree.values) == [345, 10, 20, 15, 300, 120, 165, 15]
    assert list(tree.parents[5:]) == ["main layers"] * 3 and tree.branchvalues == "total"
    assert fig.layout.title.text == "Z-Image S3-DiT: 345 parameters"


def test_block_parameters_leaves_out_the_total():
    bar = block_parameters_figure(BLOCK).data[0]
    assert list(bar.y) == ["attention", "SwiGLU feed-forward", "adaLN modulation"]
    assert list(bar.x) == [40, 55, 5] and bar.orientation == "h"
    assert list(bar.text) == ["40", "55", "5"]


def test_hidden_norms_marks_padding_grey():
    hidden = torch.randn(8, 5)
    mask = torch.tensor([1, 1, 1, 0, 0, 0, 0, 0])
    bar = hidden_norms_figure(hidden, ["a", "b", "c"], mask, n_show=6).data[0]
    np.testing.assert_allclose(bar.y, hidden[:6].norm(dim=-1).numpy(), rtol=1e-6)
    assert list(bar.x) == ["0:a", "1:b", "2:c", "3:<pad>", "4:<pad>", "5:<pad>"]
    assert list(bar.marker.color) == ["#d62728"] * 3 + ["#cccccc"] * 3


def test_latent_channels_one_panel_per_channel():
    image, z = _image(), torch.randn(16, 4, 6)
    fig = latent_channels_figure(image, z, channels=3)
    assert [a.text for a in fig.layout.annotations] == ["image 32x48", "z channel 0", "z channel 1", "z channel 2"]
    assert [t.type for t in fig.data] == ["image", "heatmap", "heatmap", "heatmap"]
    np.testing.assert_array_equal(fig.data[2].z, z[1].numpy())
    assert fig.layout.yaxis3.autorange == "reversed" and fig.layout.yaxis3.scaleanchor == "x3"


def test_token_grid_numbers_tokens_row_major():
    fig = token_grid_figure(_image(), (2, 3))
    assert [a.text for a in fig.layout.annotations] == [str(k) for k in range(6)]
    token_5 = fig.layout.annotations[5]   # row 1, column 2
    assert (token_5.x, token_5.y) == (16 * 2 + 7.5, 16 * 1 + 7.5)
    assert len(fig.layout.shapes) == (2 + 1) + (3 + 1)
    assert fig.layout.shapes[0].x1 == 47.5 and fig.layout.shapes[-1].y1 == 31.5
    assert fig.layout.title.text == "32x48 px -> 2x3 tokens, numbered in stream order"


def test_stream_layout_bars_add_up_to_the_stream():
    other = token_layout(16, 16, 40)   # 8x8 = 64 image tokens: no image padding
    fig = stream_layout_figure({"lab": LAYOUT, "other": other})
    assert [t.name for t in fig.data] == list(KINDS)
    assert [t.marker.color for t in fig.data] == [KIND_COLOURS[k] for k in KINDS]
    assert list(fig.data[0].x) == [6, 64] and list(fig.data[2].x) == [13, 40]   # image, caption tokens
    for i, lay in enumerate((LAYOUT, other)):
        assert sum(t.x[i] for t in fig.data) == lay.length
    assert fig.data[1].text[1] == ""   # no image padding: no label
    assert fig.layout.height == 220 and fig.layout.legend.y == -0.3


def test_rope_ids_heatmap_and_boundaries():
    pos = np.arange(LAYOUT.length * 3).reshape(LAYOUT.length, 3)
    fig = rope_ids_figure(pos, LAYOUT)
    np.testing.assert_array_equal(fig.data[0].z, pos.T)
    assert fig.data[0].customdata.shape == (3, LAYOUT.length)
    assert [s.x0 for s in fig.layout.shapes] == [getattr(LAYOUT, k).start - 0.5 for k in KINDS[1:]]


def test_rope_grid_one_panel_per_axis():
    grid = torch.arange(18.0).reshape(3, 2, 3)
    fig = rope_grid_figure(grid)
    assert len(fig.data) == 3 and [a.text for a in fig.layout.annotations][1] == "axis 1 = row"
    np.testing.assert_array_equal(fig.data[2].z, grid[2].numpy())


@pytest.mark.parametrize("channels, lines", [(2, 2), (10, 4)])
def test_modulation_lines_and_mean(channels, lines):
    ts, values = torch.linspace(0, 1, 5), torch.randn(5, 4)
    fig = modulation_figure(ts, values, "layers.0: gate_msa vs lab time t", channels=channels)
    assert len(fig.data) == lines + 1 and fig.data[-1].name == "mean over channels"
    np.testing.assert_allclose(fig.data[-1].y, values.mean(1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(fig.data[1].y, values[:, 1].numpy())
    assert fig.layout.title.text == "layers.0: gate_msa vs lab time t"


def test_qk_norm_histograms_are_rms_per_token_and_head():
    q = 3 * torch.randn(7, 2, 8)
    normed = q / q.pow(2).mean(-1, keepdim=True).sqrt()
    before, after = qk_norm_figure(q, normed).data
    assert len(before.x) == 14
    np.testing.assert_allclose(before.x, q.pow(2).mean(-1).sqrt().flatten().numpy(), rtol=1e-6)
    np.testing.assert_allclose(after.x, 1.0, rtol=1e-5)


def test_attention_by_kind_shares_sum_to_one():
    gen = torch.Generator().manual_seed(0)
    probs = {0: torch.randn(2, LAYOUT.length, LAYOUT.length, generator=gen).softmax(-1),
             3: torch.randn(2, LAYOUT.length, LAYOUT.length, generator=gen).softmax(-1)}
    fig = attention_by_kind_figure(probs, LAYOUT)
    assert [t.name for t in fig.data] == list(KINDS) and list(fig.data[0].x) == ["layers.0", "layers.3"]
    np.testing.assert_allclose([sum(t.y[i] for t in fig.data) for i in range(2)], 1.0, rtol=1e-5)
    caption = probs[3][:, LAYOUT.image, LAYOUT.caption].sum(-1).mean()
    assert fig.data[2].y[1] == pytest.approx(float(caption))


def test_attention_figure_three_panels():
    probs = torch.rand(LAYOUT.length, LAYOUT.length)
    words = [f"{i}: w{i}" for i in range(13)]
    fig = attention_figure(probs, LAYOUT, words, 2, _image(), title="layers.0, head mean, t = 0.50")
    assert [a.text for a in fig.layout.annotations] == ["full attention (query rows, key columns)", "image -> caption",
                                                        "image patches -> 'w2'"]
    np.testing.assert_array_equal(fig.data[1].z, probs[LAYOUT.image, LAYOUT.caption].numpy())
    np.testing.assert_array_equal(fig.data[3].z.flatten(), probs[LAYOUT.image, LAYOUT.caption.start + 2].numpy())
