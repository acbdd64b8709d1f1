"""zlab app: the 50-step teacher beside its 1/2/4-step LADD student (and a DMD student), the discriminator's view and
the distribution-matching view by noise level.

    python app/main.py                                   # shipped tiny checkpoints, CPU, $GRADIO_SERVER_PORT or 7860
    python app/main.py --teacher PATH --student PATH --device cuda --dtype bfloat16
    python app/main.py --baseline PATH   # a regression-distilled student for the seeds grid (default: a
                                         # shapes-regression folder beside the student, when there is one)
    python app/main.py --dmd-student PATH   # a DMD student beside the LADD one, its fake score for the
                                            # distribution-matching view (default: shapes-dmd beside the
                                            # student, when there is one; "" for none)

Everything it shows is computed by ``zlab`` (``zlab.measure.compare``, ``zlab.features``, ``zlab.measure.discriminator_view``,
``zlab.measure.dmd_view``, ``zlab.distill.student``) and drawn by ``zlab.viz.features`` and ``zlab.viz.dmd``; this file
only lays it out.
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

from zlab.distill.schedule import STUDENT_STEPS  # noqa: E402
from zlab.distill.student import DISCRIMINATOR, FAKE_SCORE, load_discriminator  # noqa: E402
from zlab.features import FeatureTap  # noqa: E402
from zlab.measure.compare import check_request, draw, side_by_side  # noqa: E402
from zlab.measure.discriminator_view import sweep_t_hat, view_pair  # noqa: E402
from zlab.measure.diversity import (  # noqa: E402
    MAX_SEEDS,
    MIN_SEEDS,
    check_seeds,
    column_plan,
    grid_image,
    meant_steps,
    seeds_columns,
)
from zlab.measure.dmd_view import dmd_view, load_fake_score, trained_guidance_scale  # noqa: E402
from zlab.measure.settings import parse, student_steps  # noqa: E402
from zlab.paths import check_pair, shapes_set  # noqa: E402
from zlab.shapes import world  # noqa: E402
from zlab.shapes.open_captions import ANY, build_caption  # noqa: E402
from zlab.viz.dmd import ESTIMATES, directions_figure, estimate_panels, stack_estimates, strengths_table  # noqa: E402
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
NOISY_SCALE = 4  # the discriminator and DMD views' decoded latents, enlarged (nearest neighbour) to be seen
ENLARGED_SIDE = 256  # the compare row's samples are enlarged (nearest neighbour) to at least this short side
DMD_SLOTS = len(STUDENT_STEPS)  # a DMD student's columns: one per step count it is meant for (1, 2, 4 at most)
GRID_SLOTS = 7 + DMD_SLOTS  # seeds-grid columns: teacher, teacher at N, regression student 1 and 4, LADD student 1,
#                             2, 4, then the DMD student's
BASELINE = "shapes-regression"  # the regression student's folder, looked for beside the student's
DMD = "shapes-dmd"  # the DMD student's folder, looked for beside the student's
TAU_RANGE = (0.02, 0.98)  # the distribution-matching view's noise levels (DMD2's tau law)


class Lab:
    """The loaded teacher, students and critics, and the computations the tabs call."""

    def __init__(self, teacher: str, student: str, device: str = "cpu", dtype: str = "float32",
                 baseline: str | None = None, dmd: str | None = None):
        self.device, self.dtype = device, dtype
        self.load(teacher, student, baseline, dmd)

    def load(self, teacher: str, student: str, baseline: str | None = None, dmd: str | None = None) -> None:
        """(Re)load the pipelines (``baseline``: an optional regression student, ``dmd``: an optional DMD student, its
        fake score from its ``fake_score/``); raises FileNotFoundError / ValueError naming a bad path, keeping the old
        ones."""
        torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[self.dtype]
        device = self.device
        teacher_pipe = load_pipeline(teacher, device=device, dtype=torch_dtype)
        student_pipe = load_pipeline(student, device=device, dtype=torch_dtype)
        baseline_pipe = load_pipeline(baseline, device=device, dtype=torch_dtype) if baseline else None
        teacher_sampling = read_sampling(teacher) if (Path(teacher) / "sampling.json").is_file() else {}
        dmd_pipe, fake, dmd_steps, dmd_g = None, None, (), teacher_sampling.get("guidance_scale", 0.0)
        if dmd:
            check_pair(Path(teacher), Path(dmd))  # one world: the view runs the teacher on the DMD student's samples
            dmd_pipe = load_pipeline(dmd, device=device, dtype=torch_dtype)
            if (Path(dmd) / FAKE_SCORE).is_dir():
                fake = load_fake_score(dmd, device, torch_dtype, like=teacher_pipe.transformer)
            dmd_sampling = read_sampling(dmd) if (Path(dmd) / "sampling.json").is_file() else {}
            dmd_steps = meant_steps(dmd_sampling.get("num_inference_steps", max(STUDENT_STEPS)))
            dmd_g = trained_guidance_scale(dmd, dmd_g)
        self.paths = (str(teacher), str(student), str(baseline or ""), str(dmd or ""))
        self.pair.cache_clear()
        self.dmd_sample.cache_clear()
        self.teacher, self.student, self.baseline = teacher_pipe, student_pipe, baseline_pipe
        self.dmd, self.fake_score, self.dmd_steps, self.dmd_guidance = dmd_pipe, fake, dmd_steps, float(dmd_g)
        self.sampling = teacher_sampling
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

    @functools.lru_cache(maxsize=16)
    def dmd_sample(self, prompt: str, seed: int, height: int, width: int):
        """Clean latents of the DMD student's sample (as many steps as its sampling.json says, no CFG); cached."""
        return self.dmd([prompt], generator=torch.Generator().manual_seed(int(seed)), output_type="latent",
                        num_inference_steps=self.dmd_steps[-1], guidance_scale=0.0, height=height,
                        width=width).images.float()


