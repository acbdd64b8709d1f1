"""The teacher's synthetic data: stock-pipeline samples in shards, fingerprinted, resumable; renders; buckets."""

import json
from pathlib import Path

import pytest
import torch
from tiny_ladd import PROMPTS, SAMPLING, ladd_config

from zlab.train.config import load_config
from zlab.train.distill import train_student
from zlab.train.distill_config import DistillConfig
from zlab.train.synth import SynthData, synthesize


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


def test_aspect_buckets_synthesise_and_train_one_bucket_per_batch(teacher_and_data, tiny_pipe, tmp_path):
    from zlab.train.ladd import draw_batch
    from zlab.train.synth import load_buckets, synthesize_buckets

    out = synthesize_buckets(tiny_pipe, tmp_path / "synth", SAMPLING, [(64, 64), (64, 96)], rounds=1, prompts=PROMPTS,
                             progress=False)
    buckets = load_buckets(out)
    assert [b.latents.shape[-2:] for b in buckets] == [(8, 8), (8, 12)]
    assert not set(buckets[0].seeds.tolist()) & set(buckets[1].seeds.tolist())  # no shared starting noise
    assert [b.sampling["width"] for b in buckets] == [64, 96]
    config = ladd_config(teacher_and_data, data={"folder": str(out), "sizes": [[64, 64], [64, 96]]}, train={"steps": 2})
    generator = torch.Generator().manual_seed(0)
    widths = {draw_batch(buckets, config, 0, generator).x0.shape[-1] for _ in range(12)}
    assert widths == {8, 12}
    _, _, log = train_student(config, tmp_path / "run", progress=False)
    assert len(log["d_loss"]) == 2 and log["skipped"] == []
    assert len(load_buckets(teacher_and_data[1])) == 1  # a plain synth folder is one bucket
    with pytest.raises(ValueError, match="multiples of 16"):
        load_config(DistillConfig, data={"sizes": [[64, 70]]})


def test_samples_the_checker_rejects_are_dropped_and_counted():
    """Renders encoded by the shipped teacher's VAE: accepted under their own prompts, rejected under each other's."""
    from diffusers import AutoencoderKL

    from zlab.paths import repo_root
    from zlab.shapes.draw import image_to_tensor
    from zlab.shapes.metrics import open_renders
    from zlab.train.synth import SynthData, drop_rejected
    from zlab.zimage import encode_images

    vae = AutoencoderKL.from_pretrained(repo_root() / "checkpoints" / "shapes-teacher", subfolder="vae")
    prompts = ["a large red circle at the top left", "a small blue square at the bottom right"]
    with torch.no_grad():
        latents = encode_images(vae, image_to_tensor(open_renders(prompts, [0, 1], (64, 64)))).float()
    own = SynthData(latents, torch.tensor([0, 1]), torch.tensor([0, 1]), prompts, [torch.zeros(1, 4)] * 2, {})
    swapped = SynthData(latents, torch.tensor([1, 0]), torch.tensor([0, 1]), prompts, [torch.zeros(1, 4)] * 2, {})
    half = SynthData(latents, torch.tensor([0, 0]), torch.tensor([0, 1]), prompts, [torch.zeros(1, 4)] * 2, {})
    kept, counts = drop_rejected([own, half], vae)  # the blue square under the red circle's caption is rejected
    assert counts == {"kept": 3, "rejected": 1} and [len(k) for k in kept] == [2, 1]
    assert kept[1].prompt_index.tolist() == [0] and kept[1].seeds.tolist() == [0]
    with pytest.raises(ValueError, match="rejects every sample of a bucket"):
        drop_rejected([own, swapped], vae)
