"""The connection API, on both sides, over TCP on 127.0.0.1 (asyncio/connection.py).

Most tests take a connection on ``side`` and its ``peer`` from :func:`connection_pair`: a real
client and a real server connection. Tests of timeouts use a raw peer instead, one that stops
answering (see conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from socketeer.asyncio.client import ClientConnection, connect
from socketeer.asyncio.connection import BroadcastResult, Connection, broadcast
from socketeer.asyncio.server import Server, ServerConnection, serve
from socketeer.exceptions import (
    ConcurrencyError,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidState,
    PayloadTooBig,
    ProtocolError,
)
from socketeer.protocol.base import CLIENT, SERVER, Protocol, Side, State
from socketeer.protocol.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from socketeer.protocol.frames import OP_BINARY, OP_CLOSE, OP_CONT, OP_TEXT, Close, Frame
from socketeer.protocol.keepalive import Keepalive, KeepaliveAction
from timing import MS

SIDES = [pytest.param(CLIENT, id="client"), pytest.param(SERVER, id="server")]


def uri_of(server: Server) -> str:
    port = server.sockets[0].getsockname()[1]
    return f"ws://127.0.0.1:{port}/"


def transport(connection: Connection) -> asyncio.Transport:
    assert connection.transport is not None
    return connection.transport


async def until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` is true; the test's timeout catches a hang."""
    while not condition():
        await asyncio.sleep(MS)


@contextlib.asynccontextmanager
async def connection_pair(
    side: Side = CLIENT, **options: Any
) -> AsyncIterator[tuple[Connection, Connection]]:
    """A connection on ``side`` and its peer, open; ``options`` go to both sides."""
    accepted: asyncio.Future[ServerConnection] = asyncio.get_running_loop().create_future()

    async def handler(connection: ServerConnection) -> None:
        accepted.set_result(connection)
        await connection.wait_closed()

    async with serve(handler, "127.0.0.1", 0, **options) as server:
        async with connect(uri_of(server) + "path?query", **options) as client:
            server_connection = await accepted
            if side is CLIENT:
                yield client, server_connection
            else:
                yield server_connection, client


@contextlib.asynccontextmanager
async def connection_with_raw_peer(
    side: Side, raw_client: Any, raw_server: Any, **options: Any
) -> AsyncIterator[Connection]:
    """A connection on ``side`` whose peer completed the handshake, then stopped reading."""
    if side is SERVER:
        accepted: asyncio.Future[ServerConnection] = asyncio.get_running_loop().create_future()

        async def handler(connection: ServerConnection) -> None:
            accepted.set_result(connection)
            await connection.wait_closed()

        async with serve(handler, "127.0.0.1", 0, **options) as server:
            async with raw_client(server.sockets[0].getsockname()[1]):
                yield await accepted
    else:
        async with raw_server() as port:
            async with connect(f"ws://127.0.0.1:{port}/", **options) as client:
                yield client


@pytest.fixture
def record_writes(monkeypatch: pytest.MonkeyPatch) -> Callable[[Connection], list[bytes]]:
    """Start recording what a connection writes to its transport; returns the record."""

    def start(connection: Connection) -> list[bytes]:
        assert connection.transport is not None
        write = connection.transport.write
        writes: list[bytes] = []

        def recording_write(data: Any) -> None:
            writes.append(bytes(data))
            write(data)

        monkeypatch.setattr(connection.transport, "write", recording_write)
        return writes

    return start


