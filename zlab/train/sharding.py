"""What changes in the LADD trainer when accelerate shards the student with FSDP2.

``accelerate launch --config_file configs/accelerate-fsdp.yaml -m zlab.cli distill ...`` runs the same
loop as one process or DDP; only the pieces that hold the student's *full* state differ:

* the student is ``accelerator.prepare``d with its optimizer: every ``ZImageTransformerBlock``
  becomes its own FSDP unit, so a block's weights are gathered only while it runs (with the next
  one prefetched). Mixed precision gathers the weights in bf16 but keeps the inputs as they are
  (:func:`mixed_precision_policy`: the student's time must stay float32). The small heads are
  replicated with DDP (:func:`replicate`). The frozen teacher is not prepared: each GPU keeps a
  whole bf16 copy (it only runs forward, and its blocks past the last tap never run);
* the EMA is built over the sharded parameters, so each rank averages its own shard;
* checkpoints hold *full* state dicts, gathered to the main process on the CPU, with Adam's state
  keyed by parameter name: a checkpoint resumes under FSDP, DDP or one process alike, each rank
  taking its shard;
* the shipped student is gathered to the main process as a stock ``ZImageTransformer2DModel``.

A LoRA student is refused under FSDP: it shares its module with the teacher (whose frozen base
would be sharded and re-gathered for the teacher's passes too), and its few trained parameters
replicate cheaply; run it with DDP (``configs/accelerate-ddp.yaml``).

DMD's fake score is a whole transformer: it is prepared (sharded) like the student, its checkpoint and Adam state
gathered whole in the same way (:func:`is_sharded`, :func:`load_critic_optimizer`).
"""

from __future__ import annotations

import torch
from accelerate.utils import DistributedType
from diffusers import ZImageTransformer2DModel
from torch.distributed.tensor import DTensor, distribute_tensor


def uses_fsdp(accelerator, config) -> bool:
    """Whether this run shards the student; a clear error for the FSDP set-ups the trainer does not support."""
    if accelerator.distributed_type != DistributedType.FSDP:
        return False
    if not accelerator.is_fsdp2:
        raise ValueError("the LADD trainer supports FSDP2 only: set `fsdp_version: 2` in the accelerate config "
                         "(see configs/accelerate-fsdp.yaml)")
    if config.scale.lora_rank > 0:
        raise ValueError(f"a LoRA student (lora_rank = {config.scale.lora_rank}) shares its module with the teacher and "
                         "cannot be sharded by FSDP; its adapter is small enough to replicate: launch it with DDP "
                         "(configs/accelerate-ddp.yaml), or set lora_rank = 0 for a sharded full fine-tuning")
    if config.scale.optimizer == "adam8bit":
        raise ValueError("optimizer 'adam8bit' (bitsandbytes) does not take FSDP's sharded parameters; "
                         "use 'adam_fused' or 'adam' with configs/accelerate-fsdp.yaml")
    return True


def mixed_precision_policy(accelerator):
    """FSDP2's mixed precision for LADD, set on the plugin before ``prepare``.

    accelerate's default for bf16 also casts every floating input of the model to bf16, the
    student's time included: Z-Image multiplies it by 1000, and in bf16 t = 0.25 becomes 752 instead
    of the 750 that sampling uses. So: weights gathered in bf16 (half the traffic), inputs left as
    they are, gradients reduced in float32, and the matmuls in bf16 under ``accelerator.autocast()``
    exactly as on one GPU. None when the run has no mixed precision (everything in float32).
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if accelerator.mixed_precision != "bf16":
        return None
    return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32, cast_forward_inputs=False)


def replicate(accelerator, module: torch.nn.Module) -> torch.nn.Module:
    """``module`` replicated on every rank with DDP (gradients averaged in backward).

    Under FSDP the heads are not given to ``accelerator.prepare``: its FSDP2 path wraps one model
    per call with the transformer's auto-wrap policy (which finds no transformer block in the
    heads), and their few parameters gain nothing from sharding.
    """
    from torch.nn.parallel import DistributedDataParallel

    device = accelerator.device
    return DistributedDataParallel(module.to(device), device_ids=[device.index] if device.type == "cuda" else None)


def _full(tensor: torch.Tensor, keep: bool = True) -> torch.Tensor | None:
    """A whole CPU tensor from a (possibly sharded) one, or None where not ``keep``. Gathering a
    shard is a collective: every rank must call it, one tensor at a time, but only the keeper
    copies it to the host."""
    whole = tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
    return whole.detach().cpu() if keep else None


def _like(full: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``full`` placed as ``like`` is: this rank's shard of it for a sharded ``like``."""
    full = full.to(device=like.device, dtype=like.dtype)
    return distribute_tensor(full, like.device_mesh, like.placements) if isinstance(like, DTensor) else full


