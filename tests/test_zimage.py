"""Tiny Z-Image from real classes: structure, save/load round trip, loader errors, the 6.15B count."""

import json

import pytest
import torch
from diffusers import ZImagePipeline

from zlab.tiny import TINY_SIZES, build_tiny_pipeline
from zlab.zimage import (
    check_size,
    decode,
    encode_images,
    encode_prompts,
    generate,
    load_pipeline,
    parameter_breakdown,
    read_sampling,
    real_transformer_report,
    save_pipeline,
)

PROMPT = "a small green square at the middle right"


def test_real_config_has_6_154_908_736_parameters():
    report = real_transformer_report()
    assert report["total"] == 6_154_908_736
    assert report["main layers"] == 5_427_310_080  # 30 blocks x 180,910,336
    assert report["noise refiner"] == 361_820_672 and report["context refiner"] == 353_925_632
    assert report["final layer"] == 1_232_704
    assert sum(v for k, v in report.items() if k != "total") == report["total"]


def test_chat_template_accepts_enable_thinking(tiny_pipe):
    tok, msgs = tiny_pipe.tokenizer, [{"role": "user", "content": PROMPT}]
    on = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, enable_thinking=True)
    off = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    assert on == f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"
    assert off == on + "<think>\n\n</think>\n\n"
    ids = tok(on).input_ids
    assert tok.convert_ids_to_tokens(ids)[:2] == ["<|im_start|>", "user"] and tok.unk_token_id not in ids


def test_tiny_structure(tiny_pipe):
    tr = tiny_pipe.transformer
    size = TINY_SIZES["tiny"]
    assert tr.config.dim // tr.config.n_heads == sum(tr.config.axes_dims)
    assert len(tr.noise_refiner) == len(tr.context_refiner) == size.n_refiner_layers
    assert tiny_pipe.vae.config.latent_channels == 16 and tiny_pipe.vae_scale_factor == 8
    assert tr.config.cap_feat_dim == tiny_pipe.text_encoder.config.hidden_size
    parts = parameter_breakdown(tr)
    assert parts["total"] == sum(p.numel() for p in tr.parameters())


def test_prompt_embeddings_drop_padding(tiny_pipe):
    embeds = encode_prompts(tiny_pipe, [PROMPT, ""])
    n_tokens = len(tiny_pipe.tokenizer(tiny_pipe.tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}], tokenize=False, add_generation_prompt=True)).input_ids)
    assert embeds[0].shape == (n_tokens, tiny_pipe.text_encoder.config.hidden_size)
    assert embeds[1].shape[0] == n_tokens - 8  # the empty prompt keeps the chat markers, loses the 8 words


@torch.no_grad()
def test_latent_normalisation_round_trip(tiny_pipe):
    vae = tiny_pipe.vae
    vae.register_to_config(shift_factor=0.3, scaling_factor=1.7)
    try:
        images = torch.rand(2, 3, 64, 96) * 2 - 1
        z, z_raw = encode_images(vae, images), vae.encode(images).latent_dist.mode()
        assert z.shape == (2, 16, 8, 12)  # 8x downscale, 16 channels, non-square kept
        assert torch.allclose(z, (z_raw - 0.3) * 1.7, atol=1e-6)
        direct = (vae.decode(z_raw).sample / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)
        assert torch.allclose(decode(tiny_pipe, z), direct, atol=1e-5)
    finally:
        vae.register_to_config(shift_factor=0.0, scaling_factor=1.0)


def test_save_load_round_trip_identical_outputs(tiny_pipe, tmp_path):
    sampling = {"num_inference_steps": 4, "guidance_scale": 2.0, "cfg_truncation": 1.0, "height": 64, "width": 96}
    path = save_pipeline(tiny_pipe, tmp_path / "tiny", sampling=sampling)
    assert (path / "transformer" / "diffusion_pytorch_model.safetensors").is_file()
    assert json.loads((path / "model_index.json").read_text())["_class_name"] == "ZImagePipeline"
    assert read_sampling(path) == sampling
    loaded = ZImagePipeline.from_pretrained(path)  # stock loader, nothing of zlab
    run = lambda p: p(PROMPT, generator=torch.Generator().manual_seed(0), output_type="np", **sampling).images
    a, b = run(tiny_pipe), run(loaded)
    assert a.shape == (1, 64, 96, 3) and (a == b).all()
    ours = generate(load_pipeline(path), [PROMPT], num_inference_steps=4, s=3.0, height=64, width=96, seed=0)
    ref = loaded(PROMPT, generator=torch.Generator().manual_seed(0), output_type="latent", **sampling).images
    assert (ours.latents - ref).abs().max() < 1e-5
    # saving again over an existing folder replaces it whole
    save_pipeline(tiny_pipe, path)
    assert not (path / "sampling.json").exists()


def test_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no pipeline folder"):
        load_pipeline(tmp_path / "missing")
    with pytest.raises(ValueError, match="model_index.json"):
        load_pipeline(tmp_path)
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    with pytest.raises(ValueError, match="not a ZImagePipeline"):
        load_pipeline(tmp_path)


@pytest.mark.parametrize("h,w", [(60, 64), (64, 0), (16, 64), (4096, 64)])
def test_bad_sizes_are_rejected(h, w):
    with pytest.raises(ValueError, match="multiple of 16"):
        check_size(h, w)


def test_build_is_deterministic_by_seed():
    a, b = build_tiny_pipeline("micro", seed=3), build_tiny_pipeline("micro", seed=3)
    for (n, p), (_, q) in zip(a.transformer.named_parameters(), b.transformer.named_parameters()):
        assert torch.equal(p, q), n
