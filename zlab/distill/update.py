"""One guarded optimizer update, shared by the methods' steps (LADD's student and heads, DMD's generator and fake score).

A non-finite loss on any rank skips the update on every rank (a backward alone would wait for the other ranks'
gradients) and leaves the weights as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from zlab.collective import all_finite


def guarded_update(accelerator, loss: Tensor, params: Callable[[], Iterable[torch.nn.Parameter]], optimizer,
                   grad_clip: float, enabled: bool = True, after=None) -> bool:
    """Backward ``loss``, clip the gradient norm of ``params()`` (asked for after the backward: accelerate tells an
    FSDP2 module's own parameters by identity) to ``grad_clip``, step ``optimizer`` and call ``after()``
    (an EMA update, say), unless ``enabled`` is False or ``loss`` is non-finite on some rank; the gradients are
    cleared either way. Returns whether the update happened (the same on every rank)."""
    ok = enabled and all_finite(accelerator, loss)
    if ok:
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(list(params()), grad_clip)
        optimizer.step()
        if after is not None:
            after()
    optimizer.zero_grad(set_to_none=True)
    return ok
