"""The student's sampling mode (deterministic or stochastic steps) and time shift, chosen on validation by a paired
gain."""

from types import SimpleNamespace

import pytest

from zlab.recipes import sampling_choice
from zlab.recipes.sampling_choice import choose_sampling_mode, choose_shift


def _records(score_of):
    """Fake per-prompt records for 6 prompts x 2 step counts; score_of(i) sets validity, accuracy and coverage."""
    return [{"prompt": f"p{i}", "steps": n, "valid": score_of(i), "named_accuracy": score_of(i),
             "coverage_entropy": score_of(i)} for n in (2, 4) for i in range(6)]


@pytest.mark.parametrize("stochastic_gain, noise, chosen", [(0.1, 0.01, "stochastic"), (0.005, 0.05, "deterministic"),
                                                            (-0.1, 0.01, "deterministic")])
def test_stochastic_ships_only_for_a_gain_beyond_its_standard_error(monkeypatch, stochastic_gain, noise, chosen):
    def fake(pipe, sampling, per_count, seeds):
        if pipe.scheduler.config.stochastic_sampling:
            return _records(lambda i: 0.6 + stochastic_gain + noise * (-1) ** i)
        return _records(lambda i: 0.6)

    monkeypatch.setattr(sampling_choice, "prompt_scores", fake)
    monkeypatch.setattr(sampling_choice, "student_pipeline",  # only the scheduler's flag matters to the fake
                        lambda teacher, transformer, stochastic, shift: SimpleNamespace(
                            scheduler=SimpleNamespace(config=SimpleNamespace(stochastic_sampling=stochastic))))
    out = choose_sampling_mode(None, None, {}, per_count=1, seeds=2)
    assert out["chosen"] == chosen
    assert out["gain"] == pytest.approx(stochastic_gain, abs=noise)
    assert out["means"]["deterministic"]["2 steps"]["valid"] == pytest.approx(0.6)
    assert ("worth a seed" in out["why"]) == (chosen == "stochastic")


def test_both_modes_measured_on_a_real_student(tiny_pipe):
    sampling = {"num_inference_steps": 4, "guidance_scale": 0.0, "height": 64, "width": 64, "max_sequence_length": 64}
    out = choose_sampling_mode(tiny_pipe, tiny_pipe.transformer, sampling, per_count=1, seeds=2)
    assert out["chosen"] in ("deterministic", "stochastic")
    assert out["plan"] == {"per_count": 1, "seeds": 2, "steps": [2, 4]}
    for mode in ("deterministic", "stochastic"):
        for n in (2, 4):
            assert 0.0 <= out["means"][mode][f"{n} steps"]["valid"] <= 1.0


def test_the_model_card_says_how_the_student_steps_and_why():
    from zlab.recipes.cards import sampling_text

    assert sampling_text({"stochastic_sampling": False}) == "Deterministic Euler steps between the trained times."
    text = sampling_text({"stochastic_sampling": True, "sampling_choice": {"why": "a measured gain"}})
    assert "torch.manual_seed" in text and text.endswith("Chosen on validation: a measured gain.")


@pytest.mark.parametrize("gains, noise, chosen", [({2.0: 0.02, 3.0: 0.1}, 0.01, 3.0), ({2.0: 0.004, 3.0: 0.002}, 0.05, 1.0),
                                                  ({2.0: -0.1, 3.0: -0.05}, 0.01, 1.0)])
def test_a_shift_ships_only_for_the_best_gain_beyond_its_standard_error(monkeypatch, gains, noise, chosen):
    def fake(pipe, sampling, per_count, seeds):
        shift = pipe.scheduler.config.shift
        return _records(lambda i: 0.6 + (gains[shift] + noise * (-1) ** i if shift in gains else 0.0))

    monkeypatch.setattr(sampling_choice, "prompt_scores", fake)
    monkeypatch.setattr(sampling_choice, "student_pipeline", lambda teacher, transformer, stochastic, shift:
                        SimpleNamespace(scheduler=SimpleNamespace(config=SimpleNamespace(shift=shift))))
    out = choose_shift(None, None, {}, [2.0, 3.0, 1.0], per_count=1, seeds=2)
    assert out["shifts"] == [1.0, 2.0, 3.0]  # the config's shift first, a repeated candidate dropped
    assert out["chosen"] == chosen
    assert out["best"] == max(gains, key=gains.get)
    assert out["gains"]["shift 1"]["gain"] == 0.0


def test_a_shifted_student_samples_at_shifted_times_through_the_stock_pipeline(tiny_pipe):
    from zlab.distill.student import check_student_schedule, student_pipeline
    from zlab.measure.student_times import shifted_times

    pipe = student_pipeline(tiny_pipe, tiny_pipe.transformer, shift=3.0)
    times = check_student_schedule(pipe)
    assert times[1] == [1.0]
    for n in (2, 4):
        assert times[n] == pytest.approx(shifted_times(n, 3.0), abs=1e-5)
    assert times[4] != pytest.approx(check_student_schedule(student_pipeline(tiny_pipe, tiny_pipe.transformer))[4])
    with pytest.raises(ValueError, match="shift must be positive"):
        student_pipeline(tiny_pipe, tiny_pipe.transformer, shift=0.0)


def test_the_card_names_a_shift_and_its_choice():
    from zlab.recipes.cards import sampling_text

    text = sampling_text({"stochastic_sampling": False, "shift": 3.0, "shift_choice": {"why": "a measured gain"}})
    assert "static shift is 3" in text and text.endswith("Time shift chosen on validation: a measured gain.")
