"""Real scale (issue 6): the memory model against measured peaks, the bench in smoke mode, the real configs."""

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from zlab.train.config import load_config
from zlab.train.distill_config import DistillConfig
from zlab.train.memory import make_step, measure, predict
from zlab.zimage import REAL_TRANSFORMER_CONFIG

BASE = load_config(DistillConfig, ladd={"blocks": (1, 3), "head_hidden": 16}, train={"batch_size": 4})


@pytest.mark.parametrize("options", [
    {},  # fp32 copy of the teacher, Adam, no recomputation
    {"mixed_precision": "bf16", "gradient_checkpointing": True},
    {"weights_dtype": "bfloat16", "lora_rank": 8, "gradient_checkpointing": True},  # [scale] settings
], ids=["full-fp32", "full-bf16-autocast-checkpointed", "lora-bf16-checkpointed"])
def test_memory_model_within_20_percent_of_the_measured_peak(tiny_pipe, options):
    import copy

    config = replace(BASE, scale=replace(BASE.scale, **options))
    teacher = copy.deepcopy(tiny_pipe.transformer)
    predicted = predict(config, teacher.config, 64, 64, cap_len=16)
    measured = measure(make_step(config, teacher, 64, 64, cap_len=16))
    assert 0.8 <= predicted.total / measured.total <= 1.2, (predicted.table(2**20, "MiB"), measured.table(2**20, "MiB"))
    if "activation" in measured.parts:  # the traced activations alone, against the profiler's own category
        assert predicted.parts["activations"] > 0


@pytest.mark.parametrize("options", [
    {},
    {"mixed_precision": "bf16", "gradient_checkpointing": True},
    {"weights_dtype": "bfloat16", "lora_rank": 8, "gradient_checkpointing": True},  # two adapters on one teacher
], ids=["dmd-full-fp32", "dmd-full-bf16-autocast-checkpointed", "dmd-lora-bf16-checkpointed"])
def test_memory_model_of_a_dmd_step_within_20_percent_of_the_measured_peak(tiny_pipe, options):
    import copy

    base = load_config(DistillConfig, method="dmd", train={"batch_size": 4}, dmd={"fake_updates": 2})
    config = replace(base, scale=replace(base.scale, **options))
    teacher = copy.deepcopy(tiny_pipe.transformer)
    predicted = predict(config, teacher.config, 64, 64, cap_len=16)
    measured = measure(make_step(config, teacher, 64, 64, cap_len=16))
    assert 0.8 <= predicted.total / measured.total <= 1.2, (predicted.table(2**20, "MiB"), measured.table(2**20, "MiB"))
    assert predicted.parts["student activations"] > 0 and predicted.parts["fake score activations"] > 0


def test_memory_model_of_the_real_dmd_config():
    """The real DMD recipe: teacher, student and fake score in one bf16 copy plus two adapters, on one GPU."""
    lora = predict(load_config(DistillConfig, "configs/zimage-dmd-lora.toml"), REAL_TRANSFORMER_CONFIG, 1024, 1024)
    full = predict(load_config(DistillConfig, "configs/zimage-dmd-lora.toml", **{"scale.lora_rank": 0}),
                   REAL_TRANSFORMER_CONFIG, 1024, 1024)
    assert lora.parts["fake score weights"] == lora.parts["student weights"] < 0.1 * lora.parts["teacher weights"]
    assert full.parts["fake score weights"] == full.parts["student weights"] == 2 * full.parts["teacher weights"]
    assert lora.total < 80e9 < full.total  # LoRA fits an 80 GB GPU; two full fp32 copies with Adam do not
    with pytest.raises(ValueError, match="one GPU"):
        predict(load_config(DistillConfig, "configs/zimage-dmd-lora.toml"), REAL_TRANSFORMER_CONFIG, 512, 512, shards=2)


def test_memory_model_of_the_real_configs():
    """6B parameters at 1024 px: a LoRA student fits in far less than full fine-tuning, which fits one H200."""
    lora = predict(load_config(DistillConfig, "configs/zimage-ladd-lora.toml"), REAL_TRANSFORMER_CONFIG, 1024, 1024)
    full = predict(load_config(DistillConfig, "configs/zimage-ladd-full.toml"), REAL_TRANSFORMER_CONFIG, 1024, 1024)
    params = lora.parts["teacher weights"] // 2
    assert 6.1e9 < params < 6.2e9  # the published 6.15B
    assert full.parts["optimizer state"] == 8 * params and full.parts["student weights"] == 4 * params
    assert lora.parts["student weights"] < 0.05 * full.parts["student weights"]  # the base is shared
    assert lora.total < 0.5 * full.total and full.total < 141e9
    no_ckpt = predict(load_config(DistillConfig, "configs/zimage-ladd-lora.toml", **{"scale.gradient_checkpointing": False}),
                      REAL_TRANSFORMER_CONFIG, 1024, 1024)
    assert no_ckpt.parts["activations"] > 5 * lora.parts["activations"]


def test_memory_model_of_a_sharded_full_fine_tuning():
    """FSDP over 8 GPUs: the student's states split 8 ways, the teacher stays whole, blocks are gathered one by one."""
    config = load_config(DistillConfig, "configs/zimage-ladd-full.toml")
    one = predict(config, REAL_TRANSFORMER_CONFIG, 1024, 1024)
    eight = predict(config, REAL_TRANSFORMER_CONFIG, 1024, 1024, shards=8)
    for part in ("student weights", "student gradients", "optimizer state", "EMA of the student"):
        assert abs(eight.parts[part] * 8 - one.parts[part]) <= 8 * 4, part
    assert eight.parts["teacher weights"] == one.parts["teacher weights"]
    assert eight.parts["activations"] == one.parts["activations"]
    block_bytes = eight.parts["gathered blocks (FSDP)"]
    assert 0 < block_bytes < 0.1 * one.parts["student weights"]  # ~2 of 30 blocks and "autocast weight copies" not in eight.parts
    assert eight.total < 0.35 * one.total
    with pytest.raises(ValueError, match=r"\[1, 65536\]"):
        predict(config, REAL_TRANSFORMER_CONFIG, 512, 512, shards=0)
    with pytest.raises(ValueError, match="lora_rank"):
        predict(load_config(DistillConfig, "configs/zimage-ladd-lora.toml"), REAL_TRANSFORMER_CONFIG, 512, 512, shards=2)


