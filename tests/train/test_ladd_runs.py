"""LADD runs end to end on a tiny random teacher: options, resume, scale, ranks, the CLI, non-finite losses."""

import copy
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from diffusers import ZImagePipeline
from ranks import two_ranks, write_config
from tiny_ladd import PROMPTS, ladd_config, stopped_and_resumed

from zlab.distill.student import load_discriminator
from zlab.measure.evaluate import count_nfe
from zlab.recipes.student import ship_student
from zlab.train.config import load_config, merge
from zlab.train.distill import train_student
from zlab.train.distill_config import DistillConfig
from zlab.train.synth import SynthData


def test_regression_student_learns_the_noise_to_sample_map(teacher_and_data):
    """adv_weight = 0, regression_weight = 1 (the baseline): the 1-step student moves toward the teacher's
    sample of each stored noise; the default config draws the same batches as before the option existed."""
    from zlab.flow import x0_from_velocity, zimage_velocity
    from zlab.train.ladd import draw_batch

    config = ladd_config(teacher_and_data, ladd={"adv_weight": 0.0, "regression_weight": 1.0, "warmup_steps": 0, "full_probs": (1.0, 0.0, 0.0, 0.0)}, train={"steps": 40, "student_lr": 1e-3})
    data = SynthData.load(teacher_and_data[1])
    index = torch.arange(len(data))
    noise, ones = data.initial_noise(index), torch.ones(len(data))
    embeds = [data.embeds[i] for i in data.prompt_index.tolist()]

    def error(model):
        with torch.no_grad():
            x0_hat = x0_from_velocity(noise, zimage_velocity(model, noise, ones, embeds), ones)
        return (x0_hat - data.latents).pow(2).mean().item()

    teacher = ZImagePipeline.from_pretrained(teacher_and_data[0]).transformer
    student, _, log = train_student(config, Path(teacher_and_data[1]).parent / "regression", progress=False)
    assert error(student) < 0.5 * error(teacher)
    batch = draw_batch(data, config, 0, torch.Generator().manual_seed(0))
    plain = draw_batch(data, ladd_config(teacher_and_data), 0, torch.Generator().manual_seed(0))
    assert torch.equal(batch.t_hat, plain.t_hat) and not torch.equal(batch.eps, plain.eps)
    with pytest.raises(ValueError, match="no loss"):
        load_config(DistillConfig, ladd={"adv_weight": 0.0})


def test_heads_options_train_and_change_the_heads_loss(teacher_and_data, tmp_path):
    """Approximate R1 only adds a non-negative term to the heads' loss; mismatched-caption negatives share the fake
    side (the formula is tested in tests/distill/test_ladd.py), so they change it, up or down; both train without skips."""
    logs = {}
    for name, extra in {"plain": {}, "r1": {"r1_weight": 10.0}, "both": {"r1_weight": 10.0, "mismatch_weight": 1.0}}.items():
        logs[name] = train_student(ladd_config(teacher_and_data, train={"steps": 2}, ladd=extra), tmp_path / name, progress=False)[2]
    assert logs["both"]["skipped"] == [] and logs["both"]["heads_skipped"] == []
    for name in ("r1", "both"):  # the same first batch and student step
        assert logs[name]["g_loss"][0] == pytest.approx(logs["plain"]["g_loss"][0])
    assert logs["r1"]["d_loss"][0] >= logs["plain"]["d_loss"][0]
    assert logs["both"]["d_loss"][0] != pytest.approx(logs["r1"]["d_loss"][0], abs=1e-6)
    whole = train_student(ladd_config(teacher_and_data, train={"steps": 2}, ladd={"head_whole": True}),
                          tmp_path / "whole", progress=False)
    assert whole[1].whole and whole[2]["heads_skipped"] == [] and whole[2]["d_loss"][0] != logs["plain"]["d_loss"][0]


