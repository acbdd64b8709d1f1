"""The Gradio app, launched for real: named endpoints, bad input, 20 concurrent requests, a real browser."""

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a large red circle at the top left"
DMD_G = 0.75  # the test DMD student's guidance on record (the shipped teacher's sampling.json has another)
COMPARE_LABELS = ["teacher 50 + CFG", "teacher 4 + CFG", "LADD student 1", "LADD student 2", "LADD student 4"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    """The shipped student; before one is shipped, LADD's starting point with untrained heads."""
    shipped = ROOT / "checkpoints" / "shapes-student"
    if (shipped / "model_index.json").is_file():
        return shipped
    from zlab.distill.heads import Discriminator
    from zlab.distill.student import save_student, student_pipeline
    from zlab.zimage import load_pipeline

    teacher = load_pipeline(ROOT / "checkpoints" / "shapes-teacher")
    out = tmp_path_factory.mktemp("app") / "student"
    disc = Discriminator((0, 1, 2, 3), teacher.transformer.config.dim, teacher.text_encoder.config.hidden_size)
    save_student(student_pipeline(teacher, teacher.transformer), disc, out, {"num_inference_steps": 4, "guidance_scale": 0.0})
    return out


@pytest.fixture(scope="module")
def dmd_dir(tmp_path_factory):
    """A one-step DMD student of the shipped teacher: the teacher's transformer as the student, and a perturbed copy as
    its fake score (so the distribution-matching direction is not zero), distilled (on record) with g = 0.5."""
    import copy

    import torch

    from zlab.recipes.student import ship_student
    from zlab.zimage import load_pipeline

    teacher = load_pipeline(ROOT / "checkpoints" / "shapes-teacher")
    fake = copy.deepcopy(teacher.transformer)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(1)
        for p in fake.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))
    out = tmp_path_factory.mktemp("app") / "dmd"
    ship_student(teacher, teacher.transformer, fake, out,
                 {"config": {"method": "dmd", "dmd": {"guidance_scale": DMD_G, "student_probs": [1.0, 0, 0, 0]}}},
                 measure=False, steps=1)
    return out


