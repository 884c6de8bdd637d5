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


# A real redis-server (tests/redis_server.py), for the brokers of tests/pubsub.

import redis_server as redis_server_module  # noqa: E402


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[redis_server_module.RedisServer]:
    """A ``redis-server`` of its own for the test, on a free loopback port, that can be
    killed and restarted; skips (fails under ``CI=true``) without redis-server or the
    ``redis`` package."""
    server = redis_server_module.RedisServer(redis_server_module.require_redis(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: redis_server_module.RedisServer) -> str:
    """The URL of :func:`redis_server`."""
    return redis_server.url
