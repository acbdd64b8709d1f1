"""LADD variants x training seeds from one grid file: train each, measure it, append it to one JSON record.

    zlab ablate --grid configs/ablations.toml --out docs/ablations.json --runs runs/ablate

A grid names a base recipe (a LADD config), the overrides every run shares, the training seeds, the prompt set it
is measured on (``validation`` when the grid chooses a setting, ``test`` when it reports one) and its variants, each
a claim in words and the config keys it changes. Every run is measured through stock ``ZImagePipeline`` at N = 1,
2, 4 steps with :func:`zlab.measure.evaluate.evaluate_open` (validity, named accuracy, coverage, FD to renders and to the
teacher's own samples) and appended to the record as soon as it is measured, written atomically. A restart skips
every (variant, seed) already in the record and resumes a run cut mid-training from its last checkpoint, so the
grid can run for hours in the background and be stopped at any time.

Seeds vary the training (initial heads, batches, noise draws); the teacher's synthetic data is the base recipe's
(one ``zlab synth`` folder shared by every variant that does not change how it is made).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from zlab.atomic import write_json
from zlab.distill.student import student_pipeline
from zlab.measure.evaluate import evaluate_open, teacher_reference
from zlab.measure.settings import Setting, by_label, parse, student_steps
from zlab.shapes import prompt_sets
from zlab.shapes.metrics import open_renders, prompt_records, summarise
from zlab.shapes.net import ShapesNet
from zlab.shapes.world import canvas_size, sampling_base
from zlab.train.config import load_config, merge
from zlab.train.distill import train_student
from zlab.train.distill_config import DistillConfig
from zlab.train.synth import synthesize_from
from zlab.zimage import load_pipeline, read_sampling

GROUPS = {"0": [0], "2+": [2, 3, 4, 5], "all": [0, 1, 2, 3, 4, 5]}
MEASURES = ("valid", "named_accuracy", "coverage_entropy", "fd", "fd_teacher")
SPLITS = ("validation", "test")
SYNTH_KEYS = ("teacher", "rounds", "sizes", "real", "guidance_scale")  # [data] keys that change the synthetic data
# Two-sided 95% quantiles of Student's t by degrees of freedom (seeds - 1); 1.96 (the normal) beyond 30.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
       12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


@dataclass
class Variant:
    """One arm of the grid: ``set`` overrides the base recipe; ``size`` (height, width) is where it is measured."""

    name: str
    claim: str = ""
    set: dict = field(default_factory=dict)
    size: tuple = (64, 64)
    baseline: bool = False  # measured beside the candidates, never chosen (a grid with rule = "one_step")


@dataclass
class Grid:
    """A grid file (``configs/ablations.toml``), checked on load."""

    base: str
    variants: list[Variant]
    seeds: tuple = (0, 1, 2)
    split: str = "test"
    per_count: int = 4  # prompts per number of open attributes (0 to 5)
    per_prompt: int = 8  # seeds per prompt
    shared: dict = field(default_factory=dict)  # overrides every run shares (e.g. fewer steps in a smoke grid)
    synth_prompts: int = 0  # the first n train prompts in the synthetic data (a smoke grid); 0 = all of them
    rule: str = "ladd"  # how a validation grid chooses its recipe (RULES), declared in the grid before its runs

    def config(self, variant: Variant, seed: int, runs: Path) -> DistillConfig:
        """The run's LADD config: base file, shared overrides, the variant's, the training seed."""
        values = merge(merge(copy.deepcopy(self.shared), copy.deepcopy(variant.set)), {"train": {"seed": seed}})
        data = variant.set.get("data", {})
        made_by = {k: data[k] for k in SYNTH_KEYS if k in data}
        if made_by and "folder" not in data:  # data of its own, shared by the variants that make it alike
            key = hashlib.sha256(json.dumps(made_by, sort_keys=True).encode()).hexdigest()[:8]
            values = merge(values, {"data": {"folder": str(runs / f"synth-{key}")}})
        return load_config(DistillConfig, self.base, **values)


def load_grid(path: str | Path) -> Grid:
    """Read and check a grid; every variant's config is built once so a bad key fails before any training."""
    raw = tomllib.loads(Path(path).read_text())
    known = {f.name for f in dataclasses.fields(Grid)} | {"variant"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown grid key(s) {unknown} in {path}; known keys: {sorted(known)}")
    variants = []
    for item in raw.pop("variant", []):
        bad = sorted(set(item) - {f.name for f in dataclasses.fields(Variant)})
        if bad or "name" not in item:
            raise ValueError(f"each [[variant]] needs a name and may set claim, set, size, baseline; got {sorted(item)}")
        variants.append(Variant(**{**item, "size": canvas_size(item.get("size", (64, 64)))}))
    names = [v.name for v in variants]
    if not variants or len(set(names)) != len(names):
        raise ValueError(f"{path} needs at least one [[variant]], each with its own name; got {names}")
    grid = Grid(variants=variants, **{k: tuple(v) if k == "seeds" else v for k, v in raw.items()})
    if grid.rule not in RULES:
        raise ValueError(f"rule must be one of {sorted(RULES)}, got {grid.rule!r}")
    if grid.split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {grid.split!r}")
    if not grid.seeds or len(set(grid.seeds)) != len(grid.seeds):
        raise ValueError(f"seeds must be distinct training seeds, at least one; got {list(grid.seeds)}")
    if not 0 <= grid.synth_prompts <= 10**6:
        raise ValueError(f"synth_prompts must be in [0, 1000000] (0 = every train prompt), got {grid.synth_prompts}")
    if not (1 <= grid.per_count <= 100 and 2 <= grid.per_prompt <= 100):
        raise ValueError(f"per_count must be in [1, 100] and per_prompt in [2, 100], got {grid.per_count}, "
                         f"{grid.per_prompt}")
    for v in variants:
        grid.config(v, grid.seeds[0], Path("runs"))
    return grid


def read_record(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {"runs": []}


def _metrics(rows) -> dict:
    """:func:`evaluate_open` rows as ``{setting: {group: {measure: mean, measure_se: se, "prompts": n}}}``."""
    out: dict = {}
    for r in rows:
        out.setdefault(r["setting"], {})[r["group"]] = {
            **{m: float(r.get(m, float("nan"))) for m in MEASURES},
            **{f"{m}_se": float(r[f"{m}_se"]) for m in MEASURES[:3]}, "prompts": r["prompts"]}
    return out


def measure_run(teacher, transformer, net: ShapesNet, grid: Grid, size: tuple, prompts, seeds, reference) -> dict:
    """``{"student n steps": {group: {measure: mean, measure_se: se}}}`` of one student on the grid's prompts and seeds."""
    base = {"guidance_scale": 0.0, **sampling_base(size[0]), "height": size[0], "width": size[1]}
    return _metrics(evaluate_open(student_pipeline(teacher, transformer), by_label(student_steps(), base), net, prompts, seeds,
                                  grid.per_prompt, reference, groups=GROUPS))


def teacher_sampling(path: str, size: tuple) -> dict:
    """The teacher's shipped sampling (``sampling.json``) at canvas ``size`` (height, width)."""
    return {**read_sampling(path), "height": size[0], "width": size[1]}


def measure_references(teacher, teacher_path, net: ShapesNet, grid: Grid, size: tuple, prompts, seeds,
                       reference) -> dict:
    """What the runs are read against, on the grid's own prompts and seeds at one size: the teacher at its shipped
    sampling (50 steps + CFG; its FD to the teacher is the floor that seed-to-seed spread leaves) and the world's
    renders (validity about 1; their coverage is about the most ``per_prompt`` seeds can show)."""
    sampling = teacher_sampling(teacher_path, size)
    steps = Setting("teacher", sampling.get("num_inference_steps", 50), cfg=True, note="sampling.json").label
    teacher_metrics = _metrics(evaluate_open(teacher, {steps: sampling}, net, prompts, seeds, grid.per_prompt,
                                             reference, groups=GROUPS))
    summary = summarise(prompt_records(open_renders(prompts, seeds, size), prompts, grid.per_prompt), GROUPS)
    renders = {group: {m: float(stats[m][0]) for m in MEASURES[:3]} for group, stats in summary.items()}
    return {"teacher": teacher_metrics, "renders": renders, "teacher_path": str(teacher_path)}


def run_grid(grid: Grid, out: str | Path, runs: str | Path = "runs/ablate", only: list[str] | None = None,
             progress: bool = True, shapes_net: str | Path = "checkpoints/shapes-net") -> dict:
    """Train and measure every (variant, seed) not yet in ``out``; returns the record."""
    out, runs = Path(out), Path(runs)
    runs.mkdir(parents=True, exist_ok=True)
    variants = [v for v in grid.variants if not only or v.name in only]
    if only and len(variants) != len(set(only)):
        raise ValueError(f"--only names {sorted(set(only) - {v.name for v in grid.variants})}, not in the grid")
    record = read_record(out)
    started, wall_before = time.perf_counter(), record.get("wall_s", 0.0)

    def save() -> None:
        """Write the record with ``wall_s``: the grid command's wall-clock seconds, summed over invocations up to
        each one's last write (the data, the references and the restarts, which the runs' own times leave out)."""
        record["wall_s"] = wall_before + time.perf_counter() - started
        write_json(out, record, indent=1)

    done = {(r["variant"], r["seed"]) for r in record["runs"]}
    todo = [(v, s) for v in variants for s in grid.seeds if (v.name, s) not in done]
    net, teachers, references, made = ShapesNet.load(shapes_net), {}, {}, set()
    prompts, seeds = prompt_sets.prompts_and_seeds(grid.split, grid.per_prompt, per_count=grid.per_count)
    base = load_config(DistillConfig, grid.base, **grid.shared)  # its seed makes the data once, for every training seed

    def teacher_and_reference(path: str, size: tuple):
        """The teacher pipeline and its own samples of the grid's prompts (other seeds) at ``size``: what "FD to
        the teacher" compares with; each loaded or sampled once per invocation."""
        if path not in teachers:
            teachers[path] = load_pipeline(path)
        if (path, size) not in references:
            sampling = teacher_sampling(path, size)
            references[(path, size)] = teacher_reference(teachers[path], sampling, prompts, seeds)
        return teachers[path], references[(path, size)]

    record.update(base=grid.base, shared=grid.shared, rule=grid.rule, plan={"per_count": grid.per_count,
                                                            "per_prompt": grid.per_prompt})
    for size in dict.fromkeys(v.size for v in variants):  # the base teacher and the renders, measured once per size
        key = f"{size[0]}x{size[1]}"
        if key not in record.setdefault("references", {}):
            teacher, reference = teacher_and_reference(base.data.teacher, size)
            record["references"][key] = measure_references(
                teacher, base.data.teacher, net, grid, size, prompts, seeds, reference)
            save()
    bar = tqdm(total=len(variants) * len(grid.seeds), initial=len(variants) * len(grid.seeds) - len(todo),
               desc="ablate", disable=not progress)
    for variant, seed in todo:
        config = grid.config(variant, seed, runs)
        bar.set_postfix(run=f"{variant.name} / seed {seed}")
        teacher, reference = teacher_and_reference(config.data.teacher, variant.size)
        if config.data.folder not in made:  # checked (and made if stale) once per folder and invocation
            synthesize_from(config.data.teacher, config.data.folder, sampling=config.data.sampling(),
                            rounds=config.data.rounds, seed=base.train.seed, progress=progress,
                            sizes=[canvas_size(s) for s in config.data.sizes], source=config.data.real,
                            prompts=prompt_sets.prompts("train")[:grid.synth_prompts] if grid.synth_prompts else None)
            made.add(config.data.folder)
        start = time.perf_counter()
        transformer, _, _ = train_student(config, runs / variant.name / f"seed{seed}", resume=True, progress=progress)
        train_s = time.perf_counter() - start
        metrics = measure_run(teacher, transformer, net, grid, variant.size, prompts, seeds, reference)
        record["runs"].append({"variant": variant.name, "seed": seed, "claim": variant.claim, "set": variant.set,
                               "baseline": variant.baseline,
                               "size": list(variant.size), "split": grid.split, "train_s": train_s,
                               "measure_s": time.perf_counter() - start - train_s, "metrics": metrics})
        save()
        bar.update(1)
    bar.close()
    return record


PRIMARY = "mean N"  # the setting name of the primary end point: a measure averaged over N = 1, 2, 4


def _value(metrics: dict, setting: str, group: str, measure: str) -> float:
    if setting == PRIMARY:
        return float(np.mean([metrics[n][group][measure] for n in metrics]))
    return metrics[setting][group][measure]


def seed_values(record: dict, variant: str, setting: str, group: str, measure: str) -> dict[int, float]:
    """``{training seed: value}`` of one measure of one variant (``setting`` "student 1 step", ... or :data:`PRIMARY`)."""
    return {r["seed"]: _value(r["metrics"], setting, group, measure) for r in record["runs"] if r["variant"] == variant}


def t95(dof: int) -> float:
    """:data:`T95` at ``dof``, or at the next tabled dof below it (a slightly wider, safe interval)."""
    return 1.96 if dof > 30 else T95[max(k for k in T95 if k <= dof)]


def interval(values) -> tuple[float, float, float]:
    """Mean and its 95% interval across seeds (Student t with n - 1 degrees of freedom; NaN for one seed)."""
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if len(x) < 2:
        return (float(x.mean()) if len(x) else float("nan")), float("nan"), float("nan")
    half = t95(len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half)


def compare(record: dict, variant: str, base: str, setting: str, group: str, measure: str) -> dict:
    """Variant minus base, paired by training seed: the mean difference and its 95% interval, and a verdict
    (``better``, ``worse`` or ``inconclusive``: the interval holds 0). Lower is better for FDs."""
    a, b = seed_values(record, variant, setting, group, measure), seed_values(record, base, setting, group, measure)
    paired = [a[s] - b[s] for s in sorted(set(a) & set(b))]
    mean, low, high = interval(paired)
    sign = -1 if measure.startswith("fd") else 1
    verdict = ("inconclusive" if not (np.isfinite(low) and (low > 0 or high < 0)) else
               "better" if sign * mean > 0 else "worse")
    return {"diff": mean, "low": low, "high": high, "seeds": len(paired), "verdict": verdict}


def claim_verdict(record: dict, favoured: str, others, setting: str = PRIMARY, group: str = "2+",
                  measure: str = "valid") -> dict:
    """Does the arm a claim favours beat the others on the one end point declared in advance (by default validity
    on prompts with 2+ open attributes, averaged over N = 1, 2, 4)? Each other arm minus the favoured one, paired
    by training seed with a 95% interval: ``holds`` when every other arm is worse beyond its interval,
    ``refuted`` when some other arm is better beyond its interval, else ``inconclusive``."""
    diffs = {o: compare(record, o, favoured, setting, group, measure) for o in others}
    if any(d["verdict"] == "better" for d in diffs.values()):
        verdict = "refuted"
    elif diffs and all(d["verdict"] == "worse" for d in diffs.values()):
        verdict = "holds"
    else:
        verdict = "inconclusive"
    return {"verdict": verdict, "favoured": favoured, "diffs": diffs, "end_point": f"{measure}, {group} open, {setting}"}


def summary(record: dict, settings=tuple(s.label for s in student_steps()), group: str = "2+",
            measures=("valid", "coverage_entropy", "fd_teacher")) -> list[dict]:
    """One row per variant and setting: each measure's mean and 95% interval across seeds."""
    names = list(dict.fromkeys(r["variant"] for r in record["runs"]))
    rows = []
    for name in names:
        for setting in settings:
            row = {"variant": name, "setting": setting,
                   "seeds": sum(r["variant"] == name for r in record["runs"])}
            for m in measures:
                row[m], row[f"{m}_low"], row[f"{m}_high"] = interval(seed_values(record, name, setting, group, m).values())
            rows.append(row)
    return rows


def format_summary(record: dict, group: str = "2+") -> str:
    """:func:`summary` as a Markdown table: mean [95% interval] across seeds."""
    rows = summary(record, group=group)
    which = "All prompts" if group == "all" else f"Prompts with {group} open attributes"
    lines = [f"{which}; mean [95% interval] across training seeds.", "",
             "| variant | N | seeds | validity | coverage | FD to teacher |", "|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r[m]:.3f} [{r[m + '_low']:.3f}, {r[m + '_high']:.3f}]" if m != "fd_teacher" else
                 f"{r[m]:.0f} [{r[m + '_low']:.0f}, {r[m + '_high']:.0f}]" for m in ("valid", "coverage_entropy", "fd_teacher")]
        lines.append(f"| {r['variant']} | {parse(r['setting']).steps} | {r['seeds']} | " + " | ".join(cells) + " |")
    for size, ref in record.get("references", {}).items():  # one measurement each: mean only
        for setting, groups in ref["teacher"].items():
            g = groups[group]
            lines.append(f"| *teacher, {size}* | {parse(setting).steps} | – | {g['valid']:.3f} | {g['coverage_entropy']:.3f} | "
                         f"{g['fd_teacher']:.0f} |")
        g = ref["renders"][group]
        lines.append(f"| *renders, {size}* | – | – | {g['valid']:.3f} | {g['coverage_entropy']:.3f} | – |")
    return "\n".join(lines)


def recipe_score(metrics: dict) -> float:
    """The search's choice rule (``configs/ladd-search.toml``): the mean over N = 1, 2, 4 of (validity on 2+ open
    prompts + named accuracy on fully named prompts + coverage on 2+ open prompts) / 3."""
    return float(np.mean([(m["2+"]["valid"] + m["0"]["named_accuracy"] + m["2+"]["coverage_entropy"]) / 3
                          for m in metrics.values()]))


def one_step_score(metrics: dict) -> float:
    """The one-step rule (``configs/dmd-search.toml``): at N = 1, (2 x validity on 2+ open prompts + coverage on 2+
    open prompts + named accuracy on fully named prompts) / 4."""
    m = metrics[Setting("student", 1).label]
    return float((2 * m["2+"]["valid"] + m["2+"]["coverage_entropy"] + m["0"]["named_accuracy"]) / 4)


RULES = {"ladd": recipe_score, "one_step": one_step_score,
         "mean_n": recipe_score}  # recipe_score's rule, any non-baseline variant a candidate (not only LADD runs)


def is_ladd_run(record: dict, run: dict) -> bool:
    """Whether a run trained with the adversarial loss (its ``adv_weight``, from the grid's shared overrides and its
    variant's, is above 0); regression alone is a baseline."""
    return merge(copy.deepcopy(record.get("shared", {})), run["set"]).get("ladd", {}).get("adv_weight", 1.0) > 0


def is_candidate(record: dict, run: dict) -> bool:
    """Whether the record's rule may choose ``run``: a LADD run under the LADD rule, any non-baseline run else."""
    return is_ladd_run(record, run) if record.get("rule", "ladd") == "ladd" else not run.get("baseline", False)


def choose_recipe(record: dict, split: str = "validation") -> dict:
    """The candidate variant (:func:`is_candidate`) with the best score by the record's rule (:data:`RULES`), its seeds
    averaged, from runs measured on ``split`` (choosing on the test set is refused);
    ``{"chosen": name, "scores": {name: score}}``."""
    if split != "validation":
        raise ValueError(f"a recipe is chosen on the validation set, not on {split!r}")
    score = RULES[record.get("rule", "ladd")]
    scores: dict[str, list[float]] = {}
    for r in record["runs"]:
        if r["split"] != split:
            raise ValueError(f"run {r['variant']!r} / seed {r['seed']} was measured on {r['split']!r}, not {split!r}")
        if is_candidate(record, r):
            scores.setdefault(r["variant"], []).append(score(r["metrics"]))
    if not scores:
        raise ValueError("no candidate run in the record to choose from (LADD runs with adv_weight > 0 under the "
                         "LADD rule, non-baseline runs under the others)")
    means = {name: float(np.mean(v)) for name, v in scores.items()}
    return {"chosen": max(means, key=means.get), "scores": means}


def format_recipe_runs(recipes: dict[str, list[dict]]) -> str:
    """Runs measured on validation, one row per recipe and training seed: :func:`recipe_score` and its three parts at
    N = 1 / 2 / 4 and their mean over N (validity and coverage on 2+ open prompts, named accuracy on fully named
    prompts; the score is the mean of the three means), as Markdown."""
    parts = (("2+", "valid"), ("2+", "coverage_entropy"), ("0", "named_accuracy"))
    lines = ["| recipe | seed | score | validity, 2+ open (N = 1 / 2 / 4; mean) | coverage, 2+ open | "
             "named accuracy, fully named |", "|---|---|---|---|---|---|"]
    for name, runs in recipes.items():
        for run in runs:
            m = run["metrics"]
            values = [[m[s.label][group][key] for s in student_steps()] for group, key in parts]
            cells = [" / ".join(f"{v:.3f}" for v in vs) + f"; {np.mean(vs):.3f}" for vs in values]
            lines.append(f"| {name} | {run['seed']} | {recipe_score(m):.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_seed_scores(record: dict) -> str:
    """Each variant's score by the record's rule (:data:`RULES`, as :func:`choose_recipe` scores it) per seed with its
    mean and 95% interval, the chosen variant minus each other paired by seed, and the choice."""
    score = RULES[record.get("rule", "ladd")]
    scores: dict[str, dict[int, float]] = {}
    for run in record["runs"]:
        scores.setdefault(run["variant"], {})[run["seed"]] = score(run["metrics"])
    chosen = choose_recipe(record)["chosen"]
    lines = [f"score per seed ({record['runs'][0]['split']} prompts), mean [95% interval across seeds]:"]
    for variant, by_seed in scores.items():
        mean, low, high = interval(by_seed.values())
        lines.append(f"  {variant}: {', '.join(f'{s:.3f}' for s in by_seed.values())} -> {mean:.3f} [{low:.3f}, {high:.3f}]")
    for variant, by_seed in scores.items():
        if variant != chosen:
            mean, low, high = interval([scores[chosen][s] - by_seed[s] for s in scores[chosen] if s in by_seed])
            lines.append(f"  chosen − {variant}: {mean:+.3f} [{low:+.3f}, {high:+.3f}] (paired by seed)")
    return "\n".join([*lines, f"chosen by the rule: {chosen!r}"])


def format_choice(choice: dict) -> str:
    """A :func:`choose_recipe` result: every variant's score, best first, then the chosen variant."""
    scores = [f"{s:.3f}  {name}" for name, s in sorted(choice["scores"].items(), key=lambda x: -x[1])]
    return "\n".join([*scores, f"chosen on validation: {choice['chosen']}"])
