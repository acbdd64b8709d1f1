"""Tiny, randomly initialised judges for ``zlab judge`` on CPU: a CLIP and a DINOv2 built from transformers' own
classes and saved as the folders the real ones come in, so the harness runs end to end here (tests, lab 07).

Their scores mean nothing about images; they exercise the same code the real ``openai/clip-vit-large-patch14`` and
``facebook/dinov2-base`` go through.

Example:
    >>> save_tiny_clip("runs/tiny-clip"); save_tiny_dinov2("runs/tiny-dinov2")
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from transformers import (
    BitImageProcessor,
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPProcessor,
    CLIPTokenizer,
    Dinov2Config,
    Dinov2Model,
)

__all__ = ["save_tiny_clip", "save_tiny_dinov2"]

IMAGE_SIDE = 32


def _character_vocab() -> dict[str, int]:
    """CLIP's BPE with no merges: every character a token, with its end-of-word form."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in string.ascii_lowercase + string.digits + string.punctuation:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    return vocab


def save_tiny_clip(path: str | Path, seed: int = 0) -> Path:
    """A two-layer CLIP (32 px images, a character tokenizer) written with its processor to ``path``."""
    vocab = _character_vocab()
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=IMAGE_SIDE, patch_size=8),
        projection_dim=16)
    torch.manual_seed(seed)
    side = {"shortest_edge": IMAGE_SIDE}, {"height": IMAGE_SIDE, "width": IMAGE_SIDE}
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size=side[0], crop_size=side[1]),
                              tokenizer=CLIPTokenizer(vocab=vocab, merges=[]))
    CLIPModel(config).save_pretrained(path)
    processor.save_pretrained(path)
    return Path(path)


def save_tiny_dinov2(path: str | Path, seed: int = 0) -> Path:
    """A two-layer DINOv2 (32 px images) written with its image processor to ``path``."""
    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2,
                          image_size=IMAGE_SIDE, patch_size=8)
    torch.manual_seed(seed)
    Dinov2Model(config).save_pretrained(path)
    BitImageProcessor(size={"shortest_edge": IMAGE_SIDE}, crop_size={"height": IMAGE_SIDE, "width": IMAGE_SIDE},
                      do_center_crop=True).save_pretrained(path)
    return Path(path)