def _t_hat_law(student: Path) -> tuple[float, float]:
    """(m, s) of the t̂ law the student was trained with (its eval.json config); LADD's (1, 1) when unrecorded."""
    try:
        config = json.loads((student / "eval.json").read_text()).get("config", {}).get("ladd", {})
    except (OSError, ValueError):
        config = {}
    return float(config.get("t_hat_m", 1.0)), float(config.get("t_hat_s", 1.0))


def _loaded(lab: Lab) -> str:
    baseline = f" and regression student `{lab.paths[2]}`" if lab.paths[2] else ""
    dmd = f" and DMD student `{lab.paths[3]}`" if lab.paths[3] else ""
    return f"loaded: `{lab.paths[0]}` and `{lab.paths[1]}`{baseline}{dmd}"


def _dmd_note(lab: Lab) -> str:
    """What the distribution-matching view shows, or how to get it: it needs a DMD student with its fake score."""
    if lab.fake_score is not None:
        steps = f"{'/'.join(map(str, lab.dmd_steps))} step{'s' * (lab.dmd_steps != (1,))}"
        return (f"DMD student `{lab.paths[3]}` ({steps}) and its fake score. "
                "Its sample is re-noised at τ; the teacher's and the fake score's clean estimates there give the "
                "two directions DMD pushes the student along.")
    why = (f"the DMD student `{lab.paths[3]}` has no `{FAKE_SCORE}/` folder" if lab.dmd is not None
           else "no DMD student is loaded")
    return (f"**Nothing to show: {why}.** Load a DMD student folder (a stock `ZImagePipeline` with its fake score in "
            f"`{FAKE_SCORE}/`, as `zlab make-student --config configs/shapes-dmd.toml --out checkpoints/{DMD}` "
            "ships it) with `python app/main.py --dmd-student PATH` or in the Checkpoints tab.")


def _short(name: str) -> str:
    """A column's name short enough for its image label: ``teacher 50 steps + CFG`` -> ``teacher 50 + CFG``,
    ``student 1 step`` (LADD's) -> ``LADD student 1``, ``DMD student 1 step`` -> ``DMD student 1``."""
    setting = parse(name)
    who = "LADD student" if setting.who == "student" else setting.who
    return f"{who} {setting.steps}" + (" + CFG" if setting.cfg else "")


