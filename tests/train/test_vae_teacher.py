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


def test_compiled_blocks_train_the_same_function_and_return_an_eager_pipeline(vae_run, tmp_path):
    eager = train_teacher(TeacherConfig(**{**TEACHER, "steps": 2}), vae_run[0] / "vae", tmp_path / "a", progress=False)
    compiled = train_teacher(TeacherConfig(**{**TEACHER, "steps": 2, "compile_blocks": True}), vae_run[0] / "vae",
                             tmp_path / "b", progress=False)
    losses = [load_checkpoint(tmp_path / run)["losses"] for run in ("a", "b")]
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)  # same batches, same loss: compilation changes no maths
    assert all(block._compiled_call_impl is None for block in compiled.transformer.layers)  # sampling runs eager
    for (name, p), (_, q) in zip(eager.transformer.named_parameters(), compiled.transformer.named_parameters()):
        assert torch.allclose(p, q, atol=1e-3), name


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
    configs = Path(__file__).resolve().parents[2] / "configs"
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


def test_teacher_trains_on_open_captions_in_aspect_buckets(vae_run, tmp_path):
    config = TeacherConfig(**{**TEACHER, "steps": 2, "num_latents": 96, "open_prob": 0.3,
                              "image_sizes": [[64, 64], [64, 96], [96, 64]]})
    pipe = train_teacher(config, vae_run[0] / "vae", tmp_path, progress=False)
    out = pipe("a red shape in the top row", height=64, width=96, num_inference_steps=2, output_type="np").images
    assert out.shape == (1, 64, 96, 3)
    assert config.training_shift((64, 96)) > config.training_shift((64, 64))  # more tokens, more shift
    with pytest.raises(ValueError, match="multiples of 16"):
        TeacherConfig(image_sizes=[[64, 70]]).validate()


def test_teacher_captions_are_train_prompts_and_leave_the_image_uniform():
    """Given a caption, every spec that agrees with it is equally likely, and no other set's caption is used."""
    from zlab.shapes.open_captions import parse_open_caption
    from zlab.shapes.prompt_sets import prompts
    from zlab.shapes.world import enumerate_specs
    from zlab.train.teacher import caption_table

    captions = prompts("train")
    ids, weights = caption_table(0.3, {c: i for i, c in enumerate(captions)})
    specs = enumerate_specs("train")
    used = set()
    for caption_id in ids[weights > 0].unique().tolist():
        w = weights[ids == caption_id]
        assert torch.allclose(w, w[0].expand_as(w))  # uniform over the specs that reach it
        reached = {specs[s] for s in (ids == caption_id).nonzero()[:, 0].tolist()}
        assert reached == set(parse_open_caption(captions[caption_id]).allowed("train"))
        used.add(captions[caption_id])
    assert used == set(captions)
    assert (weights[ids < 0] == 0).all()  # validation and test captions get no weight


def test_training_captions_are_the_train_prompts_then_the_empty_caption():
    from zlab.shapes.prompt_sets import prompts
    from zlab.shapes.world import enumerate_captions
    from zlab.train.teacher import training_captions

    assert training_captions(TeacherConfig(open_prob=0.15)) == prompts("train") + [""]
    assert training_captions(TeacherConfig(open_prob=0.0)) == enumerate_captions("train") + [""]


def test_the_dataset_leaves_attributes_open():
    from zlab.shapes.dataset import ShapesDataset

    data = ShapesDataset("train", (64, 96), length=64, seed=3, open_prob=0.5)
    items = [data[i] for i in range(64)]
    assert items[0]["image"].shape == (3, 64, 96)
    assert any(None in item["attributes"].values() for item in items)
    for i, item in enumerate(items):
        named = {k: v for k, v in item["attributes"].items() if v is not None}
        spec, _ = data.draw(i)
        assert all(getattr(spec, k) == v for k, v in named.items())
    assert ShapesDataset("train", 64, length=4, seed=3)[0]["caption"] == data.spec(0).caption
    with pytest.raises(ValueError, match=r"open_prob must be in \[0, 1\]"):
        ShapesDataset(open_prob=1.5)
