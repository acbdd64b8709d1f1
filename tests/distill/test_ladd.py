"""LADD pieces: student timesteps and warm-up, t_hat, heads (any aspect ratio), losses, gradient routing."""

import copy
import json

import pytest
import torch

from zlab.distill.head_calls import dead_heads, head_accuracy, head_calls, mean_calls
from zlab.distill.heads import Discriminator, pool_text
from zlab.distill.ladd import LADDBatch, LADDForward, ladd_forward
from zlab.distill.losses import approximate_r1, discriminator_loss, fake_side, generator_loss
from zlab.distill.schedule import (
    STUDENT_TIMESTEPS,
    sample_student_t,
    sample_t_hat,
    sampler_inputs,
    student_timestep_probs,
)
from zlab.distill.student import student_pipeline
from zlab.features import FeatureTap
from zlab.flow import add_noise, zimage_velocity
from zlab.train.config import load_config
from zlab.train.distill_config import DistillConfig
from zlab.train.models import build_models, make_optimizer
from zlab.zimage import encode_prompts


def test_head_calls_tell_a_dead_head_from_a_guessing_one():
    """A head that calls everything fake reads 0.5 in head_accuracy, like a coin; head_calls and dead_heads tell them apart."""
    real, fake = [torch.full((4, 1, 2, 2), -1.0)], [torch.full((4, 1, 2, 2), -1.0)]
    assert head_accuracy(real, fake) == [0.5]
    assert head_calls(real, fake) == [(0.0, 1.0)]
    coin = [torch.tensor([1.0, -1.0, 1.0, -1.0]).view(4, 1, 1, 1)]
    assert head_calls(coin, coin) == [(0.5, 0.5)]
    dead, guessing = [head_calls(real, fake)] * 5, [head_calls(coin, coin)] * 5
    assert dead_heads(dead) and not dead_heads(guessing) and not dead_heads([])
    assert not dead_heads(dead + [[(0.5, 0.5)]] * 100)  # only the last 100 steps count
    assert mean_calls(dead + guessing, last=10) == [(0.25, 0.75)]




def test_warmup_then_full_timestep_probabilities():
    g = torch.Generator().manual_seed(0)
    early = sample_student_t(20_000, step=10, warmup_steps=500, generator=g)
    late = sample_student_t(20_000, step=500, warmup_steps=500, generator=g)
    assert set(early.unique().tolist()) == {0.5, 0.25}  # p = [0, 0, .5, .5]: no high-noise steps yet
    freq = [(late == t).float().mean().item() for t in STUDENT_TIMESTEPS]
    assert freq == pytest.approx([0.7, 0.1, 0.1, 0.1], abs=0.01)
    with pytest.raises(ValueError, match="summing to 1"):
        student_timestep_probs(0, 10, warmup=(0.5, 0.5, 0.5, 0.5))


def test_t_hat_is_logit_normal_with_m_1():
    t_hat = sample_t_hat(50_000, m=1.0, s=1.0, generator=torch.Generator().manual_seed(0))
    assert 0 < t_hat.min() and t_hat.max() < 1
    # logit(t_hat) ~ N(1, 1): median of t_hat = sigmoid(1)
    assert t_hat.median().item() == pytest.approx(torch.sigmoid(torch.tensor(1.0)).item(), abs=0.01)
    assert torch.logit(t_hat).std().item() == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("grid", [(4, 4), (4, 6), (6, 4)])
def test_heads_give_spatial_logits_at_any_aspect(grid):
    disc = Discriminator((0, 2), channels=32, text_dim=16, hidden=8)
    maps = [torch.randn(3, 32, *grid) for _ in range(2)]
    logits = disc(maps, torch.rand(3), torch.randn(3, 16))
    assert [l.shape for l in logits] == [(3, 1, *grid)] * 2
    assert Discriminator.scores(logits).shape == (3, 2)
    with pytest.raises(ValueError, match="2 heads"):
        disc(maps[:1], torch.rand(3), torch.randn(3, 16))


