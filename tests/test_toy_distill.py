"""Regression distillation on the 2-D toy: paired learns the teacher's map, unpaired falls to the mean."""

import pytest
import torch

from zlab import toy
from zlab.toy_distill import off_mode_share, one_step, regression_student, teacher_pairs, unconditional


def test_off_mode_share_of_data_and_of_the_centre():
    data, _ = toy.sample_data(4000, seed=5)
    assert off_mode_share(data) == pytest.approx(0.135, abs=0.03)  # e^-2: a 2-D Gaussian beyond 2 std
    assert off_mode_share(torch.zeros(10, 2)) == 1.0 and off_mode_share(toy.class_centres()) == 0.0


def test_paired_regression_learns_the_map_and_unpaired_falls_to_the_mean():
    teacher, _ = toy.train_toy("linear", steps=800, seed=0, progress=False, cond_drop=1.0)  # unconditional
    noise, target = teacher_pairs(teacher, 4000, steps=20, seed=1)
    test_noise = torch.randn(2000, 2, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        naive = off_mode_share(one_step(teacher, test_noise))
        paired, losses = regression_student(teacher, noise, target, paired=True, steps=400)
        unpaired, _ = regression_student(teacher, noise, target, paired=False, steps=400)
        x_paired, x_unpaired = one_step(paired, test_noise), one_step(unpaired, test_noise)
    assert losses[-1] < losses[0] / 5
    assert naive > 0.9  # the teacher's own one step lands between the modes
    assert off_mode_share(x_paired) < 0.5 * naive
    assert off_mode_share(x_unpaired) > 0.9 and float(x_unpaired.norm(dim=1).mean()) < 0.6  # the mean of the blobs
    assert unconditional(teacher, 3).tolist() == [toy.NUM_CLASSES] * 3
    with pytest.raises(ValueError, match="noises and"):
        regression_student(teacher, noise, target[:10])
