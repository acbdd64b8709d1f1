"""DMD pieces: the decomposition into DM and CA, the normalised generator gradient, the fake score's loss, one step."""

import copy

import pytest
import torch
from accelerate import Accelerator

from zlab.distill.dmd import (
    DMDBatch,
    DMDOptions,
    NoiseLaw,
    dmd_directions,
    dmd_step,
    fake_score_loss,
    generator_loss,
    normalised,
    x0_of,
)
from zlab.flow import add_noise
from zlab.zimage import encode_prompts

PROMPTS = ["a large red circle at the top left", "a small blue square"]


@torch.no_grad()
def make_batch(pipe, seed=0, one_law=True) -> DMDBatch:
    g = torch.Generator().manual_seed(seed)
    n = len(PROMPTS)
    embeds = encode_prompts(pipe, PROMPTS)
    null = encode_prompts(pipe, [""]) * n
    shape = (n, pipe.transformer.config.in_channels, 8, 8)
    tau_dm = torch.rand(n, generator=g)
    eps_dm = torch.randn(shape, generator=g)
    tau_ca, eps_ca = (tau_dm, eps_dm) if one_law else (torch.rand(n, generator=g), torch.randn(shape, generator=g))
    return DMDBatch(x0=torch.randn(shape, generator=g), embeds=embeds, null=null, t=torch.ones(n),
                    eps=torch.randn(shape, generator=g), sim_dt=None, tau_dm=tau_dm, eps_dm=eps_dm, tau_ca=tau_ca,
                    eps_ca=eps_ca, fake_seed=seed)


def perturbed(model, scale=0.05, seed=1):
    other = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return other


def test_dm_plus_ca_is_the_guided_dmd_direction(tiny_pipe):
    """On one re-noising, DM + CA = (x0_real - x0_fake) / norm with x0_real = x0_u + s (x0_c - x0_u)."""
    teacher, fake = tiny_pipe.transformer, perturbed(tiny_pipe.transformer)
    batch = make_batch(tiny_pipe)
    x0_hat = torch.randn_like(batch.x0)
    options = DMDOptions(guidance_scale=2.0)
    d = dmd_directions(teacher, fake, x0_hat, batch, options)
    x = add_noise(x0_hat, batch.eps_dm, batch.tau_dm)
    cond, uncond = x0_of(teacher, x, batch.tau_dm, batch.embeds), x0_of(teacher, x, batch.tau_dm, batch.null)
    real = uncond + 3.0 * (cond - uncond)
    expected = normalised(real - x0_of(fake, x, batch.tau_dm, batch.embeds), x0_hat, real)
    torch.testing.assert_close(d["dm"] + d["ca"], expected, rtol=1e-4, atol=1e-5)
    assert d["ca"].abs().mean() > 0 and d["dm"].abs().mean() > 0


def test_without_guidance_there_is_no_cfg_augmentation_and_a_teacher_copy_gives_no_dm(tiny_pipe):
    teacher = tiny_pipe.transformer
    batch = make_batch(tiny_pipe)
    x0_hat = torch.randn_like(batch.x0)
    d = dmd_directions(teacher, copy.deepcopy(teacher), x0_hat, batch, DMDOptions(guidance_scale=0.0))
    assert d["ca"].abs().max() == 0  # s = 1: x0_c - x0_u is weighted by s - 1 = 0
    assert d["dm"].abs().max() < 1e-6  # the fake score starts as the teacher: nothing to match yet
    only_ca = dmd_directions(teacher, teacher, x0_hat, batch, DMDOptions(dm_weight=0.0))
    assert set(only_ca) == {"ca"}


def test_normalisation_divides_each_sample_by_its_mean_distance():
    x0_hat, real = torch.zeros(2, 1, 2, 2), torch.stack([torch.full((1, 2, 2), 2.0), torch.full((1, 2, 2), -0.5)])
    out = normalised(torch.ones(2, 1, 2, 2), x0_hat, real)
    assert out[0].unique().tolist() == [0.5] and out[1].unique().tolist() == [2.0]


def test_generator_loss_gradient_steps_along_each_weighted_direction():
    x0_hat = torch.randn(2, 3, 4, 4, requires_grad=True)
    directions = {"dm": torch.randn(2, 3, 4, 4), "ca": torch.randn(2, 3, 4, 4)}
    options = DMDOptions(dm_weight=0.5, ca_weight=2.0)
    batch = DMDBatch(*(None,) * 11)
    generator_loss(x0_hat, directions, batch, options).backward()
    expected = -(0.5 * directions["dm"] + 2.0 * directions["ca"]) / x0_hat.numel()
    torch.testing.assert_close(x0_hat.grad, expected)


