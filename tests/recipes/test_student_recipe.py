"""make-student: the whole recipe, the shipped folder and its card, the comparison rows."""

import json
from pathlib import Path

import pytest
import torch
from diffusers import ZImagePipeline
from tiny_ladd import SAMPLING, ladd_config

from zlab.distill.student import student_pipeline
from zlab.recipes.student import ship_student
from zlab.shapes import prompt_sets
from zlab.train.synth import SynthData


def test_make_student_runs_the_whole_recipe(teacher_and_data, tmp_path):
    from zlab.recipes.student import make_student

    config = ladd_config(teacher_and_data, data={"folder": str(tmp_path / "synth"), "rounds": 1}, train={"steps": 2})
    make_student(config, tmp_path / "student", tmp_path / "run", progress=False, measure=False)
    record = json.loads((tmp_path / "student" / "eval.json").read_text())
    assert list(record["timings"]) == ["synth_s", "train_s", "measure_and_ship_s", "total_s"] and record["config"]["train"]["steps"] == 2
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


def test_make_student_ships_a_one_step_dmd_student_with_its_fake_score(teacher_and_data, tmp_path):
    from diffusers import ZImageTransformer2DModel

    from zlab.recipes.student import make_student

    config = ladd_config(teacher_and_data, method="dmd", data={"folder": str(tmp_path / "synth"), "rounds": 1},
                         train={"steps": 2}, dmd={"fake_updates": 1})
    make_student(config, tmp_path / "dmd", tmp_path / "run", progress=False, measure=False)
    assert json.loads((tmp_path / "dmd" / "sampling.json").read_text())["num_inference_steps"] == 1
    card = (tmp_path / "dmd" / "README.md").read_text()
    assert card.startswith("# shapes-dmd: a one-step distribution-matching (DMD) student")
    assert "num_inference_steps=1" in card and "`fake_score/` holds the trained fake score" in card
    assert "guidance at g = 0.5, i.e. s = 1.5, weight 1.0" in card
    fake = ZImageTransformer2DModel.from_pretrained(tmp_path / "dmd" / "fake_score")
    assert fake.config.dim == ZImagePipeline.from_pretrained(tmp_path / "dmd").transformer.config.dim
    assert not (tmp_path / "dmd" / "discriminator").exists()


def test_make_student_trains_its_init_recipe_first_and_starts_from_it(teacher_and_data, tmp_path):
    """train.init_recipe: one command trains the regression stage, then the DMD student from its weights. With the
    DMD student's learning rate at 0 the shipped weights are the stage's, which the teacher's are not."""
    from safetensors.torch import load_file

    from zlab.recipes.student import make_student

    recipe = tmp_path / "regression.toml"
    recipe.write_text('method = "ladd"\n[ladd]\nadv_weight = 0.0\nregression_weight = 1.0\nblocks = [1, 3]\n'
                      'head_hidden = 8\n[train]\nsteps = 2\nbatch_size = 3\nstudent_lr = 1e-2\n')
    config = ladd_config(teacher_and_data, method="dmd", train={"steps": 1, "student_lr": 0.0, "init_recipe": str(recipe)},
                         dmd={"fake_updates": 1})
    make_student(config, tmp_path / "dmd", tmp_path / "run", progress=False, measure=False)
    record = json.loads((tmp_path / "dmd" / "eval.json").read_text())
    assert list(record["timings"]) == ["synth_s", "init_s", "train_s", "measure_and_ship_s", "total_s"]
    assert record["timings"]["total_s"] == pytest.approx(sum(v for k, v in record["timings"].items() if k != "total_s"))
    assert record["init_stage"]["recipe"] == str(recipe) and record["init_stage"]["config"]["train"]["steps"] == 2
    assert record["init_stage"]["config"]["data"] == record["config"]["data"]  # the stage reads the same pairs
    assert record["config"]["train"]["student_init"] == str(tmp_path / "run-init" / "student")
    weights = lambda folder: load_file(next((folder / "transformer").glob("*.safetensors")))
    stage, shipped, teacher = (weights(p) for p in (tmp_path / "run-init" / "student", tmp_path / "dmd",
                                                     Path(config.data.teacher)))
    assert all(torch.equal(stage[k], shipped[k]) for k in stage)
    assert any(not torch.equal(stage[k], teacher[k]) for k in stage)
    assert "trained first in the same command" in (tmp_path / "dmd" / "README.md").read_text()


def test_an_init_recipe_cannot_chain(teacher_and_data, tmp_path):
    from zlab.recipes.student import make_student

    recipe = tmp_path / "r.toml"
    recipe.write_text('[train]\ninit_recipe = "other.toml"\n')
    config = ladd_config(teacher_and_data, method="dmd", train={"init_recipe": str(recipe)})
    with pytest.raises(ValueError, match="one stage before the student"):
        make_student(config, tmp_path / "dmd", tmp_path / "run", progress=False, measure=False)


def test_the_card_names_the_students_loss():
    from zlab.recipes.cards import objective, student_title

    regression = {"ladd": {"adv_weight": 0.0, "regression_weight": 1.0, "loss": "hinge"}}
    assert student_title(regression).startswith("shapes-regression: a 1/2/4-step regression-distilled student")
    assert objective(regression).startswith("regression alone: MSE of its x0_hat")
    both = {"ladd": {"adv_weight": 1.0, "regression_weight": 0.5, "loss": "hinge"}}
    assert "LADD + regression" in student_title(both) and "plus MSE" in objective(both) and "weight 0.5" in objective(both)