def test_text_norm_heads_read_the_caption_at_any_scale(tmp_path):
    """A text_norm head reads the pooled text whatever its scale (the tiny encoder pools to norm ~0.14); the
    option survives saving, and a folder saved before it existed loads without it."""
    from zlab.distill.student import load_discriminator, save_discriminator

    torch.manual_seed(0)
    plain, normed = (Discriminator((0,), channels=8, text_dim=4, hidden=8, text_norm=flag) for flag in (False, True))
    for p in plain.parameters():
        torch.nn.init.normal_(p, std=0.3)
    normed.load_state_dict(plain.state_dict())
    maps, t_hat, text = [torch.randn(2, 8, 4, 4)], torch.tensor([0.2, 0.2]), torch.randn(2, 4)
    assert torch.allclose(normed(maps, t_hat, 10 * text)[0], normed(maps, t_hat, text)[0], atol=1e-3)
    assert not torch.allclose(plain(maps, t_hat, 10 * text)[0], plain(maps, t_hat, text)[0], atol=1e-2)
    save_discriminator(normed, tmp_path / "d")
    assert load_discriminator(tmp_path / "d").heads[0].text_norm
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    del config["text_norm"]
    (tmp_path / "d" / "config.json").write_text(json.dumps(config))
    assert not load_discriminator(tmp_path / "d").heads[0].text_norm


def test_whole_image_heads_see_past_their_receptive_field(tmp_path):
    """Two 3x3 convolutions see 5x5 tokens: on a 12x12 map a patch-wise head's corner logit ignores the opposite
    corner (two tokens swapped there: the per-sample normalisation's statistics stay), a whole-image head's does not; its added score is one number per sample, and the option survives saving."""
    from zlab.distill.student import load_discriminator, save_discriminator

    torch.manual_seed(0)
    plain, whole = Discriminator((0,), 8, 4, hidden=8), Discriminator((0,), 8, 4, hidden=8, whole=True)
    for p in whole.parameters():
        torch.nn.init.normal_(p, std=0.3)
    plain.load_state_dict(whole.state_dict(), strict=False)
    maps, t_hat, text = torch.randn(2, 8, 12, 12), torch.tensor([0.3, 0.6]), torch.randn(2, 4)
    moved = maps.clone()
    moved[:, :, -1, -1], moved[:, :, -1, -3] = maps[:, :, -1, -3], maps[:, :, -1, -1]
    corner = lambda disc, m: disc([m], t_hat, text)[0][:, 0, 0, 0]
    assert torch.equal(corner(plain, maps), corner(plain, moved))
    assert not torch.allclose(corner(whole, maps), corner(whole, moved))
    added = whole([maps], t_hat, text)[0] - plain([maps], t_hat, text)[0]
    assert torch.allclose(added, added[:, :, :1, :1].expand_as(added), atol=1e-5) and added.abs().max() > 0
    save_discriminator(whole, tmp_path / "d")
    loaded = load_discriminator(tmp_path / "d")
    assert loaded.whole and torch.allclose(loaded([maps], t_hat, text)[0], whole([maps], t_hat, text)[0])


def test_heads_depend_on_t_hat_and_text_once_trained():
    disc = Discriminator((0,), channels=8, text_dim=4, hidden=8)
    for p in disc.parameters():  # FiLM starts at zero; perturb every weight as training would
        torch.nn.init.normal_(p, std=0.3)
    maps, text = [torch.randn(2, 8, 4, 4)], torch.randn(2, 4)
    base = disc(maps, torch.tensor([0.2, 0.2]), text)[0]
    assert not torch.allclose(base, disc(maps, torch.tensor([0.8, 0.8]), text)[0])
    assert not torch.allclose(base, disc(maps, torch.tensor([0.2, 0.2]), -text)[0])


