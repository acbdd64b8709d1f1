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
