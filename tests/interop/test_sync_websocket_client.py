"""Interoperability of socketeer's threaded server with websocket-client (``import websocket``).

websocket-client is a threaded client too, and knows no permessage-deflate: the server
serves it uncompressed. It sends and receives messages of every length encoding, fragments,
pings both ways, closing codes, subprotocols, and broadcasts.
"""

from __future__ import annotations

import contextlib
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import socketeer.sync
from socketeer.exceptions import ConnectionClosed
from socketeer.sync import ServerConnection

from .peers import MESSAGES, TIMEOUT, import_peer

websocket = import_peer("websocket", "pip install websocket-client")
ABNF = websocket.ABNF


@contextlib.contextmanager
def sync_server(handler: Any, **kwargs: Any) -> Iterator[str]:
    """A socketeer threaded server on a free loopback port; yield its ``ws://`` URI."""
    server = socketeer.sync.serve(handler, "127.0.0.1", 0, **kwargs)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"
    finally:
        server.shutdown()
        thread.join(TIMEOUT)
        assert not thread.is_alive()


def echo(ws: ServerConnection) -> None:
    for message in ws:
        ws.send(message)


@contextlib.contextmanager
def client(url: str, **options: Any) -> Iterator[Any]:
    ws = websocket.create_connection(url, timeout=TIMEOUT, **options)
    try:
        yield ws
    finally:
        ws.close()
        # After a closing handshake that the server started, websocket-client does not end
        # the TCP connection, which the server waits for (close_timeout): end it.
        ws.shutdown()


def test_echo() -> None:
    with sync_server(echo) as url, client(url) as ws:
        assert ws.getheaders().get("sec-websocket-extensions") is None
        for message in MESSAGES:
            if isinstance(message, str):
                ws.send(message)
            else:
                ws.send_binary(message)
            opcode, data = ws.recv_data()
            if isinstance(message, str):
                assert opcode == ABNF.OPCODE_TEXT
                assert data.decode() == message
            else:
                assert opcode == ABNF.OPCODE_BINARY
                assert data == message


def test_receives_fragmented_message_from_client() -> None:
    with sync_server(echo) as url, client(url) as ws:
        data = "héllo wörld €𝄞".encode()
        # Cut inside "é" and inside "€"; a ping between fragments, as RFC 6455 allows.
        ws.send_frame(ABNF.create_frame(data[:2], ABNF.OPCODE_TEXT, fin=0))
        ws.send_frame(ABNF.create_frame(data[2:15], ABNF.OPCODE_CONT, fin=0))
        ws.ping("in the middle")
        ws.send_frame(ABNF.create_frame(data[15:], ABNF.OPCODE_CONT, fin=1))
        assert ws.recv() == "héllo wörld €𝄞"


def test_sends_fragmented_message_to_client() -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send([b"\x00\x01", b"", b"\xfe\xff" * 1000])
        ws.send(["frag", "ments"])
        ws.recv(timeout=TIMEOUT)

    with sync_server(handler) as url, client(url) as ws:
        assert ws.recv() == b"\x00\x01" + b"\xfe\xff" * 1000
        assert ws.recv() == "fragments"
        ws.send("done")


def test_pings_both_ways() -> None:
    def handler(ws: ServerConnection) -> None:
        waiter = ws.ping(b"from socketeer")
        ws.send("pinged")
        assert waiter.wait(TIMEOUT)
        ws.send("ponged")
        ws.recv(timeout=TIMEOUT)

    with sync_server(handler) as url, client(url) as ws:
        ws.ping("from websocket-client")
        frames = []
        while len(frames) < 4:
            opcode, frame = ws.recv_data_frame(control_frame=True)
            frames.append((opcode, frame.data))
        # websocket-client answers the ping itself while it reads.
        assert (ABNF.OPCODE_PING, b"from socketeer") in frames
        assert (ABNF.OPCODE_PONG, b"from websocket-client") in frames
        assert [data for op, data in frames if op == ABNF.OPCODE_TEXT] == [b"pinged", b"ponged"]
        ws.send("done")


@pytest.mark.parametrize(("code", "reason"), [(1000, ""), (1001, "bye"), (4000, "privé ✓")])
def test_server_closes(code: int, reason: str) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.close(code, reason)

    with sync_server(handler) as url, client(url) as ws:
        opcode, frame = ws.recv_data_frame(control_frame=True)
        assert opcode == ABNF.OPCODE_CLOSE
        assert struct.unpack("!H", frame.data[:2])[0] == code
        assert frame.data[2:].decode() == reason


@pytest.mark.parametrize(("code", "reason"), [(1000, ""), (4000, "privé ✓")])
def test_client_closes(code: int, reason: str) -> None:
    closed: list[tuple[int | None, str | None]] = []
    done = threading.Event()

    def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            for _ in ws:
                pass
        closed.append((ws.close_code, ws.close_reason))
        done.set()

    with sync_server(handler) as url:
        with client(url) as ws:
            ws.close(code, reason.encode())
        assert done.wait(TIMEOUT)
    assert closed == [(code, reason)]


def test_subprotocol() -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send(ws.subprotocol or "none")
        ws.recv(timeout=TIMEOUT)

    with sync_server(handler, subprotocols=["chat", "superchat"]) as url:
        with client(url, subprotocols=["superchat"]) as ws:
            assert ws.getsubprotocol() == "superchat"
            assert ws.recv() == "superchat"
            ws.send("done")


def test_broadcast() -> None:
    connections: list[ServerConnection] = []
    lock = threading.Condition()

    def handler(ws: ServerConnection) -> None:
        with lock:
            connections.append(ws)
            lock.notify_all()
        ws.wait_closed()

    with sync_server(handler) as url:
        with contextlib.ExitStack() as stack:
            clients = [stack.enter_context(client(url)) for _ in range(3)]
            with lock:
                assert lock.wait_for(lambda: len(connections) == 3, TIMEOUT)
            for message in ["to all", b"\x00binary to all"]:
                assert socketeer.sync.broadcast(connections, message) == (3, 0)
                for ws in clients:
                    assert ws.recv() == message
