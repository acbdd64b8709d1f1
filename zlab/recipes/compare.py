"""Teacher against student in one run, every row through stock ``ZImagePipeline`` (``zlab compare``, lab 06):
accuracy, FD, NFE and latency per setting, and the wall-clock speed-up from interleaved pairs
(``zlab bench-speedup``: the speed-up alone, at batch 1 and 64, with two prompt paddings)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from diffusers import ZImagePipeline

from zlab.distill.schedule import STUDENT_STEPS
from zlab.distill.student import student_pipeline
from zlab.measure.evaluate import evaluate_settings, latency_ms, paired_speedup
from zlab.measure.settings import Setting, by_label, student_steps, teacher_steps
from zlab.recipes.student import student_settings
from zlab.shapes.net import ShapesNet
from zlab.shapes.world import enumerate_captions
from zlab.zimage import load_pipeline, read_sampling


def comparison(teacher: ZImagePipeline, teacher_sampling: dict, student: ZImagePipeline, net: ShapesNet, seeds=(0,),
               include_init: bool = True, evaluate=evaluate_settings, latency_prompts: int = 8) -> list[dict]:
    """The issue's side-by-side table, every row through stock ``ZImagePipeline`` in one run.

    Teacher with ``teacher_sampling`` (its ``sampling.json``: 50 steps + CFG), teacher at N = 1, 2, 4 Euler steps with the
    same CFG and without CFG, the student at N = 1, 2, 4; with ``include_init`` also the student's
    starting point (the teacher's weights on the student's shift-1 schedule), which shows what the
    adversarial training itself added. ``evaluate(pipe, settings, net, seeds=...)`` may be swapped for
    a quicker measurement (lab 06 in small-run mode). Each row also gets the batch-1 latency
    (:func:`zlab.measure.evaluate.latency_ms`, median over ``latency_prompts`` train prompts).
    """
    base = {"height": 64, "width": 64, **teacher_sampling}
    settings = {Setting("teacher", 50, cfg=True, note="sampling.json").label: base, **by_label(teacher_steps(STUDENT_STEPS), base)}
    student_base = {"guidance_scale": 0.0, **{k: base[k] for k in ("height", "width", "max_sequence_length") if k in base}}
    plan = [(teacher, settings)]
    if include_init:
        init = student_pipeline(teacher, teacher.transformer)
        plan.append((init, by_label(student_steps("LADD start (teacher weights, student schedule),"), student_base)))
    plan.append((student, student_settings(student_base)))
    rows = []
    timed = enumerate_captions("train")[::max(1, 270 // max(1, latency_prompts))][:latency_prompts]
    for pipe, group in plan:
        group_rows = evaluate(pipe, group, net, seeds=seeds)
        for row in group_rows:
            if timed:
                row["latency_ms"] = latency_ms(pipe, group[row["setting"]], timed, list(range(len(timed))))
        rows += group_rows
    return rows


def speedup(rows: list[dict], slow: str = Setting("teacher", 50, cfg=True, note="sampling.json").label,
            fast: str = Setting("student", 4).label,
            key: str = "latency_ms") -> float:
    """Wall-clock ratio of two rows measured in the same run: batch-1 latency (``key="latency_ms"``)
    or batch-64 throughput (``key="ms_per_image"``)."""
    by_name = {r["setting"]: r for r in rows}
    return by_name[slow][key] / by_name[fast][key]


def pipeline_speedup(teacher_path, teacher, student_path, student, rounds: int, batch_size: int = 1, **override) -> dict:
    """Teacher (its sampling.json) / student (its sampling.json), interleaved: 8 train prompts one at a
    time, or 64 train prompts in one batch, per round."""

    teacher.set_progress_bar_config(disable=True)
    student.set_progress_bar_config(disable=True)
    prompts = enumerate_captions("train")[::34] if batch_size == 1 else enumerate_captions("train")[::4][:batch_size]
    return paired_speedup(teacher, {**read_sampling(teacher_path), **override}, student,
                          {**read_sampling(student_path), **override}, prompts, rounds=rounds, batch_size=batch_size)


def compare_record(teacher_path: str, student_path: str, shapes_net: str, seeds=(0,), rounds: int = 5) -> dict:
    """What ``zlab compare --out`` writes: :func:`comparison` rows and the paired speed-ups at batch 1 and 64."""
    teacher, student = load_pipeline(teacher_path), load_pipeline(student_path)
    steps = read_sampling(student_path)["num_inference_steps"]  # the speed-ups are at the student's own steps
    # the "LADD start" rows (teacher weights on the student's schedule) say what LADD added to its starting point;
    # a student initialised elsewhere (DMD's, from the regression student) did not start there
    rows = comparison(teacher, read_sampling(teacher_path), student, ShapesNet.load(shapes_net), seeds=seeds,
                      include_init=steps == 4)
    paired = pipeline_speedup(teacher_path, teacher, student_path, student, rounds)
    batched = pipeline_speedup(teacher_path, teacher, student_path, student, rounds, batch_size=64)
    return {"rows": rows, "student_steps": steps, "speedup_teacher50_student4": {
        "latency_batch1": paired["median"], "latency_batch1_paired": paired,
        "throughput_batch64": batched["median"], "throughput_batch64_paired": batched}}


def format_speedup(record: dict) -> str:
    """The paired speed-ups of a :func:`compare_record` in one line: median and quartiles at batch 1 and 64."""
    speedup = record["speedup_teacher50_student4"]  # the key of the first records; the student's steps beside it
    paired, batched = speedup["latency_batch1_paired"], speedup["throughput_batch64_paired"]
    student = Setting("student", record.get("student_steps", 4)).label
    return (f"wall-clock teacher 50 steps + CFG / {student}, per image, median of interleaved pairs: "
            f"{paired['median']:.1f}x at batch 1 (quartiles {paired['q25']:.1f}-{paired['q75']:.1f}, {paired['pairs']} "
            f"pairs), {batched['median']:.1f}x at batch 64 (quartiles {batched['q25']:.1f}-{batched['q75']:.1f}, "
            f"{batched['pairs']} pairs)")


# prompt padding of the benchmark: the checkpoints' own (Shapes prompts are short) and the stock pipeline's default
PADDINGS = (("sampling.json", {}), ("stock default (512 tokens)", {"max_sequence_length": 512}))
SPEEDUP_HEADER = ("| batch | prompt padding | teacher ms/image | student ms/image | ratio: median | quartiles | min-max |\n"
                  "|---|---|---|---|---|---|---|")


def format_speedup_row(batch_size: int, padding: str, pairs: dict) -> str:
    """One :func:`pipeline_speedup` as a row under :data:`SPEEDUP_HEADER`."""
    return (f"| {batch_size} | {padding} | {pairs['slow_ms']:.1f} | {pairs['fast_ms']:.1f} | {pairs['median']:.2f}x | "
            f"{pairs['q25']:.2f}-{pairs['q75']:.2f} | {pairs['min']:.2f}-{pairs['max']:.2f} |")


def bench_speedup(teacher_path: str, student_path: str, rounds: int = 3,
                  batch_sizes: Sequence[int] = (1, 64)) -> Iterator[str]:
    """``zlab bench-speedup``: the lines of a table of :func:`pipeline_speedup` at each batch size and each of
    :data:`PADDINGS`, each row yielded as soon as it is measured (the whole table takes minutes)."""
    teacher, student = load_pipeline(teacher_path), load_pipeline(student_path)
    yield (f"teacher {teacher_path} (sampling.json) vs student {student_path} (sampling.json), per image, {rounds} "
           "rounds, teacher and student calls interleaved (batch 1: 8 prompts a round; batch 64: one batch)")
    yield SPEEDUP_HEADER
    for batch_size in batch_sizes:
        for padding, override in PADDINGS:
            pairs = pipeline_speedup(teacher_path, teacher, student_path, student, rounds, batch_size, **override)
            yield format_speedup_row(batch_size, padding, pairs)


def findings(record: dict, images: int | None = None) -> str:
    """What a ``zlab compare`` record says, as Markdown lines with their uncertainty: per N, the student against the
    teacher cut to N steps with its CFG (joint accuracy on fully named train prompts, mean ± binomial SE over
    ``images`` images per setting, default one seed per train prompt as ``zlab compare`` makes it; FD, one number
    per setting), the student's diversity relative to renders beside the teacher's at its recipe (above 1: more spread
    than a fully named caption's renders have, i.e. wrong or broken samples), and the paired wall-clock speed-ups
    (median and quartiles of interleaved pairs)."""
    n = images or len(enumerate_captions("train"))
    se = lambda p: (p * (1 - p) / n) ** 0.5  # noqa: E731
    by = {r["setting"]: r for r in record["rows"]}
    top = by[Setting("teacher", 50, cfg=True, note="sampling.json").label]
    lines = [f"Joint accuracy over {n} images per setting (mean ± SE); FD is one measurement, no SE."]
    for step in STUDENT_STEPS:
        s, t = by[Setting("student", step).label], by[Setting("teacher", step, cfg=True).label]
        diff, diff_se = s["acc_joint"] - t["acc_joint"], (se(s["acc_joint"]) ** 2 + se(t["acc_joint"]) ** 2) ** 0.5
        lines.append(f"- N = {step}: student {s['acc_joint']:.3f} ± {se(s['acc_joint']):.3f} vs teacher + CFG "
                     f"{t['acc_joint']:.3f} ± {se(t['acc_joint']):.3f} (difference {diff:+.3f} ± {diff_se:.3f}); "
                     f"FD {s['fd']:.1f} vs {t['fd']:.1f}; diversity {s['diversity']:.2f} x the renders' (teacher at "
                     f"50 steps: {top['diversity']:.2f})")
    lines.append(f"- teacher at 50 steps + CFG: joint accuracy {top['acc_joint']:.3f} ± {se(top['acc_joint']):.3f}")
    student = Setting("student", record.get("student_steps", 4)).label
    for key, label in (("latency_batch1_paired", "batch 1 (latency)"), ("throughput_batch64_paired", "batch 64 (throughput)")):
        pairs = record["speedup_teacher50_student4"].get(key)
        if pairs:
            lines.append(f"- wall clock, teacher 50 steps + CFG / {student} at {label}: {pairs['median']:.1f}x, "
                         f"quartiles {pairs['q25']:.1f}x-{pairs['q75']:.1f}x over {pairs['pairs']} interleaved pairs "
                         f"({pairs['slow_ms']:.1f} vs {pairs['fast_ms']:.1f} ms per image)")
    return "\n".join(lines)
