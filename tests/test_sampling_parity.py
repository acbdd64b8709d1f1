"""zlab's sampler against stock ZImagePipeline on a tiny pipeline: same latents to 1e-5.

Mapping relied on: diffusers' guidance_scale g means v_c + g (v_c - v_u); the lab's s means
v_u + s (v_c - v_u); therefore s = g + 1 (zlab.sampling.guidance_scale_to_s).
"""

import copy

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from zlab.sampling import guidance_scale_to_s, s_to_guidance_scale
from zlab.zimage import generate, initial_noise, schedule

PROMPTS = ["a large red circle at the top left", "a small blue triangle at the bottom center"]
TOL = 1e-5


def stock(pipe, **kw):
    gen = torch.Generator().manual_seed(kw.pop("seed"))
    return pipe(list(PROMPTS), height=64, width=64, generator=gen, output_type="latent", **kw).images


def zlab(pipe, **kw):
    return generate(pipe, list(PROMPTS), height=64, width=64, **kw)


def test_guidance_mapping():
    assert guidance_scale_to_s(4.0) == 5.0 and s_to_guidance_scale(5.0) == 4.0
    assert guidance_scale_to_s(0.0) == 1.0  # no guidance in either language


def test_parity_50_steps_cfg_and_truncation(tiny_pipe):
    g, trunc = 4.0, 0.6
    ref = stock(tiny_pipe, num_inference_steps=50, guidance_scale=g, cfg_truncation=trunc, seed=1)
    ours = zlab(tiny_pipe, num_inference_steps=50, s=guidance_scale_to_s(g), cfg_truncation=trunc, seed=1)
    assert (ours.latents - ref).abs().max() < TOL
    # Guidance on while 1 - t <= 0.6: count the guided steps from the same schedule.
    ts = schedule(tiny_pipe.scheduler, 50, 64, 64)[:-1]
    guided = int(((1 - ts) <= trunc + 1e-7).sum())
    assert 0 < guided < 50 and ours.nfe == 50 + guided


def test_truncation_changes_the_result(tiny_pipe):
    a = zlab(tiny_pipe, num_inference_steps=10, s=5.0, cfg_truncation=1.0, seed=1).latents
    b = zlab(tiny_pipe, num_inference_steps=10, s=5.0, cfg_truncation=0.3, seed=1).latents
    assert (a - b).abs().max() > 1e-3


def test_parity_8_steps_without_cfg(tiny_pipe):
    ref = stock(tiny_pipe, num_inference_steps=8, guidance_scale=0.0, seed=2)
    ours = zlab(tiny_pipe, num_inference_steps=8, s=1.0, seed=2)
    assert (ours.latents - ref).abs().max() < TOL
    assert ours.nfe == 8


def test_parity_custom_sigmas(tiny_pipe):
    sigmas = [1.0, 0.8, 0.45, 0.2, 0.05]
    ref = stock(tiny_pipe, sigmas=sigmas, num_inference_steps=len(sigmas), guidance_scale=2.0, seed=3)
    ts = schedule(tiny_pipe.scheduler, len(sigmas), 64, 64, sigmas=sigmas)  # the scheduler shifts them too
    ours = zlab(tiny_pipe, timesteps=ts, s=3.0, seed=3)
    assert (ours.latents - ref).abs().max() < TOL


def test_parity_consistency_steps_with_stochastic_scheduler(tiny_pipe):
    # A few-step student samples with re-noising; stock diffusers does it with stochastic_sampling=True,
    # drawing the fresh noise from the global RNG.
    pipe = copy.copy(tiny_pipe)
    pipe.scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, stochastic_sampling=True)
    noise = initial_noise(pipe, len(PROMPTS), 64, 64, torch.Generator().manual_seed(4))
    ts = schedule(pipe.scheduler, 4, 64, 64)
    assert torch.allclose(ts, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    torch.manual_seed(7)
    ref = pipe(list(PROMPTS), height=64, width=64, latents=noise.clone(), num_inference_steps=4,
               guidance_scale=0.0, output_type="latent").images
    torch.manual_seed(7)
    ours = generate(pipe, list(PROMPTS), height=64, width=64, latents=noise, timesteps=ts, method="consistency")
    assert (ours.latents - ref).abs().max() < TOL
    euler = zlab(pipe, timesteps=ts, seed=4)
    assert (euler.latents - ref).abs().max() > 1e-3  # the two step rules really differ


@pytest.mark.parametrize("bad", [[0.5, 0.7, 0.0], [1.5, 0.5]])
def test_rejects_bad_timesteps(tiny_pipe, bad):
    with pytest.raises(ValueError, match="timesteps"):
        zlab(tiny_pipe, timesteps=bad, seed=0)
