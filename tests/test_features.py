"""FeatureTap: image tokens after chosen blocks as (B, C, h, w) maps, checked against a hand-run transformer."""

import pytest
import torch

from zlab.anatomy import model_inputs
from zlab.features import FeatureTap, pca_rgb
from zlab.zimage import encode_prompts


def _by_hand(transformer, latents, t, embeds):
    """Run the blocks one by one through diffusers' own helpers; return every block's image-token maps."""
    frames, model_t, caps = model_inputs(transformer, latents, t, embeds)
    tr = transformer
    adaln = tr.t_embedder(model_t * tr.t_scale).type_as(frames[0])
    x, caps, x_size, x_pos, cap_pos, x_pad, cap_pad = tr.patchify_and_embed(frames, caps, 2, 1)
    x_lens = [len(xi) for xi in x]
    x = tr.all_x_embedder["2-1"](torch.cat(x))
    x, x_freqs, x_mask, _, _ = tr._prepare_sequence(list(x.split(x_lens)), x_pos, x_pad, tr.x_pad_token, None, "cpu")
    for layer in tr.noise_refiner:
        x = layer(x, x_mask, x_freqs, adaln)
    cap_lens = [len(c) for c in caps]
    c = tr.cap_embedder(torch.cat(caps))
    c, c_freqs, c_mask, _, _ = tr._prepare_sequence(list(c.split(cap_lens)), cap_pos, cap_pad, tr.cap_pad_token, None, "cpu")
    for layer in tr.context_refiner:
        c = layer(c, c_mask, c_freqs)
    u, u_freqs, u_mask, _ = tr._build_unified_sequence(x, x_freqs, x_lens, None, c, c_freqs, cap_lens, None,
                                                         None, None, None, None, False, "cpu")
    h, w = latents.shape[-2] // 2, latents.shape[-1] // 2
    maps = []
    for layer in tr.layers:
        u = layer(u, u_mask, u_freqs, adaln)
        # sample b, image token (i, j) sits at stream position i * w + j: gather it element by element
        maps.append(torch.stack([torch.stack([torch.stack([u[b, i * w + j] for j in range(w)], -1)
                                              for i in range(h)], -2) for b in range(len(u))]))
    return maps


@pytest.mark.parametrize("size", [(8, 8), (8, 12), (12, 8)])
def test_tap_matches_hand_run_blocks_with_batching_and_padding(tiny_pipe, size):
    torch.manual_seed(0)
    prompts = ["a large red circle at the top left", "a small blue triangle at the bottom right", "a green circle"]
    embeds = encode_prompts(tiny_pipe, prompts)  # captions of different lengths: caption padding differs
    latents = torch.randn(3, 16, *size)
    t = torch.tensor([0.9, 0.5, 0.1])
    with torch.no_grad():
        expected = _by_hand(tiny_pipe.transformer, latents, t, embeds)
        blocks = list(range(len(tiny_pipe.transformer.layers)))
        maps = FeatureTap(tiny_pipe.transformer, blocks, early_exit=False)(latents, t, embeds)
    for got, want in zip(maps, expected, strict=True):
        assert got.shape == (3, tiny_pipe.transformer.config.dim, size[0] // 2, size[1] // 2)
        torch.testing.assert_close(got, want.float(), atol=1e-5, rtol=1e-5)


def test_tap_sample_is_independent_of_its_batch(tiny_pipe):
    prompts = ["a large red circle at the top left", "a small blue triangle at the bottom right"]
    embeds = encode_prompts(tiny_pipe, prompts)
    latents, t = torch.randn(2, 16, 8, 8), torch.tensor([0.7, 0.3])
    tap = FeatureTap(tiny_pipe.transformer, (1, 3))
    with torch.no_grad():
        both = tap(latents, t, embeds)
        alone = tap(latents[1:], t[1:], embeds[1:])
    for b, a in zip(both, alone, strict=True):
        torch.testing.assert_close(b[1:], a, atol=1e-5, rtol=1e-5)


def test_early_exit_skips_later_blocks_and_keeps_gradients(tiny_pipe):
    calls = []
    handle = tiny_pipe.transformer.layers[-1].register_forward_hook(lambda *a: calls.append(1))
    embeds = encode_prompts(tiny_pipe, ["a red circle"])
    latents = torch.randn(1, 16, 8, 8, requires_grad=True)
    try:
        (m,) = FeatureTap(tiny_pipe.transformer, (1,))(latents, torch.tensor([0.5]), embeds)
    finally:
        handle.remove()
    assert calls == []  # the last block never ran
    m.square().sum().backward()
    assert latents.grad is not None and latents.grad.abs().sum() > 0


def test_tap_rejects_blocks_out_of_range(tiny_pipe):
    with pytest.raises(ValueError, match="out of range"):
        FeatureTap(tiny_pipe.transformer, (0, 9))


def test_pca_rgb_shares_a_basis():
    a, b = torch.randn(2, 32, 4, 6), torch.randn(3, 32, 4, 6)
    rgb_a, basis = pca_rgb(a)
    rgb_b, _ = pca_rgb(b, basis)
    assert rgb_a.shape == (2, 4, 6, 3) and rgb_b.shape == (3, 4, 6, 3)
    assert 0 <= rgb_b.min() and rgb_b.max() <= 1
    torch.testing.assert_close(pca_rgb(a, basis)[0], rgb_a)
