"""``zlab`` console entry points.

    zlab info                                  # the real 6.15B transformer, counted on the meta device
    zlab build-tiny --out runs/tiny            # a randomly initialised tiny ZImagePipeline folder
    zlab sample --pipeline PATH --prompt "a large red circle at the top left" --steps 50 --s 5 --out a.png
    zlab gpu-check --out docs/gpu              # one H200, phases budgeted to 8 minutes: bench + a short Shapes run (--smoke: CPU)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from zlab.atomic import write_json

SET_HELP = "override a config setting (section.key=TOML value), e.g. --set ladd.adv_weight=0 --set train.steps=200"
GUIDANCE_HELP = "diffusers g candidates, comma-separated (lab s = g + 1; default: zlab.recipes.teacher.GUIDANCE_CANDIDATES)"


def _info(args: argparse.Namespace) -> None:
    from zlab.zimage import REAL_TRANSFORMER_CONFIG, init_kwargs, real_transformer_report

    config = init_kwargs(json.loads(Path(args.config).read_text())) if args.config else REAL_TRANSFORMER_CONFIG
    for part, count in real_transformer_report(config).items():
        print(f"{part:>16}: {count:>15,}")


def _build_tiny(args: argparse.Namespace) -> None:
    from zlab.tiny import build_tiny_pipeline
    from zlab.zimage import save_pipeline

    print(save_pipeline(build_tiny_pipeline(args.size, seed=args.seed), args.out))


def _sample(args: argparse.Namespace) -> None:
    from PIL import Image

    from zlab.zimage import decode, generate, load_pipeline

    pipe = load_pipeline(args.pipeline, device=args.device)
    out = generate(pipe, [args.prompt], num_inference_steps=args.steps, s=args.s, cfg_truncation=args.truncation,
                   height=args.height, width=args.width, seed=args.seed, method=args.method)
    image = (decode(pipe, out.latents)[0].numpy() * 255).round().astype(np.uint8)
    Image.fromarray(image).save(args.out)
    print(f"{args.out}  (NFE {out.nfe})")


def _train_vae(args: argparse.Namespace) -> None:
    from zlab.train.config import load_config
    from zlab.train.vae import VAEConfig, train_vae

    train_vae(load_config(VAEConfig, args.config), args.run, resume=args.resume)
    print(f"{args.run}/vae")


def _train_teacher(args: argparse.Namespace) -> None:
    from zlab.train.config import load_config
    from zlab.train.teacher import TeacherConfig, train_teacher
    from zlab.zimage import save_pipeline

    pipe = train_teacher(load_config(TeacherConfig, args.config), args.vae, args.run, resume=args.resume)
    print(save_pipeline(pipe, Path(args.run) / "pipeline"))


def _train_shapes_net(args: argparse.Namespace) -> None:
    from zlab.recipes.shapes_net import ShapesNetConfig, train_shapes_net

    net, accuracy = train_shapes_net(ShapesNetConfig(steps=args.steps, seed=args.seed))
    net.save(args.out)
    print(json.dumps({"out": args.out, "accuracy_on_degraded_renders": accuracy}))


def _guidance_scales(text: str | None) -> tuple[float, ...]:
    """``--guidance-scales``: comma-separated g >= 0, or the recipe's candidates when not given."""
    from zlab.recipes.teacher import GUIDANCE_CANDIDATES

    if text is None:
        return GUIDANCE_CANDIDATES
    try:
        values = tuple(float(g) for g in text.split(","))
    except ValueError:
        values = ()
    if not values or any(not g >= 0 for g in values):
        raise SystemExit(f"--guidance-scales takes comma-separated numbers >= 0 (e.g. 0,0.5,1), got {text!r}")
    return values


def _make_teacher(args: argparse.Namespace) -> None:
    from zlab.recipes.cards import summary_tables
    from zlab.recipes.teacher import make_teacher

    calibration = json.loads(Path(args.calibration).read_text()) if args.calibration else None
    record = make_teacher(args.out, args.vae_config, args.teacher_config, args.run, resume=args.resume,
                          calibration=calibration)
    print(summary_tables(record))


