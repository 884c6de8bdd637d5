"""Interoperability of socketeer's threaded client with Node's ws server (``node/server.mjs``).

The asyncio client's tests are in :mod:`.test_node_ws`; these run the same kinds of exchange
through ``socketeer.sync``: messages of every length encoding, with and without compression,
fragments both ways, many messages in flight, closing codes, pings, and reconnection.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import socketeer.sync
from socketeer.exceptions import ConnectionClosed, ConnectionClosedOK
from socketeer.protocol.frames import OP_BINARY, OP_CONT, OP_TEXT

from .peers import (
    MESSAGES,
    TIMEOUT,
    NodeServer,
    extension_names,
    many_messages,
    node_executable,
)

DEFLATE = ["permessage-deflate"]
COMPRESSION = [pytest.param("deflate", id="deflate"), pytest.param(None, id="no_compression")]
NODE_COMPRESSION = [
    pytest.param([], id="deflate"),
    pytest.param(["--deflate-options", '{"threshold": 1024}'], id="deflate_over_1_KiB"),
    pytest.param(["--no-deflate"], id="no_compression"),
]
CLOSES = [
    pytest.param(1000, "", id="1000"),
    pytest.param(1001, "going away", id="1001"),
    pytest.param(4000, "r" * 123, id="4000_longest_reason"),
    pytest.param(4999, "privé ✓", id="4999_utf8_reason"),
]


@pytest.fixture(scope="session")
def node() -> str:
    """The ``node`` executable, with the ws package installed."""
    return node_executable()


@pytest.fixture
def ws_server(node: str) -> Iterator[Callable[..., NodeServer]]:
    """Start ws servers with arguments for ``server.mjs``; stop them after the test."""
    servers: list[NodeServer] = []

    def start(*args: str) -> NodeServer:
        server = NodeServer(node, *args)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def node_args(compression: str | None) -> list[str]:
    return [] if compression == "deflate" else ["--no-deflate"]


@pytest.mark.parametrize("server_args", NODE_COMPRESSION)
@pytest.mark.parametrize("client_compression", COMPRESSION)
def test_echo(
    ws_server: Callable[..., NodeServer], server_args: list[str], client_compression: str | None
) -> None:
    """Text stays text, binary stays binary, every byte arrives; one message in three goes
    uncompressed."""
    server = ws_server(*server_args)
    large = [b"\x07" * 1_048_576, "socketeer ❤ ws " * 50_000]
    with socketeer.sync.connect(server.url(), compression=client_compression) as client:
        for i, message in enumerate([*MESSAGES, *large]):
            client.send(message, compress=i % 3 != 0)
            echoed = client.recv(timeout=TIMEOUT)
            assert type(echoed) is type(message)
            assert echoed == message
        extensions = extension_names(client)
    both = "--no-deflate" not in server_args and client_compression is not None
    assert extensions == (DEFLATE if both else [])
    assert server.expect("open")["extensions"] == ",".join(extensions)
    assert server.expect("close")["code"] == 1000


@pytest.mark.parametrize("compression", COMPRESSION)
def test_many_messages_in_flight(
    ws_server: Callable[..., NodeServer], compression: str | None
) -> None:
    """Hundreds of messages in flight both ways arrive whole and in order, while both sides
    pause and resume."""
    server = ws_server(*node_args(compression))
    messages = many_messages()
    with socketeer.sync.connect(server.url(), compression=compression) as client:
        sender = threading.Thread(target=lambda: [client.send(m) for m in messages])
        sender.start()
        try:
            received = [client.recv(timeout=TIMEOUT) for _ in messages]
        finally:
            sender.join(TIMEOUT)
    assert received == messages


@pytest.mark.parametrize("compression", COMPRESSION)
@pytest.mark.parametrize(
    "fragments",
    [
        pytest.param(["héllo", "", " wörld", " €𝄞"], id="text"),
        pytest.param([b"\x00\x01", b"", b"\xfe\xff" * 1000], id="binary"),
    ],
)
def test_sends_fragmented_message(
    ws_server: Callable[..., NodeServer], compression: str | None, fragments: list[Any]
) -> None:
    server = ws_server(*node_args(compression))
    whole = "".join(fragments) if isinstance(fragments[0], str) else b"".join(fragments)
    with socketeer.sync.connect(server.url(), compression=compression) as client:
        client.send(fragments)
        assert client.recv(timeout=TIMEOUT) == whole


@pytest.mark.parametrize("compression", COMPRESSION)
@pytest.mark.parametrize(
    "message",
    [
        pytest.param("hé€", id="text_cut_inside_utf8"),
        pytest.param(bytes(range(256)) * 10, id="binary"),
    ],
)
def test_receives_fragmented_message(
    ws_server: Callable[..., NodeServer], compression: str | None, message: str | bytes
) -> None:
    server = ws_server(*node_args(compression))
    data = message.encode() if isinstance(message, str) else message
    opcode = OP_TEXT if isinstance(message, str) else OP_BINARY
    url = server.url("/fragment")
    with socketeer.sync.connect(url, compression=compression) as client:
        client.send(message)
        frames = [client.recv_frame(timeout=TIMEOUT) for _ in range(3)]
        assert [frame.opcode for frame in frames] == [opcode, OP_CONT, OP_CONT]
        assert [frame.fin for frame in frames] == [False, False, True]
        assert b"".join(frame.data for frame in frames) == data
        client.send(message)
        assert client.recv(timeout=TIMEOUT) == message


@pytest.mark.parametrize(("code", "reason"), CLOSES)
def test_server_closes(ws_server: Callable[..., NodeServer], code: int, reason: str) -> None:
    server = ws_server()
    query = urllib.parse.urlencode({"code": code, "reason": reason})
    with socketeer.sync.connect(server.url(f"/close?{query}")) as client:
        with pytest.raises(ConnectionClosed) as raised:
            client.recv(timeout=TIMEOUT)
        assert isinstance(raised.value, ConnectionClosedOK) is (code in (1000, 1001))
        assert client.wait_closed(TIMEOUT)
    assert (client.close_code, client.close_reason) == (code, reason)


@pytest.mark.parametrize(("code", "reason"), CLOSES)
def test_client_closes(ws_server: Callable[..., NodeServer], code: int, reason: str) -> None:
    server = ws_server()
    with socketeer.sync.connect(server.url()) as client:
        client.close(code, reason)
    close = server.expect("close")
    assert (close["code"], close["reason"]) == (code, reason)
    assert client.close_code == code


def test_pings_both_ways(ws_server: Callable[..., NodeServer]) -> None:
    server = ws_server()
    with socketeer.sync.connect(server.url("/ping?text=from%20ws")) as client:
        waiter = client.ping(b"from socketeer")
        assert waiter.wait(TIMEOUT)
        assert waiter.latency is not None
        client.send("after pings")
        assert client.recv(timeout=TIMEOUT) == "after pings"
    # ws' ping was answered automatically.
    assert server.expect("pong")["text"] == "from ws"


def test_reconnect_after_server_closes(ws_server: Callable[..., NodeServer]) -> None:
    server = ws_server()
    seen = 0
    backoff = socketeer.sync.Backoff(initial=0.01, maximum=0.05)
    for client in socketeer.sync.reconnect(server.url("/close?code=1001"), backoff=backoff):
        with pytest.raises(ConnectionClosedOK):
            client.recv(timeout=TIMEOUT)
        seen += 1
        if seen == 3:
            break
    assert [server.expect("open")["path"] for _ in range(3)] == ["/close"] * 3
