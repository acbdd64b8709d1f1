"""Measure a pipeline on the Shapes world: prompt accuracy, Fréchet distance, diversity, NFE, latency.

Samples come from **stock** ``ZImagePipeline.__call__`` with the keyword arguments of a setting (the
same dict a checkpoint's ``sampling.json`` holds), so the numbers are the ones anyone reproduces
with diffusers alone. Accuracy is read by :func:`zlab.shapes.checker.check`; FD and diversity live in the
feature space of :class:`zlab.shapes.net.ShapesNet` (FD through torchmetrics'
``FrechetInceptionDistance(feature=...)``).

Example:
    >>> rows = evaluate_settings(pipe, {"teacher-50": sampling}, net, seeds=range(2))
    >>> print(format_table(rows))

``zlab eval`` measures a pipeline folder at its own ``sampling.json`` with :func:`evaluate_folder`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline
from torchmetrics.image.fid import FrechetInceptionDistance

from zlab.measure.settings import Setting, by_label
from zlab.sampling import cfg_active, guidance_scale_to_s
from zlab.shapes import checker, dataset, draw, world
from zlab.shapes.metrics import GROUPS, METRICS, REPORT_GROUPS, mean_se, open_renders, prompt_records, summarise
from zlab.shapes.net import ShapesNet
from zlab.shapes.prompt_sets import prompts_and_seeds
from zlab.zimage import SAMPLING_FILE, load_pipeline, read_sampling, schedule

STOCK_KEYS = {"num_inference_steps", "guidance_scale", "cfg_truncation", "cfg_normalization", "height", "width", "sigmas",
              "max_sequence_length"}


def setting_kwargs(setting: Mapping) -> dict:
    """The stock-pipeline keyword arguments of a setting; rejects unknown keys by name."""
    unknown = set(setting) - STOCK_KEYS
    if unknown:
        raise ValueError(f"unknown sampling key(s) {sorted(unknown)}; accepted: {sorted(STOCK_KEYS)}")
    return dict(setting)


def setting_size(setting: Mapping) -> tuple[int, int]:
    """``(height, width)`` of a Shapes setting (64 x 64 unless it says otherwise)."""
    return setting.get("height", 64), setting.get("width", 64)


def count_nfe(pipe: ZImagePipeline, setting: Mapping) -> int:
    """Network evaluations per image of a stock call: one per step, two where CFG is active."""
    kw = setting_kwargs(setting)
    sigmas = kw.get("sigmas")
    steps = len(sigmas) if sigmas is not None else kw.get("num_inference_steps", 50)
    ts = schedule(pipe.scheduler, steps, kw.get("height", 1024), kw.get("width", 1024), sigmas=sigmas,
                  vae_scale_factor=pipe.vae_scale_factor)[:-1]
    g = kw.get("guidance_scale", 5.0)
    if g <= 0:
        return steps
    s = guidance_scale_to_s(g)
    return sum(2 if cfg_active(float(t), s, kw.get("cfg_truncation", 1.0)) else 1 for t in ts)


def stock_samples(pipe: ZImagePipeline, prompts: Sequence[str], seeds: Sequence[int], setting: Mapping,
                  batch_size: int = 64) -> tuple[np.ndarray, float]:
    """uint8 images (N, H, W, 3) from stock ``pipe(...)``, one seed per prompt, and ms per image.

    A scheduler with ``stochastic_sampling`` re-noises between steps with noise diffusers draws from the global
    RNG, not from the generators: it is seeded with each batch's first seed, so a run is repeatable."""
    if len(prompts) != len(seeds):
        raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds")
    kw = setting_kwargs(setting)
    stochastic = bool(getattr(pipe.scheduler.config, "stochastic_sampling", False))
    out, start = [], time.perf_counter()
    for i in range(0, len(prompts), batch_size):
        if stochastic:
            torch.manual_seed(int(seeds[i]))
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds[i:i + batch_size]]
        images = pipe(list(prompts[i:i + batch_size]), generator=gens, output_type="np", **kw).images
        out.append((images * 255).round().astype(np.uint8))
    elapsed = time.perf_counter() - start
    return np.concatenate(out), 1000 * elapsed / len(prompts)


