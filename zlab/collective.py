"""Collective agreement between ranks: whether a module is sharded, a flag or'ed over ranks, finiteness on all ranks.

A method's step calls these so that every rank takes the same branch (a sharded forward or a backward is collective);
with one process each is a plain local check.
"""

from __future__ import annotations

import torch


def is_sharded(module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


def any_rank(flag: bool, module) -> bool:
    """``flag`` or'ed over the ranks when ``module`` is sharded (its forward is then collective, and
    data-dependent calls such as backward simulation must run as often on every rank)."""
    if not is_sharded(module):
        return flag
    value = torch.tensor([int(flag)], device=next(module.parameters()).device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())


def all_finite(accelerator, loss: torch.Tensor) -> bool:
    """Whether ``loss`` is finite on every rank (one gather; a single process just checks it)."""
    return bool(torch.isfinite(accelerator.gather(loss.detach().float().reshape(1))).all())