def test_noise_law_stays_in_its_interval_and_options_are_checked():
    g = torch.Generator().manual_seed(0)
    draws = NoiseLaw("logit_normal", low=0.5, high=0.9).sample(torch.ones(10_000), g)
    assert 0.5 <= draws.min() and draws.max() <= 0.9 and draws.median() == pytest.approx(0.7, abs=0.01)
    t = torch.tensor([1.0, 0.5, 0.25] * 2000)
    below = NoiseLaw(low=0.0, high=0.98, below_t=True).sample(t, g)
    assert (below <= t).all() and below[t == 1].max() > 0.9 and below[t == 0.25].mean() == pytest.approx(0.125, abs=0.01)
    with pytest.raises(ValueError, match="dmd.ca_noise.high"):
        DMDOptions(ca_noise=NoiseLaw(low=0.5, high=0.2)).validate()
    with pytest.raises(ValueError, match="student has no loss"):
        DMDOptions(dm_weight=0.0, ca_weight=0.0).validate()
    with pytest.raises(ValueError, match="student_probs"):
        DMDOptions(student_probs=(0.5, 0.5, 0.5, 0.0)).validate()


def test_fake_score_loss_is_flow_matching_on_the_detached_sample(tiny_pipe):
    fake = copy.deepcopy(tiny_pipe.transformer)
    x0 = torch.randn(2, fake.config.in_channels, 8, 8, requires_grad=True)
    with torch.no_grad():
        embeds = encode_prompts(tiny_pipe, PROMPTS)
    loss = fake_score_loss(fake, x0, embeds, DMDOptions(), torch.Generator().manual_seed(0))
    loss.backward()
    assert x0.grad is None and any(p.grad is not None for p in fake.parameters())
    again = fake_score_loss(fake, x0, embeds, DMDOptions(), torch.Generator().manual_seed(0))
    assert again.item() == pytest.approx(loss.item())  # every draw comes from the generator


def test_one_step_moves_the_student_and_the_fake_score_and_never_the_teacher(tiny_pipe):
    torch.manual_seed(0)
    teacher = copy.deepcopy(tiny_pipe.transformer).requires_grad_(False)
    student, fake = perturbed(teacher).requires_grad_(True), copy.deepcopy(teacher).requires_grad_(True)
    before = {name: copy.deepcopy(m.state_dict()) for name, m in (("t", teacher), ("s", student), ("f", fake))}
    opt_s, opt_f = torch.optim.Adam(student.parameters(), 1e-3), torch.optim.Adam(fake.parameters(), 1e-3)
    options = DMDOptions(guidance_scale=1.0, fake_updates=2)
    result = dmd_step(Accelerator(cpu=True), student, fake, teacher, make_batch(tiny_pipe), opt_s, opt_f, options,
                      fake_batches=[make_batch(tiny_pipe, seed=1)])
    assert result.ok and set(result.grad_norms) == {"dm", "ca"}
    changed = lambda name, m: any(not torch.equal(v, m.state_dict()[k]) for k, v in before[name].items())
    assert changed("s", student) and changed("f", fake) and not changed("t", teacher)


def test_the_gan_term_moves_the_heads_and_reaches_the_student_through_the_teacher(tiny_pipe):
    """DMD2's GAN term alone (every other weight 0): the student still moves (its only gradient is -D through the
    frozen teacher), the heads step on the hinge loss, the teacher and the fake score's weights stay (it steps on
    flow matching, which this check switches off with a zero learning rate)."""
    from zlab.distill.dmd import DMDCritic
    from zlab.distill.heads import Discriminator
    from zlab.features import FeatureTap

    torch.manual_seed(0)
    teacher = copy.deepcopy(tiny_pipe.transformer).requires_grad_(False)
    student, fake = perturbed(teacher).requires_grad_(True), copy.deepcopy(teacher).requires_grad_(True)
    tap = FeatureTap(teacher, (1, 2))
    heads = Discriminator((1, 2), tap.channels, tiny_pipe.text_encoder.config.hidden_size, hidden=8)
    critic = DMDCritic(fake, heads)
    models = {"t": teacher, "s": student, "f": fake, "h": heads}
    before = {name: copy.deepcopy(m.state_dict()) for name, m in models.items()}
    opt_s = torch.optim.Adam(student.parameters(), 1e-3)
    opt_c = torch.optim.Adam([{"params": list(fake.parameters()), "lr": 0.0}, {"params": list(heads.parameters())}], 1e-3)
    options = DMDOptions(dm_weight=0.0, ca_weight=0.0, gan_weight=1.0, fake_updates=1)
    batch = make_batch(tiny_pipe)
    g = torch.Generator().manual_seed(3)
    batch.t_gan, batch.eps_gan = torch.rand(2, generator=g), torch.randn(batch.x0.shape, generator=g)
    result = dmd_step(Accelerator(cpu=True), student, critic, teacher, batch, opt_s, opt_c, options, tap=tap)
    assert result.ok and result.gan_d_loss > 0 and result.grad_norms == {}
    changed = lambda name: any(not torch.equal(v, models[name].state_dict()[k]) for k, v in before[name].items())
    assert changed("s") and changed("h") and not changed("t") and not changed("f")
    with pytest.raises(ValueError, match="gan_weight are all 0"):
        DMDOptions(dm_weight=0.0, ca_weight=0.0).validate()
