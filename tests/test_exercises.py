"""The labs' exercises: every check refuses the wrong answers it lists, a stub is "not done yet" without raising, and
every lab but the real-model one has at least two exercises laid out as Exercise / reader's stub / collapsed solution."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from zlab.exercises import EXERCISES, NotDone, Wrong, check, load_all

LABS = Path(__file__).resolve().parents[1] / "labs"
REAL_MODEL_LAB = "09_real_zimage.ipynb"
KEY = re.compile(r"""check\(\s*["']([^"']+)["']""")

load_all()


def lab_exercises(path: Path) -> list[tuple[str, dict, dict]]:
    """(key, reader's cell, solution cell) for each markdown cell headed "Exercise" in the lab at ``path``."""
    cells = json.loads(path.read_text())["cells"]
    found = []
    for i, cell in enumerate(cells):
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and re.match(r"#+ .*\bExercise\b", text):
            reader, solution = cells[i + 1], cells[i + 2]
            keys = KEY.findall("".join(reader["source"]))
            assert keys, f"{path.name}: the cell after '{text.splitlines()[0]}' calls no check(...)"
            found.append((keys[0], reader, solution))
    return found


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_each_wrong_answer_is_refused(key):
    for wrong in EXERCISES[key].wrong:
        with pytest.raises(Wrong):
            EXERCISES[key].check(wrong())
        assert check(key, wrong()) is False


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_the_stub_is_not_done_and_does_not_raise(key, capsys):
    with pytest.raises(NotDone):
        EXERCISES[key].check(...)
    assert check(key, ...) is False
    assert "not done yet" in capsys.readouterr().out


def test_a_reader_function_still_returning_the_stub_is_not_done():
    key = next(iter(sorted(EXERCISES)))
    assert check(key, lambda *args, **kwargs: ...) is False


@pytest.mark.parametrize("lab", sorted(p.name for p in LABS.glob("*.ipynb") if p.name != REAL_MODEL_LAB))
def test_every_lab_has_two_exercises_with_a_stub_and_a_collapsed_solution(lab):
    exercises = lab_exercises(LABS / lab)
    assert len(exercises) >= 2, f"{lab} has {len(exercises)} exercises; every lab but the real-model one needs two"
    for key, reader, solution in exercises:
        assert key in EXERCISES, f"{lab}: {key} is not a registered exercise (zlab/exercises/lab*.py)"
        assert key.split(".")[0] == lab[:2], f"{lab}: {key} belongs to another lab"
        assert "..." in "".join(reader["source"]), f"{lab}: the reader's cell of {key} is not a `...` stub"
        assert solution["cell_type"] == "code" and solution["metadata"].get("jupyter", {}).get("source_hidden"), \
            f"{lab}: the solution of {key} must follow its stub in a collapsed code cell (source hidden)"
        assert re.search(rf"""assert check\(\s*["']{re.escape(key)}["']""", "".join(solution["source"])), \
            f"{lab}: the solution cell of {key} must `assert check({key!r}, ...)`"


def test_every_registered_exercise_is_in_a_lab():
    keys = {key for lab in LABS.glob("*.ipynb") for key, _, _ in lab_exercises(lab)}
    assert set(EXERCISES) <= keys, f"registered but in no lab: {sorted(set(EXERCISES) - keys)}"
