"""DMD runs on the trainer: the tiny teacher's data, a fake score beside the student, exact resume."""

import pytest
import torch
from tiny_ladd import ladd_config, stopped_and_resumed

from zlab.train.distill import train_student


def dmd_config(teacher_and_data, **sections):
    base = {"dmd": {"fake_updates": 2}, "train": {"fake_lr": 1e-3, "student_lr": 1e-4}}
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return ladd_config(teacher_and_data, method="dmd", **base)


def test_a_dmd_run_trains_student_and_fake_score_and_resumes_exactly(teacher_and_data, tmp_path):
    config = dmd_config(teacher_and_data)
    straight, fake, log = train_student(config, tmp_path / "a", progress=False)
    assert len(log["g_loss"]) == 4 and len(log["fake_loss"]) == 4 and log["skipped"] == []
    assert all(v > 0 for v in log["dm_norm"][1:]) and all(v > 0 for v in log["ca_norm"])  # dmd.guidance_scale 0.5: s = 1.5
    state = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    assert "fake_score" in state and "opt_fake" in state and "discriminator" not in state
    resumed, resumed_fake, _ = stopped_and_resumed(config, tmp_path / "b")
    for a, b in ((straight, resumed), (fake, resumed_fake)):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            torch.testing.assert_close(x, y, atol=0, rtol=0, msg=name)


def test_a_dmd_run_with_the_gan_term_resumes_exactly_and_ships_its_heads(teacher_and_data, tmp_path):
    from zlab.distill.dmd import DMDCritic
    from zlab.distill.student import load_discriminator, save_trained_student

    config = dmd_config(teacher_and_data, dmd={"gan_weight": 0.5, "gan_blocks": [1, 3]})
    straight, critic, log = train_student(config, tmp_path / "a", progress=False)
    assert isinstance(critic, DMDCritic) and len(log["gan_d_loss"]) == 4 and log["fake_skipped"] == []
    resumed, resumed_critic, _ = stopped_and_resumed(config, tmp_path / "b")
    for a, b in ((straight, resumed), (critic, resumed_critic)):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            torch.testing.assert_close(x, y, atol=0, rtol=0, msg=name)
    out = save_trained_student(config.data.teacher, straight, critic, tmp_path / "student")
    assert load_discriminator(out / "discriminator").blocks == (1, 3) and (out / "fake_score" / "config.json").is_file()
    plain = train_student(dmd_config(teacher_and_data), tmp_path / "plain", progress=False)[2]
    assert "gan_d_loss" not in plain  # the term off: no heads, and the batches draw what they drew before it existed


def test_dmd_config_is_checked_by_section(teacher_and_data):
    with pytest.raises(ValueError, match="dmd.fake_updates"):
        dmd_config(teacher_and_data, dmd={"fake_updates": 0})
    with pytest.raises(ValueError, match="not supported"):
        dmd_config(teacher_and_data, scale={"lora_rank": 4}, dmd={"gan_weight": 0.1})
    with pytest.raises(ValueError, match="unknown config key"):
        dmd_config(teacher_and_data, dmd={"ca_noise": {"mean": 1.0}})


def test_a_lora_dmd_run_trains_two_adapters_on_one_teacher_resumes_exactly_and_ships_both(teacher_and_data, tmp_path):
    """The real model's recipe at tiny size: the student and the fake score are two LoRA adapters on the one frozen
    teacher (recomputed blocks, EMA); the student ships merged, the fake score as its adapter."""
    from diffusers import ZImagePipeline

    from zlab.distill.student import save_trained_student
    from zlab.measure.dmd_view import load_fake_score

    kw = {"scale": {"lora_rank": 4, "gradient_checkpointing": True}, "train": {"ema_decay": 0.9}}
    config = dmd_config(teacher_and_data, **kw)
    straight, fake, log = train_student(config, tmp_path / "a", progress=False)
    assert log["skipped"] == [] and log["fake_skipped"] == [] and all(v > 0 for v in log["dm_norm"][1:])
    state = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    assert state["student"] and all(".student." in k for k in state["student"])  # adapters only, each its own
    assert state["fake_score"] and all(".fake." in k for k in state["fake_score"])
    resumed, resumed_fake, _ = stopped_and_resumed(config, tmp_path / "b")
    for a, b in ((straight, resumed), (fake, resumed_fake)):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            torch.testing.assert_close(x, y, atol=0, rtol=0, msg=name)
    teacher = ZImagePipeline.from_pretrained(teacher_and_data[0]).transformer
    assert set(straight.state_dict()) == set(teacher.state_dict())  # merged: a stock transformer
    changed = lambda model: any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                                      teacher.state_dict().values()))
    assert changed(straight) and any(v.abs().sum() > 0 for k, v in fake.state_dict().items() if "lora_B" in k)
    out = save_trained_student(config.data.teacher, straight, fake, tmp_path / "student")
    assert (out / "fake_score" / "adapter.safetensors").is_file() and not (out / "fake_score" / "config.json").exists()
    shipped_fake = load_fake_score(out, like=teacher)
    assert set(shipped_fake.state_dict()) == set(teacher.state_dict()) and changed(shipped_fake)
    adapted = [k for k in teacher.state_dict() if k.endswith("to_q.weight")]
    assert adapted and all(not torch.equal(shipped_fake.state_dict()[k], straight.state_dict()[k]) for k in adapted)
    with pytest.raises(ValueError, match="LoRA adapter"):
        load_fake_score(out)


def test_adapter_views_switch_the_shared_model_and_restore_it(tiny_pipe):
    """The teacher view is the base model whatever adapter ran before; each view's parameters are its adapter's."""
    import copy

    from zlab.distill.dmd import x0_of
    from zlab.train.adapters import AdapterView, add_lora

    base = copy.deepcopy(tiny_pipe.transformer).requires_grad_(False)
    reference = copy.deepcopy(base)
    for name in ("student", "fake"):
        add_lora(base, 4, 4, ("to_q", "to_v"), name, torch.float32)
    with torch.no_grad():
        for k, p in base.named_parameters():
            if "lora_B" in k:
                p.normal_(std=0.5)  # each adapter its own draw: the student and the fake score differ
    teacher, student, fake = (AdapterView(base, n) for n in (None, "student", "fake"))
    x, t = torch.randn(2, 16, 8, 8), torch.tensor([0.9, 0.4])
    embeds = [torch.randn(5, base.config.cap_feat_dim), torch.randn(3, base.config.cap_feat_dim)]
    with torch.no_grad():
        outs = {name: x0_of(m, x, t, embeds) for name, m in (("student", student), ("fake", fake), ("teacher", teacher))}
        torch.testing.assert_close(outs["teacher"], x0_of(reference, x, t, embeds))
        assert not torch.allclose(outs["student"], outs["fake"]) and not torch.allclose(outs["student"], outs["teacher"])
        torch.testing.assert_close(x0_of(student, x, t, embeds), outs["student"])  # after the teacher ran
    names = lambda view: {k for k, _ in view.named_parameters()}
    assert names(student) and all(".student." in k for k in names(student)) and not names(teacher)
    assert not names(student) & names(fake) and all(p.requires_grad for p in [*student.parameters(), *fake.parameters()])
    x0_of(fake, x, t, embeds).pow(2).mean().backward()  # a fake-score loss reaches only the fake adapter
    assert all(p.grad is not None for p in fake.parameters()) and all(p.grad is None for p in student.parameters())
