"""Settings as data: one label per setting, read back exactly; a string no setting makes is refused."""

import pytest

from zlab.measure.settings import Setting, by_label, parse, student_steps, teacher_steps


@pytest.mark.parametrize("setting", [Setting("teacher", 50, cfg=True, note="sampling.json"), Setting("teacher", 1, cfg=False),
                                     Setting("student", 1), Setting("regression student", 4),
                                     Setting("LADD start (teacher weights, student schedule),", 2),
                                     Setting("teacher", 4, cfg=True, note="g = 1")])
def test_a_label_reads_back_as_its_setting(setting):
    assert parse(setting.label) == setting


def test_labels_and_stock_arguments():
    assert Setting("student", 1).label == "student 1 step" and Setting("student", 4).label == "student 4 steps"
    assert Setting("teacher", 2, cfg=False).label == "teacher 2 steps, no CFG"
    base = {"num_inference_steps": 50, "guidance_scale": 3.0, "height": 64}
    assert Setting("teacher", 4, cfg=True).kwargs(base) == {"num_inference_steps": 4, "guidance_scale": 3.0, "height": 64}
    assert Setting("teacher", 4, cfg=False).kwargs(base)["guidance_scale"] == 0.0
    assert list(by_label(teacher_steps([1, 2]), base)) == ["teacher 1 step + CFG", "teacher 2 steps + CFG",
                                                           "teacher 1 step, no CFG", "teacher 2 steps, no CFG"]
    assert [s.label for s in student_steps("LADD student")] == ["LADD student 1 step", "LADD student 2 steps",
                                                                "LADD student 4 steps"]


@pytest.mark.parametrize("label", ["N=1", "1 steps", "student one step", "teacher 50 steps + cfg"])
def test_a_string_no_setting_makes_is_refused(label):
    with pytest.raises(ValueError, match="not a setting's label"):
        parse(label)
