"""The shipped checkpoints' model cards (README.md), each written from its eval record (eval.json): the teacher's and
the student's (LADD or the regression baseline)."""

from __future__ import annotations

import json

from zlab.distill.head_calls import dead_heads, mean_calls
from zlab.measure.evaluate import format_open_table, format_table
from zlab.measure.settings import Setting
from zlab.shapes import prompt_sets


def _pm(stat) -> str:
    mean, se = stat
    return f"{mean:.3f}" + ("" if se != se else f" ± {se:.3f}")


def named_table(rows: list[dict]) -> str:
    """Fully named test prompts at each aspect bucket: joint accuracy and validity (mean ± SE across prompts)."""
    lines = ["| size (h x w) | colour-shape pairs | prompts x seeds | joint accuracy | validity |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['pairs']} | {r['prompts']} x {r['seeds']} | {_pm(r['joint'])} | {_pm(r['valid'])} |")
    return "\n".join(lines)


def validity_gap(steps: list[dict], group: str = "2+") -> tuple[float, float, float]:
    """Validity of the teacher at 50 steps (its sampling.json) and at 1 step without CFG on ``group`` prompts."""
    cell = {(r["setting"], r["group"]): r for r in steps}
    fifty = cell[(Setting("teacher", 50, cfg=True).label, group)]["valid"]
    one = cell[(Setting("teacher", 1, cfg=False).label, group)]["valid"]
    return fifty, one, fifty - one


def steps_tables(steps: list[dict]) -> str:
    """One markdown table per measure of the steps table."""
    parts = []
    for metric, title in [("valid", "Validity"), ("named_accuracy", "Accuracy on the named attributes"),
                          ("coverage_entropy", "Coverage (normalised entropy, mean over open attributes)"),
                          ("coverage_tv", "Total-variation distance to the allowed distribution"),
                          ("coverage_seen", "Share of allowed values seen"),
                          ("fd", "FD to renders of the same prompts (ShapesNet features)"),
                          ("fd_teacher", "FD to the teacher's own 50-step samples (other seeds)")]:
        parts.append(f"**{title}**, by number of open attributes:\n\n{format_open_table(steps, metric)}")
    return "\n\n".join(parts)


def calibration_table(calibration: dict) -> str:
    """The open_prob candidates on validation, each teacher at its best g (``zlab calibrate-open-prob``)."""
    lines = ["| open_prob | best g | validity | named accuracy | coverage | score |", "|---|---|---|---|---|---|"]
    for p, r in calibration["candidates"].items():
        mark = " (chosen)" if float(p) == calibration["chosen"] else ""
        lines.append(f"| {p}{mark} | {r['best_guidance']:g} | {r['valid']:.3f} | {r['named_accuracy']:.3f} | "
                     f"{r['coverage_entropy']:.3f} | {r['score']:.3f} |")
    return "\n".join(lines)


SWEEP_HEADER = ("| g | s = g + 1 | fully named joint | 2+ open: validity | named | coverage | score (all prompts) | "
                "shortfall |\n|---|---|---|---|---|---|---|---|")


def sweep_row(g: float, v: dict) -> str:
    """One g of the guidance choice on validation (:func:`zlab.recipes.teacher.choose_guidance`)."""
    open2 = v.get("open2", {})
    cells = [v.get("named_joint", float("nan")), *(open2.get(k, float("nan")) for k in
                                                   ("valid", "named_accuracy", "coverage_entropy")), v["score"]]
    shortfall = f"{v['shortfall']:.3f}" if "shortfall" in v else "–"
    return f"| {g:g} | {g + 1:g} | " + " | ".join(f"{c:.3f}" for c in cells) + f" | {shortfall} |"


def summary_tables(record: dict) -> str:
    """The measured tables of an eval record, for a terminal."""
    return f"{named_table(record['named'])}\n\n{steps_tables(record['steps'])}"


def _open2_plan(plan: dict) -> str:
    """Which validation prompts with 2+ open attributes the guidance choice read, in words."""
    # a record from before they were chosen apart from the others used choose_per_count for them too
    n = plan["choose_open2_per_count"] if "choose_open2_per_count" in plan else plan["choose_per_count"]
    return "every prompt" if n is None else f"{n} per number of open attributes"


