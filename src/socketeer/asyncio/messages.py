"""Received frames, queued for ``recv()`` and ``recv_frame()``, with backpressure.

Theory of operation
-------------------

The connection puts every received data frame in :class:`Assembler` with :meth:`put`, in
order. ``recv()`` takes the frames of one whole message with :meth:`get`; ``recv_frame()``
takes one frame with :meth:`get_frame`. Both wait while there is nothing to take.

What must hold:

- frames leave in the order they arrived; a message leaves only once its final frame is in;
- at most one coroutine waits at a time (else :exc:`ConcurrencyError`);
- when ``high`` whole messages wait unread, the connection stops reading from the network
  (``pause``), and it reads again once they fall to ``low`` (``resume``): a reader that does
  not keep up makes the peer wait, never memory grow. A message still arriving is not
  counted: its size is bounded by ``max_size``, and waiting for it must not stop the reading
  that completes it;
- after :meth:`stop_pausing` (the connection is closing), reading never pauses; once
  ``high`` whole messages wait, later frames are dropped;
- after :meth:`close`, what was received can still be taken; then takers get
  :exc:`EOFError`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Literal, overload

from ..exceptions import ConcurrencyError
from ..protocol.frames import OP_TEXT, Frame
from ..typedefs import Data

__all__ = ["Assembler"]


class Assembler:
    """The queue of received data frames between a connection and its readers.

    Args:
        pause: stops reading from the network.
        resume: reads from the network again.
        high: pause when this many whole messages wait; ``None`` never pauses.
        low: resume when no more than this many wait; ``high // 4`` by default.
    """

    def __init__(
        self,
        pause: Callable[[], None],
        resume: Callable[[], None],
        high: int | None = 16,
        low: int | None = None,
    ) -> None:
        self._pause = pause
        self._resume = resume
        self.high = high
        self.low = (high // 4 if high is not None else 0) if low is None else low
        self.frames: deque[Frame] = deque()
        """Received frames, not taken yet."""
        self.messages = 0
        """How many whole messages are in :attr:`frames`."""
        self.paused = False
        self.pausing = True
        """Whether reading pauses at ``high``; if not, frames are dropped from there on."""
        self.dropping = False
        self.closed = False
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[None] | None = None
        self._frames_wanted = False  # a recv_frame() waits: wake it for any frame

    def put(self, frame: Frame) -> None:
        """Queue a received data frame (text, binary or continuation)."""
        if self.dropping:
            return
        self.frames.append(frame)
        if frame.fin:
            self.messages += 1
            if self.high is not None and self.messages >= self.high and not self.paused:
                if self.pausing:
                    self.paused = True
                    self._pause()
                else:
                    self.dropping = True
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        elif self._frames_wanted and self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def stop_pausing(self) -> None:
        """Never pause reading again: once ``high`` messages wait, drop what comes.

        For a connection that sent its close frame: it must read on to the peer's close
        frame, and nothing is waiting for more messages than the queue holds.
        """
        self.pausing = False
        if self.high is not None and self.messages >= self.high:
            self.dropping = True
        if self.paused:
            self.paused = False
            self._resume()

    def close(self) -> None:
        """No frame will come any more: wake the reader, who gets what is left, then EOF."""
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if self.paused:
            self.paused = False  # nothing more to read; the transport is gone

    async def _wait(self, whole: bool) -> None:
        """Wait for a whole message, or for any frame."""
        if self._waiter is not None:
            raise ConcurrencyError("cannot call recv() or recv_frame() while another is waiting")
        while not (self.messages if whole else self.frames):
            if self.closed:
                raise EOFError("stream of frames ended")
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    @overload
    async def get(self, decode: Literal[True]) -> str: ...

    @overload
    async def get(self, decode: Literal[False]) -> bytes: ...

    @overload
    async def get(self, decode: bool | None = None) -> Data: ...

    async def get(self, decode: bool | None = None) -> Data:
        """Take the next whole message.

        Args:
            decode: ``None`` returns text messages as :class:`str` and binary ones as
                :class:`bytes`; ``True`` decodes binary ones too (as UTF-8); ``False`` returns
                text ones as their UTF-8 bytes. A message whose first frame was already taken
                by :meth:`get_frame` counts as binary.

        Raises:
            EOFError: if no message is left and none will come.
            ConcurrencyError: if another coroutine is already waiting.
            UnicodeDecodeError: if ``decode=True`` and a binary message is not UTF-8.
        """
        if not self.messages:
            await self._wait(True)
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

    async def get_frame(self) -> Frame:
        """Take the next frame, whole message or fragment.

        Raises:
            EOFError: if no frame is left and none will come.
            ConcurrencyError: if another coroutine is already waiting.
        """
        if not self.frames:
            self._frames_wanted = True
            try:
                await self._wait(False)
            finally:
                self._frames_wanted = False
        frame = self.frames.popleft()
        if frame.fin:
            self._taken_message()
        return frame

    def _taken_message(self) -> None:
        self.messages -= 1
        if self.paused and self.messages <= self.low:
            self.paused = False
            self._resume()
