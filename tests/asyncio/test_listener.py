"""A Handler with a plain ``on_message`` (asyncio/handler.py), and what the connection does
for it (asyncio/connection.py): ``_listen`` delivers each message from the event loop as it
arrives, and the handler answers with ``send_nowait``.

Over real loopback connections. Where a test must know that the server read something, it
waits until the server's queue shows it (``until``); where it must know that the server
did not deliver something, it waits until the message sits in the queue, since delivery
happens in the same callback as the read. No test depends on timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import random
import socket
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest
from test_gather import burst, read_frame
from test_handler import Recorder, until, uri_of

import socketeer
from socketeer.asyncio.client import ClientConnection
from socketeer.asyncio.connection import Connection, broadcast
from socketeer.asyncio.server import ServerConnection, serve
from socketeer.exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
)
from socketeer.protocol import State
from socketeer.protocol.frames import CloseCode
from socketeer.typedefs import Data
from timing import MS

# Backpressure: a small write buffer, and answers that overflow it in a few messages.
WRITE_LIMIT = 1024
ANSWER = bytes(range(256)) * 64  # 16 KiB, sent without compression


class Listener(Recorder):
    """A :class:`~test_handler.Recorder` whose ``on_message`` is a plain method: it records
    the message, then calls :meth:`answer`, which echoes it with ``send_nowait``; errors are
    recorded as the exceptions themselves."""

    def on_message(  # type: ignore[override]  # plain, where the Recorder's is async
        self, ws: Connection, message: Data
    ) -> Awaitable[None] | None:
        self.events.append(("message", message))
        return self.answer(ws, message)

    def answer(self, ws: Connection, message: Data) -> Awaitable[None] | None:
        ws.send_nowait(message)
        return None

    async def on_error(self, ws: Connection, exc: Exception) -> None:
        self.events.append(("error", exc))


def transport(connection: Connection) -> asyncio.Transport:
    assert connection.transport is not None
    return connection.transport


async def until_frames(connection: Connection, count: int) -> None:
    await until(lambda: len(connection.recv_messages.frames or ()) == count)


def the_connection(server: socketeer.Server) -> ServerConnection:
    (connection,) = server.connections
    return connection


class TestDelivery:
    async def test_echo_text_and_binary(self) -> None:
        class Echo(Listener):
            pass

        big = random.Random(6455).randbytes(300_000)  # incompressible, more than one read
        sent: list[Data] = ["hello", b"\x00\x01", "", b"", "caf\u00e9", big]
        async with serve(Echo, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                for message in sent:
                    await ws.send(message)
                    answer = await ws.recv()
                    assert answer == message and type(answer) is type(message)
            await until(lambda: Echo.all and Echo.all[0].closed)
        (server_side,) = Echo.all
        assert server_side.events == [
            ("open",),
            *(("message", message) for message in sent),
            ("close", 1000, ""),
        ]
        assert [type(message) for message in server_side.messages] == [
            type(message) for message in sent
        ]

    async def test_many_messages_in_order(self) -> None:
        class Echo(Listener):
            pass

        sent = [str(number) if number % 2 else b"%d" % number for number in range(500)]
        async with serve(Echo, "127.0.0.1", 0, max_queue=4) as server:
            async with socketeer.connect(uri_of(server), max_queue=4) as ws:
                for message in sent:  # all at once: the server reads many in one go
                    ws.send_nowait(message)
                assert [await ws.recv() for _ in sent] == sent
            await until(lambda: Echo.all and Echo.all[0].closed)
        assert Echo.all[0].messages == sent

    async def test_fragmented_messages(self) -> None:
        class Echo(Listener):
            pass

        async def one_frame_per_read(parts: list[Data]) -> AsyncIterator[Data]:
            # The server reads each frame alone: each goes through the one-event path.
            connection = the_connection(server)
            for number, part in enumerate(parts, 1):
                yield part
                await until_frames(connection, number)

        async with serve(Echo, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                await ws.send(one_frame_per_read(["frag", "ment", "ed"]))
                assert await ws.recv() == "fragmented"
                await ws.send(one_frame_per_read([b"\x00", b"\x01\x02"]))
                assert await ws.recv() == b"\x00\x01\x02"
                await ws.send(["all ", "at ", "once"])  # one read, most likely
                assert await ws.recv() == "all at once"
                await ws.send("whole")
                assert await ws.recv() == "whole"
            await until(lambda: Echo.all and Echo.all[0].closed)
        assert Echo.all[0].messages == ["fragmented", b"\x00\x01\x02", "all at once", "whole"]

    async def test_control_frames_are_not_messages(self) -> None:
        class Echo(Listener):
            pass

        async with serve(Echo, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                await (await ws.ping(b"ping"))  # each read alone: the one-event path
                await ws.pong(b"pong")
                await ws.send("message")
                assert await ws.recv() == "message"
        assert Echo.all[0].messages == ["message"]

    async def test_messages_received_during_on_open_come_first(self) -> None:
        class SlowToOpen(Listener):
            async def on_open(self, ws: Connection) -> None:
                await super().on_open(ws)
                await until(lambda: ws.recv_messages.messages == 3)
                self.events.append(("opened",))

        async with serve(SlowToOpen, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                messages: list[Data] = ["1", b"2", "3"]
                for message in messages:
                    await ws.send(message)
                assert [await ws.recv() for _ in range(3)] == ["1", b"2", "3"]
                await ws.send("4")
                assert await ws.recv() == "4"
            await until(lambda: SlowToOpen.all and SlowToOpen.all[0].closed)
        assert SlowToOpen.all[0].events == [
            ("open",),
            ("opened",),
            ("message", "1"),
            ("message", b"2"),
            ("message", "3"),
            ("message", "4"),
            ("close", 1000, ""),
        ]

    async def test_default_on_message_drops_messages(self) -> None:
        assert not inspect.iscoroutinefunction(socketeer.Handler.on_message)
        assert socketeer.Handler().on_message(None, "hi") is None  # type: ignore[arg-type]
        async with serve(socketeer.Handler, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                for number in range(100):  # more than max_queue
                    ws.send_nowait(str(number))
                await (await ws.ping())  # the server read them all
                connection = the_connection(server)
                assert connection.recv_messages.messages == 0
                assert connection.state is State.OPEN
        assert ws.close_code == 1000

    async def test_on_close_once_with_the_code(self) -> None:
        class Echo(Listener):
            pass

        async with serve(Echo, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                await ws.send("hi")
                assert await ws.recv() == "hi"
                await ws.close(4001, "bye")
        # serve() waited for the handler: any second on_close would be there.
        assert Echo.all[0].events == [("open",), ("message", "hi"), ("close", 4001, "bye")]


request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")


class TestContext:
    async def test_variables_of_on_open_seen_and_kept(self) -> None:
        class Tagged(Listener):
            async def on_open(self, ws: Connection) -> None:
                await super().on_open(ws)
                request_id.set("set in on_open")
                await until(lambda: ws.recv_messages.messages == 1)  # "1" waits in the queue

            def answer(self, ws: Connection, message: Data) -> None:
                assert isinstance(message, str)
                ws.send_nowait(request_id.get("unset"))
                request_id.set(f"set by {message}")

        async with serve(Tagged, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                answers = []
                for message in ["1", "2", "3"]:  # each read alone, after the first
                    await ws.send(message)
                    answers.append(await ws.recv())
        assert answers == ["set in on_open", "set by 1", "set by 2"]
        assert request_id.get("unset") == "unset"  # nothing leaked into the test's context


class TestErrors:
    @pytest.mark.parametrize("queued", [False, True], ids=["arriving", "queued"])
    async def test_on_message_raises(self, queued: bool) -> None:
        boom = RuntimeError("boom")

        class Failing(Listener):
            async def on_open(self, ws: Connection) -> None:
                await super().on_open(ws)
                if queued:
                    await until(lambda: ws.recv_messages.messages == 3)

            def answer(self, ws: Connection, message: Data) -> None:
                if message == "bad":
                    raise boom
                ws.send_nowait(message)

        async with serve(Failing, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                if queued:
                    for message in ["ok", "bad", "never delivered"]:
                        await ws.send(message)
                    assert await ws.recv() == "ok"
                else:
                    await ws.send("ok")
                    assert await ws.recv() == "ok"
                    await ws.send("bad")
                await ws.wait_closed()
            await until(lambda: Failing.all and Failing.all[0].closed)
        assert ws.close_code == CloseCode.INTERNAL_ERROR
        assert Failing.all[0].events == [
            ("open",),
            ("message", "ok"),
            ("message", "bad"),
            ("error", boom),
            ("close", 1011, ""),
        ]

    async def test_own_connection_closed_is_no_error(self) -> None:
        class Late(Listener):
            async def on_open(self, ws: Connection) -> None:
                await super().on_open(ws)
                await until(lambda: ws.recv_messages.closed)  # the client closed meanwhile

        async with serve(Late, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                await ws.send("a")
                await ws.send("b")
            await until(lambda: Late.all and Late.all[0].closed)
        # send_nowait("a") raised ConnectionClosedOK: the end of the handler, not an error.
        assert Late.all[0].events == [("open",), ("message", "a"), ("close", 1000, "")]

    async def test_other_connection_closed_is_an_error(self) -> None:
        class Relay(Listener):
            def answer(self, ws: Connection, message: Data) -> None:
                other.send_nowait(message)

        async with serve(Relay, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as other:
                pass
            async with socketeer.connect(uri_of(server)) as ws:
                await ws.send("hi")
                await ws.wait_closed()
            await until(lambda: len(Relay.all) == 2 and Relay.all[1].closed)
        assert ws.close_code == CloseCode.INTERNAL_ERROR
        events = Relay.all[1].events
        assert events[:2] == [("open",), ("message", "hi")]
        assert isinstance(events[2][1], ConnectionClosedOK)
        assert events[3:] == [("close", 1011, "")]

    async def test_late_answer_while_server_closes_is_no_error(self) -> None:
        """A message that crosses the server's close frame (here: shutting down) is
        answered too late; the closing handshake then completes normally, both ways.

        An ``async def`` on_message that sends with ``await ws.send()`` gets
        ConnectionClosedOK and no on_error; a plain one that sends with ``send_nowait()``
        should not count as failed either (socketeer/handler.py: "with on_error only if it
        failed").
        """

        class Echo(Listener):
            pass

        async with serve(Echo, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                await until(lambda: Echo.all)
                connection = the_connection(server)
                transport(ws).pause_reading()  # the client does not see the close frame yet
                shutdown = server.close()  # closes with 1001
                await until(lambda: connection.state is State.CLOSING)
                ws.send_nowait("late")
                await until(lambda: len(Echo.all[0].events) > 1)
                transport(ws).resume_reading()
                await shutdown
        assert ws.close_code == CloseCode.GOING_AWAY
        assert Echo.all[0].events == [("open",), ("message", "late"), ("close", 1001, "")]


class TestReturnedAwaitables:
    async def test_awaited_before_the_next_message(self) -> None:
        gates = {"slow 1": asyncio.Event(), "slow 2": asyncio.Event()}
        log: list[str] = []

        class Slow(Listener):
            def answer(self, ws: Connection, message: Data) -> Awaitable[None] | None:
                assert isinstance(message, str)
                log.append(f"start {message}")
                if message in gates:
                    return self.slowly(ws, message)
                ws.send_nowait(message)
                return None

            async def slowly(self, ws: Connection, message: str) -> None:
                await gates[message].wait()
                log.append(f"end {message}")
                await ws.send(message)

        async with serve(Slow, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                for message in ["slow 1", "next", "slow 2", "last"]:
                    await ws.send(message)
                connection = the_connection(server)
                await until(lambda: connection.recv_messages.messages == 3 or len(log) > 1)
                assert log == ["start slow 1"]
                gates["slow 1"].set()
                assert await ws.recv() == "slow 1"
                assert await ws.recv() == "next"
                # Delivery stopped at "slow 1": the rest goes through the driver's loop,
                # which awaits what on_message returns just the same.
                await until(lambda: len(log) >= 4)
                assert log == ["start slow 1", "end slow 1", "start next", "start slow 2"]
                gates["slow 2"].set()
                assert await ws.recv() == "slow 2"
                assert await ws.recv() == "last"
        assert log[4:] == ["end slow 2", "start last"]

    async def test_returning_close(self) -> None:
        class Closer(Listener):
            def answer(self, ws: Connection, message: Data) -> Awaitable[None] | None:
                if message == "bye":
                    return ws.close(4000, "asked to")
                ws.send_nowait(message)
                return None

        async with serve(Closer, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                await ws.send("hi")
                await ws.send("bye")
                assert await ws.recv() == "hi"
                await ws.wait_closed()
            await until(lambda: Closer.all and Closer.all[0].closed)
        assert (ws.close_code, ws.close_reason) == (4000, "asked to")
        assert Closer.all[0].events == [
            ("open",),
            ("message", "hi"),
            ("message", "bye"),
            ("close", 4000, "asked to"),
        ]


class TestGathering:
    """Answers to the messages of one read go out together, in order with other writes
    (as in test_gather.py, for ``async for`` handlers)."""

    async def test_answers_to_a_burst(self, raw_client: Any) -> None:
        writes: list[int] = []

        class Counting(Listener):
            async def on_open(self, ws: Connection) -> None:
                await super().on_open(ws)
                write = transport(ws).write

                def counting_write(data: Any) -> None:
                    writes.append(len(data))
                    write(data)

                transport(ws).write = counting_write  # type: ignore[method-assign]

        payloads = [b"message %d" % number for number in range(50)]
        async with serve(Counting, "127.0.0.1", 0) as server:
            async with raw_client(server.sockets[0].getsockname()[1]) as (reader, writer):
                await until(lambda: Counting.all)
                writer.write(burst(*payloads))
                received = [await read_frame(reader) for _ in payloads]
        assert received == [(0x82, payload) for payload in payloads]
        assert Counting.all[0].messages == payloads
        assert len(writes) < len(payloads)  # one write per read of the burst, in practice

    async def test_other_writes_keep_their_place(self, raw_client: Any) -> None:
        class Answering(Listener):
            def answer(self, ws: Connection, message: Data) -> Awaitable[None] | None:
                ws.send_nowait(message)
                if message == b"3":
                    broadcast([ws], b"broadcast")
                elif message == b"5":
                    return ws.close(1000, "done")  # while 6 and 7 wait
                return None

        async with serve(Answering, "127.0.0.1", 0) as server:
            async with raw_client(server.sockets[0].getsockname()[1]) as (reader, writer):
                writer.write(burst(*[b"%d" % number for number in range(8)]))
                received = [await read_frame(reader) for _ in range(8)]
        assert received == [
            (0x82, b"0"),
            (0x82, b"1"),
            (0x82, b"2"),
            (0x82, b"3"),
            (0x82, b"broadcast"),
            (0x82, b"4"),
            (0x82, b"5"),
            (0x88, b"\x03\xe8done"),
        ]


class Stalling(Listener):
    """Answers each message with :data:`ANSWER` while the connection is open, and records
    in ``self.paused`` whether the write buffer was above ``write_limit`` when it came."""

    def __init__(self) -> None:
        super().__init__()
        self.paused: list[bool] = []

    def answer(self, ws: Connection, message: Data) -> None:
        self.paused.append(transport(ws).get_write_buffer_size() > WRITE_LIMIT)
        if ws.state is State.OPEN:
            ws.send_nowait(ANSWER)


Stalled = tuple[ClientConnection, ServerConnection, Stalling, int]


@contextlib.asynccontextmanager
async def stalled(**options: Any) -> AsyncIterator[Stalled]:
    """A client that stopped reading, and a :class:`Stalling` server whose write buffer is
    above ``write_limit`` after answering the client's first messages, one at a time.

    Yields the client, the server's connection and handler, and how many messages were
    answered.
    """

    class Answering(Stalling):
        pass

    options = {"compression": None, "write_limit": WRITE_LIMIT, **options}
    async with serve(Answering, "127.0.0.1", 0, **options) as server:
        async with socketeer.connect(uri_of(server)) as ws:
            await until(lambda: Answering.all)
            handler, connection = Answering.all[0], the_connection(server)
            assert isinstance(handler, Stalling)
            # The kernel then holds little of what the client leaves unread: a few answers
            # fill it.
            server_socket(connection).setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            transport(ws).pause_reading()
            answered = 0
            while transport(connection).get_write_buffer_size() <= WRITE_LIMIT:
                assert answered < 1000, "the server's write buffer does not fill"
                ws.send_nowait(str(answered))
                answered += 1
                await until_delivered(handler, answered)
            try:
                yield ws, connection, handler, answered
            finally:
                transport(ws).resume_reading()  # a failed test then ends without waiting


async def until_delivered(handler: Listener, count: int) -> None:
    await until(lambda: len(handler.messages) == count)


def unstall(ws: ClientConnection, connection: ServerConnection) -> None:
    """Read again on the client ``ws``, at full speed."""
    server_socket(connection).setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    transport(ws).resume_reading()


def server_socket(connection: ServerConnection) -> socket.socket:
    sock: socket.socket = transport(connection).get_extra_info("socket")
    return sock


async def send_more(
    ws: ClientConnection, connection: ServerConnection, handler: Listener, count: int
) -> None:
    """Send ``count`` more messages, and wait until the server read them: they wait in its
    queue, unless they were delivered."""
    queued, delivered = connection.recv_messages.messages, len(handler.messages)

    def arrived() -> int:
        return connection.recv_messages.messages - queued + len(handler.messages) - delivered

    for number in range(count):
        ws.send_nowait(f"more {number}")
    await until(lambda: arrived() == count)


class TestBackpressure:
    async def test_no_delivery_while_the_peer_does_not_read(self) -> None:
        async with stalled(max_queue=4) as (ws, connection, handler, answered):
            await send_more(ws, connection, handler, 1)  # read alone: the one-event path
            assert len(handler.messages) == answered
            # The messages wait, and reading pauses once max_queue of them do.
            for number in range(answered, answered + 20):
                ws.send_nowait(str(number))
            await until(
                lambda: not transport(connection).is_reading() or len(handler.messages) > answered
            )
            assert len(handler.messages) == answered
            assert 4 <= connection.recv_messages.messages <= 8
            # The client reads again: the buffer drains, delivery resumes.
            unstall(ws, connection)
            for _ in range(answered + 21):
                assert await ws.recv() == ANSWER
        assert handler.messages == [
            *(str(number) for number in range(answered)),
            "more 0",
            *(str(number) for number in range(answered, answered + 20)),
        ]
        assert not any(handler.paused)  # never delivered above write_limit
        assert handler.events[-1] == ("close", 1000, "")

    async def test_queued_messages_delivered_after_close_frame(self) -> None:
        async with stalled() as (ws, connection, handler, answered):
            await send_more(ws, connection, handler, 3)
            assert len(handler.messages) == answered
            closing = asyncio.create_task(ws.close())
            await until(lambda: connection.recv_messages.closed)
            # Delivered though the client still reads nothing.
            assert handler.messages[answered:] == ["more 0", "more 1", "more 2"]
            assert handler.paused[answered:] == [True, True, True]
            unstall(ws, connection)
            await closing
        assert handler.events[-1] == ("close", 1000, "")
        assert "error" not in [event[0] for event in handler.events]

    async def test_queued_messages_delivered_after_connection_lost(self) -> None:
        async with stalled() as (ws, connection, handler, answered):
            await send_more(ws, connection, handler, 3)
            assert len(handler.messages) == answered
            transport(ws).abort()
            await connection.wait_closed()
            assert handler.messages[answered:] == ["more 0", "more 1", "more 2"]
        assert isinstance(handler.events[-2][1], ConnectionClosedError)
        assert handler.events[-1] == ("close", 1006, "")

    async def test_cancelled_handler_gets_no_more_messages(self) -> None:
        async with stalled() as (ws, connection, handler, answered):
            await send_more(ws, connection, handler, 3)
            task = connection.handler_task
            assert task is not None
            task.cancel()  # as a server shutting down does with busy handlers
            with pytest.raises(asyncio.CancelledError):
                await task
            # The server aborted the connection: the queue closed, yet nothing came.
            await connection.wait_closed()
            transport(ws).resume_reading()
        assert len(handler.messages) == answered
        assert [event[0] for event in handler.events].count("close") == 1
        assert handler.events[-1] == ("close", 1006, "")


class TestSendNowait:
    async def test_kinds_of_messages(self) -> None:
        class Echo(Listener):
            pass

        async with serve(Echo, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                ws.send_nowait("text")
                ws.send_nowait(b"bytes")
                ws.send_nowait(bytearray(b"bytearray"))
                ws.send_nowait(memoryview(b"memoryview"))
                received = [await ws.recv() for _ in range(4)]
        assert received == ["text", b"bytes", b"bytearray", b"memoryview"]
        assert [type(message) for message in received] == [str, bytes, bytes, bytes]

    @pytest.mark.parametrize(
        "message", [{"a": 1}, 42, ["a", "b"], None], ids=["dict", "int", "list", "None"]
    )
    async def test_other_types_refused(self, message: Any) -> None:
        class Echo(Listener):
            pass

        name = type(message).__name__
        async with serve(Echo, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                with pytest.raises(TypeError, match=f"must be str or bytes-like, not {name}$"):
                    ws.send_nowait(message)
                ws.send_nowait("next")
                assert await ws.recv() == "next"  # nothing went out before it
                assert ws.state is State.OPEN

    async def test_compress(self) -> None:
        class Echo(Listener):
            pass

        writes: list[int] = []
        async with serve(Echo, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                write = transport(ws).write

                def counting_write(data: Any) -> None:
                    writes.append(len(data))
                    write(data)

                transport(ws).write = counting_write  # type: ignore[method-assign]
                ws.send_nowait("x" * 1000)
                ws.send_nowait("x" * 1000, compress=False)
                assert [await ws.recv() for _ in range(2)] == ["x" * 1000] * 2
        compressed, uncompressed = writes[:2]
        assert compressed < 100 < 1000 < uncompressed

    async def test_closed(self) -> None:
        async def drop(ws: ServerConnection) -> None:
            transport(ws).abort()

        class Echo(Listener):
            pass

        async with serve(Echo, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                pass
        with pytest.raises(ConnectionClosedOK):
            ws.send_nowait("after a normal closure")
        async with serve(drop, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                await ws.wait_closed()
                with pytest.raises(ConnectionClosedError):
                    ws.send_nowait("after an abnormal closure")

    async def test_closing(self, raw_server: Any) -> None:
        async with raw_server() as port:  # never answers the close frame
            uri = f"ws://127.0.0.1:{port}/"
            async with socketeer.connect(uri, close_timeout=10 * MS) as ws:
                closing = asyncio.create_task(ws.close())
                await until(lambda: ws.state is State.CLOSING)
                with pytest.raises(ConnectionClosed):
                    ws.send_nowait("while closing")
                await closing

    async def test_during_fragmented_send(self) -> None:
        class Echo(Listener):
            pass

        gate = asyncio.Event()

        async def fragments() -> AsyncIterator[str]:
            yield "a"
            await gate.wait()
            yield "b"

        async with serve(Echo, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                sending = asyncio.create_task(ws.send(fragments()))
                await until(lambda: Echo.all and the_connection(server).recv_messages.frames)
                with pytest.raises(ConcurrencyError):
                    ws.send_nowait("c")
                gate.set()
                await sending
                ws.send_nowait("c")
                assert [await ws.recv() for _ in range(2)] == ["ab", "c"]
        assert Echo.all[0].messages == ["ab", "c"]

    async def test_from_a_callback(self) -> None:
        class Echo(Listener):
            pass

        async with serve(Echo, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                asyncio.get_running_loop().call_soon(ws.send_nowait, "from a callback")
                assert await ws.recv() == "from a callback"

    async def test_never_waits(self) -> None:
        go = asyncio.Event()
        received: list[Data] = []

        async def slow_reader(ws: ServerConnection) -> None:
            transport(ws).pause_reading()
            await go.wait()
            transport(ws).resume_reading()
            async for message in ws:
                received.append(message)

        message = bytes(16384)
        async with serve(slow_reader, "127.0.0.1", 0, compression=None) as server:
            uri = uri_of(server)
            async with socketeer.connect(uri, compression=None, write_limit=WRITE_LIMIT) as ws:
                transport(ws).get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
                )
                sent = 0
                while transport(ws).get_write_buffer_size() <= WRITE_LIMIT:
                    assert sent < 1000, "the client's write buffer does not fill"
                    ws.send_nowait(message)
                    sent += 1
                    await asyncio.sleep(0)
                buffered = transport(ws).get_write_buffer_size()
                ws.send_nowait(message)  # above write_limit: buffered all the same
                assert transport(ws).get_write_buffer_size() > buffered + len(message)
                sending = asyncio.create_task(ws.send(message))
                await asyncio.sleep(0)
                assert not sending.done()  # send(), by contrast, waits
                go.set()
                await sending
        assert received == [message] * (sent + 2)


class TestRun:
    async def test_client_with_plain_on_message(self) -> None:
        class Echo(Listener):
            pass

        class Client(Listener):
            async def on_open(self, ws: Connection) -> None:
                await super().on_open(ws)
                await ws.send("hello")

            def answer(self, ws: Connection, message: Data) -> Awaitable[None] | None:
                if message == "hello":
                    ws.send_nowait(b"world")
                    return None
                return ws.close()

        async with serve(Echo, "127.0.0.1", 0) as server:
            await socketeer.run(uri_of(server), Client)
            await until(lambda: Echo.all and Echo.all[0].closed)
        assert Client.all[0].events == [
            ("open",),
            ("message", "hello"),
            ("message", b"world"),
            ("close", 1000, ""),
        ]
        assert Echo.all[0].messages == ["hello", b"world"]
