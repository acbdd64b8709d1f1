"""The browser tests find a browser as a user has one, and say how to get one where there is none."""

import os
import stat

import pytest
from browser import HOW_TO_GET_ONE, browser_required, find_browser


def _executable(path):
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_order_env_then_path_then_playwrights_own(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("ZLAB_BROWSER", raising=False)
    own = _executable(tmp_path / "playwright-chrome")
    assert find_browser(None) is None and find_browser(str(tmp_path / "absent")) is None
    assert find_browser(own) == own
    on_path = _executable(bin_dir / "google-chrome")
    assert find_browser(own) == on_path
    earlier = _executable(bin_dir / "chromium-browser")
    assert find_browser(own) == earlier  # chromium-browser comes before google-chrome
    named = _executable(tmp_path / "my-chrome")
    monkeypatch.setenv("ZLAB_BROWSER", named)
    assert find_browser(own) == named
    monkeypatch.setenv("ZLAB_BROWSER", str(tmp_path / "nothing"))
    with pytest.raises(FileNotFoundError, match="ZLAB_BROWSER="):
        find_browser(own)


def test_the_skip_message_says_how_to_get_one_and_ci_requires_it(monkeypatch):
    assert "apt-get install chromium" in HOW_TO_GET_ONE and "playwright install chromium" in HOW_TO_GET_ONE
    monkeypatch.setenv("ZLAB_REQUIRE_BROWSER", "1")
    assert browser_required()
    monkeypatch.setenv("ZLAB_REQUIRE_BROWSER", "0")
    assert not browser_required()
    monkeypatch.delenv("ZLAB_REQUIRE_BROWSER")
    assert not browser_required() and os.environ.get("ZLAB_REQUIRE_BROWSER") is None
