from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import pytest
from sync_helpers import MS, echo, run_server, uri

from socketeer.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus
from socketeer.protocol.frames import CloseCode
from socketeer.sync import ServerConnection, connect, serve


def test_handler_exception_logged_and_1011(caplog: pytest.LogCaptureFixture) -> None:
    def handler(ws: ServerConnection) -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, "socketeer.server"):
        with run_server(handler) as server, connect(uri(server)) as ws:
            with pytest.raises(ConnectionClosedError):
                ws.recv(timeout=1)
            assert ws.close_code == CloseCode.INTERNAL_ERROR
    assert "connection handler failed" in caplog.text


def test_process_request_answers_http() -> None:
    def process_request(connection: ServerConnection, request: Any) -> Any:
        if request.path == "/health":
            return connection.respond(200, "ok\n")
        return None

    with run_server(echo, process_request=process_request) as server:
        port = server.socket.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"ok\n")


def test_bad_request_gets_400() -> None:
    with run_server(echo) as server:
        port = server.socket.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
        assert data.startswith(b"HTTP/1.1 4")


def test_open_timeout_drops_silent_client() -> None:
    with run_server(echo, open_timeout=50 * MS) as server:
        port = server.socket.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            assert sock.recv(4096) == b""  # the server hung up
        time.sleep(10 * MS)
        assert not server.connections


def test_shutdown_closes_connections_with_1001() -> None:
    ready = threading.Event()

    def handler(ws: ServerConnection) -> None:
        ready.set()
        for _ in ws:
            pass

    with run_server(handler) as server:
        ws = connect(uri(server))
        assert ready.wait(1)
        assert len(server.connections) == 1
    with pytest.raises(ConnectionClosedOK):
        ws.recv(timeout=1)
    assert ws.close_code == CloseCode.GOING_AWAY
    ws.close()


def test_shutdown_waits_for_busy_handlers() -> None:
    finished: list[bool] = []
    ready = threading.Barrier(4)

    def handler(ws: ServerConnection) -> None:
        ready.wait(1)
        time.sleep(100 * MS)  # busy, not reading
        finished.append(True)

    with run_server(handler, close_timeout=1) as server:
        clients = [connect(uri(server)) for _ in range(3)]
        ready.wait(1)
    assert finished == [True, True, True]
    for ws in clients:
        ws.close()
        assert ws.close_code == CloseCode.GOING_AWAY
    names = [t.name for t in threading.enumerate() if t.name.startswith("socketeer-")]
    assert names == []


def test_serve_and_shutdown_without_serve_forever() -> None:
    with serve(echo, "127.0.0.1", 0) as server:
        assert server.fileno() >= 0


@pytest.mark.parametrize("compression", ["deflate", None])
def test_interop_websocket_client(compression: str | None) -> None:
    websocket = pytest.importorskip("websocket")
    with run_server(echo, compression=compression) as server:
        ws = websocket.create_connection(uri(server), timeout=1)
        try:
            ws.send("from websocket-client")
            assert ws.recv() == "from websocket-client"
            ws.send_binary(b"\x01\x02")
            assert ws.recv() == b"\x01\x02"
            ws.ping(b"p")
        finally:
            ws.close()


def test_shutdown_ends_handler_blocked_on_a_peer_that_does_not_read() -> None:
    # The handler fills the socket's buffers towards a client that never reads, so it blocks
    # in send() holding its connection: shutdown must still end within close_timeout.
    sending = threading.Event()
    ended: list[BaseException | None] = []

    def handler(ws: ServerConnection) -> None:
        sending.set()
        try:
            while True:
                ws.send(b"x" * 65536)
        except BaseException as exc:
            ended.append(exc)

    server = serve(handler, "127.0.0.1", 0, close_timeout=0.2, compression=None)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.socket.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert sending.wait(1)
        time.sleep(50 * MS)  # long enough for the buffers to fill; the test holds either way
        done = threading.Event()
        stopper = threading.Thread(target=lambda: (server.shutdown(), done.set()), daemon=True)
        stopper.start()
        assert done.wait(5), "shutdown hung on a handler blocked in send()"
    assert len(ended) == 1
    names = [t.name for t in threading.enumerate() if t.name.startswith("socketeer-")]
    assert names == []


def test_beyond_max_connections_503() -> None:
    with run_server(echo, max_connections=1) as server:
        with connect(uri(server)):
            with pytest.raises(InvalidStatus) as info:
                connect(uri(server))
            assert info.value.response.status_code == 503
            assert info.value.response.headers["Retry-After"] == "1"
        deadline = time.monotonic() + 5
        while server.connections and time.monotonic() < deadline:
            time.sleep(10 * MS)
        with connect(uri(server)) as ws:
            ws.send("hello")
            assert ws.recv(timeout=1) == "hello"
