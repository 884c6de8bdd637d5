"""Fixtures for the threaded driver's tests: a check that every test leaves no thread and
no socket behind (TLS and Unix socket fixtures are in tests/conftest.py). Helpers are in
:mod:`sync_helpers`.

Every wait in these tests has a timeout in ``MS`` units, so that a hang fails the test.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest
from sync_helpers import MS


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    """Fail a test that leaves a thread running; collect garbage to surface unclosed
    sockets as ResourceWarning, which the project's warning filter makes fatal."""
    before = set(threading.enumerate())
    yield
    for thread in set(threading.enumerate()) - before:
        thread.join(2000 * MS)
    leftover = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not leftover, f"threads still running at the end of the test: {leftover}"
    gc.collect()
