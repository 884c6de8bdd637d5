"""A WebSocket connection on threads: the sans-I/O protocol driven over a blocking socket.

Theory of operation
-------------------

:class:`Connection` owns a connected socket and, once the opening handshake is done (in the
thread that connects or accepts, with socket timeouts), one reading thread
(:attr:`~Connection.recv_events_thread`). One thread at a time reads from the socket: the
one that holds the *read token* of the :class:`~socketeer.sync.messages.Assembler`. It
feeds the bytes to the sans-I/O :class:`~socketeer.protocol.Protocol` and then, in
websockets' order, takes the events, writes what the protocol wants written, arms the close
deadline if the peer is now expected to close the TCP connection, and dispatches the events
(data frames to the assembler, pongs to the ping waiters).

Who reads: a ``recv()`` that finds no message waiting, while the token is free, takes it
and reads itself (:meth:`~Connection._read_for_recv`), as websocket-client does: a message
goes from the socket to the caller in one thread, without a hand-over between threads (two
context switches and a few lock operations, which cost more than the rest of the work for
small messages). The reading thread reads whenever no ``recv()`` does: it takes the token
once it has been free for ``_READ_GRACE`` seconds (so that it sleeps while the application
calls ``recv()`` again and again), and at once when the connection is closing, when a ping
awaits its pong, or when the stream ended; it gives the token back as soon as a ``recv()``
waits for it. So the peer's pings are answered, its close frame read and the queue filled
(up to ``max_queue``) whether or not the application calls ``recv()``, at most
``_READ_GRACE`` seconds late.

The application's threads call ``send``, ``ping`` and ``close``, which go to the protocol
too. :attr:`~Connection.protocol_mutex` guards the protocol and the socket's writes, so that
frames reach the socket in the order the protocol serialized them; a second lock,
``send_lock``, keeps a fragmented message whole against other ``send`` calls (control
frames may still interleave, as RFC 6455 allows). No thread holds the mutex while it waits
to read from the socket. No rule of RFC 6455 is decided here.

Backpressure: when ``max_queue`` whole messages wait unread, the reading thread stops reading
(it waits in :meth:`~socketeer.sync.messages.Assembler.wait_resumed`; a ``recv()`` reads
only when nothing is queued) and the protocol keeps the rest of a read unparsed (its
``max_pending``); once a close frame was sent, reading never pauses (the peer's close frame
must come through).

Writing without waiting, for :func:`broadcast`: a broadcast never waits for a peer. It
skips a connection whose mutex is held by a thread writing to the socket (which may wait
for a slow peer); it writes what the socket takes at once (``MSG_DONTWAIT``; never with TLS,
whose records cannot be written in part without waiting) and leaves the rest, whole frames
or the end of one, in a backlog. The backlog is written by a writing thread, which the
connection starts the first time it needs one, which writes without holding the mutex, and
which ends with the connection (the reading thread shuts the socket down under it, and waits
for it, before closing the socket). While the backlog is not empty, every write joins it, so
that bytes reach the socket in the order the protocol made them; while it holds more than
``write_limit`` bytes, ``send`` waits, reading stops (the peer's pings would pile up
pongs) and :func:`broadcast` skips the connection.

Deadlines, kept by the reading thread with :func:`time.monotonic`, rather than with socket
timeouts, which would also apply to other threads' writes: keepalive pings every
``ping_interval`` (failing with 1011 when a pong does not come within ``ping_timeout``), and
``close_timeout`` for the peer to finish the closing handshake, after which the socket is
shut down. While the reading thread reads, it waits on the socket (``poll``) no longer than
the next deadline; while a ``recv()`` reads (blocking in the socket, or polling up to its
own timeout), the reading thread waits for the token no longer than the next deadline, and
keeps it: a keepalive ping is written from there, and a deadline that ends the connection
shuts the socket down, which ends the ``recv()``'s read. A thread that starts the closing
handshake itself (:meth:`~Connection.close`) waits at most ``close_timeout`` for the
reading thread to end, then shuts the socket down. Whoever reads the end of the stream
gives the token to the reading thread, which ends the connection: only the reading thread
closes the socket.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Literal, NoReturn, overload

from ..connection import BroadcastResult, ConnectionBase, as_bytes, is_text
from ..exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidState,
)
from ..options import ConnectionOptions
from ..protocol.base import CLOSING, OPEN, Event, Protocol
from ..protocol.frames import OP_BINARY, OP_CONT, OP_PONG, OP_TEXT, CloseCode, Frame
from ..protocol.keepalive import Keepalive, KeepaliveAction, Pings
from ..typedefs import BytesLike, Data, LoggerLike
from .messages import Assembler

__all__ = ["Connection", "PongWaiter", "READ_BUFFER_SIZE", "broadcast", "BroadcastResult"]

READ_BUFFER_SIZE = 65_536
"""Bytes the reading thread reads at once."""

_NOWAIT = getattr(socket, "MSG_DONTWAIT", 0)  # 0 where it does not exist (Windows)
_MUTEX_POLL = 0.001  # how often broadcast() checks whether a busy connection is writing
_READ_GRACE = 0.05
"""Seconds the reading thread leaves the socket to the ``recv()`` calls that read from it
before it reads itself (see the theory of operation). While ``recv()`` comes back sooner,
the reading thread wakes up about once per grace period to look; when messages come further
apart, once or twice per message. The shorter, the sooner the peer's pings are answered
while the application does something else than ``recv()``."""


class PongWaiter:
    """What :meth:`Connection.ping` returns: set when the pong arrives.

    ``waiter.wait(timeout)`` returns ``True`` once the pong arrived, ``False`` on timeout;
    :attr:`latency` is then the round-trip time in seconds.
    """

    def __init__(self) -> None:
        self.latency: float | None = None
        """Round-trip time of this ping, in seconds, once its pong arrived."""
        self._event = threading.Event()
        self._exc: ConnectionClosed | None = None

    def is_set(self) -> bool:
        """Whether the pong arrived, or the connection closed first."""
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the pong at most ``timeout`` seconds; return whether it came.

        Raises:
            ConnectionClosed: if the connection closed before the pong arrived.
        """
        done = self._event.wait(timeout)
        if self._exc is not None:
            raise self._exc
        return done

    def set_latency(self, latency: float) -> None:
        self.latency = latency
        self._event.set()

    def set_closed(self, exc: ConnectionClosed) -> None:
        self._exc = exc
        self._event.set()


