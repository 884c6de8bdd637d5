"""Received frames, queued for ``recv()`` and ``recv_frame()``, with backpressure, on asyncio.

Theory of operation
-------------------

:class:`Assembler` is the shared :class:`~socketeer.messages.FrameQueue` (order, counts,
pausing and dropping) plus waiting with asyncio futures. ``recv()`` takes the frames of one
whole message with :meth:`~Assembler.get`; ``recv_frame()`` takes one frame with
:meth:`~Assembler.get_frame`. Both wait while there is nothing to take; at most one
coroutine waits at a time (else :exc:`ConcurrencyError`). Pausing and resuming call back
into the connection, which pauses and resumes its transport's reading. Once the queue is
closed and empty, takers get :exc:`EOFError`.

The hot path of ``async for message in connection`` uses :meth:`~Assembler.wait` and
:meth:`~Assembler.take_message` directly: waiting is then one future awaited in the
caller's own coroutine, with no coroutine frame in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal, overload

from ..exceptions import ConcurrencyError
from ..messages import FrameQueue
from ..protocol.frames import Frame
from ..typedefs import Data

__all__ = ["Assembler"]


class Assembler(FrameQueue):
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
        super().__init__(high, low)
        self._pause = pause
        self._resume = resume
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[None] | None = None

    def _paused(self) -> None:
        self._pause()

    def _resumed(self) -> None:
        self._resume()

    def close(self) -> None:
        super().close()
        # The hooks are bound methods of the connection, which holds this assembler; nothing
        # pauses or resumes reading once closed. Letting go of them frees a closed
        # connection by reference counting, rather than leaving ~35 objects per connection
        # to the cyclic garbage collector (callgrind: 5% of a server's handshake).
        self._pause = self._resume = _nothing

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():  # cancelled, when its reader was
                waiter.set_result(None)

    def wait(self) -> asyncio.Future[None]:
        """A future resolved when a frame (or, for :meth:`get`, a message) arrives or the
        queue closes; check again then, something else may have taken it.

        Raises:
            ConcurrencyError: if another coroutine is already waiting.
        """
        if self._waiter is not None and not self._waiter.done():
            raise ConcurrencyError("cannot call recv() or recv_frame() while another is waiting")
        waiter = self._waiter = self._loop.create_future()
        return waiter

    @overload
    async def get(self, decode: Literal[True]) -> str: ...

    @overload
    async def get(self, decode: Literal[False]) -> bytes: ...

    @overload
    async def get(self, decode: bool | None = None) -> Data: ...

    async def get(self, decode: bool | None = None) -> Data:
        """Take the next whole message; see :meth:`~FrameQueue.take_message` for ``decode``.

        Raises:
            EOFError: if no message is left and none will come.
            ConcurrencyError: if another coroutine is already waiting.
            UnicodeDecodeError: if ``decode=True`` and a binary message is not UTF-8.
        """
        while not self.messages:
            if self.closed:
                raise EOFError("stream of frames ended")
            await self.wait()
        return self.take_message(decode)

    async def get_frame(self) -> Frame:
        """Take the next frame, whole message or fragment.

        Raises:
            EOFError: if no frame is left and none will come.
            ConcurrencyError: if another coroutine is already waiting.
        """
        while not self.frames:
            if self.closed:
                raise EOFError("stream of frames ended")
            waiter = self.wait()
            self.frames_wanted = True
            try:
                await waiter
            finally:
                self.frames_wanted = False
        return self.take_frame()


def _nothing() -> None:
    """The hooks of a closed assembler."""
