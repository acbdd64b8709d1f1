"""zlab.measure.teacher_lab: verdict strings, prompt-subset evaluation, the text-encoder readback probe."""

import numpy as np
import pytest

from zlab.measure.evaluate import stock_samples
from zlab.measure.teacher_lab import evaluate_prompts, prompt_seeds, verdict, word_readback
from zlab.shapes import draw, world

PROMPT = "a large red circle at the top left"


def test_verdict_names_what_was_read():
    image = draw.render(world.parse_caption(PROMPT), 64)
    assert verdict(image, PROMPT) == "✓"
    assert verdict(image, "a large blue circle at the middle left") == "✗ colour: red, position: top left"
    blank = np.full((64, 64, 3), world.BACKGROUND, dtype=np.uint8)
    assert verdict(blank, PROMPT) == "✗ no object"


def test_prompt_seeds_match_evaluate_settings_numbering():
    assert prompt_seeds(3, (0, 2)) == [0, 1, 2, 200_006, 200_007, 200_008]


def test_evaluate_prompts_rows_and_images(tiny_pipe):
    prompts = [PROMPT, "a small blue square at the bottom right"]
    settings = {"cfg": {"num_inference_steps": 2, "guidance_scale": 3.0, "height": 64, "width": 64},
                "plain": {"num_inference_steps": 2, "guidance_scale": 0.0, "height": 64, "width": 64}}
    rows, images = evaluate_prompts(tiny_pipe, settings, None, prompts, seeds=(0, 1))
    assert [r["setting"] for r in rows] == ["cfg", "plain"]
    assert [r["nfe"] for r in rows] == [4, 2]
    assert images["cfg"].shape == (4, 64, 64, 3) and images["cfg"].dtype == np.uint8
    assert 0.0 <= rows[0]["acc_joint"] <= 1.0 and "fd" not in rows[0]
    # the same images a direct stock call gives for the same prompt and seed
    direct, _ = stock_samples(tiny_pipe, [prompts[1]], [100_004], settings["plain"])
    assert np.abs(images["plain"][3].astype(int) - direct[0].astype(int)).max() <= 1


def test_random_qwen_keeps_token_identity(tiny_pipe):
    assert word_readback(tiny_pipe, world.enumerate_captions("all")[::9]) == pytest.approx(1.0)
