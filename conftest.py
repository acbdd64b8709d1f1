"""Test-session environment for tests/ and labs/ alike: offline hub, notebooks in small-run mode."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ZLAB_SMALL_RUN", "1")
# OpenMP threads that busy-wait collapse throughput when another process holds a core (a shared CI machine);
# set before torch loads its OpenMP runtime here, and inherited by every kernel, app and rank the tests start.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
