"""Received frames, queued for ``recv()`` and ``recv_frame()``, with backpressure, for threads.

Theory of operation
-------------------

:class:`Assembler` is the shared :class:`~socketeer.messages.FrameQueue` (order, counts,
pausing and dropping) plus waiting on a :class:`threading.Condition`, which guards
everything. The connection's reading thread puts frames with :meth:`~Assembler.put`;
``recv()`` takes the frames of one whole message with :meth:`~Assembler.get` and
``recv_frame()`` one frame with :meth:`~Assembler.get_frame`, both waiting up to a timeout;
at most one thread waits at a time (else :exc:`ConcurrencyError`). When reading is paused,
the reading thread blocks in :meth:`~Assembler.wait_resumed` before it reads from the socket
again. Once the queue is closed and empty, takers get :exc:`EOFError`.
"""

from __future__ import annotations

import threading
import time
from typing import Literal, overload

from ..exceptions import ConcurrencyError
from ..messages import FrameQueue
from ..protocol.frames import Frame
from ..typedefs import Data

__all__ = ["Assembler"]


class Assembler(FrameQueue):
    """The queue of received data frames between a connection's reading thread and readers.

    Args:
        high: pause reading when this many whole messages wait; ``None`` never pauses.
        low: resume when no more than this many wait; ``high // 4`` by default.
    """

    def __init__(self, high: int | None = 16, low: int | None = None) -> None:
        super().__init__(high, low)
        self._condition = threading.Condition()
        self._waiting = False  # a thread waits in get() or get_frame()

    def _resumed(self) -> None:
        self._condition.notify_all()

    def _wake(self) -> None:
        self._condition.notify_all()

    def put(self, frame: Frame) -> None:
        with self._condition:
            super().put(frame)

    def stop_pausing(self) -> None:
        with self._condition:
            super().stop_pausing()

    def close(self) -> None:
        with self._condition:
            super().close()

    def wait_resumed(self, timeout: float | None) -> bool:
        """In the reading thread: wait until reading may go on; ``False`` on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: not self.paused, timeout)

    def _wait(self, whole: bool, timeout: float | None) -> None:
        """Wait for a whole message, or for any frame; the condition is held."""
        if self._waiting:
            raise ConcurrencyError("cannot call recv() or recv_frame() while another is waiting")
        deadline = None if timeout is None else time.monotonic() + timeout
        self._waiting = True
        self.frames_wanted = not whole
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
            self.frames_wanted = False

    @overload
    def get(self, decode: Literal[True], timeout: float | None = None) -> str: ...

    @overload
    def get(self, decode: Literal[False], timeout: float | None = None) -> bytes: ...

    @overload
    def get(self, decode: bool | None = None, timeout: float | None = None) -> Data: ...

    def get(self, decode: bool | None = None, timeout: float | None = None) -> Data:
        """Take the next whole message, waiting up to ``timeout`` seconds (``None``: forever).

        Args:
            decode: see :meth:`~socketeer.messages.FrameQueue.take_message`.
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
            return self.take_message(decode)

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
            return self.take_frame()