def test_losses_match_their_formulas():
    real, fake = [torch.tensor([[2.0, 0.5]]), torch.tensor([[-0.5]])], [torch.tensor([[-2.0, 0.0]]), torch.tensor([[1.0]])]
    # hinge D: head 0: relu(1-2)=0, relu(1-.5)=.5 -> .25; relu(1-2)=0, relu(1+0)=1 -> .5; head 1: 1.5 + 2
    assert discriminator_loss(real, fake).item() == pytest.approx(0.25 + 0.5 + 1.5 + 2.0)
    assert generator_loss(fake).item() == pytest.approx(1.0 - 1.0)
    sp = torch.nn.functional.softplus
    ns = sp(-real[0]).mean() + sp(fake[0]).mean() + sp(-real[1]).mean() + sp(fake[1]).mean()
    assert discriminator_loss(real, fake, "non-saturating").item() == pytest.approx(ns.item())
    assert generator_loss(fake, "non-saturating").item() == pytest.approx((sp(-fake[0]).mean() + sp(-fake[1]).mean()).item())
    assert head_accuracy(real, fake) == [1.0, 0.0]
    assert head_calls(real, fake) == [(1.0, 1.0), (0.0, 0.0)]
    with pytest.raises(ValueError, match="hinge"):
        generator_loss(fake, "wasserstein")
    # mismatched negatives: a weight of 0 leaves a sample out of the mean
    two = [torch.tensor([[0.0], [5.0]])]
    assert fake_side(two).item() == pytest.approx((1.0 + 6.0) / 2)
    assert fake_side(two, weight=torch.tensor([1.0, 0.0])).item() == pytest.approx(1.0)
    # approximate R1: the squared change of each head's per-sample score
    assert approximate_r1(real, real).item() == 0.0
    assert approximate_r1([torch.tensor([[1.0, 3.0]])], [torch.tensor([[2.0, 2.0]])]).item() == 0.0  # same mean
    assert approximate_r1([torch.tensor([[1.0]])], [torch.tensor([[3.0]])]).item() == pytest.approx(4.0)


def test_heads_see_wrong_captions_and_perturbed_reals_in_one_forward(tiny_pipe):
    """With mismatched negatives and approximate R1 on, the heads' batch is real, fake, real under the
    neighbour's caption, perturbed real; a neighbour with the same prompt is no negative."""
    from zlab.distill.ladd import heads_inputs
    from zlab.train.ladd import draw_batch
    from zlab.train.synth import SynthData

    prompts = ["a red shape", "a blue shape", "a red shape"]
    embeds = encode_prompts(tiny_pipe, prompts)
    data = SynthData(latents=torch.randn(3, 16, 8, 8), prompt_index=torch.tensor([0, 1, 0]), seeds=torch.arange(3),
                     prompts=prompts, embeds=embeds, sampling={})
    config = load_config(DistillConfig, ladd={"mismatch_weight": 1.0, "r1_weight": 1.0, "r1_sigma": 0.1}, train={"batch_size": 6})
    batch = draw_batch(data, config, 0, torch.Generator().manual_seed(0))
    same = data.prompt_index[torch.randint(3, (6,), generator=torch.Generator().manual_seed(0))]
    assert torch.equal(batch.wrong, (same != same.roll(1)).float())
    assert torch.equal(batch.wrong_text, batch.text.roll(1, 0)) and batch.r1_seed is not None
    real = [torch.randn(6, 4, 4, 4)]
    fwd = LADDForward(x0_hat=batch.x0, real_maps=real, fake_maps=[torch.randn(6, 4, 4, 4, requires_grad=True)])
    parts = heads_inputs(fwd, batch, r1_sigma=0.1)
    assert list(parts) == ["real", "fake", "wrong", "r1"] and all(len(p.t_hat) == 6 for p in parts.values())
    assert not parts["fake"].maps[0].requires_grad
    torch.testing.assert_close(parts["wrong"].maps[0], real[0])
    torch.testing.assert_close(parts["wrong"].text, batch.text.roll(1, 0))
    change = (parts["r1"].maps[0] - real[0]).std() / real[0].std()
    assert 0.05 < change.item() < 0.2  # the perturbation is sigma = 0.1 of the maps' spread
    plain = draw_batch(data, load_config(DistillConfig, train={"batch_size": 6}), 0, torch.Generator().manual_seed(0))
    assert plain.wrong is None and plain.r1_seed is None and list(heads_inputs(fwd, plain)) == ["real", "fake"]


