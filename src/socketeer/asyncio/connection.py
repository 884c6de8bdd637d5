"""A WebSocket connection on asyncio: the sans-I/O protocol driven by a buffered protocol.

Theory of operation
-------------------

:class:`Connection` is the :class:`asyncio.BufferedProtocol` of its transport and the object
the application uses. The event loop reads into one buffer owned by the connection
(:meth:`~Connection.get_buffer`) and calls :meth:`~Connection.buffer_updated`, which feeds
the bytes to the sans-I/O :class:`~socketeer.protocol.Protocol` and then, in this order
(websockets' order): takes the events, writes what the protocol wants written, arms the
close timer if the peer is now expected to close the TCP connection, and dispatches the
events (data frames to the :class:`~socketeer.asyncio.messages.Assembler`, pongs to the
ping waiters, the handshake message to the client or server subclass).

The application's calls (``send``, ``ping``, ``close``) go to the protocol too, then write
what it produced. No rule of RFC 6455 is decided here: this module only moves bytes, runs
timers and wakes coroutines. One exception to "write at once": a message sent while more
received messages wait unread is held back (up to :data:`GATHER_LIMIT` bytes) and written
with the next ones, before any other write, and at the latest on the loop's next turn, so
that answering a burst of messages costs one system call rather than one per answer.

Flow control, both ways:

- reading pauses when ``max_queue`` whole messages wait unread, and resumes when the
  application caught up (the assembler decides). The protocol stops parsing after
  ``max_queue`` messages (its ``max_pending``) and keeps the rest of a read until the
  application is ready, so that one read full of small (or highly compressed) messages
  does not overfill the queue;
- once a close frame was sent, reading never pauses: the peer's close frame must come
  through, and messages that do not fit in the queue any more are dropped;
- ``send`` waits while the transport's buffer is above ``write_limit`` (the transport calls
  :meth:`~Connection.pause_writing` and :meth:`~Connection.resume_writing`).

Timers: keepalive pings every ``ping_interval`` (the connection fails with 1011 when a pong
does not come within ``ping_timeout``), and ``close_timeout`` for the peer to finish the
closing handshake, after which the transport is aborted. Pongs are read like everything else:
an application that leaves ``max_queue`` messages unread for longer than ``ping_timeout``
stops reading, misses the pong, and its own keepalive fails the connection.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Iterable,
    Mapping,
)
from types import TracebackType
from typing import Any, Literal, cast, overload

from ..connection import (
    BroadcastResult,
    ConnectionBase,
    as_bytes,
    broadcast_message,
    is_text,
)
from ..exceptions import (
    ConcurrencyError,
    ConnectionClosedOK,
    InvalidState,
)
from ..options import ConnectionOptions
from ..protocol.base import CLOSING, CONNECTING, OPEN, Event, Protocol
from ..protocol.frames import OP_BINARY, OP_CONT, OP_PONG, OP_TEXT, CloseCode, Frame
from ..protocol.keepalive import Keepalive, KeepaliveAction, Pings
from ..typedefs import BytesLike, Data, LoggerLike
from .messages import Assembler

__all__ = ["Connection", "READ_BUFFER_SIZE", "broadcast", "BroadcastResult"]

READ_BUFFER_SIZE = 262_144
"""Bytes the event loop may read at once."""

GATHER_LIMIT = 65_536
"""Bytes of answers to received messages gathered at most before they are written."""

# The event loop reads into a buffer that get_buffer() returns and hands it back at once to
# buffer_updated(), which copies what it keeps: connections of one thread can share it, and
# an idle connection holds no read buffer of its own.
_thread_local = threading.local()


def _read_buffer() -> memoryview:
    """The read buffer of the connections of this thread's event loop."""
    buffer: memoryview | None = getattr(_thread_local, "read_buffer", None)
    if buffer is None:
        buffer = _thread_local.read_buffer = memoryview(bytearray(READ_BUFFER_SIZE))
    return buffer


