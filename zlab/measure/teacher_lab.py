"""Small measurements behind lab 03 (the Shapes teacher): verdicts, prompt-subset evaluation, text probe.

* :func:`verdict` turns the checker's reading of one sample into a short caption for a figure.
* :func:`evaluate_prompts` is :func:`zlab.measure.evaluate.measure` over settings on a chosen list of prompts
  (accuracy, FD, NFE, ms per image; no held-out split, no diversity), so
  a notebook can sweep many settings in seconds and still report the numbers the model card reports.
* :func:`word_readback` asks whether a frozen text encoder keeps each token's identity: the fraction
  of caption tokens whose ``hidden_states[-2]`` vector is nearest (cosine) to the token's own input
  embedding among the whole vocabulary.

Example:
    >>> rows, images = evaluate_prompts(pipe, {"4 steps": {**sampling, "num_inference_steps": 4}}, net,
    ...                                 ["a large red circle at the top left"])
    >>> verdict(images["4 steps"][0], "a large red circle at the top left")
    '✓'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from diffusers import ZImagePipeline

from zlab.anatomy import trace_prompts
from zlab.measure.evaluate import measure
from zlab.shapes.checker import verdict
from zlab.shapes.net import ShapesNet

__all__ = ["verdict", "prompt_seeds", "evaluate_prompts", "word_readback"]


def prompt_seeds(n_prompts: int, seeds: Sequence[int] = (0,)) -> list[int]:
    """Per-image seeds for ``n_prompts`` prompts x ``seeds``, numbered as :func:`evaluate_settings` numbers them."""
    return [s * 100_003 + i for s in seeds for i in range(n_prompts)]


def evaluate_prompts(pipe: ZImagePipeline, settings: Mapping[str, Mapping], net: ShapesNet | None,
                     prompts: Sequence[str], seeds: Sequence[int] = (0,), batch_size: int = 64
                     ) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Rows like :func:`zlab.measure.evaluate.evaluate_settings`, on ``prompts`` x ``seeds`` only, plus the images.

    Returns:
        ``(rows, images)``: one row per setting with ``setting``, ``nfe``, ``ms_per_image``, ``acc_*``
        and (when ``net`` is given) ``fd`` against renders of the same prompts; ``images[name]`` holds
        the uint8 samples (N, H, W, 3), prompt-major within each seed.
    """
    if not prompts:
        raise ValueError("need at least one prompt")
    all_prompts = [p for _ in seeds for p in prompts]
    all_seeds = prompt_seeds(len(prompts), seeds)
    rows, images = [], {}
    for name, setting in settings.items():
        row, images[name] = measure(pipe, setting, all_prompts, all_seeds, net, batch_size)
        rows.append({"setting": name, **row})
    return rows, images


@torch.no_grad()
def word_readback(pipe: ZImagePipeline, prompts: Sequence[str], max_sequence_length: int = 64) -> float:
    """Fraction of prompt tokens (chat template included) whose ``hidden_states[-2]`` vector has the
    highest cosine similarity with the token's own row of the input embedding table.

    1.0 means every token's identity survives the encoder's layers in the residual stream, so a model
    reading these states can tell every word apart. ``max_sequence_length`` only bounds the padding:
    the encoder is causal, so padding never changes the states of real tokens.
    """
    table = torch.nn.functional.normalize(pipe.text_encoder.get_input_embeddings().weight.float(), dim=-1)
    hits = total = 0
    for trace in trace_prompts(pipe, list(prompts), max_sequence_length=max_sequence_length):
        ids = trace.input_ids[trace.mask]
        nearest = (torch.nn.functional.normalize(trace.embeds.float(), dim=-1) @ table.T).argmax(-1)
        hits += int((nearest == ids).sum())
        total += len(ids)
    return hits / total