@pytest.mark.parametrize("logit", [-1.0, 0.0, 0.5])
def test_negatives_share_the_fake_side_so_a_head_that_tells_nothing_apart_is_not_pushed_to_call_all_fake(tiny_pipe, logit):
    """A head that gives every input the same logit a in [-1, 1] pays hinge 2 whatever a is, with or without
    mismatched negatives: they share the fake side (real + (fake + w wrong) / (1 + w)). Added on top, they made
    a = -1 (every input fake, no signal for the student) the cheapest answer."""
    from zlab.distill.ladd import heads_loss
    from zlab.train.ladd import draw_batch
    from zlab.train.synth import SynthData

    prompts = ["a red shape", "a blue shape"]
    data = SynthData(latents=torch.randn(2, 16, 8, 8), prompt_index=torch.tensor([0, 1]), seeds=torch.arange(2),
                     prompts=prompts, embeds=encode_prompts(tiny_pipe, prompts), sampling={})
    maps = [torch.randn(6, 4, 2, 2)]
    fwd = LADDForward(x0_hat=torch.zeros(6, 16, 8, 8), real_maps=maps, fake_maps=maps)
    constant = lambda maps, t_hat, text: [torch.full((len(t_hat), 1, 2, 2), logit)]
    for weight in (0.0, 0.5, 1.0):
        config = load_config(DistillConfig, ladd={"mismatch_weight": weight}, train={"batch_size": 6})
        batch = draw_batch(data, config, 0, torch.Generator().manual_seed(0))
        assert weight == 0 or batch.wrong.sum() > 0
        assert heads_loss(constant, fwd, batch, config.ladd)[0].item() == pytest.approx(2.0)


def test_caption_tap_puts_each_blocks_caption_state_beside_its_map_and_mismatches_run_the_teacher(tiny_pipe, tmp_path):
    """FeatureTap(caption=True): 2 * dim channels, the second half constant over the grid and set by the caption;
    with mismatched negatives the heads see the teacher's maps of the real sample under the wrong caption."""
    from zlab.distill.ladd import heads_inputs
    from zlab.distill.student import load_discriminator, save_discriminator

    dim = tiny_pipe.transformer.config.dim
    embeds = encode_prompts(tiny_pipe, ["a large red circle at the top left", "a small blue square"])
    x, t = torch.randn(2, 16, 8, 12, generator=torch.Generator().manual_seed(0)), torch.tensor([0.5, 0.5])
    plain, caption = FeatureTap(tiny_pipe.transformer, (1,)), FeatureTap(tiny_pipe.transformer, (1,), caption=True)
    assert caption.channels == 2 * dim
    (both,) = caption(x, t, embeds)
    assert both.shape == (2, 2 * dim, 4, 6)
    state = both[:, dim:]
    assert torch.allclose(state, state[..., :1, :1].expand_as(state))  # one vector per sample, broadcast
    torch.testing.assert_close(both[:, :dim], torch.nn.functional.group_norm(plain(x, t, embeds)[0], 1))
    (swapped,) = caption(x, t, embeds[::-1])
    assert not torch.allclose(swapped[0, dim:], both[0, dim:], atol=1e-3)  # another caption, another state
    with pytest.raises(ValueError, match="head_caption.*features"):
        load_config(DistillConfig, ladd={"head_caption": True, "features": "pixels"}).validate()

    models = build_models(load_config(DistillConfig, ladd={"blocks": (1,), "head_hidden": 8, "head_caption": True, "mismatch_weight": 1.0}),
                          copy.deepcopy(tiny_pipe.transformer), embeds[0].shape[-1])
    assert models.disc.caption and models.disc.heads[0].conv_in.in_channels == 2 * dim
    batch = _batch(embeds, torch.Generator().manual_seed(0))
    batch.wrong_text, batch.wrong = batch.text.roll(1, 0), torch.ones(2)
    fwd = ladd_forward(models.student, models.tap, batch)
    noisy = add_noise(batch.x0, batch.eps_hat, batch.t_hat)  # the real sample, re-noised, under its neighbour's caption
    torch.testing.assert_close(fwd.wrong_maps[0], models.tap(noisy, batch.t_hat, embeds[::-1])[0])
    assert not torch.allclose(fwd.wrong_maps[0], fwd.real_maps[0], atol=1e-3)
    torch.testing.assert_close(heads_inputs(fwd, batch)["wrong"].maps[0], fwd.wrong_maps[0])
    save_discriminator(models.disc, tmp_path / "d")
    assert load_discriminator(tmp_path / "d").caption


