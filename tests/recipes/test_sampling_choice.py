"""The student's sampling mode (deterministic or stochastic steps), chosen on validation by a paired gain."""

from types import SimpleNamespace

import pytest

from zlab.recipes import sampling_choice
from zlab.recipes.sampling_choice import choose_sampling_mode


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
                        lambda teacher, transformer, stochastic: SimpleNamespace(
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