def teacher_card(sampling: dict, record: dict) -> str:
    """README.md of the shipped teacher: what it is, how it was made, what was measured."""
    training = record.get("training", {})
    timings = training.get("timings", {})
    config = training.get("teacher_config", {})
    plan = record["plan"]
    open2_text = _open2_plan(plan)
    sweep = record["guidance_sweep_validation"]
    sweep_text = "\n".join(sweep_row(float(g), v) for g, v in sweep.items())
    vae = training.get("vae_reconstruction", {})
    vae_text = "; ".join(f"{size}: PSNR {v['psnr_db']:.1f} dB, checker joint accuracy {v['acc_joint']:.3f}"
                         for size, v in vae.items())
    time_text = "".join(f"{name} {timings[key] / 60:.1f} min, " for name, key in
                        (("VAE", "vae_s"), ("teacher", "teacher_s"), ("VAE round trips", "reconstruction_s"))
                        if key in timings)
    apart = training.get("measured_apart", False)  # training times from another run do not add up with this one's
    if {"vae_s", "teacher_s"} <= set(timings) and not apart:
        total = sum(timings.values()) + record["measure_s"]
        time_text = f"{total / 60:.1f} min in all: " + time_text
    measure_text = "measurement (re-run apart from the training, `zlab ship-teacher`)" if apart else "measurement"
    fifty, one, gap = validity_gap(record["steps"])
    calibration = training.get("open_prob_calibration")
    calibration_text = (f"""

`open_prob` was chosen on the **validation** set among teachers trained alike but for it
(`zlab calibrate-open-prob`, {calibration.get("plan", {}).get("choose_seeds", "?")} seeds per prompt; each at its best g by the mean score of validity, named accuracy
and coverage; the guidance choice below later added the targets):

{calibration_table(calibration)}""" if calibration else "")
    precision = {"bf16": ", bf16 autocast", "no": ", fp32"}.get(config.get("mixed_precision"), "")
    length = f", {config['steps']} steps of batch {config['batch_size']}" if "steps" in config else ""
    return f"""# shapes-teacher: a tiny Z-Image trained on open Shapes captions

A stock diffusers `ZImagePipeline` folder (safetensors): tiny `ZImageTransformer2DModel` (refiners,
3-axis RoPE), tiny `AutoencoderKL` (16 latent channels, 8x), frozen random tiny Qwen3 with a
word-level tokenizer and a Qwen chat template, `FlowMatchEulerDiscreteScheduler` with a
resolution-dependent shift (`use_dynamic_shifting`: exp(mu) of the image-token count; the
published Z-Image checkpoints use a static shift instead). Nothing of zlab is needed to run it:

```python
import json
from diffusers import ZImagePipeline
pipe = ZImagePipeline.from_pretrained("checkpoints/shapes-teacher")
sampling = json.load(open("checkpoints/shapes-teacher/sampling.json"))
image = pipe("a red shape in the top row", **sampling).images[0]             # open: size, shape, column
image = pipe("a large blue triangle at the top left", **{{**sampling, "width": 96}}).images[0]  # 64 x 96
```

`sampling.json` (diffusers' `guidance_scale` g; the lab's CFG scale is s = g + 1):

```json
{json.dumps(sampling, indent=2)}
```

## What it was trained on

Open captions: `a [size] [colour] {{shape | "shape"}} [at the {{row}} {{column}} | in the {{row}} row | in the {{column}} column]`.
A caption names some attributes and leaves the rest open; the image is a uniform draw from the specs the
training split allows with the named ones (held-out colour-shape pairs are never rendered). Each attribute
was left open with probability {config.get("open_prob", "?")}, drawn afresh at each step, and only the captions of the
**train** prompt set (`zlab.shapes.prompt_sets`) were used: no validation or test caption was ever seen. Three
aspect buckets, (height, width) = {config.get("image_sizes", "?")}, one per batch.{calibration_text}

## How it was made

`zlab make-teacher --out checkpoints/shapes-teacher` (configs `configs/shapes-vae.toml`,
`configs/shapes-teacher.toml`): the VAE on train-split renders (L1 + small KL), its latent shift and scale
measured on data; then flow matching with velocity target, logit-normal t with each bucket's resolution
shift, caption dropout for CFG, EMA with warm-up (the EMA weights ship), gradient clipping{precision}{length}.
Measured wall time on the 2-core CPU: {time_text}{measure_text} {record["measure_s"] / 60:.1f} min.
VAE round trips of 500 fresh renders per bucket: {vae_text or "not recorded"}.
{training.get("notes", "")}

The guidance scale was chosen on the **validation** set ({plan["choose_per_count"]} prompts per number of open
attributes up to 1, {open2_text} with 2+ open, {plan["choose_seeds"]} seeds each, and every fully named validation prompt at {plan["named_seeds"]} seeds; 50 steps)
against the targets the test set is held to: fully
named joint accuracy >= 0.95, and on prompts with 2+ open attributes validity, named accuracy >= 0.90 and
coverage >= 0.85. The chosen g falls least short of them (shortfall: the sum of the misses; 0 meets all),
a tie going to the higher score (the mean of validity, named accuracy and coverage over all prompts).

{SWEEP_HEADER}
{sweep_text}

## Measured on the test set, through stock ZImagePipeline

Every number below is on **test** prompts and seeds, never used to choose anything; ± is one standard error
across prompts. Measures (`zlab.shapes.metrics`): *validity* (one clean object: one foreground region of at
least 8 px and no other, a palette colour, a template's shape), *named accuracy* (valid and every named
attribute right), *coverage* of the open attributes (normalised entropy; renders of the allowed distribution
reach about 0.94 at 16 seeds, since a finite sample is never exactly uniform), the total-variation distance
to the allowed distribution and the share of allowed values seen.

### Fully named prompts, at each aspect bucket (50 steps, sampling.json)

{named_table(record["named"])}

### Steps, with and without CFG, by number of open attributes

{plan["steps_per_count"]} test prompts per number of open attributes (fewer where the set has fewer),
{plan["steps_seeds"]} seeds each, 64 x 64. On prompts with at least two open attributes the 50-step teacher is
valid {fifty:.3f} of the time and the 1-step teacher without CFG {one:.3f}: a gap of **{gap:.3f}**, what
a few-step student has to close.

{steps_tables(record["steps"])}
"""


