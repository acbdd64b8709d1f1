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
    with pytest.raises(ValueError, match="scale.lora_rank must be 0"):
        dmd_config(teacher_and_data, scale={"lora_rank": 4})
    with pytest.raises(ValueError, match="unknown config key"):
        dmd_config(teacher_and_data, dmd={"ca_noise": {"mean": 1.0}})
