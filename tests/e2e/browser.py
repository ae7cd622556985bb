"""Headless Chromium for the page tests: Debian's build, driven by Playwright.

Playwright's own browser downloads are never used (`playwright install` is
not part of any setup): the tests launch the `chromium` on PATH, or `$CHROMIUM`.
"""

from __future__ import annotations

import os
import shutil

import pytest

# Without the networking switches Chromium keeps calling home, and on a
# closed network those calls fail (and slow its start) over and over.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# The report of a test's call phase, kept on the item for its fixtures' teardown.
CALL_REPORT = pytest.StashKey[pytest.TestReport]()


def chromium_path() -> str:
    """The Chromium binary; skips without one, except under CI, where that fails."""
    path = shutil.which(os.environ.get("CHROMIUM") or "chromium")
    if path is None:
        message = "chromium not found (install Debian's chromium, or set CHROMIUM)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def failed(node: pytest.Item) -> bool:
    """Whether the test itself (not its set-up) failed."""
    report = node.stash.get(CALL_REPORT, None)
    return report is not None and report.failed