def test_discriminative_pixel_features_train_heads_on_a_frozen_image_network(teacher_and_data, tmp_path):
    """ADD-style heads (features = "pixels"): ShapesNet's conv maps of clean decoded images, one head per conv
    layer with its own width; the student learns through the frozen VAE decoder and network."""
    from zlab.features import PixelFeatureTap
    from zlab.shapes.net import ShapesNet
    from zlab.train.models import pixel_tap

    ShapesNet(width=4, num_features=8).save(tmp_path / "net")
    config = ladd_config(teacher_and_data, ladd={"features": "pixels", "features_net": str(tmp_path / "net"), "blocks": (0, 2)}, train={"steps": 2})
    tap = pixel_tap(config, "cpu")
    assert isinstance(tap, PixelFeatureTap) and tap.channels == [4, 16] and not tap.noised
    x0 = torch.randn(2, 16, 8, 8, requires_grad=True)
    maps = tap(x0, torch.zeros(2), [])
    assert [m.shape for m in maps] == [(2, 4, 32, 32), (2, 16, 8, 8)]
    maps[1].sum().backward()
    assert x0.grad.abs().sum() > 0  # the fake path reaches the student through decoder and network
    student, disc, log = train_student(config, tmp_path / "run", progress=False)
    assert [h.conv_in.in_channels for h in disc.heads] == [4, 16] and log["skipped"] == []
    teacher = ZImagePipeline.from_pretrained(config.data.teacher).transformer
    assert any(not torch.equal(a, b) for a, b in zip(student.state_dict().values(), teacher.state_dict().values()))
    with pytest.raises(ValueError, match="conv layers 0..2"):
        pixel_tap(ladd_config(teacher_and_data, ladd={"features": "pixels", "features_net": str(tmp_path / "net"), "blocks": (3,)}), "cpu")
    with pytest.raises(ValueError, match="features must be one of"):
        ladd_config(teacher_and_data, ladd={"features": "dino"})


def test_train_resume_is_exact_and_ships_a_stock_student(teacher_and_data, tmp_path):
    config = ladd_config(teacher_and_data)
    straight, disc, log = train_student(config, tmp_path / "a", progress=False)
    assert len(log["d_loss"]) == 4 and all(len(a) == 2 for a in log["head_acc"])
    assert len(log["head_calls"]) == 4 and all(0 <= share <= 1 for step in log["head_calls"] for head in step for share in head)
    resumed, _, _ = stopped_and_resumed(config, tmp_path / "b")
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)
    teacher = ZImagePipeline.from_pretrained(config.data.teacher)
    assert any(not torch.equal(a, b) for a, b in zip(straight.state_dict().values(),
                                                      teacher.transformer.state_dict().values()))

    out = tmp_path / "student"
    ship_student(teacher, straight, disc, out, {"config": {}}, measure=False)
    stock = ZImagePipeline.from_pretrained(out)
    assert [count_nfe(stock, {"num_inference_steps": n, "guidance_scale": 0.0, "height": 64, "width": 64})
            for n in (1, 2, 4)] == [1, 2, 4]
    assert json.loads((out / "sampling.json").read_text())["guidance_scale"] == 0.0
    record = json.loads((out / "eval.json").read_text())
    assert record["schedule"] == {"1": [1.0], "2": [1.0, 0.5], "4": [1.0, 0.75, 0.5, 0.25]}
    heads = load_discriminator(out / "discriminator")
    for a, b in zip(heads.state_dict().values(), disc.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    stock.set_progress_bar_config(disable=True)
    image = stock(PROMPTS[0], num_inference_steps=1, guidance_scale=0.0, height=64, width=64, output_type="np").images
    assert image.shape == (1, 64, 64, 3)


def test_lora_ema_checkpointed_run_resumes_exactly_and_ships_merged(teacher_and_data, tmp_path):
    """The scale options together (LoRA sharing the teacher's weights, recomputation, EMA, fused Adam)."""
    kw = {"scale": {"lora_rank": 4, "gradient_checkpointing": True, "optimizer": "adam_fused"}, "train": {"ema_decay": 0.9},
          "ladd": {"backward_sim": 0.5}}
    straight, _, log = train_student(ladd_config(teacher_and_data, **kw), tmp_path / "a", progress=False)
    train_student(ladd_config(teacher_and_data, **merge(copy.deepcopy(kw), {"train": {"steps": 2}})), tmp_path / "b", progress=False)
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert state["student"] and all("lora_" in k for k in state["student"])  # the adapter only, not the base weights
    state["config"]["train"]["steps"] = 4
    torch.save(state, tmp_path / "b" / "checkpoint.pt")
    resumed, _, _ = train_student(ladd_config(teacher_and_data, **kw), tmp_path / "b", resume=True, progress=False)
    teacher = ZImagePipeline.from_pretrained(teacher_and_data[0]).transformer
    assert set(straight.state_dict()) == set(teacher.state_dict())  # merged: a stock transformer again
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)
    assert any(not torch.equal(a, b) for a, b in zip(straight.state_dict().values(), teacher.state_dict().values()))


