"""The models that judge real images: a CLIP for the prompt score, a vision model for FD and diversity.

Both are read with transformers from a local folder or a hub id; nothing here downloads on its own. The CLIP score is
torchmetrics' (``100 * max(cos(E_image, E_text), 0)``, Hessel et al. 2021); FD is torchmetrics' Fréchet distance
computed in the chosen model's feature space, the way FD_DINOv2 (Stein et al. 2023) and FD in CLIP space
(Kynkäänniemi et al. 2023) replace Inception's.

Example:
    >>> judges = load_judges("openai/clip-vit-large-patch14", features="facebook/dinov2-base")
    >>> prompt_clip_score(judges, images, "a red bicycle")   # the seeds of one prompt, scored together
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torchmetrics.functional.multimodal import clip_score
from transformers import AutoImageProcessor, AutoModel, CLIPModel, CLIPProcessor

__all__ = ["ClipEmbeddings", "ImageFeatures", "Judges", "load_judges", "prompt_clip_score"]


def _tensor(out) -> Tensor:
    """A features tensor from either transformers generation: v4 returns it, v5 an output whose pooler holds it."""
    return out if isinstance(out, Tensor) else out.pooler_output


class ClipEmbeddings(nn.Module):
    """transformers' ``CLIPModel`` with the two methods torchmetrics calls returning tensors again (transformers 5
    returns model outputs from ``get_image_features`` / ``get_text_features``, which torchmetrics 1.9 cannot read)."""

    def __init__(self, model: CLIPModel):
        super().__init__()
        self.model, self.config = model.eval(), model.config

    def get_image_features(self, pixel_values: Tensor) -> Tensor:
        return _tensor(self.model.get_image_features(pixel_values=pixel_values))

    def get_text_features(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return _tensor(self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))


class ImageFeatures(nn.Module):
    """uint8 images (N, 3, H, W) -> (N, d) features of a vision model, its own pre-processing included: the
    ``feature`` torchmetrics' FrechetInceptionDistance accepts, and what diversity compares.

    A CLIP gives its projected image embedding; any other model (DINOv2, ...) its pooled output."""

    def __init__(self, model: nn.Module, processor):
        super().__init__()
        self.model, self.processor = model.eval(), processor
        self.clip = hasattr(model, "get_image_features")
        with torch.no_grad():
            self.num_features = int(self(torch.zeros(1, 3, 32, 32, dtype=torch.uint8)).shape[-1])

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        pixels = self.processor(images=list(images.cpu()), return_tensors="pt")["pixel_values"]
        pixels = pixels.to(next(self.model.parameters()).device)
        if self.clip:
            return _tensor(self.model.get_image_features(pixel_values=pixels)).float()
        return self.model(pixel_values=pixels).pooler_output.float()


@dataclass
class Judges:
    """What scores the images: ``clip`` (model, processor) for the prompt score, ``features`` for FD and diversity,
    and where each came from (written into the record)."""

    clip: tuple[ClipEmbeddings, CLIPProcessor]
    features: ImageFeatures
    sources: dict[str, str]


def load_judges(clip: str, features: str | None = None, device: str = "cpu") -> Judges:
    """Read a CLIP (folder or hub id) and, if given, another vision model for the features (default: the CLIP's
    image tower)."""
    clip_model, processor = CLIPModel.from_pretrained(clip).to(device), CLIPProcessor.from_pretrained(clip)
    if features is None:
        feature_model = ImageFeatures(clip_model, processor.image_processor)
    else:
        feature_model = ImageFeatures(AutoModel.from_pretrained(features).to(device),
                                      AutoImageProcessor.from_pretrained(features))
    return Judges(clip=(ClipEmbeddings(clip_model), processor), features=feature_model,
                  sources={"clip": str(clip), "features": str(features or clip)})


@torch.no_grad()
def prompt_clip_score(judges: Judges, images: Tensor, prompt: str) -> float:
    """torchmetrics' CLIP score of uint8 images (N, 3, H, W), all drawn for one ``prompt``: the mean over the images
    of ``100 cos(E_image, E_text)``, clamped at 0."""
    device = next(judges.clip[0].parameters()).device  # torchmetrics runs the model where the images are
    return float(clip_score(list(images.to(device)), [prompt] * len(images), model_name_or_path=lambda: judges.clip))
