"""The LADD trainer end to end on a tiny random teacher: synth shards, resume, shipped student, two ranks."""

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

from zlab.distill.student import load_discriminator, student_pipeline
from zlab.measure.evaluate import count_nfe
from zlab.recipes.student import ship_student
from zlab.shapes import prompt_sets
from zlab.train.config import load_config, merge
from zlab.train.ladd import DistillConfig, train_ladd
from zlab.train.synth import SynthData, synthesize
from zlab.zimage import save_pipeline

PROMPTS = ["a large red circle at the top left", "a small blue square at the bottom right",
           "a large green triangle at the middle center"]
SAMPLING = {"num_inference_steps": 2, "guidance_scale": 1.0, "cfg_truncation": 1.0, "height": 64, "width": 64}


@pytest.fixture(scope="module")
def teacher_and_data(tmp_path_factory, tiny_pipe):
    root = tmp_path_factory.mktemp("ladd")
    teacher = save_pipeline(tiny_pipe, root / "teacher", sampling=SAMPLING)
    data = synthesize(tiny_pipe, root / "synth", SAMPLING, rounds=2, prompts=PROMPTS, batch_size=2, progress=False)
    return teacher, data


def _config(teacher_and_data, **sections):
    """A tiny LADD run on the tiny teacher's data; ``sections`` override it by section (``train={"steps": 2}``)."""
    teacher, data = teacher_and_data
    base = {"data": {"teacher": str(teacher), "folder": str(data)},
            "train": {"steps": 4, "batch_size": 3, "checkpoint_every": 2, "student_lr": 1e-4, "heads_lr": 1e-3},
            "ladd": {"blocks": (1, 3), "head_hidden": 8, "warmup_steps": 2}}
    return load_config(DistillConfig, **merge(base, sections))


def test_synth_shards_are_the_stock_pipeline_samples(teacher_and_data, tiny_pipe):
    _, data_dir = teacher_and_data
    data = SynthData.load(data_dir)
    assert data.latents.shape == (6, 16, 8, 8) and data.prompts == PROMPTS
    assert [len(e) for e in data.embeds] == [len(e) for e in tiny_pipe.encode_prompt(list(PROMPTS), do_classifier_free_guidance=False)[0]]  # a copy: diffusers templates the list in place
    i = 4  # a sample of the second round: redraw it with stock diffusers from its stored seed
    prompt, seed = data.prompts[data.prompt_index[i]], int(data.seeds[i])
    stock = tiny_pipe(prompt, generator=torch.Generator().manual_seed(seed), output_type="latent", **SAMPLING).images
    torch.testing.assert_close(data.latents[i], stock[0].float(), atol=1e-5, rtol=1e-5)
    assert len(set(data.seeds.tolist())) == 6


def test_rerun_skips_written_shards(teacher_and_data, tiny_pipe):
    _, data_dir = teacher_and_data
    before = (Path(data_dir) / "shard-00000.safetensors").stat().st_mtime_ns
    synthesize(tiny_pipe, data_dir, SAMPLING, rounds=2, prompts=PROMPTS, batch_size=2, progress=False)
    assert (Path(data_dir) / "shard-00000.safetensors").stat().st_mtime_ns == before