def objective(config: dict) -> str:
    """The student's loss in words, from its config (``adv_weight``, ``regression_weight``, ``loss``)."""
    ladd = config.get("ladd", {})
    adv, reg = ladd.get("adv_weight", 1.0), ladd.get("regression_weight", 0.0)
    regression = (f"MSE of its x0_hat to the teacher's sample of the same starting noise (regression distillation, "
                  f"Luhman and Luhman 2021), weight {reg:g}")
    if not adv:
        return f"regression alone: {regression}; the heads train beside it as a probe and never reach the student"
    adversarial = f"the adversarial loss ({ladd.get('loss', '?')}, weight {adv:g})"
    return f"{adversarial} plus {regression}" if reg else f"{adversarial} alone"


def student_title(config: dict) -> str:
    """The model card's title: a LADD student, a regression-distilled one, LADD plus regression, or DMD."""
    if config.get("method") == "dmd":
        steps = "one-step" if shipped_steps(config) == 1 else "1/2/4-step"
        return f"{student_folder(config)}: a {steps} distribution-matching (DMD) student of shapes-teacher"
    ladd = config.get("ladd", {})
    adv, reg = ladd.get("adv_weight", 1.0), ladd.get("regression_weight", 0.0)
    kind = "regression-distilled" if not adv else "LADD + regression" if reg else "LADD"
    return f"{student_folder(config)}: a 1/2/4-step {kind} student of shapes-teacher"


def shipped_steps(config: dict) -> int:
    """The steps a student ships with (its ``sampling.json``): 1 for a student trained at t = 1 only (a DMD
    ``student_probs`` of [1, 0, 0, 0]), else 4."""
    probs = config.get("dmd", {}).get("student_probs") if config.get("method") == "dmd" else None
    return 1 if probs is not None and list(probs) == [1.0, 0.0, 0.0, 0.0] else 4


def student_folder(config: dict) -> str:
    """The shipped folder's name under ``checkpoints/``: the regression baseline, the (LADD) student, or DMD's."""
    if config.get("method") == "dmd":
        return "shapes-dmd"
    ladd = config.get("ladd", {})
    return "shapes-student" if ladd.get("adv_weight", 1.0) else "shapes-regression"


def timings_text(timings: dict[str, float]) -> str:
    """``{"synth_s": 582.0, "measure_and_ship_s": 468.0}`` as ``synth 9.7 min, measure and ship 7.8 min``."""
    return ", ".join(f"{k.removesuffix('_s').replace('_', ' ')} {v / 60:.1f} min" for k, v in timings.items())


