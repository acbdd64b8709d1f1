"""The GPU profile's code path, run in CI on CPU at tiny dims so that it cannot rot.

With ``ZLAB_PROFILE=gpu`` the labs read ``configs/gpu/`` (128 px, LADD taps blocks 1, 3, 5, 7) and the GPU
profile's checkpoints. Here that set's teacher is a random tiny transformer of the same shape (128 px, 8 blocks),
named by ``ZLAB_TEACHER``, so the labs that read the set run end to end exactly as on a GPU, only smaller.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from gpu_set import gpu_profile_teacher

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_teacher(tmp_path_factory):
    return gpu_profile_teacher(tmp_path_factory.mktemp("gpu-profile") / "shapes-teacher")


@pytest.mark.slow
@pytest.mark.parametrize("lab", ["04_features.ipynb", "05_ladd.ipynb"])
def test_gpu_profile_lab_runs_on_cpu_at_tiny_dims(lab, gpu_teacher):
    env = {**os.environ, "ZLAB_PROFILE": "gpu", "ZLAB_TEACHER": str(gpu_teacher), "ZLAB_SMALL_RUN": "1"}
    env.pop("ZLAB_STUDENT", None)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "--nbval-lax", "-p", "no:cacheprovider",
                             str(ROOT / "labs" / lab)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
