"""zlab app: the 50-step teacher beside its 1/2/4-step LADD student, and the discriminator's view by noise level.

    python app/main.py                                   # shipped tiny checkpoints, CPU, $GRADIO_SERVER_PORT or 7860
    python app/main.py --teacher PATH --student PATH --device cuda --dtype bfloat16
    python app/main.py --baseline PATH   # a regression-distilled student for the seeds grid (default: a
                                         # shapes-regression folder beside the student, when there is one)

Everything it shows is computed by ``zlab`` (``zlab.measure.compare``, ``zlab.features``, ``zlab.measure.discriminator_view``,
``zlab.distill.student``) and drawn by ``zlab.viz.features``; this file only lays it out.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
from pathlib import Path

import gradio as gr
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from zlab.distill.student import DISCRIMINATOR, load_discriminator  # noqa: E402
from zlab.features import FeatureTap  # noqa: E402
from zlab.measure.compare import check_request, side_by_side  # noqa: E402
from zlab.measure.discriminator_view import sweep_t_hat, view_pair  # noqa: E402
from zlab.measure.diversity import MAX_SEEDS, MIN_SEEDS, check_seeds, column_plan, grid_image, seeds_columns  # noqa: E402
from zlab.paths import check_pair, shapes_set  # noqa: E402
from zlab.shapes import world  # noqa: E402
from zlab.shapes.open_captions import ANY, build_caption  # noqa: E402
from zlab.viz.features import (  # noqa: E402
    head_logits_figure,
    head_score_sweep_figure,
    head_scores_table,
    pca_maps_image,
    t_hat_density_figure,
)
from zlab.viz.images import enlarge  # noqa: E402
from zlab.zimage import decode, encode_prompts, load_pipeline, read_sampling  # noqa: E402

QUEUE = "models"  # one concurrency group: every model call waits in the same queue
NOISY_SCALE = 4  # the discriminator view's decoded noisy samples, enlarged (nearest neighbour) to be seen
GRID_SLOTS = 7  # seeds-grid columns: teacher, teacher at N, regression student 1 and 4, LADD student 1, 2, 4
BASELINE = "shapes-regression"  # the regression student's folder, looked for beside the student's


class Lab:
    """The loaded teacher, student and discriminator, and the computations the two tabs call."""

    def __init__(self, teacher: str, student: str, device: str = "cpu", dtype: str = "float32",
                 baseline: str | None = None):
        self.device, self.dtype = device, dtype
        self.load(teacher, student, baseline)

    def load(self, teacher: str, student: str, baseline: str | None = None) -> None:
        """(Re)load the pipelines (``baseline``: an optional regression student); raises FileNotFoundError /
        ValueError naming a bad path, keeping the old ones."""
        torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[self.dtype]
        device = self.device
        teacher_pipe = load_pipeline(teacher, device=device, dtype=torch_dtype)
        student_pipe = load_pipeline(student, device=device, dtype=torch_dtype)
        baseline_pipe = load_pipeline(baseline, device=device, dtype=torch_dtype) if baseline else None
        self.paths = (str(teacher), str(student), str(baseline or ""))
        self.pair.cache_clear()
        self.teacher, self.student, self.baseline = teacher_pipe, student_pipe, baseline_pipe
        self.sampling = read_sampling(teacher) if (Path(teacher) / "sampling.json").is_file() else {}
        self.t_hat_law = _t_hat_law(Path(student))
        disc_dir = Path(student) / DISCRIMINATOR
        self.disc = load_discriminator(disc_dir).to(device) if disc_dir.is_dir() else None
        blocks = self.disc.blocks if self.disc else tuple(range(len(self.teacher.transformer.layers)))
        self.tap = FeatureTap(self.teacher.transformer, blocks, caption=bool(self.disc and self.disc.caption))
        self.blocks = blocks

    @functools.lru_cache(maxsize=16)
    def pair(self, prompt: str, seed: int, height: int, width: int, g: float, truncation: float, n: int):
        """Clean latents of the real (teacher, its recipe) and fake (student, n steps) sample; cached."""
        gen = lambda: torch.Generator().manual_seed(int(seed))
        size = {"height": height, "width": width}
        steps = self.sampling.get("num_inference_steps", 50)
        real = self.teacher([prompt], generator=gen(), output_type="latent", num_inference_steps=steps,
                            guidance_scale=g, cfg_truncation=truncation, **size).images
        fake = self.student([prompt], generator=gen(), output_type="latent", num_inference_steps=n,
                            guidance_scale=0.0, **size).images
        return real.float(), fake.float()


def _t_hat_law(student: Path) -> tuple[float, float]:
    """(m, s) of the t̂ law the student was trained with (its eval.json config); LADD's (1, 1) when unrecorded."""
    try:
        config = json.loads((student / "eval.json").read_text()).get("config", {}).get("ladd", {})
    except (OSError, ValueError):
        config = {}
    return float(config.get("t_hat_m", 1.0)), float(config.get("t_hat_s", 1.0))