def student_card(sampling: dict, record: dict) -> str:
    """The student's card (README.md): how to sample it, how it was made, and what was measured (``record``)."""
    time_text = timings_text(record.get("timings", {}))
    if record.get("trained_earlier_in"):
        time_text += (f" (the training had finished earlier in `{record['trained_earlier_in']}`, which this run "
                      "resumed: its time is not in this figure)")
    elif record.get("resumed"):
        time_text += " (a resumed run: the stages and steps finished before its restart are not in these times)"
    config = json.loads(json.dumps(record.get("config", {})))  # as eval.json stores it: tuples read as lists
    buckets = config.get("data", {}).get("sizes") or ()
    bucket_text = (" at the aspect buckets " + ", ".join(f"{h}x{w}" for h, w in buckets) + " (each batch from one)"
                   if buckets else "")
    made = (dmd_made if config.get("method") == "dmd" else ladd_made)(config, record, bucket_text, time_text)
    return f"""# {student_title(config)}

A stock diffusers `ZImagePipeline` folder. Its scheduler has `shift = 1` and no dynamic shift, so
the stock call samples at exactly the timesteps the student was trained at:

```python
from diffusers import ZImagePipeline
pipe = ZImagePipeline.from_pretrained("checkpoints/{student_folder(config)}")
image = pipe("a large red circle at the top left", num_inference_steps={shipped_steps(config)}, guidance_scale=0.0).images[0]
```

Lab times per N, read back from the shipped scheduler: {json.dumps(record.get("schedule", {}))}.
{sampling_text(record)}

`sampling.json`: `{json.dumps(sampling)}`. {critic_text(config)}

## How it was made

{made}

## Measured through stock ZImagePipeline (`zlab.measure.evaluate`, one run)

Fully named captions of the train colour-shape pairs (all 270, some of them validation and test prompts of
`zlab.shapes.prompt_sets`) and the 54 held-out-pair captions, one seed each:

{format_table(record.get("rows", []))}
{open_section(record.get("open"))}
The side-by-side comparison with the teacher is `zlab compare` and lab 06.
"""


def start_text(config: dict, record: dict) -> str:
    """Where the student started: the teacher, a shipped folder, or a stage trained first in the same command."""
    stage = record.get("init_stage")
    if stage:
        steps = stage.get("config", {}).get("train", {}).get("steps", "?")
        return (f"initialised from the student of `{stage['recipe']}` ({steps} steps), trained first in the same "
                "command on the same synthetic pairs")
    init = config.get("train", {}).get("student_init")
    return f"initialised from `{init}`" if init else "initialised from the teacher"


def synth_text(data: dict, record: dict) -> str:
    """How the teacher made the synthetic pairs: its own ``sampling.json`` or another guidance, and whether the
    samples the world's checker rejects were dropped (with the count the run's log kept)."""
    g = data.get("guidance_scale", -1.0)
    text = ("with its own `sampling.json` (50 steps + CFG)" if g is None or g < 0
            else f"at its `sampling.json`'s 50 steps with CFG at g = {g:g} (diffusers' scale; lab s = {g + 1:g})")
    if data.get("drop_rejected"):
        checked = (record.get("init_stage") or record).get("log", {}).get("synth_checked") or {}
        count = (f": {checked['rejected']} of {checked['kept'] + checked['rejected']}" if {"kept", "rejected"} <= set(checked)
                 else "")
        text += f", the samples the world's checker rejects dropped{count}"
    return text


