"""DMD under FSDP2 on two CPU ranks, against DDP: the student sharded, and the fake score sharded too (the
"everywhere" launch) or replicated; checkpoints whole, resumed across launches."""

from pathlib import Path

import pytest
import torch
from ranks import fsdp_env, run_ranks

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, teacher_and_data):
    root = tmp_path_factory.mktemp("fsdp-dmd")
    teacher, data = teacher_and_data
    config = {"method": "dmd", "data": {"teacher": str(teacher), "folder": str(data)},
              "train": {"steps": 4, "batch_size": 2, "checkpoint_every": 2, "student_lr": 1e-4, "fake_lr": 1e-3,
                        "ema_decay": 0.9},
              "dmd": {"fake_updates": 2, "backward_sim": 0.0}}
    env = fsdp_env(str(ROOT / "configs" / "accelerate-fsdp.yaml"))
    ddp = run_ranks(config, root / "ddp", {})
    return {"teacher": teacher, "ddp": ddp, "root": root,
            "fsdp": run_ranks(config, root / "fsdp", env, cross_from=root / "ddp"),
            "fsdp everywhere": run_ranks(config, root / "fsdp2", {**env, "ZLAB_TEST_FSDP_EVERYWHERE": "1"},
                                         cross_from=root / "ddp")}


def test_a_sharded_dmd_run_trains_the_student_and_fake_score_the_ddp_run_does(runs):
    from diffusers import ZImagePipeline

    teacher = ZImagePipeline.from_pretrained(runs["teacher"]).transformer.state_dict()
    ddp = runs["ddp"]
    moved = {name: max((ddp[name][k] - teacher[k]).abs().max().item() for k in teacher) for name in ("straight", "heads")}
    assert min(moved.values()) > 1e-6  # the student and the fake score both trained
    for mode in ("fsdp", "fsdp everywhere"):
        for name in ("straight", "heads"):  # the student, then the critic (the fake score)
            got = runs[mode][name]
            assert set(got) == set(teacher)  # gathered into a stock, unsharded transformer
            apart = max((ddp[name][k] - got[k]).abs().max().item() for k in teacher)
            assert apart < 0.01 * moved[name], (mode, name, apart, moved[name])
        assert runs[mode]["callback"][-1] == (4, "ZImageTransformer2DModel", "ZImageTransformer2DModel")


def test_sharded_dmd_checkpoints_are_whole_and_resume_across_launches(runs):
    state = torch.load(runs["root"] / "fsdp2" / "straight" / "checkpoint.pt", weights_only=False)
    assert all(not hasattr(v, "placements") for v in state["fake_score"].values())  # whole tensors
    assert all(isinstance(k, str) for k in state["opt_fake"]["state"])  # the sharded fake's Adam, by name
    for mode in ("fsdp", "fsdp everywhere", "ddp"):
        for k, v in runs[mode]["straight"].items():  # halfway and resumed: the straight run's student
            torch.testing.assert_close(runs[mode]["resumed"][k], v, atol=0, rtol=0, msg=f"{mode} {k}")
    for mode in ("fsdp", "fsdp everywhere"):  # DDP's halfway checkpoint resumed under FSDP
        for k, v in runs["ddp"]["straight"].items():
            torch.testing.assert_close(runs[mode]["crossed"][k], v, atol=1e-5, rtol=1e-4, msg=f"{mode} {k}")
