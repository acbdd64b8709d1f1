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
def app_url(student_dir):
    port = _free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    # the student doubles as the regression student, so the seeds grid has all of its columns
    proc = subprocess.Popen([sys.executable, str(ROOT / "app" / "main.py"), "--student", str(student_dir),
                             "--baseline", str(student_dir)], env=env,
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


def test_named_endpoints(client):
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {
        "/compare", "/seeds_grid", "/discriminator_view", "/load"}


def test_compare_gives_five_png_columns_with_nfe_and_ms(client):
    out = client.predict(PROMPT, 3, 64, 96, 2.0, 1.0, api_name="/compare")
    images, slider, table = out[:5], out[5], out[6]
    for image in images:
        assert _png(image["value"] if isinstance(image, dict) else image).shape == (64, 96, 3)
    assert len(slider) == 2
    rows = [line.split("|")[1:-1] for line in table.splitlines()[2:]]
    assert [int(r[1]) for r in rows] == [100, 8, 1, 2, 4]  # NFE: 50 + CFG, 4 + CFG, student 1/2/4
    assert all(float(r[2]) > 0 for r in rows)


def test_seeds_grid_gives_every_column_with_its_measures(client):
    out = client.predict("a red shape", 10, 64, 96, 1.0, 1.0, 8, 2, api_name="/seeds_grid")
    grids, table = out[:-1], out[-1]
    assert len(grids) == 7
    tile_h, tile_w = 64 * 3 + 6, 96 * 3 + 6  # each sample enlarged 3x in a 3-pixel frame, 2 per row
    for grid in grids:
        assert _png(grid["value"] if isinstance(grid, dict) else grid).shape == (4 * tile_h, 2 * tile_w, 3)
    rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| ") and "NFE" not in line]
    assert [r[0].strip() for r in rows] == ["teacher 50 steps + CFG (g = 1)", "teacher 2 steps + CFG (g = 1)",
                                            "regression student 1 step", "regression student 4 steps",
                                            "LADD student 1 step", "LADD student 2 steps", "LADD student 4 steps"]
    assert [int(r[1]) for r in rows] == [100, 4, 1, 4, 1, 2, 4]
    for r in rows:
        assert 0.0 <= float(r[2]) <= 1.0 and 0.0 <= float(r[4]) <= 1.0  # validity, coverage (colour named only)
    assert "seeds 10–17" in table


def test_seeds_grid_rejects_too_few_seeds(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="less than minimum value 8|8 to 32 seeds"):
        client.predict("a red shape", 0, 64, 64, 1.0, 1.0, 4, 2, api_name="/seeds_grid")


def test_discriminator_view_outputs(client):
    out = client.predict(PROMPT, 0, 64, 64, 2.0, 1.0, 1, 0.7, 1.0, 1.0, api_name="/discriminator_view")
    density, real_noisy, fake_noisy, maps, logits, scores, sweep = out
    assert _png(real_noisy).shape == (256, 256, 3) and _png(fake_noisy).shape == (256, 256, 3)  # enlarged 4x
    assert _png(maps).shape[0] == 2 * (4 * 16 + 4)  # rows real / fake of 4x4 maps upsampled 16x, padded
    assert "real score" in scores and scores.count("\n") == 5  # header, rule, one row per head
    for fig in (density, logits, sweep):
        assert fig["type"] == "plotly"


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
    assert client.predict(PROMPT, 0, 64, 64, 2.0, 1.0, 1, 0.5, 1.0, 1.0, api_name="/discriminator_view")
    assert "loaded" in client.predict(teacher, str(student_dir), api_name="/load")


def test_bad_checkpoint_paths_stop_the_app_with_a_message(tmp_path):
    for teacher in (tmp_path / "missing", ROOT / "checkpoints" / "shapes-net"):
        result = subprocess.run([sys.executable, str(ROOT / "app" / "main.py"), "--teacher", str(teacher)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2
        assert "cannot load the pipelines" in result.stderr and str(teacher.name) in result.stderr


def test_twenty_concurrent_requests_all_complete(client):
    jobs = [client.submit(PROMPT.replace("red", colour), seed, 64, 64, 2.0, 1.0, api_name="/compare")
            for seed, colour in enumerate(["red", "green", "blue", "yellow", "purple"] * 4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda job: job.result(timeout=600), jobs))
    assert len(results) == 20 and all(len(r) == 7 for r in results)


def test_real_browser_generates_and_shows_the_discriminator_tab(app_url, browser, student_dir, tmp_path):
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
    page.wait_for_function("document.querySelectorAll('img[src*=\"/file=\"], img[src*=\"gradio_api/file\"]').length >= 5",
                           timeout=180_000)
    page.screenshot(path=str(shots / "app-compare.png"), full_page=True)
    page.get_by_role("button", name="Sample the seeds grid").click()
    page.wait_for_function("[...document.querySelectorAll('td')].some(td => td.textContent.includes('LADD student 4 steps'))",
                           timeout=300_000)
    page.screenshot(path=str(shots / "app-seeds-grid.png"), full_page=True)
    page.get_by_role("tab", name="Discriminator view").click()
    trained_m = json.loads((student_dir / "eval.json").read_text())["config"]["ladd"]["t_hat_m"] if (
        student_dir / "eval.json").is_file() else 1.0
    assert float(page.get_by_label("logit-normal m", exact=False).input_value()) == trained_m  # the trained law
    page.get_by_role("button", name="Show the discriminator's view").click()
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 3", timeout=180_000)
    page.screenshot(path=str(shots / "app-discriminator.png"), full_page=True)
    page.close()
    assert (shots / "app-compare.png").stat().st_size > 10_000