def test_a_rerun_with_other_prompts_or_teacher_regenerates_and_stale_shards_are_refused(tiny_pipe, tmp_path):
    import copy
    import warnings

    from zlab.train.synth import teacher_fingerprint

    out = synthesize(tiny_pipe, tmp_path / "synth", SAMPLING, rounds=1, prompts=PROMPTS[:2], progress=False)
    # other prompts: the shard is regenerated, so latents, prompts and embeddings agree again
    with pytest.warns(UserWarning, match="regenerating"):
        synthesize(tiny_pipe, out, SAMPLING, rounds=1, prompts=PROMPTS[1:], progress=False)
    data = SynthData.load(out)
    assert data.prompts == PROMPTS[1:]
    stock = tiny_pipe(PROMPTS[2], generator=torch.Generator().manual_seed(int(data.seeds[1])), output_type="latent",
                      **SAMPLING).images
    torch.testing.assert_close(data.latents[1], stock[0].float(), atol=1e-5, rtol=1e-5)  # latent and prompt agree
    # a retrained teacher: another fingerprint, the shard is regenerated from it
    other = copy.deepcopy(tiny_pipe)
    with torch.no_grad():
        next(other.transformer.parameters()).add_(0.1)
    assert teacher_fingerprint(other.transformer) != teacher_fingerprint(tiny_pipe.transformer)
    with pytest.warns(UserWarning, match="regenerating"):
        synthesize(other, out, SAMPLING, rounds=1, prompts=PROMPTS[1:], progress=False)
    assert json.loads((out / "synth.json").read_text())["teacher"] == teacher_fingerprint(other.transformer)
    # the same call again: nothing to do, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        synthesize(other, out, SAMPLING, rounds=1, prompts=PROMPTS[1:], progress=False)
    # a shard from another run copied in by hand: refused on load, with the fix
    synthesize(tiny_pipe, tmp_path / "other", SAMPLING, rounds=1, prompts=PROMPTS[1:], progress=False)
    (out / "shard-00000.safetensors").write_bytes((tmp_path / "other" / "shard-00000.safetensors").read_bytes())
    with pytest.raises(ValueError, match="does not belong.*zlab synth"):
        SynthData.load(out)


def test_renders_as_the_real_side_are_the_worlds_images_through_the_vae(tiny_pipe, tmp_path):
    """source = "renders": each prompt's render (open attributes drawn by its seed), VAE-encoded; its own key, so a
    teacher folder is never mistaken for it; regression distillation refuses it (a render has no starting noise)."""
    from zlab.shapes.draw import image_to_tensor
    from zlab.shapes.metrics import open_renders
    from zlab.zimage import encode_images

    out = synthesize(tiny_pipe, tmp_path / "renders", SAMPLING, rounds=1, prompts=PROMPTS[:2], progress=False,
                     source="renders")
    data = SynthData.load(out)
    expected = encode_images(tiny_pipe.vae, image_to_tensor(open_renders(PROMPTS[:2], data.seeds.tolist(), 64)))
    assert torch.allclose(data.latents, expected, atol=1e-5) and data.sampling["source"] == "renders"
    with pytest.warns(UserWarning, match="regenerating"):  # the teacher's samples are other data
        synthesize(tiny_pipe, out, SAMPLING, rounds=1, prompts=PROMPTS[:2], progress=False)
    with pytest.raises(ValueError, match="source must be one of"):
        synthesize(tiny_pipe, out, SAMPLING, rounds=1, prompts=PROMPTS[:2], progress=False, source="photos")
    with pytest.raises(ValueError, match="regression_weight needs the teacher's samples"):
        load_config(DistillConfig, ladd={"regression_weight": 1.0}, data={"real": "renders"})


def test_initial_noise_is_what_the_teacher_sampled_from(teacher_and_data, tiny_pipe):
    data = SynthData.load(teacher_and_data[1])
    index = torch.tensor([1, 4])
    noise = data.initial_noise(index)
    for k, i in enumerate(index.tolist()):
        again = tiny_pipe(data.prompts[data.prompt_index[i]], latents=noise[k:k + 1], output_type="latent",
                          **SAMPLING).images
        torch.testing.assert_close(again[0].float(), data.latents[i], atol=1e-5, rtol=1e-5)


