"""Fixtures for the interop tests: one per real peer, found or installed by :mod:`.peers`.

A missing peer skips the tests that need it with an install hint, and fails them under
``CI=true`` (:func:`.peers.missing_peer`): add new peers' fixtures here the same way.
"""

from __future__ import annotations

import pytest

from .peers import require_executable


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of the Chromium executable, for Playwright's ``executable_path``."""
    return require_executable("chromium", "install it with: apt-get install chromium")