class Connection(ConnectionBase):
    """A WebSocket connection, client or server side; see the module's theory of operation.

    Applications get one from :func:`~socketeer.sync.connect` or in a handler of
    :func:`~socketeer.sync.serve`; they do not create it.
    """

    def __init__(self, sock: socket.socket, protocol: Protocol, options: ConnectionOptions):
        self.socket = sock
        """The connected socket (an :class:`ssl.SSLSocket` with TLS)."""
        self.protocol = protocol
        """The sans-I/O protocol this connection drives."""
        self.options = options
        self.logger: LoggerLike = protocol.logger
        self.debug = protocol.debug
        self.protocol_mutex = threading.Lock()
        """Guards :attr:`protocol` and the socket's writes."""
        self.send_lock = threading.Lock()
        """Held by :meth:`send` for a whole message, fragments included."""
        self.recv_messages: Assembler = Assembler(options.max_queue)
        protocol.max_pending = options.max_queue
        self.recv_events_thread = threading.Thread(
            target=self._recv_events, name=f"socketeer-{protocol.id}", daemon=True
        )
        """The reading thread, started once the opening handshake is done."""
        self._local_address = _address(sock.getsockname)
        self._remote_address = _address(sock.getpeername)
        self._pings: Pings[PongWaiter] = Pings()
        self._keepalive_policy = Keepalive(options.ping_interval, options.ping_timeout)
        self._keepalive_at: float | None = None
        self._close_deadline: float | None = None
        self._write_exc: OSError | None = None
        self._socket_closed = False
        self._started = False
        self._poller = _Poller(sock)  # waits for the socket up to a deadline
        self._reading_ended = False  # the socket has nothing more to read
        # Writing without waiting (see the theory of operation); the mutex guards these.
        self._backlog: deque[bytes] = deque()  # b"" is the end of the stream, as in the protocol
        self._backlog_size = 0  # bytes not written yet: the backlog and what the writer holds
        self._backlog_changed = threading.Condition(self.protocol_mutex)
        self._flushing = False  # the writing thread writes bytes it took from the backlog
        self._writing = False  # a thread holding the mutex writes to the socket (may block)
        self._writer: threading.Thread | None = None

    # Public attributes

    @property
    def local_address(self) -> Any:
        """The local address of the socket (e.g. ``(host, port)``)."""
        return self._local_address

    @property
    def remote_address(self) -> Any:
        """The remote address of the socket (e.g. ``(host, port)``)."""
        return self._remote_address

    # Receiving

    @overload
    def recv(self, timeout: float | None = None, *, decode: Literal[True]) -> str: ...

    @overload
    def recv(self, timeout: float | None = None, *, decode: Literal[False]) -> bytes: ...

    @overload
    def recv(self, timeout: float | None = None, decode: bool | None = None) -> Data: ...

    def recv(self, timeout: float | None = None, decode: bool | None = None) -> Data:
        """Receive the next message: :class:`str` for text, :class:`bytes` for binary.

        When no message is waiting, the calling thread reads from the socket itself, unless
        another thread is reading (see the module's theory of operation).

        Args:
            timeout: seconds to wait; ``None`` waits forever, ``0`` does not wait (but takes
                what the socket already holds).
            decode: ``False`` returns text messages as bytes (no decoding); ``True`` decodes
                binary messages as UTF-8 too.

        Raises:
            TimeoutError: if no message came within ``timeout``.
            ConnectionClosed: when the connection is closed and every message was received;
                :exc:`~socketeer.exceptions.ConnectionClosedOK` after a normal closure.
            ConcurrencyError: if another thread is already waiting in ``recv``.
        """
        try:
            return self.recv_messages.get(decode, timeout)
        except EOFError:
            pass
        raise self._closed_exc() from self.protocol.parser_exc

    def recv_frame(self, timeout: float | None = None) -> Frame:
        """Receive the next data frame as it arrived (fragments are not joined).

        Raises:
            TimeoutError: if no frame came within ``timeout``.
            ConnectionClosed: when the connection is closed and every frame was received.
            ConcurrencyError: if another thread is already waiting.
        """
        try:
            return self.recv_messages.get_frame(timeout)
        except EOFError:
            pass
        raise self._closed_exc() from self.protocol.parser_exc

    def __iter__(self) -> Iterator[Data]:
        """Iterate over messages until the connection closes.

        Ends quietly after a normal closure; raises
        :exc:`~socketeer.exceptions.ConnectionClosedError` after an abnormal one.
        """
        while True:
            try:
                yield self.recv()
            except ConnectionClosedOK:
                return

    # Sending

    def send(
        self, message: Data | BytesLike | Iterable[Data | BytesLike], *, compress: bool = True
    ) -> None:
        """Send a message; block while the socket's buffer is full (and while more than
        ``write_limit`` bytes wait in the backlog that a :func:`broadcast` may leave).

        Args:
            message: :class:`str` for a text message; bytes-like for a binary message; an
                iterable of :class:`str` or of bytes for a fragmented message, one frame per
                item.
            compress: ``False`` sends this message uncompressed even with permessage-deflate.

        Raises:
            ConnectionClosed: if the connection is closing or closed.
            TypeError: for any other kind of message.
        """
        with self.send_lock:
            if isinstance(message, str):
                self._send_message(self.protocol.send_text, message, compress)
            elif isinstance(message, (bytes, bytearray, memoryview)):
                self._send_message(self.protocol.send_binary, message, compress)
            elif isinstance(message, Mapping):
                raise TypeError("a mapping is not a message; serialize it first")
            elif isinstance(message, Iterable):
                self._send_fragments(iter(message), compress)
            else:
                raise TypeError(f"message must be str or bytes-like, not {type(message).__name__}")

    def _send_fragments(self, fragments: Iterator[Data | BytesLike], compress: bool) -> None:
        protocol = self.protocol
        first = next(fragments, None)
        if first is None:
            raise TypeError("a fragmented message needs at least one fragment")
        text = is_text(first)
        with self._send_context():
            if text:
                protocol.send_text(first, fin=False, compress=compress)
            else:
                protocol.send_binary(as_bytes(first), fin=False, compress=compress)
        try:
            for fragment in fragments:
                if is_text(fragment) is not text:
                    raise TypeError("all fragments must be str, or all bytes-like")
                with self._send_context():
                    protocol.send_continuation(fragment, fin=False)
            with self._send_context():
                protocol.send_continuation(b"", fin=True)
        except BaseException:
            # The message cannot be finished: RFC 6455 has no way to abort one but closing.
            with self.protocol_mutex:
                if protocol.state is OPEN:
                    protocol.fail(CloseCode.INTERNAL_ERROR, "error in fragmented message")
                    self._process()
            raise

    def ping(self, data: Data | None = None) -> PongWaiter:
        """Send a ping; return a waiter that the pong sets, with the round-trip time.

        Use ``waiter = connection.ping(); waiter.wait(timeout); waiter.latency``.

        Args:
            data: the ping's payload (at most 125 bytes); unique random bytes by default.

        Raises:
            ConnectionClosed: if the connection is closing or closed.
            ConcurrencyError: if a ping with the same payload waits for its pong.
        """
        waiter = PongWaiter()
        with self._send_context():
            payload = self._pings.new_payload() if data is None else as_bytes(data)
            if payload in self._pings:
                raise ConcurrencyError("already waiting for a pong with the same data")
            self.protocol.send_ping(payload)
            self._pings.sent(payload, time.monotonic(), waiter)
        self.recv_messages.wake_reader()  # read the pong at once, even if no recv() does
        return waiter

    def pong(self, data: Data = b"") -> None:
        """Send an unsolicited pong (pings are answered automatically).

        Raises:
            ConnectionClosed: if the connection is closing or closed.
        """
        with self._send_context():
            self.protocol.send_pong(as_bytes(data))

    def send_frame(self, frame: Frame, *, compress: bool = True) -> None:
        """Send one frame as it is, for tools and proxies; RFC 6455's rules still apply.

        Raises:
            ConnectionClosed: if the connection is closing or closed.
            ProtocolError: if the frame breaks RFC 6455 on its own.
        """
        with self._send_context():
            self.protocol.send_frame(frame, compress=compress)

    @contextlib.contextmanager
    def _send_context(self) -> Iterator[None]:
        """Change the protocol under the mutex, then write what it produced.

        Raises:
            ConnectionClosed: if the connection is closed, or writing to the socket failed.
        """
        with self.protocol_mutex:
            try:
                yield
            except InvalidState:
                if self.protocol.state is not CLOSING:
                    self._raise_if_closed()
                    raise
                closing = True
            else:
                closing = False
                exc = self._write_sent()
        if closing:
            self._raise_when_closed()
        if exc is not None:
            self._write_failed(exc)

    def _send_message(
        self, send: Callable[[Any, bool, bool], None], message: Any, compress: bool
    ) -> None:
        """``send(message, fin, compress)`` in :meth:`_send_context`, spelled out: the hot
        path of :meth:`send`, without a generator."""
        with self.protocol_mutex:
            try:
                send(message, True, compress)
            except InvalidState:
                if self.protocol.state is not CLOSING:
                    self._raise_if_closed()
                    raise
                closing = True
            else:
                closing = False
                exc = self._write_sent()
        if closing:
            self._raise_when_closed()
        if exc is not None:
            self._write_failed(exc)

    def _write_sent(self) -> OSError | None:
        """With the mutex, after a send: write, and wait while the backlog is over
        ``write_limit``; return the error of writing to the socket, if any."""
        self._write_pending()
        if self._backlog_size > self.options.write_limit:
            self._backlog_changed.wait_for(self._drained)
        return self._write_exc

    def _write_failed(self, exc: OSError) -> None:
        # The socket is shut down: the reading thread ends and closes the connection.
        self._join_reader(self.options.close_timeout)
        raise self._closed_exc() from exc

    def _raise_when_closed(self) -> NoReturn:
        """After :exc:`InvalidState` from sending while the connection is closing (the
        server shutting down, the peer's close frame answered): wait until it is closed, at
        most ``close_timeout`` (then aborting it, as :meth:`close` does), so that a handler
        sending then ends as the connection did, with :exc:`ConnectionClosedOK` after a
        normal closing handshake."""
        if threading.current_thread() is not self.recv_events_thread:
            self._join_reader(self.options.close_timeout)
        raise self._closed_exc() from self.protocol.parser_exc

    # Closing

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Run the closing handshake and wait for the TCP connection to end.

        Waits at most ``close_timeout`` for the peer, then shuts the socket down. Closing
        a connection that is already closing or closed just waits for the end. Messages
        received before can still be read with :meth:`recv`.

        Raises:
            ValueError: if the code cannot be sent or the reason is too long.
        """
        with self.protocol_mutex:
            protocol = self.protocol
            if protocol.state is OPEN:
                if not protocol.sending:
                    # A fragmented message is underway and will never be finished.
                    protocol.fail(CloseCode.INTERNAL_ERROR, "close during fragmented message")
                else:
                    protocol.send_close(code, reason)
                self._process()
        self._join_reader(self.options.close_timeout)

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until the connection is closed (the TCP connection ended); ``False`` on
        timeout."""
        if threading.current_thread() is not self.recv_events_thread:
            self.recv_events_thread.join(timeout)
        return not self.recv_events_thread.is_alive()

    def _join_reader(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` for the reading thread to end, then make it end."""
        if not self.recv_events_thread.is_alive() and self.recv_events_thread.ident is None:
            self._abort()  # in the handshake: its thread sees the end and closes the socket
            return
        if not self.wait_closed(timeout):
            if self.debug:
                self.logger.debug("! timed out waiting for TCP close")
            self._abort()
            self.wait_closed()

    # The opening handshake, in the thread that connects or accepts

    def receive_handshake(self, timeout: float | None) -> Event | None:
        """Read until the handshake's request or response arrived, before :meth:`start`.

        Returns:
            The request or response, or ``None`` if the connection ended or the handshake
            failed (see the protocol's ``handshake_exc``).

        Raises:
            TimeoutError: if it did not arrive within ``timeout`` seconds.
            OSError: if reading failed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        protocol = self.protocol
        while protocol.receiving and protocol.handshake_exc is None:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"timed out after {timeout} s during opening handshake")
                self.socket.settimeout(remaining)
            data = self.socket.recv(READ_BUFFER_SIZE)
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
            events = protocol.events_received()
            self._write_pending()
            for index, event in enumerate(events):
                if type(event) is not Frame:
                    self._dispatch(events[index + 1 :])
                    return event
        self._write_pending()
        return None

    def start(self) -> None:
        """Start the reading thread (and keepalive pings, if the connection is open)."""
        self.socket.settimeout(None)
        if self.protocol.state is OPEN:
            self._keepalive_at = self._keepalive_policy.start(time.monotonic())
        else:
            self.recv_messages.hurry()
        self._started = True
        self.recv_messages.read = self._read_for_recv
        self.recv_events_thread.start()

    # Reading, in the reading thread or in the thread of a recv()

    def _recv_events(self) -> None:
        """The reading thread: read while no recv() does; keep the deadlines meanwhile."""
        messages = self.recv_messages
        try:
            while True:
                if messages.take_token(_READ_GRACE, self._timeout()):
                    if not self._read_until_wanted():
                        break  # the end of the stream: the token stays here
                else:
                    self._check_deadlines()
        except Exception:  # the one catch-all of this driver: a bug, not the peer
            self.logger.error("unexpected error in reading thread", exc_info=True)
            self._abort()  # a recv() may be reading: let it see the end
        finally:
            self._end()

    def _read_until_wanted(self) -> bool:
        """With the token: read until a recv() asks for it (``True``) or the stream ends."""
        messages = self.recv_messages
        while not self._reading_ended:
            if not self._read_events(self._timeout()):
                return False
            self._check_deadlines()
            if messages.token_wanted:
                messages.give_token()
                return True
        return False

    def _read_for_recv(self, timeout: float | None) -> None:
        """The :attr:`~socketeer.sync.messages.Assembler.read` of ``recv()``, with the token.

        The reading thread keeps the deadlines meanwhile (:meth:`_check_deadlines`); a
        deadline that ends the connection shuts the socket down, which ends this read.
        """
        try:
            self._read_events(timeout)
        except Exception:  # a bug, not the peer: end the connection, as the reading thread
            self.logger.error("unexpected error while reading", exc_info=True)
            self._stop_reading()
            self._abort()

    def _read_events(self, timeout: float | None) -> bool:
        """With the token: read once and process what came, waiting at most ``timeout``
        seconds (``None``: as long as it takes), or wait while reading must pause.

        Returns ``False`` once the stream ended (the reading thread then ends the connection).
        """
        protocol = self.protocol
        if self.recv_messages.paused:
            self.recv_messages.wait_resumed(timeout)
        elif self._backlog_size > self.options.write_limit:
            # Bytes to write pile up (pongs, for one): read no more until they go.
            with self._backlog_changed:
                self._backlog_changed.wait_for(self._drained, timeout)
        elif protocol.unparsed:
            with self.protocol_mutex:
                protocol.receive_data(b"")
                self._process()
        elif timeout is None or self._poller.readable(timeout):
            # Only this thread reads, so only it can start or finish reading a large payload
            # in place; another thread may fail the connection meanwhile, and then
            # receive_into() discards what was read.
            into = protocol.payload_buffer
            data: bytes | int
            try:
                data = (
                    self.socket.recv(READ_BUFFER_SIZE)
                    if into is None
                    else self.socket.recv_into(into)
                )
            except OSError as exc:
                if self.debug:
                    self.logger.debug("! error while reading: %s", exc)
                data = b""
            if not data:
                self._stop_reading()
                return False
            with self.protocol_mutex:
                if isinstance(data, int):
                    protocol.receive_into(data)
                else:
                    protocol.receive_data(data)
                self._process()
        return True

    def _stop_reading(self) -> None:
        """The stream ended: only the reading thread reads on (it ends the connection)."""
        self._reading_ended = True
        self.recv_messages.stop_reads()

    def _end(self) -> None:
        with self.protocol_mutex:
            with contextlib.suppress(InvalidState):  # unless it came already
                self.protocol.receive_eof()
            self.protocol.data_to_send()  # nowhere to write it any more
            self._dispatch(self.protocol.events_received())
            if self._flushing:
                # The writing thread may wait for a peer that is gone: wake it up, and do not
                # close the socket under it.
                self._abort()
                self._backlog_changed.wait_for(lambda: not self._flushing)
            self._poller.close()
            self._close_socket()
            self._backlog.clear()
            self._backlog_size = 0
            self._backlog_changed.notify_all()
            closed = self._closed_exc()
            waiters = self._pings.clear()
        if self._writer is not None:
            self._writer.join()
        self.recv_messages.close()
        for waiter in waiters:
            waiter.set_closed(closed)
        self.connection_closed()

    def connection_closed(self) -> None:
        """Hook for subclasses, called in the reading thread once the connection is closed."""

    def _timeout(self) -> float | None:
        """Seconds until the next deadline of the reading thread, or ``None``."""
        deadline, close_deadline = self._keepalive_at, self._close_deadline
        if close_deadline is not None and (deadline is None or close_deadline < deadline):
            deadline = close_deadline
        if deadline is None:
            return None
        return max(0.0, deadline - time.monotonic())

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        if self._close_deadline is not None and now >= self._close_deadline:
            self._close_deadline = None
            if self.debug:
                self.logger.debug("! timed out waiting for TCP close")
            self._abort()
        if self._keepalive_at is not None and now >= self._keepalive_at:
            with self.protocol_mutex:
                self._keepalive(now)

    def _keepalive(self, now: float) -> None:
        """At a keepalive deadline: send a ping, or fail if a pong is overdue."""
        self._keepalive_at = None
        protocol = self.protocol
        if protocol.state is not OPEN:
            return
        action, self._keepalive_at = self._keepalive_policy.due(now, self._pings)
        if action is KeepaliveAction.FAIL:
            if self.debug:
                self.logger.debug("! timed out waiting for keepalive pong")
            protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
            self._write_pending()
            # A peer that answers no ping will not read a close frame either: do not wait.
            self._abort()
        elif action is KeepaliveAction.PING:
            data = self._pings.new_payload()
            protocol.send_ping(data)
            self._pings.sent(data, now, PongWaiter())
            self._write_pending()
            self.recv_messages.wake_reader()  # read the pong at once, even if no recv() does

    # Moving bytes and events; the mutex is held

    def _process(self) -> None:
        """After the protocol changed: write, arm the close deadline, dispatch the events."""
        protocol = self.protocol
        events = protocol.events_received()
        self._write_pending()
        opened = protocol.state is OPEN
        if not opened and self._close_deadline is None and protocol.close_expected():
            timeout = self.options.close_timeout
            if timeout is not None:
                self._close_deadline = time.monotonic() + timeout
        if events:
            self._dispatch(events)
        if not opened:
            self._closing_queue()
            if not self.recv_messages.urgent:
                self.recv_messages.hurry()  # read the peer's close frame without delay

    def _write_pending(self) -> None:
        for data in self.protocol.data_to_send():
            if self._write_exc is not None or self._socket_closed:
                continue
            if self._backlog or self._flushing:
                self._queue(data)  # behind the backlog, to keep the order
                continue
            self._writing = True
            try:
                if data:
                    self.socket.sendall(data)  # _write(), inlined for the common case
                else:
                    self._write(data)
            except OSError as exc:
                self._write_exc = exc
                self._abort()
            finally:
                self._writing = False

    def _write(self, data: bytes) -> None:
        """Write ``data`` to the socket, waiting as long as it takes; ``b""`` half-closes."""
        if data:
            self.socket.sendall(data)
        elif isinstance(self.socket, ssl.SSLSocket):
            self._abort()  # TLS cannot half-close: end the TCP connection
        else:
            self.socket.shutdown(socket.SHUT_WR)

    # Writing without waiting, for broadcast(); the mutex is held

    def _send_shared(
        self, message: str | bytes, cache: dict[Hashable, list[bytes]]
    ) -> bool | None:
        """Send a message of a broadcast without waiting.

        Returns ``True`` if it was sent (or queued), ``False`` if the connection had to be
        skipped, ``None`` if it is not open (or still in the opening handshake).
        """
        protocol = self.protocol
        if protocol.state is not OPEN or not self._started:
            return None
        if self._write_exc is not None or self._socket_closed:
            return None
        if self._backlog_size > self.options.write_limit or not protocol.sending:
            return False  # too much to write already, or a fragmented message underway
        protocol.send_shared(message, cache)
        nowait = _NOWAIT and not isinstance(self.socket, ssl.SSLSocket)
        for data in protocol.data_to_send():
            if nowait and data and not self._backlog and not self._flushing:
                try:
                    sent = self.socket.send(data, _NOWAIT)
                except BlockingIOError:
                    sent = 0
                except OSError as exc:
                    self._write_exc = exc
                    self._abort()
                    return None
                if sent == len(data):
                    continue
                data = data[sent:]  # the rest of the frame must follow, and only it
            # A TLS record cannot be written in part without waiting: all to the backlog.
            self._queue(data)
        return True

    def _queue(self, data: bytes) -> None:
        """Add bytes to the backlog, for the writing thread (started the first time)."""
        self._backlog.append(data)
        self._backlog_size += len(data)
        if self._writer is None:
            self._writer = threading.Thread(
                target=self._write_backlog, name=f"socketeer-{self.id}-writer", daemon=True
            )
            self._writer.start()
        self._backlog_changed.notify_all()

    def _drained(self) -> bool:
        """Whether the backlog is within ``write_limit``, or will never drain."""
        return (
            self._backlog_size <= self.options.write_limit
            or self._write_exc is not None
            or self._socket_closed
        )

    def _write_backlog(self) -> None:
        """The writing thread: write the backlog, in order, until the socket is closed.

        It writes without holding the mutex, so that the protocol (broadcasts, the reading
        thread, closing) goes on while it waits for a slow peer.
        """
        mutex = self.protocol_mutex
        with self._backlog_changed:
            while not self._socket_closed:
                if not self._backlog or self._write_exc is not None:
                    if self._write_exc is not None:  # these bytes will never go
                        self._backlog.clear()
                        self._backlog_size = 0
                    self._backlog_changed.wait()
                    continue
                chunks = list(self._backlog)
                self._backlog.clear()
                self._flushing = True
                mutex.release()
                exc: OSError | None = None
                try:
                    for data in chunks:
                        self._write(data)
                except OSError as error:
                    exc = error
                except Exception:  # a bug, not the peer: end the connection
                    self.logger.error("unexpected error in writing thread", exc_info=True)
                    self._abort()
                finally:
                    mutex.acquire()
                    self._flushing = False
                    self._backlog_size -= sum(len(data) for data in chunks)
                    self._backlog_changed.notify_all()
                if exc is not None and self._write_exc is None:
                    self._write_exc = exc
                    self._abort()

    def _dispatch(self, events: list[Event]) -> None:
        for event in events:
            if type(event) is Frame:
                opcode = event.opcode
                if opcode is OP_TEXT or opcode is OP_BINARY or opcode is OP_CONT:
                    self.recv_messages.put(event)
                elif opcode is OP_PONG:
                    now = time.monotonic()
                    for waiter, latency in self._pings.pong(event.data, now):
                        waiter.set_latency(latency)

    def _abort(self) -> None:
        """Shut the socket down both ways: the reading thread then sees the end and closes it."""
        if not self._socket_closed:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(self.socket, socket.SHUT_RDWR)
        if not self.recv_messages.urgent:
            self.recv_messages.hurry()  # nobody may be reading: see the end without delay

    def _close_socket(self) -> None:
        if not self._socket_closed:
            self._socket_closed = True
            self.socket.close()

    # Context manager

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # 1000 even after an exception, as in the asyncio driver.
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.state.name}>"


def broadcast(connections: Iterable[Connection], message: Data | BytesLike) -> BroadcastResult:
    """Send a message to many connections at once, waiting for none of them.

    The message is encoded once for all the connections that put it on the wire the same way
    (server connections without compression, or with compression without context takeover
    and the same settings). Each open connection gets it without waiting:

    - if another thread is writing to the connection's socket (a ``send``, which may be
      blocked by a slow peer), the connection is skipped;
    - else the bytes go to the socket as far as it takes them at once (a non-blocking
      ``send``; never with TLS), and the rest, possibly the end of a frame, waits in the
      connection's backlog for its writing thread (see the module's theory of operation).
      A frame is never cut short: the stream stays valid;
    - a connection whose backlog already holds more than its ``write_limit`` is skipped,
      so that a client that does not read never slows the others nor makes memory grow
      past ``write_limit`` plus one message;
    - a connection where a fragmented message is underway is skipped.

    The result counts the skipped connections. Closed and closing connections, and server
    connections still in the opening handshake, are ignored.

    Args:
        connections: the recipients.
        message: :class:`str` for a text message, bytes-like for a binary one.

    Raises:
        TypeError: if ``message`` is neither.
    """
    if not isinstance(message, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"message must be str or bytes-like, not {type(message).__name__}")
    if not isinstance(message, (str, bytes)):
        message = bytes(message)
    cache: dict[Hashable, list[bytes]] = {}
    sent = skipped = 0
    for connection in connections:
        if connection.protocol.state is not OPEN:
            continue
        if not _acquire_unless_writing(connection):
            skipped += 1
            continue
        try:
            done = connection._send_shared(message, cache)
        finally:
            connection.protocol_mutex.release()
        if done:
            sent += 1
        elif done is not None:
            skipped += 1
    return BroadcastResult(sent, skipped)


def _acquire_unless_writing(connection: Connection) -> bool:
    """Take the connection's mutex, unless a thread holding it writes to the socket.

    A thread that holds the mutex changes the protocol, which takes little time, or writes
    to the socket, which may take as long as a slow peer wants: wait for the first, not for
    the second.
    """
    mutex = connection.protocol_mutex
    if mutex.acquire(blocking=False):
        return True
    while not connection._writing:
        if mutex.acquire(timeout=_MUTEX_POLL):
            return True
    return False


class _Poller:
    """Waits for a socket to be readable, up to a timeout (``poll`` where it exists)."""

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock
        self._poll = select.poll() if hasattr(select, "poll") else None
        if self._poll is not None:
            self._poll.register(sock, select.POLLIN)

    def readable(self, timeout: float | None) -> bool:
        if timeout is None:
            return True  # block in recv()
        if isinstance(self.socket, ssl.SSLSocket) and self.socket.pending():
            return True  # decrypted bytes wait in the TLS layer, which poll cannot see
        if self._poll is not None:
            return bool(self._poll.poll(timeout * 1000))
        return bool(select.select([self.socket], [], [], timeout)[0])  # pragma: no cover

    def close(self) -> None:
        if self._poll is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._poll.unregister(self.socket)


def _address(getter: Any) -> Any:
    try:
        return getter()
    except OSError:
        return None