def test_regression_student_learns_the_noise_to_sample_map(teacher_and_data):
    """adv_weight = 0, regression_weight = 1 (the baseline): the 1-step student moves toward the teacher's
    sample of each stored noise; the default config draws the same batches as before the option existed."""
    from zlab.flow import x0_from_velocity, zimage_velocity
    from zlab.train.ladd import draw_batch

    config = _config(teacher_and_data, ladd={"adv_weight": 0.0, "regression_weight": 1.0, "warmup_steps": 0, "full_probs": (1.0, 0.0, 0.0, 0.0)}, train={"steps": 40, "student_lr": 1e-3})
    data = SynthData.load(teacher_and_data[1])
    index = torch.arange(len(data))
    noise, ones = data.initial_noise(index), torch.ones(len(data))
    embeds = [data.embeds[i] for i in data.prompt_index.tolist()]

    def error(model):
        with torch.no_grad():
            x0_hat = x0_from_velocity(noise, zimage_velocity(model, noise, ones, embeds), ones)
        return (x0_hat - data.latents).pow(2).mean().item()

    teacher = ZImagePipeline.from_pretrained(teacher_and_data[0]).transformer
    student, _, log = train_ladd(config, Path(teacher_and_data[1]).parent / "regression", progress=False)
    assert error(student) < 0.5 * error(teacher)
    batch = draw_batch(data, config, 0, torch.Generator().manual_seed(0))
    plain = draw_batch(data, _config(teacher_and_data), 0, torch.Generator().manual_seed(0))
    assert torch.equal(batch.t_hat, plain.t_hat) and not torch.equal(batch.eps, plain.eps)
    with pytest.raises(ValueError, match="no loss"):
        load_config(DistillConfig, ladd={"adv_weight": 0.0})


def test_aspect_buckets_synthesise_and_train_one_bucket_per_batch(teacher_and_data, tiny_pipe, tmp_path):
    from zlab.train.ladd import draw_batch
    from zlab.train.synth import load_buckets, synthesize_buckets

    out = synthesize_buckets(tiny_pipe, tmp_path / "synth", SAMPLING, [(64, 64), (64, 96)], rounds=1, prompts=PROMPTS,
                             progress=False)
    buckets = load_buckets(out)
    assert [b.latents.shape[-2:] for b in buckets] == [(8, 8), (8, 12)]
    assert not set(buckets[0].seeds.tolist()) & set(buckets[1].seeds.tolist())  # no shared starting noise
    assert [b.sampling["width"] for b in buckets] == [64, 96]
    config = _config(teacher_and_data, data={"folder": str(out), "sizes": [[64, 64], [64, 96]]}, train={"steps": 2})
    generator = torch.Generator().manual_seed(0)
    widths = {draw_batch(buckets, config, 0, generator).x0.shape[-1] for _ in range(12)}
    assert widths == {8, 12}
    _, _, log = train_ladd(config, tmp_path / "run", progress=False)
    assert len(log["d_loss"]) == 2 and log["skipped"] == []
    assert len(load_buckets(teacher_and_data[1])) == 1  # a plain synth folder is one bucket
    with pytest.raises(ValueError, match="multiples of 16"):
        load_config(DistillConfig, data={"sizes": [[64, 70]]})


def test_heads_options_train_and_change_the_heads_loss(teacher_and_data, tmp_path):
    """Approximate R1 only adds a non-negative term to the heads' loss; mismatched-caption negatives share the fake
    side (the formula is tested in test_ladd_parts), so they change it, up or down; both train without skips."""
    logs = {}
    for name, extra in {"plain": {}, "r1": {"r1_weight": 10.0}, "both": {"r1_weight": 10.0, "mismatch_weight": 1.0}}.items():
        logs[name] = train_ladd(_config(teacher_and_data, train={"steps": 2}, ladd=extra), tmp_path / name, progress=False)[2]
    assert logs["both"]["skipped"] == [] and logs["both"]["heads_skipped"] == []
    for name in ("r1", "both"):  # the same first batch and student step
        assert logs[name]["g_loss"][0] == pytest.approx(logs["plain"]["g_loss"][0])
    assert logs["r1"]["d_loss"][0] >= logs["plain"]["d_loss"][0]
    assert logs["both"]["d_loss"][0] != pytest.approx(logs["r1"]["d_loss"][0], abs=1e-6)