def model_state(sharded: bool, accelerator, model) -> dict[str, torch.Tensor]:
    """A prepared model's full state dict (when ``sharded``: gathered, on the main process' CPU only).

    ``sharded`` is decided once, before ``prepare`` (:func:`uses_fsdp`): the accelerator's own
    ``distributed_type`` is not relied on afterwards, as accelerate re-reads it from its process
    state whenever an ``AcceleratorState()`` is created (e.g. by every prepared optimizer).
    """
    if not sharded:
        return accelerator.get_state_dict(model)
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def optimizer_state(sharded: bool, model, optimizer, names: list[str]) -> dict:
    """The optimizer's full state, keyed by parameter name (``names``: the trained parameters in the
    optimizer's order). Under FSDP it is gathered, on the main process only."""
    if sharded:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(model, _unwrapped(optimizer),
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return _by_name(optimizer.state_dict(), names)


def _by_name(state: dict, names: list[str]) -> dict:
    """An optimizer's ``state_dict`` keyed by parameter name instead of index (``names`` in the optimizer's order)."""
    return {"state": {names[i]: v for i, v in state["state"].items()},
            "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]]}


def load_optimizer_state(sharded: bool, model, optimizer, names: list[str], state: dict) -> None:
    """Inverse of :func:`optimizer_state`, whichever launch wrote it: each rank keeps its shard."""
    if sharded:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, _unwrapped(optimizer), state,
                                 options=StateDictOptions(full_state_dict=True))
        return
    index = {name: i for i, name in enumerate(names)}
    optimizer.load_state_dict({"state": {index[k]: v for k, v in state["state"].items()},
                               "param_groups": [{**g, "params": [index[k] for k in g["params"]]}
                                                for g in state["param_groups"]]})


def is_sharded(module) -> bool:
    """Whether ``module`` is sharded by FSDP2 (``fully_shard``, as accelerate's FSDP2 prepare leaves it)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


def load_critic_optimizer(sharded: bool, model, optimizer, names: list[str], state: dict) -> None:
    """The critic's optimizer state, whichever launch wrote it: by index (replicated heads or fake score) or by
    parameter name (:func:`optimizer_state` of a sharded fake score)."""
    by_name = any(isinstance(p, str) for g in state["param_groups"] for p in g["params"])
    if not by_name and not sharded:
        optimizer.load_state_dict(state)
        return
    load_optimizer_state(sharded, model, optimizer, names, state if by_name else _by_name(state, names))


def _unwrapped(optimizer):
    """The torch optimizer inside accelerate's ``AcceleratedOptimizer`` (or the optimizer itself)."""
    return getattr(optimizer, "optimizer", optimizer)


def ema_state(ema, keep: bool = True) -> dict | None:
    """``EMAModel.state_dict()`` with whole shadow weights (gathered from their shards under FSDP;
    every rank must call it, only where ``keep`` is the state returned)."""
    shadows = [_full(p, keep) for p in ema.shadow_params]
    if not keep:
        return None
    return {**{k: v for k, v in ema.state_dict().items() if k != "shadow_params"}, "shadow_params": shadows}


def load_ema_state(ema, state: dict) -> None:
    """Inverse of :func:`ema_state`: the shadow weights go back where (and as shards as) they were."""
    ema.load_state_dict({k: v for k, v in state.items() if k != "shadow_params"})  # it deep-copies what it gets
    ema.shadow_params = [_like(full, old) for full, old in zip(state["shadow_params"], ema.shadow_params, strict=True)]


def gathered_student(accelerator, student, ema=None):
    """The sharded ``student`` (EMA weights when ``ema`` is given) as a stock, unsharded
    ``ZImageTransformer2DModel`` on the main process' CPU; None on the other ranks. Every rank
    must call it (the gathering is collective); training can go on afterwards."""
    from accelerate import init_empty_weights

    main = accelerator.is_main_process
    state = model_state(True, accelerator, student)
    if ema is not None:
        names = [name for name, p in student.named_parameters() if p.requires_grad]
        shadows = [_full(p, main) for p in ema.shadow_params]
        state.update(zip(names, shadows, strict=True))
    if not main:
        return None
    with init_empty_weights(include_buffers=False):  # no 6B random initialisation to throw away
        model = ZImageTransformer2DModel.from_config(student.config)
    model.load_state_dict(state, assign=True)
    return model.to(next(iter(state.values())).dtype).eval().requires_grad_(False)