class Connection(ConnectionBase, asyncio.BufferedProtocol):
    """A WebSocket connection, client or server side; see the module's theory of operation.

    Applications get one from :func:`~socketeer.connect` or in a handler of
    :func:`~socketeer.serve`; they do not create it.
    """

    # add_close_callback(): a class attribute until the first one is added, so that
    # connections without any pay one test, when they close.
    _close_callbacks: dict[object, Callable[[Connection], object]] | None = None
    # _listen(): class attributes until a handler with a plain on_message listens.
    _listener: Callable[[Data], object] | None = None
    _listening: asyncio.Future[object] | None = None
    _listener_context: contextvars.Context | None = None
    _delivering = False

    def __init__(self, protocol: Protocol, options: ConnectionOptions) -> None:
        self.protocol = protocol
        """The sans-I/O protocol this connection drives."""
        self.options = options
        self.loop = asyncio.get_running_loop()
        self.logger: LoggerLike = protocol.logger
        self.debug = protocol.debug
        self.transport: asyncio.Transport | None = None
        self.recv_messages: Assembler = Assembler(
            self._pause_reading, self._resume_reading, options.max_queue
        )
        protocol.max_pending = options.max_queue
        self._buffer = _read_buffer()
        self._closed: asyncio.Future[None] = self.loop.create_future()
        self._eof_received = False
        self._writing_paused = False
        # Frames sent while more received messages wait, written together: see _gather().
        self._gathered: list[bytes] | None = None
        self._gathered_size = 0
        self._drain_waiter: asyncio.Future[None] | None = None
        self._fragmented_send: asyncio.Future[None] | None = None
        self._pings: Pings[asyncio.Future[float]] = Pings()
        self._keepalive = Keepalive(options.ping_interval, options.ping_timeout)
        self._keepalive_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None

    # Public attributes

    @property
    def local_address(self) -> Any:
        """The local address of the socket (e.g. ``(host, port)``)."""
        return None if self.transport is None else self.transport.get_extra_info("sockname")

    @property
    def remote_address(self) -> Any:
        """The remote address of the socket (e.g. ``(host, port)``)."""
        return None if self.transport is None else self.transport.get_extra_info("peername")

    # Receiving

    @overload
    async def recv(self, decode: Literal[True]) -> str: ...

    @overload
    async def recv(self, decode: Literal[False]) -> bytes: ...

    @overload
    async def recv(self, decode: bool | None = None) -> Data: ...

    async def recv(self, decode: bool | None = None) -> Data:
        """Receive the next message: :class:`str` for text, :class:`bytes` for binary.

        Args:
            decode: ``False`` returns text messages as bytes (no decoding); ``True`` decodes
                binary messages as UTF-8 too.

        Raises:
            ConnectionClosed: when the connection is closed and every message was received;
                :exc:`~socketeer.exceptions.ConnectionClosedOK` after a normal closure.
            ConcurrencyError: if another coroutine is already waiting in ``recv``.
        """
        # Assembler.get(), inlined as in __anext__.
        messages = self.recv_messages
        while not messages.messages:
            if messages.closed:
                raise self._closed_exc() from self.protocol.parser_exc
            await messages.wait()
        return messages.take_message(decode)

    async def recv_frame(self) -> Frame:
        """Receive the next data frame as it arrived (fragments are not joined).

        For tools and proxies. Control frames are answered by the connection itself.

        Raises:
            ConnectionClosed: when the connection is closed and every frame was received.
            ConcurrencyError: if another coroutine is already waiting.
        """
        try:
            return await self.recv_messages.get_frame()
        except EOFError:
            pass
        raise self._closed_exc() from self.protocol.parser_exc

    def __aiter__(self) -> Connection:
        """Iterate over messages until the connection closes.

        Ends quietly after a normal closure; raises
        :exc:`~socketeer.exceptions.ConnectionClosedError` after an abnormal one.
        """
        return self

    async def __anext__(self) -> Data:
        # The hot path of most handlers: Assembler.get() inlined, so that waiting for a
        # message is one future awaited here, with no coroutine frame in between.
        messages = self.recv_messages
        while not messages.messages:
            if messages.closed:
                break
            await messages.wait()
        else:
            return messages.take_message()
        exc = self._closed_exc()
        if isinstance(exc, ConnectionClosedOK):
            raise StopAsyncIteration
        raise exc from self.protocol.parser_exc

    # Sending

    async def send(
        self,
        message: Data | BytesLike | Iterable[Data | BytesLike] | AsyncIterable[Data | BytesLike],
        *,
        compress: bool = True,
    ) -> None:
        """Send a message; wait if the write buffer is full.

        Args:
            message: :class:`str` for a text message; bytes-like for a binary message; an
                iterable or async iterable of :class:`str` or of bytes for a fragmented
                message, one frame per item.
            compress: ``False`` sends this message uncompressed even with permessage-deflate.

        Raises:
            ConnectionClosed: if the connection is closing or closed.
            TypeError: for any other kind of message.
        """
        while self._fragmented_send is not None:
            await asyncio.shield(self._fragmented_send)
        protocol = self.protocol
        try:
            # What send_nowait() does, inlined on the hot path.
            if isinstance(message, str):
                protocol.send_text(message, True, compress)
            elif isinstance(message, (bytes, bytearray, memoryview)):
                protocol.send_binary(message, True, compress)
            elif isinstance(message, Mapping):
                raise TypeError("a mapping is not a message; serialize it first")
            elif isinstance(message, Iterable):
                await self._send_fragments(aiter_of(message), compress)
                return
            elif isinstance(message, AsyncIterable):
                await self._send_fragments(message.__aiter__(), compress)
                return
            else:
                raise TypeError(f"message must be str or bytes-like, not {type(message).__name__}")
        except InvalidState:
            await self._raise_when_closed()
            raise
        writes = protocol.data_to_send()  # _write_pending(), inlined on the hot path
        transport = self.transport
        if len(writes) == 1 and writes[0] and transport is not None:
            if self.recv_messages.messages or self._gathered:
                self._gather(writes[0])
            else:
                transport.write(writes[0])  # one frame: _write(), inlined
        elif writes:
            self._write(writes)
        if self._writing_paused:
            await self._drain()

    def send_nowait(self, message: Data | BytesLike, *, compress: bool = True) -> None:
        """Send a whole message at once, for code that cannot wait: a plain (not ``async``)
        ``on_message`` of a :class:`~socketeer.Handler`, or a callback.

        Unlike :meth:`send`, it never waits for the write buffer to drain. A plain
        ``on_message`` that answers messages needs nothing more: while the buffer is above
        ``write_limit``, no message is delivered to it and reading pauses once ``max_queue``
        wait, so a peer that does not read its answers cannot make memory grow. Code that
        sends on its own initiative should ``await`` :meth:`send`, which waits.

        Args:
            message: :class:`str` for a text message; bytes-like for a binary message.
            compress: ``False`` sends this message uncompressed even with permessage-deflate.

        Raises:
            ConnectionClosed: if the connection is closing or closed.
            ConcurrencyError: while :meth:`send` is sending a fragmented message.
            TypeError: for any other kind of message.
        """
        if self._fragmented_send is not None:
            raise ConcurrencyError("cannot send a message while a fragmented one is being sent")
        protocol = self.protocol
        try:
            if isinstance(message, str):
                protocol.send_text(message, True, compress)
            elif isinstance(message, (bytes, bytearray, memoryview)):
                protocol.send_binary(message, True, compress)
            else:
                raise TypeError(f"message must be str or bytes-like, not {type(message).__name__}")
        except InvalidState:
            self._raise_if_closed()
            raise
        # A message sent while more received messages wait is gathered with the next
        # answers (see _gather()); else written at once.
        writes = protocol.data_to_send()  # _write_pending(), inlined on the hot path
        transport = self.transport
        if len(writes) == 1 and writes[0] and transport is not None:
            if self.recv_messages.messages or self._gathered:
                self._gather(writes[0])
            else:
                transport.write(writes[0])  # one frame: _write(), inlined
        elif writes:
            self._write(writes)

    async def _send_fragments(
        self, fragments: AsyncIterator[Data | BytesLike], compress: bool
    ) -> None:
        protocol = self.protocol
        done = self._fragmented_send = self.loop.create_future()
        try:
            first = await anext_or_none(fragments)
            if first is None:
                raise TypeError("a fragmented message needs at least one fragment")
            text = is_text(first)
            try:
                if text:
                    protocol.send_text(first, fin=False, compress=compress)
                else:
                    protocol.send_binary(as_bytes(first), fin=False, compress=compress)
            except InvalidState:
                await self._raise_when_closed()
                raise
            self._write_pending()
            try:
                while (fragment := await anext_or_none(fragments)) is not None:
                    if is_text(fragment) is not text:
                        raise TypeError("all fragments must be str, or all bytes-like")
                    protocol.send_continuation(fragment, fin=False)
                    self._write_pending()
                    if self._writing_paused:
                        await self._drain()
                protocol.send_continuation(b"", fin=True)
                self._write_pending()
            except BaseException as exc:
                # The message cannot be finished: RFC 6455 has no way to abort one but closing.
                if protocol.state is OPEN:
                    protocol.fail(CloseCode.INTERNAL_ERROR, "error in fragmented message")
                    self._process()
                elif isinstance(exc, InvalidState):
                    await self._raise_when_closed()
                raise
        finally:
            self._fragmented_send = None
            done.set_result(None)
        if self._writing_paused:
            await self._drain()

    async def ping(self, data: Data | None = None) -> Awaitable[float]:
        """Send a ping; return a waiter that the pong resolves with the round-trip time.

        Use ``latency = await (await connection.ping())``.

        Args:
            data: the ping's payload (at most 125 bytes); unique random bytes by default.

        Raises:
            ConnectionClosed: if the connection is closing or closed.
            ConcurrencyError: if a ping with the same payload waits for its pong.
        """
        payload = self._pings.new_payload() if data is None else as_bytes(data)
        if payload in self._pings:
            raise ConcurrencyError("already waiting for a pong with the same data")
        try:
            self.protocol.send_ping(payload)
        except InvalidState:
            await self._raise_when_closed()
            raise
        waiter: asyncio.Future[float] = self.loop.create_future()
        self._pings.sent(payload, self.loop.time(), waiter)
        self._write_pending()
        return waiter

    async def pong(self, data: Data = b"") -> None:
        """Send an unsolicited pong (pings are answered automatically).

        Raises:
            ConnectionClosed: if the connection is closing or closed.
        """
        try:
            self.protocol.send_pong(as_bytes(data))
        except InvalidState:
            await self._raise_when_closed()
            raise
        self._write_pending()

    async def send_frame(self, frame: Frame, *, compress: bool = True) -> None:
        """Send one frame as it is, for tools and proxies; RFC 6455's rules still apply.

        Raises:
            ConnectionClosed: if the connection is closing or closed.
            ProtocolError: if the frame breaks RFC 6455 on its own.
        """
        try:
            self.protocol.send_frame(frame, compress=compress)
        except InvalidState:
            await self._raise_when_closed()
            raise
        self._write_pending()
        if self._writing_paused:
            await self._drain()

    async def _raise_when_closed(self) -> None:
        """After :exc:`InvalidState` from sending: while the connection is closing (the
        server shutting down, the peer's close frame answered), wait until it is closed (the
        close timer bounds the wait), so that a handler sending then ends as the connection
        did, with :exc:`ConnectionClosedOK` after a normal closing handshake; then raise
        what :meth:`_raise_if_closed` raises."""
        if self.protocol.state is CLOSING:
            await asyncio.shield(self._closed)
        self._raise_if_closed()

    # Closing

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Run the closing handshake and wait for the TCP connection to end.

        Waits at most ``close_timeout`` for the peer, then aborts the connection. Closing
        a connection that is already closing or closed just waits for the end. Messages
        received before can still be read with :meth:`recv`; those that arrive once
        ``max_queue`` wait unread are dropped.

        Raises:
            ValueError: if the code cannot be sent or the reason is too long.
        """
        protocol = self.protocol
        if protocol.state is OPEN:
            if self._fragmented_send is not None:
                # The fragmented message will never be finished.
                protocol.fail(CloseCode.INTERNAL_ERROR, "close during fragmented message")
            else:
                protocol.send_close(code, reason)
            self._process()
        elif protocol.state is CONNECTING and self.transport is not None:
            self.transport.close()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed (the TCP connection ended)."""
        await asyncio.shield(self._closed)

    def add_close_callback(self, callback: Callable[[Connection], object]) -> Callable[[], None]:
        """Call ``callback(connection)`` once the connection is closed.

        For code that keeps connections in tables (such as :class:`~socketeer.pubsub.Rooms`)
        and must let go of them when they close, without a task per connection. Callbacks
        run in the order they were added, when the TCP connection ends, before
        :meth:`wait_closed` returns to anyone (soon, from the event loop, if the connection
        is closed already). They must not block; what one raises is logged.

        Returns:
            A function that removes the callback, if it has not started running yet.
        """
        if self._closed.done():
            return self.loop.call_soon(self._run_close_callback, callback).cancel
        callbacks = self._close_callbacks
        if callbacks is None:
            callbacks = self._close_callbacks = {}
        key = object()  # the same callback may be added twice, and removed once
        callbacks[key] = callback

        def remove() -> None:
            callbacks.pop(key, None)

        return remove

    def _run_close_callbacks(self) -> None:
        callbacks, self._close_callbacks = self._close_callbacks, None
        assert callbacks is not None
        for callback in list(callbacks.values()):  # a callback may remove itself
            self._run_close_callback(callback)

    def _run_close_callback(self, callback: Callable[[Connection], object]) -> None:
        try:
            callback(self)
        except Exception:
            self.logger.error("close callback failed", exc_info=True)

    # asyncio.BufferedProtocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # No isinstance check: uvloop's transports subclass no asyncio class.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(self.options.write_limit)

    def get_buffer(self, sizehint: int) -> memoryview:
        # The rest of a large payload is read where it will stay, but for its last byte;
        # anything else goes to the shared buffer. uvloop still holds the view it read into
        # while buffer_updated() runs, and a payload that a view may still write to cannot be
        # handed over without a copy: the last byte, read into the shared buffer, completes
        # it when nothing holds a view of it any more (a 1 MiB message: one copy less).
        into = self.protocol.payload_buffer
        return self._buffer if into is None or len(into) < 2 else into[:-1]

    def buffer_updated(self, nbytes: int) -> None:
        protocol = self.protocol
        into = protocol.payload_buffer
        if into is None or len(into) < 2:  # as get_buffer() decided
            protocol.receive_data(self._buffer[:nbytes])
        else:
            protocol.receive_into(nbytes)
        if protocol.state is not OPEN:
            self._process()
            if protocol.state is CONNECTING:
                self._read_while_connecting()
        else:
            # The hot path: _process() for an OPEN connection, inlined; most reads produce
            # nothing to write (callgrind: data_to_send() was 2% of an echo).
            events = protocol.events_received()
            if protocol._writes:
                self._write(protocol.data_to_send())
            if events:
                if self._listener is not None and len(events) == 1:
                    self._deliver_one(events[0])
                else:
                    self._dispatch(events)
        if protocol.unparsed:
            self._parse_unparsed()

    def _read_while_connecting(self) -> None:
        """Hook for subclasses: bytes arrived during the opening handshake."""

    def _parse_unparsed(self) -> None:
        # The protocol stops parsing after max_queue messages, so that one read full of
        # small (or highly compressed) messages cannot overfill the queue: parse on while
        # the application keeps up.
        protocol = self.protocol
        while protocol.unparsed and not self.recv_messages.paused:
            protocol.receive_data(b"")
            self._process()

    def eof_received(self) -> bool | None:
        self._eof_received = True
        self.protocol.receive_eof()
        self._process()
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._eof_received:
            self._eof_received = True
            self.protocol.receive_eof()
            self.protocol.data_to_send()  # nowhere to write it any more
            self._dispatch(self.protocol.events_received())
        self.recv_messages.close()
        if self._listener is not None:
            self._deliver()  # the end of the messages
        if self._gathered:
            self._gathered.clear()  # nowhere to write them any more
        for timer in (self._keepalive_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        waiters = self._pings.clear()
        if waiters:  # most connections close with none: no exception to build then
            closed = self._closed_exc()
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(closed)
                    waiter.exception()  # nobody may be waiting: no "never retrieved" warning
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        if not self._closed.done():
            self._closed.set_result(None)
        if self._close_callbacks:
            self._run_close_callbacks()
        self.connection_closed(exc)

    def connection_closed(self, exc: Exception | None) -> None:
        """Hook for subclasses, called once the connection is closed."""

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        self._drain_waiter = None
        if self._listener is not None:
            self._deliver()

    async def _drain(self) -> None:
        if self._closed.done():
            raise self._closed_exc() from self.protocol.parser_exc
        if self._drain_waiter is None:
            self._drain_waiter = self.loop.create_future()
        await asyncio.shield(self._drain_waiter)
        if self._closed.done() and self._writing_paused:
            raise self._closed_exc() from self.protocol.parser_exc

    def _pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        self._parse_unparsed()
        transport = self.transport
        if not self.recv_messages.paused and transport is not None and not transport.is_closing():
            transport.resume_reading()

    # Moving bytes and events

    def _process(self) -> None:
        """After the protocol changed: write, arm the close timer, dispatch the events."""
        protocol = self.protocol
        events = protocol.events_received()
        writes = protocol.data_to_send()
        if writes:
            self._write(writes)
        # While the connection is OPEN, nothing below applies: skip it on the hot path.
        opened = protocol.state is OPEN
        if not opened and self._close_timer is None and protocol.close_expected():
            self._arm_close_timer()
        if events:
            self._dispatch(events)
        if not opened:
            self._closing_queue()
            if self._listener is not None:
                self._deliver()  # the end of the messages, when the queue closed

    def _write_pending(self) -> None:
        writes = self.protocol.data_to_send()
        if writes:
            self._write(writes)

    def _gather(self, data: bytes) -> None:
        """Write a frame sent while more received messages wait, with the next ones.

        A handler that answers each message (``async for message in connection: await
        connection.send(...)``) then makes one system call for all the answers to what one
        read brought, instead of one per answer: it is most of the cost of a small message.
        The frames go out when no received message waits any more, past
        :data:`GATHER_LIMIT` bytes, before any other write, and at the latest on the
        event loop's next turn.
        """
        gathered = self._gathered
        if not gathered:
            if gathered is None:
                gathered = self._gathered = []
            self.loop.call_soon(self._write_gathered)
        gathered.append(data)
        self._gathered_size += len(data)
        if not self.recv_messages.messages or self._gathered_size >= GATHER_LIMIT:
            self._write_gathered()

    def _write_gathered(self) -> None:
        gathered = self._gathered
        if not gathered:  # written already
            return
        data = gathered[0] if len(gathered) == 1 else b"".join(gathered)
        gathered.clear()
        self._gathered_size = 0
        if self.transport is not None:
            self.transport.write(data)

    def _write(self, writes: list[bytes]) -> None:
        if self._gathered:
            self._write_gathered()
        transport = self.transport
        if transport is None:
            return
        for data in writes:
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()  # e.g. TLS, which cannot half-close

    def _dispatch(self, events: list[Event]) -> None:
        for event in events:
            if type(event) is Frame:
                opcode = event.opcode
                if opcode is OP_TEXT or opcode is OP_BINARY or opcode is OP_CONT:
                    self.recv_messages.put(event)
                elif opcode is OP_PONG:
                    now = self.loop.time()
                    for waiter, latency in self._pings.pong(event.data, now):
                        if not waiter.done():
                            waiter.set_result(latency)
            else:
                self.handshake_event(event)
        if self._listener is not None:
            self._deliver()

    # Delivering messages to a listener (a Handler's plain on_message)

    def _listen(self, listener: Callable[[Data], object]) -> asyncio.Future[object]:
        """Deliver each message to ``listener`` as it arrives, instead of queueing it for
        :meth:`recv`: called from the event loop, in the context of the caller's task, one
        message at a time and in order, with no task switch in between.

        Messages already queued are delivered first. Delivery waits while the write buffer
        is above ``write_limit`` (the messages queue meanwhile, and reading pauses once
        ``max_queue`` wait), so a listener that answers each message cannot make memory grow.

        Returns:
            A future that ends the delivery when it is done, and is done: with what the
            listener returned, if not ``None`` (an awaitable for the caller to await before
            it reads the next message); with the exception the listener raised; with
            ``None`` when no message will come any more. Cancelling it ends the delivery.
        """
        listening = self.loop.create_future()
        self._listener = listener
        self._listening = listening
        self._listener_context = contextvars.copy_context()
        listening.add_done_callback(self._stop_listening)
        self._deliver()
        return listening

    def _deliver_one(self, event: Event) -> None:
        """The one event of a read, to the listener: the hot path of request and response,
        which a message takes straight to the listener, without the queue, when nothing
        else waits."""
        listening, listener, context = self._listening, self._listener, self._listener_context
        assert listening is not None and listener is not None and context is not None
        if (
            type(event) is not Frame
            or not event.fin
            or not (event.opcode is OP_BINARY or event.opcode is OP_TEXT)
            or self.recv_messages.frames
            or self._writing_paused
            or listening.done()
        ):
            self._dispatch([event])
            return
        message = event.data.decode() if event.opcode is OP_TEXT else event.data
        try:
            result = context.run(listener, message)
        except Exception as exc:
            listening.set_exception(exc)
            return
        if result is not None:
            listening.set_result(result)

    def _stop_listening(self, listening: asyncio.Future[object]) -> None:
        if self._listening is listening:
            self._listener = self._listening = self._listener_context = None

    def _deliver(self) -> None:
        """Hand the queued messages to the listener, then write the answers it gathered."""
        if self._delivering:  # called again from within the listener: the loop below goes on
            return
        context = self._listener_context
        assert context is not None  # listening
        self._delivering = True
        try:
            context.run(self._deliver_messages)
        finally:
            self._delivering = False
        if self._gathered:
            self._write_gathered()

    def _deliver_messages(self) -> None:
        messages = self.recv_messages
        listening = self._listening
        listener = self._listener
        assert listening is not None and listener is not None  # listening
        # Once no frame comes any more, the last messages go to the listener even if the
        # peer stopped reading: there are at most max_queue of them.
        while (
            messages.messages
            and not (self._writing_paused and not messages.closed)
            and not listening.done()
        ):
            try:
                result = listener(messages.take_message())
            except Exception as exc:
                listening.set_exception(exc)
                return
            if result is not None:
                listening.set_result(result)
                return
        if messages.closed and not messages.messages and not listening.done():
            listening.set_result(None)

    def handshake_event(self, event: Event) -> None:
        """Handle the request or response of the opening handshake; subclasses implement it."""

    # Timers

    def _arm_close_timer(self) -> None:
        timeout = self.options.close_timeout
        if timeout is not None and self.transport is not None:
            self._close_timer = self.loop.call_later(timeout, self._close_timed_out)

    def _close_timed_out(self) -> None:
        if self.debug:
            self.logger.debug("! timed out waiting for TCP close")
        if self.transport is not None:
            self.transport.abort()

    def start_keepalive(self) -> None:
        """Send a ping every ``ping_interval`` seconds, once the connection is open."""
        deadline = self._keepalive.start(self.loop.time())
        if deadline is not None:
            self._keepalive_timer = self.loop.call_at(deadline, self._on_keepalive)

    def _on_keepalive(self) -> None:
        self._keepalive_timer = None
        if self.protocol.state is not OPEN:
            return
        now = self.loop.time()
        action, deadline = self._keepalive.due(now, self._pings)
        if action is KeepaliveAction.FAIL:
            self._fail_keepalive()
            return
        if action is KeepaliveAction.PING:
            data = self._pings.new_payload()
            self.protocol.send_ping(data)
            waiter: asyncio.Future[float] = self.loop.create_future()
            self._pings.sent(data, now, waiter)
            self._write_pending()
        assert deadline is not None
        self._keepalive_timer = self.loop.call_at(deadline, self._on_keepalive)

    def _fail_keepalive(self) -> None:
        if self.debug:
            self.logger.debug("! timed out waiting for keepalive pong")
        self.protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        self._write_pending()
        transport = self.transport
        if transport is not None:
            # A peer that answers no ping will not read a close frame either: do not wait.
            transport.abort()

    # Async context manager

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # 1000 even after an exception, as websockets does: RFC 6455 defines 1011 for servers
        # only, and the application's error is none of the peer's business.
        await self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.state.name}>"