def _batch(embeds, g):
    return LADDBatch(x0=torch.randn(2, 16, 8, 8, generator=g), embeds=embeds, text=pool_text(embeds),
                     t=torch.tensor([1.0, 0.5]), eps=torch.randn(2, 16, 8, 8, generator=g),
                     t_hat=torch.tensor([0.8, 0.3]), eps_hat=torch.randn(2, 16, 8, 8, generator=g),
                     sim_dt=torch.tensor([0.0, 0.25]))


def _step_grads(tiny_pipe, **scale):
    """One L_adv backward; returns the models and {name: grad} of the student's trained parameters."""
    torch.manual_seed(0)
    embeds = encode_prompts(tiny_pipe, ["a large red circle at the top left", "a small blue square"])
    models = build_models(load_config(DistillConfig, ladd={"blocks": (1, 3), "head_hidden": 16}, scale=scale), copy.deepcopy(tiny_pipe.transformer),
                          embeds[0].shape[-1])
    batch = _batch(embeds, torch.Generator().manual_seed(0))
    fwd = ladd_forward(models.student, models.tap, batch)
    assert all(not m.requires_grad for m in fwd.real_maps)  # real path: no graph at all
    generator_loss(models.disc(fwd.fake_maps, batch.t_hat, batch.text)).backward()
    return models, {n: p.grad for n, p in models.student.named_parameters() if p.requires_grad}


def test_student_gets_gradients_through_the_frozen_teacher(tiny_pipe):
    models, grads = _step_grads(tiny_pipe)
    assert sum(g.abs().sum().item() for g in grads.values() if g is not None) > 0
    assert all(p.grad is None for p in models.teacher.parameters())  # frozen: nothing accumulates on the teacher
    assert all(p.grad is not None for p in models.student.layers[0].parameters())


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_gradient_checkpointing_gives_the_same_gradients(tiny_pipe, lora_rank):
    """Also for a LoRA student, whose teacher blocks must be recomputed with the adapter off."""
    _, plain = _step_grads(tiny_pipe, lora_rank=lora_rank)
    _, recomputed = _step_grads(tiny_pipe, gradient_checkpointing=True, lora_rank=lora_rank)
    assert plain.keys() == recomputed.keys()
    for name, grad in plain.items():
        if grad is not None:
            torch.testing.assert_close(recomputed[name], grad, atol=1e-5, rtol=1e-4)


def test_lora_student_shares_the_teacher_weights_and_merges_into_a_stock_transformer(tiny_pipe):
    models, grads = _step_grads(tiny_pipe, lora_rank=4)
    assert models.student is models.teacher  # one copy of the weights serves both
    assert grads and all("lora_" in n for n in grads) and any(g.abs().sum() > 0 for g in grads.values())
    for p in models.trainable():  # move the adapter away from its zero init
        p.data.add_(0.01 * torch.randn_like(p))
    embeds = encode_prompts(tiny_pipe, ["a large red circle at the top left"])
    x, t = torch.randn(1, 16, 8, 8), torch.tensor([0.7])
    with torch.no_grad():
        teacher_maps = models.tap(x, t, embeds)  # adapter off: exactly the original teacher
        original = FeatureTap(tiny_pipe.transformer, (1, 3))(x, t, embeds)
        adapted = zimage_velocity(models.student, x, t, embeds)
        merged = models.shipped()
        assert not any("lora_" in n for n in merged.state_dict())
        assert set(merged.state_dict()) == set(tiny_pipe.transformer.state_dict())
        torch.testing.assert_close(zimage_velocity(merged, x, t, embeds), adapted, atol=1e-5, rtol=1e-4)
    for a, b in zip(teacher_maps, original, strict=True):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(adapted, zimage_velocity(tiny_pipe.transformer, x, t, embeds), atol=1e-4)
    state = models.state_dict()
    assert state and all("lora_" in k for k in state)  # a LoRA checkpoint keeps only the adapter


