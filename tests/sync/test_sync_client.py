from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sync_helpers import MS, echo, run_server, uri

from socketeer.exceptions import InvalidStatus, InvalidURI
from socketeer.protocol.frames import CloseCode
from socketeer.sync import connect


def test_invalid_arguments() -> None:
    with pytest.raises(InvalidURI):
        connect("http://localhost/")
    with pytest.raises(ValueError):
        connect("ws://localhost/", compression="brotli")
    with pytest.raises(ValueError):
        connect("ws://localhost/", ssl=ssl.create_default_context())


def test_connection_refused() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(OSError):
        connect(f"ws://127.0.0.1:{port}/", open_timeout=1)


def test_open_timeout() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts in the kernel, never answers
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            connect(f"ws://127.0.0.1:{listener.getsockname()[1]}/", open_timeout=50 * MS)
        assert time.monotonic() - started < 1
    finally:
        listener.close()


def test_rejected_handshake() -> None:
    def process_request(connection: Any, request: Any) -> Any:
        return connection.respond(403, "no\n")

    with run_server(echo, process_request=process_request) as server:
        with pytest.raises(InvalidStatus) as info:
            connect(uri(server))
        assert info.value.response.status_code == 403


def test_subprotocol_and_headers() -> None:
    seen: list[Any] = []

    def handler(ws: Any) -> None:
        seen.append((ws.subprotocol, ws.request.headers.get("X-Token")))

    with run_server(handler, subprotocols=["chat"]) as server:
        with connect(
            uri(server), subprotocols=["chat"], additional_headers={"X-Token": "t"}
        ) as ws:
            assert ws.subprotocol == "chat"
            assert ws.local_address is not None
    assert seen == [("chat", "t")]


def test_tls(server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext) -> None:
    with run_server(echo, host="localhost", ssl=server_ssl) as server:
        port = server.socket.getsockname()[1]
        with connect(f"wss://localhost:{port}/", ssl=client_ssl) as ws:
            ws.send("secret")
            assert ws.recv(timeout=1) == "secret"
            assert isinstance(ws.socket, ssl.SSLSocket)
        assert ws.close_code == CloseCode.NORMAL_CLOSURE


def test_tls_verifies_by_default(server_ssl: ssl.SSLContext) -> None:
    with run_server(echo, host="localhost", ssl=server_ssl) as server:
        port = server.socket.getsockname()[1]
        with pytest.raises(ssl.SSLCertVerificationError):
            connect(f"wss://localhost:{port}/", open_timeout=1)


def test_unix_socket(unix_path: str) -> None:
    with run_server(echo, host=None, unix=unix_path) as server:
        assert server.socket.family == socket.AF_UNIX
        with connect("ws://localhost/", unix=unix_path) as ws:
            ws.send("over unix")
            assert ws.recv(timeout=1) == "over unix"


@contextlib.contextmanager
def websockets_server(**kwargs: Any) -> Iterator[int]:
    """A ``websockets`` asyncio echo server running in a background thread."""
    websockets_server = pytest.importorskip("websockets.asyncio.server")
    loop = asyncio.new_event_loop()
    started = threading.Event()
    port: list[int] = []
    stop: list[asyncio.Future[None]] = []

    async def handler(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        stop.append(loop.create_future())
        async with websockets_server.serve(handler, "127.0.0.1", 0, **kwargs) as server:
            port.append(server.sockets[0].getsockname()[1])
            started.set()
            await stop[0]

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),))
    thread.start()
    try:
        assert started.wait(2)
        yield port[0]
    finally:
        loop.call_soon_threadsafe(stop[0].set_result, None)
        thread.join(2)
        loop.close()


@pytest.mark.parametrize("compression", ["deflate", None])
def test_interop_with_websockets_server(compression: str | None) -> None:
    with websockets_server(compression=compression) as port:
        with connect(f"ws://127.0.0.1:{port}/", compression=compression) as ws:
            for message in ["text", b"\x00binary", "x" * 100_000]:
                ws.send(message)
                assert ws.recv(timeout=1) == message
            ws.send(["frag", "ments"])
            assert ws.recv(timeout=1) == "fragments"
            assert ws.ping().wait(1)
            negotiated = ws.response is not None and ws.response.headers.get(
                "Sec-WebSocket-Extensions"
            )
            assert bool(negotiated) is (compression is not None)
        assert ws.close_code == CloseCode.NORMAL_CLOSURE


def test_logs_open_and_close(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "socketeer.client"):
        with run_server(echo) as server:
            ws = connect(uri(server))
            ws.close(4000)
    messages = [r.getMessage() for r in caplog.records if r.name == "socketeer.client"]
    assert messages == ["connection open to 127.0.0.1", "connection closed with code 4000"]
