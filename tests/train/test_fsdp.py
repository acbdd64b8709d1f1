"""LADD with the student sharded by FSDP2 (configs/accelerate-fsdp.yaml) on two CPU ranks, against DDP."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from accelerate.utils import DistributedType
from ranks import fsdp_env, run_ranks, two_ranks

from zlab.train.config import load_config
from zlab.train.distill_config import DistillConfig
from zlab.train.sharding import uses_fsdp

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, teacher_and_data):
    root = tmp_path_factory.mktemp("fsdp")
    teacher, data = teacher_and_data
    config = {"data": {"teacher": str(teacher), "folder": str(data)},
              "train": {"steps": 4, "batch_size": 2, "checkpoint_every": 2, "student_lr": 1e-4, "heads_lr": 1e-3,
                        "ema_decay": 0.9},
              "ladd": {"blocks": [1, 3], "head_hidden": 8, "warmup_steps": 2, "backward_sim": 0.5}}
    env = fsdp_env(str(ROOT / "configs" / "accelerate-fsdp.yaml"))
    # accelerate's state may or may not keep saying FSDP after the first prepare (see ranks.on_cpu): both
    # Each run also resumes a half-way checkpoint of the other launch: DDP's under FSDP, FSDP's under DDP.
    ddp = run_ranks(config, root / "ddp", {})
    fsdp = run_ranks(config, root / "fsdp", env, cross_from=root / "ddp")
    return {"teacher": teacher, "ddp": ddp, "fsdp": fsdp, "fsdp_dir": root / "fsdp",
            "fsdp everywhere": run_ranks(config, root / "fsdp2", {**env, "ZLAB_TEST_FSDP_EVERYWHERE": "1"},
                                         cross_from=root / "ddp"),
            "ddp from fsdp": run_ranks(config, root / "ddp2", {}, cross_from=root / "fsdp")}


def test_the_fsdp_config_shards_every_transformer_block():
    env = fsdp_env(str(ROOT / "configs" / "accelerate-fsdp.yaml"))
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"
    assert env["FSDP_TRANSFORMER_CLS_TO_WRAP"] == "ZImageTransformerBlock"


def test_fsdp_student_is_the_ddp_student(runs):
    """Same seeds, same batches: sharding changes where the numbers live, not the training."""
    from diffusers import ZImagePipeline

    teacher = ZImagePipeline.from_pretrained(runs["teacher"]).transformer.state_dict()
    ddp = runs["ddp"]["straight"]
    moved = max((ddp[k] - teacher[k]).abs().max().item() for k in teacher)
    assert moved > 1e-5
    for mode in ("fsdp", "fsdp everywhere"):
        fsdp = runs[mode]["straight"]
        assert set(fsdp) == set(teacher)  # gathered into a stock, unsharded transformer
        apart = max((ddp[k] - fsdp[k]).abs().max().item() for k in teacher)
        print(f"{mode}: largest weight change {moved:.3g}; largest DDP-FSDP difference {apart:.3g}")
        assert apart < 0.01 * moved
        assert runs[mode]["log"]["d_loss"] == pytest.approx(runs["ddp"]["log"]["d_loss"], rel=1e-4)
        # the lab's training callback gets whole modules on the main rank, before the first step and after the last
        assert runs[mode]["callback"] == [(0, "ZImageTransformer2DModel", "Discriminator"),
                                          (4, "ZImageTransformer2DModel", "Discriminator")]
        for k, v in runs["ddp"]["heads"].items():
            torch.testing.assert_close(runs[mode]["heads"][k], v, atol=1e-5, rtol=1e-4)


def test_the_gathered_student_ships_as_a_stock_pipeline(runs):
    from diffusers import ZImagePipeline

    folder = runs["fsdp_dir"] / "student"
    pipe = ZImagePipeline.from_pretrained(folder)
    assert pipe.scheduler.config.shift == 1.0 and not pipe.scheduler.config.use_dynamic_shifting
    for k, v in pipe.transformer.state_dict().items():
        torch.testing.assert_close(v, runs["fsdp"]["straight"][k], atol=0, rtol=0, msg=k)
    sampling = json.loads((folder / "sampling.json").read_text())
    assert sampling == {"num_inference_steps": 4, "guidance_scale": 0.0, "height": 64, "width": 64}
    assert (folder / "discriminator").is_dir()


def test_fsdp_checkpoints_are_full_and_resume(runs):
    state = torch.load(runs["fsdp_dir"] / "straight" / "checkpoint.pt", weights_only=False)
    assert all(not hasattr(v, "placements") for v in state["student"].values())  # whole tensors, not shards
    assert all(isinstance(k, str) for k in state["opt_student"]["state"])  # Adam's full state, by parameter name
    shapes = {k: v.shape for k, v in state["student"].items()}
    assert all(shapes[k] == v["exp_avg"].shape for k, v in state["opt_student"]["state"].items())
    assert [p.shape for p in state["ema"]["shadow_params"]] == list(shapes.values())
    for mode in ("fsdp", "fsdp everywhere", "ddp"):  # stopped halfway and resumed: the straight run's student
        straight, resumed = runs[mode]["straight"], runs[mode]["resumed"]
        for k, v in straight.items():
            torch.testing.assert_close(resumed[k], v, atol=0, rtol=0, msg=f"{mode} {k}")
    # across launches (Adam's state is keyed by parameter name in every checkpoint)
    for mode in ("fsdp", "fsdp everywhere", "ddp from fsdp"):
        for k, v in runs["ddp"]["straight"].items():
            torch.testing.assert_close(runs[mode]["crossed"][k], v, atol=0, rtol=0, msg=f"{mode} {k}")


def test_unsupported_fsdp_setups_name_the_fix():
    fsdp1 = SimpleNamespace(distributed_type=DistributedType.FSDP, is_fsdp2=False)
    with pytest.raises(ValueError, match="fsdp_version: 2"):
        uses_fsdp(fsdp1, DistillConfig())
    fsdp2 = SimpleNamespace(distributed_type=DistributedType.FSDP, is_fsdp2=True)
    with pytest.raises(ValueError, match="accelerate-ddp.yaml"):
        uses_fsdp(fsdp2, load_config(DistillConfig, scale={"lora_rank": 8}))
    assert uses_fsdp(fsdp2, DistillConfig()) is True
    assert uses_fsdp(SimpleNamespace(distributed_type=DistributedType.MULTI_GPU), load_config(DistillConfig, scale={"lora_rank": 8})) is False


def test_memory_model_of_a_sharded_step_within_20_percent_of_each_rank(tmp_path):
    """``predict(..., shards=2)`` against the peak each of two FSDP ranks measures (CPU profiler events)."""
    env = fsdp_env(str(ROOT / "configs" / "accelerate-fsdp.yaml"))
    two_ranks(ROOT / "tests" / "fsdp_memory_ranks.py", tmp_path / "memory.json", env=env)
    written = json.loads((tmp_path / "memory.json").read_text())
    assert written["time_dtypes"] == ["torch.float32"]  # bf16 gathers, but the student's time is not rounded
    results = written["memory"]
    assert len(results) == 3
    for name, ranks in results.items():
        for rank, (predicted, measured, unsharded) in enumerate(ranks):
            print(f"| {name} | rank {rank} | {predicted / 2**20:.2f} | {measured / 2**20:.2f} | "
                  f"{predicted / measured:.2f} | {unsharded / 2**20:.2f} |")
            assert 0.8 <= predicted / measured <= 1.2, (name, predicted / 2**20, measured / 2**20)
            assert measured < 0.9 * unsharded  # the shards are real: the step holds less than one process would
