"""LADD's "real" data: the teacher's own multi-step CFG samples (LADD, Sauer et al. 2024).

``zlab synth`` samples the teacher once with its ``sampling.json`` (50 steps + CFG) for every
train-split prompt and several seeds, and stores the latents as safetensors shards, one shard per
seed round, each with the prompt index and seed of every sample (so any sample can be redrawn with
stock ``ZImagePipeline(prompt, generator=torch.Generator().manual_seed(seed), **sampling)``). The
prompts' Qwen3 embeddings are stored once next to them (``text.safetensors``): training never runs
the text encoder. Shards are written atomically. Each shard's metadata holds a key of what made it
(prompts, sampling, seed, round and a fingerprint of the teacher's weights): a rerun skips the shards
whose key matches and regenerates the others, and :meth:`SynthData.load` refuses a shard whose key is
not the manifest's (a stale shard would pair old latents with new prompts).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import ZImagePipeline
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm.auto import tqdm

from zlab.atomic import atomic_file, write_json
from zlab.sampling import guidance_scale_to_s
from zlab.shapes import prompt_sets
from zlab.shapes.draw import image_to_tensor
from zlab.shapes.metrics import open_renders
from zlab.zimage import (
    SAMPLING_FILE,
    encode_images,
    encode_prompts,
    generate,
    initial_noise,
    load_pipeline,
    read_sampling,
)

MANIFEST = "synth.json"
TEXT = "text.safetensors"
BUCKETS = "buckets.json"  # a folder of aspect buckets: one synth folder per size, named HxW
SOURCES = ("teacher", "renders")


def synth_seed(base: int, round_: int, index: int, n_prompts: int) -> int:
    """The seed of prompt ``index`` in seed round ``round_`` (distinct from evaluation seeds, which start at 0)."""
    return 1_000_000 + base * 10_000_000 + round_ * n_prompts + index


def teacher_fingerprint(module: torch.nn.Module, sample: int = 4096) -> str:
    """A short hash of ``module``'s weights: every tensor's name, shape and a strided sample of at most
    ``sample`` values (cheap for a 6B model; any retraining changes it)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        flat = tensor.detach().reshape(-1)
        digest.update(f"{name}{tuple(tensor.shape)}".encode())
        digest.update(flat[::max(1, flat.numel() // sample)][:sample].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def shard_key(prompts: Sequence[str], sampling: dict, seed: int, round_: int, teacher: str) -> str:
    """What a shard was made from, hashed: it is stored in the shard and in the manifest."""
    what = json.dumps({"prompts": list(prompts), "sampling": sampling, "seed": seed, "round": round_,
                       "teacher": teacher}, sort_keys=True)
    return hashlib.sha256(what.encode()).hexdigest()[:16]


def stored_key(path: Path) -> str | None:
    """The key in a shard's metadata (None for shards written before keys existed)."""
    with safe_open(str(path), "pt") as f:
        return (f.metadata() or {}).get("key")


def save_tensors(tensors: dict[str, Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """A safetensors file written atomically (a shard that exists is whole)."""
    with atomic_file(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def synthesize(pipe: ZImagePipeline, out: str | Path, sampling: dict, rounds: int = 4, seed: int = 0,
               prompts: Sequence[str] | None = None, batch_size: int = 90, progress: bool = True,
               source: str = "teacher") -> Path:
    """Teacher samples for ``prompts`` (default: the train prompts of :mod:`zlab.shapes.prompt_sets`, open captions
    included; never a validation or test prompt) x ``rounds`` seeds, as shards in ``out``.

    Args:
        pipe: The teacher pipeline.
        out: Folder for ``shard-XXXXX.safetensors``, ``text.safetensors`` and ``synth.json``.
        sampling: Stock keyword arguments (the teacher's ``sampling.json``): steps, guidance, size.
        rounds: Seeds per prompt; one shard per round.
        source: ``"teacher"`` (LADD's synthetic data) or ``"renders"``: the world's own images of each prompt
            (open attributes drawn from their allowed values by the seed, :func:`zlab.shapes.metrics.open_renders`),
            encoded by the teacher's VAE: the real-data side of LADD's "synthetic data is enough" ablation.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    prompts = list(prompts or prompt_sets.prompts("train"))
    height, width = sampling.get("height", 64), sampling.get("width", 64)
    s = guidance_scale_to_s(sampling.get("guidance_scale", 5.0))
    teacher = teacher_fingerprint(pipe.transformer)
    made_by = sampling if source == "teacher" else {**sampling, "source": source}  # teacher keys stay as they were
    keys = [shard_key(prompts, made_by, seed, r, teacher) for r in range(rounds)]
    text_key = shard_key(prompts, {}, 0, -1, "")  # the embeddings depend on the prompts alone
    manifest = {"prompts": prompts, "sampling": made_by, "rounds": rounds, "seed": seed, "teacher": teacher,
                "shards": [f"shard-{r:05d}.safetensors" for r in range(rounds)], "keys": keys, "text_key": text_key}
    with torch.no_grad():  # in chunks: one text-encoder batch of every prompt would not fit a GPU (Qwen3-4B)
        embeds = [e.cpu() for i in range(0, len(prompts), batch_size)
                  for e in encode_prompts(pipe, prompts[i:i + batch_size])]
    lengths = torch.tensor([len(e) for e in embeds])
    padded = torch.nn.utils.rnn.pad_sequence([e.float() for e in embeds], batch_first=True)
    save_tensors({"embeds": padded, "lengths": lengths}, out / TEXT, metadata={"key": text_key})

    todo = []
    for r, name in enumerate(manifest["shards"]):
        if (out / name).is_file():
            if stored_key(out / name) == keys[r]:
                continue
            warnings.warn(f"{out / name} was made from other prompts, sampling, seed or teacher: regenerating it",
                          stacklevel=2)
        todo.append(r)
    bar = tqdm(total=len(todo) * len(prompts), desc="synth", disable=not progress)
    for r in todo:
        path = out / manifest["shards"][r]
        latents, seeds = [], []
        for i in range(0, len(prompts), batch_size):
            chunk = prompts[i:i + batch_size]
            chunk_seeds = [synth_seed(seed, r, i + j, len(prompts)) for j in range(len(chunk))]
            if source == "renders":
                images = image_to_tensor(open_renders(chunk, chunk_seeds, (height, width)))
                with torch.no_grad():
                    latents.append(encode_images(pipe.vae, images.to(pipe.vae.device)).float().cpu())
            else:
                noise = initial_noise(pipe, len(chunk), height, width,
                                      [torch.Generator().manual_seed(x) for x in chunk_seeds])
                result = generate(pipe, chunk, num_inference_steps=sampling.get("num_inference_steps", 50), s=s,
                                  cfg_truncation=sampling.get("cfg_truncation", 1.0), height=height, width=width,
                                  latents=noise)
                latents.append(result.latents.cpu())
            seeds += chunk_seeds
            bar.update(len(chunk))
        save_tensors({"latents": torch.cat(latents), "prompt_index": torch.arange(len(prompts)),
                          "seeds": torch.tensor(seeds)}, path, metadata={"key": keys[r]})
    bar.close()
    write_json(out / MANIFEST, manifest)
    return out


def synthesize_buckets(pipe: ZImagePipeline, out: str | Path, sampling: dict, sizes: Sequence[Sequence[int]],
                       seed: int = 0, **kwargs) -> Path:
    """:func:`synthesize` at each ``(height, width)`` of ``sizes``, into ``out/HxW`` (each its own synth
    folder; bucket ``k`` draws with seed base ``seed + 100 k``, so no two buckets share a starting noise),
    listed in ``out/buckets.json``; :func:`load_buckets` reads them back."""
    out = Path(out)
    names = []
    for k, (height, width) in enumerate(sizes):
        names.append(f"{height}x{width}")
        synthesize(pipe, out / names[-1], {**sampling, "height": height, "width": width}, seed=seed + 100 * k, **kwargs)
    write_json(out / BUCKETS, {"buckets": names})
    return out


def synthesize_from(teacher: str | Path, out: str | Path, sampling: dict | None = None, device: str = "cpu",
                    dtype: torch.dtype = torch.float32, sizes: Sequence[Sequence[int]] = (), **kwargs) -> Path:
    """:func:`synthesize` for a teacher folder or hub id, with its own ``sampling.json`` unless
    ``sampling`` is given (the real Z-Image has none: e.g. 50 steps, guidance 4, 1024x1024); with
    ``sizes``, :func:`synthesize_buckets` at those aspect buckets."""
    if sampling is None:
        if not (Path(teacher) / SAMPLING_FILE).is_file():
            raise ValueError(f"{teacher} has no {SAMPLING_FILE}; pass the teacher's sampling, e.g. --sampling "
                             '\'{"num_inference_steps": 50, "guidance_scale": 4.0, "height": 1024, "width": 1024}\'')
        sampling = read_sampling(teacher)
    pipe = load_pipeline(teacher, device=device, dtype=dtype)
    if sizes:
        return synthesize_buckets(pipe, out, sampling, sizes, **kwargs)
    return synthesize(pipe, out, sampling, **kwargs)


@dataclass
class SynthData:
    """All shards of a ``zlab synth`` folder in memory.

    Attributes:
        latents: (N, C, H, W) teacher samples (normalised latents).
        prompt_index: (N,) index into ``prompts`` of each sample.
        seeds: (N,) the stock-pipeline seed of each sample.
        prompts: The prompt of each index.
        embeds: One (L_i, D) Qwen3 embedding per prompt, padding dropped.
        sampling: The teacher setting the samples were drawn with.
    """

    latents: Tensor
    prompt_index: Tensor
    seeds: Tensor
    prompts: list[str]
    embeds: list[Tensor]
    sampling: dict

    @classmethod
    def load(cls, path: str | Path) -> "SynthData":
        path = Path(path)
        if not (path / MANIFEST).is_file():
            raise FileNotFoundError(f"{path} has no {MANIFEST}: run `zlab synth --out {path}` first")
        manifest = json.loads((path / MANIFEST).read_text())
        keys = manifest.get("keys", [None] * len(manifest["shards"]))  # folders from before keys: unchecked
        for name, key in zip([*manifest["shards"], TEXT], [*keys, manifest.get("text_key")], strict=True):
            if stored_key(path / name) != key:
                raise ValueError(f"{path / name} does not belong to {path / MANIFEST} (made from other prompts, "
                                 f"sampling, seed or teacher): rerun `zlab synth --out {path}` to regenerate it")
        shards = [load_file(str(path / name)) for name in manifest["shards"]]
        text = load_file(str(path / TEXT))
        embeds = [e[:n] for e, n in zip(text["embeds"], text["lengths"].tolist(), strict=True)]
        return cls(latents=torch.cat([s["latents"] for s in shards]),
                   prompt_index=torch.cat([s["prompt_index"] for s in shards]),
                   seeds=torch.cat([s["seeds"] for s in shards]), prompts=manifest["prompts"], embeds=embeds,
                   sampling=manifest["sampling"])

    def __len__(self) -> int:
        return len(self.latents)

    def subset(self, keep: Tensor) -> "SynthData":
        """The samples where ``keep`` (N,) is True; prompts and their embeddings stay whole."""
        return SynthData(self.latents[keep], self.prompt_index[keep], self.seeds[keep], self.prompts, self.embeds,
                         self.sampling)

    def initial_noise(self, index: Tensor) -> Tensor:
        """The starting noise each sample ``index`` was drawn from (regenerated from its stored seed,
        exactly as ``ZImagePipeline.prepare_latents`` draws it): the teacher's 50-step sampler took
        ``noise[i]`` to ``latents[i]``, the pairing regression distillation learns."""
        shape = (1, *self.latents.shape[1:])
        return torch.cat([torch.randn(shape, generator=torch.Generator().manual_seed(int(self.seeds[i])))
                          for i in index.tolist()])


def draw_samples(data: SynthData | list[SynthData], n: int, generator: torch.Generator):
    """``(bucket, index, latents, embeds)`` of ``n`` samples drawn with replacement from one aspect bucket, itself
    drawn uniformly when there are several: every draw from ``generator``, in this order."""
    if isinstance(data, list):
        data = data[int(torch.randint(len(data), (1,), generator=generator))] if len(data) > 1 else data[0]
    idx = torch.randint(len(data), (n,), generator=generator)
    return data, idx, data.latents[idx], [data.embeds[i] for i in data.prompt_index[idx].tolist()]


@torch.no_grad()
def accepted(data: SynthData, vae, batch_size: int = 256) -> Tensor:
    """(N,) whether the world's checker accepts each teacher sample as a sample of its prompt
    (:func:`zlab.shapes.metrics.accepts`: one clean object with the named attributes), decoded by ``vae``."""
    from zlab.shapes.metrics import accepts
    from zlab.zimage import decode_with

    out = []
    for i in range(0, len(data), batch_size):
        images = (decode_with(vae, data.latents[i:i + batch_size]).numpy() * 255).round().astype("uint8")
        prompts = [data.prompts[k] for k in data.prompt_index[i:i + batch_size].tolist()]
        out += [accepts(image, prompt) for image, prompt in zip(images, prompts, strict=True)]
    return torch.tensor(out, dtype=torch.bool)


def drop_rejected(buckets: list[SynthData], vae) -> tuple[list[SynthData], dict[str, int]]:
    """Each bucket without the samples the world's checker rejects (:func:`accepted`), and the counts:
    ``{"kept": n, "rejected": m}`` over all buckets."""
    masks = [accepted(data, vae) for data in buckets]
    if any(not m.any() for m in masks):
        raise ValueError(f"the checker rejects every sample of a bucket ({[int(m.sum()) for m in masks]} kept of "
                         f"{[len(m) for m in masks]}): is data.teacher the teacher that made data.folder?")
    kept = [data.subset(mask) for data, mask in zip(buckets, masks, strict=True)]
    n_kept = sum(int(m.sum()) for m in masks)
    return kept, {"kept": n_kept, "rejected": sum(len(m) for m in masks) - n_kept}


def load_buckets(path: str | Path) -> list[SynthData]:
    """The synth data of each aspect bucket of a :func:`synthesize_buckets` folder, or ``[SynthData.load(path)]``
    for a plain synth folder."""
    path = Path(path)
    if not (path / BUCKETS).is_file():
        return [SynthData.load(path)]
    return [SynthData.load(path / name) for name in json.loads((path / BUCKETS).read_text())["buckets"]]