def ladd_made(config: dict, record: dict, bucket_text: str, time_text: str) -> str:
    """The card's "How it was made" for a LADD (or regression) student."""
    ladd, data, train = (config.get(section, {}) for section in ("ladd", "data", "train"))
    return f"""`zlab make-student --config {record.get("config_file", "configs/shapes-ladd.toml")}` (LADD, Sauer et al. 2024):
teacher samples {synth_text(data, record)} for the {len(prompt_sets.prompts("train"))} train prompts of `zlab.shapes.prompt_sets` (fully named and open captions) x
{data.get("rounds", "?")} seed(s){bucket_text}; student
{start_text(config, record)}, trained on {objective(config)} for
{train.get("steps", "?")} steps of batch {train.get("batch_size", "?")} at learning rate {train.get("student_lr", "?")} (heads
{train.get("heads_lr", "?")}){heads_extras(config)}; heads on teacher blocks
{ladd.get("blocks", "?")}; t_hat ~ LogitNormal({ladd.get("t_hat_m", "?")}, {ladd.get("t_hat_s", "?")});
student timesteps {{1, .75, .5, .25}} with p = {ladd.get("warmup_probs", "?")} for the first
{ladd.get("warmup_steps", "?")} steps, then {ladd.get("full_probs", "?")}{backward_sim_text(ladd)}.{heads_text(record)}{
    f" The shipped weights are the EMA (decay {train['ema_decay']}, with warm-up) of the student's weights."
    if train.get("ema_decay") else ""} Measured wall time on the 2-core CPU: {time_text}."""


def dmd_made(config: dict, record: dict, bucket_text: str, time_text: str) -> str:
    """The card's "How it was made" for a DMD student: the two directions, their noise laws, the fake score."""
    dmd, data, train = (config.get(section, {}) for section in ("dmd", "data", "train"))
    law = lambda name: (lambda n: f"{n.get('law', '?')} on [{n.get('low', '?')}, {n.get('high', '?')}]"
                        + (" below the student's input time" if n.get("below_t") else ""))(dmd.get(name, {}))
    start = start_text(config, record)
    anchor = (f" plus a regression anchor to the teacher's sample of the same noise (weight {dmd['regression_weight']:g})"
              if dmd.get("regression_weight") else "")
    if dmd.get("gan_weight"):
        anchor += (f", plus DMD2's GAN term (weight {dmd['gan_weight']:g}: hinge heads on the teacher's blocks "
                   f"{dmd.get('gan_blocks', '?')} at t ~ {law('gan_noise')}, trained beside the fake score)")
    return f"""`zlab make-student --config {record.get("config_file", "configs/shapes-dmd.toml")}` (distribution matching: DMD, Yin et al. 2024; DMD2,
Yin et al. 2024; decoupled as in Liu et al. 2025, the recipe behind Z-Image-Turbo). The student, {start}, maps
noise to a sample in one step and moves along the teacher's pull at a re-noised copy of its sample: distribution
matching (teacher minus fake score, weight {dmd.get("dm_weight", "?")}, tau {law("dm_noise")}) and {ca_text(dmd, law)},
each normalised per sample as in DMD{anchor}. A fake score, a copy of the teacher, follows the student's samples by
flow matching, {dmd.get("fake_updates", "?")} updates per student update (DMD2's two-time-scale rule). Prompts: the
{len(prompt_sets.prompts("train"))} train prompts of `zlab.shapes.prompt_sets` x {data.get("rounds", "?")} teacher
seed(s){bucket_text}, drawn {synth_text(data, record)}. {train.get("steps", "?")} steps of batch {train.get("batch_size", "?")} at learning rate
{train.get("student_lr", "?")} (fake score {train.get("fake_lr", "?")}).{
    f" The shipped weights are the EMA (decay {train['ema_decay']}, with warm-up) of the student's weights."
    if train.get("ema_decay") else ""} Measured wall time on the 2-core CPU: {time_text}."""


def ca_text(dmd: dict, law) -> str:
    """The card's words for the CFG-augmentation term: its guidance, weight and noise law, or that it was off."""
    g = dmd.get("guidance_scale", 0.0)
    if dmd.get("ca_weight", 1.0) == 0:
        return "no CFG augmentation (weight 0: the student matches the unguided conditional teacher)"
    return (f"CFG augmentation\n(the teacher's guidance at g = {g:g}, i.e. s = {g + 1:g}, weight {dmd.get('ca_weight', '?')}, "
            f"tau {law('ca_noise')})")


def critic_text(config: dict) -> str:
    """The card's sentence on the critic shipped beside the pipeline."""
    if config.get("method") == "dmd":
        heads = (" `discriminator/` holds the GAN term's heads (the app's discriminator view reads them)."
                 if config.get("dmd", {}).get("gan_weight") else "")
        return ("`fake_score/` holds the trained fake score (a transformer of the teacher's architecture; the app's "
                "distribution-matching view reads it; diffusers ignores the folder)." + heads)
    return ("`discriminator/` holds the trained heads (used by the app's discriminator view; diffusers ignores the "
            "folder).")