def test_discriminative_pixel_features_train_heads_on_a_frozen_image_network(teacher_and_data, tmp_path):
    """ADD-style heads (features = "pixels"): ShapesNet's conv maps of clean decoded images, one head per conv
    layer with its own width; the student learns through the frozen VAE decoder and network."""
    from zlab.features import PixelFeatureTap
    from zlab.shapes.net import ShapesNet
    from zlab.train.models import pixel_tap

    ShapesNet(width=4, num_features=8).save(tmp_path / "net")
    config = _config(teacher_and_data, ladd={"features": "pixels", "features_net": str(tmp_path / "net"), "blocks": (0, 2)}, train={"steps": 2})
    tap = pixel_tap(config, "cpu")
    assert isinstance(tap, PixelFeatureTap) and tap.channels == [4, 16] and not tap.noised
    x0 = torch.randn(2, 16, 8, 8, requires_grad=True)
    maps = tap(x0, torch.zeros(2), [])
    assert [m.shape for m in maps] == [(2, 4, 32, 32), (2, 16, 8, 8)]
    maps[1].sum().backward()
    assert x0.grad.abs().sum() > 0  # the fake path reaches the student through decoder and network
    student, disc, log = train_ladd(config, tmp_path / "run", progress=False)
    assert [h.conv_in.in_channels for h in disc.heads] == [4, 16] and log["skipped"] == []
    teacher = ZImagePipeline.from_pretrained(config.data.teacher).transformer
    assert any(not torch.equal(a, b) for a, b in zip(student.state_dict().values(), teacher.state_dict().values()))
    with pytest.raises(ValueError, match="conv layers 0..2"):
        pixel_tap(_config(teacher_and_data, ladd={"features": "pixels", "features_net": str(tmp_path / "net"), "blocks": (3,)}), "cpu")
    with pytest.raises(ValueError, match="features must be one of"):
        _config(teacher_and_data, ladd={"features": "dino"})


def test_train_resume_is_exact_and_ships_a_stock_student(teacher_and_data, tmp_path):
    config = _config(teacher_and_data)
    straight, disc, log = train_ladd(config, tmp_path / "a", progress=False)
    assert len(log["d_loss"]) == 4 and all(len(a) == 2 for a in log["head_acc"])
    assert len(log["head_calls"]) == 4 and all(0 <= share <= 1 for step in log["head_calls"] for head in step for share in head)
    half = _config(teacher_and_data, train={"steps": 2})
    train_ladd(half, tmp_path / "b", progress=False)
    # continue the 2-step run to 4 steps: same config as `straight` except steps, so rewrite the stored config
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    state["config"]["train"]["steps"] = 4
    torch.save(state, tmp_path / "b" / "checkpoint.pt")
    resumed, _, _ = train_ladd(config, tmp_path / "b", resume=True, progress=False)
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
    straight, _, log = train_ladd(_config(teacher_and_data, **kw), tmp_path / "a", progress=False)
    train_ladd(_config(teacher_and_data, **merge(copy.deepcopy(kw), {"train": {"steps": 2}})), tmp_path / "b", progress=False)
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert state["student"] and all("lora_" in k for k in state["student"])  # the adapter only, not the base weights
    state["config"]["train"]["steps"] = 4
    torch.save(state, tmp_path / "b" / "checkpoint.pt")
    resumed, _, _ = train_ladd(_config(teacher_and_data, **kw), tmp_path / "b", resume=True, progress=False)
    teacher = ZImagePipeline.from_pretrained(teacher_and_data[0]).transformer
    assert set(straight.state_dict()) == set(teacher.state_dict())  # merged: a stock transformer again
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)
    assert any(not torch.equal(a, b) for a, b in zip(straight.state_dict().values(), teacher.state_dict().values()))


