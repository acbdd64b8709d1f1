"""The labs, executed and kept with their outputs: ``zlab labs --execute`` runs every notebook at full size from the
shipped checkpoints and saves what it shows, with a record of how it was made in the notebook's metadata.

The record (``metadata["zlab"]``) holds when the lab ran, on which commit, how long it took, and a fingerprint of each
shipped checkpoint folder the lab read (its weights and records; an audit hook in the kernel notes which), so a test
can say which labs are stale after a checkpoint changes. Plotly figures are saved as plotly's own mimetype (``application/vnd.plotly.v1+json``, which JupyterLab
renders), never as HTML with an embedded plotly.js, and their images as PNG, so that the labs stay small.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

from zlab.paths import SMALL_RUN_ENV, repo_root

PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"
FINGERPRINTED = ("*.safetensors", "*.json")  # what a lab's outputs are computed from (cards are derived text)
SIZE_LIMIT_BYTES = 10 * 2**20  # all labs together, executed
REAL_MODEL_LAB = "09_real_zimage.ipynb"


def lab_paths(root: Path | None = None, names: list[str] | None = None) -> list[Path]:
    """The lab notebooks in order, or those whose file name starts with one of ``names`` (e.g. ``["03", "07"]``)."""
    labs = sorted((root or repo_root()).joinpath("labs").glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return labs
    chosen = [p for p in labs if any(p.name.startswith(n) for n in names)]
    unknown = [n for n in names if not any(p.name.startswith(n) for p in labs)]
    if unknown:
        raise ValueError(f"no lab starts with {unknown}; the labs are {[p.name for p in labs]}")
    return chosen


def folder_fingerprint(folder: Path) -> str:
    """SHA-256 over the relative paths and bytes of a folder's weights and records (sorted, so order-free)."""
    digest = hashlib.sha256()
    files = sorted({f for pattern in FINGERPRINTED for f in folder.rglob(pattern) if f.is_file()})
    for f in files:
        digest.update(str(f.relative_to(folder)).encode() + b"\0")
        digest.update(hashlib.sha256(f.read_bytes()).digest())
    return digest.hexdigest()[:16]


def checkpoint_fingerprints(root: Path | None = None) -> dict[str, str]:
    """``{folder name: fingerprint}`` for every shipped checkpoint folder under ``checkpoints/``."""
    folders = sorted(p for p in (root or repo_root()).joinpath("checkpoints").iterdir() if p.is_dir())
    return {p.name: folder_fingerprint(p) for p in folders}


# Run before the lab's first cell and after its last, then dropped from the saved notebook: an audit hook notes every
# checkpoint folder the kernel opens or lists, so the record fingerprints only the folders this lab read; and
# ``widgets.interact`` draws its view once at the controls' starting values (live widgets do not survive a save).
_WATCH = """import os as _os, sys as _sys
_zlab_read = set()
def _zlab_audit(event, args, _marker=_os.sep + "checkpoints" + _os.sep):
    if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes, _os.PathLike)):
        path = _os.path.abspath(_os.fsdecode(args[0]))
        if _marker in path:
            _zlab_read.add(path.split(_marker, 1)[1].split(_os.sep, 1)[0])
_sys.addaudithook(_zlab_audit)
import ipywidgets as _widgets


def _zlab_interact_once(_function=None, **controls):
    # a saved notebook holds no live widgets: draw the view once, at the controls' starting values
    def draw(function):
        print("(a live kernel shows controls here; drawn once at their starting values)")
        function(**{k: c.value for k, c in controls.items() if isinstance(c, _widgets.ValueWidget)})
    return draw(_function) if _function is not None else draw


_widgets.interact = _zlab_interact_once"""
_REPORT = "import json as _json; print(_json.dumps(sorted(_zlab_read)))"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False).stdout.strip()


def _png_source(trace: dict) -> None:
    """An RGB(A) uint8 ``go.Image`` trace's pixels (plotly's ``{"bdata", "dtype", "shape"}``) as a PNG data URI in
    ``source``, which plotly.js draws the same: the Shapes images are flat colours, so a tenth of the bytes."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    z = trace.get("z")
    if not (isinstance(z, dict) and z.get("dtype") == "u1" and {"zmin", "zmax", "colormodel"}.isdisjoint(trace)):
        return
    pixels = np.frombuffer(base64.b64decode(z["bdata"]), np.uint8).reshape([int(n) for n in z["shape"].split(",")])
    if pixels.ndim != 3 or pixels.shape[-1] not in (3, 4):
        return
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, format="PNG", optimize=True)
    trace["source"] = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    del trace["z"]


def compact_outputs(nb) -> None:
    """Drop the HTML copy of any output that also carries plotly's mimetype (it would embed plotly.js), and store
    the figures' images as PNG."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIMETYPE in data:
                data.pop("text/html", None)
                for trace in data[PLOTLY_MIMETYPE].get("data", []):
                    if trace.get("type") == "image":
                        _png_source(trace)


def execute_lab(path: Path, small: bool = False, timeout: int | None = None) -> dict:
    """Run the notebook at ``path`` top to bottom in a fresh kernel (in ``labs/``), at full size unless ``small``,
    and save it in place with its outputs and ``metadata["zlab"]``; returns that record."""
    import nbformat
    from nbclient import NotebookClient

    root = path.resolve().parents[1]
    nb = nbformat.read(path, as_version=4)
    env_before = {k: os.environ.get(k) for k in (SMALL_RUN_ENV, "PLOTLY_RENDERER")}
    os.environ["PLOTLY_RENDERER"] = "plotly_mimetype"  # plotly's own mimetype, no plotly.js in the file
    if small:
        os.environ[SMALL_RUN_ENV] = "1"
    else:
        os.environ.pop(SMALL_RUN_ENV, None)
    started, clock = datetime.now(timezone.utc), time.perf_counter()
    nb.cells = [nbformat.v4.new_code_cell(_WATCH), *nb.cells, nbformat.v4.new_code_cell(_REPORT)]
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        report = nb.cells[-1]
        read = json.loads("".join(o.get("text", "") for o in report.outputs if o.get("name") == "stdout"))
    finally:
        nb.cells = nb.cells[1:-1]
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    compact_outputs(nb)
    import torch

    record = {
        "executed": started.isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - clock, 1),
        "small_run": small,
        "commit": _git(root, "rev-parse", "HEAD"),
        "uncommitted_changes": bool(_git(root, "status", "--porcelain", "--", "zlab", "configs")),  # code and configs
        "checkpoints": {name: fp for name, fp in checkpoint_fingerprints(root).items() if name in read},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
                   f"{'CUDA' if torch.cuda.is_available() else 'no GPU'}",
    }
    nb.metadata["zlab"] = record
    tmp = path.with_suffix(".ipynb.tmp")
    nbformat.write(nb, tmp)
    tmp.replace(path)  # atomic: a cut run never leaves half a notebook
    return record


def lab_record(path: Path) -> dict | None:
    """The record :func:`execute_lab` saved in the notebook at ``path`` (``metadata["zlab"]``), or None."""
    return json.loads(path.read_text()).get("metadata", {}).get("zlab")


def stale_labs(root: Path | None = None) -> dict[str, str]:
    """``{lab: why}`` for every lab that carries no full-size outputs from the current checkpoints (of the folders
    it read when it ran)."""
    current, out = checkpoint_fingerprints(root), {}
    for path in lab_paths(root):
        record = lab_record(path)
        if record is None:
            out[path.name] = "never executed (no metadata.zlab)"
        elif record.get("small_run"):
            out[path.name] = "executed at small size"
        else:  # only the folders the lab read count
            changed = sorted(k for k, fp in record.get("checkpoints", {}).items() if current.get(k) != fp)
            if changed:
                out[path.name] = f"executed from other checkpoints: {', '.join(changed)} changed since"
    return out


def run_minutes(path: Path) -> str | None:
    """How long the lab's last full-size execution took, as the README's lab table writes it (``"11.0 min"``)."""
    record = lab_record(path) or {}
    return f"{record['wall_s'] / 60:.1f} min" if "wall_s" in record else None


def labs_size(root: Path | None = None) -> int:
    """Bytes of all lab notebooks together."""
    return sum(p.stat().st_size for p in lab_paths(root))