@pytest.mark.parametrize("side", SIDES)
class TestAttributes:
    async def test_open_connection(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            assert ws.state is State.OPEN
            assert isinstance(ws.id, uuid.UUID)
            assert ws.id != peer.id
            assert ws.close_code is None
            assert ws.close_reason is None
            assert ws.latency == 0
            assert ws.subprotocol is None
            assert repr(ws) == f"<{type(ws).__name__} {ws.id} OPEN>"

    async def test_request_and_response(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            assert ws.request is not None and peer.request is not None
            assert ws.request.path == "/path?query"
            key = ws.request.headers["Sec-WebSocket-Key"]
            assert key == peer.request.headers["Sec-WebSocket-Key"]
            assert ws.response is not None and peer.response is not None
            assert ws.response.status_code == 101
            accept = ws.response.headers["Sec-WebSocket-Accept"]
            assert accept == peer.response.headers["Sec-WebSocket-Accept"]

    async def test_addresses(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            assert ws.local_address == peer.remote_address
            assert ws.remote_address == peer.local_address
            assert ws.local_address[0] == "127.0.0.1"

    async def test_closed_connection(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            await ws.close(4000, "bye")
            assert ws.state is State.CLOSED
            assert repr(ws) == f"<{type(ws).__name__} {ws.id} CLOSED>"
            await peer.wait_closed()
            assert peer.state is State.CLOSED


@pytest.mark.parametrize("side", SIDES)
class TestRecv:
    async def test_text_and_binary(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            await peer.send("café")
            await peer.send(b"\x00\xff")
            assert await ws.recv() == "café"
            assert await ws.recv() == b"\x00\xff"

    async def test_large_message_read_in_place(
        self, side: Side, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        calls = count_calls(monkeypatch, Protocol, "receive_into")
        message = bytes(range(256)) * 4096  # 1 MiB: more than one read
        async with connection_pair(side, max_size=2**21, compression=None) as (ws, peer):
            await peer.send(message)
            assert await ws.recv() == message
        assert calls

    async def test_large_message_completed_through_shared_buffer(
        self, side: Side, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # uvloop holds the view it read into while buffer_updated() runs; the payload is
        # handed over without a copy only if no view of it is held when it completes, so
        # its last byte comes through the shared buffer. Simulate uvloop's view.
        message = bytes(range(256)) * 4096
        async with connection_pair(side, max_size=2**21, compression=None) as (ws, peer):
            get_buffer, buffer_updated = ws.get_buffer, ws.buffer_updated
            held: list[memoryview] = []
            reads: list[tuple[int, int]] = []  # in place: bytes read, bytes of payload left

            def getting(sizehint: int) -> memoryview:
                held.append(get_buffer(sizehint))
                return held[-1]

            def updated(nbytes: int) -> None:
                view = held.pop()
                into = ws.protocol.payload_buffer
                if view is not ws._buffer:
                    assert into is not None
                    reads.append((nbytes, len(into)))
                with memoryview(view):  # an export, as the event loop's
                    buffer_updated(nbytes)

            monkeypatch.setattr(ws, "get_buffer", getting)
            monkeypatch.setattr(ws, "buffer_updated", updated)
            await peer.send(message)
            await peer.send(b"next")
            assert await ws.recv() == message
            assert await ws.recv() == b"next"
        assert reads
        assert all(nbytes < left for nbytes, left in reads)  # never the last byte

    async def test_decode(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            await peer.send("café")
            await peer.send("café".encode())
            await peer.send("café")
            await peer.send("café".encode())
            assert await ws.recv(decode=False) == "café".encode()
            assert await ws.recv(decode=True) == "café"
            assert await ws.recv(decode=True) == "café"
            assert await ws.recv(decode=False) == "café".encode()

    async def test_decode_invalid_utf8(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            await peer.send(b"\xff")
            with pytest.raises(UnicodeDecodeError):
                await ws.recv(decode=True)

    async def test_concurrent_recv(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            first = asyncio.create_task(ws.recv())
            await asyncio.sleep(0)
            with pytest.raises(ConcurrencyError):
                await ws.recv()
            with pytest.raises(ConcurrencyError):
                await ws.recv_frame()
            await peer.send("for the first")
            assert await first == "for the first"

    async def test_messages_left_after_close(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            await peer.send("last")
            await peer.close()
            await ws.wait_closed()
            assert await ws.recv() == "last"
            with pytest.raises(ConnectionClosedOK) as raised:
                await ws.recv()
            assert raised.value.rcvd == Close(1000, "")
            assert raised.value.sent == Close(1000, "")

    async def test_iteration_ends_on_normal_close(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            await peer.send("a")
            await peer.send(b"b")
            await peer.close(1001)
            assert [message async for message in ws] == ["a", b"b"]

    async def test_iteration_raises_on_close_with_error_code(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            await peer.send("a")
            await peer.close(1011, "oops")
            received = []
            with pytest.raises(ConnectionClosedError) as raised:
                async for message in ws:
                    received.append(message)
            assert received == ["a"]
            assert raised.value.code == 1011
            assert raised.value.reason == "oops"

    async def test_iteration_raises_on_lost_connection(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            transport(peer).abort()
            with pytest.raises(ConnectionClosedError) as raised:
                async for _ in ws:
                    pass
            assert raised.value.rcvd is None
            assert raised.value.code == 1006
            assert ws.close_code == 1006

    async def test_invalid_utf8_fails_with_cause(self, side: Side) -> None:
        async with connection_pair(side, compression=None) as (ws, peer):
            await peer.send_frame(Frame(OP_TEXT, b"\xff"))
            with pytest.raises(ConnectionClosedError) as raised:
                await ws.recv()
            assert raised.value.sent is not None
            assert raised.value.sent.code == 1007
            assert isinstance(raised.value.__cause__, UnicodeDecodeError)
            await peer.wait_closed()
            assert peer.close_code == 1007

    async def test_message_too_big(self, side: Side) -> None:
        async with connection_pair(side, max_size=100) as (ws, peer):
            await peer.send(b"x" * 100)
            await peer.send(b"x" * 101)
            assert await ws.recv() == b"x" * 100
            with pytest.raises(ConnectionClosedError) as raised:
                await ws.recv()
            assert raised.value.sent is not None
            assert raised.value.sent.code == 1009
            assert isinstance(raised.value.__cause__, PayloadTooBig)


@pytest.mark.parametrize("side", SIDES)
class TestSend:
    @pytest.mark.parametrize(
        ("message", "received"),
        [
            ("café", "café"),
            (b"\x00\xff", b"\x00\xff"),
            (bytearray(b"\x00\xff"), b"\x00\xff"),
            (memoryview(b"\x00\xff\x01")[1:], b"\xff\x01"),
            ("", ""),
            (b"", b""),
        ],
    )
    async def test_message(self, side: Side, message: Any, received: Any) -> None:
        async with connection_pair(side) as (ws, peer):
            await ws.send(message)
            assert await peer.recv() == received

    async def test_large_message(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            message = bytes(range(256)) * 1024
            await ws.send(message)
            assert await peer.recv() == message

    @pytest.mark.parametrize("message", [42, None, {"a": 1}, 1.5])
    async def test_not_a_message(self, side: Side, message: Any) -> None:
        async with connection_pair(side) as (ws, peer):
            with pytest.raises(TypeError):
                await ws.send(message)
            await ws.send("still open")
            assert await peer.recv() == "still open"

    async def test_after_close(self, side: Side) -> None:
        async with connection_pair(side) as (ws, _):
            await ws.close()
            with pytest.raises(ConnectionClosedOK):
                await ws.send("too late")
            with pytest.raises(ConnectionClosedOK):
                await ws.send(["too", "late"])

    async def test_after_close_with_error(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            await peer.close(1011)
            await ws.wait_closed()
            with pytest.raises(ConnectionClosedError):
                await ws.send("too late")

    async def test_while_peer_closes(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            closing = asyncio.create_task(peer.close())
            with pytest.raises(ConnectionClosedOK):
                while True:  # until the close frame arrives
                    await ws.send("racing the close")
                    await asyncio.sleep(0)
            await closing

    async def test_while_closing(self, side: Side) -> None:
        # As when a server shuts down under a handler that sends: the close frame went out,
        # the answer has not come yet. send() waits for the closing handshake and ends as
        # the connection does, normally.
        async with connection_pair(side) as (ws, peer):
            closing = asyncio.create_task(ws.close(1001))
            await asyncio.sleep(0)
            assert ws.state is State.CLOSING
            with pytest.raises(ConnectionClosedOK) as raised:
                await ws.send("during the closing handshake")
            assert raised.value.rcvd == Close(1001, "")
            with pytest.raises(ConnectionClosedOK):
                await ws.send(["fragments", "too"])
            with pytest.raises(ConnectionClosedOK):
                await ws.ping()
            await closing

    async def test_while_closing_with_a_peer_that_never_answers(
        self, side: Side, raw_client: Any, raw_server: Any
    ) -> None:
        options = {"ping_interval": None, "close_timeout": 20 * MS}
        async with connection_with_raw_peer(side, raw_client, raw_server, **options) as ws:
            closing = asyncio.create_task(ws.close(1001))
            await asyncio.sleep(0)
            with pytest.raises(ConnectionClosedError) as raised:  # after close_timeout
                await ws.send("during the closing handshake")
            assert (raised.value.sent, raised.value.rcvd) == (Close(1001, ""), None)
            assert ws.state is State.CLOSED
            await closing

    async def test_compress_false(
        self, side: Side, record_writes: Callable[[Connection], list[bytes]]
    ) -> None:
        async with connection_pair(side) as (ws, peer):
            assert ws.protocol.extensions  # permessage-deflate is on by default
            writes = record_writes(ws)
            message = "compressible " * 100
            await ws.send(message)
            await ws.send(message, compress=False)
            compressed, uncompressed = writes
            # RSV1, "Per-Message Compressed", is the bit 0x40 of the first byte.
            assert compressed[0] == 0xC1
            assert uncompressed[0] == 0x81
            assert len(compressed) < len(message) < len(uncompressed)
            assert await peer.recv() == message
            assert await peer.recv() == message


@pytest.mark.parametrize("side", SIDES)
class TestSendFragments:
    async def test_iterable_of_str(self, side: Side) -> None:
        async with connection_pair(side, compression=None) as (ws, peer):
            await ws.send(["ca", "fé"])
            assert await peer.recv_frame() == Frame(OP_TEXT, b"ca", fin=False)
            assert await peer.recv_frame() == Frame(OP_CONT, "fé".encode(), fin=False)
            assert await peer.recv_frame() == Frame(OP_CONT, b"", fin=True)

    async def test_iterable_of_bytes(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            await ws.send([b"a", bytearray(b"b"), memoryview(b"c")])
            assert await peer.recv() == b"abc"

    async def test_generator_joined_by_recv(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            await ws.send(str(index) for index in range(10))
            assert await peer.recv() == "0123456789"

    async def test_async_iterable(self, side: Side) -> None:
        async def fragments() -> AsyncIterator[bytes]:
            for data in (b"a", b"b"):
                await asyncio.sleep(0)
                yield data

        async with connection_pair(side, compression=None) as (ws, peer):
            await ws.send(fragments())
            assert await peer.recv_frame() == Frame(OP_BINARY, b"a", fin=False)
            assert await peer.recv_frame() == Frame(OP_CONT, b"b", fin=False)
            assert await peer.recv_frame() == Frame(OP_CONT, b"", fin=True)

    async def test_mixed_types_fail_the_connection(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            with pytest.raises(TypeError):
                await ws.send(["text", b"bytes"])
            with pytest.raises(ConnectionClosedError) as raised:
                await peer.recv()
            assert raised.value.code == 1011
            await ws.wait_closed()
            assert ws.protocol.close_sent is not None
            assert ws.protocol.close_sent.code == 1011

    async def test_error_midway_fails_the_connection(self, side: Side) -> None:
        def fragments() -> Iterator[str]:
            yield "first"
            raise RuntimeError("no more")

        async with connection_pair(side) as (ws, peer):
            with pytest.raises(RuntimeError, match="no more"):
                await ws.send(fragments())
            with pytest.raises(ConnectionClosedError) as raised:
                await peer.recv()
            assert raised.value.code == 1011

    async def test_error_in_async_iterable_fails_the_connection(self, side: Side) -> None:
        async def fragments() -> AsyncIterator[bytes]:
            yield b"first"
            raise RuntimeError("no more")

        async with connection_pair(side) as (ws, peer):
            with pytest.raises(RuntimeError, match="no more"):
                await ws.send(fragments())
            with pytest.raises(ConnectionClosedError) as raised:
                await peer.recv()
            assert raised.value.code == 1011

    @pytest.mark.parametrize("fragments", [[], [42], [{"a": 1}]], ids=["empty", "int", "dict"])
    async def test_nothing_sent_yet(self, side: Side, fragments: list[Any]) -> None:
        async with connection_pair(side) as (ws, peer):
            with pytest.raises(TypeError):
                await ws.send(fragments)
            await ws.send("still open")
            assert await peer.recv() == "still open"

    async def test_invalid_fragment_after_the_first(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            with pytest.raises(TypeError):
                await ws.send([b"bytes", 42])  # type: ignore[list-item]
            with pytest.raises(ConnectionClosedError):
                await peer.recv()

    async def test_other_sends_wait(self, side: Side) -> None:
        gate = asyncio.Event()

        async def fragments() -> AsyncIterator[str]:
            yield "a"
            await gate.wait()
            yield "b"

        async with connection_pair(side) as (ws, peer):
            fragmented = asyncio.create_task(ws.send(fragments()))
            await until(lambda: ws.protocol._snd_fragmented)
            other = asyncio.create_task(ws.send("c"))
            await asyncio.sleep(5 * MS)
            assert not other.done()
            gate.set()
            await fragmented
            await other
            assert await peer.recv() == "ab"
            assert await peer.recv() == "c"

    async def test_close_during_fragmented_message(self, side: Side) -> None:
        gate = asyncio.Event()

        async def fragments() -> AsyncIterator[str]:
            yield "a"
            await gate.wait()
            yield "b"

        async with connection_pair(side) as (ws, peer):
            fragmented = asyncio.create_task(ws.send(fragments()))
            await until(lambda: ws.protocol._snd_fragmented)
            await ws.close()
            # A message cannot be abandoned halfway but by failing the connection.
            with pytest.raises(ConnectionClosedError) as raised:
                await peer.recv()
            assert raised.value.code == 1011
            gate.set()
            with pytest.raises(ConnectionClosedError):
                await fragmented

    async def test_peer_closes_during_fragmented_message(self, side: Side) -> None:
        gate = asyncio.Event()

        async def fragments() -> AsyncIterator[str]:
            yield "a"
            await gate.wait()
            yield "b"

        async with connection_pair(side) as (ws, peer):
            fragmented = asyncio.create_task(ws.send(fragments()))
            await until(lambda: ws.protocol._snd_fragmented)
            await peer.close()
            gate.set()
            with pytest.raises(ConnectionClosedOK):
                await fragmented


@pytest.mark.parametrize("side", SIDES)
class TestFrames:
    async def test_send_and_recv_frames(self, side: Side) -> None:
        async with connection_pair(side, compression=None) as (ws, peer):
            frames = [Frame(OP_TEXT, b"ca", fin=False), Frame(OP_CONT, "fé".encode())]
            for frame in frames:
                await ws.send_frame(frame)
            assert [await peer.recv_frame(), await peer.recv_frame()] == frames

    async def test_send_frames_recv_message(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            await ws.send_frame(Frame(OP_BINARY, b"a", fin=False))
            await ws.send_frame(Frame(OP_CONT, b"b"))
            assert await peer.recv() == b"ab"

    async def test_send_close_frame(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            await ws.send_frame(Frame(OP_CLOSE, Close(4000, "frame").serialize()))
            with pytest.raises(ConnectionClosedError) as raised:
                await peer.recv()
            assert raised.value.rcvd == Close(4000, "frame")
            await ws.wait_closed()

    async def test_invalid_frame(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            with pytest.raises(ProtocolError):
                await ws.send_frame(Frame(OP_TEXT, b"a", rsv2=True))
            await ws.send("still open")
            assert await peer.recv() == "still open"

    async def test_continuation_without_message(self, side: Side) -> None:
        async with connection_pair(side) as (ws, _):
            with pytest.raises(InvalidState):
                await ws.send_frame(Frame(OP_CONT, b"a"))
            assert ws.state is State.OPEN

    async def test_message_during_fragmented_frames(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            await ws.send_frame(Frame(OP_TEXT, b"a", fin=False))
            with pytest.raises(InvalidState):
                await ws.send_frame(Frame(OP_TEXT, b"b"))
            await ws.send_frame(Frame(OP_CONT, b"c"))
            assert await peer.recv() == "ac"

    async def test_after_close(self, side: Side) -> None:
        async with connection_pair(side) as (ws, _):
            await ws.close()
            with pytest.raises(ConnectionClosedOK):
                await ws.send_frame(Frame(OP_TEXT, b"a"))
            with pytest.raises(ConnectionClosedOK):
                await ws.recv_frame()


@pytest.mark.parametrize("side", SIDES)
class TestPing:
    async def test_ping_measures_latency(self, side: Side) -> None:
        async with connection_pair(side) as (ws, _):
            waiter = await ws.ping()
            latency = await waiter
            assert latency > 0
            assert ws.latency == latency

    @pytest.mark.parametrize("data", ["café", b"\x00\xff", b""])
    async def test_ping_with_data(self, side: Side, data: str | bytes) -> None:
        async with connection_pair(side) as (ws, _):
            await (await ws.ping(data))
            assert ws.latency > 0

    async def test_pings_in_flight(self, side: Side) -> None:
        async with connection_pair(side) as (ws, _):
            waiters = [await ws.ping(data) for data in (b"1", b"2", b"3")]
            await asyncio.gather(*waiters)

    async def test_same_data_twice(self, side: Side) -> None:
        async with connection_pair(side) as (ws, _):
            waiter = await ws.ping(b"same")
            with pytest.raises(ConcurrencyError):
                await ws.ping(b"same")
            await waiter
            await (await ws.ping(b"same"))  # the first got its pong

    async def test_data_too_long(self, side: Side) -> None:
        async with connection_pair(side) as (ws, _):
            with pytest.raises(ValueError):
                await ws.ping(b"x" * 126)

    async def test_after_close(self, side: Side) -> None:
        async with connection_pair(side) as (ws, _):
            await ws.close()
            with pytest.raises(ConnectionClosedOK):
                await ws.ping()

    async def test_connection_lost_before_pong(self, side: Side) -> None:
        async with connection_pair(side) as (ws, _):
            waiter = await ws.ping()
            transport(ws).abort()
            with pytest.raises(ConnectionClosedError):
                await waiter

    async def test_connection_lost_before_pong_nobody_waits(self, side: Side) -> None:
        async with connection_pair(side) as (ws, _):
            await ws.ping()
            transport(ws).abort()
            await ws.wait_closed()  # no "exception was never retrieved" from the waiter

    async def test_pong(
        self, side: Side, record_writes: Callable[[Connection], list[bytes]]
    ) -> None:
        async with connection_pair(side) as (ws, peer):
            writes = record_writes(ws)
            await ws.pong(b"unsolicited")
            await ws.pong("café")
            assert [write[0] for write in writes] == [0x8A, 0x8A]
            await ws.send("after the pongs")
            assert await peer.recv() == "after the pongs"

    async def test_pong_after_close(self, side: Side) -> None:
        async with connection_pair(side) as (ws, _):
            await ws.close()
            with pytest.raises(ConnectionClosedOK):
                await ws.pong()


@pytest.mark.parametrize("side", SIDES)
class TestClose:
    async def test_close(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            await ws.close()
            assert ws.state is State.CLOSED
            assert ws.close_code == 1000
            assert ws.close_reason == ""
            with pytest.raises(ConnectionClosedOK) as raised:
                await peer.recv()
            assert raised.value.rcvd == Close(1000, "")
            assert raised.value.rcvd_then_sent is True
            await peer.wait_closed()
            assert peer.close_code == 1000

    async def test_close_code_and_reason(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            await ws.close(4000, "bye")
            assert (ws.close_code, ws.close_reason) == (4000, "bye")  # echoed by the peer
            with pytest.raises(ConnectionClosedError) as raised:
                await peer.recv()
            assert (raised.value.code, raised.value.reason) == (4000, "bye")
            await peer.wait_closed()
            assert (peer.close_code, peer.close_reason) == (4000, "bye")

    async def test_going_away_is_normal(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            await ws.close(1001)
            with pytest.raises(ConnectionClosedOK):
                await peer.recv()

    @pytest.mark.parametrize(("code", "reason"), [(999, ""), (1006, ""), (1000, "x" * 124)])
    async def test_invalid(self, side: Side, code: int, reason: str) -> None:
        async with connection_pair(side) as (ws, _):
            with pytest.raises(ValueError):
                await ws.close(code, reason)
            assert ws.state is State.OPEN

    async def test_twice(self, side: Side) -> None:
        async with connection_pair(side) as (ws, _):
            await asyncio.gather(ws.close(), ws.close(4000))
            await ws.close()
            assert ws.close_code == 1000

    async def test_wait_closed(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            waiting = asyncio.create_task(ws.wait_closed())
            await asyncio.sleep(0)
            assert not waiting.done()
            await peer.close()
            await waiting
            assert ws.state is State.CLOSED

    async def test_cancelled_wait_closed(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            waiting = asyncio.create_task(ws.wait_closed())
            await asyncio.sleep(0)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await peer.close()
            await ws.wait_closed()  # cancelling one waiter did not cancel the others

    async def test_context_manager(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            async with ws as entered:
                assert entered is ws
            assert ws.close_code == 1000
            await peer.wait_closed()

    async def test_context_manager_with_error(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            with pytest.raises(RuntimeError):
                async with ws:
                    raise RuntimeError
            # Like websockets: a normal close; the application's error is its own business.
            with pytest.raises(ConnectionClosedOK) as raised:
                await peer.recv()
            assert raised.value.code == 1000

    async def test_close_with_unread_messages(self, side: Side) -> None:
        # The peer's close frame waits behind messages that fill the queue: close() must
        # read on to it, not wait for close_timeout and abort.
        options: dict[str, Any] = {
            "max_queue": 2,
            "close_timeout": 2_000 * MS,
            "compression": None,
        }
        async with connection_pair(side, **options) as (ws, peer):
            flood = Flood(peer, b"x" * 8192)
            await until(
                lambda: (
                    not transport(ws).is_reading()
                    and transport(peer).get_write_buffer_size() > 32768
                )
            )
            await ws.close()
            assert ws.close_code == 1000
            with pytest.raises(ConnectionClosedOK):
                await flood.task
            # What was queued is still there; what came on top of it was dropped.
            assert 2 <= ws.recv_messages.messages <= 2 + messages_per_batch(2)
            for _ in range(ws.recv_messages.messages):
                assert await ws.recv() == b"x" * 8192
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()


@pytest.mark.parametrize("side", SIDES)
class TestCloseCallback:
    async def test_called_once_closed(self, side: Side) -> None:
        async with connection_pair(side) as (ws, peer):
            calls: list[Connection] = []
            ws.add_close_callback(calls.append)
            await asyncio.sleep(0)
            assert calls == []  # not while open
            await peer.close()
            await ws.wait_closed()
            assert calls == [ws]

    async def test_before_wait_closed_returns(self, side: Side) -> None:
        async with connection_pair(side) as (ws, _):
            calls: list[Connection] = []
            waiting = asyncio.create_task(ws.wait_closed())
            await asyncio.sleep(0)  # wait_closed() waits before the callback is added
            ws.add_close_callback(calls.append)
            await ws.close()
            assert calls == [ws]
            await waiting

    async def test_in_order_added(self, side: Side) -> None:
        async with connection_pair(side) as (ws, _):
            calls: list[int] = []
            ws.add_close_callback(lambda _: calls.append(1))
            ws.add_close_callback(lambda _: calls.append(2))
            await ws.close()
            assert calls == [1, 2]

    async def test_removed(self, side: Side) -> None:
        async with connection_pair(side) as (ws, _):
            calls: list[Connection] = []
            remove = ws.add_close_callback(calls.append)
            remove()
            remove()  # twice: nothing happens
            await ws.close()
            await asyncio.sleep(0)
            assert calls == []
            remove()  # once closed: nothing happens

    async def test_removed_while_running(self, side: Side) -> None:
        async with connection_pair(side) as (ws, _):
            calls: list[str] = []
            removers: list[Callable[[], None]] = []

            def first(connection: Connection) -> None:
                calls.append("first")
                for remove in removers:  # itself, and the next one: too late for both
                    remove()

            removers.append(ws.add_close_callback(first))
            removers.append(ws.add_close_callback(lambda _: calls.append("second")))
            await ws.close()
            assert calls == ["first", "second"]

    async def test_removed_once_closed(self, side: Side) -> None:
        async with connection_pair(side) as (ws, _):
            await ws.close()
            calls: list[Connection] = []
            remove = ws.add_close_callback(calls.append)
            remove()
            await asyncio.sleep(0)
            assert calls == []

    async def test_error_logged_once_closed(
        self, side: Side, caplog: pytest.LogCaptureFixture
    ) -> None:
        async with connection_pair(side) as (ws, _):
            await ws.close()

            def fail(connection: Connection) -> None:
                raise RuntimeError("oops")

            ws.add_close_callback(fail)
            await until(lambda: bool(caplog.records))
            assert [r.getMessage() for r in caplog.records] == ["close callback failed"]

    async def test_error_logged(self, side: Side, caplog: pytest.LogCaptureFixture) -> None:
        async with connection_pair(side) as (ws, _):
            calls: list[Connection] = []

            def fail(connection: Connection) -> None:
                raise RuntimeError("oops")

            ws.add_close_callback(fail)
            ws.add_close_callback(calls.append)
            await ws.close()
            assert calls == [ws]
            assert [r.getMessage() for r in caplog.records] == ["close callback failed"]

    async def test_added_once_closed(self, side: Side) -> None:
        async with connection_pair(side) as (ws, _):
            await ws.close()
            calls: list[Connection] = []
            ws.add_close_callback(calls.append)
            await until(lambda: bool(calls))
            assert calls == [ws]


class Flood:
    """Sends a message on a connection again and again, until stopped."""

    def __init__(self, connection: Connection, message: bytes) -> None:
        self.stopping = False
        self.sent = 0
        """Messages sent, not counting the one whose send() waits."""
        self.task = asyncio.create_task(self._run(connection, message))

    async def _run(self, connection: Connection, message: bytes) -> None:
        while not self.stopping:
            await connection.send(message)
            self.sent += 1
            await asyncio.sleep(0)  # send() only waits when the buffer is full


async def receive_flood(connection: Connection, flood: Flood, check: Callable[[], None]) -> None:
    """Stop the flood and receive all of it, calling ``check()`` after each message."""
    received = 0

    async def receive() -> None:
        nonlocal received
        while True:
            await connection.recv()
            received += 1
            check()

    receiving = asyncio.create_task(receive())
    flood.stopping = True
    await flood.task  # the send that waited ends once messages are received
    await until(lambda: received == flood.sent or receiving.done())
    receiving.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await receiving  # raises if a check failed


def messages_per_batch(max_queue: int) -> int:
    """Most messages the protocol parses at once from what it read: one queue's worth."""
    return max_queue


@pytest.mark.parametrize("side", SIDES)
class TestFlowControl:
    @pytest.mark.parametrize("size", [4096, 65536])
    async def test_reader_that_stops_reading(self, side: Side, size: int) -> None:
        async with connection_pair(side, max_queue=4, compression=None) as (ws, peer):
            bound = 4 + messages_per_batch(4)

            def check() -> None:
                assert ws.recv_messages.messages <= bound

            flood = Flood(peer, bytes(range(256)) * (size // 256))
            # The queue fills and the reading side stops reading; the sending side's buffer
            # fills above write_limit, and send() waits.
            await until(
                lambda: (
                    not transport(ws).is_reading()
                    and transport(peer).get_write_buffer_size() > 32768
                )
            )
            assert ws.recv_messages.messages >= 4
            check()
            sent = flood.sent
            await asyncio.sleep(5 * MS)
            assert flood.sent == sent
            assert not transport(ws).is_reading()
            check()
            # Reading again lets everything through.
            await receive_flood(ws, flood, check)
            assert transport(ws).is_reading()

    async def test_compressed_messages_stay_bounded(
        self, side: Side, record_writes: Callable[[Connection], list[bytes]]
    ) -> None:
        # 16 KiB of zeros deflate to a few dozen bytes: one read holds thousands of them.
        async with connection_pair(side, max_queue=4) as (ws, peer):
            writes = record_writes(peer)
            flood = Flood(peer, bytes(16384))
            await until(lambda: not transport(ws).is_reading())
            assert min(len(write) for write in writes) < 100  # well compressed
            bound = 4 + messages_per_batch(4)

            def check() -> None:
                assert ws.recv_messages.messages <= bound

            check()
            await receive_flood(ws, flood, check)

    async def test_max_queue_none(self, side: Side) -> None:
        async with connection_pair(side, max_queue=None) as (ws, peer):
            for _ in range(1000):
                await peer.send(b"x")
            await until(lambda: ws.recv_messages.messages == 1000)
            assert transport(ws).is_reading()

    async def test_send_waits_for_drain(self, side: Side) -> None:
        options: dict[str, Any] = {"max_queue": 1, "write_limit": 4096, "compression": None}
        async with connection_pair(side, **options) as (ws, peer):
            flood = Flood(ws, b"x" * 4096)
            await until(lambda: transport(ws).get_write_buffer_size() > 4096)
            sent = flood.sent
            await asyncio.sleep(5 * MS)
            assert flood.sent == sent
            await receive_flood(peer, flood, lambda: None)

    async def test_connection_lost_while_send_waits(self, side: Side) -> None:
        async with connection_pair(side, max_queue=1, compression=None) as (ws, peer):
            flood = Flood(ws, b"x" * 4096)
            await until(lambda: transport(ws).get_write_buffer_size() > 32768)
            transport(peer).abort()
            with pytest.raises(ConnectionClosedError):
                await flood.task


@pytest.mark.parametrize("side", SIDES)
class TestKeepalive:
    async def test_pings_answered(self, side: Side) -> None:
        async with connection_pair(side, ping_interval=5 * MS, ping_timeout=5_000 * MS) as (
            ws,
            _,
        ):
            await until(lambda: ws.latency > 0)
            assert ws.state is State.OPEN

    async def test_peer_that_stops_answering(
        self, side: Side, raw_client: Any, raw_server: Any
    ) -> None:
        options = {"ping_interval": 20 * MS, "ping_timeout": 20 * MS, "close_timeout": 20 * MS}
        async with connection_with_raw_peer(side, raw_client, raw_server, **options) as ws:
            with pytest.raises(ConnectionClosedError) as raised:
                await ws.recv()
            assert raised.value.sent == Close(1011, "keepalive ping timeout")
            assert raised.value.rcvd is None
            await ws.wait_closed()
            assert ws.close_code == 1006

    async def test_pings_spaced_by_interval(
        self, side: Side, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # With ping_timeout shorter than ping_interval, the pong is checked early; but that
        # check must not send the next ping early.
        interval = 100 * MS
        async with connection_pair(side, ping_interval=interval, ping_timeout=50 * MS) as (ws, _):
            # The times at which the connection decided to ping, on its own clock: a gap
            # between the times send_ping() runs could shrink when the process is preempted.
            pinged_at: list[float] = []
            due = Keepalive.due

            def recording_due(self: Keepalive, now: float, pings: Any) -> Any:
                action, deadline = due(self, now, pings)
                if self is ws._keepalive and action is KeepaliveAction.PING:
                    pinged_at.append(now)
                return action, deadline

            monkeypatch.setattr(Keepalive, "due", recording_due)
            await until(lambda: len(pinged_at) >= 4)
            # Timers never fire early: a shorter gap is a ping sent before it was due.
            gaps = [
                later - earlier
                for earlier, later in zip(pinged_at[:-1], pinged_at[1:], strict=True)
            ]
            assert min(gaps) >= interval, gaps
            assert ws.state is State.OPEN

    async def test_no_keepalive(self, side: Side) -> None:
        async with connection_pair(side, ping_interval=None) as (ws, _):
            assert ws._keepalive_timer is None


@pytest.mark.parametrize("side", SIDES)
class TestCloseTimeout:
    async def test_peer_that_never_closes(
        self, side: Side, raw_client: Any, raw_server: Any
    ) -> None:
        options = {"ping_interval": None, "close_timeout": 20 * MS}
        async with connection_with_raw_peer(side, raw_client, raw_server, **options) as ws:
            await ws.close()
            assert ws.state is State.CLOSED
            assert ws.close_code == 1006
            with pytest.raises(ConnectionClosedError) as raised:
                await ws.recv()
            assert raised.value.sent == Close(1000, "")


@contextlib.asynccontextmanager
async def clients_of(
    server: Server, count: int, **options: Any
) -> AsyncIterator[list[ClientConnection]]:
    """``count`` clients connected to ``server``, open on both sides."""
    expected = len(server.connections) + count
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(connect(uri_of(server), **options))
            for _ in range(count)
        ]
        await until(lambda: len(server.connections) == expected)
        yield clients


async def wait_until_closed(connection: Connection) -> None:
    await connection.wait_closed()


class TestBroadcast:
    async def test_every_open_connection(self) -> None:
        async with serve(wait_until_closed, "127.0.0.1", 0) as server:
            async with clients_of(server, 3) as clients:
                assert broadcast(server.connections, "café") == BroadcastResult(3, 0)
                assert broadcast(server.connections, b"\x00") == (3, 0)
                assert broadcast(server.connections, bytearray(b"\x01")) == (3, 0)
                assert broadcast(server.connections, memoryview(b"\x02")) == (3, 0)
                for client in clients:
                    assert await client.recv() == "café"
                    assert await client.recv() == b"\x00"
                    assert await client.recv() == b"\x01"
                    assert await client.recv() == b"\x02"

    async def test_client_connections(self) -> None:
        received: asyncio.Queue[object] = asyncio.Queue()

        async def handler(connection: ServerConnection) -> None:
            async for message in connection:
                await received.put(message)

        async with serve(handler, "127.0.0.1", 0) as server:
            async with clients_of(server, 2) as clients:
                # Clients mask every frame with a fresh key: nothing is shared, all works.
                assert broadcast(clients, "from clients") == (2, 0)
                assert [await received.get(), await received.get()] == ["from clients"] * 2

    async def test_not_a_message(self) -> None:
        async with serve(wait_until_closed, "127.0.0.1", 0) as server:
            async with clients_of(server, 1):
                with pytest.raises(TypeError):
                    broadcast(server.connections, 42)  # type: ignore[arg-type]
                with pytest.raises(TypeError):
                    broadcast(server.connections, ["a", "b"])  # type: ignore[arg-type]

    async def test_closed_connections_ignored(self) -> None:
        async with serve(wait_until_closed, "127.0.0.1", 0) as server:
            async with clients_of(server, 3) as clients:
                connections = list(server.connections)
                closed = next(
                    c for c in connections if c.remote_address == clients[0].local_address
                )
                await clients[0].close()
                await closed.wait_closed()
                assert broadcast(connections, "to the living") == (2, 0)
                for client in clients[1:]:
                    assert await client.recv() == "to the living"

    async def test_closing_connections_ignored(self) -> None:
        async with serve(wait_until_closed, "127.0.0.1", 0) as server:
            async with clients_of(server, 1):
                (connection,) = server.connections
                closing = asyncio.create_task(connection.close())
                await asyncio.sleep(0)  # close() sent its close frame and waits
                assert connection.state is State.CLOSING
                assert broadcast([connection], "too late") == (0, 0)
                await closing

    async def test_connection_sending_fragmented_message_skipped(self) -> None:
        gate = asyncio.Event()

        async def fragments() -> AsyncIterator[str]:
            yield "a"
            await gate.wait()
            yield "b"

        async with serve(wait_until_closed, "127.0.0.1", 0) as server:
            async with clients_of(server, 2) as clients:
                busy, idle = sorted(
                    server.connections, key=lambda c: c.remote_address != clients[0].local_address
                )
                sending = asyncio.create_task(busy.send(fragments()))
                await until(lambda: busy.protocol._snd_fragmented)
                assert broadcast(server.connections, "broadcast") == (1, 1)
                gate.set()
                await sending
                assert await clients[0].recv() == "ab"
                assert await clients[1].recv() == "broadcast"

    async def test_slow_connection_skipped(self) -> None:
        async with serve(wait_until_closed, "127.0.0.1", 0, compression=None) as server:
            async with clients_of(server, 1, max_queue=1, compression=None) as (slow,):
                (slow_connection,) = server.connections
                async with clients_of(server, 2, compression=None) as fast:

                    async def read(client: ClientConnection) -> None:
                        async for _ in client:
                            pass

                    readers = [asyncio.create_task(read(client)) for client in fast]
                    message = bytes(range(256)) * 64
                    while True:
                        result = broadcast(server.connections, message)
                        if result.skipped:
                            break
                        assert result == (3, 0)
                        await asyncio.sleep(0)
                    assert result == (2, 1)
                    buffered = transport(slow_connection).get_write_buffer_size()
                    assert buffered > slow_connection.options.write_limit
                    # Skipped again and again: the buffer does not grow.
                    for _ in range(10):
                        assert broadcast(server.connections, message) == (2, 1)
                    assert transport(slow_connection).get_write_buffer_size() == buffered
                    for client in fast:
                        await client.close()
                    await asyncio.gather(*readers)

    async def test_skipped_connections_collected(self) -> None:
        gate = asyncio.Event()

        async def fragments() -> AsyncIterator[str]:
            yield "a"
            await gate.wait()
            yield "b"

        async with serve(wait_until_closed, "127.0.0.1", 0) as server:
            async with clients_of(server, 2) as clients:
                busy, idle = sorted(
                    server.connections, key=lambda c: c.remote_address != clients[0].local_address
                )
                sending = asyncio.create_task(busy.send(fragments()))
                await until(lambda: busy.protocol._snd_fragmented)
                skipped: list[Connection] = []
                assert broadcast(server.connections, "broadcast", skipped=skipped) == (1, 1)
                assert skipped == [busy]
                gate.set()
                await sending
                assert await clients[0].recv() == "ab"
                assert await clients[1].recv() == "broadcast"

    async def test_max_backlog(self) -> None:
        async with serve(wait_until_closed, "127.0.0.1", 0, compression=None) as server:
            async with clients_of(server, 1, max_queue=1, compression=None):
                (slow,) = server.connections
                message = bytes(range(256)) * 64
                while transport(slow).get_write_buffer_size() <= slow.options.write_limit:
                    assert broadcast([slow], message) == (1, 0)
                    await asyncio.sleep(0)
                buffered = transport(slow).get_write_buffer_size()
                # Past write_limit, within max_backlog: written.
                assert broadcast([slow], message, max_backlog=buffered) == (1, 0)
                buffered = transport(slow).get_write_buffer_size()
                skipped: list[Connection] = []
                assert broadcast([slow], message, max_backlog=buffered - 1, skipped=skipped) == (
                    0,
                    1,
                )
                assert skipped == [slow]
                # A lower limit than write_limit applies too.
                assert broadcast([slow], message, max_backlog=0) == (0, 1)
                assert transport(slow).get_write_buffer_size() == buffered
                transport(slow).abort()

    async def test_encoded_once_without_compression(self, monkeypatch: pytest.MonkeyPatch) -> None:
        calls = count_calls(monkeypatch, Protocol, "send_text")
        async with serve(wait_until_closed, "127.0.0.1", 0, compression=None) as server:
            async with clients_of(server, 3) as clients:
                assert broadcast(server.connections, "once") == (3, 0)
                assert len(calls) == 1
                for client in clients:
                    assert await client.recv() == "once"

    @pytest.mark.parametrize(
        ("no_context_takeover", "compressions"), [(True, 1), (False, 3)], ids=["without", "with"]
    )
    async def test_compression_context_takeover(
        self, monkeypatch: pytest.MonkeyPatch, no_context_takeover: bool, compressions: int
    ) -> None:
        # Without context takeover, a message compresses the same way on every connection.
        factory = ServerPerMessageDeflateFactory(server_no_context_takeover=no_context_takeover)
        async with serve(wait_until_closed, "127.0.0.1", 0, extensions=[factory]) as server:
            async with clients_of(server, 3) as clients:
                for connection in server.connections:
                    (extension,) = connection.protocol.extensions
                    assert isinstance(extension, PerMessageDeflate)
                    assert extension.local_no_context_takeover is no_context_takeover
                calls = count_calls(monkeypatch, PerMessageDeflate, "_compress")
                for index in range(3):
                    message = f"message {index} " * 100
                    assert broadcast(server.connections, message) == (3, 0)
                    assert len(calls) == compressions * (index + 1)
                    for client in clients:
                        assert await client.recv() == message

    async def test_compression_with_and_without_context_takeover(self) -> None:
        # Clients that negotiated different settings get the bytes made for their settings.
        async with serve(wait_until_closed, "127.0.0.1", 0) as server:
            async with clients_of(server, 2) as takeover:
                async with clients_of(server, 2, compression=None) as plain:
                    assert broadcast(server.connections, "mixed " * 100) == (4, 0)
                    for client in takeover + plain:
                        assert await client.recv() == "mixed " * 100


def count_calls(monkeypatch: pytest.MonkeyPatch, cls: type, name: str) -> list[object]:
    """Count the calls to a method of ``cls``, on every instance; returns the calls' self."""
    calls: list[object] = []
    method = getattr(cls, name)

    def counting(self: object, *args: Any, **kwargs: Any) -> Any:
        calls.append(self)
        return method(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, counting)
    return calls