def _ship_teacher(args: argparse.Namespace) -> None:
    from zlab.recipes.cards import summary_tables
    from zlab.recipes.teacher import profile_image_size, ship_teacher_folder

    training = json.loads(Path(args.training_json).read_text()) if args.training_json else None
    calibration = json.loads(Path(args.calibration).read_text()) if args.calibration else None
    record = ship_teacher_folder(args.pipeline, args.out, _guidance_scales(args.guidance_scales), training=training,
                                 calibration=calibration, image_size=args.image_size or profile_image_size())
    print(summary_tables(record))


def _open_prob_folders(items: list[str]) -> dict[float, str]:
    """``--pipeline OPEN_PROB=FOLDER`` (repeated): ``{open_prob: folder}``, each open_prob in [0, 1]."""
    folders = {}
    for item in items:
        open_prob, sep, path = item.partition("=")
        try:
            value = float(open_prob)
        except ValueError:
            value = -1.0
        if not sep or not 0.0 <= value <= 1.0:
            raise SystemExit(f"--pipeline takes OPEN_PROB=FOLDER with OPEN_PROB in [0, 1], got {item!r}")
        folders[value] = path
    return folders


def _calibrate_open_prob(args: argparse.Namespace) -> None:
    from zlab.recipes import teacher
    from zlab.zimage import load_pipeline

    candidates = {p: load_pipeline(path) for p, path in _open_prob_folders(args.pipeline).items()}
    record = teacher.calibrate_open_prob(candidates, _guidance_scales(args.guidance_scales),
                                         image_size=args.image_size or teacher.profile_image_size())
    write_json(args.out, record)
    print(teacher.format_calibration(record))


def _eval(args: argparse.Namespace) -> None:
    from zlab.measure.evaluate import evaluate_folder

    steps = [int(n) for n in args.steps.split(",")] if args.steps else None
    rows, text = evaluate_folder(args.pipeline, args.shapes_net, steps, args.seeds, prompt_set=args.open,
                                 per_count=args.per_count, guidance_scale=args.guidance_scale,
                                 cfg_truncation=args.cfg_truncation, stochastic=args.stochastic)
    print(text)
    if args.out:
        write_json(args.out, rows)


def _paired(args: argparse.Namespace) -> None:
    from zlab.measure.paired import format_paired, paired_folders

    steps = [int(n) for n in args.steps.split(",")]
    record = paired_folders(args.pipelines, steps, args.split, args.per_count, args.seeds)
    print(format_paired(record))
    if args.out:
        write_json(args.out, record)


def _judge(args: argparse.Namespace) -> None:
    from zlab.measure.judge import judge, parse_entry, parse_size, read_prompts
    from zlab.measure.judge_models import load_judges
    from zlab.train.models import DTYPES

    entries = [parse_entry(text) for text in args.pipeline]
    size = parse_size(args.size) if args.size else None
    prompts = read_prompts(args.prompts, args.limit)
    judges = load_judges(args.clip, args.features, device=args.device)
    record = judge(entries, prompts, range(args.seeds), args.out, judges, reference=args.reference, size=size,
                   device=args.device, dtype=DTYPES[args.dtype])
    print((Path(args.out) / "judge.md").read_text(), end="")
    print(f"{record['sampled_now']} prompt(s) sampled now; the rest read back from {args.out}/images")


def _times(args: argparse.Namespace) -> None:
    from zlab.measure.student_times import format_times, sweep
    from zlab.zimage import load_pipeline, read_sampling

    samplers = {Path(folder).name: (load_pipeline(folder), read_sampling(folder)) for folder in args.pipelines}
    steps = [int(n) for n in args.steps.split(",")]
    shifts = [float(s) for s in args.shifts.split(",")]
    record = sweep(samplers, steps, shifts, split=args.split, per_count=args.per_count, k=args.seeds,
                   progress=lambda line: print(line, flush=True))
    print(format_times(record))
    if args.out:
        write_json(args.out, record)


