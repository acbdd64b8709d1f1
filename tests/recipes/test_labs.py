"""``zlab labs``: a lab executed in place keeps its outputs (plotly as its own mimetype, no plotly.js), records the
checkpoints it ran from, and turns stale when a checkpoint's weights change."""

from __future__ import annotations

import base64
import io
import json

import nbformat
import numpy as np
import pytest
from PIL import Image

from zlab.recipes.labs import PLOTLY_MIMETYPE, checkpoint_fingerprints, execute_lab, lab_paths, stale_labs


@pytest.fixture()
def tiny_repo(tmp_path):
    (tmp_path / "labs").mkdir()
    (tmp_path / "checkpoints" / "net").mkdir(parents=True)
    (tmp_path / "checkpoints" / "net" / "model.safetensors").write_bytes(b"weights v1")
    (tmp_path / "checkpoints" / "net" / "README.md").write_text("a card")
    nb = nbformat.v4.new_notebook()
    (tmp_path / "checkpoints" / "unread").mkdir()
    (tmp_path / "checkpoints" / "unread" / "model.safetensors").write_bytes(b"other weights")
    nb.cells = [nbformat.v4.new_code_cell("import os\nprint('small' if os.environ.get('ZLAB_SMALL_RUN') else 'full')\n"
                                          "print(len(open('../checkpoints/net/model.safetensors', 'rb').read()))"),
                nbformat.v4.new_code_cell("import ipywidgets as widgets\nimport numpy as np\nimport plotly.graph_objects as go\n"
                                          "def show(top=3.0):\n    go.Figure(go.Scatter(y=np.array([1, top, 2])), layout_title=f'top {top}').show()\n"
                                          "widgets.interact(show, top=widgets.FloatSlider(value=4.0, min=0, max=9));"),
                nbformat.v4.new_code_cell("pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 14\n"
                                          "go.Figure(go.Image(z=pixels)).show()")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "labs" / "01_toy.ipynb")
    return tmp_path


@pytest.mark.slow
def test_an_executed_lab_keeps_outputs_and_its_record(tiny_repo, monkeypatch):
    monkeypatch.setenv("ZLAB_SMALL_RUN", "1")  # the full run must not inherit the tests' switch
    path = lab_paths(tiny_repo)[0]
    assert stale_labs(tiny_repo) == {"01_toy.ipynb": "never executed (no metadata.zlab)"}
    record = execute_lab(path)
    saved = json.loads(path.read_text())
    assert saved["metadata"]["zlab"] == record and record["small_run"] is False and record["wall_s"] > 0
    assert len(saved["cells"]) == 3 and "".join(saved["cells"][0]["outputs"][0]["text"]) == "full\n10\n"
    assert "drawn once" in saved["cells"][1]["outputs"][0]["text"][0]  # an interact is drawn at its start values
    figure = saved["cells"][1]["outputs"][1]["data"]
    assert "top 4.0" in json.dumps(figure[PLOTLY_MIMETYPE])
    assert PLOTLY_MIMETYPE in figure and "text/html" not in figure
    assert "plotly.js" not in path.read_text() and "<script" not in path.read_text()
    image = saved["cells"][2]["outputs"][0]["data"][PLOTLY_MIMETYPE]["data"][0]  # stored as a PNG, same pixels
    assert "z" not in image and image["source"].startswith("data:image/png;base64,")
    png = Image.open(io.BytesIO(base64.b64decode(image["source"].split(",", 1)[1])))
    np.testing.assert_array_equal(np.asarray(png), np.arange(18, dtype=np.uint8).reshape(2, 3, 3) * 14)
    assert record["checkpoints"] == {"net": checkpoint_fingerprints(tiny_repo)["net"]}  # only the folder it read
    assert stale_labs(tiny_repo) == {}
    (tiny_repo / "checkpoints" / "unread" / "model.safetensors").write_bytes(b"changed, but never read")
    assert stale_labs(tiny_repo) == {}
    (tiny_repo / "checkpoints" / "net" / "README.md").write_text("a card, re-rendered")  # derived text: still current
    assert stale_labs(tiny_repo) == {}
    (tiny_repo / "checkpoints" / "net" / "model.safetensors").write_bytes(b"weights v2")
    assert "net changed" in stale_labs(tiny_repo)["01_toy.ipynb"]


def test_lab_names_must_exist(tiny_repo):
    with pytest.raises(ValueError, match="no lab starts with"):
        lab_paths(tiny_repo, ["42"])