def latency_ms(pipe: ZImagePipeline, setting: Mapping, prompts: Sequence[str], seeds: Sequence[int]) -> float:
    """Median wall-clock milliseconds of one-image stock calls (batch 1, text encoding and VAE decode
    included): what a user of the app waits for. One untimed call first warms the caches."""
    stock_samples(pipe, prompts[:1], seeds[:1], setting, batch_size=1)
    return float(np.median([stock_samples(pipe, [p], [s], setting, batch_size=1)[1] for p, s in zip(prompts, seeds)]))


def paired_speedup(slow: ZImagePipeline, slow_setting: Mapping, fast: ZImagePipeline, fast_setting: Mapping,
                   prompts: Sequence[str], rounds: int = 3, batch_size: int = 1) -> dict[str, float]:
    """Wall-clock ratio slow / fast per image from interleaved calls (text encoding and VAE decode
    included), robust to a shared, noisy machine.

    Each pair times one slow call and then one fast call on the same ``batch_size`` prompts and seeds,
    back to back, so both see the same machine load; the ratio of every pair is kept and the median
    reported, with its quartiles. One untimed call of each warms the caches first.
    """
    batches = [list(prompts[i:i + batch_size]) for i in range(0, len(prompts), batch_size)]
    stock_samples(slow, batches[0], list(range(len(batches[0]))), slow_setting, batch_size=batch_size)
    stock_samples(fast, batches[0], list(range(len(batches[0]))), fast_setting, batch_size=batch_size)
    slow_ms, fast_ms = [], []
    for r in range(rounds):
        for k, batch in enumerate(batches):
            seeds = [(r * len(batches) + k) * batch_size + j for j in range(len(batch))]
            slow_ms.append(stock_samples(slow, batch, seeds, slow_setting, batch_size=batch_size)[1])
            fast_ms.append(stock_samples(fast, batch, seeds, fast_setting, batch_size=batch_size)[1])
    ratios = np.array(slow_ms) / np.array(fast_ms)
    q25, median, q75 = np.percentile(ratios, [25, 50, 75])
    return {"median": float(median), "q25": float(q25), "q75": float(q75), "min": float(ratios.min()),
            "max": float(ratios.max()), "pairs": len(ratios), "batch_size": batch_size,
            "slow_ms": float(np.median(slow_ms)), "fast_ms": float(np.median(fast_ms))}


def prompt_accuracy(images: np.ndarray, prompts: Sequence[str]) -> dict[str, float]:
    """Per-attribute and joint accuracy of the checker's reading against each prompt."""
    return checker.accuracy(checker.check_batch(images), [world.parse_caption(p) for p in prompts])


real_renders = open_renders
"""Ground-truth renders of (open or fully named) prompts, jitter and open attributes drawn from each seed."""


@torch.no_grad()
def vae_reconstruction(vae, n: int = 500, size=64, split: str = "all", seed: int = 99) -> dict[str, float]:
    """Checker accuracy and PSNR (dB, images in [0, 1]) of VAE round trips of fresh renders."""
    data = dataset.ShapesDataset(split, size, length=n, seed=seed)
    draws = [data.draw(i) for i in range(n)]
    renders = draw.render_batch([d[0] for d in draws], data.size, [d[1] for d in draws])
    recon = []
    for i in range(0, n, 100):
        x = draw.image_to_tensor(renders[i:i + 100])
        recon.append(draw.tensor_to_image(vae.decode(vae.encode(x).latent_dist.mode()).sample))
    recon = np.concatenate(recon)
    mse = ((recon.astype(np.float64) - renders.astype(np.float64)) / 255) ** 2
    psnr = float(np.mean(10 * np.log10(1.0 / mse.reshape(n, -1).mean(1).clip(1e-10))))
    acc = checker.accuracy(checker.check_batch(recon), [d[0] for d in draws])
    return {"psnr_db": psnr, **{f"acc_{k}": v for k, v in acc.items()}}


