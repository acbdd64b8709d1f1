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


def test_dmd_config_is_checked_by_section(teacher_and_data):
    with pytest.raises(ValueError, match="dmd.fake_updates"):
        dmd_config(teacher_and_data, dmd={"fake_updates": 0})
    with pytest.raises(ValueError, match="scale.lora_rank must be 0"):
        dmd_config(teacher_and_data, scale={"lora_rank": 4})
    with pytest.raises(ValueError, match="unknown config key"):
        dmd_config(teacher_and_data, dmd={"ca_noise": {"mean": 1.0}})