def test_the_card_says_when_the_student_learnt_from_its_own_sampler():
    from zlab.recipes.cards import backward_sim_text

    assert backward_sim_text({"backward_sim": 0.0}) == "" and backward_sim_text({}) == ""
    assert "100% of its t < 1 inputs made by its own sampler" in backward_sim_text({"backward_sim": 1.0})


def test_a_student_ships_at_its_teachers_image_size(teacher_and_data, tmp_path):
    """The GPU profile's 128-px teacher gets a 128-px student sampling.json, not the CPU world's 64."""
    teacher = ZImagePipeline.from_pretrained(teacher_and_data[0])
    ship_student(teacher, teacher.transformer, None, tmp_path / "s", {"config": {}}, measure=False, image_size=128)
    sampling = json.loads((tmp_path / "s" / "sampling.json").read_text())
    assert sampling["height"] == sampling["width"] == 128


def test_make_student_refuses_several_processes(teacher_and_data, tmp_path, monkeypatch):
    from zlab.recipes.student import make_student

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="zlab.cli distill"):
        make_student(ladd_config(teacher_and_data), tmp_path / "student", tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


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
    assert "| student 4 steps |" in open_section(rows) and "No search chose a setting on these prompts" in open_section(rows)


def test_the_student_card_warns_when_every_head_called_everything_fake():
    from zlab.recipes.cards import heads_text

    dead = {"config": {"ladd": {"adv_weight": 1.0}}, "log": {"head_calls": [[(0.0, 1.0), (0.02, 0.99)]] * 150}}
    text = heads_text(dead)
    assert "last 100 training steps" in text and "0.00 / 1.00, 0.02 / 0.99" in text and "Every head called every input fake" in text
    alive = {"config": {"ladd": {"adv_weight": 1.0}}, "log": {"head_calls": [[(0.7, 0.6)]] * 50}}
    assert "last 50 training steps" in heads_text(alive) and "Every head called" not in heads_text(alive)
    assert heads_text({"config": {"ladd": {"adv_weight": 0.0}}, "log": dead["log"]}) == ""  # regression alone: no heads to speak of
    assert heads_text({"config": {"ladd": {"adv_weight": 1.0}}, "log": {}}) == ""  # a log from before the calls were logged


def test_compare_findings_state_each_difference_with_its_standard_error():
    from zlab.recipes.compare import findings

    def row(setting, acc, fd=50.0, diversity=1.0):
        return {"setting": setting, "acc_joint": acc, "fd": fd, "diversity": diversity}

    rows = [row("teacher 50 steps + CFG (sampling.json)", 0.9, diversity=2.0)]
    rows += [row(f"teacher {n} step{'s' * (n > 1)} + CFG", 0.5) for n in (1, 2, 4)]
    rows += [row(f"student {n} step{'s' * (n > 1)}", 0.8, diversity=1.0) for n in (1, 2, 4)]
    pairs = {"median": 10.0, "q25": 9.0, "q75": 11.0, "pairs": 4, "slow_ms": 100.0, "fast_ms": 10.0}
    text = findings({"rows": rows, "speedup_teacher50_student4": {"latency_batch1_paired": pairs}}, images=100)
    # SE of 0.8 over 100 images is 0.04, of 0.5 is 0.05; the difference's is their root sum of squares, 0.064
    assert "N = 1: student 0.800 ± 0.040 vs teacher + CFG 0.500 ± 0.050 (difference +0.300 ± 0.064)" in text
    assert "diversity 1.00 x the renders' (teacher at 50 steps: 2.00)" in text and "10.0x, quartiles 9.0x-11.0x over 4 interleaved pairs" in text
    assert "PASS" not in text and "FAIL" not in text


def test_a_record_keeps_the_last_steps_of_each_series_and_other_log_entries_whole():
    from zlab.recipes.student import log_tail

    log = {"loss": list(range(300)), "synth_checked": {"kept": 2330, "rejected": 169}}
    assert log_tail(log, 200) == {"loss": list(range(100, 300)), "synth_checked": {"kept": 2330, "rejected": 169}}


def test_the_card_of_a_resumed_run_says_its_times_leave_out_what_finished_before():
    from zlab.recipes.cards import student_card

    record = {"config": {"method": "ladd", "ladd": {}, "train": {"steps": 10}}, "timings": {"train_s": 60.0}}
    assert "resumed run" not in student_card({}, record)
    assert "resumed run" in student_card({}, {**record, "resumed": True})


def test_the_card_says_how_the_pairs_were_synthesised():
    from zlab.recipes.cards import synth_text

    assert "its own `sampling.json`" in synth_text({"guidance_scale": -1.0}, {})
    text = synth_text({"guidance_scale": 1.5, "drop_rejected": True},
                      {"log": {"synth_checked": {"kept": 2335, "rejected": 164}}})
    assert "g = 1.5" in text and "lab s = 2.5" in text and "164 of 2499" in text
