"""A Shapes profile is one whole set: configs and the checkpoints made with them, never half of each."""

import shutil
from pathlib import Path

import pytest
from gpu_set import gpu_profile_teacher

from zlab.paths import make_command, shapes_set

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A repository root with the real configs and the shipped CPU teacher and student, nothing of the GPU profile."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    for name in ("shapes-teacher", "shapes-student"):
        shutil.copytree(ROOT / "checkpoints" / name, tmp_path / "checkpoints" / name)
    for var in ("ZLAB_PROFILE", "ZLAB_TEACHER", "ZLAB_STUDENT"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_cpu_profile_is_the_shipped_set(repo, monkeypatch):
    monkeypatch.setenv("ZLAB_PROFILE", "cpu")
    chosen = shapes_set(("teacher", "student"), root=repo)
    assert chosen.profile == "cpu" and chosen.teacher == repo / "checkpoints/shapes-teacher"
    assert chosen.student == repo / "checkpoints/shapes-student" and chosen.image_size == 64
    assert chosen.config("shapes-ladd.toml") == repo / "configs/shapes-ladd.toml" and not chosen.note


def test_asked_for_gpu_profile_without_its_checkpoints_names_the_command(repo, monkeypatch):
    monkeypatch.setenv("ZLAB_PROFILE", "gpu")
    with pytest.raises(FileNotFoundError, match=r"ZLAB_PROFILE=gpu zlab make-teacher && ZLAB_PROFILE=gpu zlab make-student"):
        shapes_set(("teacher", "student"), root=repo)
    gpu_profile_teacher(repo / "runs/gpu/checkpoints/shapes-teacher")
    with pytest.raises(FileNotFoundError, match=r"student is not trained yet.*`ZLAB_PROFILE=gpu zlab make-student`"):
        shapes_set(("teacher", "student"), root=repo)
    chosen = shapes_set(("teacher",), root=repo)  # the student is optional here: LADD starts from the teacher
    assert chosen.profile == "gpu" and chosen.student is None and chosen.image_size == 128
    assert chosen.config("shapes-ladd.toml") == repo / "configs/gpu/shapes-ladd.toml"


def test_cuda_implied_gpu_profile_falls_back_to_the_whole_cpu_set(repo, monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    chosen = shapes_set(("teacher",), root=repo)
    assert chosen.profile == "cpu" and chosen.teacher == repo / "checkpoints/shapes-teacher"
    assert chosen.config("shapes-teacher.toml") == repo / "configs/shapes-teacher.toml"  # not configs/gpu/
    assert "ZLAB_PROFILE=gpu zlab make-teacher" in chosen.note and "as a whole" in capsys.readouterr().err
    gpu_profile_teacher(repo / "runs/gpu/checkpoints/shapes-teacher")
    chosen = shapes_set(("teacher",), root=repo)
    assert chosen.profile == "gpu" and chosen.teacher == repo / "runs/gpu/checkpoints/shapes-teacher" and not chosen.note


def test_a_named_teacher_must_fit_the_profiles_configs(repo, monkeypatch):
    monkeypatch.setenv("ZLAB_PROFILE", "gpu")
    monkeypatch.setenv("ZLAB_TEACHER", str(repo / "checkpoints/shapes-teacher"))  # the 64-px, 4-block CPU teacher
    with pytest.raises(ValueError, match=r"samples at 64 px.*configs/gpu/shapes-teacher.toml is for 128 px.*ZLAB_PROFILE=cpu"):
        shapes_set(("teacher",), root=repo)
    monkeypatch.setenv("ZLAB_TEACHER", str(gpu_profile_teacher(repo / "four-blocks", n_layers=4)))
    with pytest.raises(ValueError, match=r"has 4 blocks but .* taps blocks \[1, 3, 5, 7\]"):
        shapes_set(("teacher",), root=repo)
    monkeypatch.setenv("ZLAB_TEACHER", str(repo / "missing"))
    with pytest.raises(FileNotFoundError, match="ZLAB_TEACHER='.*missing': no pipeline folder"):
        shapes_set(("teacher",), root=repo)


def test_make_command_and_bad_need():
    assert make_command(["student", "teacher"], "cpu") == "ZLAB_PROFILE=cpu zlab make-teacher && ZLAB_PROFILE=cpu zlab make-student"
    with pytest.raises(ValueError, match="among"):
        shapes_set(("vae",))


def test_a_student_of_another_profile_is_refused(repo, monkeypatch):
    monkeypatch.setenv("ZLAB_PROFILE", "gpu")
    gpu_profile_teacher(repo / "runs/gpu/checkpoints/shapes-teacher")
    monkeypatch.setenv("ZLAB_STUDENT", str(repo / "checkpoints/shapes-student"))  # the 64-px CPU student
    with pytest.raises(ValueError, match=r"samples at 128 px but student .* at 64 px"):
        shapes_set(("teacher",), root=repo)
