"""``socketeer.sync.broadcast``: encode once, write to each connection, wait for none."""

from __future__ import annotations

import contextlib
import functools
import socket
import ssl
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from typing import Any, TypeVar

import pytest
from sync_helpers import MS, run_server, uri

from socketeer.connection import BroadcastResult
from socketeer.protocol.base import Protocol, State
from socketeer.sync import ClientConnection, Server, ServerConnection, broadcast, connect

T = TypeVar("T")

SMALL_BUFFER = 4096  # bytes: kernel socket buffers small enough to fill quickly


class Registry:
    """Server connections, as their handlers register them; the handlers wait for the end."""

    def __init__(self, small_buffers: bool = False) -> None:
        self.connections: list[ServerConnection] = []
        self.condition = threading.Condition()
        self.small_buffers = small_buffers

    def handler(self, ws: ServerConnection) -> None:
        if self.small_buffers:
            ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
        with self.condition:
            self.connections.append(ws)
            self.condition.notify_all()
        ws.wait_closed()

    def peer_of(self, client: ClientConnection) -> ServerConnection:
        """The server side of ``client``."""
        with self.condition:
            assert self.condition.wait_for(
                lambda: any(c.remote_address == client.local_address for c in self.connections),
                2000 * MS,
            )
            return next(c for c in self.connections if c.remote_address == client.local_address)


@contextlib.contextmanager
def registry_server(
    small_buffers: bool = False, **kwargs: Any
) -> Iterator[tuple[Server, Registry]]:
    registry = Registry(small_buffers)
    with run_server(registry.handler, **kwargs) as server:
        yield server, registry


