"""One guarded optimizer update, shared by the methods' steps (LADD's student and heads, DMD's generator and fake score).

A non-finite loss on any rank skips the update on every rank (a backward alone would wait for the other ranks'
gradients) and leaves the weights as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from zlab.collective import all_finite


def clip_grad_norm(accelerator, params: list[torch.nn.Parameter], max_norm: float) -> Tensor:
    """Clip the gradients of ``params`` (one model's) to a total norm of ``max_norm``, as ``accelerator`` would.

    Under FSDP accelerate finds the model a parameter list belongs to by comparing lists with ``==``, which fails
    on tensors when two prepared models have as many parameters (DMD's student and fake score); the same clip, by
    the gradients' total norm over every shard, is taken here instead."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type != DistributedType.FSDP:
        return accelerator.clip_grad_norm_(params, max_norm)
    from torch.distributed.tensor import DTensor
    from torch.nn.utils import clip_grads_with_norm_, get_total_norm

    norm = get_total_norm([p.grad for p in params if p.grad is not None])
    norm = norm.full_tensor() if isinstance(norm, DTensor) else norm
    clip_grads_with_norm_(params, max_norm, norm)
    return norm


def guarded_update(accelerator, loss: Tensor, params: Callable[[], Iterable[torch.nn.Parameter]], optimizer,
                   grad_clip: float, enabled: bool = True, after=None) -> bool:
    """Backward ``loss``, clip the gradient norm of ``params()`` (asked for after the backward: accelerate tells an
    FSDP2 module's own parameters by identity) to ``grad_clip``, step ``optimizer`` and call ``after()``
    (an EMA update, say), unless ``enabled`` is False or ``loss`` is non-finite on some rank; the gradients are
    cleared either way. Returns whether the update happened (the same on every rank)."""
    ok = enabled and all_finite(accelerator, loss)
    if ok:
        accelerator.backward(loss)
        clip_grad_norm(accelerator, list(params()), grad_clip)
        optimizer.step()
        if after is not None:
            after()
    optimizer.zero_grad(set_to_none=True)
    return ok
