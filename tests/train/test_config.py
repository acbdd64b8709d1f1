"""Run configs: nested sections from TOML, --set section.key overrides, errors that name the key."""


import pytest

from zlab.train.config import load_config
from zlab.train.distill_config import DistillConfig


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
    with pytest.raises(ValueError, match=r"ship.shift_candidates must be in \[0.1, 20.0\], got -3"):
        load_config(DistillConfig, ship={"shift_candidates": [2.0, -3.0]})
    assert load_config(DistillConfig, "configs/shapes-ladd.toml").ladd.blocks == (2, 3)


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


def test_a_checkpoint_from_before_a_new_option_resumes_as_it_ran():
    """A config stored before an option existed equals today's when the option takes its default; any other
    difference is a different run."""
    import dataclasses

    from zlab.train.distill_config import DistillConfig
    from zlab.train.loop import same_config

    config = load_config(DistillConfig, train={"steps": 7})
    stored = dataclasses.asdict(config)
    del stored["data"]["guidance_scale"]  # written before data.guidance_scale existed
    assert same_config(stored, config)
    assert not same_config(stored, load_config(DistillConfig, train={"steps": 7}, data={"guidance_scale": 1.5}))
    stored["train"]["steps"] = 8
    assert not same_config(stored, config)
    assert not same_config({**stored, "nonsense": 1}, config)


def test_a_checkpoint_resumes_whatever_path_names_its_starting_weights():
    import dataclasses

    from zlab.train.distill_config import DistillConfig
    from zlab.train.loop import same_config

    stored = dataclasses.asdict(load_config(DistillConfig, train={"steps": 7, "student_init": "checkpoints/a"}))
    assert same_config(stored, load_config(DistillConfig, train={"steps": 7, "student_init": "runs/copy-of-a"}))
    assert not same_config(stored, load_config(DistillConfig, train={"steps": 8, "student_init": "runs/copy-of-a"}))
