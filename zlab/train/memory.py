"""A memory model of one LADD training step, from the tiny Shapes run to the 6B model at 1024 px (DMD's:
:mod:`zlab.train.memory_dmd`).

Four parts (bytes):

* **weights**: the teacher, the student (none extra for a LoRA student: it *is* the teacher with
  an adapter) and the heads;
* **gradients**: one per trained parameter, in its dtype;
* **optimizer state**: Adam's two moments per trained parameter (in the parameter's dtype; one
  byte each for 8-bit Adam);
* **activations**: every tensor autograd keeps for the backward pass of the student's update:
  the student's forward, the teacher's forward on the fake path up to the last tapped block
  (gradients flow *through* it), and the heads. They are not guessed from a formula: the very
  code of the step runs on PyTorch's ``meta`` device (shapes only, no memory, seconds even for 6B
  parameters at 1024 px) under :func:`torch.autograd.graph.saved_tensors_hooks`, which sees each
  tensor saved for backward. With gradient checkpointing a block keeps only its input, and the
  backward recomputes one block at a time: the model counts the inputs plus the largest block.

Attention is counted as the fused kernels that CPU and CUDA run (PyTorch's flash/efficient SDPA):
they keep the output and a log-sum-exp per query, never the ``T x T`` probabilities.
:func:`measure_cpu` checks the model against the allocations PyTorch's profiler records.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import torch
from diffusers import ZImageTransformer2DModel

from zlab.distill.heads import pool_text
from zlab.distill.losses import generator_loss
from zlab.train.memory_parts import MemoryEstimate, dtype_bytes, live_bytes, trace_saved
from zlab.train.models import DTYPES, build_models
from zlab.zimage import init_kwargs

MB = 2**20


def _zero_batch(batch_size: int, latent_h: int, latent_w: int, cap_len: int, text_dim: int, device="meta"):
    from zlab.distill.ladd import LADDBatch

    z = lambda *s: torch.zeros(*s, device=device)  # noqa: E731
    embeds = [z(cap_len, text_dim) for _ in range(batch_size)]
    n = batch_size
    return LADDBatch(z(n, 16, latent_h, latent_w), embeds, pool_text(embeds), torch.ones(n, device=device),
                     z(n, 16, latent_h, latent_w), torch.full((n,), 0.5, device=device), z(n, 16, latent_h, latent_w))


def trace_activations(models, batch) -> tuple[int, int]:
    """Bytes saved for the student's backward in one LADD step, traced on whatever device ``batch`` is on.

    Returns ``(without checkpointing, with checkpointing)``: the checkpointed figure swaps every
    block's saved tensors for its input and adds one block's recomputation.
    """
    from zlab.distill.ladd import ladd_forward

    def run():
        fwd = ladd_forward(models.student, models.tap, batch)
        generator_loss(models.disc(fwd.fake_maps, batch.t_hat, batch.text))

    return trace_saved([models.teacher, models.student, models.disc], run)


def predict(config, transformer_config: dict, height: int, width: int, cap_len: int = 128,
            text_dim: int | None = None, shards: int = 1) -> MemoryEstimate:
    """Peak bytes of one LADD step for ``config`` (a :class:`~zlab.train.distill_config.DistillConfig`: batch size,
    dtypes, LoRA, checkpointing, optimizer, blocks) and a transformer config (a dict or a model's
    ``.config``) at ``height x width``.

    Under bf16 autocast (``mixed_precision = "bf16"``) an fp32 student's weights are cast to bf16
    for every matmul and the copies are kept for backward: counted as their own row. (Autocast
    does not act on the meta device, so the traced activations keep the weights' dtype.)

    ``shards > 1``: one of that many GPUs under FSDP2 (``configs/accelerate-fsdp.yaml``, full
    fine-tuning; ``batch_size`` per GPU). The student's weights, gradients, Adam state and EMA are
    split evenly; the teacher and the heads stay whole on every GPU; and each GPU also holds the
    gathered weights of the block it computes and of the next (prefetched), and one block's whole
    gradient before it is reduce-scattered. The gathered weights are already in the compute dtype
    (FSDP's mixed precision), so there are no autocast copies.
    """
    if not isinstance(shards, int) or not 1 <= shards <= 65536:
        raise ValueError(f"shards (GPUs) must be an integer in [1, 65536], got {shards!r}")
    if config.method == "dmd":
        from zlab.train.memory_dmd import predict_dmd

        return predict_dmd(config, transformer_config, height, width, cap_len, text_dim, shards)
    if shards > 1 and config.scale.lora_rank > 0:
        raise ValueError("FSDP shards a full fine-tuning (lora_rank = 0); a LoRA run is data-parallel (shards = 1)")
    transformer_config = init_kwargs(transformer_config)
    text_dim = text_dim or transformer_config["cap_feat_dim"]
    with torch.device("meta"):
        teacher = ZImageTransformer2DModel(**transformer_config)
        plain_run = replace(config, scale=replace(config.scale, gradient_checkpointing=False),
                            train=replace(config.train, student_init=""))
        models = build_models(plain_run, teacher, text_dim)
    batch = _zero_batch(config.train.batch_size, height // 8, width // 8, cap_len, text_dim)
    plain, checkpointed = trace_activations(models, batch)

    wbytes = dtype_bytes(DTYPES[config.scale.weights_dtype])
    n_base = sum(p.numel() for n, p in models.teacher.named_parameters() if "lora_" not in n)
    trainable = models.trainable()
    n_train = sum(p.numel() for p in trainable)
    tbytes = dtype_bytes(trainable[0].dtype)
    n_heads = sum(p.numel() for p in models.disc.parameters())
    state_bytes = 1 if config.scale.optimizer == "adam8bit" else tbytes
    share = lambda n: -(-n // shards)  # noqa: E731  (this GPU's shard, rounded up)
    parts = {
        "teacher weights": n_base * wbytes,
        "student weights": share(n_train) * tbytes,
        "heads (weights, grads, Adam)": n_heads * 4 * 4,  # replicated on every GPU, also under FSDP
        "student gradients": share(n_train) * tbytes,
        "optimizer state": 2 * share(n_train) * state_bytes,
        "activations": checkpointed if config.scale.gradient_checkpointing else plain,
    }
    if config.train.ema_decay > 0:
        parts["EMA of the student"] = share(n_train) * tbytes
    if shards > 1:
        block = max(sum(p.numel() for p in layer.parameters()) for layer in models.student.layers)
        compute_bytes = 2 if config.scale.mixed_precision == "bf16" else tbytes
        parts["gathered blocks (FSDP)"] = block * (2 * compute_bytes + tbytes)
    elif config.scale.mixed_precision == "bf16" and tbytes == 4 and not models.lora:
        parts["autocast weight copies"] = n_train * 2
    notes = {
        "teacher weights": f"{n_base / 1e9:.3f}B parameters x {wbytes} B ({config.scale.weights_dtype})",
        "student weights": (f"LoRA rank {config.scale.lora_rank}: {n_train / 1e6:.1f}M parameters x {tbytes} B; the base is "
                            "the teacher's" if models.lora else f"a full copy of the teacher, {tbytes} B per parameter"),
        "student gradients": f"{n_train / 1e6:,.1f}M trained parameters x {tbytes} B",
        "optimizer state": f"Adam: 2 x {state_bytes} B per trained parameter ({config.scale.optimizer})",
        "EMA of the student": f"shadow copy of the trained parameters (ema_decay {config.train.ema_decay})",
        "autocast weight copies": "bf16 casts of the fp32 student's weights, kept for backward",
        "gathered blocks (FSDP)": "two blocks' gathered weights (this one, the prefetched next) + one block's gradient",
        "activations": (f"{config.train.batch_size} x {height}x{width}, traced on the meta device; "
                        + ("gradient checkpointing (block inputs + one block)" if config.scale.gradient_checkpointing
                           else "no checkpointing")),
    }
    if shards > 1:
        for name in ("student weights", "student gradients", "optimizer state", "EMA of the student"):
            notes[name] = f"{notes.get(name, '')}; this GPU's 1/{shards} (FSDP)".lstrip("; ")
    return MemoryEstimate(parts, notes, either=(("activations", "autocast weight copies"), ("student gradients",)))


def make_step(config, teacher: ZImageTransformer2DModel, height: int, width: int, cap_len: int = 16,
              text_dim: int | None = None, accelerator=None):
    """A closure running one full LADD update (:func:`zlab.distill.ladd.ladd_step`) on random data
    on ``teacher``'s device: what ``zlab bench`` times and :func:`measure` profiles.

    With an ``accelerator`` the models are prepared on it as the trainer prepares them (e.g. the
    student sharded under FSDP); without one they run as they are, on one process.
    """
    if config.method == "dmd":
        if accelerator is not None:
            raise ValueError("a DMD step is measured in one process (no accelerator)")
        from zlab.train.memory_dmd import make_dmd_step

        return make_dmd_step(config, teacher, height, width, cap_len, text_dim)
    from zlab.distill.ladd import ladd_step
    from zlab.train.distill import prepare
    from zlab.train.loop import make_accelerator
    from zlab.train.models import make_ema, make_optimizers
    from zlab.train.sharding import uses_fsdp

    device = teacher.device
    text_dim = text_dim or teacher.config.cap_feat_dim
    models = build_models(config, teacher, text_dim)
    models.disc.to(device)
    if accelerator is None:
        accelerator = make_accelerator(config.scale.mixed_precision, cpu=device.type == "cpu")
        student, disc = models.student, models.disc
        opt_student, opt_heads = make_optimizers(config, models)
        ema = make_ema(config, models.trainable())
    else:
        sharded = uses_fsdp(accelerator, config)
        student, disc, opt_student, opt_heads, ema = prepare(accelerator, config, models, sharded)
    batch = _zero_batch(config.train.batch_size, height // 8, width // 8, cap_len, text_dim, device=device)
    for x in (batch.x0, batch.eps, batch.eps_hat):
        x.normal_()

    def step():
        result = ladd_step(accelerator, student, disc, accelerator.unwrap_model(disc), models.tap, batch,
                           opt_student, opt_heads, config.ladd, grad_clip=config.train.grad_clip, ema=ema)
        if not result.ok:  # a skipped update would time and measure a step without its backward passes
            raise FloatingPointError(f"non-finite LADD losses (G {result.g_loss.item()}, D {result.d_loss.item()})")

    step.live_bytes = lambda: live_bytes(models.teacher, student, disc, opt_student, opt_heads, ema, batch)
    return step


def resident_bytes() -> int:
    """Bytes allocated on the current CUDA device now (0 without CUDA): take it *before* building a step, as the
    baseline that :func:`measure` subtracts (a loaded pipeline, say, whose text encoder the step never uses)."""
    return torch.cuda.memory_allocated() if torch.cuda.is_available() else 0


def measure(step, warm_up: bool = True, by_events: bool = False, baseline: int = 0) -> MemoryEstimate:
    """Measured peak bytes of ``step()``, after one warm-up call that creates Adam's state (pass
    ``warm_up=False`` when the step has already run).

    CUDA: ``torch.cuda.max_memory_allocated`` after resetting the peak, minus ``baseline``: what was resident
    before the step's models were built and is not the step's (:func:`resident_bytes`); the raw peak is kept
    in the estimate's notes. The memory model predicts the step alone, so a pipeline left on the GPU must be
    subtracted, or freed, before the two can be compared. CPU: PyTorch's memory profiler, its peak split into
    the profiler's categories (parameters, optimizer state, gradients, activations, ...). The
    categories need the profiler's data-flow analysis, which FSDP's sharded tensors defeat; with
    ``by_events`` the CPU peak is instead what the step holds before it starts
    (``step.live_bytes()``, see :func:`make_step`) plus the highest running sum of the allocations
    and frees the profiler records during the step.
    """
    if warm_up:
        step()
    if torch.cuda.is_available() and torch.cuda.memory_allocated() > 0:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        name = "peak allocated (CUDA) above the baseline" if baseline else "peak allocated (CUDA)"
        return MemoryEstimate({name: peak - baseline},
                              {name: f"raw peak {peak / 2**30:.2f} GiB minus {baseline / 2**30:.2f} GiB resident before "
                                     "the step was built" if baseline else "nothing else was resident"})
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import _CATEGORY_TO_INDEX, MemoryProfileTimeline

    if by_events:
        held = step.live_bytes()
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step()
        events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                        key=lambda e: e.start_ns())
        running = list(itertools.accumulate(e.nbytes() for e in events))
        return MemoryEstimate({"held before the step": held,
                               "allocated during the step (peak)": max(running, default=0)})
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        step()
    _, sizes = MemoryProfileTimeline(prof._memory_profile())._coalesce_timeline("cpu")
    peak = max(sizes, key=sum)
    parts = {str(category).split(".")[-1].lower(): peak[index + 1] for category, index in _CATEGORY_TO_INDEX.items()}
    parts["uncategorised"] = peak[0]
    return MemoryEstimate({k: v for k, v in parts.items() if v})
