"""What the heads call real and what fake, step by step: the diagnostics a LADD run logs and a card reports.

A head's accuracy alone hides a dead head (one that calls every input fake reads 0.5 in accuracy), so the trainer also
logs, per head, the share of real samples called real and of fakes called fake (:func:`head_calls`).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor


def head_accuracy(real: Sequence[Tensor], fake: Sequence[Tensor]) -> list[float]:
    """Per head: the fraction of samples it calls right (mean logit > 0 on real, < 0 on fake)."""
    return [(r_share * len(r) + f_share * len(f)) / (len(r) + len(f))
            for (r_share, f_share), r, f in zip(head_calls(real, fake), real, fake, strict=True)]


def head_calls(real: Sequence[Tensor], fake: Sequence[Tensor]) -> list[tuple[float, float]]:
    """Per head: (share of real samples called real, share of fake samples called fake), by mean logit.

    :func:`head_accuracy` alone hides a dead head: one that calls every input fake reads 0.5 there and
    ``(0.0, 1.0)`` here. The student's ``L_G = -D`` still has a gradient through such a head, but one that no longer
    says which samples look unlike the teacher's.
    """
    return [((r.flatten(1).mean(1) > 0).float().mean().item(), (f.flatten(1).mean(1) < 0).float().mean().item())
            for r, f in zip(real, fake, strict=True)]


def mean_calls(calls: Sequence[Sequence[Sequence[float]]], last: int = 100) -> list[tuple[float, float]]:
    """Per head, the mean of :func:`head_calls` over the ``last`` logged steps of ``calls`` (one entry per step)."""
    recent = calls[-last:]
    if not recent:
        return []
    return [tuple(sum(step[k][side] for step in recent) / len(recent) for side in (0, 1)) for k in range(len(recent[0]))]


def dead_heads(calls: Sequence[Sequence[Sequence[float]]], last: int = 100) -> bool:
    """Whether every head called (nearly) every input fake over the ``last`` logged steps of ``calls``
    (:func:`head_calls` per step): real samples called real under 5 % and fakes called fake over 95 %."""
    shares = mean_calls(calls, last)
    return bool(shares) and all(real < 0.05 and fake > 0.95 for real, fake in shares)
