"""environment.yml and pyproject.toml describe one dependency set; the console script is wired."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pip_section(text: str) -> list[str]:
    lines, inside = [], False
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if line.strip() == "- pip:":
            inside = True
        elif inside and line.strip().startswith("- "):
            lines.append(line.strip()[2:].strip())
        elif inside and line.strip():
            inside = False
    return lines


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    expected = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    pip = _pip_section((ROOT / "environment.yml").read_text())
    assert "-e ." in pip, "environment.yml must install the package itself"
    assert set(pip) - {"-e ."} == expected
    assert "python=3.11" in (ROOT / "environment.yml").read_text()


def test_cli_info_prints_the_real_count():
    out = subprocess.run([sys.executable, "-m", "zlab.cli", "info"], capture_output=True, text=True, check=True)
    assert "6,154,908,736" in out.stdout


def test_cli_build_and_sample(tmp_path):
    from PIL import Image

    from zlab.cli import main

    assert main(["build-tiny", "--out", str(tmp_path / "p"), "--size", "micro"]) == 0
    png = tmp_path / "a.png"
    assert main(["sample", "--pipeline", str(tmp_path / "p"), "--prompt", "a small red square at the top left",
                 "--steps", "2", "--s", "2", "--width", "96", "--out", str(png)]) == 0
    assert Image.open(png).size == (96, 64)
    assert main(["sample", "--pipeline", str(tmp_path / "p"), "--prompt", "x", "--width", "90",
                 "--out", str(png)]) == 2