def test_make_student_runs_the_whole_recipe(teacher_and_data, tmp_path):
    from zlab.recipes.student import make_student

    config = _config(teacher_and_data, data={"folder": str(tmp_path / "synth"), "rounds": 1}, train={"steps": 2})
    make_student(config, tmp_path / "student", tmp_path / "run", progress=False, measure=False)
    record = json.loads((tmp_path / "student" / "eval.json").read_text())
    assert set(record["timings"]) == {"synth_s", "train_s"} and record["config"]["train"]["steps"] == 2
    assert len(SynthData.load(tmp_path / "synth")) == len(prompt_sets.prompts("train"))  # every train prompt, one round
    card = (tmp_path / "student" / "README.md").read_text()
    assert "shift = 1" in card and card.startswith("# shapes-student: a 1/2/4-step LADD student")
    assert "the adversarial loss (hinge, weight 1) alone" in card
    assert ZImagePipeline.from_pretrained(tmp_path / "student").scheduler.config.shift == 1.0
    teacher_size = json.loads((Path(config.data.teacher) / "sampling.json").read_text())["height"]
    assert json.loads((tmp_path / "student" / "sampling.json").read_text())["height"] == teacher_size
    assert 'from_pretrained("checkpoints/shapes-student")' in card and "trained_earlier_in" not in record
    # shipping a finished run again (the chosen run of a recipe search) trains nothing and says so on the card
    make_student(config, tmp_path / "again", tmp_path / "run", resume=True, progress=False, measure=False)
    again = json.loads((tmp_path / "again" / "eval.json").read_text())
    assert again["trained_earlier_in"] == str(tmp_path / "run")
    assert "which this run resumed: its time is not in this figure" in (tmp_path / "again" / "README.md").read_text()


def test_the_card_names_the_students_loss():
    from zlab.recipes.cards import objective, student_title

    regression = {"ladd": {"adv_weight": 0.0, "regression_weight": 1.0, "loss": "hinge"}}
    assert student_title(regression).startswith("shapes-regression: a 1/2/4-step regression-distilled student")
    assert objective(regression).startswith("regression alone: MSE of its x0_hat")
    both = {"ladd": {"adv_weight": 1.0, "regression_weight": 0.5, "loss": "hinge"}}
    assert "LADD + regression" in student_title(both) and "plus MSE" in objective(both) and "weight 0.5" in objective(both)


def test_a_student_ships_at_its_teachers_image_size(teacher_and_data, tmp_path):
    """The GPU profile's 128-px teacher gets a 128-px student sampling.json, not the CPU world's 64."""
    teacher = ZImagePipeline.from_pretrained(teacher_and_data[0])
    ship_student(teacher, teacher.transformer, None, tmp_path / "s", {"config": {}}, measure=False, image_size=128)
    sampling = json.loads((tmp_path / "s" / "sampling.json").read_text())
    assert sampling["height"] == sampling["width"] == 128