async def aiter_of(items: Iterable[Data | BytesLike]) -> AsyncIterator[Data | BytesLike]:
    """An async iterator over a plain iterable."""
    for item in items:
        yield item


async def anext_or_none(iterator: AsyncIterator[Data | BytesLike]) -> Data | BytesLike | None:
    """The next item, or ``None`` at the end."""
    try:
        return await iterator.__anext__()
    except StopAsyncIteration:
        return None


def broadcast(
    connections: Iterable[Connection],
    message: Data | BytesLike,
    *,
    max_backlog: int | None = None,
    skipped: list[Connection] | None = None,
) -> BroadcastResult:
    """Send a message to many connections at once, waiting for none of them.

    The message is encoded once for all the connections that put it on the wire the same way
    (server connections without compression, or with compression without context takeover
    and the same settings), and written to each open connection's transport. A connection
    whose write buffer is already past its ``write_limit`` (or ``max_backlog``) is skipped
    rather than waited for, so a slow client never slows the others nor makes memory grow:
    the result counts them. Closed and closing connections are ignored.

    Args:
        connections: the recipients.
        message: :class:`str` for a text message, bytes-like for a binary one.
        max_backlog: bytes in a connection's write buffer past which it is skipped; each
            connection's own ``write_limit`` if ``None``.
        skipped: a list to append the skipped connections to, for callers that deal with
            them (e.g. close the slow ones); ``None`` to only count them.

    Raises:
        TypeError: if ``message`` is neither.
    """
    message = broadcast_message(message)
    cache: dict[Hashable, list[bytes]] = {}
    sent = skips = 0
    for connection in connections:
        transport = connection.transport
        protocol = connection.protocol
        if transport is None or protocol.state is not OPEN or transport.is_closing():
            continue
        limit = connection.options.write_limit if max_backlog is None else max_backlog
        if transport.get_write_buffer_size() > limit:
            skips += 1
            if skipped is not None:
                skipped.append(connection)
            continue
        # The fast path, for every connection after the first of its encoding: its bytes,
        # written without the protocol (which has nothing else to write: the driver writes
        # what it produces at once), after any frames the connection gathered.
        key = protocol.encoding_key()
        writes = None if key is None else cache.get(key)
        if writes is not None and protocol.sending:
            connection._write(writes)
            sent += 1
            continue
        try:
            protocol.send_shared(message, cache)
        except InvalidState:  # a fragmented message is underway
            skips += 1
            if skipped is not None:
                skipped.append(connection)
            continue
        connection._write_pending()
        sent += 1
    return BroadcastResult(sent, skips)
