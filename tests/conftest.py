"""Shared fixtures: the tiny pipeline, the tiny teacher and its synthetic data, a browser."""

import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def tiny_pipe():
    """One randomly initialised tiny pipeline shared by the tests (read-only)."""
    from zlab.tiny import build_tiny_pipeline

    return build_tiny_pipeline(seed=0)


@pytest.fixture(scope="module")
def teacher_and_data(tmp_path_factory, tiny_pipe):
    """The tiny pipeline saved as a teacher folder, and its synthetic data (tests/tiny_ladd.py); one per test module."""
    import tiny_ladd

    return tiny_ladd.teacher_and_data(tmp_path_factory.mktemp("ladd"), tiny_pipe)


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium driven by Playwright (see tests/browser.py for where it comes from)."""
    from browser import HOW_TO_GET_ONE, LAUNCH_ARGS, browser_required, find_browser
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        executable = find_browser(p.chromium.executable_path)
        if executable is None:
            if browser_required():
                pytest.fail(HOW_TO_GET_ONE + " (ZLAB_REQUIRE_BROWSER is set, so this is a failure)")
            pytest.skip(HOW_TO_GET_ONE)
        chromium = p.chromium.launch(executable_path=executable, headless=True, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()
