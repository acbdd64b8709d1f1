"""The labs in the repository are kept executed: each carries full-size outputs made from the shipped checkpoints it
read, all of them together stay small, no figure embeds plotly.js, and the README's lab table gives each lab's run
time as its record says."""

from __future__ import annotations

import re

from zlab.paths import repo_root
from zlab.recipes.labs import SIZE_LIMIT_BYTES, lab_paths, labs_size, run_minutes, stale_labs


def test_every_lab_is_executed_from_the_current_checkpoints():
    assert stale_labs() == {}, "re-run them: zlab labs --execute NN"


def test_the_labs_stay_small_and_embed_no_plotly_js():
    assert labs_size() < SIZE_LIMIT_BYTES
    for path in lab_paths():
        text = path.read_text()
        assert "plotly.js" not in text and "<script" not in text, path.name


def test_the_readme_gives_each_labs_recorded_run_time():
    readme = (repo_root() / "README.md").read_text()
    for path in lab_paths():
        row = re.search(rf"^\| \[{path.name[:2]} [^\n]*$", readme, re.M)
        assert row is not None, f"no README row for {path.name}"
        assert f"| {run_minutes(path)} |" in row.group(0), f"{path.name}: README should say {run_minutes(path)}"


def test_the_readme_gives_the_labs_size():
    readme = (repo_root() / "README.md").read_text()
    assert f"all nine notebooks together are {labs_size() / 2**20:.1f} MB" in readme