def build_app(lab: Lab) -> gr.Blocks:
    defaults = {"g": lab.sampling.get("guidance_scale", 2.0), "trunc": lab.sampling.get("cfg_truncation", 1.0),
                "h": lab.sampling.get("height", 64), "w": lab.sampling.get("width", 64)}

    def compare(prompt, seed, height, width, g, truncation, progress=gr.Progress()):
        dmd, dmd_steps = lab.dmd, lab.dmd_steps
        share = 5 / (5 + len(dmd_steps) * (dmd is not None))  # of the progress bar: the five columns of side_by_side
        max_sequence_length = lab.sampling.get("max_sequence_length", 512)
        try:
            columns = side_by_side(lab.teacher, lab.student, prompt, int(seed), int(height), int(width), float(g),
                                   float(truncation), teacher_steps=lab.sampling.get("num_inference_steps", 50),
                                   progress=lambda f, text: progress(f * share, desc=text),
                                   max_sequence_length=max_sequence_length)
        except ValueError as err:
            raise gr.Error(str(err)) from err
        ladd_4 = columns[-1]  # the slider's student: LADD at 4 steps
        if dmd is not None:
            unguided = {"guidance_scale": 0.0, "height": int(height), "width": int(width),
                        "max_sequence_length": max_sequence_length}
            for s in student_steps("DMD student", dmd_steps):
                progress(share + (1 - share) * (len(columns) - 5) / len(dmd_steps), desc=f"sampling: {s.label}")
                columns.append(draw(dmd, s.label, prompt, int(seed), s.kwargs(unguided)))
        scale = max(1, ENLARGED_SIDE // min(int(height), int(width)))  # nearest neighbour, as the seeds grid
        shown = [gr.Image(value=enlarge(c.image, scale), label=_short(c.name), visible=True) for c in columns]
        shown += [gr.Image(value=None, visible=False)] * (5 + DMD_SLOTS - len(shown))
        table = "\n".join(f"| {_short(c.name)} | {c.name} | {c.nfe} | {c.ms:.0f} |" for c in columns)
        return [*shown, (enlarge(columns[0].image, scale), enlarge(ladd_4.image, scale)),
                "| column | sampler | NFE | ms |\n|---|---|---|---|\n" + table]

    def seeds_grid(prompt, seed, height, width, g, truncation, k, naive_steps, progress=gr.Progress()):
        try:
            check_request(prompt, int(seed), int(height), int(width), float(g), float(truncation))
            seeds = check_seeds(int(seed), int(k))
        except ValueError as err:
            raise gr.Error(str(err)) from err
        teacher_sampling = {**lab.sampling, "guidance_scale": float(g), "cfg_truncation": float(truncation)}
        plan = column_plan(lab.teacher, lab.student, teacher_sampling, int(naive_steps), lab.baseline,
                           size={"height": int(height), "width": int(width)}, extra=lab.dmd,
                           extra_who="DMD student", extra_steps=lab.dmd_steps)
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

    def distribution_matching_view(prompt, seed, height, width, tau, guidance):
        if lab.fake_score is None:
            raise gr.Error(_dmd_note(lab).replace("**", "").replace("`", ""))
        try:
            check_request(prompt, int(seed), int(height), int(width), float(guidance), 1.0)
            if not TAU_RANGE[0] <= tau <= TAU_RANGE[1]:
                raise ValueError(f"tau must be in [{TAU_RANGE[0]}, {TAU_RANGE[1]}] (0 = clean, 1 = noise), got {tau}")
        except ValueError as err:
            raise gr.Error(str(err)) from err
        x0_hat = lab.dmd_sample(prompt, int(seed), int(height), int(width))
        embeds, null = encode_prompts(lab.teacher, [prompt]), encode_prompts(lab.teacher, [""])
        view = dmd_view(lab.teacher.transformer, lab.fake_score, x0_hat, embeds, null, float(tau), float(guidance),
                        seed=int(seed))
        panels = estimate_panels(decode(lab.teacher, stack_estimates(x0_hat, view)), NOISY_SCALE)
        return (*panels, directions_figure(view), strengths_table(view))

    def dmd_state():
        """The parts that follow what is loaded: the DMD columns of the compare row, the DMD tab's note, controls and
        trained guidance (after a load, and on every page load)."""
        slots = [gr.Image(label=f"DMD student {n}", visible=lab.dmd is not None and n in lab.dmd_steps)
                 for n in STUDENT_STEPS]
        return [*slots, _dmd_note(lab), gr.Column(visible=lab.fake_score is not None),
                gr.Slider(value=lab.dmd_guidance)]

    with gr.Blocks(title="zlab: Z-Image teacher vs LADD student") as app:
        gr.Markdown("# zlab · Z-Image teacher vs its LADD student\nThe teacher samples with 50 guided steps "
                    "(100 network evaluations); the student distilled from it by LADD samples in 1, 2 or 4 (a student "
                    "distilled by DMD, when one is loaded, in as many as it was made for).")
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
            with gr.Row():  # short labels (the full names, NFE and time in the table below) fit the columns
                names = (f"teacher {lab.sampling.get('num_inference_steps', 50)} + CFG", "teacher 4 + CFG",
                         *(f"LADD student {n}" for n in STUDENT_STEPS))
                column_style = dict(format="png", type="numpy", show_label=True, interactive=False, height=230,
                                    min_width=180, buttons=["download", "fullscreen"])  # room for the label: wraps past 6
                images = [gr.Image(label=name, **column_style) for name in names]
                dmd_images = [gr.Image(label=f"DMD student {n}", visible=lab.dmd is not None and n in lab.dmd_steps,
                                       **column_style) for n in STUDENT_STEPS]
            with gr.Row():
                slider = gr.ImageSlider(format="png", type="numpy", label="teacher 50 + CFG ↔ LADD student 4 steps",
                                        height=360)
                timing = gr.Markdown()
            go_button.click(compare, inputs, [*images, *dmd_images, slider, timing],
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
                                  label=f"column {i + 1}", min_width=120)  # 8 columns (with DMD's) fit one row
                         for i in range(GRID_SLOTS)]
            grid_table = gr.Markdown()
            grid_button.click(seeds_grid, [*inputs, k, naive], [*grids, grid_table], api_name="seeds_grid",
                              concurrency_id=QUEUE, concurrency_limit=1)
        with gr.Tab("Checkpoints"):
            gr.Markdown("Any `ZImagePipeline` folder (or hub id) for the teacher and a LADD student folder "
                        "(its `discriminator/` feeds the discriminator view); optionally a regression-distilled "
                        f"student for the seeds grid, and a DMD student (its columns beside the LADD student's; its "
                        f"`{FAKE_SCORE}/` feeds the distribution-matching view). Leave an optional field empty for "
                        "none.")
            teacher_path = gr.Textbox(lab.paths[0], label="teacher")
            student_path = gr.Textbox(lab.paths[1], label="student")
            baseline_path = gr.Textbox(lab.paths[2], label="regression student (optional)")
            dmd_path = gr.Textbox(lab.paths[3], label="DMD student (optional)")
            load_button = gr.Button("Load")
            loaded = gr.Markdown(_loaded(lab))

            def load(teacher_dir, student_dir, baseline_dir="", dmd_dir=""):
                try:
                    lab.load(teacher_dir.strip(), student_dir.strip(), (baseline_dir or "").strip() or None,
                             (dmd_dir or "").strip() or None)
                except (FileNotFoundError, ValueError, OSError) as err:
                    raise gr.Error(f"could not load the checkpoints (the previous ones stay loaded): {err}") from err
                return _loaded(lab)

            loading = load_button.click(load, [teacher_path, student_path, baseline_path, dmd_path], loaded,
                                        api_name="load", concurrency_id=QUEUE, concurrency_limit=1)
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
        with gr.Tab("Distribution-matching view"):
            dmd_note = gr.Markdown(_dmd_note(lab))
            with gr.Column(visible=lab.fake_score is not None) as dmd_controls:
                gr.Markdown("DMD moves the student's sample x̂0 along **distribution matching** x0_c − x0_fake (the "
                            "teacher's conditional estimate minus the fake score's, both at x̂0 re-noised to τ) and "
                            "**CFG augmentation** (s − 1)(x0_c − x0_u). Low τ leaves texture to correct, high τ "
                            "layout. Prompt, seed and size are the ones at the top.")
                with gr.Row():
                    tau = gr.Slider(*TAU_RANGE, value=0.5, step=0.01, label="τ (re-noising level: 0 clean, 1 noise)")
                    dmd_g = gr.Slider(0, 10, value=lab.dmd_guidance, step=0.05,
                                      label="teacher guidance g in the CA term (s = g + 1; starts at the trained one)")
                show_dmd = gr.Button("Show the distribution-matching view", variant="primary")
                with gr.Row():
                    estimates = [gr.Image(format="png", label=name, interactive=False, min_width=150)
                                 for name in ESTIMATES]
                directions = gr.Plot(label="the two directions, per latent position")
                strengths = gr.Markdown()
            show_dmd.click(distribution_matching_view, [prompt, seed, height, width, tau, dmd_g],
                           [*estimates, directions, strengths], api_name="dmd_view", concurrency_id=QUEUE,
                           concurrency_limit=1)
        state = [*dmd_images, dmd_note, dmd_controls, dmd_g]
        loading.success(dmd_state, None, state, api_name=False, queue=False)
        app.load(dmd_state, None, state, api_name=False, queue=False)  # a reloaded page shows what is loaded now
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", help="teacher pipeline folder or hub id (default: the Shapes set's teacher: "
                        "$ZLAB_TEACHER, else the ZLAB_PROFILE's, see zlab.paths.shapes_set)")
    parser.add_argument("--student", help="student pipeline folder (default: the Shapes set's student)")
    parser.add_argument("--baseline", help=f"regression-distilled student for the seeds grid (default: {BASELINE} "
                        "beside the student, when it exists)")
    parser.add_argument("--dmd-student", help=f"a DMD-distilled student (its columns beside the LADD student's, its "
                        f"{FAKE_SCORE}/ for the distribution-matching view; default: {DMD} beside the student, when "
                        "it exists; \"\" for none)")
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
        dmd_beside = Path(args.student).parent / DMD
        dmd = args.dmd_student if args.dmd_student is not None else (
            str(dmd_beside) if (dmd_beside / "model_index.json").is_file() else None)
        lab = Lab(args.teacher, args.student, args.device, args.dtype, baseline, dmd or None)
    except (FileNotFoundError, ValueError, OSError) as err:
        parser.exit(2, f"app/main.py: cannot load the pipelines: {err}\n")
    build_app(lab).queue(default_concurrency_limit=1).launch(server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
