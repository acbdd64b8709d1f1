import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def tiny_pipe():
    """One randomly initialised tiny pipeline shared by the tests (read-only)."""
    from zlab.tiny import build_tiny_pipeline

    return build_tiny_pipeline(seed=0)