def slow_client(server: Server, scheme: str = "ws", **kwargs: Any) -> ClientConnection:
    """A client that stops reading after one message, with a small receive buffer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    sock.settimeout(1)
    sock.connect(server.socket.getsockname())
    return connect(uri(server, scheme), sock=sock, max_queue=1, **kwargs)


def within(function: Callable[[], T], timeout: float = 5000 * MS) -> T:
    """Run ``function`` in a thread; fail if it does not return within ``timeout``."""
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(function())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{function} blocked"
    if errors:
        raise errors[0]
    return results[0]


def until(condition: Callable[[], object], timeout: float = 2000 * MS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(MS)


def test_every_open_connection_gets_the_message() -> None:
    with registry_server() as (server, registry):
        clients = [connect(uri(server), compression=c) for c in (None, None, "deflate")]
        try:
            peers = [registry.peer_of(client) for client in clients]
            messages: list[Any] = ["hello", b"\x00\x01", bytearray(b"ba"), memoryview(b"mv")]
            for message in messages:
                assert broadcast(peers, message) == BroadcastResult(3, 0)
                expected = message if isinstance(message, str) else bytes(message)
                for client in clients:
                    assert client.recv(timeout=1) == expected
        finally:
            for client in clients:
                client.close()


def test_encodes_once_per_encoding_key(monkeypatch: pytest.MonkeyPatch) -> None:
    caches: list[dict[Hashable, list[bytes]]] = []
    send_shared = Protocol.send_shared

    def spy(self: Protocol, data: Any, cache: dict[Hashable, list[bytes]]) -> None:
        caches.append(cache)
        send_shared(self, data, cache)

    monkeypatch.setattr(Protocol, "send_shared", spy)
    with registry_server() as (server, registry):
        # Three without compression, two with deflate and context takeover.
        clients = [connect(uri(server), compression=c) for c in [None] * 3 + ["deflate"] * 2]
        try:
            peers = [registry.peer_of(client) for client in clients]
            assert broadcast(peers, "x" * 1000) == BroadcastResult(5, 0)
            assert len(caches) == 5
            assert all(cache is caches[0] for cache in caches)
            # One encoding for the three, shared; the others depend on their history.
            assert len(caches[0]) == 1
            for client in clients:
                assert client.recv(timeout=1) == "x" * 1000
        finally:
            for client in clients:
                client.close()


def test_closed_and_closing_connections_are_ignored() -> None:
    with registry_server() as (server, registry):
        with connect(uri(server)) as open_client, connect(uri(server)) as closed_client:
            open_peer = registry.peer_of(open_client)
            closed_peer = registry.peer_of(closed_client)
            closed_client.close()
            assert closed_peer.wait_closed(2000 * MS)
            assert closed_peer.state is State.CLOSED
            assert broadcast([closed_peer, open_peer], "hi") == BroadcastResult(1, 0)
            assert open_client.recv(timeout=1) == "hi"
            assert broadcast([], "nobody") == BroadcastResult(0, 0)


def test_client_connections_too() -> None:
    received: list[Any] = []
    done = threading.Event()

    def handler(ws: ServerConnection) -> None:
        received.append(ws.recv(timeout=1))
        if len(received) == 2:
            done.set()

    with run_server(handler) as server:
        clients = [connect(uri(server)) for _ in range(2)]
        try:
            assert broadcast(clients, "from clients") == BroadcastResult(2, 0)  # masked each
            assert done.wait(2)
        finally:
            for client in clients:
                client.close()
    assert received == ["from clients"] * 2


def test_invalid_message() -> None:
    with pytest.raises(TypeError):
        broadcast([], 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        broadcast([], ["frag", "ments"])  # type: ignore[arg-type]


def test_skips_connection_with_a_fragmented_message_underway() -> None:
    gate = threading.Event()

    def fragments() -> Iterator[str]:
        yield "first "
        assert gate.wait(2)
        yield "second"

    with registry_server() as (server, registry):
        with connect(uri(server)) as client:
            peer = registry.peer_of(client)
            sender = threading.Thread(target=peer.send, args=(fragments(),))
            sender.start()
            try:
                until(lambda: not peer.protocol.sending)
                assert broadcast([peer], "not now") == BroadcastResult(0, 1)
            finally:
                gate.set()
                sender.join(2)
            assert client.recv(timeout=1) == "first second"
            assert broadcast([peer], "now") == BroadcastResult(1, 0)
            assert client.recv(timeout=1) == "now"


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_slow_client_is_skipped_without_blocking_and_memory_stays_bounded(
    tls: bool, request: pytest.FixtureRequest
) -> None:
    write_limit = 32_768
    size = 16_384
    server_options: dict[str, Any] = {"write_limit": write_limit}
    client_options: dict[str, Any] = {"compression": None}
    scheme = "ws"
    if tls:
        server_options["ssl"] = request.getfixturevalue("server_ssl")
        client_options["ssl"] = request.getfixturevalue("client_ssl")
        scheme = "wss"
    with registry_server(small_buffers=True, **server_options) as (server, registry):
        slow = slow_client(server, scheme, **client_options)
        healthy = connect(uri(server, scheme), **client_options)
        try:
            slow_peer, healthy_peer = registry.peer_of(slow), registry.peer_of(healthy)

            # Broadcast until the slow client's backlog is past write_limit. With TLS, the
            # writing thread still moves bytes to the kernel for a while.
            def fill() -> list[str]:
                sent: list[str] = []
                skips = 0
                for i in range(10_000):
                    message = f"{i:06d}" + "x" * (size - 6)
                    result = broadcast([slow_peer], message)
                    assert slow_peer._backlog_size <= write_limit + size + 16  # a frame's header
                    if result == BroadcastResult(0, 1):
                        skips += 1
                        if skips == (20 if tls else 1):
                            return sent
                    else:
                        assert result == BroadcastResult(1, 0)
                        sent.append(message)
                pytest.fail("the slow client was never skipped")

            sent = within(fill)
            assert slow_peer._writer is not None  # a remainder waits for the writing thread

            # Meanwhile, others get every message.
            for i in range(5):
                message = f"healthy {i}"
                both = [slow_peer, healthy_peer]
                result = within(functools.partial(broadcast, both, message))
                assert result == (1, 1) or (tls and result == (2, 0))
                if result.sent == 2:
                    sent.append(message)
                assert healthy.recv(timeout=1) == message

            # A send() queues behind the backlog and waits for it to drain: order is kept.
            sender = threading.Thread(target=slow_peer.send, args=("after",))
            sender.start()
            received = [slow.recv(timeout=2) for _ in sent]
            assert received == sent  # whole frames, in order, none lost, none cut
            assert slow.recv(timeout=2) == "after"
            sender.join(2)
            assert not sender.is_alive()

            # Drained: the slow client is served again.
            until(lambda: slow_peer._backlog_size == 0)
            assert broadcast([slow_peer], "welcome back") == BroadcastResult(1, 0)
            assert slow.recv(timeout=1) == "welcome back"
        finally:
            slow.close()
            healthy.close()
        assert slow.close_code == 1000
        assert healthy.close_code == 1000


def test_connection_blocked_in_send_is_skipped() -> None:
    with registry_server(small_buffers=True) as (server, registry):
        slow = slow_client(server, compression=None, max_size=None)
        try:
            peer = registry.peer_of(slow)
            big = b"\x00" * 2_000_000
            sender = threading.Thread(target=peer.send, args=(big,))
            sender.start()
            try:
                until(lambda: peer._writing)  # blocked in sendall: the client does not read
                assert within(lambda: broadcast([peer], "can't wait")) == BroadcastResult(0, 1)
            finally:
                assert slow.recv(timeout=5) == big
                sender.join(2)
            assert broadcast([peer], "done") == BroadcastResult(1, 0)
            assert slow.recv(timeout=1) == "done"
        finally:
            slow.close()


def test_close_with_a_backlog_ends_within_close_timeout() -> None:
    with registry_server(small_buffers=True, close_timeout=100 * MS) as (server, registry):
        slow = slow_client(server, compression=None)
        try:
            peer = registry.peer_of(slow)

            def fill() -> None:
                for _ in range(10_000):
                    if broadcast([peer], "x" * 16_384).skipped:
                        return
                pytest.fail("the slow client was never skipped")

            within(fill)
            within(peer.close)  # the close frame waits behind the backlog; nobody reads it
            assert peer.state is State.CLOSED
            assert peer._writer is not None
            assert not peer._writer.is_alive()
        finally:
            slow.close()


def test_tls(server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext) -> None:
    # A TLS record cannot be written in part without waiting: the writing thread writes.
    with registry_server(ssl=server_ssl) as (server, registry):
        with connect(uri(server, "wss"), ssl=client_ssl) as client:
            peer = registry.peer_of(client)
            for i in range(20):
                assert broadcast([peer], f"secret {i}") == BroadcastResult(1, 0)
            assert [client.recv(timeout=1) for _ in range(20)] == [
                f"secret {i}" for i in range(20)
            ]
            peer.send("in order")
            assert client.recv(timeout=1) == "in order"
            writer = peer._writer
            assert writer is not None
        assert peer.wait_closed(2000 * MS)
        assert not writer.is_alive()
        assert client.close_code == 1000
