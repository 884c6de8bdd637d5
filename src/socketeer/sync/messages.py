"""Received frames, queued for ``recv()`` and ``recv_frame()``, with backpressure, for threads.

Theory of operation
-------------------

The connection's reading thread puts every received data frame in :class:`Assembler` with
:meth:`put`, in order. ``recv()`` takes the frames of one whole message with :meth:`get`;
``recv_frame()`` takes one frame with :meth:`get_frame`. Both wait, up to a timeout, while
there is nothing to take. One :class:`threading.Condition` guards everything below.

What must hold (as in :mod:`socketeer.asyncio.messages`):

- frames leave in the order they arrived; a message leaves only once its final frame is in;
- at most one thread waits at a time (else :exc:`ConcurrencyError`);
- when ``high`` whole messages wait unread, :attr:`paused` is set and the reading thread
  blocks in :meth:`wait_resumed` before it reads from the socket again; it reads again once
  they fall to ``low``: a reader that does not keep up makes the peer wait, never memory
  grow. A message still arriving is not counted: its size is bounded by ``max_size``;
- after :meth:`stop_pausing` (the connection is closing), reading never pauses; once
  ``high`` whole messages wait, later frames are dropped;
- after :meth:`close`, what was received can still be taken; then takers get
  :exc:`EOFError`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Literal, overload

from ..exceptions import ConcurrencyError
from ..protocol.frames import OP_TEXT, Frame
from ..typedefs import Data

__all__ = ["Assembler"]


class Assembler:
    """The queue of received data frames between a connection's reading thread and readers.

    Args:
        high: pause reading when this many whole messages wait; ``None`` never pauses.
        low: resume when no more than this many wait; ``high // 4`` by default.
    """

    def __init__(self, high: int | None = 16, low: int | None = None) -> None:
        self.high = high
        self.low = (high // 4 if high is not None else 0) if low is None else low
        self.frames: deque[Frame] = deque()
        """Received frames, not taken yet."""
        self.messages = 0
        """How many whole messages are in :attr:`frames`."""
        self.paused = False
        """Whether the reading thread must wait before reading more."""
        self.pausing = True
        """Whether reading pauses at ``high``; if not, frames are dropped from there on."""
        self.dropping = False
        self.closed = False
        self._condition = threading.Condition()
        self._waiting = False  # a thread waits in get() or get_frame()

    def put(self, frame: Frame) -> None:
        """Queue a received data frame (text, binary or continuation)."""
        with self._condition:
            if self.dropping:
                return
            self.frames.append(frame)
            if frame.fin:
                self.messages += 1
                if self.high is not None and self.messages >= self.high and not self.paused:
                    if self.pausing:
                        self.paused = True
                    else:
                        self.dropping = True
            self._condition.notify_all()

    def wait_resumed(self, timeout: float | None) -> bool:
        """In the reading thread: wait until reading may go on; ``False`` on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: not self.paused, timeout)

    def stop_pausing(self) -> None:
        """Never pause reading again: once ``high`` messages wait, drop what comes.

        For a connection that sent its close frame: it must read on to the peer's close
        frame, and nothing is waiting for more messages than the queue holds.
        """
        with self._condition:
            self.pausing = False
            if self.high is not None and self.messages >= self.high:
                self.dropping = True
            self.paused = False
            self._condition.notify_all()

    def close(self) -> None:
        """No frame will come any more: wake the reader, who gets what is left, then EOF."""
        with self._condition:
            self.closed = True
            self.paused = False
            self._condition.notify_all()

    def _wait(self, whole: bool, timeout: float | None) -> None:
        """Wait for a whole message, or for any frame; the condition is held."""
        if self._waiting:
            raise ConcurrencyError("cannot call recv() or recv_frame() while another is waiting")
        deadline = None if timeout is None else time.monotonic() + timeout
        self._waiting = True
        try:
            while not (self.messages if whole else self.frames):
                if self.closed:
                    raise EOFError("stream of frames ended")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"timed out after {timeout} s waiting for a message")
                self._condition.wait(remaining)
        finally:
            self._waiting = False

    @overload
    def get(self, decode: Literal[True], timeout: float | None = None) -> str: ...

    @overload
    def get(self, decode: Literal[False], timeout: float | None = None) -> bytes: ...

    @overload
    def get(self, decode: bool | None = None, timeout: float | None = None) -> Data: ...

    def get(self, decode: bool | None = None, timeout: float | None = None) -> Data:
        """Take the next whole message, waiting up to ``timeout`` seconds (``None``: forever).

        Args:
            decode: as in :meth:`socketeer.asyncio.messages.Assembler.get`.
            timeout: seconds to wait; ``0`` does not wait.

        Raises:
            EOFError: if no message is left and none will come.
            TimeoutError: if no message came in time.
            ConcurrencyError: if another thread is already waiting.
            UnicodeDecodeError: if ``decode=True`` and a binary message is not UTF-8.
        """
        with self._condition:
            if not self.messages:
                self._wait(True, timeout)
            frames = self.frames
            frame = frames.popleft()
            opcode, data = frame.opcode, frame.data
            if not frame.fin:
                parts = [data]
                while True:
                    frame = frames.popleft()
                    parts.append(frame.data)
                    if frame.fin:
                        break
                data = b"".join(parts)
            self._taken_message()
        if opcode is OP_TEXT:
            return data if decode is False else data.decode()
        return data.decode() if decode else data

    def get_frame(self, timeout: float | None = None) -> Frame:
        """Take the next frame, whole message or fragment.

        Raises:
            EOFError: if no frame is left and none will come.
            TimeoutError: if no frame came in time.
            ConcurrencyError: if another thread is already waiting.
        """
        with self._condition:
            if not self.frames:
                self._wait(False, timeout)
            frame = self.frames.popleft()
            if frame.fin:
                self._taken_message()
            return frame

    def _taken_message(self) -> None:
        self.messages -= 1
        if self.paused and self.messages <= self.low:
            self.paused = False
            self._condition.notify_all()
