"""zlab.measure.evaluate: NFE counting, accuracy on ground truth, FD and diversity behave as metrics should."""

import numpy as np
import pytest
import torch

from zlab.measure.evaluate import (
    count_nfe,
    evaluate_named,
    evaluate_settings,
    folder_settings,
    format_open_report,
    format_table,
    frechet_distance,
    jackknife_ratio,
    mean_pairwise_distance,
    paired_speedup,
    prompt_accuracy,
    real_renders,
    render_rows,
    setting_kwargs,
    stock_samples,
    use_stochastic_sampling,
)
from zlab.shapes import world
from zlab.shapes.net import ShapesNet
from zlab.tiny import build_tiny_pipeline
from zlab.zimage import encode_prompts, generate


@pytest.fixture(scope="module")
def micro():
    return build_tiny_pipeline("micro", seed=1)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return ShapesNet().eval().requires_grad_(False)


@pytest.mark.parametrize("g,trunc,steps", [(0.0, 1.0, 8), (3.0, 1.0, 6), (3.0, 0.5, 10)])
def test_count_nfe_matches_the_sampler(micro, g, trunc, steps):
    setting = {"num_inference_steps": steps, "guidance_scale": g, "cfg_truncation": trunc, "height": 64, "width": 64}
    ours = generate(micro, ["a small red circle at the top left"], num_inference_steps=steps, s=g + 1,
                    cfg_truncation=trunc, seed=0)
    assert count_nfe(micro, setting) == ours.nfe
    assert ours.nfe == (steps if g == 0 else (2 * steps if trunc == 1.0 else ours.nfe))
    if trunc < 1.0:
        assert steps < ours.nfe < 2 * steps


def test_unknown_sampling_key_is_named():
    with pytest.raises(ValueError, match="guidance"):
        setting_kwargs({"guidance": 3.0})


def test_stock_samples_are_seeded_per_image(micro):
    prompts = ["a small red circle at the top left", "a large blue square at the bottom right"]
    setting = {"num_inference_steps": 2, "guidance_scale": 0.0, "height": 64, "width": 96}
    a, ms = stock_samples(micro, prompts, [5, 6], setting)
    b, _ = stock_samples(micro, prompts[1:], [6], setting)
    c, _ = stock_samples(micro, prompts[1:], [7], setting)
    assert a.shape == (2, 64, 96, 3) and a.dtype == np.uint8 and ms > 0
    # Image i depends on its own seed only, not on the batch. The starting noise is exactly the seed's, but CPU
    # kernels do not promise bit-identical floats across batch sizes or thread counts, so a pixel may round to
    # the next uint8 level: allow 2 levels anywhere and 0.05 on average (measured: 1 level, mean 1e-4). Another
    # seed moves the picture by tens of levels on average (measured: 33), so the check still has teeth.
    same, other = _abs_diff(a[1], b[0]), _abs_diff(b[0], c[0])
    assert same.max() <= 2 and same.mean() < 0.05, (same.max(), same.mean())
    assert other.mean() > 5.0, other.mean()


