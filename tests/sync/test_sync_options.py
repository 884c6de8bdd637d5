"""The threaded connect() and serve() take the options of the asyncio ones, with the same
defaults; and the Unix socket file a server made goes away with it."""

from __future__ import annotations

import inspect
import os
import socket
from typing import Any

import pytest
from sync_helpers import echo, run_server, uri

import socketeer
import socketeer.asyncio
import socketeer.client
import socketeer.sync
from socketeer.options import WRITE_LIMIT

# Options of the asyncio driver that the threaded one cannot take.
ASYNCIO_ONLY = {
    # Passed to loop.create_connection() or loop.create_server().
    "kwargs",
}


def options(function: Any) -> dict[str, Any]:
    parameters = inspect.signature(function).parameters
    return {name: p.default for name, p in parameters.items() if name != "self"}


def test_connect_has_every_option_of_asyncio() -> None:
    asyncio_options = options(socketeer.asyncio.connect.__init__)
    sync_options = options(socketeer.sync.connect)
    # backoff is for reconnecting: sync.reconnect takes it.
    expected = {k: v for k, v in asyncio_options.items() if k not in ASYNCIO_ONLY | {"backoff"}}
    assert sync_options == expected


def test_reconnect_has_every_option_of_asyncio_but_sock() -> None:
    asyncio_options = options(socketeer.asyncio.connect.__init__)
    reconnect_options = options(socketeer.sync.reconnect.__init__)
    # A socket serves a single connection.
    expected = {k: v for k, v in asyncio_options.items() if k not in ASYNCIO_ONLY | {"sock"}}
    assert reconnect_options == expected


def test_serve_has_every_option_of_asyncio() -> None:
    asyncio_options = options(socketeer.asyncio.serve.__init__)
    sync_options = options(socketeer.sync.serve)
    expected = {k: v for k, v in asyncio_options.items() if k not in ASYNCIO_ONLY}
    assert sync_options == expected


def test_write_limit() -> None:
    seen: list[int] = []

    def handler(ws: socketeer.sync.ServerConnection) -> None:
        seen.append(ws.options.write_limit)

    with run_server(handler, write_limit=1000) as server:
        with socketeer.sync.connect(uri(server), write_limit=2000) as ws:
            assert ws.options.write_limit == 2000
        with socketeer.sync.connect(uri(server)) as ws:
            assert ws.options.write_limit == WRITE_LIMIT
    assert seen == [1000, 1000]
    with pytest.raises(ValueError):
        socketeer.sync.connect("ws://127.0.0.1:1/", write_limit=-1)
    with pytest.raises(ValueError):
        socketeer.sync.serve(handler, "127.0.0.1", 0, write_limit=-1)


def test_unix_socket_file_removed_on_shutdown(unix_path: str) -> None:
    with run_server(echo, host=None, unix=unix_path):
        assert os.path.exists(unix_path)
        with socketeer.sync.connect("ws://localhost/", unix=unix_path) as ws:
            ws.send("hi")
            assert ws.recv(timeout=1) == "hi"
    assert not os.path.exists(unix_path)
    # Serving on it again works.
    with run_server(echo, host=None, unix=unix_path):
        assert os.path.exists(unix_path)
    assert not os.path.exists(unix_path)


def test_unix_socket_file_replaced_is_left_alone(unix_path: str) -> None:
    server = socketeer.sync.serve(echo, unix=unix_path)
    os.remove(unix_path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(unix_path)  # another server's socket now
        server.shutdown()
        assert os.path.exists(unix_path)
    os.remove(unix_path)


def test_given_unix_socket_is_left_alone(unix_path: str) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(unix_path)
    sock.listen()
    server = socketeer.sync.serve(echo, sock=sock)
    server.shutdown()
    assert os.path.exists(unix_path)
    os.remove(unix_path)


def test_one_policy_for_both_clients() -> None:
    assert socketeer.Backoff is socketeer.asyncio.Backoff is socketeer.sync.Backoff
    assert socketeer.sync.Backoff is socketeer.client.Backoff
    assert socketeer.asyncio.client.is_transient is socketeer.client.is_transient
    assert socketeer.asyncio.client.MAX_REDIRECTS == socketeer.client.MAX_REDIRECTS
