"""The pieces every memory model shares (:mod:`zlab.train.memory` for LADD, :mod:`zlab.train.memory_dmd` for DMD):
the estimate's table, the tracer of what a step saves for backward, and the bytes a step's holders keep.

Attention is counted as the fused kernels that CPU and CUDA run (PyTorch's flash/efficient SDPA): they keep the output
and a log-sum-exp per query, never the ``T x T`` probabilities.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

__all__ = ["MemoryEstimate", "trace_saved", "dtype_bytes", "live_bytes"]


@dataclass
class MemoryEstimate:
    """Predicted (or measured) bytes of one LADD step by part."""

    parts: dict[str, int] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    # Groups of parts never alive together (what backward frees vs what it fills): the peak counts the larger group.
    either: tuple[tuple[str, ...], ...] = ()

    @property
    def total(self) -> int:
        """The peak: every part, except that of the ``either`` groups only the larger counts."""
        grouped = {name for group in self.either for name in group}
        alone = sum(b for name, b in self.parts.items() if name not in grouped)
        sums = [sum(self.parts.get(name, 0) for name in group) for group in self.either]
        return alone + max(sums, default=0)

    def table(self, unit: int = 2**30, unit_name: str = "GiB") -> str:
        rows = [f"| {name} | {b / unit:,.2f} | {self.notes.get(name, '')} |" for name, b in self.parts.items()]
        if self.either:
            groups = " vs ".join(" + ".join(group) for group in self.either)
            rows.append(f"| ({groups}) | | never held at once (backward frees activations as it fills gradients; DMD's "
                        "two updates follow each other): the peak counts the largest |")
        return "\n".join([f"| part | {unit_name} | what |", "|---|---|---|", *rows,
                          f"| **total (peak)** | **{self.total / unit:,.2f}** | |"])


class _FlashLikeAttention(torch.autograd.Function):
    """SDPA as fused kernels save it: q, k, v, the output and a float32 log-sum-exp per query."""

    @staticmethod
    def forward(ctx, q, k, v):
        out = torch.empty_like(q)
        lse = torch.empty(q.shape[:-1], device=q.device, dtype=torch.float32)
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, grad):  # pragma: no cover - the trace never runs backward
        q, k, v, _, _ = ctx.saved_tensors
        return torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)


@contextlib.contextmanager
def _fused_attention():
    original = torch.nn.functional.scaled_dot_product_attention

    def sdpa(query, key, value, *args, **kwargs):
        return _FlashLikeAttention.apply(query, key, value)

    torch.nn.functional.scaled_dot_product_attention = sdpa
    try:
        yield
    finally:
        torch.nn.functional.scaled_dot_product_attention = original


def trace_saved(modules, run) -> tuple[int, int]:
    """Bytes of the tensors ``run()`` saves for backward (the parameters of ``modules`` left out), without and with
    gradient checkpointing of the transformers among ``modules`` (an adapter view counts as its shared model)."""
    modules = list({id(m): m for m in (getattr(m, "shared", m) for m in modules if m is not None)}.values())
    params = {p.untyped_storage()._cdata for m in modules for p in m.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        key = t.untyped_storage()._cdata
        if key not in params and key not in saved:
            saved[key] = t.untyped_storage().nbytes()
        return t

    blocks = []  # (saved bytes inside, input bytes) of every block call
    handles = []
    for model in (m for m in modules if hasattr(m, "noise_refiner")):
        for layer in [*model.noise_refiner, *model.context_refiner, *model.layers]:
            def pre(module, args):
                module._zlab_mark = sum(saved.values())

            def post(module, args, output):
                if torch.is_grad_enabled():  # passes without a graph keep nothing
                    blocks.append((sum(saved.values()) - module._zlab_mark, args[0].numel() * args[0].element_size()))

            handles += [layer.register_forward_pre_hook(pre), layer.register_forward_hook(post)]
    try:
        with _fused_attention(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            run()
    finally:
        for h in handles:
            h.remove()
    plain = sum(saved.values())
    inside, inputs = sum(b[0] for b in blocks), sum(b[1] for b in blocks)
    return plain, plain - inside + inputs + max((b[0] for b in blocks), default=0)


def dtype_bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def live_bytes(*holders) -> int:
    """Bytes of the distinct storages held by modules (parameters, gradients, buffers), optimizers
    (state), an EMA (shadow weights) and dataclasses of tensors; a sharded tensor counts its local shard."""
    from torch.distributed.tensor import DTensor

    seen: dict[int, int] = {}

    def add(t):
        if isinstance(t, DTensor):
            t = t.to_local()
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()

    for h in holders:
        if isinstance(h, torch.nn.Module):
            for p in h.parameters():
                add(p)
                add(p.grad)
            for b in h.buffers():
                add(b)
        elif isinstance(h, torch.optim.Optimizer):
            for state in h.state.values():
                for v in state.values():
                    add(v)
        elif hasattr(h, "shadow_params"):
            for v in h.shadow_params:
                add(v)
        elif h is not None:
            for v in vars(h).values():
                for t in v if isinstance(v, list) else [v]:
                    add(t)
    seen.pop(0, None)
    return sum(seen.values())