def _sizes(text: str | None) -> list[tuple[int, int]]:
    """``--sizes``: aspect buckets ``HxW[,HxW...]`` as (height, width) pairs; none when not given."""
    sizes = []
    for item in filter(None, (text or "").split(",")):
        height, _, width = item.strip().partition("x")
        if not (height.isdigit() and width.isdigit()):
            raise SystemExit(f"--sizes takes HxW[,HxW...] such as 64x64,64x96, got {item!r}")
        sizes.append((int(height), int(width)))
    return sizes


def _synth(args: argparse.Namespace) -> None:
    from zlab.train.models import DTYPES
    from zlab.train.synth import synthesize_from

    prompts = [line.strip() for line in Path(args.prompts).read_text().splitlines() if line.strip()] \
        if args.prompts else None
    print(synthesize_from(args.teacher, args.out, sampling=json.loads(args.sampling) if args.sampling else None,
                          device=args.device, dtype=DTYPES[args.dtype], rounds=args.rounds, seed=args.seed,
                          prompts=prompts, batch_size=args.batch_size, sizes=_sizes(args.sizes), source=args.source))


def _bench(args: argparse.Namespace) -> None:
    import torch

    from zlab.measure.bench import BenchSetup, format_results, run_bench, smoke_setup

    setup = smoke_setup() if args.smoke else BenchSetup(peak_tflops=args.peak_tflops)
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("zlab bench needs a CUDA GPU (the real 6B transformer); `zlab bench --smoke` runs on CPU")
    results = run_bench(setup)
    print(format_results(results))
    if args.out:
        write_json(args.out, results)


