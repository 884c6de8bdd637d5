"""Fixtures for the threaded driver's tests: TLS, Unix sockets, and a check that every test
leaves no thread and no socket behind. Helpers are in :mod:`sync_helpers`.

Every wait in these tests has a timeout in ``MS`` units, so that a hang fails the test.
"""

from __future__ import annotations

import gc
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="session")
def certificate_authority() -> Any:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    return ca, ca.issue_cert("localhost", "127.0.0.1", "::1")


@pytest.fixture(scope="session")
def server_ssl(certificate_authority: Any) -> ssl.SSLContext:
    _, certificate = certificate_authority
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_ssl(certificate_authority: Any) -> ssl.SSLContext:
    ca, _ = certificate_authority
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    return context


@pytest.fixture
def unix_path(tmp_path: Path) -> Iterator[str]:
    if not hasattr(socket, "AF_UNIX"):  # pragma: no cover
        pytest.skip("no Unix sockets on this platform")
    path = tmp_path / "ws.sock"
    if len(os.fsencode(path)) > 100:  # pragma: no cover
        pytest.skip(f"temporary path too long for a Unix socket: {path}")
    yield str(path)
