"""LoRA adapters on the teacher's own modules: which one runs, and a view that makes one adapter a model of its own.

A LoRA student (LADD or DMD) and DMD's LoRA fake score are adapters on the one frozen copy of the teacher's weights,
so a 6B teacher, its student and its fake score fit in the memory of one copy plus two small adapters. Which adapter
a forward pass uses is switched around each call (:func:`use_adapter`): none for the teacher, ``"student"`` or
``"fake"`` for the others.

peft ties ``requires_grad`` to the active adapter; zlab trains several adapters at once, so after each switch every
trained adapter keeps ``requires_grad`` on (an adapter that is not active takes no part in the forward pass and gets
no gradient), and each optimizer holds its own adapter's parameters by name, not by that flag.
"""

from __future__ import annotations

import contextlib
import copy
import json
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

__all__ = ["add_lora", "use_adapter", "adapters_off", "checkpoint_keeping_adapter_state", "AdapterView",
           "StoredAdapter", "save_adapter", "load_adapter_fused", "fuse", "is_adapter_folder"]

STATE = "_zlab_adapter"  # the adapter a model runs with now: a name, None (off) or ACTIVE (peft's own choice)
TRAINED = "_zlab_trained_lora"  # the LoRA parameters zlab trains on a model: kept requires_grad across switches
ACTIVE = "active"
ADAPTER_FILE, CONFIG_FILE = "adapter.safetensors", "adapter_config.json"


def add_lora(model, rank: int, alpha: float, targets, name: str, dtype: torch.dtype) -> None:
    """Add a trained LoRA adapter ``name`` (``B = 0``: it starts as the base) in ``dtype``; the base keeps its own."""
    from peft import LoraConfig

    with warnings.catch_warnings():  # peft warns at a second adapter: here it is the point
        warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
        model.add_adapter(LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=list(targets),
                                     init_lora_weights=True), adapter_name=name)
    trained = getattr(model, TRAINED, [])
    for key, p in model.named_parameters():
        if f".{name}." in key and "lora_" in key:
            p.data = p.data.to(dtype)
            trained.append(p)
    setattr(model, TRAINED, trained)
    _apply(model, getattr(model, STATE, ACTIVE))


def _apply(model, name: str | None) -> None:
    if name is None:
        model.disable_adapters()
    else:
        model.enable_adapters()
        if name != ACTIVE:
            model.set_adapter(name)
    setattr(model, STATE, name)
    for p in getattr(model, TRAINED, ()):
        p.requires_grad_(True)


@contextlib.contextmanager
def use_adapter(model, name: str | None):
    """Run ``model`` with adapter ``name`` (None: the base alone, i.e. the teacher) for the duration, then restore."""
    before = getattr(model, STATE, ACTIVE)
    _apply(model, name)
    try:
        yield
    finally:
        _apply(model, before)


def adapters_off(model):
    """Context factory: run ``model`` without its adapters (the teacher inside a LoRA student)."""
    return lambda: use_adapter(model, None)


def checkpoint_keeping_adapter_state(model):
    """diffusers' block recomputation, but the backward recompute of a block runs with the adapter of its forward:
    the teacher's blocks (adapters off) must not be recomputed as the student's, nor the student's as the fake's."""

    def checkpoint(module, *args):
        state = getattr(model, STATE, ACTIVE)
        context_fn = lambda: (contextlib.nullcontext(), use_adapter(model, state))  # noqa: E731
        return torch.utils.checkpoint.checkpoint(module.__call__, *args, use_reentrant=False, context_fn=context_fn)

    return checkpoint


class AdapterView(nn.Module):
    """The shared model run with one adapter (``name``; None = the teacher): a model of its own for the trainer.

    Its parameters are only that adapter's (what its optimizer steps and its checkpoint keeps, named as in the
    shared model); the shared model is held, not registered, so the view neither moves nor counts the base weights.
    """

    def __init__(self, shared: nn.Module, name: str | None):
        super().__init__()
        object.__setattr__(self, "shared", shared)
        self.name = name

    def forward(self, *args, **kwargs):
        with use_adapter(self.shared, self.name):
            return self.shared(*args, **kwargs)

    @property
    def dtype(self) -> torch.dtype:
        return self.shared.dtype

    @property
    def config(self):
        return self.shared.config

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        if self.name is None:
            return iter(())
        return ((prefix + k, p) for k, p in self.shared.named_parameters() if f".{self.name}." in k and "lora_" in k)

    def state_dict(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        return {k: p.detach().clone() for k, p in self.named_parameters()}

    def load_state_dict(self, state: dict, strict: bool = True, assign: bool = False):
        own = dict(self.named_parameters())
        missing, unexpected = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
        if strict and (missing or unexpected):
            raise KeyError(f"adapter {self.name!r} checkpoint does not match: missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}")
        with torch.no_grad():
            for k, v in state.items():
                if k in own:
                    own[k].copy_(v)
        return nn.modules.module._IncompatibleKeys(missing, unexpected)

    def lora_config(self) -> dict:
        config = self.shared.peft_config[self.name]
        return {"rank": config.r, "alpha": config.lora_alpha, "targets": sorted(config.target_modules),
                "name": self.name}

    def stored(self) -> StoredAdapter:
        """A copy of the adapter that outlives the shared model (which the shipped student is merged into)."""
        return StoredAdapter(self.state_dict(), self.lora_config())


class StoredAdapter:
    """An adapter's weights and settings, apart from any model: what a LoRA DMD run ships as its fake score. Saved
    alone (:func:`save_adapter`), a 6B model's fake score is megabytes, not a second 12 GB copy of the teacher."""

    def __init__(self, state: dict[str, torch.Tensor], lora_config: dict):
        self.state, self.lora_config = state, lora_config

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.state

    def eval(self) -> StoredAdapter:
        return self

    def save_pretrained(self, folder: str | Path) -> None:
        save_adapter(self.state, self.lora_config, folder)


def save_adapter(state: dict[str, torch.Tensor], lora_config: dict, folder: str | Path) -> None:
    """Write an adapter's weights (keys as in the shared model) and its LoRA settings to ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous().cpu() for k, v in state.items()}, str(folder / ADAPTER_FILE))
    (folder / CONFIG_FILE).write_text(json.dumps(lora_config, indent=2) + "\n")


def is_adapter_folder(folder: str | Path) -> bool:
    return (Path(folder) / CONFIG_FILE).is_file()


def load_adapter_fused(folder: str | Path, base: nn.Module) -> nn.Module:
    """A copy of ``base`` (the teacher's transformer) with the adapter in ``folder`` merged into its weights."""
    folder = Path(folder)
    config = json.loads((folder / CONFIG_FILE).read_text())
    model = copy.deepcopy(base)
    add_lora(model, config["rank"], config["alpha"], config["targets"], config["name"], torch.float32)
    AdapterView(model, config["name"]).load_state_dict(load_file(str(folder / ADAPTER_FILE)))
    return fuse(model, config["name"])


def fuse(model: nn.Module, name: str) -> nn.Module:
    """Merge adapter ``name`` into ``model``'s weights (at the adapter's precision) and drop every adapter."""
    model.to(next(p.dtype for k, p in model.named_parameters() if f".{name}." in k))
    model.fuse_lora(adapter_names=[name])
    model.unload_lora()
    for attr in (STATE, TRAINED):
        if hasattr(model, attr):
            delattr(model, attr)
    return model.requires_grad_(False)
