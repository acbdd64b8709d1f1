"""Test-session environment for tests/ and labs/ alike: offline hub, notebooks in small-run mode."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ZLAB_SMALL_RUN", "1")