@pytest.fixture(scope="module")
def app_url(student_dir, dmd_dir):
    port = _free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    # the student doubles as the regression student, so the seeds grid has all of its columns; a DMD student beside
    proc = subprocess.Popen([sys.executable, str(ROOT / "app" / "main.py"), "--student", str(student_dir),
                             "--baseline", str(student_dir), "--dmd-student", str(dmd_dir)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    import urllib.request

    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"app exited early:\n{proc.stdout.read()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(1)
    else:
        proc.kill()
        pytest.fail("app did not start within 180 s")
    yield url
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def _png(path) -> np.ndarray:
    assert str(path).endswith(".png"), path
    return np.asarray(Image.open(path))


def _rows(table: str) -> list[list[str]]:
    """A markdown table's body rows, cells stripped."""
    return [[c.strip() for c in line.split("|")[1:-1]] for line in table.splitlines()[2:]]


def _nearest(image: np.ndarray, scale: int) -> bool:
    """Whether ``image`` is a smaller one enlarged ``scale`` times by nearest neighbour (blocks, not interpolation)."""
    small = image[::scale, ::scale]
    return np.array_equal(image, np.repeat(np.repeat(small, scale, 0), scale, 1))


def test_named_endpoints(client):
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {
        "/compare", "/seeds_grid", "/discriminator_view", "/dmd_view", "/load"}


def test_compare_gives_the_columns_enlarged_with_nfe_and_ms(client):
    out = client.predict(PROMPT, 3, 64, 96, 2.0, 1.0, api_name="/compare")
    images, dmd_slots, slider, table = out[:5], out[5:8], out[8], out[9]
    shown = images + dmd_slots[:1]  # a one-step DMD student: one column beside the LADD student's
    assert [image["label"] for image in shown] == COMPARE_LABELS + ["DMD student 1"]
    for image in shown:
        pixels = _png(image["value"])
        assert pixels.shape == (4 * 64, 4 * 96, 3) and _nearest(pixels, 4)  # the short side enlarged to 256
    assert [slot["visible"] for slot in dmd_slots] == [True, False, False]
    assert all(_png(side).shape == (256, 384, 3) for side in slider)
    rows = _rows(table)
    assert [r[0] for r in rows] == COMPARE_LABELS + ["DMD student 1"]  # short label, then the full name
    assert [r[1] for r in rows] == ["teacher 50 steps + CFG", "teacher 4 steps + CFG", "student 1 step",
                                    "student 2 steps", "student 4 steps", "DMD student 1 step"]
    assert [int(r[2]) for r in rows] == [100, 8, 1, 2, 4, 1]  # NFE: 50 + CFG, 4 + CFG, LADD 1/2/4, DMD 1
    assert all(float(r[3]) > 0 for r in rows)


def test_seeds_grid_gives_every_column_with_its_measures(client):
    out = client.predict("a red shape", 10, 64, 96, 1.0, 1.0, 8, 2, api_name="/seeds_grid")
    grids, table = out[:-1], out[-1]
    assert len(grids) == 10 and [g["visible"] for g in grids] == [True] * 8 + [False] * 2  # 7 columns and DMD's
    tile_h, tile_w = 64 * 3 + 6, 96 * 3 + 6  # each sample enlarged 3x in a 3-pixel frame, 2 per row
    for grid in grids[:8]:
        assert _png(grid["value"]).shape == (4 * tile_h, 2 * tile_w, 3)
    rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| ") and "NFE" not in line]
    assert [r[0].strip() for r in rows] == ["teacher 50 steps + CFG (g = 1)", "teacher 2 steps + CFG (g = 1)",
                                            "regression student 1 step", "regression student 4 steps",
                                            "LADD student 1 step", "LADD student 2 steps", "LADD student 4 steps",
                                            "DMD student 1 step"]
    assert [int(r[1]) for r in rows] == [100, 4, 1, 4, 1, 2, 4, 1]
    for r in rows:
        assert 0.0 <= float(r[2]) <= 1.0 and 0.0 <= float(r[4]) <= 1.0  # validity, coverage (colour named only)
    assert "seeds 10–17" in table


def test_seeds_grid_rejects_too_few_seeds(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="less than minimum value 8|8 to 32 seeds"):
        client.predict("a red shape", 0, 64, 64, 1.0, 1.0, 4, 2, api_name="/seeds_grid")


def test_discriminator_view_outputs(client, student_dir):
    out = client.predict(PROMPT, 0, 64, 64, 2.0, 1.0, 1, 0.7, 1.0, 1.0, api_name="/discriminator_view")
    density, real_noisy, fake_noisy, maps, logits, scores, sweep = out
    assert _png(real_noisy).shape == (256, 256, 3) and _png(fake_noisy).shape == (256, 256, 3)  # enlarged 4x
    assert _png(maps).shape[0] == 2 * (4 * 16 + 4)  # rows real / fake of 4x4 maps upsampled 16x, padded
    blocks = json.loads((Path(student_dir) / "discriminator" / "config.json").read_text())["blocks"]
    assert "real score" in scores and [int(row[0]) for row in _rows(scores)] == blocks  # one row per head, by block
    for fig in (density, logits, sweep):
        assert fig["type"] == "plotly"


def test_dmd_view_shows_the_estimates_and_the_strengths_of_dmd_view(client, dmd_dir):
    import torch

    from zlab.measure.dmd_view import dmd_view, load_fake_score
    from zlab.zimage import decode, encode_prompts, load_pipeline

    *panels, figure, table = client.predict(PROMPT, 5, 64, 96, 0.6, 1.25, api_name="/dmd_view")
    assert len(panels) == 4  # the student's sample, the noisy input, the teacher's guided and the fake score's x0
    for panel in panels:
        pixels = _png(panel)
        assert pixels.shape == (256, 384, 3) and _nearest(pixels, 4)
    assert figure["type"] == "plotly"
    # the same view, computed here: the DMD student's one-step sample of seed 5, re-noised at tau = 0.6, g = 1.25
    teacher, student = load_pipeline(ROOT / "checkpoints" / "shapes-teacher"), load_pipeline(dmd_dir)
    x0_hat = student([PROMPT], generator=torch.Generator().manual_seed(5), output_type="latent", num_inference_steps=1,
                     guidance_scale=0.0, height=64, width=96).images.float()
    view = dmd_view(teacher.transformer, load_fake_score(dmd_dir), x0_hat, encode_prompts(teacher, [PROMPT]),
                    encode_prompts(teacher, [""]), tau=0.6, guidance_scale=1.25, seed=5)
    shown = {row[0]: float(row[2]) for row in _rows(table)}
    assert shown.keys() == view.strengths().keys()
    for name, strength in view.strengths().items():
        assert shown[name] == pytest.approx(strength, rel=2e-3)
    sample = (decode(teacher, x0_hat)[0].numpy() * 255).round().astype(np.int16)
    assert np.abs(_png(panels[0])[::4, ::4].astype(np.int16) - sample).max() <= 1


@pytest.mark.parametrize("args, message", [
    (("", 0, 64, 64, 0.5, 0.5), "prompt is empty"),
    ((PROMPT, 0, 72, 64, 0.5, 0.5), "height must be a multiple of 16"),
    ((PROMPT, 0, 64, 64, 0.99, 0.5), "greater than maximum value 0.98"),  # gradio checks the tau slider's range
    ((PROMPT, 0, 64, 64, 0.01, 0.5), "less than minimum value 0.02"),
    ((PROMPT, 0, 64, 64, 0.5, 10.5), "greater than maximum value 10"),
])
def test_dmd_view_bad_input_is_a_clear_error(client, args, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/dmd_view")


def test_without_a_dmd_student_the_app_is_as_before(client, student_dir, dmd_dir, tmp_path):
    import shutil

    from gradio_client.exceptions import AppError

    from zlab.distill.student import FAKE_SCORE

    teacher, student = str(ROOT / "checkpoints" / "shapes-teacher"), str(student_dir)
    try:
        assert "DMD" not in client.predict(teacher, student, student, "", api_name="/load")
        out = client.predict(PROMPT, 3, 64, 64, 2.0, 1.0, api_name="/compare")
        assert [image["label"] for image in out[:5]] == COMPARE_LABELS
        assert [slot["visible"] for slot in out[5:8]] == [False, False, False]
        assert [int(row[2]) for row in _rows(out[9])] == [100, 8, 1, 2, 4]
        with pytest.raises(AppError, match="no DMD student is loaded.*--dmd-student PATH or in the Checkpoints tab"):
            client.predict(PROMPT, 0, 64, 64, 0.5, 0.5, api_name="/dmd_view")

        no_fake = tmp_path / "dmd-without-fake-score"  # its columns, but nothing for the view to compare with
        shutil.copytree(dmd_dir, no_fake, ignore=shutil.ignore_patterns(FAKE_SCORE))
        client.predict(teacher, student, student, str(no_fake), api_name="/load")
        out = client.predict(PROMPT, 3, 64, 64, 2.0, 1.0, api_name="/compare")
        assert out[5]["label"] == "DMD student 1" and out[5]["visible"]
        with pytest.raises(AppError, match=f"DMD student {no_fake} has no {FAKE_SCORE}/ folder"):
            client.predict(PROMPT, 0, 64, 64, 0.5, 0.5, api_name="/dmd_view")
    finally:
        client.predict(teacher, student, student, str(dmd_dir), api_name="/load")
    assert client.predict(PROMPT, 0, 64, 64, 0.5, 0.5, api_name="/dmd_view")


@pytest.mark.parametrize("args, message", [
    (("", 0, 64, 64, 2.0, 1.0), "prompt is empty"),
    ((PROMPT, 0, 65, 64, 2.0, 1.0), "height must be a multiple of 16"),
    ((PROMPT, 0, 64, 4096, 2.0, 1.0), "width must be a multiple of 16 in \\[32, 1024\\]"),
    ((PROMPT, 0, 64, 64, 50.0, 1.0), "greater than maximum value 10"),  # gradio checks slider ranges itself
    ((PROMPT, -1, 64, 64, 2.0, 1.0), "seed must be"),
])
def test_bad_input_is_a_clear_error_and_the_app_keeps_serving(client, args, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/compare")
    assert client.predict(PROMPT, 0, 64, 64, 2.0, 1.0, 1, 0.5, 1.0, 1.0, api_name="/discriminator_view")


def test_loading_bad_checkpoints_is_an_error_and_keeps_the_old_ones(client, student_dir, tmp_path):
    from gradio_client.exceptions import AppError

    teacher = str(ROOT / "checkpoints" / "shapes-teacher")
    with pytest.raises(AppError, match="could not load.*no pipeline folder"):
        client.predict(teacher, str(tmp_path / "missing"), api_name="/load")
    with pytest.raises(AppError, match="could not load.*not a diffusers pipeline folder"):
        client.predict(str(ROOT / "checkpoints" / "shapes-net"), str(student_dir), api_name="/load")
    with pytest.raises(AppError, match="could not load.*no pipeline folder at .*missing-dmd"):
        client.predict(teacher, str(student_dir), str(student_dir), str(tmp_path / "missing-dmd"), api_name="/load")
    assert client.predict(PROMPT, 0, 64, 64, 2.0, 1.0, 1, 0.5, 1.0, 1.0, api_name="/discriminator_view")
    assert "loaded" in client.predict(teacher, str(student_dir), api_name="/load")


def test_bad_checkpoint_paths_stop_the_app_with_a_message(tmp_path):
    for teacher in (tmp_path / "missing", ROOT / "checkpoints" / "shapes-net"):
        result = subprocess.run([sys.executable, str(ROOT / "app" / "main.py"), "--teacher", str(teacher)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2
        assert "cannot load the pipelines" in result.stderr and str(teacher.name) in result.stderr


def test_a_bad_dmd_student_path_stops_the_app_with_a_message(student_dir, tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "app" / "main.py"), "--student", str(student_dir),
                             "--dmd-student", str(tmp_path / "no-dmd-here")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "cannot load the pipelines" in result.stderr and "no-dmd-here" in result.stderr


def test_twenty_concurrent_requests_all_complete(client):
    jobs = [client.submit(PROMPT.replace("red", colour), seed, 64, 64, 2.0, 1.0, api_name="/compare")
            for seed, colour in enumerate(["red", "green", "blue", "yellow", "purple"] * 4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda job: job.result(timeout=600), jobs))
    assert len(results) == 20 and all(len(r) == 10 for r in results)


# each visible block label: its text, its box, and where the block's corner buttons start (a label under them is cut)
LABELS_JS = """() => [...document.querySelectorAll('[data-testid="block-label"]')].filter(l => l.offsetParent !== null)
  .map(label => {
    const block = label.closest('.block'), box = label.getBoundingClientRect();
    const buttons = [...block.querySelectorAll('button.icon-button')].map(b => b.getBoundingClientRect())
      .filter(b => b.width > 0);
    return {text: label.textContent.trim(), right: box.right, height: box.height,
            font: parseFloat(getComputedStyle(label).fontSize), blockRight: block.getBoundingClientRect().right,
            buttonsLeft: Math.min(...buttons.map(b => b.left))};
  })"""


def test_real_browser_generates_and_shows_the_discriminator_and_dmd_tabs(app_url, browser, client, student_dir,
                                                                        dmd_dir, tmp_path):
    shots = Path(os.environ.get("ZLAB_SCREENSHOT_DIR", tmp_path))
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(app_url)
    page.get_by_label("shape", exact=True).click()  # the builder offers "any": an open caption
    page.get_by_role("option", name="any", exact=True).click()
    prompt = page.get_by_label("prompt", exact=False)
    page.wait_for_function("[...document.querySelectorAll('textarea')].some(t => t.value === 'a large red shape at the top left')",
                           timeout=30_000)
    assert prompt.input_value() == "a large red shape at the top left"
    page.get_by_role("button", name="Generate").click()
    page.wait_for_function("document.querySelectorAll('img[src*=\"/file=\"], img[src*=\"gradio_api/file\"]').length >= 8",
                           timeout=180_000)  # six columns (LADD's and DMD's) and the slider's two
    labels = page.evaluate(LABELS_JS)[:6]  # the compare row's, as rendered
    assert [label["text"] for label in labels] == COMPARE_LABELS + ["DMD student 1"]
    for label in labels:  # whole: on one line, inside its block, clear of the corner buttons
        assert label["height"] < 2.5 * label["font"], label
        assert label["right"] <= min(label["buttonsLeft"], label["blockRight"]), label
    page.screenshot(path=str(shots / "app-compare.png"), full_page=True)
    page.get_by_role("button", name="Sample the seeds grid").click()
    page.wait_for_function("[...document.querySelectorAll('table')].some(t => t.textContent.includes('coverage') && "
                           "t.textContent.includes('DMD student 1 step'))", timeout=300_000)  # the grid's table
    assert any(label["text"].startswith("DMD student 1 step · valid") for label in page.evaluate(LABELS_JS))
    page.screenshot(path=str(shots / "app-seeds-grid.png"), full_page=True)
    page.get_by_role("tab", name="Discriminator view").click()
    trained_m = json.loads((student_dir / "eval.json").read_text())["config"]["ladd"]["t_hat_m"] if (
        student_dir / "eval.json").is_file() else 1.0
    assert float(page.get_by_label("logit-normal m", exact=False).input_value()) == trained_m  # the trained law
    page.get_by_role("button", name="Show the discriminator's view").click()
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 3", timeout=180_000)
    page.screenshot(path=str(shots / "app-discriminator.png"), full_page=True)

    page.get_by_role("tab", name="Distribution-matching view").click()
    guidance = page.get_by_label("teacher guidance g in the CA term", exact=False).first
    assert float(guidance.input_value()) == DMD_G  # the guidance the DMD student was distilled with
    page.get_by_role("button", name="Show the distribution-matching view").click()
    page.wait_for_function("[...document.querySelectorAll('td')].some(td => td.textContent.includes('CFG augmentation'))",
                           timeout=180_000)
    page.wait_for_function("[...document.querySelectorAll('.js-plotly-plot')].some(p => p.offsetParent !== null && "
                           "p.querySelectorAll('.heatmaplayer, .hm').length > 0)", timeout=60_000)
    page.screenshot(path=str(shots / "app-dmd.png"), full_page=True)

    try:  # loaded without a DMD student (the Checkpoints tab's field emptied), the tab says how to load one
        page.get_by_role("tab", name="Checkpoints").click()
        page.get_by_label("DMD student (optional)").fill("")
        page.get_by_role("button", name="Load").click()
        page.wait_for_function("![...document.querySelectorAll('.prose')].some(p => p.textContent.includes("
                               "'and DMD student'))", timeout=120_000)
        page.get_by_role("tab", name="Distribution-matching view").click()
        note = page.locator(".prose", has_text="Nothing to show").first  # the tab's note, a markdown block
        note.wait_for(timeout=30_000)
        assert "no DMD student is loaded" in note.inner_text() and "--dmd-student PATH" in note.inner_text()
        assert not page.get_by_role("button", name="Show the distribution-matching view").is_visible()
        page.get_by_role("tab", name="Compare").click()
        assert page.evaluate(LABELS_JS)[5]["text"] != "DMD student 1"  # its column is gone too
    finally:
        client.predict(str(ROOT / "checkpoints" / "shapes-teacher"), str(student_dir), str(student_dir),
                       str(dmd_dir), api_name="/load")
    page.close()
    assert (shots / "app-compare.png").stat().st_size > 10_000