def backward_sim_text(options: dict) -> str:
    """The card's clause on backward simulation, when it is on."""
    share = options.get("backward_sim", 0.0)
    return (f"; {share:.0%} of its t < 1 inputs made by its own sampler from pure noise (backward simulation, DMD2)"
            if share else "")


def heads_extras(config: dict) -> str:
    """The model card's words for the heads' options that are on: mismatched negatives, approximate R1, normalised
    text, caption tokens."""
    ladd = config.get("ladd", {})
    parts = [f"mismatched-caption negatives sharing the fake side (weight {ladd['mismatch_weight']:g})"
             if ladd.get("mismatch_weight") else "",
             f"approximate R1 (weight {ladd['r1_weight']:g})" if ladd.get("r1_weight") else "",
             "layer-normalised pooled text" if ladd.get("head_text_norm") else "",
             "each block's caption tokens beside its image map" if ladd.get("head_caption") else "",
             "a whole-image logit per head beside its map" if ladd.get("head_whole") else ""]
    parts = [p for p in parts if p]
    return "; the heads train with " + " and ".join(parts) if parts else ""


def heads_text(record: dict, last: int = 100) -> str:
    """The model card's sentence on what the heads told apart over the last ``last`` training steps (when the
    log has :func:`~zlab.distill.losses.head_calls`), and a warning when every head called every input fake."""
    calls = record.get("log", {}).get("head_calls") or []
    if not calls or not record.get("config", {}).get("ladd", {}).get("adv_weight"):
        return ""
    shares = mean_calls(calls, last)
    text = (f" Over the last {min(last, len(calls))} training steps the heads called real samples real / the "
            "student's samples fake in " + ", ".join(f"{r:.2f} / {f:.2f}" for r, f in shares) + " of cases (one pair per head).")
    if dead_heads(calls, last):
        text += (" **Every head called every input fake**: the adversarial term's gradient no longer said which "
                 "samples looked unlike the teacher's, so what this student learnt that was right came from its other "
                 "terms.")
    return text


def sampling_text(record: dict) -> str:
    """The model card's sentence on how the student steps between its times, and why (when chosen on validation)."""
    stochastic = record.get("stochastic_sampling", record.get("config", {}).get("ship", {}).get("stochastic_sampling", False))
    text = ("The scheduler has diffusers' `stochastic_sampling` on: between steps it re-noises the student's x0_hat "
            "with fresh noise, exactly the input LADD trains the student on (x_t = (1 - t) x0 + t eps with fresh eps). "
            "`ZImagePipeline` does not pass its generator to the scheduler, so that noise comes from torch's global "
            "RNG: call `torch.manual_seed` before sampling to repeat a picture." if stochastic else
            "Deterministic Euler steps between the trained times.")
    choice = record.get("sampling_choice")
    text += f" Chosen on validation: {choice['why']}." if choice else ""
    shift = record.get("shift", 1.0)
    if shift != 1.0:
        text += (f" The scheduler's static shift is {shift:g}: N steps start at {shift:g} t / (1 + {shift - 1:g} t) for "
                 "t in linspace(1, 1/N, N), not at the trained times themselves.")
    shift_choice = record.get("shift_choice")
    return text + (f" Time shift chosen on validation: {shift_choice['why']}." if shift_choice else "")


def open_section(rows: list[dict] | None) -> str:
    """The model card's open-prompt tables (test prompts), when measured."""
    if not rows:
        return ""
    tables = "\n\n".join(f"**{title}**, by number of open attributes:\n\n{format_open_table(rows, metric)}"
                          for metric, title in (("valid", "Validity"), ("named_accuracy", "Named accuracy"),
                                                ("coverage_entropy", "Coverage of the open attributes"),
                                                ("fd_teacher", "FD to the teacher's 50-step samples")))
    return f"""
## Open test prompts (`zlab.shapes.prompt_sets`)

No search chose a setting on these prompts: every search ran on validation. They are not untouched, though: lab
07's ablation grid measured LADD's claims on them, and the recipes took some of its findings (heads on the late
blocks, no mismatched-caption negatives, backward simulation) as the starting points of those searches.

Mean ± standard error across prompts; coverage is the normalised entropy of what the checker reads over the
seeds (renders reach about 0.94 at 16 seeds). A student that draws the same picture for every seed keeps its
validity and accuracy and loses its coverage.

{tables}
"""