def _loaded(lab: Lab) -> str:
    baseline = f" and regression student `{lab.paths[2]}`" if lab.paths[2] else ""
    return f"loaded: `{lab.paths[0]}` and `{lab.paths[1]}`{baseline}"


def build_app(lab: Lab) -> gr.Blocks:
    defaults = {"g": lab.sampling.get("guidance_scale", 2.0), "trunc": lab.sampling.get("cfg_truncation", 1.0),
                "h": lab.sampling.get("height", 64), "w": lab.sampling.get("width", 64)}

    def compare(prompt, seed, height, width, g, truncation, progress=gr.Progress()):
        try:
            columns = side_by_side(lab.teacher, lab.student, prompt, int(seed), int(height), int(width), float(g),
                                   float(truncation), teacher_steps=lab.sampling.get("num_inference_steps", 50),
                                   progress=lambda f, text: progress(f, desc=text),
                                   max_sequence_length=lab.sampling.get("max_sequence_length", 512))
        except ValueError as err:
            raise gr.Error(str(err)) from err
        table = "\n".join(f"| {c.name} | {c.nfe} | {c.ms:.0f} |" for c in columns)
        return [*(gr.Image(value=c.image, label=f"{c.name} · NFE {c.nfe} · {c.ms:.0f} ms") for c in columns),
                (columns[0].image, columns[-1].image), "| column | NFE | ms |\n|---|---|---|\n" + table]

    def seeds_grid(prompt, seed, height, width, g, truncation, k, naive_steps, progress=gr.Progress()):
        try:
            check_request(prompt, int(seed), int(height), int(width), float(g), float(truncation))
            seeds = check_seeds(int(seed), int(k))
        except ValueError as err:
            raise gr.Error(str(err)) from err
        teacher_sampling = {**lab.sampling, "guidance_scale": float(g), "cfg_truncation": float(truncation)}
        plan = column_plan(lab.teacher, lab.student, teacher_sampling, int(naive_steps), lab.baseline,
                           size={"height": int(height), "width": int(width)})
        columns = seeds_columns(plan, prompt, seeds, progress=lambda f, text: progress(f, desc=text))
        cols = 2 if int(k) <= 16 else 4
        out = [gr.Image(value=grid_image(c, cols=cols), label=f"{c.name} · {c.summary()}", visible=True)
               for c in columns]
        out += [gr.Image(value=None, visible=False)] * (GRID_SLOTS - len(columns))
        fmt = lambda x: "–" if x != x else f"{x:.2f}"
        table = "\n".join(f"| {c.name} | {c.nfe} | {fmt(c.record['valid'])} | {fmt(c.record['named_accuracy'])} | "
                          f"{fmt(c.record['coverage_entropy'])} | {fmt(c.record['coverage_seen'])} |" for c in columns)
        note = "" if lab.baseline is not None else (
            "\n\nNo regression student is loaded (`--baseline`, or the Checkpoints tab): its columns are left out.")
        return [*out, f"seeds {seeds[0]}–{seeds[-1]}, green frame: valid with every named attribute right, red: not.\n\n"
                      "| column | NFE | validity | named accuracy | coverage (entropy) | values seen |\n"
                      "|---|---|---|---|---|---|\n" + table + note]

    def discriminator_view(prompt, seed, height, width, g, truncation, n, t_hat, m, s):
        try:
            check_request(prompt, int(seed), int(height), int(width), float(g), float(truncation))
            if not 0.0 < t_hat < 1.0:
                raise ValueError(f"t_hat must be in (0, 1), got {t_hat}")
            if not 0.05 <= s <= 5 or not -5 <= m <= 5:
                raise ValueError(f"logit-normal (m, s) must have m in [-5, 5] and s in [0.05, 5], got ({m}, {s})")
        except ValueError as err:
            raise gr.Error(str(err)) from err
        real, fake = lab.pair(prompt, int(seed), int(height), int(width), float(g), float(truncation), int(n))
        embeds = encode_prompts(lab.teacher, [prompt])
        view = view_pair(lab.tap, real, fake, embeds, float(t_hat), seed=int(seed), disc=lab.disc)
        noisy = [enlarge((decode(lab.teacher, x)[0].numpy() * 255).round().astype(np.uint8), NOISY_SCALE)
                 for x in (view.real_noisy, view.fake_noisy)]
        ts, sweep, text = np.linspace(0.05, 0.95, 10), None, "no discriminator heads in the student folder"
        if lab.disc is not None:
            sweep = sweep_t_hat(lab.tap, real, fake, embeds, ts, seed=int(seed), disc=lab.disc)
            text = head_scores_table(view.real_logits, view.fake_logits, lab.blocks)
        return (t_hat_density_figure(m, s, t_hat), noisy[0], noisy[1], pca_maps_image(view.real_maps, view.fake_maps),
                head_logits_figure(view.real_logits, view.fake_logits, lab.blocks), text,
                head_score_sweep_figure(ts, sweep, lab.blocks, t_hat))

    with gr.Blocks(title="zlab: Z-Image teacher vs LADD student") as app:
        gr.Markdown("# zlab · Z-Image teacher vs its LADD student\nThe teacher samples with 50 guided steps "
                    "(100 network evaluations); the student distilled from it by LADD samples in 1, 2 or 4.")
        with gr.Row():
            # "any" leaves an attribute open: "a red shape in the top row" has many right pictures
            size = gr.Dropdown([ANY, *world.SIZES], value="large", label="size")
            colour = gr.Dropdown([ANY, *world.COLOURS], value="red", label="colour")
            shape = gr.Dropdown([ANY, *world.SHAPES], value="circle", label="shape")
            row = gr.Dropdown([ANY, *world.ROWS], value="top", label="row")
            column = gr.Dropdown([ANY, *world.COLUMNS], value="left", label="column")
        prompt = gr.Textbox("a large red circle at the top left",
                            label="prompt (the builder writes it, 'any' leaves an attribute open; free text allowed)")
        for dd in (size, colour, shape, row, column):
            dd.change(build_caption, [size, colour, shape, row, column], prompt, api_name=False, queue=False)
        with gr.Row():
            seed = gr.Number(0, precision=0, label="seed")
            height = gr.Number(defaults["h"], precision=0, label="height (multiple of 16)")
            width = gr.Number(defaults["w"], precision=0, label="width (multiple of 16)")
            g = gr.Slider(0, 10, value=defaults["g"], step=0.5, label="teacher guidance (diffusers g = s − 1)")
            truncation = gr.Slider(0, 1, value=defaults["trunc"], step=0.05, label="CFG truncation")
        inputs = [prompt, seed, height, width, g, truncation]
        with gr.Tab("Compare"):
            go_button = gr.Button("Generate", variant="primary")
            with gr.Row():
                images = [gr.Image(format="png", type="numpy", label=name, show_label=True, interactive=False, height=230)
                          for name in ("teacher 50 + CFG", "teacher 4 + CFG", "student 1", "student 2", "student 4")]
            with gr.Row():
                slider = gr.ImageSlider(format="png", type="numpy", label="teacher 50 + CFG ↔ student 4 steps", height=360)
                timing = gr.Markdown()
            go_button.click(compare, inputs, [*images, slider, timing],
                            api_name="compare", concurrency_id=QUEUE, concurrency_limit=1)
            gr.Markdown("### Many seeds: does each sampler keep the picture open?\nThe same prompt and the same "
                        "seeds in every column. Leave attributes open ('any') to see which samplers vary what the "
                        "prompt does not name and which give one picture for every seed.")
            with gr.Row():
                k = gr.Slider(MIN_SEEDS, MAX_SEEDS, value=MIN_SEEDS, step=1, label="seeds (from the seed above)")
                naive = gr.Radio([1, 2, 4], value=4, label="teacher cut to N steps")
                grid_button = gr.Button("Sample the seeds grid", variant="primary")
            with gr.Row():
                grids = [gr.Image(format="png", type="numpy", interactive=False, visible=i < 5, show_label=True,
                                  label=f"column {i + 1}") for i in range(GRID_SLOTS)]
            grid_table = gr.Markdown()
            grid_button.click(seeds_grid, [*inputs, k, naive], [*grids, grid_table], api_name="seeds_grid",
                              concurrency_id=QUEUE, concurrency_limit=1)
        with gr.Tab("Checkpoints"):
            gr.Markdown("Any `ZImagePipeline` folder (or hub id) for the teacher and a LADD student folder "
                        "(its `discriminator/` feeds the discriminator view); optionally a regression-distilled "
                        "student for the seeds grid.")
            teacher_path = gr.Textbox(lab.paths[0], label="teacher")
            student_path = gr.Textbox(lab.paths[1], label="student")
            baseline_path = gr.Textbox(lab.paths[2], label="regression student (optional)")
            load_button = gr.Button("Load")
            loaded = gr.Markdown(_loaded(lab))

            def load(teacher_dir, student_dir, baseline_dir=""):
                try:
                    lab.load(teacher_dir.strip(), student_dir.strip(), (baseline_dir or "").strip() or None)
                except (FileNotFoundError, ValueError, OSError) as err:
                    raise gr.Error(f"could not load the checkpoints (the previous ones stay loaded): {err}") from err
                return _loaded(lab)

            load_button.click(load, [teacher_path, student_path, baseline_path], loaded, api_name="load",
                              concurrency_id=QUEUE, concurrency_limit=1)
        with gr.Tab("Discriminator view"):
            with gr.Row():
                n = gr.Radio([1, 2, 4], value=1, label="student steps (the fake sample)")
                law_m, law_s = lab.t_hat_law  # the law the student was trained with; its median is sigmoid(m)
                t_hat = gr.Slider(0.02, 0.98, value=round(1 / (1 + math.exp(-law_m)), 2), step=0.01,
                                  label="t̂ (re-noising level; starts at the trained law's median)")
                m = gr.Number(law_m, label="logit-normal m (the student's training law)")
                s = gr.Number(law_s, label="logit-normal s")
            show = gr.Button("Show the discriminator's view", variant="primary")
            density = gr.Plot(label="t̂ ~ LogitNormal(m, s)")
            with gr.Row():
                real_noisy = gr.Image(format="png", label="real (teacher) at t̂, decoded", interactive=False)
                fake_noisy = gr.Image(format="png", label="fake (student) at t̂, decoded", interactive=False)
                maps = gr.Image(format="png", label="tapped maps (rows real / fake, one column per block)",
                                interactive=False)
            logits = gr.Plot(label="head logits")
            scores = gr.Markdown()
            sweep = gr.Plot(label="head scores across t̂")
            show.click(discriminator_view, [*inputs, n, t_hat, m, s],
                       [density, real_noisy, fake_noisy, maps, logits, scores, sweep],
                       api_name="discriminator_view", concurrency_id=QUEUE, concurrency_limit=1)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", help="teacher pipeline folder or hub id (default: the Shapes set's teacher: "
                        "$ZLAB_TEACHER, else the ZLAB_PROFILE's, see zlab.paths.shapes_set)")
    parser.add_argument("--student", help="student pipeline folder (default: the Shapes set's student)")
    parser.add_argument("--baseline", help=f"regression-distilled student for the seeds grid (default: {BASELINE} "
                        "beside the student, when it exists)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    args = parser.parse_args(argv)
    try:
        if args.teacher is None or args.student is None:  # one whole Shapes set: never a teacher of one, student of another
            chosen = shapes_set(need=("teacher", "student"))
            args.teacher, args.student = args.teacher or str(chosen.teacher), args.student or str(chosen.student)
            check_pair(Path(args.teacher), Path(args.student))  # one named, one from the set: still one world
        beside = Path(args.student).parent / BASELINE
        baseline = args.baseline or (str(beside) if (beside / "model_index.json").is_file() else None)
        lab = Lab(args.teacher, args.student, args.device, args.dtype, baseline)
    except (FileNotFoundError, ValueError, OSError) as err:
        parser.exit(2, f"app/main.py: cannot load the pipelines: {err}\n")
    build_app(lab).queue(default_concurrency_limit=1).launch(server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
