"""Tiny Z-Image components built from the real classes, sized for a laptop CPU.

Every part is the class the real model uses, only smaller: a word-level tokenizer with a Qwen-style
chat template, transformers' ``Qwen3Model``, diffusers' ``AutoencoderKL`` (16 latent channels, 8x
downscale, shift/scale factors in its config), ``ZImageTransformer2DModel`` with refiners and
3-axis RoPE whose dims sum to the head dim, and ``FlowMatchEulerDiscreteScheduler``.

Sizes live in a registry of named configs (as DiT does): ``TINY_SIZES["tiny"]`` is the default.

Example:
    >>> pipe = build_tiny_pipeline(seed=0)
    >>> pipe("a large red circle at the top left", height=64, width=64, num_inference_steps=4)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3Model

from zlab.shapes import world

__all__ = ["TinySize", "TINY_SIZES", "SPECIAL_TOKENS", "CHAT_TEMPLATE", "build_tokenizer",
           "build_text_encoder", "build_vae", "build_transformer", "build_scheduler", "build_tiny_pipeline"]

# Qwen's chat markers; "<|endoftext|>" doubles as the pad token, as in Qwen3.
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<unk>"]

# Qwen3's template, reduced to what a one-turn prompt needs. ZImagePipeline calls it with
# add_generation_prompt=True and enable_thinking=True; enable_thinking=False appends an empty think
# block, exactly as Qwen3 does.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)

# Words of the Shapes caption grammar (open captions included: "a red shape in the top row") plus the chat
# roles; anything else maps to <unk>.
CAPTION_WORDS = ["user", "assistant", "system", "a", "at", "the",
                 *world.SIZES, *world.COLOURS, *world.SHAPES, *world.ROWS, *world.COLUMNS,
                 "shape", "in", "row", "column"]


@dataclass(frozen=True)
class TinySize:
    """Dimensions of one tiny Z-Image. ``head_dim = dim / n_heads`` must equal ``sum(axes_dims)``."""

    dim: int = 128
    n_layers: int = 4
    n_refiner_layers: int = 2
    n_heads: int = 4
    axes_dims: tuple[int, int, int] = (8, 12, 12)
    axes_lens: tuple[int, int, int] = (1024, 256, 256)
    text_hidden: int = 64
    text_layers: int = 3
    text_heads: int = 4
    text_kv_heads: int = 2
    vae_channels: tuple[int, ...] = (16, 32, 64, 64)
    vae_layers_per_block: int = 1
    vae_groups: int = 8
    latent_channels: int = 16
    scheduler: dict = field(default_factory=lambda: {"shift": 3.0, "use_dynamic_shifting": False})


TINY_SIZES: dict[str, TinySize] = {
    "tiny": TinySize(),
    # The GPU profile's Shapes world (configs/gpu/): 128 px, ~30M-parameter transformer, trains in minutes on one GPU.
    "gpu": TinySize(dim=384, n_layers=8, n_heads=6, axes_dims=(16, 24, 24), text_hidden=128, text_layers=3,
                    text_heads=4, text_kv_heads=2, vae_channels=(32, 64, 128, 128)),
    "micro": TinySize(dim=64, n_layers=2, n_refiner_layers=1, n_heads=2, text_hidden=32, text_layers=2,
                      text_heads=2, text_kv_heads=1, vae_channels=(16, 16, 32, 32), vae_groups=8),
}


def build_tokenizer(words: list[str] | None = None) -> PreTrainedTokenizerFast:
    """Word-level tokenizer over the caption vocabulary, with Qwen's special tokens and chat template."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + (words or CAPTION_WORDS))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(SPECIAL_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<|endoftext|>", eos_token="<|im_end|>", unk_token="<unk>",
        model_max_length=512, padding_side="right", chat_template=CHAT_TEMPLATE,
    )


def build_text_encoder(size: TinySize, vocab_size: int) -> Qwen3Model:
    """A tiny ``Qwen3Model``; Z-Image reads its second-to-last hidden state."""
    config = Qwen3Config(
        vocab_size=vocab_size, hidden_size=size.text_hidden, intermediate_size=2 * size.text_hidden,
        num_hidden_layers=size.text_layers, num_attention_heads=size.text_heads,
        num_key_value_heads=size.text_kv_heads, head_dim=size.text_hidden // size.text_heads,
        max_position_embeddings=512, pad_token_id=0, tie_word_embeddings=False,
    )
    return Qwen3Model(config)


def build_vae(size: TinySize) -> AutoencoderKL:
    """A tiny Flux-style ``AutoencoderKL``: 16 latent channels, 8x downscale, no quant convs.

    ``shift_factor`` and ``scaling_factor`` start at (0, 1); training measures them on data.
    """
    n = len(size.vae_channels)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=size.latent_channels,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=size.vae_channels, layers_per_block=size.vae_layers_per_block,
        norm_num_groups=size.vae_groups, sample_size=64, shift_factor=0.0, scaling_factor=1.0,
        use_quant_conv=False, use_post_quant_conv=False, mid_block_add_attention=False,
    )


def build_transformer(size: TinySize) -> ZImageTransformer2DModel:
    """A tiny ``ZImageTransformer2DModel`` with the real structure (noise and context refiners)."""
    if size.dim // size.n_heads != sum(size.axes_dims):
        raise ValueError(f"head dim {size.dim // size.n_heads} must equal sum(axes_dims) = {sum(size.axes_dims)}")
    return ZImageTransformer2DModel(
        in_channels=size.latent_channels, dim=size.dim, n_layers=size.n_layers,
        n_refiner_layers=size.n_refiner_layers, n_heads=size.n_heads, n_kv_heads=size.n_heads,
        cap_feat_dim=size.text_hidden, axes_dims=list(size.axes_dims), axes_lens=list(size.axes_lens),
    )


def build_scheduler(size: TinySize) -> FlowMatchEulerDiscreteScheduler:
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, **size.scheduler)


def build_tiny_pipeline(size: str | TinySize = "tiny", seed: int = 0) -> ZImagePipeline:
    """A randomly initialised tiny ``ZImagePipeline`` (deterministic given ``seed``)."""
    if isinstance(size, str):
        if size not in TINY_SIZES:
            raise ValueError(f"unknown tiny size {size!r}; choose one of {sorted(TINY_SIZES)}")
        size = TINY_SIZES[size]
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    pipe = ZImagePipeline(
        scheduler=build_scheduler(size), vae=build_vae(size),
        text_encoder=build_text_encoder(size, vocab_size=len(tokenizer)), tokenizer=tokenizer,
        transformer=build_transformer(size),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe

