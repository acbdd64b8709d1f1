"""JupyterLab started as a user starts it (``jupyter lab labs/``), but sandboxed for a test.

The server runs from this interpreter, headless, on a free port with a random token. Its config, data,
runtime and IPython directories are fresh folders under the test's tmp dir, so nothing from the user's
``~/.jupyter`` (settings, workspaces, extensions, kernels) leaks in; the venv's kernelspec and
labextensions (ipywidgets, plotly) are still found, because Jupyter always searches ``sys.prefix``.

Two things keep the committed notebooks clean while the browser runs them: autosave is off in the
user settings, and checkpoints are written to the tmp dir rather than ``.ipynb_checkpoints/`` next to the
notebook. The notebooks themselves are served in place, so a kernel starts in ``labs/`` exactly as it
does for a user (lab 02 finds the repository root from its working directory).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

# User settings written before the server starts (JupyterLab reads them from user_settings_dir).
USER_SETTINGS = {
    # no save while the test runs: the outputs must never reach the committed .ipynb
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    # no "fetch Jupyter news?" toast over the notebook, and no request to the internet
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LabServer:
    """A running ``jupyter lab``: ``url`` ends with ``/``; ``log`` collects its stdout and stderr."""

    url: str
    token: str
    proc: subprocess.Popen
    log: Path

    def lab_url(self, notebook: str) -> str:
        # ?reset: start from the default layout even if a workspace was saved by an earlier page
        return f"{self.url}lab/tree/{notebook}?reset&token={self.token}"

    def api(self, method: str, path: str, timeout: float = 10):
        request = urllib.request.Request(f"{self.url}api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def shutdown_kernels(self) -> None:
        """Shut every kernel down through the REST API, as the "Shut Down All Kernels" menu item does."""
        for kernel in self.api("GET", "kernels"):
            self.api("DELETE", f"kernels/{kernel['id']}", timeout=60)


def _write_user_settings(settings_dir: Path) -> None:
    for plugin, values in USER_SETTINGS.items():
        package, name = plugin.rsplit("/", 1)
        path = settings_dir / package / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def _wait_until_answering(server: LabServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with code {server.proc.returncode}:\n{server.log_tail()}")
        try:
            server.api("GET", "status", timeout=5)
            return
        except (OSError, urllib.error.URLError):
            time.sleep(0.5)
    raise TimeoutError(f"jupyter lab did not answer within {timeout:.0f} s:\n{server.log_tail()}")


def _stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM (the server shuts its kernels down), wait, then SIGKILL the server's process group.

    Kernels run in sessions of their own (jupyter_client starts them so), out of reach of the group kill;
    a kernel whose server is gone notices and exits by itself (ipykernel polls its parent).
    """
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # start_new_session made the server a group leader
            proc.wait(timeout)


@contextmanager
def running_lab(root_dir: Path, tmp_dir: Path, env: dict[str, str] | None = None,
                timeout: float = 120) -> Iterator[LabServer]:
    """Start ``jupyter lab`` serving ``root_dir``, yield it once it answers, and stop it (and its kernels) after.

    ``env`` is added to this process's environment for the server and the kernels it starts.
    """
    dirs = {name: tmp_dir / name for name in ("config", "data", "runtime", "ipython", "checkpoints")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    settings_dir = dirs["config"] / "lab" / "user-settings"
    _write_user_settings(settings_dir)

    port, token = free_port(), secrets.token_hex(16)
    full_env = {**os.environ, **(env or {}),
                "JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_DATA_DIR": str(dirs["data"]),
                "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]), "IPYTHONDIR": str(dirs["ipython"])}
    full_env.pop("JUPYTER_PATH", None)  # a user's extra data path would bring its own kernels and extensions
    full_env.pop("JUPYTER_CONFIG_PATH", None)
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
        f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        "--LabApp.expose_app_in_browser=True",           # window.jupyterapp: run commands, read cell models
        f"--LabApp.user_settings_dir={settings_dir}",
        f"--FileCheckpoints.checkpoint_dir={dirs['checkpoints']}",  # absolute: not labs/.ipynb_checkpoints
        # offline and quiet: no news feed, no update check, no PyPI extension manager, no terminals
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False",
        "--ServerApp.log_level=WARN",
    ]
    log = tmp_dir / "jupyter-lab.log"
    with open(log, "w") as log_file:
        proc = subprocess.Popen(command, env=full_env, stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = LabServer(f"http://127.0.0.1:{port}/", token, proc, log)
    try:
        _wait_until_answering(server, timeout)
        yield server
    finally:
        try:
            if proc.poll() is None:
                with suppress(OSError):  # a server that no longer answers is stopped by _stop all the same
                    server.shutdown_kernels()
        finally:
            _stop(proc)
