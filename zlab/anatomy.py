"""The S3-DiT taken apart: every stage of a Z-Image forward pass, named, with its tensor.

Nothing here re-implements the model. :func:`trace_transformer` replays
``ZImageTransformer2DModel.forward`` (basic, non-omni mode) by calling the model's own methods in
the model's own order (``t_embedder``, ``patchify_and_embed``, ``_prepare_sequence``,
``noise_refiner``, ``cap_embedder``, ``context_refiner``, ``_build_unified_sequence``, ``layers``,
the final layer, ``unpatchify``) and keeps what each returns; :func:`check_trace` proves the replay
*is* the model by comparing its output with a real forward call. The text side
(:func:`trace_prompts`) watches ``ZImagePipeline.encode_prompt`` through forward hooks.

The token layout of the single stream (Z-Image technical report, Z-Image Team 2025) lives here and
only here, in :func:`token_layout`::

    [ image tokens (row-major over the (H/2, W/2) grid) | image pad | caption tokens | caption pad ]
      '------------- multiple of 32 ------------------'   '---------- multiple of 32 ----------'

3D RoPE position ids, as diffusers assigns them: caption token k (pads included) sits at
``(1 + k, 0, 0)``; image token (row, col) at ``(cap_len + 1, row, col)`` where ``cap_len`` is the
*padded* caption length; image pad tokens sit at ``(0, 0, 0)``.

Example:
    >>> pipe = build_tiny_pipeline(seed=0)
    >>> embeds = encode_prompts(pipe, ["a large red circle at the top left"])
    >>> trace = trace_transformer(pipe.transformer, torch.randn(1, 16, 8, 12), 0.5, embeds, attention_layers=[0])
    >>> trace.layouts[0].caption, trace["unified"].shape
    (slice(32, 45, None), torch.Size([1, 64, 128]))
    >>> check_trace(pipe.transformer, trace)   # max |trace - forward|, raises if above atol
    0.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from diffusers.models.transformers.transformer_z_image import ZImageTransformerBlock
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from zlab.flow import zimage_velocity
from zlab.zimage import REAL_TRANSFORMER_CONFIG, encode_images, encode_prompts

__all__ = [
    "KINDS", "TokenLayout", "token_layout",
    "PromptTrace", "trace_prompts", "LatentTrace", "trace_latents",
    "model_inputs", "adaln_modulation", "AttentionMap", "recompute_attention",
    "Stage", "DiTTrace", "trace_transformer", "check_trace", "block_breakdown",
]

# Names of the four segments of one sample's stream, in stream order; DiTTrace.stream_kinds indexes this.
KINDS = ("image", "image_pad", "caption", "caption_pad")


# --------------------------------------------------------------------------------------------
# Token layout: the one place in zlab that knows where each token sits in the stream
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenLayout:
    """Where each kind of token sits in one sample's unified stream ``[image, caption]``.

    Attributes:
        image: Positions of the real image tokens, row-major over ``grid``.
        image_pad: Image padding (copies of the last image token, replaced by ``x_pad_token``).
        caption: Positions of the caption tokens (the prompt's non-padding text tokens).
        caption_pad: Caption padding (replaced by ``cap_pad_token``).
        grid: ``(h, w)`` of the patch grid, ``h = H_latent / patch``, ``w = W_latent / patch``.
    """

    image: slice
    image_pad: slice
    caption: slice
    caption_pad: slice
    grid: tuple[int, int]

    @property
    def length(self) -> int:
        """Tokens in this sample's stream (before any batch padding)."""
        return self.caption_pad.stop

    @property
    def cap_len(self) -> int:
        """Padded caption length: image tokens sit at RoPE index ``cap_len + 1`` on axis 0."""
        return self.caption_pad.stop - self.caption.start

    def kind_ids(self) -> Tensor:
        """(length,) int64: the index in :data:`KINDS` of every position."""
        ids = torch.empty(self.length, dtype=torch.long)
        for k, name in enumerate(KINDS):
            ids[getattr(self, name)] = k
        return ids

    def kinds(self) -> list[str]:
        """The :data:`KINDS` name of every position."""
        return [KINDS[k] for k in self.kind_ids().tolist()]

    def image_grid(self, stream: Tensor) -> Tensor:
        """Image tokens of a stream ``(..., S, D)`` as a map ``(..., D, h, w)`` (row-major inverse)."""
        tokens = stream[..., self.image, :]
        return tokens.unflatten(-2, self.grid).movedim(-1, -3)


def token_layout(latent_h: int, latent_w: int, cap_len: int, patch: int = 2, multiple: int = 32) -> TokenLayout:
    """Layout of the single stream for a latent of ``latent_h x latent_w`` and a caption of ``cap_len`` tokens.

    Image tokens come first, ``(latent_h / patch) * (latent_w / patch)`` of them in row-major order,
    padded to a multiple of ``multiple``; the caption follows, padded the same way (diffusers'
    ``SEQ_MULTI_OF = 32``).

    Example:
        >>> layout = token_layout(8, 12, 13)     # a 64x96 image, a 13-token caption
        >>> layout.image, layout.image_pad, layout.caption, layout.caption_pad, layout.grid
        (slice(0, 24, None), slice(24, 32, None), slice(32, 45, None), slice(45, 64, None), (4, 6))
    """
    if latent_h % patch or latent_w % patch:
        raise ValueError(f"latent size {latent_h}x{latent_w} is not divisible by the patch size {patch}")
    if cap_len < 1:
        raise ValueError(f"a caption has at least one token, got cap_len={cap_len}")
    h, w = latent_h // patch, latent_w // patch
    n_img = h * w
    img_end = n_img + (-n_img) % multiple
    cap_end = img_end + cap_len
    return TokenLayout(image=slice(0, n_img), image_pad=slice(n_img, img_end), caption=slice(img_end, cap_end),
                       caption_pad=slice(cap_end, cap_end + (-cap_len) % multiple), grid=(h, w))


# --------------------------------------------------------------------------------------------
# Text and VAE paths
# --------------------------------------------------------------------------------------------


@dataclass
class PromptTrace:
    """The Qwen3 prompt path for one prompt, as ``ZImagePipeline.encode_prompt`` runs it.

    Attributes:
        prompt: The raw prompt.
        tokens: The tokens the chat template produced, padding excluded.
        input_ids: (max_sequence_length,) ids fed to the text encoder, padding included.
        mask: (max_sequence_length,) bool, True on real tokens.
        n_hidden_states: How many hidden states the encoder returned (embeddings + one per layer).
        hidden: (max_sequence_length, D_text) ``hidden_states[-2]``, padding included.
        embeds: (L, D_text) what the transformer receives: ``hidden[mask]``.
    """

    prompt: str
    tokens: list[str]
    input_ids: Tensor
    mask: Tensor
    n_hidden_states: int
    hidden: Tensor
    embeds: Tensor


@torch.no_grad()
def trace_prompts(pipe, prompts: Sequence[str], max_sequence_length: int = 512) -> list[PromptTrace]:
    """Run :func:`zlab.zimage.encode_prompts` and record what the text encoder saw and returned."""
    seen: dict = {}

    def hook(module, args, kwargs, output):
        seen.update(input_ids=kwargs["input_ids"], mask=kwargs["attention_mask"], hidden_states=output.hidden_states)

    handle = pipe.text_encoder.register_forward_hook(hook, with_kwargs=True)
    try:
        embeds = encode_prompts(pipe, prompts, max_sequence_length=max_sequence_length)
    finally:
        handle.remove()
    traces = []
    for i, prompt in enumerate(prompts):
        ids, mask = seen["input_ids"][i], seen["mask"][i].bool()
        traces.append(PromptTrace(
            prompt=prompt, tokens=pipe.tokenizer.convert_ids_to_tokens(ids[mask].tolist()), input_ids=ids, mask=mask,
            n_hidden_states=len(seen["hidden_states"]), hidden=seen["hidden_states"][-2][i], embeds=embeds[i]))
    return traces


@dataclass
class LatentTrace:
    """VAE encoding with the VAE config's normalisation: ``z = (z_raw - shift) * scale``.

    Attributes:
        images: (B, 3, H, W) in [-1, 1].
        z_raw: (B, 16, H/8, W/8) the posterior mode, as the VAE returns it.
        z: Normalised latents, what the transformer is trained on.
        shift, scale: The VAE config's ``shift_factor`` and ``scaling_factor``.
    """

    images: Tensor
    z_raw: Tensor
    z: Tensor
    shift: float
    scale: float


@torch.no_grad()
def trace_latents(vae, images: Tensor) -> LatentTrace:
    """Encode ``images`` with :func:`zlab.zimage.encode_images` and keep the raw latents beside them."""
    images = images.to(device=vae.device, dtype=vae.dtype)
    z_raw = vae.encode(images).latent_dist.mode()
    return LatentTrace(images=images, z_raw=z_raw, z=encode_images(vae, images),
                       shift=float(vae.config.shift_factor), scale=float(vae.config.scaling_factor))


# --------------------------------------------------------------------------------------------
# Inputs in the model's own clock, adaLN, attention
# --------------------------------------------------------------------------------------------


class _Captured(Exception):
    """Raised by a pre-hook to stop a forward call once its inputs are known."""


def model_inputs(transformer, latents: Tensor, t: Tensor | float,
                 prompt_embeds: Sequence[Tensor]) -> tuple[list[Tensor], Tensor, list[Tensor]]:
    """What diffusers' transformer is called with for lab-time ``t``: ``(frames, model_t, cap_feats)``.

    The lab-to-diffusers conversion (``model_t = 1 - t``, frames of shape (C, 1, H, W)) belongs to
    :func:`zlab.flow.zimage_velocity` alone, so this runs it and stops the call in a forward pre-hook,
    before any computation: the trace sees exactly the inputs sampling would give the model.
    """
    t = torch.as_tensor(t, dtype=torch.float32)
    if t.ndim == 0:
        t = t.expand(latents.shape[0])
    box: dict = {}

    def hook(module, args, kwargs):
        box["args"] = args
        raise _Captured

    handle = transformer.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        zimage_velocity(transformer, latents, t, prompt_embeds)
    except _Captured:
        pass
    finally:
        handle.remove()
    frames, model_t, cap_feats = box["args"][:3]
    return list(frames), model_t, list(cap_feats)


def _modulation(block, c: Tensor) -> dict[str, Tensor]:
    """A block's global adaLN values from the timestep embedding ``c`` (B, 256), as its forward makes them."""
    scale_msa, gate_msa, scale_mlp, gate_mlp = block.adaLN_modulation(c).chunk(4, dim=1)
    return {"scale_msa": 1.0 + scale_msa, "gate_msa": gate_msa.tanh(),
            "scale_mlp": 1.0 + scale_mlp, "gate_mlp": gate_mlp.tanh()}


def _modulations(transformer, c: Tensor) -> dict[str, dict[str, Tensor]]:
    out = {f"noise_refiner.{i}": _modulation(b, c) for i, b in enumerate(transformer.noise_refiner)}
    out.update({f"layers.{i}": _modulation(b, c) for i, b in enumerate(transformer.layers)})
    final = next(iter(transformer.all_final_layer.values()))
    out["final_layer"] = {"scale": 1.0 + final.adaLN_modulation(c)}
    return out


@torch.no_grad()
def adaln_modulation(transformer, t: Tensor | Sequence[float]) -> dict[str, dict[str, Tensor]]:
    """adaLN values of every timestep-conditioned block at lab times ``t`` (T,).

    For each block (``noise_refiner.i``, ``layers.i``) a dict of (T, dim) tensors

    .. math:: s = 1 + W_s c, \\qquad g = \\tanh(W_g c), \\qquad c = \\mathrm{t\\_embedder}(1000\\,(1 - t))

    named ``scale_msa, gate_msa, scale_mlp, gate_mlp``; the block computes
    ``x + g_msa * RMSNorm(attn(RMSNorm(x) * s_msa))`` and likewise for the FFN. ``final_layer`` has a
    ``scale`` only. The context refiner has no modulation and does not appear.
    """
    t = torch.atleast_1d(torch.as_tensor(t, dtype=torch.float32))
    p = transformer.all_patch_size[0]
    like = {"dtype": transformer.dtype, "device": transformer.device}
    dummy = torch.zeros(len(t), transformer.config.in_channels, p, p, **like)  # only t matters here
    caps = [torch.zeros(1, transformer.config.cap_feat_dim, **like)] * len(t)
    _, model_t, _ = model_inputs(transformer, dummy, t, caps)
    c = transformer.t_embedder(model_t * transformer.t_scale).type_as(dummy)
    return _modulations(transformer, c)


@dataclass
class AttentionMap:
    """Attention of one block, recomputed from its inputs.

    Attributes:
        probs: (B, heads, S, S) ``softmax(q k^T / sqrt(d))``, rows = queries, columns = keys.
        output: (B, S, D) the attention module's output rebuilt from ``probs``.
        reference: (B, S, D) what the real module returned in the same forward pass (None if unknown).
    """

    probs: Tensor
    output: Tensor
    reference: Tensor | None = None

    @property
    def max_error(self) -> float:
        """max |output - reference|: the recomputation reproduces the module to this tolerance."""
        return float((self.output - self.reference).abs().max())


def _apply_rope(x: Tensor, freqs_cis: Tensor) -> Tensor:
    """RoPE as ``ZSingleStreamAttnProcessor`` applies it: pairs of channels as complex numbers times ``freqs_cis``."""
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(xc * freqs_cis.unsqueeze(2)).flatten(3).type_as(x)


@torch.no_grad()
def recompute_attention(attn, hidden_states: Tensor, freqs_cis: Tensor,
                        attention_mask: Tensor | None = None) -> AttentionMap:
    """Attention probabilities of a Z-Image ``Attention`` module for the inputs it was called with.

    Uses the module's own projections and QK-norms (``to_q/k/v``, ``norm_q/k``, ``to_out``), rotates
    q and k with ``freqs_cis`` (3D RoPE), and forms the probabilities explicitly, which fused SDPA
    never materialises:

    .. math::

        A = \\mathrm{softmax}\\big(\\tilde q \\tilde k^\\top / \\sqrt{d}\\big), \\qquad
        \\tilde q = \\mathrm{RoPE}(\\mathrm{RMSNorm}(W_q h)), \\qquad
        \\tilde k = \\mathrm{RoPE}(\\mathrm{RMSNorm}(W_k h))
    """
    q = attn.to_q(hidden_states).unflatten(-1, (attn.heads, -1))
    k = attn.to_k(hidden_states).unflatten(-1, (attn.heads, -1))
    v = attn.to_v(hidden_states).unflatten(-1, (attn.heads, -1))
    if attn.norm_q is not None:
        q = attn.norm_q(q)
    if attn.norm_k is not None:
        k = attn.norm_k(k)
    q, k = _apply_rope(q, freqs_cis), _apply_rope(k, freqs_cis)
    scores = torch.einsum("bshd,bthd->bhst", q.float(), k.float()) / math.sqrt(q.shape[-1])
    if attention_mask is not None:  # True = key may be attended to, as the processor reads it
        scores = scores.masked_fill(~attention_mask.bool()[:, None, None, :], float("-inf"))
    probs = scores.softmax(dim=-1)
    out = torch.einsum("bhst,bthd->bshd", probs, v.float()).flatten(2).to(hidden_states.dtype)
    return AttentionMap(probs=probs, output=attn.to_out[0](out))


# --------------------------------------------------------------------------------------------
# The trace of a whole forward pass
# --------------------------------------------------------------------------------------------


@dataclass
class Stage:
    """One named intermediate of the forward pass: the tensor (batched, padded) and what it is."""

    name: str
    tensor: Tensor
    note: str


@dataclass
class DiTTrace:
    """Every stage of one ``ZImageTransformer2DModel`` forward pass (see :func:`trace_transformer`).

    Attributes:
        t: (B,) lab times (t = 0 clean, t = 1 noise).
        model_t: (B,) the time diffusers' model was given (its clock runs the other way).
        stages: Ordered named stages; ``trace["unified"]`` is the single stream, etc.
        layouts: One :class:`TokenLayout` per sample.
        stream_kinds: (B, S) index into :data:`KINDS` for each stream position, obtained from the
            model's own ``_build_unified_sequence`` (-1 on batch padding).
        position_ids: (B, S, 3) RoPE ids of the stream (axis 0: caption order / image frame,
            axis 1: row, axis 2: column), as ``rope_embedder`` consumed them.
        freqs_cis: (B, S, head_dim / 2) complex rotations the main layers used.
        modulation: adaLN values per timestep-conditioned block (see :func:`adaln_modulation`).
        attention: Recomputed attention of the requested main layers, by layer index.
        output: Per sample (C, 1, H, W): the model's raw output in diffusers' sign and clock.
        inputs: ``(frames, model_t, cap_feats)`` the model was called with, for :func:`check_trace`.
    """

    t: Tensor
    model_t: Tensor
    stages: dict[str, Stage]
    layouts: list[TokenLayout]
    stream_kinds: Tensor
    position_ids: Tensor
    freqs_cis: Tensor
    modulation: dict[str, dict[str, Tensor]]
    attention: dict[int, AttentionMap]
    output: list[Tensor]
    inputs: tuple = field(repr=False, default=())

    def __getitem__(self, name: str) -> Tensor:
        return self.stages[name].tensor

    def table(self) -> list[dict]:
        """``[{stage, shape, what}]`` rows, in forward order, for a notebook table."""
        return [{"stage": s.name, "shape": tuple(s.tensor.shape), "what": s.note} for s in self.stages.values()]


def _unify(transformer, x_parts: list[Tensor], cap_parts: list[Tensor], x_seqlens: list[int],
           cap_seqlens: list[int]) -> Tensor:
    """Order per-sample image and caption tensors into the stream the way the model itself does."""
    x = pad_sequence(x_parts, batch_first=True)
    cap = pad_sequence(cap_parts, batch_first=True)
    unified, _, _, _ = transformer._build_unified_sequence(
        x=x, x_freqs=x, x_seqlens=x_seqlens, x_noise_mask=None, cap=cap, cap_freqs=cap, cap_seqlens=cap_seqlens,
        cap_noise_mask=None, siglip=None, siglip_freqs=None, siglip_seqlens=None, siglip_noise_mask=None,
        omni_mode=False, device=x.device)
    return unified


@torch.no_grad()
def trace_transformer(transformer, latents: Tensor, t: Tensor | float, prompt_embeds: Sequence[Tensor],
                      attention_layers: Sequence[int] = ()) -> DiTTrace:
    """Replay one forward pass of a Z-Image transformer stage by stage.

    Calls the model's own methods in the order of ``ZImageTransformer2DModel.forward`` (basic mode),
    keeping every intermediate; :func:`check_trace` confirms the result equals a real forward call.

    Args:
        transformer: A diffusers ``ZImageTransformer2DModel``.
        latents: (B, C, H, W) normalised latents ``x_t`` at lab time ``t``.
        t: Lab time(s), scalar or (B,): t = 0 clean, t = 1 noise.
        prompt_embeds: One (L_i, D_text) tensor per sample (``encode_prompts`` output).
        attention_layers: Main-layer indices whose attention probabilities to recompute
            (each costs B * heads * S^2 floats).
    """
    tr = transformer
    p, pf = tr.all_patch_size[0], tr.all_f_patch_size[0]
    key = f"{p}-{pf}"
    frames, model_t, cap_feats = model_inputs(tr, latents, t, prompt_embeds)
    device = frames[0].device
    stages: dict[str, Stage] = {}

    def keep(name: str, tensor, note: str) -> None:
        if isinstance(tensor, (list, tuple)):
            tensor = pad_sequence(list(tensor), batch_first=True)
        stages[name] = Stage(name, tensor.detach(), note)

    keep("latents", latents, "x_t: normalised VAE latents at lab time t (B, C, H, W)")
    keep("caption features", cap_feats, "Qwen3 hidden_states[-2], padding dropped (B, L, D_text)")

    # timestep -> adaLN input (diffusers' forward: t_embedder(t * t_scale))
    adaln_input = tr.t_embedder(model_t * tr.t_scale).type_as(frames[0])
    keep("t embedding", adaln_input, "t_embedder(1000 * model_t): the adaLN conditioning vector c")

    # patchify: 2x2 patches of the latent, row-major; both streams padded to multiples of 32
    x, cap, x_size, x_pos, cap_pos, x_pad, cap_pad = tr.patchify_and_embed(frames, cap_feats, p, pf)
    keep("patches", x, f"{p}x{p} latent patches flattened to p*p*C, padded to a multiple of 32")
    keep("caption padded", cap, "caption features padded to a multiple of 32 (last token repeated)")

    # image tokens: embed, pad tokens, RoPE, noise refiner (adaLN, timestep-conditioned)
    x_seqlens = [len(xi) for xi in x]
    x = tr.all_x_embedder[key](torch.cat(x, dim=0))
    keep("x_embedder", list(x.split(x_seqlens)), "image tokens linearly embedded to the model width")
    x, x_freqs, x_mask, _, _ = tr._prepare_sequence(list(x.split(x_seqlens, dim=0)), x_pos, x_pad,
                                                    tr.x_pad_token, None, device)
    keep("image tokens", x, "padding positions replaced by the learned x_pad_token")
    for i, layer in enumerate(tr.noise_refiner):
        x = layer(x, x_mask, x_freqs, adaln_input)
        keep(f"noise_refiner.{i}", x, "image-only block with adaLN (depends on t)")

    # caption tokens: cap_embedder (RMSNorm + Linear), pad tokens, RoPE, context refiner (no adaLN)
    cap_seqlens = [len(ci) for ci in cap]
    cap = tr.cap_embedder(torch.cat(cap, dim=0))
    keep("cap_embedder", list(cap.split(cap_seqlens)), "RMSNorm + Linear: D_text -> model width")
    cap, cap_freqs, cap_mask, _, _ = tr._prepare_sequence(list(cap.split(cap_seqlens, dim=0)), cap_pos, cap_pad,
                                                          tr.cap_pad_token, None, device)
    keep("caption tokens", cap, "padding positions replaced by the learned cap_pad_token")
    for i, layer in enumerate(tr.context_refiner):
        cap = layer(cap, cap_mask, cap_freqs)
        keep(f"context_refiner.{i}", cap, "caption-only block, no modulation (independent of t)")

    # one stream, [image, caption] per sample, then the main layers
    unified, freqs, mask, _ = tr._build_unified_sequence(
        x=x, x_freqs=x_freqs, x_seqlens=x_seqlens, x_noise_mask=None, cap=cap, cap_freqs=cap_freqs,
        cap_seqlens=cap_seqlens, cap_noise_mask=None, siglip=None, siglip_freqs=None, siglip_seqlens=None,
        siglip_noise_mask=None, omni_mode=False, device=device)
    keep("unified", unified, "single stream [image | image pad | caption | caption pad]")

    captured: dict[int, dict] = {}

    def capture(idx):
        def pre(module, args, kwargs):
            captured[idx] = {"hidden_states": args[0], "freqs_cis": kwargs.get("freqs_cis"),
                             "attention_mask": kwargs.get("attention_mask")}

        def post(module, args, output):
            captured[idx]["reference"] = output
        return pre, post

    handles = []
    for idx in attention_layers:
        pre, post = capture(idx)
        attn = tr.layers[idx].attention
        handles += [attn.register_forward_pre_hook(pre, with_kwargs=True), attn.register_forward_hook(post)]
    try:
        for i, layer in enumerate(tr.layers):
            unified = layer(unified, mask, freqs, adaln_input)
            keep(f"layers.{i}", unified, "main single-stream block: adaLN + joint self-attention + SwiGLU")
    finally:
        for h in handles:
            h.remove()

    final = tr.all_final_layer[key](unified, c=adaln_input)
    keep("final layer", final, "LayerNorm * (1 + scale(c)), Linear to p*p*C per token")
    output = tr.unpatchify(list(final.unbind(dim=0)), x_size, p, pf)
    keep("output", output, "unpatchified model output (diffusers' sign: -v), (C, 1, H, W) per sample")

    attention = {}
    for idx, cap_in in captured.items():
        amap = recompute_attention(tr.layers[idx].attention, cap_in["hidden_states"], cap_in["freqs_cis"],
                                   cap_in["attention_mask"])
        amap.reference = cap_in["reference"]
        attention[idx] = amap

    # bookkeeping routed through the model's own ordering, so it cannot disagree with the stream
    cap_lens = [len(c) for c in cap_feats]
    kinds = _unify(tr, [torch.where(m, 1, 0) for m in x_pad], [torch.where(m, 3, 2) for m in cap_pad],
                   x_seqlens, cap_seqlens)
    lengths = [a + b for a, b in zip(x_seqlens, cap_seqlens)]
    for i, n in enumerate(lengths):
        kinds[i, n:] = -1
    pos_ids = _unify(tr, [pi.long() for pi in x_pos], [pi.long() for pi in cap_pos], x_seqlens, cap_seqlens)
    layouts = [token_layout(f.shape[-2], f.shape[-1], n, patch=p) for f, n in zip(frames, cap_lens)]
    return DiTTrace(t=torch.as_tensor(t, dtype=torch.float32).expand(len(frames)).clone(), model_t=model_t,
                    stages=stages, layouts=layouts, stream_kinds=kinds, position_ids=pos_ids, freqs_cis=freqs,
                    modulation=_modulations(tr, adaln_input), attention=attention, output=output,
                    inputs=(frames, model_t, cap_feats))


@torch.no_grad()
def check_trace(transformer, trace: DiTTrace, atol: float = 1e-5) -> float:
    """Max |trace output - real forward output| for the same inputs; raises AssertionError above ``atol``.

    This is what lets a notebook say "the trace is the model".
    """
    frames, model_t, cap_feats = trace.inputs
    real = transformer(frames, model_t, cap_feats, return_dict=False)[0]
    err = max(float((a - b).abs().max()) for a, b in zip(trace.output, real))
    if not err <= atol:
        raise AssertionError(f"trace differs from the real forward pass by {err:.3g} > {atol}")
    return err


def block_breakdown(config: dict | None = None) -> dict[str, int]:
    """Parameters of one main S3-DiT block by part, built on the meta device (no memory).

    With the real config: attention projections 4 * 3840^2, QK-norm 2 * 128, SwiGLU 3 * 3840 * 10240,
    four RMSNorms 4 * 3840, adaLN Linear(256 -> 4 * 3840) with bias; 180,910,336 in all.
    """
    cfg = {**REAL_TRANSFORMER_CONFIG, **(config or {})}
    with torch.device("meta"):
        block = ZImageTransformerBlock(0, cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"], cfg["norm_eps"],
                                       cfg["qk_norm"])
    parts = {"attention q/k/v/out": ("attention.to_",), "QK-norm": ("attention.norm_",),
             "SwiGLU feed-forward": ("feed_forward.",), "RMSNorms": ("attention_norm", "ffn_norm"),
             "adaLN modulation": ("adaLN_modulation.",)}
    counts = {name: 0 for name in parts}
    for pname, param in block.named_parameters():
        part = next((n for n, prefixes in parts.items() if pname.startswith(prefixes)), None)
        if part is None:
            raise KeyError(f"parameter {pname} belongs to no known part")
        counts[part] += param.numel()
    counts["total"] = sum(counts.values())
    return counts
