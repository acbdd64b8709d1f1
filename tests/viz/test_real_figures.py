"""Lab 09's figures (zlab.viz.real) on small synthetic inputs: bars, lines, and the plotted values."""

import numpy as np
import pytest

from zlab.train.memory import MemoryEstimate
from zlab.viz.real import MEMORY_SEGMENTS, GiB, ladd_losses_figure, memory_plan_figure

EITHER = (("activations", "autocast weight copies"), ("student gradients",))   # as zlab.train.memory.predict


def _plan():
    lora = MemoryEstimate({"teacher weights": 12 * GiB, "student weights": GiB, "activations": 30 * GiB,
                           "student gradients": 2 * GiB}, either=EITHER)
    full = MemoryEstimate({"teacher weights": 12 * GiB, "optimizer state": 48 * GiB, "activations": 10 * GiB,
                           "autocast weight copies": 4 * GiB, "student gradients": 24 * GiB,
                           "gathered blocks (FSDP)": GiB}, either=EITHER)
    return {"lora, 1024²": lora, "full, 1024²": full}


def test_memory_plan_stacks_parts_in_gib():
    fig = memory_plan_figure(_plan())
    assert [t.name for t in fig.data[:-1]] == list(MEMORY_SEGMENTS) and fig.layout.barmode == "stack"
    assert list(fig.data[0].x) == ["lora, 1024²", "full, 1024²"]
    assert list(fig.data[0].y) == [12, 12] and list(fig.data[4].y) == [0, 48]   # missing parts are 0
    assert list(fig.data[-1].y) == [30, 24]   # the larger of activations (+ copies) and gradients
    for i, estimate in enumerate(_plan().values()):   # the bar tops at the estimate's peak
        assert sum(t.y[i] for t in fig.data) * GiB == pytest.approx(estimate.total)


def test_a_dmd_plan_tops_at_the_larger_update():
    dmd = MemoryEstimate({"teacher weights": 12 * GiB, "student weights": GiB, "fake score weights": GiB,
                          "student activations": 9 * GiB, "student gradients": GiB, "fake score activations": 10 * GiB,
                          "fake score gradients": GiB},
                         either=(("student activations",), ("student gradients",), ("fake score activations",),
                                 ("fake score gradients",)))
    fig = memory_plan_figure({"dmd": dmd})
    assert fig.data[2].name == "fake score weights" and list(fig.data[2].y) == [1] and list(fig.data[-1].y) == [10]
    assert sum(t.y[0] for t in fig.data) * GiB == pytest.approx(dmd.total)


def test_memory_plan_marks_each_gpu():
    fig = memory_plan_figure(_plan(), gpus=((80e9, "80 GB"),))
    assert [s.y0 for s in fig.layout.shapes] == [pytest.approx(80e9 / GiB)]
    assert [a.text for a in fig.layout.annotations] == ["80 GB"]
    assert len(memory_plan_figure(_plan()).layout.shapes) == 2


def test_ladd_losses_two_lines():
    log = {"d_loss": [2.0, 1.5, 1.2], "g_loss": [0.5, 0.7, 0.9], "head_acc": [0.5, 0.6, 0.7]}
    fig = ladd_losses_figure(log)
    assert [t.name for t in fig.data] == ["D (hinge, summed over heads)", "G (L_adv)"]
    np.testing.assert_array_equal(fig.data[0].y, log["d_loss"])
    np.testing.assert_array_equal(fig.data[1].y, log["g_loss"])
    assert fig.layout.title.text == "LADD losses"
