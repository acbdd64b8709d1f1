"""zlab.recipes.compare: the speed-up line of ``zlab compare`` and the table of ``zlab bench-speedup``."""

from zlab.recipes import compare

PAIRS = {"median": 12.34, "q25": 10.0, "q75": 14.5, "min": 8.0, "max": 20.0, "pairs": 24, "slow_ms": 123.44,
         "fast_ms": 10.0}


def test_the_speedup_line_states_median_quartiles_and_pairs_at_both_batch_sizes():
    batched = {**PAIRS, "median": 30.0, "q25": 28.04, "q75": 31.96, "pairs": 3}
    record = {"speedup_teacher50_student4": {"latency_batch1_paired": PAIRS, "throughput_batch64_paired": batched}}
    assert compare.format_speedup(record) == (
        "wall-clock teacher 50 steps + CFG / student 4 steps, per image, median of interleaved pairs: 12.3x at batch 1 "
        "(quartiles 10.0-14.5, 24 pairs), 30.0x at batch 64 (quartiles 28.0-32.0, 3 pairs)")
    one_step = compare.format_speedup({**record, "student_steps": 1})  # a one-step student's record says so
    assert one_step.startswith("wall-clock teacher 50 steps + CFG / student 1 step, per image")


def test_bench_speedup_yields_a_row_per_batch_size_and_prompt_padding(monkeypatch):
    calls = []

    def pipeline_speedup(teacher_path, teacher, student_path, student, rounds, batch_size=1, **override):
        calls.append((teacher, student, rounds, batch_size, override))
        return {**PAIRS, "median": float(batch_size)}

    monkeypatch.setattr(compare, "load_pipeline", lambda path: f"pipe {path}")
    monkeypatch.setattr(compare, "pipeline_speedup", pipeline_speedup)
    lines = list(compare.bench_speedup("ckpt/t", "ckpt/s", rounds=2))
    assert lines[0].startswith("teacher ckpt/t (sampling.json) vs student ckpt/s (sampling.json), per image, 2 rounds")
    assert lines[1] == compare.SPEEDUP_HEADER and len(lines) == 2 + 4
    assert [c[3:] for c in calls] == [(1, {}), (1, {"max_sequence_length": 512}),
                                      (64, {}), (64, {"max_sequence_length": 512})]
    assert calls[0][:3] == ("pipe ckpt/t", "pipe ckpt/s", 2)
    assert lines[2] == "| 1 | sampling.json | 123.4 | 10.0 | 1.00x | 10.00-14.50 | 8.00-20.00 |"
    assert lines[5].startswith("| 64 | stock default (512 tokens) | ") and "| 64.00x |" in lines[5]
