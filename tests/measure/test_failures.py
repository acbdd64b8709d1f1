"""zlab.measure.failures: how samplers fail, on the same prompts and seeds."""

from collections import Counter

from tiny_ladd import SAMPLING

from zlab.measure.failures import failure_shares, format_failures


def test_failure_table_gives_each_arms_shares_on_the_same_images():
    counts = {"a": Counter({"✓": 3, "too large": 1}), "b": Counter({"several regions": 2, "✓": 2})}
    table = format_failures(counts)
    assert table.splitlines()[0] == "| sampler | images | valid and right | several regions | too large | other |"
    assert "| a | 4 | 0.75 | 0.00 | 0.25 | 0.00 |" in table and "| b | 4 | 0.50 | 0.50 | 0.00 | 0.00 |" in table
    assert format_failures(counts, top=1).splitlines()[2] == "| a | 4 | 0.75 | 0.00 | 0.25 |"  # the rest pooled


def test_failure_shares_sample_every_arm(tiny_pipe):
    tiny_pipe.set_progress_bar_config(disable=True)
    arms = {"one": (tiny_pipe, {**SAMPLING, "num_inference_steps": 1}), "two": (tiny_pipe, SAMPLING)}
    counts = failure_shares(arms, ["a red shape", "a shape"], [0, 1])
    assert set(counts) == {"one", "two"} and all(sum(c.values()) == 2 for c in counts.values())
