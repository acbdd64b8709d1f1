"""The DMD view: the estimates and directions the student is pushed along, for one sample at one tau."""

import copy

import pytest
import torch

from zlab.distill.dmd import DMDBatch, DMDOptions, NoiseLaw, dmd_directions, normalised
from zlab.measure.dmd_view import dmd_view
from zlab.zimage import encode_prompts


def test_the_view_takes_the_differences_training_takes(tiny_pipe):
    teacher = tiny_pipe.transformer
    fake = copy.deepcopy(teacher)
    with torch.no_grad():
        for p in fake.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
        embeds, null = encode_prompts(tiny_pipe, ["a large red circle"]), encode_prompts(tiny_pipe, [""])
    x0 = torch.randn(1, teacher.config.in_channels, 8, 8, generator=torch.Generator().manual_seed(0))
    view = dmd_view(teacher, fake, x0, embeds, null, tau=0.6, guidance_scale=1.0, seed=3)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3))
    batch = DMDBatch(x0, embeds, null, torch.ones(1), eps, None, torch.tensor([0.6]), eps, torch.tensor([0.6]), eps, 0)
    d = dmd_directions(teacher, fake, x0, batch, DMDOptions(guidance_scale=1.0, dm_noise=NoiseLaw(), ca_noise=NoiseLaw()))
    torch.testing.assert_close(normalised(view.dm, x0, view.teacher_guided), d["dm"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(normalised(view.ca, x0, view.teacher_guided), d["ca"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(view.teacher_guided, 2 * view.teacher_cond - view.teacher_uncond)
    assert set(view.strengths()) == {"distribution matching", "CFG augmentation"} and min(view.strengths().values()) > 0
    with pytest.raises(ValueError, match=r"tau must be in \(0, 1\)"):
        dmd_view(teacher, fake, x0, embeds, null, tau=1.0, guidance_scale=1.0)


def test_a_shipped_dmd_student_gives_back_its_fake_score_and_guidance(tiny_pipe, tmp_path):
    from zlab.distill.student import FAKE_SCORE
    from zlab.measure.diversity import meant_steps
    from zlab.measure.dmd_view import load_fake_score, trained_guidance_scale
    from zlab.recipes.student import ship_student
    from zlab.tiny import build_tiny_pipeline
    from zlab.zimage import read_sampling

    fake = copy.deepcopy(tiny_pipe.transformer)
    with torch.no_grad():
        next(fake.parameters()).add_(1.0)  # a fake score that is not the teacher
    out = tmp_path / "dmd"
    ship_student(tiny_pipe, tiny_pipe.transformer, fake, out,
                 {"config": {"method": "dmd", "dmd": {"guidance_scale": 0.75, "student_probs": [1.0, 0, 0, 0]}}},
                 measure=False, steps=1)
    loaded = load_fake_score(out, like=tiny_pipe.transformer)  # a built teacher's tuples match the loaded lists
    for (name, p), q in zip(loaded.named_parameters(), fake.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    assert not loaded.training and loaded.dtype == torch.float32
    assert trained_guidance_scale(out, fallback=2.0) == 0.75
    assert meant_steps(read_sampling(out)["num_inference_steps"]) == (1,)

    with pytest.raises(ValueError, match="not of the teacher's architecture.*cap_feat_dim, dim"):
        load_fake_score(out, like=build_tiny_pipeline("micro", seed=0).transformer)
    with pytest.raises(FileNotFoundError, match=f"no fake score \\({FAKE_SCORE}/config.json"):
        load_fake_score(tmp_path)


@pytest.mark.parametrize("eval_json, expected", [
    (None, 2.0),  # no eval.json: the fallback (the teacher's g)
    ('{"config": {"method": "ladd", "ladd": {}}}', 2.0),  # no dmd section
    ('{"config": {"method": "dmd", "dmd": {"guidance_scale": 0}}}', 0.0),  # 0 is a value, not "unrecorded"
    ("not json", 2.0),
    ('{"config": {"method": "dmd", "dmd": {"guidance_scale": 0.5, "ca_weight": 0.0}}}', 0.0),  # DM alone: no CA term
])
def test_trained_guidance_scale_falls_back_when_unrecorded(tmp_path, eval_json, expected):
    from zlab.measure.dmd_view import trained_guidance_scale

    if eval_json is not None:
        (tmp_path / "eval.json").write_text(eval_json)
    assert trained_guidance_scale(tmp_path, fallback=2.0) == expected