def test_optimizer_choices_name_what_is_missing():
    p = [torch.nn.Parameter(torch.ones(3))]
    p[0].grad = torch.ones(3)
    make_optimizer("adam_fused", p, 0.1, (0.0, 0.99)).step()
    assert torch.all(p[0] < 1)
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="bitsandbytes"):
            make_optimizer("adam8bit", p, 0.1, (0.0, 0.99))
    with pytest.raises(ValueError, match="adam_fused"):
        make_optimizer("sgd", p, 0.1, (0.0, 0.99))


def test_backward_simulation_feeds_what_the_stock_sampler_feeds(tiny_pipe):
    """x_t from ``sampler_inputs`` is the latent stock ZImagePipeline holds before its step at t."""
    prompts = ["a large red circle at the top left", "a small blue square", "a green triangle", "a red square"]
    embeds = encode_prompts(tiny_pipe, prompts)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 16, 8, 8, generator=g), torch.randn(4, 16, 8, 8, generator=g)
    t = torch.tensor([0.25, 0.5, 0.75, 0.5])
    sim_dt = torch.tensor([0.25, 0.5, 0.25, 0.0])  # 4-step, 2-step, 4-step sampler; the last is noised data
    batch = LADDBatch(x0, embeds, pool_text(embeds), t, eps, torch.full((4,), 0.5), eps, sim_dt)
    got = sampler_inputs(tiny_pipe.transformer, batch)
    assert torch.equal(got[3], (0.5 * x0[3] + 0.5 * eps[3]))
    pipe = student_pipeline(tiny_pipe, tiny_pipe.transformer)
    for i, n in [(0, 4), (1, 2), (2, 4)]:
        seen = []
        pipe([prompts[i]], num_inference_steps=n, guidance_scale=0.0, height=64, width=64, latents=eps[i:i + 1],
             output_type="latent", callback_on_step_end=lambda p, k, ts, kw: seen.append(kw["latents"]) or kw)
        k = round((1 - t[i].item()) * n) - 1  # steps taken before reaching t
        torch.testing.assert_close(got[i], seen[k][0].float(), atol=1e-5, rtol=1e-5)
    assert not torch.equal(got[0], 0.75 * x0[0] + 0.25 * eps[0])


def test_a_student_can_start_from_another_pipeline_s_transformer(tiny_pipe, tmp_path):
    """student_init loads another folder's transformer into the student (not the teacher); a bad folder is refused."""
    other = copy.deepcopy(tiny_pipe.transformer)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.01)
    other.save_pretrained(tmp_path / "pipe" / "transformer")
    teacher = copy.deepcopy(tiny_pipe.transformer)
    models = build_models(load_config(DistillConfig, ladd={"blocks": (1,), "head_hidden": 8}, train={"student_init": str(tmp_path / "pipe")}), teacher, 8)
    name, p = next(iter(other.named_parameters()))
    torch.testing.assert_close(dict(models.student.named_parameters())[name], p)
    torch.testing.assert_close(dict(models.teacher.named_parameters())[name],
                               dict(tiny_pipe.transformer.named_parameters())[name])
    with pytest.raises(FileNotFoundError, match="transformer/config.json"):
        build_models(load_config(DistillConfig, ladd={"blocks": (1,)}, train={"student_init": str(tmp_path)}), copy.deepcopy(tiny_pipe.transformer), 8)
    with pytest.raises(ValueError, match="LoRA"):
        load_config(DistillConfig, train={"student_init": "x"}, scale={"lora_rank": 4}).validate()