def _zlab(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "zlab.cli", *args], capture_output=True, text=True, timeout=timeout)


def test_bench_smoke_runs_the_same_code_on_cpu(tmp_path):
    out = tmp_path / "bench.json"
    run = _zlab("bench", "--smoke", "--out", str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(out.read_text())
    assert [r["size"] for r in results["forward"]] == [64, 128] and all(r["ms"] > 0 for r in results["forward"])
    assert results["student_4_steps_ms"] > 0
    rows = {r["config"]: r for r in results["train_step"]}
    assert set(rows) == {"zimage-ladd-lora.toml", "zimage-ladd-full.toml", "zimage-dmd-lora.toml"}
    for row in rows.values():
        assert row["ms"] > 0 and 0.8 <= row["predicted_bytes"] / row["peak_bytes"] <= 1.2
    assert "| training step |" in run.stdout


def test_memory_cli_and_bench_without_a_gpu_say_what_to_do():
    run = _zlab("memory", "--config", "configs/zimage-ladd-lora.toml", "--size", "512")
    assert run.returncode == 0 and "total (peak)" in run.stdout and "LoRA rank 64" in run.stdout
    import torch

    if not torch.cuda.is_available():
        run = _zlab("bench")
        assert run.returncode != 0 and "--smoke" in run.stderr


def test_synth_from_a_folder_without_sampling_json_names_the_fix(tmp_path, tiny_pipe):
    from zlab.train.synth import synthesize_from

    tiny_pipe.save_pretrained(tmp_path / "teacher")
    with pytest.raises(ValueError, match="--sampling"):
        synthesize_from(tmp_path / "teacher", tmp_path / "synth")


def test_one_switch_picks_the_gpu_shapes_world(monkeypatch, tmp_path, tiny_pipe):
    import torch

    from zlab.paths import config_path, output_path, profile
    from zlab.tiny import TINY_SIZES, build_transformer
    from zlab.train.teacher import TeacherConfig
    from zlab.train.vae import VAEConfig

    monkeypatch.setenv("ZLAB_PROFILE", "cpu")
    assert profile() == "cpu" and config_path("shapes-ladd.toml") == "configs/shapes-ladd.toml"
    assert output_path("checkpoints/shapes-teacher") == "checkpoints/shapes-teacher"
    monkeypatch.setenv("ZLAB_PROFILE", "gpu")
    assert config_path("shapes-teacher.toml") == "configs/gpu/shapes-teacher.toml"
    assert output_path("runs") == "runs/gpu" and output_path("runs/ladd") == "runs/gpu/ladd"
    assert output_path("checkpoints/shapes-student") == "runs/gpu/checkpoints/shapes-student"
    teacher = load_config(TeacherConfig, config_path("shapes-teacher.toml"))
    vae = load_config(VAEConfig, config_path("shapes-vae.toml"))
    ladd = load_config(DistillConfig, config_path("shapes-ladd.toml"))
    assert teacher.image_size == vae.image_size == 128 and teacher.mixed_precision == "bf16"
    assert ladd.data.teacher == output_path("checkpoints/shapes-teacher")
    arch = teacher.architecture()
    assert arch.dim > TINY_SIZES["tiny"].dim and arch.n_layers > TINY_SIZES["tiny"].n_layers
    assert max(ladd.ladd.blocks) < arch.n_layers
    model = build_transformer(arch)
    out = model([torch.randn(16, 1, 16, 16)], torch.tensor([0.5]), [torch.randn(7, arch.text_hidden)],
                return_dict=False)[0]
    assert out[0].shape == (16, 1, 16, 16)  # 128 px: 16x16 latents
    monkeypatch.setenv("ZLAB_PROFILE", "tpu")
    with pytest.raises(ValueError, match="cpu"):
        profile()


def test_multi_gpu_config_is_one_accelerate_reads():
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file("configs/accelerate-ddp.yaml")
    assert str(config.distributed_type).endswith("MULTI_GPU") and config.mixed_precision == "bf16"
    fsdp = load_config_from_file("configs/accelerate-fsdp.yaml")
    assert str(fsdp.distributed_type).endswith("FSDP") and fsdp.fsdp_config["fsdp_version"] == 2


def test_cuda_measure_subtracts_what_was_resident_before_the_step(monkeypatch):
    """Lab 09 measures with the whole pipeline still on the GPU: the step's peak is what lies above that baseline."""
    import torch

    from zlab.train import memory

    allocated = {"now": 19 * 2**30, "peak": 0}  # a bf16 pipeline resident (transformer + Qwen3)

    def step():
        allocated["peak"] = max(allocated["peak"], allocated["now"] + 5 * 2**30)  # the step's own 5 GiB

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda *a: allocated["now"])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: allocated["peak"])
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: allocated.update(peak=allocated["now"]))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
    baseline = memory.resident_bytes()
    measured = memory.measure(step, baseline=baseline)
    assert measured.total == 5 * 2**30
    assert "raw peak 24.00 GiB minus 19.00 GiB" in measured.table()
    assert memory.measure(step).total == 24 * 2**30  # without a baseline: the raw peak
