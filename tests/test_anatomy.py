"""The S3-DiT trace is the model: output parity, attention recomputation, token layout, adaLN values."""

import pytest
import torch

from zlab.anatomy import (
    KINDS,
    adaln_modulation,
    block_breakdown,
    check_trace,
    token_layout,
    trace_latents,
    trace_prompts,
    trace_transformer,
)
from zlab.flow import zimage_velocity
from zlab.zimage import encode_prompts

PROMPT = "a large red circle at the top left"
LONG_PROMPT = " ".join(["a large red circle at the top left"] * 5)  # 40 words: caption pads to 64


def _latents(h, w, batch=1, seed=0):
    return torch.randn(batch, 16, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def embeds(tiny_pipe):
    return encode_prompts(tiny_pipe, [PROMPT, LONG_PROMPT])


@pytest.mark.parametrize("t", [0.0, 0.37, 1.0])
def test_trace_output_equals_real_forward(tiny_pipe, embeds, t):
    tr = tiny_pipe.transformer
    x = _latents(8, 12)
    trace = trace_transformer(tr, x, t, embeds[:1])
    assert check_trace(tr, trace, atol=1e-6) <= 1e-6
    # and through the lab's bridge: v = -(model output)
    v = zimage_velocity(tr, x, torch.tensor([t]), embeds[:1])
    torch.testing.assert_close(-trace.output[0].squeeze(1), v[0], rtol=0, atol=1e-6)
    assert torch.allclose(trace.model_t, torch.tensor([1.0 - t]))


def test_trace_with_batch_padding_equals_forward(tiny_pipe, embeds):
    """Two captions of different padded lengths: the stream gets a batch mask, the trace still matches."""
    tr = tiny_pipe.transformer
    trace = trace_transformer(tr, _latents(8, 12, batch=2), torch.tensor([0.3, 0.8]), embeds,
                              attention_layers=range(len(tr.layers)))
    assert check_trace(tr, trace, atol=1e-6) <= 1e-6
    short, long = trace.layouts
    assert short.length == 64 and long.length == 32 + 64
    assert (trace.stream_kinds[0, short.length:] == -1).all()
    for amap in trace.attention.values():
        assert amap.max_error < 1e-5
        assert amap.probs[0, :, :, short.length:].abs().max() == 0  # masked keys get no attention
        torch.testing.assert_close(amap.probs.sum(-1), torch.ones(amap.probs.shape[:-1]))


def test_recomputed_attention_reproduces_the_module(tiny_pipe, embeds):
    tr = tiny_pipe.transformer
    trace = trace_transformer(tr, _latents(8, 12), 0.5, embeds[:1], attention_layers=range(len(tr.layers)))
    heads, seq = tr.config.n_heads, trace.layouts[0].length
    for idx, amap in trace.attention.items():
        assert amap.probs.shape == (1, heads, seq, seq)
        assert amap.max_error < 1e-5, f"layer {idx}"


@pytest.mark.parametrize("latent_hw", [(8, 8), (8, 12), (12, 8), (16, 16), (2, 6)])
@pytest.mark.parametrize("cap_len", [1, 13, 32, 33, 70])
def test_token_layout_matches_model_padding(tiny_pipe, latent_hw, cap_len):
    tr = tiny_pipe.transformer
    h, w = latent_hw
    frame = torch.randn(16, 1, h, w)
    cap = torch.randn(cap_len, tr.config.cap_feat_dim)
    x, c, _, x_pos, cap_pos, x_pad, cap_pad = tr.patchify_and_embed([frame], [cap], 2, 1)
    layout = token_layout(h, w, cap_len)
    n_img = (h // 2) * (w // 2)
    assert layout.grid == (h // 2, w // 2) and layout.image == slice(0, n_img)
    # image part: real tokens then pads, as the model's pad mask says
    assert len(x[0]) == layout.image_pad.stop and len(x[0]) % 32 == 0
    assert torch.equal(x_pad[0], torch.arange(len(x[0])) >= n_img)
    # caption part, offset by the image part in the stream
    off = layout.caption.start
    assert off == layout.image_pad.stop and len(c[0]) == layout.caption_pad.stop - off and len(c[0]) % 32 == 0
    assert torch.equal(cap_pad[0], torch.arange(len(c[0])) >= cap_len)
    assert layout.caption == slice(off, off + cap_len)
    # RoPE ids: image token (row, col) at (cap_len_padded + 1, row, col)
    rows, cols = torch.meshgrid(torch.arange(h // 2), torch.arange(w // 2), indexing="ij")
    expect = torch.stack([torch.full_like(rows, layout.cap_len + 1), rows, cols], -1).flatten(0, 1)
    assert torch.equal(x_pos[0][layout.image].long(), expect)
    assert torch.equal(cap_pos[0][:layout.cap_len, 0].long(), torch.arange(1, layout.cap_len + 1))


@pytest.mark.parametrize("latent_hw", [(8, 12), (12, 8)])
def test_stream_kinds_of_the_real_stream_match_layout(tiny_pipe, embeds, latent_hw):
    trace = trace_transformer(tiny_pipe.transformer, _latents(*latent_hw, batch=2), 0.5, embeds)
    for i, layout in enumerate(trace.layouts):
        assert torch.equal(trace.stream_kinds[i, :layout.length], layout.kind_ids())
    assert trace.layouts[0].kinds()[trace.layouts[0].caption.start] == "caption" and KINDS[0] == "image"


def test_image_tokens_are_row_major(tiny_pipe, embeds):
    """A latent whose 2x2 patch (r, c) holds the value r * w + c lands where the layout says."""
    h, w = 4, 6
    index = torch.arange(h * w, dtype=torch.float32).reshape(h, w)
    latent = index.repeat_interleave(2, 0).repeat_interleave(2, 1).expand(1, 16, 2 * h, 2 * w).contiguous()
    trace = trace_transformer(tiny_pipe.transformer, latent, 0.5, embeds[:1])
    layout = trace.layouts[0]
    patches = trace["patches"][0]
    assert torch.equal(patches[layout.image], torch.arange(h * w, dtype=torch.float32)[:, None].expand(-1, 64))
    assert torch.equal(layout.image_grid(trace["patches"])[0, 0], index)
    pos = trace.position_ids[0]
    assert torch.equal(pos[layout.image, 1:].float(), torch.stack(torch.meshgrid(
        torch.arange(h), torch.arange(w), indexing="ij"), -1).flatten(0, 1).float())
    assert (pos[layout.image, 0] == layout.cap_len + 1).all() and (pos[layout.image_pad] == 0).all()
    assert torch.equal(pos[layout.caption.start:layout.length, 0], torch.arange(1, layout.cap_len + 1))
    # the RoPE rotations the layers used are exactly those of these ids
    freqs = tiny_pipe.transformer.rope_embedder(pos.int())
    assert torch.equal(freqs, trace.freqs_cis[0])


def test_adaln_values_are_what_the_blocks_use(tiny_pipe, embeds):
    tr, t = tiny_pipe.transformer, 0.3
    mods = adaln_modulation(tr, torch.tensor([t]))
    for name, block in [("noise_refiner.0", tr.noise_refiner[0]), ("layers.1", tr.layers[1])]:
        seen = {}
        hooks = [block.register_forward_pre_hook(lambda m, a: seen.update(x=a[0])),
                 block.attention.register_forward_pre_hook(lambda m, a: seen.update(attn_in=a[0])),
                 block.attention.register_forward_hook(lambda m, a, o: seen.update(attn_out=o)),
                 block.ffn_norm1.register_forward_pre_hook(lambda m, a: seen.update(ffn_in=a[0]))]
        try:
            trace_transformer(tr, _latents(8, 12), t, embeds[:1])
        finally:
            for hk in hooks:
                hk.remove()
        m = {k: v[:, None, :] for k, v in mods[name].items()}
        torch.testing.assert_close(seen["attn_in"], block.attention_norm1(seen["x"]) * m["scale_msa"])
        torch.testing.assert_close(seen["ffn_in"], seen["x"] + m["gate_msa"] * block.attention_norm2(seen["attn_out"]))
        assert (m["gate_msa"].abs() < 1).all()


def test_refiners_noise_depends_on_t_context_does_not(tiny_pipe, embeds):
    a = trace_transformer(tiny_pipe.transformer, _latents(8, 12), 0.2, embeds[:1])
    b = trace_transformer(tiny_pipe.transformer, _latents(8, 12), 0.8, embeds[:1])
    assert torch.equal(a["context_refiner.1"], b["context_refiner.1"])
    assert not torch.allclose(a["noise_refiner.0"], b["noise_refiner.0"])
    assert "context_refiner.0" not in a.modulation and "noise_refiner.0" in a.modulation


def test_prompt_trace(tiny_pipe):
    (pt,) = trace_prompts(tiny_pipe, [PROMPT])
    d = tiny_pipe.text_encoder.config.hidden_size
    assert pt.tokens[:2] == ["<|im_start|>", "user"] and pt.tokens[2:10] == PROMPT.split()
    assert pt.hidden.shape == (512, d) and pt.embeds.shape == (len(pt.tokens), d) == (13, d)
    assert pt.n_hidden_states == tiny_pipe.text_encoder.config.num_hidden_layers + 1
    assert torch.equal(pt.embeds, pt.hidden[pt.mask])


@torch.no_grad()
def test_latent_trace_normalises(tiny_pipe):
    vae = tiny_pipe.vae
    old = vae.config.shift_factor, vae.config.scaling_factor
    vae.register_to_config(shift_factor=0.2, scaling_factor=1.5)
    try:
        lt = trace_latents(vae, torch.rand(1, 3, 64, 96) * 2 - 1)
    finally:
        vae.register_to_config(shift_factor=old[0], scaling_factor=old[1])
    assert lt.z.shape == (1, 16, 8, 12) and (lt.shift, lt.scale) == (0.2, 1.5)
    torch.testing.assert_close(lt.z, (lt.z_raw - 0.2) * 1.5)


def test_block_breakdown():
    real = block_breakdown()
    assert real["total"] == 180_910_336 and real["total"] * 30 == 5_427_310_080
    assert real["attention q/k/v/out"] == 4 * 3840**2 and real["SwiGLU feed-forward"] == 3 * 3840 * 10240
    assert real["QK-norm"] == 2 * 128 and real["adaLN modulation"] == 256 * 4 * 3840 + 4 * 3840


def test_block_breakdown_of_tiny_config(tiny_pipe):
    tr = tiny_pipe.transformer
    cfg = {k: tr.config[k] for k in ("dim", "n_heads", "n_kv_heads", "norm_eps", "qk_norm")}
    assert block_breakdown(cfg)["total"] == sum(p.numel() for p in tr.layers[0].parameters())


def test_token_layout_rejects_bad_sizes():
    with pytest.raises(ValueError):
        token_layout(7, 8, 5)
    with pytest.raises(ValueError):
        token_layout(8, 8, 0)
