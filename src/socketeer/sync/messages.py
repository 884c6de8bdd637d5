"""Received frames, queued for ``recv()`` and ``recv_frame()``, with backpressure, for threads.

Theory of operation
-------------------

:class:`Assembler` is the shared :class:`~socketeer.messages.FrameQueue` (order, counts,
pausing and dropping) plus waiting, plus the *read token*: whoever holds it is the one
thread that reads from the socket. One lock guards it all, with two conditions: a taker
(``recv()`` or ``recv_frame()``; at most one waits at a time, else
:exc:`ConcurrencyError`) waits on one, the connection's reading thread on the other.

Frames come in with :meth:`~Assembler.put`, from whichever thread read them. ``recv()`` takes
the frames of one whole message with :meth:`~Assembler.get` and ``recv_frame()`` one frame
with :meth:`~Assembler.get_frame`. When nothing is queued and the token is free, the taker
takes it and reads from the socket itself (:attr:`~Assembler.read`, which the connection
sets while the socket may be read), rather than wait for the reading thread to. When another
thread holds the token, the taker waits, and says so (:attr:`~Assembler.token_wanted`).

The reading thread reads while no taker does. With :meth:`~Assembler.take_token`, it looks
at the token, then takes it or waits once:

- free, and no taker took it since the last look (at least ``grace`` seconds ago), or
  :meth:`~Assembler.wake_reader` or :meth:`~Assembler.hurry` was called: take it;
- free, but taken since: look again in ``grace`` seconds;
- held by a taker that took it more than once since the last look (the application calls
  ``recv()`` again and again): look again in ``grace`` seconds, rather than be woken each
  time the taker gives the token back;
- held otherwise (a taker waits long in one read): wait until it gives the token back
  (:attr:`_watched`), then look again in ``grace`` seconds.

It waits no longer than the connection's next deadline. It gives the token back with
:meth:`~Assembler.give_token` when a taker asks for it, after its current read.

When reading is paused, the thread that holds the token waits in
:meth:`~Assembler.wait_resumed` before it reads again (a taker never does: it reads only
when nothing is queued). Once the queue is closed and empty, takers get :exc:`EOFError`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal, overload

from ..exceptions import ConcurrencyError
from ..messages import FrameQueue
from ..protocol.frames import Frame
from ..typedefs import Data

__all__ = ["Assembler"]


class Assembler(FrameQueue):
    """The queue of received data frames between the threads that read and ``recv()``.

    Args:
        high: pause reading when this many whole messages wait; ``None`` never pauses.
        low: resume when no more than this many wait; ``high // 4`` by default.
    """

    def __init__(self, high: int | None = 16, low: int | None = None) -> None:
        super().__init__(high, low)
        self._lock = threading.Lock()
        self._taken = threading.Condition(self._lock)  # a taker waits on it
        self._readable = threading.Condition(self._lock)  # the reading thread waits on it
        self._waiting = False  # a thread is in get() or get_frame() and found nothing
        self._sleeping = False  # that thread waits on _taken
        self.read: Callable[[float | None], object] | None = None
        """Reads from the socket once, waiting at most the given seconds (``None``: as long
        as it takes), and queues what came; set by the connection while a taker may read."""
        self.reading = False
        """Whether a thread holds the read token."""
        self.token_wanted = False
        """Whether a taker waits for the token that another thread holds."""
        self.urgent = False
        """Whether the reading thread takes the token as soon as it is free (no grace)."""
        self._reads = 0  # how many times a taker took the token
        self._reads_seen: int | None = None  # _reads when the reading thread last looked
        self._watched = False  # the reading thread waits until the taker leaves
        self._now = False  # the reading thread takes the token at once if it is free

    def _resumed(self) -> None:
        self._readable.notify()

    def _wake(self) -> None:
        if self._sleeping:
            self._taken.notify()

    def put(self, frame: Frame) -> None:
        with self._lock:
            super().put(frame)

    def stop_pausing(self) -> None:
        with self._lock:
            super().stop_pausing()

    def close(self) -> None:
        with self._lock:
            super().close()
            self._readable.notify()  # it may wait in wait_resumed(): nothing more to read

    def wait_resumed(self, timeout: float | None) -> bool:
        """While holding the token: wait until reading may go on; ``False`` on timeout."""
        with self._lock:
            return self._readable.wait_for(lambda: not self.paused, timeout)

    # The read token, for the connection's reading thread

    def take_token(self, grace: float, timeout: float | None) -> bool:
        """In the reading thread: take the read token, or wait once for it.

        Takes the token and returns ``True`` when it is free and no taker took it during
        the last ``grace`` seconds, or at once after :meth:`wake_reader` or :meth:`hurry`.
        Otherwise waits, at most ``timeout`` seconds (the connection's next deadline), and
        returns ``False``: keep the deadlines, call again.
        """
        with self._lock:
            reads, seen = self._reads, self._reads_seen
            wait = timeout
            if not self.reading:
                if self._now or self.urgent or reads == seen:
                    self.reading = True
                    self._now = False
                    return True
                # A taker read lately: give it time to come back for the next message.
                self._reads_seen = reads
                wait = grace if timeout is None else min(grace, timeout)
            elif seen is not None and reads - seen > 1:
                # Takers come back again and again: look again after a while, rather than
                # be woken each time one gives the token back.
                self._reads_seen = reads
                wait = grace if timeout is None else min(grace, timeout)
            else:
                # A taker waits long in one read, or just came back: wake me when it leaves.
                self._reads_seen = reads
                self._watched = True
            self._readable.wait(wait)
            return False

    def give_token(self) -> None:
        """In the reading thread: give the token back, for the taker that asked for it."""
        with self._lock:
            self.reading = False
            self.token_wanted = False
            self._reads_seen = None  # give the taker time to come back
            self._taken.notify()

    def wake_reader(self) -> None:
        """Make the reading thread take the token now if it is free: a ping was sent, and
        its pong must be read without delay even if no taker reads."""
        with self._lock:
            self._now = True
            self._readable.notify()

    def hurry(self) -> None:
        """From now on, the reading thread reads whenever no taker does: the connection is
        closing, and the peer's close frame and the end of the stream must come through."""
        with self._lock:
            self.urgent = True
            self._readable.notify()

    def stop_reads(self) -> None:
        """The socket will not be read by takers any more: the stream ended there."""
        with self._lock:
            self.read = None
            self.urgent = True
            self._readable.notify()

    # Taking

    def _wait(self, whole: bool, timeout: float | None) -> None:
        """Read, or wait, until a whole message or any frame came; the lock is held."""
        if self._waiting:
            raise ConcurrencyError("cannot call recv() or recv_frame() while another is waiting")
        deadline = None if timeout is None else time.monotonic() + timeout
        self._waiting = True
        self.frames_wanted = not whole
        try:
            expired = False
            while not (self.messages if whole else self.frames):
                if self.closed:
                    raise EOFError("stream of frames ended")
                if expired:
                    raise TimeoutError(f"timed out after {timeout} s waiting for a message")
                remaining = None
                if deadline is not None:
                    remaining = max(0.0, deadline - time.monotonic())
                    expired = remaining == 0.0  # look once more, without waiting
                read = self.read
                if read is not None and not self.reading:
                    self._read(read, remaining)
                else:
                    if read is not None:
                        self.token_wanted = True
                    if not expired:
                        self._sleeping = True
                        try:
                            self._taken.wait(remaining)
                        finally:
                            self._sleeping = False
        finally:
            self._waiting = False
            self.frames_wanted = False

    def _read(self, read: Callable[[float | None], object], timeout: float | None) -> None:
        """Nobody reads: read here with the token, rather than wait for the reading thread."""
        self.reading = True
        self._reads += 1
        self._lock.release()
        try:
            read(timeout)
        finally:
            self._lock.acquire()
            self.reading = False
            if self._watched:
                self._watched = False
                self._reads_seen = None  # it may come back soon: give it time
                self._readable.notify()

    @overload
    def get(self, decode: Literal[True], timeout: float | None = None) -> str: ...

    @overload
    def get(self, decode: Literal[False], timeout: float | None = None) -> bytes: ...

    @overload
    def get(self, decode: bool | None = None, timeout: float | None = None) -> Data: ...

    def get(self, decode: bool | None = None, timeout: float | None = None) -> Data:
        """Take the next whole message, reading or waiting up to ``timeout`` seconds
        (``None``: forever).

        Args:
            decode: see :meth:`~socketeer.messages.FrameQueue.take_message`.
            timeout: seconds to wait; ``0`` does not wait (but reads what the socket holds).

        Raises:
            EOFError: if no message is left and none will come.
            TimeoutError: if no message came in time.
            ConcurrencyError: if another thread is already waiting.
            UnicodeDecodeError: if ``decode=True`` and a binary message is not UTF-8.
        """
        with self._lock:
            if not self.messages:
                self._wait(True, timeout)
            return self.take_message(decode)

    def get_frame(self, timeout: float | None = None) -> Frame:
        """Take the next frame, whole message or fragment.

        Raises:
            EOFError: if no frame is left and none will come.
            TimeoutError: if no frame came in time.
            ConcurrencyError: if another thread is already waiting.
        """
        with self._lock:
            if not self.frames:
                self._wait(False, timeout)
            return self.take_frame()
