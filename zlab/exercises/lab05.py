"""Lab 05's exercises: how much of the student's error the heads see at t_hat; the heads' loss with mismatched-caption
negatives, added or sharing the fake side; the gradient the student gets through L_adv."""

from __future__ import annotations

import math

import torch

from zlab import flow
from zlab.distill import losses
from zlab.distill.ladd import LADDBatch, LADDForward, LADDOptions, heads_loss
from zlab.exercises.core import Wrong, call, close, exercise

MEANS = (-2.0, -1.0, 0.0, 1.0, 2.0)
LOGITS = torch.linspace(-2.0, 2.0, 17, dtype=torch.float64)  # inside and outside the hinge's margin [-1, 1]
WEIGHTS = (0.5, 1.0, 2.0)
KINDS = losses.LOSSES


def _error_to_noise(m: float) -> float:
    """At the median t_hat = sigmoid(m) (for any s): the student's error left in the fake-minus-real gap over the shared
    noise's std, both read off ``flow.add_noise`` with a unit error and a unit noise."""
    t = torch.sigmoid(torch.tensor(m, dtype=torch.float64))
    one, zero = torch.ones(()), torch.zeros(())
    gap = flow.add_noise(one, zero, t) - flow.add_noise(zero, zero, t)  # (1 - t) per unit of x0_hat - x0
    noise = flow.add_noise(zero, one, t)  # t per unit of eps'
    return float(gap / noise)


@exercise("05.error_to_noise",
          lambda: lambda m: 1 - 1 / (1 + math.exp(-m)),  # the error's share alone, not measured against the noise
          lambda: lambda m: math.exp(m),  # the ratio upside down
          lambda: lambda m: math.exp(-2 * m))  # a ratio of variances, not of amplitudes
def check_error_to_noise(ratio) -> None:
    """``ratio(m)``: at the median t_hat of LogitNormal(m, s), (1 - t_hat) / t_hat, the student's error left in the
    gap between the heads' fake and real inputs per unit of the shared noise's std."""
    for m in MEANS:
        close(f"ratio({m})", float(call(ratio, m)), _error_to_noise(m), rtol=1e-4, atol=1e-6)


def _library_heads_loss(a: float, w: float, shared: bool) -> float:
    """The heads' hinge loss when one head gives logit ``a`` to a real sample, a fake and the real sample under a wrong
    caption. Shared: :func:`zlab.distill.ladd.heads_loss` itself (a stand-in head that answers ``a`` to everything);
    added: its parts from :mod:`zlab.distill.losses`, the negatives on top of the fake side (the first recipe)."""
    logit = lambda n: torch.full((n, 1, 1, 1), a, dtype=torch.float64)
    if not shared:
        return float(losses.real_side([logit(1)]) + losses.fake_side([logit(1)]) + w * losses.fake_side([logit(1)]))
    x, one = torch.zeros(1, 1, 1, 1), torch.ones(1)
    batch = LADDBatch(x0=x, embeds=[x], text=torch.zeros(1, 1), t=one, eps=x, t_hat=one, eps_hat=x,
                      wrong_text=torch.zeros(1, 1), wrong=one)
    fwd = LADDForward(x0_hat=x, real_maps=[x], fake_maps=[x])
    d_loss, _, _ = heads_loss(lambda maps, t_hat, text: [logit(len(t_hat))], fwd, batch,
                              LADDOptions(mismatch_weight=w, loss="hinge"))
    return float(d_loss)


def _relu(a):
    return torch.relu(torch.as_tensor(a, dtype=torch.float64))


@exercise("05.negatives_loss",
          lambda: lambda a, w, shared: _relu(1 - a) + (1 + w) * _relu(1 + a),  # added, whatever `shared` says
          lambda: lambda a, w, shared: _relu(1 - a) + (_relu(1 + a) if shared else 2 * _relu(1 + a)),  # w taken as 1
          lambda: lambda a, w, shared: _relu(1 - a) + _relu(1 + a) / (1 + w) + w * _relu(1 + a))  # only the fakes shared
def check_negatives_loss(head_loss) -> None:
    """``head_loss(a, w, shared)``: the heads' hinge loss (one head) at logit ``a`` (a tensor of values) given alike to
    a real sample, a fake and a mismatched negative of weight ``w``: negatives sharing the fake side (``shared``,
    ``zlab.distill.ladd.heads_loss``) or added on top of it."""
    for shared in (True, False):
        for w in WEIGHTS:
            target = torch.tensor([_library_heads_loss(float(a), w, shared) for a in LOGITS], dtype=torch.float64)
            value = call(head_loss, LOGITS.clone(), w, shared)
            try:
                close(f"head_loss(a, w={w}, shared={shared})", value, target, rtol=1e-6, atol=1e-6)
            except Wrong as reason:
                raise Wrong(f"{reason}; it should hold at every a in [-2, 2], inside and outside the margin") from None


def _library_grad(d: torch.Tensor, kind: str) -> torch.Tensor:
    """d L_adv / d logits of ``zlab.distill.losses.generator_loss`` for one head's logit map, by autograd."""
    d = d.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(losses.generator_loss([d], kind), d)
    return grad


def _fake_logit_maps() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    return [3 * torch.randn(2, 1, 4, 4, generator=generator, dtype=torch.float64),  # mixed verdicts
            torch.full((3, 1, 2, 2), -5.0, dtype=torch.float64),  # every fake confidently called fake
            torch.full((1, 1, 3, 3), 4.0, dtype=torch.float64)]  # every fake called real


@exercise("05.generator_grad",
          lambda: lambda d, kind: -((d > -1).to(d.dtype) if kind == "hinge" else torch.sigmoid(-d)) / d.numel(),  # hinge flat
          lambda: lambda d, kind: -(torch.ones_like(d) if kind == "hinge" else torch.sigmoid(d)) / d.numel(),  # saturating
          lambda: lambda d, kind: -(torch.ones_like(d) if kind == "hinge" else torch.sigmoid(-d)))  # no mean over positions
def check_generator_grad(grad) -> None:
    """``grad(d, kind)``: the gradient of the student's L_adv (``zlab.distill.losses.generator_loss([d], kind)``) with
    respect to one head's fake logit map ``d`` (B, 1, h, w), for the hinge and the non-saturating loss."""
    for kind in KINDS:
        for d in _fake_logit_maps():
            close(f"grad(d of shape {tuple(d.shape)}, {kind!r})", call(grad, d.clone(), kind), _library_grad(d, kind),
                  rtol=1e-6, atol=1e-9)
