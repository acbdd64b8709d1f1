"""The heads' view of a real / fake pair across t_hat (labs 04-05, the app)."""


import torch
from tiny_ladd import PROMPTS


def test_discriminator_view_sweeps_t_hat(teacher_and_data, tiny_pipe):
    from zlab.distill.heads import Discriminator
    from zlab.features import FeatureTap
    from zlab.measure.discriminator_view import feature_gap, sweep_t_hat, view_pair
    from zlab.zimage import encode_prompts

    embeds = encode_prompts(tiny_pipe, PROMPTS[:2])
    real, fake = torch.randn(2, 16, 8, 8), torch.randn(2, 16, 8, 8)
    tap = FeatureTap(tiny_pipe.transformer, (0, 3))
    disc = Discriminator((0, 3), tiny_pipe.transformer.config.dim, embeds[0].shape[-1], hidden=8)
    same = view_pair(tap, real, real.clone(), embeds, 0.5)
    assert feature_gap(same) == [0.0, 0.0]
    torch.testing.assert_close(same.real_noisy, same.fake_noisy)
    out = sweep_t_hat(tap, real, fake, embeds, [0.1, 0.5, 0.9], disc=disc)
    assert out["gap"].shape == (3, 2) and out["real"].shape == (3, 2) and out["fake"].shape == (3, 2)
    assert out["gap"][0].mean() > out["gap"][-1].mean()  # noise hides the difference as t_hat -> 1
    assert out["sample_gap"].shape == (3, 2, 2)  # (t_hat, pair, block)
    alone = sweep_t_hat(tap, real[:1], fake[:1], embeds[:1], [0.1, 0.5, 0.9])  # the first pair, same noise, by itself
    torch.testing.assert_close(out["sample_gap"][:, 0], alone["gap"])
