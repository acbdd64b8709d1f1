"""``zlab judge`` (zlab.measure.judge): real-image scoring on tiny random judges and the tiny pipelines."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from zlab.measure import judge as judge_module
from zlab.measure.judge import Entry, image_path, judge, parse_entry, parse_size, read_prompts, score
from zlab.measure.judge_models import load_judges, prompt_clip_score
from zlab.tiny_judges import save_tiny_clip, save_tiny_dinov2
from zlab.zimage import save_pipeline

SAMPLING = {"num_inference_steps": 2, "guidance_scale": 0.0, "height": 32, "width": 32, "max_sequence_length": 32}


@pytest.fixture(scope="module")
def judges_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("judges")
    return save_tiny_clip(root / "clip"), save_tiny_dinov2(root / "dinov2")


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory, tiny_pipe):
    return save_pipeline(tiny_pipe, tmp_path_factory.mktemp("pipe") / "tiny", sampling=SAMPLING)


def test_entries_parse_settings_and_refuse_bad_ones():
    e = parse_entry("turbo=Tongyi-MAI/Z-Image-Turbo@steps=8,guidance=0")
    assert e == Entry("turbo", "Tongyi-MAI/Z-Image-Turbo", {"num_inference_steps": 8, "guidance_scale": 0.0})
    assert parse_entry("s=runs/x").setting == {}
    for bad, words in [("runs/x", "NAME=PATH"), ("a b=x", "letters"), ("s=x@seed=3", "unknown setting"),
                       ("s=x@shift=0", "shift must be positive"),
                       ("s=x@steps=two", "must be a number"), ("s=x@steps=0", "at least 1")]:
        with pytest.raises(ValueError, match=words):
            parse_entry(bad)
    assert parse_size("1024x768") == (1024, 768)
    for bad in ("1024", "1000x1000", "axb"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_a_folder_setting_reads_its_sampling_json_and_the_entry_overrides_it(pipeline_dir):
    kwargs = parse_entry(f"s={pipeline_dir}@steps=1").call_kwargs()
    assert kwargs == {**SAMPLING, "num_inference_steps": 1}


def test_a_shift_setting_moves_the_schedulers_times_not_the_call(pipeline_dir):
    entry = parse_entry(f"s={pipeline_dir}@steps=4,shift=3")
    assert "shift" not in entry.call_kwargs() and entry.scheduler_setting() == {"shift": 3.0}
    scheduler = entry.load().scheduler
    assert scheduler.config.shift == 3.0 and not scheduler.config.use_dynamic_shifting
    scheduler.set_timesteps(sigmas=[1.0, 0.5])
    assert scheduler.sigmas[1].item() == pytest.approx(3 * 0.5 / (1 + 2 * 0.5))


def test_prompt_files_of_every_accepted_kind_are_read(tmp_path):
    (tmp_path / "a.txt").write_text("# comment\na cat\n\n  a dog  \n")
    (tmp_path / "parti.tsv").write_text("Prompt\tCategory\na cat\tAnimals\na dog\tAnimals\n")
    (tmp_path / "drawbench.csv").write_text("Prompts,Category\na cat,Colors\n\"a dog, running\",Colors\n")
    (tmp_path / "geneval.jsonl").write_text('{"tag": "x", "prompt": "a cat"}\n{"prompt": "a dog"}\n')
    (tmp_path / "list.json").write_text('["a cat", "a dog"]')
    assert read_prompts(tmp_path / "a.txt") == ["a cat", "a dog"]
    assert read_prompts(tmp_path / "parti.tsv") == ["a cat", "a dog"]
    assert read_prompts(tmp_path / "drawbench.csv") == ["a cat", "a dog, running"]
    assert read_prompts(tmp_path / "geneval.jsonl", limit=1) == ["a cat"]
    assert read_prompts(tmp_path / "list.json") == ["a cat", "a dog"]
    (tmp_path / "bad.csv").write_text("caption\na cat\n")
    with pytest.raises(ValueError, match="'prompt'"):
        read_prompts(tmp_path / "bad.csv")
    with pytest.raises(FileNotFoundError):
        read_prompts(tmp_path / "missing.txt")


def test_the_clip_score_is_100_cos_of_clips_own_embeddings_clamped_at_zero(judges_dir):
    judges = load_judges(str(judges_dir[0]))
    model, processor = judges.clip
    images = torch.randint(0, 255, (3, 3, 40, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))

    def mean_cos(prompt):
        with torch.no_grad():
            e_img = model.get_image_features(processor(images=list(images), return_tensors="pt")["pixel_values"])
            tok = processor(text=[prompt], return_tensors="pt", padding=True)
            e_txt = model.get_text_features(tok["input_ids"], tok["attention_mask"])
        return float(torch.nn.functional.cosine_similarity(e_img, e_txt).mean())

    for prompt in ("a red circle", "two blue squares"):
        cos = mean_cos(prompt)
        assert prompt_clip_score(judges, images, prompt) == pytest.approx(max(100 * cos, 0.0), abs=1e-3)
        with torch.no_grad():  # the text embedding negated: the cosine changes sign, one of the two is clamped
            model.model.text_projection.weight.neg_()
        assert mean_cos(prompt) == pytest.approx(-cos, abs=1e-5)
        assert prompt_clip_score(judges, images, prompt) == pytest.approx(max(-100 * cos, 0.0), abs=1e-3)
        assert max(prompt_clip_score(judges, images, prompt), max(100 * cos, 0.0)) > 1  # one side is a real score


def _write(out, name, images_by_prompt, seeds):
    for i, images in enumerate(images_by_prompt):
        for seed, image in zip(seeds, images):
            path = image_path(out, name, i, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(path)


@pytest.mark.parametrize("features", [False, True])
def test_copies_have_no_diversity_and_no_distance_and_noise_has_both(tmp_path, judges_dir, features):
    """Scored from images on disk: a pipeline that repeats one picture per prompt has diversity 0, and its FD to
    itself is 0; random pictures are diverse and far from it."""
    rng = np.random.default_rng(0)
    prompts, seeds = ["a cat", "a dog", "a bird", "a fish"], [0, 1, 2]
    same = [[img] * 3 for img in rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)]
    noisy = [list(rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)) for _ in prompts]
    _write(tmp_path, "copies", same, seeds)
    _write(tmp_path, "copies2", same, seeds)
    _write(tmp_path, "noise", noisy, seeds)
    judges = load_judges(str(judges_dir[0]), str(judges_dir[1]) if features else None)
    rows = score([Entry("copies", "x"), Entry("copies2", "x"), Entry("noise", "x")], prompts, seeds, tmp_path,
                 judges, reference="copies", progress=False)
    assert rows["copies"]["diversity"] == pytest.approx(0.0, abs=1e-5)
    assert rows["noise"]["diversity"] > 1e-3 and rows["noise"]["diversity_se"] > 0
    assert rows["copies2"]["fd_to_reference"] == pytest.approx(0.0, abs=1e-2)
    assert rows["noise"]["fd_to_reference"] > 10 * max(rows["copies2"]["fd_to_reference"], 1e-3)
    assert all(math.isfinite(r["clip"]) and r["images"] == 12 for r in rows.values())


def test_a_cut_run_resumes_where_it_stopped_and_a_finished_one_loads_no_pipeline(tmp_path, judges_dir,
                                                                                   pipeline_dir, monkeypatch):
    judges = load_judges(str(judges_dir[0]))
    entries = [parse_entry(f"student-1={pipeline_dir}@steps=1"), parse_entry(f"student-2={pipeline_dir}")]
    prompts, seeds = ["a large red circle", "a small blue square", "a shape"], [0, 1]
    real_save, saved = Image.Image.save, []

    def cut_after_four(self, fp, *args, **kwargs):
        if len(saved) == 4:
            raise KeyboardInterrupt("cut")
        saved.append(fp)
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", cut_after_four)
    with pytest.raises(KeyboardInterrupt):
        judge(entries, prompts, seeds, tmp_path, judges, reference="student-2", progress=False)
    monkeypatch.setattr(Image.Image, "save", real_save)
    assert len(list(tmp_path.rglob("*.png"))) == 4 and not list(tmp_path.rglob(".*.tmp"))  # nothing half-written
    record = judge(entries, prompts, seeds, tmp_path, judges, reference="student-2", progress=False)
    assert record["sampled_now"] == 4  # the first 2 prompts of 6 were whole; the rest sampled now
    assert len(list(tmp_path.rglob("*.png"))) == 12 and (tmp_path / "judge.md").is_file()
    assert json.loads((tmp_path / "judge.json").read_text())["rows"]["student-2"]["setting"]["num_inference_steps"] == 2

    monkeypatch.setattr(judge_module, "load_pipeline", lambda *a, **k: pytest.fail("nothing to sample"))
    again = judge(entries, prompts, seeds, tmp_path, judges, reference="student-2", progress=False)
    assert again["sampled_now"] == 0 and again["rows"]["student-1"]["clip"] == pytest.approx(record["rows"]["student-1"]["clip"])


def test_judge_refuses_names_it_cannot_tell_apart(tmp_path, judges_dir):
    judges = load_judges(str(judges_dir[0]))
    with pytest.raises(ValueError, match="must differ"):
        judge([Entry("a", "x"), Entry("a", "y")], ["p"], [0], tmp_path, judges)
    with pytest.raises(ValueError, match="none of the pipelines"):
        judge([Entry("a", "x")], ["p"], [0], tmp_path, judges, reference="teacher")


def test_the_command_writes_its_table_and_says_what_is_wrong(tmp_path, judges_dir, pipeline_dir):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red circle\na blue square\n")
    cmd = [sys.executable, "-m", "zlab.cli", "judge", "--prompts", str(prompts), "--seeds", "2",
           "--pipeline", f"one={pipeline_dir}@steps=1", "--pipeline", f"two={pipeline_dir}",
           "--reference", "two", "--clip", str(judges_dir[0]), "--out", str(tmp_path / "out")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "| one | num_inference_steps=1" in done.stdout and "FD to two" in done.stdout
    bad = subprocess.run(cmd[:-2] + ["--out", str(tmp_path / "o2"), "--size", "100x100"], capture_output=True, text=True)
    assert bad.returncode == 2 and "multiple of 16" in bad.stderr
