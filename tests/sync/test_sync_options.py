"""The threaded connect() and serve() take the options of the asyncio ones (the same
ClientOptionsDict and ServerOptionsDict, so the same defaults: those of ClientOptions and
ServerOptions); and the Unix socket file a server made goes away with it."""

from __future__ import annotations

import inspect
import os
import re
import socket
import sys
import typing
from typing import Any

import pytest
from sync_helpers import echo, run_server, uri

import socketeer
import socketeer.asyncio
import socketeer.client
import socketeer.sync
from socketeer.options import WRITE_LIMIT, ClientOptionsDict, ServerOptionsDict


def keyword_options(function: Any) -> Any:
    """The TypedDict of ``function``'s ``**options: Unpack[...]``."""
    (parameter,) = [
        p for p in inspect.signature(function).parameters.values() if p.kind is p.VAR_KEYWORD
    ]
    match = re.fullmatch(r"Unpack\[(\w+)\]", parameter.annotation)
    assert match is not None, parameter.annotation
    return getattr(sys.modules[function.__module__], match[1])


def test_connect_has_every_option_of_asyncio() -> None:
    asyncio_options = keyword_options(socketeer.asyncio.connect.__init__)
    assert keyword_options(socketeer.sync.connect) is ClientOptionsDict
    assert keyword_options(socketeer.sync.reconnect.__init__) is ClientOptionsDict
    # The asyncio client takes the same options, and the arguments of its event loop.
    asyncio_hints = typing.get_type_hints(asyncio_options)
    sync_hints = typing.get_type_hints(ClientOptionsDict)
    assert {name: asyncio_hints[name] for name in sync_hints} == sync_hints


def test_serve_has_every_option_of_asyncio() -> None:
    asyncio_params = inspect.signature(socketeer.asyncio.serve.__init__).parameters
    sync_params = inspect.signature(socketeer.sync.serve).parameters
    assert list(asyncio_params) == ["self", *sync_params]
    for name in ["host", "port", "process_request", "process_response"]:
        assert asyncio_params[name].default == sync_params[name].default, name
    asyncio_options = keyword_options(socketeer.asyncio.serve.__init__)
    assert keyword_options(socketeer.sync.serve) is ServerOptionsDict
    # The asyncio server takes the same options, and the arguments of its event loop.
    asyncio_hints = typing.get_type_hints(asyncio_options)
    sync_hints = typing.get_type_hints(ServerOptionsDict)
    assert {name: asyncio_hints[name] for name in sync_hints} == sync_hints


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
