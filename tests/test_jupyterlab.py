"""The labs in JupyterLab, as a user opens them: a real server, a real browser, a live kernel.

nbval checks that the notebooks execute; this checks what the reader sees. For each lab below, the page
runs every cell up to the first interactive control ("Run > Run All Above Selected Cell", with the cell
after the control selected), then asserts that each figure cell shows a drawn plotly figure in its output,
that the control is a visible ipywidgets slider, that moving it with the keyboard redraws its output
(the widget talks to the kernel), and that no cell shows a traceback. It also checks that JupyterLab left
the committed notebook as it was (no outputs saved into it, no ``labs/.ipynb_checkpoints``).

The server is started by ``tests/lab_server.py`` (named so as not to shadow the ``jupyter_server`` package).
With ``ZLAB_SCREENSHOT_DIR`` set, the screenshots ``lab-01.png`` and ``lab-02.png`` (the first control and the
cells before it, 1400x1000) are written there; ``docs/`` holds a copy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from lab_server import LabServer, running_lab

ROOT = Path(__file__).resolve().parents[1]
LABS = ROOT / "labs"
# The two labs whose first control comes soonest (about 12 s and 8 s of kernel time with ZLAB_SMALL_RUN=1).
NOTEBOOKS = ["01_flow_matching.ipynb", "02_s3_dit.ipynb"]
VIEWPORT = {"width": 1400, "height": 1000}
TIMEOUT_MS = 240_000  # generous: the cells train two small MLPs, and the machine may be busy

# The open notebook's cells as the kernel left them: execution counts, output types, error text.
CELL_STATE_JS = """(last) => {
  const panel = window.jupyterapp.shell.currentWidget;
  return panel.content.widgets.slice(0, last + 1).map((cell, index) => {
    const outputs = cell.model.type === 'code' ? cell.model.outputs.toJSON() : [];
    return {index, type: cell.model.type, count: cell.model.type === 'code' ? cell.model.executionCount : null,
            errors: outputs.filter(o => o.output_type === 'error').map(o => `${o.ename}: ${o.evalue}`)};
  });
}"""
# True once the kernel is idle and every code cell up to `last` has run, or as soon as one shows an error
# (JupyterLab then drops the rest of the queue, so waiting longer would only time out).
RUN_FINISHED_JS = """(last) => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = panel.content.widgets.slice(0, last + 1).filter(cell => cell.model.type === 'code');
  if (cells.some(cell => cell.model.outputs.toJSON().some(o => o.output_type === 'error'))) return true;
  return panel.sessionContext.session?.kernel?.status === 'idle' && cells.every(cell => cell.model.executionCount !== null);
}"""
# The notebook is open with a live, idle kernel (the kernelspec in the .ipynb is `python3`, the venv's own).
KERNEL_READY_JS = """(path) => {
  const panel = window.jupyterapp?.shell?.currentWidget;
  return panel?.context?.path === path && panel.context.isReady && panel.content.widgets.length > 0
         && panel.sessionContext.session?.kernel?.status === 'idle';
}"""


def _plan(notebook: Path) -> tuple[int, list[int], int]:
    """The first cell that shows an ipywidgets control, the code cells up to it that show a figure, and the
    number of cells."""
    cells = json.loads(notebook.read_text())["cells"]
    code = [(i, "".join(c["source"])) for i, c in enumerate(cells) if c["cell_type"] == "code"]
    control = next(i for i, source in code if "widgets.interact(" in source)
    figures = [i for i, source in code if i <= control and ".show()" in source]
    return control, figures, len(cells)


def _saved_outputs(notebook: Path) -> list:
    """The outputs and execution counts stored in the .ipynb: a save from JupyterLab would change them."""
    cells = json.loads(notebook.read_text())["cells"]
    return [(c.get("execution_count"), c.get("outputs")) for c in cells if c["cell_type"] == "code"]


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    # ZLAB_SMALL_RUN: the labs' quick path (fewer training steps); HF_HUB_OFFLINE: no download attempts.
    env = {"ZLAB_SMALL_RUN": "1", "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    with running_lab(LABS, tmp_path_factory.mktemp("jupyterlab"), env) as server:
        yield server


def _show_cell(page, index: int):
    """Scroll cell ``index`` into view, as a reader does to see it, and return its node.

    The notebook scrolls itself (its windowed list may keep off-screen cells out of the DOM, depending on the
    "windowingMode" setting); JupyterLab 4 tags each cell node with its position.
    """
    page.evaluate("(index) => window.jupyterapp.shell.currentWidget.content.scrollToItem(index, 'center')", index)
    cell = page.locator(f'.jp-Notebook .jp-Cell[data-windowed-list-index="{index}"]')
    cell.scroll_into_view_if_needed()
    return cell


def _drawn_figure(scope):
    # the figure's main svg layer, with at least one drawn trace (scatter, bar, heatmap, image or treemap);
    # jupyterlab-plotly puts .js-plotly-plot on the output node itself, hence the two forms
    plot = ":is(.jp-OutputArea-output.js-plotly-plot, .jp-OutputArea-output .js-plotly-plot)"
    return scope.locator(f"{plot} .main-svg").filter(has=scope.page.locator("g.trace, g.hm, g.im, g.treemap"))


def _assert_no_traceback(page):
    # JupyterLab shows error outputs, and tracebacks printed to stderr, as stderr-typed outputs
    tracebacks = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]',
                              has_text="Traceback")
    assert tracebacks.count() == 0, tracebacks.first.inner_text()


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_lab_renders_figures_and_a_live_widget(lab_server: LabServer, browser, notebook, tmp_path):
    shots = Path(os.environ.get("ZLAB_SCREENSHOT_DIR", tmp_path))
    control, figures, n_cells = _plan(LABS / notebook)
    assert figures, f"{notebook}: no figure before the first control at cell {control}"
    # what JupyterLab could write into labs/: outputs into the notebook (a save), a checkpoint folder
    saved_before = _saved_outputs(LABS / notebook)
    checkpoints_before = (LABS / ".ipynb_checkpoints").exists()

    page = browser.new_page(viewport=VIEWPORT)
    console = []  # shown when an assertion fails: a widget or plotly extension that did not load logs here
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda err: console.append(f"pageerror: {err}"))
    try:
        page.goto(lab_server.lab_url(notebook))
        page.wait_for_function(KERNEL_READY_JS, arg=notebook, timeout=TIMEOUT_MS, polling=250)

        # Run > Run All Above Selected Cell, with the cell after the control selected: cells 0..control run
        # (Run > Run All Cells when the control is the last cell). Not awaited: the waits below watch the cells.
        page.evaluate("""([next, command]) => {
          const app = window.jupyterapp;
          const notebook = app.shell.currentWidget.content;
          notebook.activeCellIndex = next;
          void app.commands.execute(command);
        }""", [control + 1, "notebook:run-all-above"] if control + 1 < n_cells else [control, "notebook:run-all-cells"])
        page.wait_for_function(RUN_FINISHED_JS, arg=control, timeout=TIMEOUT_MS, polling=500)

        cells = page.evaluate(CELL_STATE_JS, control)
        errors = {c["index"]: c["errors"] for c in cells if c["errors"]}
        assert not errors, f"{notebook}: cells raised {errors}"
        assert all(c["count"] is not None for c in cells if c["type"] == "code"), cells
        _assert_no_traceback(page)

        for index in figures:
            cell = _show_cell(page, index)
            figure = _drawn_figure(cell).first
            figure.wait_for(state="visible", timeout=60_000)
            box = figure.bounding_box()
            assert box and box["width"] > 200 and box["height"] > 100, (notebook, index, box)

        # The control: a visible slider whose interact() output holds a drawn figure.
        cell = _show_cell(page, control)
        output = cell.locator(".jp-OutputArea-output .widget-output")
        slider = cell.locator(".jp-OutputArea-output .widget-slider").first
        slider.wait_for(state="visible", timeout=60_000)
        assert output.count() == 1, f"{notebook}: interact() output not found in cell {control}"
        _drawn_figure(output).first.wait_for(state="visible", timeout=60_000)

        # Screenshot before touching the control: the lab as the reader first sees it. The control's cell
        # sits at the bottom of the window, with the text and figures before it above.
        cell.evaluate("node => node.scrollIntoView({block: 'end'})")
        page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")  # painted
        shot = shots / f"lab-{notebook[:2]}.png"
        page.screenshot(path=str(shot))

        # One step right on the slider's handle: the kernel reruns the function and the output changes.
        before = output.inner_text()
        handle = slider.locator(".noUi-handle").first
        handle.focus()
        handle.press("ArrowRight")
        page.wait_for_function("([node, before]) => node.innerText !== before && node.querySelector('.main-svg')",
                               arg=[output.element_handle(), before], timeout=60_000, polling=250)
        _assert_no_traceback(page)
    except Exception as error:
        raise AssertionError(f"{error}\nbrowser console: {console[-20:]}\nserver log:\n{lab_server.log_tail(2000)}") \
            from error
    finally:
        page.close()
        lab_server.shutdown_kernels()

    assert shot.stat().st_size > 20_000
    assert _saved_outputs(LABS / notebook) == saved_before, f"JupyterLab saved outputs into labs/{notebook}"
    assert (LABS / ".ipynb_checkpoints").exists() == checkpoints_before, "JupyterLab wrote labs/.ipynb_checkpoints"
