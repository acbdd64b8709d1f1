"""A browser for the real-browser tests, found the way a user has one.

In order: ``$ZLAB_BROWSER`` (an executable), ``chromium`` / ``chromium-browser`` / ``google-chrome`` on
``PATH``, then Playwright's own installed Chromium (``playwright install chromium``). With none of them the
browser tests skip, saying how to get one; ``ZLAB_REQUIRE_BROWSER=1`` (set by ``.ci/run``) turns that skip
into a failure, so CI always runs them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

BROWSER_ENV = "ZLAB_BROWSER"
REQUIRE_ENV = "ZLAB_REQUIRE_BROWSER"
ON_PATH = ("chromium", "chromium-browser", "google-chrome")
HOW_TO_GET_ONE = (f"no browser for the browser tests: set {BROWSER_ENV}=/path/to/chromium, put one of {', '.join(ON_PATH)} "
                  "on PATH (Debian/Ubuntu: `sudo apt-get install chromium`), or run `playwright install chromium`")
# Headless flags for a closed network: background services would try (and fail) to reach Google's hosts.
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]


def find_browser(playwright_default: str | None = None) -> str | None:
    """The browser executable to drive, or None. ``playwright_default`` is where Playwright keeps its own
    Chromium (``sync_playwright().chromium.executable_path``); it counts only when the file exists.

    Raises FileNotFoundError when ``$ZLAB_BROWSER`` is set but names no executable file.
    """
    named = os.environ.get(BROWSER_ENV, "").strip()
    if named:
        found = shutil.which(named)
        if found is None:
            raise FileNotFoundError(f"{BROWSER_ENV}={named!r} is not an executable file or a command on PATH")
        return found
    for name in ON_PATH:
        if found := shutil.which(name):
            return found
    if playwright_default and Path(playwright_default).is_file():
        return playwright_default
    return None


def browser_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")
