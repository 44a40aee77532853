"""What the browser tests share: the Chromium they drive (Debian's ``chromium`` through Playwright; nothing is
downloaded). Without Playwright or a Chromium, a test that asks for ``chromium`` is skipped, saying why."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def find_chromium() -> str | None:
    for candidate in (os.environ.get("SLRNET_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (shutil.which(candidate) or Path(candidate).is_file()):
            return shutil.which(candidate) or candidate
    return None


@pytest.fixture(scope="module")
def chromium():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("no browser test: Playwright is not installed (make test-browser installs it)")
    path = find_chromium()
    if path is None:
        pytest.skip("no browser test: no Chromium found (install Debian's 'chromium', or set SLRNET_CHROMIUM)")
    return path

