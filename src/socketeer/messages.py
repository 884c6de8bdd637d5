"""The bookkeeping of received frames that both drivers share: :class:`FrameQueue`.

Theory of operation
-------------------

A connection puts every received data frame in its queue with :meth:`FrameQueue.put`, in
order; readers take the frames of one whole message with :meth:`FrameQueue.take_message`,
or one frame with :meth:`FrameQueue.take_frame`. This class keeps the counts and decides
when reading pauses, resumes and drops; it does not wait. The asyncio and threaded
assemblers (``socketeer.asyncio.messages`` and ``socketeer.sync.messages``) subclass it
and add the waiting, each with its own primitive, through three hooks: :meth:`_paused`,
:meth:`_resumed` and :meth:`_wake`.

What must hold:

- frames leave in the order they arrived; a message leaves only once its final frame is in;
- when ``high`` whole messages wait unread, reading pauses (``_paused``), and it goes on
  once they fall to ``low`` (``_resumed``): a reader that does not keep up makes the peer
  wait, never memory grow. A message still arriving is not counted: its size is bounded by
  ``max_size``, and waiting for it must not stop the reading that completes it;
- after :meth:`stop_pausing` (the connection is closing), reading never pauses; once
  ``high`` whole messages wait, later frames are dropped;
- after :meth:`close`, what was received can still be taken; then there is nothing more.
"""

from __future__ import annotations

from collections import deque

from .protocol.frames import OP_TEXT, Frame
from .typedefs import Data

__all__ = ["FrameQueue"]


class FrameQueue:
    """Received data frames not taken yet, and the flow control that bounds them.

    Args:
        high: pause reading when this many whole messages wait; ``None`` never pauses.
        low: resume when no more than this many wait; ``high // 4`` by default.
    """

    def __init__(self, high: int | None = 16, low: int | None = None) -> None:
        self.high = high
        self.low = (high // 4 if high is not None else 0) if low is None else low
        self.frames: deque[Frame] | None = None
        """Received frames, not taken yet; ``None`` until the first one (an idle connection
        does not pay for the deque)."""
        self.messages = 0
        """How many whole messages are in :attr:`frames`."""
        self.paused = False
        """Whether reading is paused until the readers catch up."""
        self.pausing = True
        """Whether reading pauses at ``high``; if not, frames are dropped from there on."""
        self.dropping = False
        self.closed = False
        """Whether no frame will come any more."""
        self.frames_wanted = False
        """Whether a reader waits for any frame, not only for whole messages."""

    # Hooks for the drivers

    def _paused(self) -> None:
        """Reading must pause: :attr:`paused` just became true."""

    def _resumed(self) -> None:
        """Reading may go on: :attr:`paused` just became false."""

    def _wake(self) -> None:
        """Something a reader may wait for arrived, or the queue closed."""

    # Putting

    def put(self, frame: Frame) -> None:
        """Queue a received data frame (text, binary or continuation)."""
        if self.dropping:
            return
        frames = self.frames
        if frames is None:
            frames = self.frames = deque()
        frames.append(frame)
        if frame.fin:
            self.messages += 1
            if self.high is not None and self.messages >= self.high and not self.paused:
                if self.pausing:
                    self.paused = True
                    self._paused()
                else:
                    self.dropping = True
            self._wake()
        elif self.frames_wanted:
            self._wake()

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
            self._resumed()

    def close(self) -> None:
        """No frame will come any more: wake the reader, who gets what is left."""
        self.closed = True
        self.paused = False  # nothing more to read
        self._wake()

    # Taking

    def take_message(self, decode: bool | None = None) -> Data:
        """Take the next whole message; there must be one (:attr:`messages`).

        Args:
            decode: ``None`` returns text messages as :class:`str` and binary ones as
                :class:`bytes`; ``True`` decodes binary ones too (as UTF-8); ``False`` returns
                text ones as their UTF-8 bytes. A message whose first frame was already taken
                by :meth:`take_frame` counts as binary.

        Raises:
            UnicodeDecodeError: if ``decode=True`` and a binary message is not UTF-8.
        """
        frames = self.frames
        assert frames is not None  # there is a message
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
        self.messages -= 1  # _taken_message(), inlined on the hot path
        if self.paused and self.messages <= self.low:
            self.paused = False
            self._resumed()
        if opcode is OP_TEXT:
            return data if decode is False else data.decode()
        return data.decode() if decode else data

    def take_frame(self) -> Frame:
        """Take the next frame, whole message or fragment; there must be one."""
        assert self.frames is not None  # there is a frame
        frame = self.frames.popleft()
        if frame.fin:
            self._taken_message()
        return frame

    def _taken_message(self) -> None:
        self.messages -= 1
        if self.paused and self.messages <= self.low:
            self.paused = False
            self._resumed()