def _floats(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


def frechet_distance(net: ShapesNet, real: np.ndarray, fake: np.ndarray) -> float:
    """FD between real and generated images in ShapesNet feature space (torchmetrics)."""
    fid = FrechetInceptionDistance(feature=net, normalize=True)
    with torch.no_grad():
        fid.update(_floats(real), real=True)
        fid.update(_floats(fake), real=False)
    return float(fid.compute())


def mean_pairwise_distance(net: ShapesNet, groups: Iterable[np.ndarray]) -> float:
    """Mean L2 distance between features of images within each group, averaged over groups."""
    values = []
    with torch.no_grad():
        for group in groups:
            f = net(_floats(group))
            d = torch.cdist(f, f)
            n = len(f)
            values.append(float(d.sum() / (n * (n - 1))))
    return float(np.mean(values))


def measure(pipe: ZImagePipeline, setting: Mapping, prompts: Sequence[str], seeds: Sequence[int],
            net: ShapesNet | None = None, batch_size: int = 64) -> tuple[dict, np.ndarray]:
    """One setting on ``prompts`` (seed i for prompt i): NFE, ms per image, accuracy and, with ``net``,
    FD against renders of the same prompts. Returns the row and the uint8 images."""
    images, ms = stock_samples(pipe, prompts, seeds, setting, batch_size)
    row = {"nfe": count_nfe(pipe, setting), "ms_per_image": ms,
           **{f"acc_{k}": v for k, v in prompt_accuracy(images, prompts).items()}}
    if net is not None and len(prompts) > 1:
        row["fd"] = frechet_distance(net, real_renders(prompts, seeds, setting_size(setting)), images)
    return row, images


def evaluate_settings(pipe: ZImagePipeline, settings: Mapping[str, Mapping], net: ShapesNet,
                      seeds: Sequence[int] = (0,), diversity_prompts: int = 6, diversity_seeds: int = 8,
                      heldout: bool = True, batch_size: int = 64) -> list[dict]:
    """One row per setting: accuracy on every train caption (and held-out caption) x ``seeds``,
    FD against renders of the same prompts, diversity relative to renders, NFE, ms per image.

    All settings are timed in the same run, on the same prompts and seeds, so rows compare.
    """
    train = world.enumerate_captions("train")
    held = world.enumerate_captions("heldout") if heldout else []
    prompts = [p for s in seeds for p in train]
    prompt_seeds = [s * 100_003 + i for s in seeds for i in range(len(train))]
    held_prompts = [p for s in seeds for p in held]
    held_seeds = [s * 100_003 + 50_000 + i for s in seeds for i in range(len(held))]
    div_prompts = train[:: max(1, len(train) // diversity_prompts)][:diversity_prompts]
    div_list = [p for p in div_prompts for _ in range(diversity_seeds)]
    div_seeds = list(range(len(div_list)))

    rows = []
    for name, setting in settings.items():
        row, _ = measure(pipe, setting, prompts, prompt_seeds, net, batch_size)
        row = {"setting": name, **row}
        if held:
            row["acc_heldout_joint"] = measure(pipe, setting, held_prompts, held_seeds, None, batch_size)[0]["acc_joint"]
        div_images, _ = stock_samples(pipe, div_list, div_seeds, setting, batch_size)
        real = real_renders(div_list, div_seeds, setting_size(setting))
        split = lambda x: [x[i:i + diversity_seeds] for i in range(0, len(div_list), diversity_seeds)]
        row["diversity"] = mean_pairwise_distance(net, split(div_images)) / mean_pairwise_distance(net, split(real))
        rows.append(row)
    return rows


def _captions(prompt_set: str, pairs: str, seeds: Sequence[int], per_count: int | None) -> tuple[list[str], list[int]]:
    """The fully named captions of ``prompt_set`` (the first ``per_count``), seeds ``k in seeds`` each, prompt-major."""
    k = max(seeds) + 1
    prompts, all_seeds = prompts_and_seeds(prompt_set, k, pairs=pairs, per_count=per_count, max_open=0)
    keep = [i for i in range(len(prompts)) if i % k in set(seeds)]
    return [prompts[i] for i in keep], [all_seeds[i] for i in keep]


def _per_prompt(values: Sequence[float], per_prompt: int) -> tuple[float, float]:
    """Mean and SE across prompts of per-image ``values`` (prompt-major, ``per_prompt`` each)."""
    return mean_se([float(np.mean(values[i:i + per_prompt])) for i in range(0, len(values), per_prompt)])


def jackknife_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> tuple[float, float]:
    """``sum(numerators) / sum(denominators)`` and its jackknife standard error over the items (NaN for one item)."""
    a, b = np.asarray(numerators, np.float64), np.asarray(denominators, np.float64)
    n, ratio = len(a), float(a.sum() / b.sum())
    if n < 2:
        return ratio, float("nan")
    leave_one_out = (a.sum() - a) / (b.sum() - b)
    return ratio, float(np.sqrt((n - 1) / n * ((leave_one_out - leave_one_out.mean()) ** 2).sum()))


def evaluate_named(pipe: ZImagePipeline, settings: Mapping[str, Mapping], net: ShapesNet, seeds: Sequence[int] = (0,),
                   prompt_set: str = "test", per_count: int | None = None, heldout: bool = True,
                   diversity_prompts: int = 6, diversity_seeds: int = 8, batch_size: int = 64) -> list[dict]:
    """:func:`evaluate_settings` on the fully named captions of one set of :mod:`zlab.shapes.prompt_sets`, with that
    set's seeds, every accuracy with its standard error across prompts.

    Args:
        seeds: Seed indices ``k`` per prompt (:func:`zlab.shapes.prompt_sets.seed`).
        per_count: Keep the first ``per_count`` fully named captions (the set's fixed random order); all by default.
        heldout: Also the joint accuracy on the set's fully named captions of held-out colour-shape pairs.
        diversity_prompts: Diversity over this many of the captions, ``diversity_seeds`` samples each (0: none).

    Each row: ``nfe``, ``ms_per_image``, ``acc_<attribute>`` and ``acc_<attribute>_se`` (per-image marks averaged per
    prompt, then mean and SE across prompts), ``fd`` against renders of the same prompts and seeds, ``diversity``:
    the mean pairwise ShapesNet distance among one caption's samples over the same among its renders (pooled over
    the captions, with a jackknife SE over them). A fully named caption has one right picture up to the renders'
    jitter, so a diversity above 1 is spread that the world does not have: wrong or broken samples, not range.
    Rows also say what they were measured on: ``prompt_set``, ``prompts``, ``heldout_prompts``, ``seeds``.
    """
    prompts, prompt_seeds = _captions(prompt_set, "train", seeds, per_count)
    held, held_seeds = _captions(prompt_set, "heldout", seeds, per_count) if heldout else ([], [])
    div, div_seeds = (_captions(prompt_set, "train", range(diversity_seeds), diversity_prompts) if diversity_prompts
                      else ([], []))
    k, renders, rows = len(seeds), {}, []
    for name, setting in settings.items():
        size = setting_size(setting)
        if size not in renders:
            renders[size] = (real_renders(prompts, prompt_seeds, size), real_renders(div, div_seeds, size))
        images, ms = stock_samples(pipe, prompts, prompt_seeds, setting, batch_size)
        results = checker.check_batch(images)
        marks = [checker.score(r, p) for r, p in zip(results, prompts, strict=True)]
        row = {"setting": name, "nfe": count_nfe(pipe, setting), "ms_per_image": ms, "prompt_set": prompt_set,
               "prompts": len(prompts) // k, "heldout_prompts": len(held) // k, "seeds": k}
        for key in ("shape", "colour", "size", "position", "joint"):
            row[f"acc_{key}"], row[f"acc_{key}_se"] = _per_prompt([m[key] for m in marks], k)
        row["acc_found"] = float(np.mean([r.found for r in results]))
        if len(prompts) // k > 1:
            row["fd"] = frechet_distance(net, renders[size][0], images)
        if held:
            held_images, _ = stock_samples(pipe, held, held_seeds, setting, batch_size)
            joint = [checker.score(r, p)["joint"] for r, p in zip(checker.check_batch(held_images), held, strict=True)]
            row["acc_heldout_joint"], row["acc_heldout_joint_se"] = _per_prompt(joint, k)
        if div:
            div_images, _ = stock_samples(pipe, div, div_seeds, setting, batch_size)
            groups = range(0, len(div), diversity_seeds)
            spread = [mean_pairwise_distance(net, [div_images[i:i + diversity_seeds]]) for i in groups]
            real = [mean_pairwise_distance(net, [renders[size][1][i:i + diversity_seeds]]) for i in groups]
            row["diversity"], row["diversity_se"] = jackknife_ratio(spread, real)
        rows.append(row)
    return rows


COLUMNS = [("setting", "setting", "{}"), ("nfe", "NFE", "{}"), ("acc_joint", "joint acc (train)", "{:.3f}"),
           ("acc_shape", "shape", "{:.3f}"), ("acc_colour", "colour", "{:.3f}"), ("acc_size", "size", "{:.3f}"),
           ("acc_position", "position", "{:.3f}"), ("acc_heldout_joint", "joint acc (held-out)", "{:.3f}"),
           ("fd", "FD", "{:.2f}"), ("diversity", "diversity vs renders", "{:.2f}"), ("ms_per_image", "ms / image (batch 64)", "{:.1f}"),
           ("latency_ms", "ms / image (batch 1)", "{:.1f}")]


def format_table(rows: Sequence[Mapping], caption_set: str | None = None) -> str:
    """A markdown table of evaluation rows, each value with `` ± SE`` where the row holds ``<key>_se``; with
    ``caption_set`` (rows of :func:`evaluate_named`) the accuracy columns name that set instead of "train"."""
    titles = {"acc_joint": f"joint acc ({caption_set})",
              "acc_heldout_joint": f"joint acc ({caption_set}, held-out pairs)"}
    cols = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    head = [titles.get(c[0], c[1]) if caption_set else c[1] for c in cols]

    def cell(r: Mapping, key: str, fmt: str) -> str:
        if key not in r:
            return ""
        se = r.get(f"{key}_se", float("nan"))
        return fmt.format(r[key]) + ("" if se != se else " ± " + fmt.format(se))

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(cell(r, c[0], c[2]) for c in cols) + " |")
    return "\n".join(lines)


def teacher_reference(teacher: ZImagePipeline, sampling: Mapping, prompts: Sequence[str], seeds: Sequence[int],
                      offset: int = 500, batch_size: int = 64) -> np.ndarray:
    """The teacher's own samples (its ``sampling``) of the same prompts with other seeds (``seed + offset``): the
    reference of "FD to the teacher" in :func:`evaluate_open`."""
    return stock_samples(teacher, prompts, [s + offset for s in seeds], sampling, batch_size)[0]


def evaluate_open(pipe: ZImagePipeline, settings: Mapping[str, Mapping], net: ShapesNet, prompts: Sequence[str],
                  seeds: Sequence[int], per_prompt: int, reference: np.ndarray | None = None,
                  groups: Mapping[str, Sequence[int]] | None = None, batch_size: int = 64) -> list[dict]:
    """Open-caption measures (:mod:`zlab.shapes.metrics`) of each setting, one row per group of open-attribute counts.

    Each row holds the mean and standard error across prompts of validity, named accuracy and coverage, the
    FD to renders of the same prompts and seeds, and with ``reference`` (images of the same prompts, e.g. the
    teacher's 50-step samples with other seeds) the FD to those: how close a student is to its teacher, which
    FD to renders does not say. ``prompts`` is prompt-major, ``per_prompt`` seeds each.
    """
    rows, renders = [], {}  # renders depend on the prompts, seeds and size only: once per size
    for name, setting in settings.items():
        images, ms = stock_samples(pipe, prompts, seeds, setting, batch_size)
        records = prompt_records(images, prompts, per_prompt)
        counts = np.repeat([r["open"] for r in records], per_prompt)
        size = setting_size(setting)
        if size not in renders:
            renders[size] = open_renders(prompts, seeds, size)
        nfe = count_nfe(pipe, setting)
        for group, stats in summarise(records, groups).items():
            members = np.isin(counts, (groups or GROUPS)[group])
            row = {"setting": name, "group": group, "nfe": nfe, "ms_per_image": ms, "prompts": stats["prompts"],
                   **{m: stats[m][0] for m in METRICS}, **{f"{m}_se": stats[m][1] for m in METRICS}}
            if members.sum() > 1:
                row["fd"] = frechet_distance(net, renders[size][members], images[members])
                if reference is not None:
                    row["fd_teacher"] = frechet_distance(net, reference[members], images[members])
            rows.append(row)
    return rows


def render_rows(prompts: Sequence[str], seeds: Sequence[int], per_prompt: int, size=64,
                groups: Mapping[str, Sequence[int]] | None = None) -> list[dict]:
    """Rows like :func:`evaluate_open`'s for the ground-truth renders of the same prompts and seeds (no network: NFE 0).

    Their validity and named accuracy are 1 by construction; their coverage is the ceiling a sampler can reach at
    ``per_prompt`` seeds, below 1 because a finite sample of the allowed distribution is never exactly uniform."""
    records = prompt_records(open_renders(prompts, seeds, size), prompts, per_prompt)
    return [{"setting": "renders (ground truth)", "group": group, "nfe": 0, "prompts": stats["prompts"],
             **{m: stats[m][0] for m in METRICS}, **{f"{m}_se": stats[m][1] for m in METRICS}}
            for group, stats in summarise(records, groups).items()]


def format_cell(row: Mapping, metric: str) -> str:
    """One measure of a row for a markdown table: mean ± SE (FD with one decimal, no SE); empty when NaN."""
    value, se = row.get(metric, float("nan")), row.get(f"{metric}_se", float("nan"))
    if value != value:
        return ""
    if metric.startswith("fd"):
        return f"{value:.1f}"
    return f"{value:.3f}" + ("" if se != se else f" ± {se:.3f}")


def format_open_table(rows: Sequence[Mapping], metric: str, groups: Sequence[str] | None = None) -> str:
    """A markdown table of one open-caption measure: a row per setting, a column per group (mean ± SE)."""
    groups = groups or REPORT_GROUPS
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    cell = {(r["setting"], r["group"]): r for r in rows}
    lines = ["| setting | NFE | " + " | ".join(f"{g} open" for g in groups) + " |", "|" + "---|" * (len(groups) + 2)]
    for name in settings:
        cells = [format_cell(cell.get((name, g), {}), metric) for g in groups]
        nfe = next(r["nfe"] for r in rows if r["setting"] == name)
        lines.append(f"| {name} | {nfe} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


OPEN_MEASURES = ("valid", "named_accuracy", "coverage_entropy", "fd")  # the tables of ``zlab eval --open``


def format_open_report(rows: Sequence[Mapping], prompt_set: str, per_count: int, seeds: int) -> str:
    """:func:`format_open_table` of each of :data:`OPEN_MEASURES`, each titled with the prompts it was measured on."""
    return "\n".join(f"\n{metric}, {prompt_set} prompts ({per_count} per open count x {seeds} seeds):\n"
                     + format_open_table(rows, metric) for metric in OPEN_MEASURES)


def folder_settings(pipeline: str | Path, steps: Sequence[int] | None = None, guidance_scale: float | None = None,
                    cfg_truncation: float | None = None) -> dict[str, dict]:
    """The settings ``zlab eval`` measures a pipeline folder at: its ``sampling.json`` (if it has one) with
    ``guidance_scale`` and ``cfg_truncation`` where given, 64 x 64 unless it says otherwise, at each of ``steps``
    (default: its own step count, else 50); each named after the folder and the step count."""
    folder = Path(pipeline)
    base = read_sampling(folder) if (folder / SAMPLING_FILE).is_file() else {}
    if guidance_scale is not None:
        base["guidance_scale"] = guidance_scale
    if cfg_truncation is not None:
        base["cfg_truncation"] = cfg_truncation
    base.setdefault("height", 64)
    base.setdefault("width", 64)
    steps = steps or [base.get("num_inference_steps", 50)]
    return by_label([Setting(folder.name, n) for n in steps], base)


def use_stochastic_sampling(pipe: ZImagePipeline) -> ZImagePipeline:
    """Give ``pipe`` its scheduler with diffusers' ``stochastic_sampling``: between steps it re-noises x0_hat with
    fresh noise, the inputs LADD trains a student on, instead of taking deterministic Euler steps."""
    pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config, stochastic_sampling=True)
    return pipe


def evaluate_folder(pipeline: str | Path, shapes_net: str | Path, steps: Sequence[int] | None = None, seeds: int = 1,
                    prompt_set: str | None = None, per_count: int = 8, guidance_scale: float | None = None,
                    cfg_truncation: float | None = None, stochastic: bool = False) -> tuple[list[dict], str]:
    """``zlab eval``: a pipeline folder at :func:`folder_settings`, ``seeds`` per prompt, on the fully named train and
    held-out captions (:func:`evaluate_settings`) or, with ``prompt_set``, on open captions of that set, ``per_count``
    per number of open attributes (:func:`evaluate_open`). Returns the rows and their tables as Markdown."""
    pipe = load_pipeline(pipeline)
    if stochastic:
        use_stochastic_sampling(pipe)
    settings = folder_settings(pipeline, steps, guidance_scale, cfg_truncation)
    if prompt_set:
        prompts, prompt_seeds = prompts_and_seeds(prompt_set, seeds, per_count=per_count)
        rows = evaluate_open(pipe, settings, ShapesNet.load(shapes_net), prompts, prompt_seeds, seeds)
        return rows, format_open_report(rows, prompt_set, per_count, seeds)
    rows = evaluate_settings(pipe, settings, ShapesNet.load(shapes_net), seeds=range(seeds))
    return rows, format_table(rows)