def _abs_diff(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.abs(x.astype(np.int16) - y.astype(np.int16))


def test_accuracy_is_one_on_renders_and_fd_separates(net):
    prompts = world.enumerate_captions("train")[:64]
    real = real_renders(prompts, range(64))
    assert prompt_accuracy(real, prompts)["joint"] == 1.0
    other = real_renders(prompts, range(64, 128))
    noise = np.random.default_rng(0).integers(0, 255, real.shape, dtype=np.uint8)
    near, far = frechet_distance(net, real, other), frechet_distance(net, real, noise)
    assert near < far and far > 0
    assert mean_pairwise_distance(net, [noise[:8]]) > 0


def test_evaluate_settings_rows_and_table(micro, net):
    rows = evaluate_settings(micro, {"euler-2": {"num_inference_steps": 2, "guidance_scale": 0.0, "height": 64,
                                                "width": 64}}, net, seeds=[0], diversity_prompts=2,
                             diversity_seeds=3, heldout=False)
    (row,) = rows
    assert row["nfe"] == 2 and 0.0 <= row["acc_joint"] <= 1.0 and row["fd"] > 0 and row["diversity"] > 0
    table = format_table(rows)
    assert "| euler-2 | 2 |" in table and "FD" in table


def test_evaluate_named_measures_one_set_with_its_seeds_and_standard_errors(micro, net):
    setting = {"num_inference_steps": 1, "guidance_scale": 0.0, "height": 64, "width": 64}
    (row,) = evaluate_named(micro, {"euler-1": setting}, net, seeds=(0, 1), prompt_set="test", per_count=3,
                            diversity_prompts=2, diversity_seeds=3)
    assert (row["prompt_set"], row["prompts"], row["heldout_prompts"], row["seeds"]) == ("test", 3, 3, 2)
    assert 0.0 <= row["acc_joint"] <= 1.0 and row["acc_joint_se"] >= 0 and row["fd"] > 0
    assert row["diversity"] > 0 and row["diversity_se"] >= 0 and 0.0 <= row["acc_heldout_joint"] <= 1.0
    table = format_table([row], caption_set="test")
    assert "joint acc (test) |" in table and "joint acc (test, held-out pairs)" in table
    assert f"{row['acc_joint']:.3f} ± {row['acc_joint_se']:.3f}" in table


def test_jackknife_ratio_of_sums():
    ratio, se = jackknife_ratio([2.0, 2.0, 2.0], [1.0, 1.0, 1.0])
    assert ratio == 2.0 and se == pytest.approx(0.0)
    a, b = [1.0, 3.0, 2.0, 5.0], [1.0, 1.0, 2.0, 2.0]
    loo = np.array([(11 - x) / (6 - y) for x, y in zip(a, b)])
    ratio, se = jackknife_ratio(a, b)
    assert ratio == pytest.approx(11 / 6) and se == pytest.approx(np.sqrt(3 / 4 * ((loo - loo.mean()) ** 2).sum()))
    assert np.isnan(jackknife_ratio([1.0], [2.0])[1])


def test_renders_are_valid_and_their_coverage_is_below_one():
    prompts = ["a red shape"] * 8 + ["a small blue circle at the top left"] * 8
    rows = {r["group"]: r for r in render_rows(prompts, list(range(16)), 8)}
    assert rows["all"]["valid"] == 1.0 and rows["all"]["named_accuracy"] == 1.0 and rows["4"]["nfe"] == 0
    assert 0.0 < rows["4"]["coverage_entropy"] < 1.0 and rows["all"]["prompts"] == 2


def test_shapes_prompt_padding_changes_nothing_but_time(micro):
    """sampling.json's max_sequence_length: every caption fits, and embeddings equal the stock 512 padding's."""
    captions = world.enumerate_captions("all")
    ids = micro.tokenizer.apply_chat_template([[{"role": "user", "content": c}] for c in captions], tokenize=True,
                                              add_generation_prompt=True, enable_thinking=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert max(len(i) for i in ids) <= world.PROMPT_TOKENS
    short = encode_prompts(micro, captions[::40], max_sequence_length=world.PROMPT_TOKENS)
    stock = encode_prompts(micro, captions[::40], max_sequence_length=512)
    assert all(torch.equal(a, b) for a, b in zip(short, stock, strict=True))
    setting = {**world.SAMPLING_BASE, "num_inference_steps": 2, "guidance_scale": 0.0}
    a, _ = stock_samples(micro, captions[:2], [0, 1], setting)
    b, _ = stock_samples(micro, captions[:2], [0, 1], {**setting, "max_sequence_length": 512})
    assert np.array_equal(a, b)


def test_paired_speedup_reports_the_spread_of_interleaved_pairs(micro):
    micro.set_progress_bar_config(disable=True)
    slow = {"num_inference_steps": 6, "guidance_scale": 3.0, "height": 64, "width": 64}
    fast = {"num_inference_steps": 1, "guidance_scale": 0.0, "height": 64, "width": 64}
    prompts = ["a small red circle at the top left", "a large blue square", "a small green triangle"]
    r = paired_speedup(micro, slow, micro, fast, prompts[:2], rounds=2)
    assert r["pairs"] == 4 and r["slow_ms"] > 0 and r["fast_ms"] > 0
    assert r["min"] <= r["q25"] <= r["median"] <= r["q75"] <= r["max"]
    batched = paired_speedup(micro, slow, micro, fast, prompts, rounds=2, batch_size=2)
    assert batched["pairs"] == 4 and batched["batch_size"] == 2  # batches [2 prompts], [1 prompt], twice


def test_cli_eval_measures_open_captions_of_a_prompt_set(micro, tmp_path, capsys):
    import json

    from zlab.cli import main
    from zlab.measure.settings import Setting
    from zlab.zimage import save_pipeline

    folder = save_pipeline(micro, tmp_path / "micro", sampling={"num_inference_steps": 2, "guidance_scale": 0.0,
                                                                "height": 64, "width": 64, "max_sequence_length": 64})
    out = tmp_path / "rows.json"
    assert main(["eval", "--pipeline", str(folder), "--steps", "1,2", "--open", "validation", "--per-count", "1",
                 "--seeds", "2", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert {r["setting"] for r in rows} == {"micro 1 step", "micro 2 steps"}  # the folder's name, the step count
    assert {"0", "2+", "all"} <= {r["group"] for r in rows}
    printed = capsys.readouterr().out
    assert "coverage_entropy, validation prompts (1 per open count x 2 seeds)" in printed and "| micro 2 steps |" in printed
    # the stochastic sampler: a different picture at 2 steps, the same at 1 (nothing to re-noise), repeatable
    again = tmp_path / "stochastic.json"
    args = ["eval", "--pipeline", str(folder), "--steps", "1,2", "--open", "validation", "--per-count", "1",
            "--seeds", "2", "--stochastic"]
    assert main(args + ["--out", str(again)]) == 0 and main(args + ["--out", str(tmp_path / "again.json")]) == 0
    fd = lambda path, n: [r["fd"] for r in json.loads(path.read_text()) if r["setting"] == Setting(folder.name, n).label and r["group"] == "all"]
    assert fd(again, 1) == pytest.approx(fd(out, 1), rel=1e-3) and fd(again, 2) != pytest.approx(fd(out, 2), rel=1e-3)
    assert fd(again, 2) == pytest.approx(fd(tmp_path / "again.json", 2), rel=1e-3)


def test_folder_settings_are_the_folders_sampling_json_with_the_overrides(tmp_path):
    import json

    folder = tmp_path / "my-teacher"
    folder.mkdir()
    (folder / "sampling.json").write_text(json.dumps({"num_inference_steps": 8, "guidance_scale": 0.5, "height": 96}))
    assert folder_settings(folder) == {"my-teacher 8 steps": {"num_inference_steps": 8, "guidance_scale": 0.5,
                                                              "height": 96, "width": 64}}
    swept = folder_settings(folder, steps=[1, 2], guidance_scale=0.0, cfg_truncation=0.6)
    assert list(swept) == ["my-teacher 1 step", "my-teacher 2 steps"]
    assert swept["my-teacher 2 steps"] == {"num_inference_steps": 2, "guidance_scale": 0.0, "cfg_truncation": 0.6,
                                           "height": 96, "width": 64}
    (tmp_path / "bare").mkdir()  # no sampling.json: 50 steps at 64 x 64, the pipeline's own guidance
    assert folder_settings(tmp_path / "bare") == {"bare 50 steps": {"num_inference_steps": 50, "height": 64, "width": 64}}


def test_the_open_report_titles_one_table_per_measure():
    rows = [{"setting": "micro 1 step", "group": g, "nfe": 1, "valid": 0.5, "valid_se": 0.1, "named_accuracy": 0.25,
             "coverage_entropy": 0.75, "fd": 12.04} for g in ("0", "1", "2+", "all")]
    text = format_open_report(rows, "test", per_count=2, seeds=3)
    titles = [line for line in text.splitlines() if line.endswith("seeds):")]
    assert titles == [f"{m}, test prompts (2 per open count x 3 seeds):"
                      for m in ("valid", "named_accuracy", "coverage_entropy", "fd")]
    assert text.startswith("\nvalid, test prompts") and text.count("| micro 1 step | 1 |") == 4
    assert "0.500 ± 0.100" in text and "| 12.0 |" in text


def test_stochastic_sampling_keeps_the_rest_of_the_scheduler():
    from types import SimpleNamespace

    from diffusers import FlowMatchEulerDiscreteScheduler

    pipe = SimpleNamespace(scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))
    assert not pipe.scheduler.config.stochastic_sampling
    use_stochastic_sampling(pipe)
    assert pipe.scheduler.config.stochastic_sampling and pipe.scheduler.config.shift == 3.0