def test_make_student_refuses_several_processes(teacher_and_data, tmp_path, monkeypatch):
    from zlab.recipes.student import make_student

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="zlab.cli ladd"):
        make_student(_config(teacher_and_data), tmp_path / "student", tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_student_pipeline_schedule_is_the_trained_one(tiny_pipe):
    from zlab.distill.student import check_student_schedule

    pipe = student_pipeline(tiny_pipe, tiny_pipe.transformer)
    assert check_student_schedule(pipe, height=64, width=96) == {1: [1.0], 2: [1.0, 0.5], 4: [1.0, 0.75, 0.5, 0.25]}


def test_two_processes_keep_identical_students(teacher_and_data, tmp_path):
    config = _config(teacher_and_data, train={"steps": 2, "checkpoint_every": 1})
    path = write_config(tmp_path / "ladd.toml", asdict(config))
    script = tmp_path / "rank_check.py"
    script.write_text(f"""
import sys, torch, torch.distributed as dist
from zlab.train.ladd import DistillConfig, train_ladd
from zlab.train.config import load_config
student, _, _ = train_ladd(load_config(DistillConfig, {str(path)!r}), {str(tmp_path / 'run')!r}, progress=False)
flat = torch.cat([p.detach().flatten() for p in student.parameters()])
gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
dist.all_gather(gathered, flat)
if dist.get_rank() == 0:
    torch.save(torch.stack(gathered), {str(tmp_path / 'weights.pt')!r})
sys.path.insert(0, {str(Path(__file__).parent)!r})
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
    config = _config(teacher_and_data, train={"steps": 1})
    path = write_config(tmp_path / "ladd.toml", asdict(config))
    result = subprocess.run([sys.executable, "-m", "zlab.cli", "ladd", "--config", str(path),
                             "--run", str(tmp_path / "run"), "--out", str(tmp_path / "student")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    pipe = ZImagePipeline.from_pretrained(tmp_path / "student")
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    for k, v in pipe.transformer.state_dict().items():
        torch.testing.assert_close(v, state["student"][k], atol=0, rtol=0, msg=k)
    assert json.loads((tmp_path / "student" / "sampling.json").read_text())["num_inference_steps"] == 4


def test_same_seed_same_student(teacher_and_data, tmp_path):
    config = _config(teacher_and_data, train={"steps": 2})
    a, _, log_a = train_ladd(config, tmp_path / "a", progress=False)
    b, _, log_b = train_ladd(config, tmp_path / "b", progress=False)
    assert log_a["d_loss"] == log_b["d_loss"]
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_non_finite_losses_stop_the_run_and_keep_the_checkpoint(teacher_and_data, tmp_path, monkeypatch):
    import zlab.distill.ladd as method
    import zlab.train.ladd as trainer

    config = _config(teacher_and_data, train={"steps": 30, "checkpoint_every": 1})
    calls = {"n": 0}
    real_loss = method.generator_loss

    def flaky(fake, kind="hinge"):
        calls["n"] += 1
        loss = real_loss(fake, kind)
        return loss if calls["n"] <= 2 else loss * float("nan")

    monkeypatch.setattr(method, "generator_loss", flaky)
    with pytest.raises(FloatingPointError, match="non-finite"):
        train_ladd(config, tmp_path / "run", progress=False)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    # two good steps, then skipped steps (weights untouched) until the guard gives up
    assert state["log"]["skipped"] == list(range(2, 2 + trainer.MAX_BAD_STEPS - 1))
    assert all(torch.isfinite(v).all() for v in state["student"].values() if v.is_floating_point())


def test_a_non_finite_heads_loss_after_a_good_student_step_is_logged_as_what_happened(teacher_and_data, tmp_path,
                                                                                     monkeypatch):
    """The student (and its EMA) stepped, the heads did not: logged as heads_skipped, not as a skipped step."""
    import zlab.distill.ladd as method
    import zlab.train.ladd as trainer

    config = _config(teacher_and_data, train={"steps": 3, "checkpoint_every": 1})
    calls = {"n": 0}
    real_loss = method.discriminator_loss

    def flaky(real, fake, kind="hinge"):
        calls["n"] += 1
        loss = real_loss(real, fake, kind)
        return loss * float("nan") if calls["n"] == 2 else loss

    monkeypatch.setattr(method, "discriminator_loss", flaky)
    train_ladd(config, tmp_path / "run", progress=False)
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
    train_ladd(config, tmp_path / "run2", progress=False)
    assert steps[1] == (True, False, True, False) and steps[0] == (True, True, True, True)


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="loss must be one of"):
        load_config(DistillConfig, ladd={"loss": "wasserstein"})
    with pytest.raises(ValueError, match="student_lr"):
        load_config(DistillConfig, train={"student_lr": 5.0})
    with pytest.raises(ValueError, match="summing to 1"):
        load_config(DistillConfig, ladd={"full_probs": (0.5, 0.5, 0.5, 0.5)})
    with pytest.raises(ValueError, match="unknown config key"):
        load_config(DistillConfig, lr=1e-4)
    with pytest.raises(ValueError, match="is a section"):
        load_config(DistillConfig, train=3)
    assert load_config(DistillConfig, "configs/shapes-ladd.toml").ladd.blocks == (0, 1, 2, 3)


def test_set_overrides_are_toml_values():
    from zlab.train.config import parse_overrides

    over = parse_overrides(["ladd.adv_weight=0", "ladd.regression_weight=1.5", "ladd.loss=non-saturating",
                            'data.folder="runs/x"', "ladd.blocks=[2, 3]", "ship.stochastic_sampling=true"])
    assert over == {"ladd": {"adv_weight": 0, "regression_weight": 1.5, "loss": "non-saturating", "blocks": [2, 3]},
                    "data": {"folder": "runs/x"}, "ship": {"stochastic_sampling": True}}
    config = load_config(DistillConfig, "configs/shapes-ladd.toml", **over)
    assert config.ladd.adv_weight == 0.0 and config.ladd.blocks == (2, 3) and config.ladd.loss == "non-saturating"
    assert config.data.folder == "runs/x" and config.data.teacher == "checkpoints/shapes-teacher"  # the rest kept
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["train.steps"])
    with pytest.raises(ValueError, match="both 0"):
        load_config(DistillConfig, **parse_overrides(["ladd.adv_weight=0"]))
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['ladd.adv'\]"):
        load_config(DistillConfig, **parse_overrides(["ladd.adv=0"]))


def test_discriminator_view_sweeps_t_hat(teacher_and_data, tiny_pipe):
    from zlab.distill.heads import Discriminator
    from zlab.features import FeatureTap
    from zlab.measure.discriminator_view import feature_gap, sweep_t_hat, view_pair
    from zlab.zimage import encode_prompts

    embeds = encode_prompts(tiny_pipe, PROMPTS[:2])
    real, fake = torch.randn(2, 16, 8, 8), torch.randn(2, 16, 8, 8)
    tap = FeatureTap(tiny_pipe.transformer, (0, 3))
    disc = Discriminator((0, 3), tiny_pipe.transformer.config.dim, embeds[0].shape[-1], hidden=8)
    same = view_pair(tap, real, real.clone(), embeds, 0.5)
    assert feature_gap(same) == [0.0, 0.0]
    torch.testing.assert_close(same.real_noisy, same.fake_noisy)
    out = sweep_t_hat(tap, real, fake, embeds, [0.1, 0.5, 0.9], disc=disc)
    assert out["gap"].shape == (3, 2) and out["real"].shape == (3, 2) and out["fake"].shape == (3, 2)
    assert out["gap"][0].mean() > out["gap"][-1].mean()  # noise hides the difference as t_hat -> 1


def test_comparison_rows_and_speedups(tiny_pipe):
    from zlab.measure.evaluate import count_nfe
    from zlab.recipes.compare import comparison, speedup

    sampling = {**SAMPLING, "num_inference_steps": 3}
    student = student_pipeline(tiny_pipe, tiny_pipe.transformer)
    student.set_progress_bar_config(disable=True)
    tiny_pipe.set_progress_bar_config(disable=True)
    names = lambda pipe, settings, net, seeds: [{"setting": n, "nfe": count_nfe(pipe, kw), "ms_per_image": 1.0}
                                                for n, kw in settings.items()]
    rows = comparison(tiny_pipe, sampling, student, None, evaluate=names, latency_prompts=2)
    by = {r["setting"]: r for r in rows}
    assert by["teacher 50 steps + CFG (sampling.json)"]["nfe"] == 6  # 3 guided steps
    assert [by[f"teacher {n} step{'s' * (n > 1)} + CFG"]["nfe"] for n in (1, 2, 4)] == [2, 4, 8]
    assert [by[f"student {n} step{'s' * (n > 1)}"]["nfe"] for n in (1, 2, 4)] == [1, 2, 4]
    assert len(rows) == 13 and all(r["latency_ms"] > 0 for r in rows)
    assert speedup(rows) == by["teacher 50 steps + CFG (sampling.json)"]["latency_ms"] / by["student 4 steps"]["latency_ms"]
    assert speedup(rows, key="ms_per_image") == 1.0


def test_the_student_card_reports_open_test_prompts(teacher_and_data, tmp_path):
    from zlab.recipes.cards import open_section
    from zlab.recipes.student import open_test_rows
    from zlab.shapes.net import ShapesNet

    teacher = ZImagePipeline.from_pretrained(teacher_and_data[0])
    student = student_pipeline(teacher, teacher.transformer)
    rows = open_test_rows(teacher, SAMPLING, student, {**SAMPLING, "guidance_scale": 0.0}, ShapesNet(), plan=(1, 2))
    assert {r["setting"] for r in rows} == {"teacher 50 steps + CFG (sampling.json)", "student 1 step", "student 2 steps",
                                            "student 4 steps"}
    assert all(0 <= r["valid"] <= 1 and r["fd_teacher"] >= 0 for r in rows if "fd_teacher" in r)
    assert "| student 4 steps |" in open_section(rows) and "never used to choose" in open_section(rows)
