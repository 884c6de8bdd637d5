"""Fixtures that every test directory may use: TLS contexts made for the tests, and Unix
socket paths."""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def certificate_authority() -> Any:
    """A certificate authority made for the tests, and a certificate it issued for
    localhost, 127.0.0.1 and ::1."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    return ca, ca.issue_cert("localhost", "127.0.0.1", "::1")


@pytest.fixture(scope="session")
def server_ssl(certificate_authority: Any) -> ssl.SSLContext:
    """A server TLS context with the test certificate."""
    _, certificate = certificate_authority
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_ssl(certificate_authority: Any) -> ssl.SSLContext:
    """A client TLS context that trusts the test certificate authority (and no other)."""
    ca, _ = certificate_authority
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    return context


@pytest.fixture
def unix_path(tmp_path: Path) -> Iterator[str]:
    """A path for a Unix socket (short enough for AF_UNIX's limit of about 100 bytes)."""
    if not hasattr(socket, "AF_UNIX"):  # pragma: no cover
        pytest.skip("no Unix sockets on this platform")
    path = tmp_path / "ws.sock"
    if len(os.fsencode(path)) > 100:  # pragma: no cover
        pytest.skip(f"temporary path too long for a Unix socket: {path}")
    yield str(path)