def test_two_processes_keep_identical_students(teacher_and_data, tmp_path):
    config = ladd_config(teacher_and_data, train={"steps": 2, "checkpoint_every": 1})
    path = write_config(tmp_path / "ladd.toml", asdict(config))
    script = tmp_path / "rank_check.py"
    script.write_text(f"""
import sys, torch, torch.distributed as dist
from zlab.train.distill import train_student
from zlab.train.distill_config import DistillConfig
from zlab.train.config import load_config
student, _, _ = train_student(load_config(DistillConfig, {str(path)!r}), {str(tmp_path / 'run')!r}, progress=False)
flat = torch.cat([p.detach().flatten() for p in student.parameters()])
gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
dist.all_gather(gathered, flat)
if dist.get_rank() == 0:
    torch.save(torch.stack(gathered), {str(tmp_path / 'weights.pt')!r})
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from ranks import leave

leave()
""")
    two_ranks(script)
    weights = torch.load(tmp_path / "weights.pt")
    assert torch.equal(weights[0], weights[1])
    teacher = ZImagePipeline.from_pretrained(config.data.teacher).transformer
    before = torch.cat([p.detach().flatten() for p in teacher.parameters()])
    assert not torch.equal(weights[0], before)  # the ranks moved, together


def test_ladd_cli_writes_the_student_folder(teacher_and_data, tmp_path):
    config = ladd_config(teacher_and_data, train={"steps": 1})
    path = write_config(tmp_path / "ladd.toml", asdict(config))
    result = subprocess.run([sys.executable, "-m", "zlab.cli", "distill", "--config", str(path),
                             "--run", str(tmp_path / "run"), "--out", str(tmp_path / "student")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    pipe = ZImagePipeline.from_pretrained(tmp_path / "student")
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    for k, v in pipe.transformer.state_dict().items():
        torch.testing.assert_close(v, state["student"][k], atol=0, rtol=0, msg=k)
    assert json.loads((tmp_path / "student" / "sampling.json").read_text())["num_inference_steps"] == 4


def test_same_seed_same_student(teacher_and_data, tmp_path):
    config = ladd_config(teacher_and_data, train={"steps": 2})
    a, _, log_a = train_student(config, tmp_path / "a", progress=False)
    b, _, log_b = train_student(config, tmp_path / "b", progress=False)
    assert log_a["d_loss"] == log_b["d_loss"]
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_non_finite_losses_stop_the_run_and_keep_the_checkpoint(teacher_and_data, tmp_path, monkeypatch):
    import zlab.distill.ladd as method
    import zlab.train.distill as trainer

    config = ladd_config(teacher_and_data, train={"steps": 30, "checkpoint_every": 1})
    calls = {"n": 0}
    real_loss = method.generator_loss

    def flaky(fake, kind="hinge"):
        calls["n"] += 1
        loss = real_loss(fake, kind)
        return loss if calls["n"] <= 2 else loss * float("nan")

    monkeypatch.setattr(method, "generator_loss", flaky)
    with pytest.raises(FloatingPointError, match="non-finite"):
        train_student(config, tmp_path / "run", progress=False)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    # two good steps, then skipped steps (weights untouched) until the guard gives up
    assert state["log"]["skipped"] == list(range(2, 2 + trainer.MAX_BAD_STEPS - 1))
    assert all(torch.isfinite(v).all() for v in state["student"].values() if v.is_floating_point())


def test_a_non_finite_heads_loss_after_a_good_student_step_is_logged_as_what_happened(teacher_and_data, tmp_path,
                                                                                     monkeypatch):
    """The student (and its EMA) stepped, the heads did not: logged as heads_skipped, not as a skipped step."""
    import zlab.distill.ladd as method
    import zlab.train.ladd as trainer

    config = ladd_config(teacher_and_data, train={"steps": 3, "checkpoint_every": 1})
    calls = {"n": 0}
    real_loss = method.discriminator_loss

    def flaky(real, fake, kind="hinge"):
        calls["n"] += 1
        loss = real_loss(real, fake, kind)
        return loss * float("nan") if calls["n"] == 2 else loss

    monkeypatch.setattr(method, "discriminator_loss", flaky)
    train_student(config, tmp_path / "run", progress=False)
    log = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["log"]
    assert log["skipped"] == [] and log["heads_skipped"] == [1]

    # the same step, watched from outside: the student's weights move while the heads' stay
    steps = []
    real_step = trainer.ladd_step

    def watched(accelerator, student, disc, heads, *args, **kwargs):
        before = ([p.detach().clone() for p in student.parameters() if p.requires_grad],
                  [p.detach().clone() for p in heads.parameters()])
        result = real_step(accelerator, student, disc, heads, *args, **kwargs)
        after = ([p for p in student.parameters() if p.requires_grad], list(heads.parameters()))
        moved = [any(not torch.equal(a, b) for a, b in zip(x, y, strict=True)) for x, y in zip(before, after)]
        steps.append((result.student_ok, result.heads_ok, *moved))
        return result

    calls["n"] = 0
    monkeypatch.setattr(trainer, "ladd_step", watched)
    train_student(config, tmp_path / "run2", progress=False)
    assert steps[1] == (True, False, True, False) and steps[0] == (True, True, True, True)
