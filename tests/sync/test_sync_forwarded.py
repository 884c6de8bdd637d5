"""Behind reverse proxies, the threaded server: ``remote_address`` and ``proxy_address``
from ``X-Forwarded-For`` when the peer is one of ``trusted_proxies``. The parsing itself is
tested, without sockets, in ``tests/asyncio/test_forwarded.py``.

The client plays the proxy: it connects from 127.0.0.1 and sends the header a proxy would.
"""

from __future__ import annotations

import ast
import logging
from typing import Any

import pytest
from sync_helpers import run_server, uri

from socketeer.protocol.http11 import Request, Response
from socketeer.sync import ServerConnection, connect, serve

CLIENT = "203.0.113.7"


def echo_address(connection: ServerConnection) -> None:
    """Send the connection's ``remote_address`` and ``proxy_address``."""
    connection.send(repr((connection.remote_address, connection.proxy_address)))


def addresses(server_uri: str, *lines: str, **options: Any) -> tuple[Any, Any]:
    """Connect with these ``X-Forwarded-For`` lines; what :func:`echo_address` says."""
    extra = [("X-Forwarded-For", line) for line in lines]
    with connect(server_uri, additional_headers=extra, **options) as client:
        message = client.recv(timeout=5)
        assert isinstance(message, str)
        local = client.local_address
    remote, proxy = ast.literal_eval(message)
    if proxy is not None:
        assert proxy == local  # the proxy is the socket's peer: the client of the test
    return remote, proxy


def test_trusted_proxy(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "socketeer.server"):
        with run_server(echo_address, trusted_proxies=["127.0.0.1"]) as server:
            remote, proxy = addresses(uri(server), "6.6.6.6", f"{CLIENT}, 127.0.0.1")
            assert remote == (CLIENT, 0)
            assert proxy[0] == "127.0.0.1"
            # Without X-Forwarded-For, the proxy's connection is its own.
            remote, no_proxy = addresses(uri(server))
            assert remote[0] == "127.0.0.1" and remote[1] != 0
            assert no_proxy is None
    # Read from the right, past the trusted 127.0.0.1: 6.6.6.6, further left, is not believed.
    assert f"connection open from 6.6.6.6 via 127.0.0.1:{proxy[1]}" not in caplog.messages
    assert f"connection open from {CLIENT} via 127.0.0.1:{proxy[1]}" in caplog.messages
    assert f"connection closed from {CLIENT} via 127.0.0.1:{proxy[1]} with code 1000" in (
        caplog.messages
    )


@pytest.mark.parametrize("trusted", [[], ["10.0.0.0/8", "::1", "unix"]])
def test_untrusted_peer(trusted: list[str]) -> None:
    with run_server(echo_address, trusted_proxies=trusted) as server:
        remote, proxy = addresses(uri(server), CLIENT)
    assert remote[0] == "127.0.0.1" and remote[1] != 0
    assert proxy is None


def test_invalid_header_ignored(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "socketeer.server"):
        with run_server(echo_address, trusted_proxies=["127.0.0.1"]) as server:
            remote, proxy = addresses(uri(server), f"{CLIENT}, 10.0.0.1:http")
    assert remote[0] == "127.0.0.1" and remote[1] != 0
    assert proxy is None
    (message,) = [m for m in caplog.messages if m.startswith("ignored X-Forwarded-For")]
    assert message.endswith("invalid address in X-Forwarded-For: '10.0.0.1:http'")


def test_process_request_sees_the_client() -> None:
    seen: list[Any] = []

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        seen.append((connection.remote_address, connection.proxy_address))
        return None

    with run_server(
        echo_address, process_request=process_request, trusted_proxies=["127.0.0.0/8"]
    ) as server:
        addresses(uri(server), CLIENT)
    ((remote, proxy),) = seen
    assert remote == (CLIENT, 0)
    assert proxy[0] == "127.0.0.1"


@pytest.mark.parametrize(("trusted", "forwarded"), [(["unix"], True), (["::1"], False)])
def test_unix(unix_path: str, trusted: list[str], forwarded: bool) -> None:
    with run_server(echo_address, host=None, unix=unix_path, trusted_proxies=trusted):
        remote, proxy = addresses("ws://localhost/", CLIENT, unix=unix_path)
    if forwarded:
        assert (remote, proxy) == ((CLIENT, 0), "")
    else:
        assert (remote, proxy) == ("", None)


def test_checked_by_serve() -> None:
    with pytest.raises(ValueError, match="entry '10.0.0.1/8' is not an IP address"):
        serve(echo_address, "127.0.0.1", 0, trusted_proxies=["10.0.0.1/8"])
