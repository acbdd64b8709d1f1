"""How the shipped student samples between its steps, chosen on the **validation** set.

LADD trains the student on ``x_t = (1 - t) x0 + t eps`` with *fresh* noise at every t < 1. At inference a
multi-step student can take plain Euler steps between its times (deterministic: the next input is
``(1 - t') x0_hat + t' eps_hat``, with the noise the student itself implies, ``eps_hat = x_t + (1 - t) v``
for ``v = dx_t/dt``) or re-noise its ``x0_hat`` with fresh noise at each step, exactly as trained (diffusers'
``stochastic_sampling``, a consistency-model step). One step is the same either way.

:func:`choose_sampling_mode` measures both at 2 and 4 steps on validation prompts with 2+ open attributes, on
the same prompts and seeds, and ships stochastic only when its paired gain in the mean of validity, named
accuracy and coverage is larger than the gain's standard error across prompts; otherwise deterministic steps
ship. The reason: stock ``ZImagePipeline`` does not hand its ``generator`` to ``scheduler.step``, so stochastic
sampling draws its re-noise from torch's global RNG and a seed no longer fixes the picture; that costs every
user something and must buy a measured gain.

:func:`choose_shift` then asks *where* the steps fall: the student trains at {1, .75, .5, .25}, but a static time
shift ``s`` (SD3's ``t -> s t / (1 + (s - 1) t)``, the scheduler's ``shift``) moves its 2- and 4-step times
towards the noise end, where a one-step-trained student may decide better. ``[ship] shift_candidates`` names the
shifts to try beside ``[ship] shift``; the shipped scheduler carries the chosen one, so stock ``ZImagePipeline``
samples it with no zlab code.
"""

from __future__ import annotations

import math

import numpy as np
from diffusers import ZImagePipeline

from zlab.distill.student import student_pipeline
from zlab.measure.evaluate import stock_samples
from zlab.shapes import prompt_sets
from zlab.shapes.metrics import prompt_records

MODES = {"deterministic": False, "stochastic": True}
KEYS = ("valid", "named_accuracy", "coverage_entropy")
STEPS = (2, 4)


def prompt_scores(pipe: ZImagePipeline, sampling: dict, per_count: int = 8, seeds: int = 16) -> list[dict]:
    """Per validation prompt with 2+ open attributes and per step count in :data:`STEPS`: validity, named accuracy
    and coverage over its ``seeds`` samples (:func:`zlab.shapes.metrics.prompt_records`)."""
    prompts, seed_list = prompt_sets.prompts_and_seeds("validation", seeds, per_count=per_count, min_open=2)
    records = []
    for n in STEPS:
        images, _ = stock_samples(pipe, prompts, seed_list, {**sampling, "num_inference_steps": n})
        records += [{**r, "steps": n} for r in prompt_records(images, prompts, seeds)]
    return records


def _score(record: dict) -> float:
    return float(np.nanmean([record[k] for k in KEYS]))  # "a shape" names nothing: its named accuracy is NaN


def paired_candidates(pipes: dict[str, ZImagePipeline], base: str, sampling: dict, per_count: int = 8,
                      seeds: int = 16) -> dict:
    """Every candidate pipeline on the same validation prompts and seeds: each measure's mean per candidate and step
    count, and each candidate's paired gain over ``base`` in the per-prompt score (mean of the three) with its SE
    across prompt-and-step pairs."""
    records = {name: prompt_scores(pipe, sampling, per_count, seeds) for name, pipe in pipes.items()}
    means = {name: {f"{n} steps": {k: float(np.nanmean([r[k] for r in recs if r["steps"] == n])) for k in KEYS}
                    for n in STEPS} for name, recs in records.items()}
    gains = {}
    for name, recs in records.items():
        diff = np.array([_score(c) - _score(b) for b, c in zip(records[base], recs)])
        se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else float("inf")
        gains[name] = {"gain": float(diff.mean()), "se": se, "pairs": len(diff)}
    return {"means": means, "gains": gains, "plan": {"per_count": per_count, "seeds": seeds, "steps": list(STEPS)}}


def choose_sampling_mode(teacher: ZImagePipeline, transformer, sampling: dict, per_count: int = 8,
                         seeds: int = 16, shift: float = 1.0) -> dict:
    """Both modes on the same validation prompts and seeds: each measure's mean per mode and step count, the
    paired gain of stochastic over deterministic in the per-prompt score (mean of the three) with its SE across
    prompts, the ``chosen`` mode and ``why`` in a sentence."""
    pipes = {mode: student_pipeline(teacher, transformer, stochastic, shift) for mode, stochastic in MODES.items()}
    record = paired_candidates(pipes, "deterministic", sampling, per_count, seeds)
    gain, se, pairs = (record["gains"]["stochastic"][k] for k in ("gain", "se", "pairs"))
    chosen = "stochastic" if gain > se else "deterministic"
    why = (f"on validation prompts with 2+ open attributes at 2 and 4 steps, stochastic re-noising changed the mean "
           f"of validity, named accuracy and coverage by {gain:+.3f} (SE {se:.3f}, paired over {pairs} "
           f"prompt-and-step pairs): "
           + ("a gain larger than its SE, worth a seed that no longer fixes the picture" if chosen == "stochastic" else
              "no gain beyond its SE, so the student keeps deterministic steps, whose seed fixes the picture"))
    return {**record, "gain": gain, "gain_se": se, "chosen": chosen, "why": why}


def choose_shift(teacher: ZImagePipeline, transformer, sampling: dict, candidates: list[float], shift: float = 1.0,
                 stochastic: bool = False, per_count: int = 8, seeds: int = 16) -> dict:
    """The student's sampling time shift: ``shift`` (the config's) and each of ``candidates`` on the same validation
    prompts and seeds. The rule, fixed before any measurement: the candidate with the largest paired gain over
    ``shift`` in the mean of validity, named accuracy and coverage (2+ open prompts, 2 and 4 steps) ships if that
    gain is larger than its SE; otherwise ``shift`` ships. (docs/student-times.json found the first LADD student,
    trained at shift-1 times, sampling best near shift 3 at 16 and 24 tokens; one step is the same at every shift.)"""
    shifts = [float(shift)] + [float(s) for s in candidates if float(s) != float(shift)]
    pipes = {f"shift {s:g}": student_pipeline(teacher, transformer, stochastic, s) for s in shifts}
    record = paired_candidates(pipes, f"shift {shifts[0]:g}", sampling, per_count, seeds)
    best = max(shifts[1:], key=lambda s: record["gains"][f"shift {s:g}"]["gain"], default=shifts[0])
    gain, se = record["gains"][f"shift {best:g}"]["gain"], record["gains"][f"shift {best:g}"]["se"]
    chosen = best if gain > se else shifts[0]
    why = (f"on validation prompts with 2+ open attributes at 2 and 4 steps, the best candidate (shift {best:g}) "
           f"changed the mean of validity, named accuracy and coverage by {gain:+.3f} (SE {se:.3f}) against shift "
           f"{shifts[0]:g}: " + (f"a gain larger than its SE, so the student samples at shift {chosen:g}"
                                  if chosen != shifts[0] else f"no gain beyond its SE, so shift {shifts[0]:g} ships"))
    return {**record, "shifts": shifts, "best": best, "chosen": chosen, "why": why}
