"""Training smoke tests on the micro size: files written, resume is exact, bad configs are named."""

from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, ZImagePipeline

from zlab.train.config import load_config
from zlab.train.loop import load_checkpoint
from zlab.train.teacher import TeacherConfig, train_teacher
from zlab.train.vae import VAEConfig, train_vae
from zlab.zimage import save_pipeline

VAE = dict(size="micro", steps=4, batch_size=4, checkpoint_every=2, stats_images=64, warmup=2)
TEACHER = dict(size="micro", steps=4, batch_size=8, num_latents=64, checkpoint_every=2, warmup=2)


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("vae")
    vae = train_vae(VAEConfig(**VAE), run, progress=False)
    return run, vae


def test_vae_run_writes_folder_and_latent_stats(vae_run):
    run, vae = vae_run
    loaded = AutoencoderKL.from_pretrained(run / "vae")
    assert loaded.config.shift_factor == pytest.approx(vae.config.shift_factor)
    assert loaded.config.scaling_factor != 1.0  # measured on data, not the default
    assert load_checkpoint(run)["step"] == 4


def test_teacher_resume_is_exact(vae_run, tmp_path):
    vae_dir = vae_run[0] / "vae"
    straight = train_teacher(TeacherConfig(**TEACHER), vae_dir, tmp_path / "a", progress=False)
    train_teacher(TeacherConfig(**{**TEACHER, "steps": 2}), vae_dir, tmp_path / "b", progress=False)
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    state["config"] = TeacherConfig(**TEACHER).__dict__  # continue the same run to 4 steps
    torch.save(state, tmp_path / "b" / "checkpoint.pt")
    resumed = train_teacher(TeacherConfig(**TEACHER), vae_dir, tmp_path / "b", resume=True, progress=False)
    for (name, p), (_, q) in zip(straight.transformer.named_parameters(), resumed.transformer.named_parameters()):
        assert torch.equal(p, q), name
    # the result is a stock pipeline folder
    path = save_pipeline(straight, tmp_path / "pipe", sampling={"num_inference_steps": 2})
    out = ZImagePipeline.from_pretrained(path)("a small red circle at the top left", num_inference_steps=2,
                                               height=64, width=64, output_type="np").images
    assert out.shape == (1, 64, 64, 3)


def test_resume_refuses_a_different_config(vae_run, tmp_path):
    train_teacher(TeacherConfig(**{**TEACHER, "steps": 2}), vae_run[0] / "vae", tmp_path, progress=False)
    with pytest.raises(ValueError, match="different config"):
        train_teacher(TeacherConfig(**{**TEACHER, "lr": 5e-4}), vae_run[0] / "vae", tmp_path, resume=True,
                      progress=False)


def test_config_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('steps = 10\nlearning_rate = 0.1\n')
    with pytest.raises(ValueError, match="unknown config key.*learning_rate"):
        load_config(TeacherConfig, bad)
    bad.write_text('caption_dropout = 1.5\n')
    with pytest.raises(ValueError, match=r"caption_dropout must be in \[0.0, 1.0\]"):
        load_config(TeacherConfig, bad)
    bad.write_text('steps = "many"\n')
    with pytest.raises(ValueError, match="steps.*must be int"):
        load_config(TeacherConfig, bad)
    with pytest.raises(ValueError, match="image_size must be a multiple of 16"):
        load_config(VAEConfig, None, image_size=70)
    with pytest.raises(FileNotFoundError):
        load_config(VAEConfig, tmp_path / "missing.toml")


def test_shipped_configs_load():
    configs = Path(__file__).resolve().parents[1] / "configs"
    assert load_config(VAEConfig, configs / "shapes-vae.toml").steps > 0
    assert load_config(TeacherConfig, configs / "shapes-teacher.toml").steps > 0


@pytest.mark.parametrize("resolution_shift", [True, False])
def test_training_shift_is_the_sampling_shift(resolution_shift):
    from zlab.flow import time_shift
    from zlab.tiny import build_scheduler
    from zlab.zimage import schedule

    config = TeacherConfig(resolution_shift=resolution_shift, shift=3.0, image_size=64)
    ts = schedule(build_scheduler(config.architecture()), 4, 64, 64)
    base = torch.linspace(1.0, 0.25, 4)
    assert torch.allclose(ts[:-1], time_shift(base, config.training_shift()), atol=1e-6)
    assert config.training_shift() == (pytest.approx(1.583, abs=1e-3) if resolution_shift else 3.0)


def test_runs_of_different_precision_share_one_process():
    """make-teacher trains the VAE in fp32 and then the teacher in bf16 in one process."""
    from zlab.train.loop import make_accelerator

    assert make_accelerator("no").mixed_precision == "no"
    assert make_accelerator("bf16").mixed_precision == "bf16"
