"""Tiny, randomly initialised judges for ``zlab judge`` on CPU: a CLIP and a DINOv2 built from transformers' own
classes and saved as the folders the real ones come in, so the harness runs end to end here (tests, lab 09).

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


# CLIP sizes: "tiny" for CPU tests; "large" has ViT-L/14's dimensions (openai/clip-vit-large-patch14) with random
# weights, for timing the judge on a GPU that cannot download the real one (390M parameters against the real 428M:
# the character vocabulary is smaller than CLIP's 49,408 BPE tokens; the image tower is the same size).
CLIP_SIZES = {
    "tiny": dict(text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
                 vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                             image_size=IMAGE_SIDE, patch_size=8), projection_dim=16),
    "large": dict(text=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12),
                  vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                              image_size=224, patch_size=14), projection_dim=768),
}


def save_tiny_clip(path: str | Path, seed: int = 0, size: str = "tiny") -> Path:
    """A randomly initialised CLIP of ``size`` (:data:`CLIP_SIZES`; a character tokenizer) written with its processor
    to ``path``."""
    vocab, dims = _character_vocab(), CLIP_SIZES[size]
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1, **dims["text"]),
        vision_config=dims["vision"], projection_dim=dims["projection_dim"])
    torch.manual_seed(seed)
    side = dims["vision"]["image_size"]
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": side},
                                                                 crop_size={"height": side, "width": side}),
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