def _gpu_check(args: argparse.Namespace) -> int:
    import time

    started = time.perf_counter()  # before the heavy imports: start-up counts against the budget
    from zlab.recipes.gpu_check import failed, run_check

    budget = {"total_s": args.budget} if args.budget is not None else {}
    record = run_check(args.out, smoke=args.smoke, phases=args.phases, run_dir=args.run, started=started, **budget)
    bad = failed(record)
    print(f"{args.out}/gpu-check.md, {args.out}/gpu-check.json ({record['wall_s']:.0f} s)"
          + (f"; failed: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


def _memory(args: argparse.Namespace) -> None:
    from zlab.train.config import load_config
    from zlab.train.distill_config import DistillConfig
    from zlab.train.memory import predict
    from zlab.zimage import REAL_TRANSFORMER_CONFIG

    config = load_config(DistillConfig, args.config, **({"train.batch_size": args.batch_size} if args.batch_size else {}))
    local = Path(config.data.teacher) / "transformer" / "config.json"
    transformer = json.loads(local.read_text()) if local.is_file() else REAL_TRANSFORMER_CONFIG
    sharding = f", student sharded over {args.gpus} GPUs (FSDP)" if args.gpus > 1 else ""
    print(f"{args.config}: {config.train.batch_size} x {args.size}x{args.size} per GPU{sharding}, teacher {config.data.teacher}")
    print(predict(config, transformer, args.size, args.size, cap_len=args.cap_len, shards=args.gpus).table())


def _distill(args: argparse.Namespace) -> None:
    from accelerate import PartialState

    from zlab.distill.student import save_trained_student
    from zlab.train.config import load_config, parse_overrides
    from zlab.train.distill import train_student
    from zlab.train.distill_config import DistillConfig

    config = load_config(DistillConfig, args.config, **parse_overrides(args.set))
    student, critic, _ = train_student(config, args.run, resume=args.resume)
    print(f"{args.run}/checkpoint.pt")
    if args.out and PartialState().is_main_process:  # one writer (under FSDP the only rank with a whole student)
        print(save_trained_student(config.data.teacher, student, critic, args.out, config.ship.stochastic_sampling,
                                   config.ship.shift))


def _make_student(args: argparse.Namespace) -> None:
    from zlab.measure.evaluate import format_table
    from zlab.recipes.student import make_student
    from zlab.train.config import load_config, parse_overrides
    from zlab.train.distill_config import DistillConfig

    config = load_config(DistillConfig, args.config, **parse_overrides(args.set))
    print(format_table(make_student(config, args.out, args.run, resume=args.resume, config_file=args.config)))


def _ablate(args: argparse.Namespace) -> None:
    from zlab.recipes.ablate import load_grid, read_record, run_grid
    from zlab.recipes.ablate_report import format_report

    grid = load_grid(args.grid)
    record = read_record(Path(args.out)) if args.report else run_grid(grid, args.out, args.runs, only=args.only)
    if not record["runs"]:
        raise SystemExit(f"{args.out} holds no runs yet: run the grid first (without --report)")
    print(format_report(record, grid.split))


def _compare(args: argparse.Namespace) -> None:
    from zlab.measure.evaluate import format_table
    from zlab.recipes.compare import compare_record, format_speedup

    record = compare_record(args.teacher, args.student, args.shapes_net, seeds=range(args.seeds), rounds=args.rounds)
    print(format_table(record["rows"]))
    print(format_speedup(record))
    if args.out:
        write_json(args.out, record)


def _bench_speedup(args: argparse.Namespace) -> None:
    from zlab.recipes.compare import bench_speedup

    for line in bench_speedup(args.teacher, args.student, args.rounds):
        print(line, flush=True)


def _labs(args: argparse.Namespace) -> None:
    from zlab.recipes.labs import SIZE_LIMIT_BYTES, execute_lab, lab_paths, labs_size, run_minutes, stale_labs

    if args.execute is not None:
        for path in lab_paths(names=args.execute):
            print(f"{path.name}: running{' (small)' if args.small else ''} ...", flush=True)
            execute_lab(path, small=args.small)
            print(f"{path.name}: {run_minutes(path)}, {path.stat().st_size / 2**20:.2f} MB", flush=True)
    stale = stale_labs()
    for path in lab_paths():
        minutes = run_minutes(path) or "-"
        print(f"{path.name:<34} {minutes:>9}  {path.stat().st_size / 2**20:5.2f} MB  {stale.get(path.name, 'current')}")
    print(f"all labs: {labs_size() / 2**20:.2f} MB (limit {SIZE_LIMIT_BYTES / 2**20:.0f} MB)")


def build_parser() -> argparse.ArgumentParser:
    from zlab.paths import config_path, output_path

    parser = argparse.ArgumentParser(prog="zlab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="parameter breakdown of the real Z-Image transformer")
    p.add_argument("--config", help="a transformer/config.json (default: the published Z-Image config)")
    p.set_defaults(func=_info)

    p = sub.add_parser("build-tiny", help="write a randomly initialised tiny ZImagePipeline folder")
    p.add_argument("--out", required=True)
    p.add_argument("--size", default="tiny")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_build_tiny)

    p = sub.add_parser("train-vae", help="train the tiny VAE on Shapes renders")
    p.add_argument("--config", default=config_path("shapes-vae.toml"))
    p.add_argument("--run", default=output_path("runs/vae"), help="run directory (checkpoints, result)")
    p.add_argument("--resume", action="store_true")
    p.set_defaults(func=_train_vae)

    p = sub.add_parser("train-teacher", help="train the tiny Z-Image teacher with flow matching")
    p.add_argument("--config", default=config_path("shapes-teacher.toml"))
    p.add_argument("--vae", default=output_path("runs/vae/vae"), help="trained VAE folder")
    p.add_argument("--run", default=output_path("runs/teacher"))
    p.add_argument("--resume", action="store_true")
    p.set_defaults(func=_train_teacher)

    p = sub.add_parser("train-shapes-net", help="train the feature network used for FD and diversity")
    p.add_argument("--out", default="checkpoints/shapes-net")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_train_shapes_net)

    p = sub.add_parser("make-teacher", help="the whole recipe: VAE, teacher, pipeline folder")
    p.add_argument("--out", default=output_path("checkpoints/shapes-teacher"))
    p.add_argument("--vae-config", default=config_path("shapes-vae.toml"))
    p.add_argument("--teacher-config", default=config_path("shapes-teacher.toml"))
    p.add_argument("--run", default=output_path("runs"))
    p.add_argument("--resume", action="store_true")
    p.add_argument("--calibration", help="the `zlab calibrate-open-prob` record behind the config's open_prob (kept "
                                         "in the model card)")
    p.set_defaults(func=_make_teacher)

    p = sub.add_parser("ship-teacher", help="choose guidance, measure and write a trained teacher folder")
    p.add_argument("--pipeline", default=output_path("runs/teacher/pipeline"))
    p.add_argument("--out", default=output_path("checkpoints/shapes-teacher"))
    p.add_argument("--guidance-scales", help=GUIDANCE_HELP + ", chosen on validation")
    p.add_argument("--training-json", help="training record (configs, timings) to keep in eval.json")
    p.add_argument("--calibration", help="the `zlab calibrate-open-prob` record that chose this teacher's open_prob")
    p.add_argument("--image-size", type=int,
                   help="side the teacher was trained at (default: the profile's shapes-teacher.toml)")
    p.set_defaults(func=_ship_teacher)

    p = sub.add_parser("calibrate-open-prob",
                       help="choose open_prob on validation from teachers trained alike but for it")
    p.add_argument("--pipeline", action="append", required=True, metavar="OPEN_PROB=FOLDER",
                   help="a candidate teacher and the open_prob it was trained with (give at least two)")
    p.add_argument("--guidance-scales", help=GUIDANCE_HELP + ", each teacher at its best")
    p.add_argument("--image-size", type=int, help="side the teachers were trained at (default: the profile's)")
    p.add_argument("--out", required=True, help="the calibration record (JSON)")
    p.set_defaults(func=_calibrate_open_prob)

    p = sub.add_parser("eval", help="accuracy, FD, diversity, NFE, ms through stock ZImagePipeline")
    p.add_argument("--pipeline", required=True)
    p.add_argument("--steps", help="comma-separated step counts (default: the sampling.json value)")
    p.add_argument("--guidance-scale", type=float, help="diffusers g (lab s = g + 1); default from sampling.json")
    p.add_argument("--cfg-truncation", type=float)
    p.add_argument("--seeds", type=int, default=1, help="seeds per prompt")
    p.add_argument("--shapes-net", default="checkpoints/shapes-net")
    p.add_argument("--open", choices=["validation", "test"],
                   help="measure open captions of this prompt set (validity, named accuracy, coverage, FD by number "
                        "of open attributes) instead of the fully named train and held-out captions")
    p.add_argument("--per-count", type=int, default=8, help="with --open: prompts per number of open attributes")
    p.add_argument("--stochastic", action="store_true",
                   help="sample with the scheduler's stochastic_sampling (fresh noise between steps, as LADD trains "
                        "a student) instead of deterministic Euler steps")
    p.add_argument("--out", help="write the rows as JSON")
    p.set_defaults(func=_eval)

    p = sub.add_parser("paired", help="pipelines on the same open prompts and seeds: differences paired over prompts")
    p.add_argument("--pipelines", nargs="+", required=True, help="pipeline folders (each at its sampling.json)")
    p.add_argument("--steps", default="1", help="comma-separated step counts (default 1)")
    p.add_argument("--split", choices=["validation", "test"], default="test")
    p.add_argument("--per-count", type=int, default=10, help="prompts per number of open attributes")
    p.add_argument("--seeds", type=int, default=16, help="seeds per prompt")
    p.add_argument("--out", help="write the record (per-prompt values included) as JSON")
    p.set_defaults(func=_paired)

    p = sub.add_parser("judge", help="real-image pipelines side by side: CLIP score, FD to a reference, diversity "
                                     "(resumable; zlab/measure/judge.py)")
    p.add_argument("--prompts", required=True, help="prompt file: .txt, .json, .jsonl, .csv or .tsv (PartiPrompts, "
                   "DrawBench, GenEval: see zlab/measure/judge.py)")
    p.add_argument("--limit", type=int, help="the first N prompts only")
    p.add_argument("--pipeline", action="append", required=True, metavar="NAME=PATH[@steps=N,guidance=G,shift=S]",
                   help="a pipeline folder or hub id at a setting; repeat for each column")
    p.add_argument("--reference", help="the NAME whose images FD compares with (e.g. the teacher)")
    p.add_argument("--seeds", type=int, default=4, help="seeds per prompt (diversity needs 2 or more)")
    p.add_argument("--size", help="HEIGHTxWIDTH for every pipeline (default: each one's sampling.json, else 1024)")
    p.add_argument("--clip", required=True, help="a CLIP folder or hub id, e.g. openai/clip-vit-large-patch14")
    p.add_argument("--features", help="vision model for FD and diversity, e.g. facebook/dinov2-base (default: CLIP's)")
    p.add_argument("--out", required=True, help="folder for images/, judge.json and judge.md; a re-run resumes")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.set_defaults(func=_judge)

    p = sub.add_parser("times", help="few-step samplers at shifted times, at 16 and 24 image tokens (which times "
                                     "suit a token count; zlab/measure/student_times.py)")
    p.add_argument("--pipelines", nargs="+", default=["checkpoints/shapes-teacher", "checkpoints/shapes-student"],
                   help="pipeline folders, each at its sampling.json (guidance included)")
    p.add_argument("--steps", default="2,4", help="comma-separated step counts")
    p.add_argument("--shifts", default="0.75,1,1.5,2,3,4,6", help="comma-separated time shifts (1 must be one)")
    p.add_argument("--split", choices=["validation", "test"], default="validation")
    p.add_argument("--per-count", type=int, default=8, help="prompts per number of open attributes")
    p.add_argument("--seeds", type=int, default=8, help="seeds per prompt")
    p.add_argument("--out", help="write the record as JSON")
    p.set_defaults(func=_times)

    p = sub.add_parser("synth", help="LADD data: the teacher's sampling.json samples of every train prompt")
    p.add_argument("--teacher", default=output_path("checkpoints/shapes-teacher"))
    p.add_argument("--out", default=output_path("runs/synth"))
    p.add_argument("--rounds", type=int, default=4, help="seeds per prompt (one shard each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sampling", help="JSON stock-pipeline settings (default: the teacher's sampling.json)")
    p.add_argument("--prompts", help="a text file, one prompt per line (default: the Shapes train prompts)")
    p.add_argument("--batch-size", type=int, default=90)
    p.add_argument("--sizes", help="aspect buckets HxW,HxW,... (one synth folder each; default: the sampling size)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--source", default="teacher", choices=["teacher", "renders"],
                   help="the teacher's samples (LADD) or the world's renders encoded by the teacher's VAE (ablation)")
    p.set_defaults(func=_synth)

    p = sub.add_parser("bench", help="the real-size transformer on a GPU: latency, LADD step time and memory, FLOPs")
    p.add_argument("--smoke", action="store_true", help="the same code at tiny dims on CPU (what CI runs)")
    p.add_argument("--peak-tflops", type=float, help="device dense bf16 peak (default: known GPUs by name)")
    p.add_argument("--out", help="write the results as JSON")
    p.set_defaults(func=_bench)

    p = sub.add_parser("gpu-check", help="the one GPU session's command: bench + a short Shapes run, timed phases")
    p.add_argument("--out", required=True, help="folder for gpu-check.json and gpu-check.md")
    p.add_argument("--smoke", action="store_true", help="the same code at tiny dims on CPU (what CI runs)")
    p.add_argument("--phases", help="comma-separated subset (default all): forward, student, ladd-lora, ladd-full, "
                   "shapes-vae, shapes-teacher, shapes-synth, shapes-ladd, shapes-eval")
    p.add_argument("--budget", type=float, help="total seconds, start-up included (default 450: 8 minutes "
                   "less the interpreter's start and writing the files; 3600 with --smoke)")
    p.add_argument("--run", help="run folder of the Shapes run (default: a temporary folder, removed after)")
    p.set_defaults(func=_gpu_check)

    p = sub.add_parser("memory", help="predicted peak memory of one LADD step for a config (no GPU needed)")
    p.add_argument("--config", default="configs/zimage-ladd-lora.toml")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--cap-len", type=int, default=128, help="caption tokens per prompt")
    p.add_argument("--gpus", type=int, default=1, help="GPUs the student is sharded over by FSDP "
                   "(configs/accelerate-fsdp.yaml; full fine-tuning only); 1 = one GPU or DDP")
    p.set_defaults(func=_memory)

    p = sub.add_parser("distill", help="train a student by the config's method, LADD or DMD (accelerate: one process, "
                                       "or `accelerate launch`)")
    p.add_argument("--config", default=config_path("shapes-ladd.toml"))
    p.add_argument("--run", default=output_path("runs/ladd"))
    p.add_argument("--resume", action="store_true")
    p.add_argument("--out", help="also write the trained student as a stock ZImagePipeline folder")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    p.set_defaults(func=_distill)

    p = sub.add_parser("make-student",
                       help="the whole student recipe: synth, an init stage, LADD or DMD, a measured shipped folder")
    p.add_argument("--config", default=config_path("shapes-ladd.toml"))
    p.add_argument("--out", default=output_path("checkpoints/shapes-student"))
    p.add_argument("--run", default=output_path("runs/ladd"))
    p.add_argument("--resume", action="store_true")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    p.set_defaults(func=_make_student)

    p = sub.add_parser("ablate", help="LADD variants x training seeds from a grid file, measured, appended to JSON")
    p.add_argument("--grid", default="configs/ablations.toml")
    p.add_argument("--out", default="docs/ablations.json", help="the record; finished runs in it are skipped")
    p.add_argument("--runs", default=output_path("runs/ablate"), help="run folders (each resumes when cut)")
    p.add_argument("--only", nargs="+", metavar="VARIANT", help="run only these variants")
    p.add_argument("--report", action="store_true", help="print the record's table and verdicts; train nothing")
    p.set_defaults(func=_ablate)

    p = sub.add_parser("compare", help="teacher vs student side by side through stock ZImagePipeline (lab 06)")
    p.add_argument("--teacher", default=output_path("checkpoints/shapes-teacher"))
    p.add_argument("--student", default=output_path("checkpoints/shapes-student"))
    p.add_argument("--seeds", type=int, default=1, help="seeds per prompt")
    p.add_argument("--shapes-net", default="checkpoints/shapes-net")
    p.add_argument("--out", help="write the rows as JSON")
    p.add_argument("--rounds", type=int, default=3, help="rounds of 8 interleaved teacher/student timing pairs")
    p.set_defaults(func=_compare)

    p = sub.add_parser("bench-speedup", help="benchmark: teacher-50-CFG / student-4 wall-clock, interleaved pairs")
    p.add_argument("--teacher", default=output_path("checkpoints/shapes-teacher"))
    p.add_argument("--student", default=output_path("checkpoints/shapes-student"))
    p.add_argument("--rounds", type=int, default=3, help="rounds of 8 interleaved teacher/student timing pairs")
    p.set_defaults(func=_bench_speedup)

    p = sub.add_parser("labs", help="the labs' executed state; --execute runs them at full size and saves outputs")
    p.add_argument("--execute", nargs="*", metavar="NN", help="run these labs (e.g. 03 07; none named: all) and save "
                   "their outputs with a record of commit, checkpoints and time")
    p.add_argument("--small", action="store_true", help="run at the small size the tests use (not for committing)")
    p.set_defaults(func=_labs)

    p = sub.add_parser("sample", help="one image from a pipeline folder or hub id")
    p.add_argument("--pipeline", required=True)
    p.add_argument("--prompt", required=True)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--s", type=float, default=1.0, help="CFG scale in the lab's convention (diffusers g = s - 1)")
    p.add_argument("--truncation", type=float, default=1.0)
    p.add_argument("--method", choices=["euler", "consistency"], default="euler")
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="sample.png")
    p.set_defaults(func=_sample)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, FileNotFoundError) as err:
        print(f"zlab {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
