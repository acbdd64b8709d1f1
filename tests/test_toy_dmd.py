"""DMD on lab 01's toy: a one-step student that lands on the blobs without any (noise, sample) pairs."""

import torch

from zlab import toy
from zlab.toy_distill import dmd_student, mode_shares, off_mode_share, one_step, unconditional


def test_a_dmd_student_moves_one_step_samples_onto_every_blob():
    teacher, _ = toy.train_toy("linear", steps=1500, seed=0, progress=False, cond_drop=1.0)
    probe = torch.randn(3000, 2, generator=torch.Generator().manual_seed(99))
    before = toy.sample_toy(teacher, unconditional(teacher, 3000), steps=1, seed=99)
    student, log = dmd_student(teacher, steps=200, guidance=1.0, ca_weight=0.0, fake_updates=2, batch=256)
    with torch.no_grad():
        after = one_step(student, probe)
    assert off_mode_share(before) > 0.9  # the teacher's one step lands between the blobs
    assert off_mode_share(after) < 0.5 and mode_shares(after).min() > 0.05  # on the blobs, all six of them
    assert log["ca"] == [0.0] * 200 and len(log["dm"]) == 200  # guidance 1: no CFG augmentation
