"""Keepalive pings: their schedule, the pings in flight and the round trips they measure.

Clock-dependent policy with the clock passed in (``now``), so that the asyncio and the
threaded drivers share it. A waiter is whatever the driver wakes when the pong arrives (a
future, an event): this module only stores and returns them.

A pong acknowledges its ping and every ping sent before it: RFC 6455 section 5.5.3 lets a
peer answer only the most recent of several pings.
"""

from __future__ import annotations

import enum
import os
from typing import Generic, TypeVar

__all__ = ["Pings", "Keepalive", "KeepaliveAction"]

W = TypeVar("W")


class Pings(Generic[W]):
    """The pings a connection sent and waits a pong for, oldest first."""

    def __init__(self) -> None:
        self._pending: dict[bytes, tuple[float, W]] = {}
        self.latency = 0.0
        """Round-trip time of the last ping answered, in seconds; 0 until one is."""

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, data: object) -> bool:
        return data in self._pending

    def new_payload(self) -> bytes:
        """A payload that no pending ping carries (4 random bytes)."""
        while True:
            data = os.urandom(4)
            if data not in self._pending:
                return data

    def sent(self, data: bytes, now: float, waiter: W) -> None:
        """Record a ping sent at ``now``.

        Raises:
            ValueError: if a ping with the same payload is already pending.
        """
        if data in self._pending:
            raise ValueError("already waiting for a pong with the same data")
        self._pending[data] = (now, waiter)

    def pong(self, data: bytes, now: float) -> list[tuple[W, float]]:
        """Record a pong received at ``now``.

        Returns:
            The waiters of the pings it acknowledges, each with its round-trip time; empty
            for an unsolicited pong.
        """
        if data not in self._pending:
            return []
        answered = []
        for key, (sent_at, waiter) in list(self._pending.items()):
            del self._pending[key]
            answered.append((waiter, now - sent_at))
            if key == data:
                self.latency = now - sent_at
                break
        return answered

    def overdue(self, now: float, timeout: float) -> bool:
        """Whether the oldest pending ping has waited more than ``timeout`` seconds."""
        for sent_at, _ in self._pending.values():
            return now - sent_at > timeout
        return False

    def clear(self) -> list[W]:
        """Forget every pending ping; return their waiters, to fail them."""
        waiters = [waiter for _, waiter in self._pending.values()]
        self._pending.clear()
        return waiters


class KeepaliveAction(enum.Enum):
    """What a driver does at a keepalive deadline."""

    PING = "ping"
    """Send a keepalive ping (and record it in :class:`Pings`)."""
    WAIT = "wait"
    """Nothing: the last ping was answered in time; wait for the next deadline."""
    FAIL = "fail"
    """A pong is overdue: fail the connection with 1011 and drop it."""


class Keepalive:
    """When to send keepalive pings and when to give up on their pongs.

    The driver calls :meth:`start` once the connection is open and :meth:`due` at each
    deadline it returns, with its own clock; both drivers share this policy. A ping goes out
    every ``interval`` seconds; when ``timeout`` is shorter than ``interval``, its pong is
    checked ``timeout`` after it was sent, and the next ping is still due ``interval`` after
    the last one.

    Args:
        interval: seconds between pings; ``None`` sends none.
        timeout: seconds to wait for a pong; ``None`` waits forever.
    """

    def __init__(self, interval: float | None, timeout: float | None) -> None:
        self.interval = interval
        self.timeout = timeout
        self._pinged_at: float | None = None  # a pong check is due for the ping sent then

    def start(self, now: float) -> float | None:
        """The first deadline, or ``None`` when keepalive is off."""
        return None if self.interval is None else now + self.interval

    def due(self, now: float, pings: Pings[W]) -> tuple[KeepaliveAction, float | None]:
        """At a deadline: what to do, and the next deadline (``None`` after a failure)."""
        assert self.interval is not None, "due() is only called after start() set a deadline"
        timeout = self.timeout
        if timeout is not None and pings.overdue(now, timeout):
            return KeepaliveAction.FAIL, None
        pinged_at, self._pinged_at = self._pinged_at, None
        if pinged_at is not None:
            return KeepaliveAction.WAIT, pinged_at + self.interval
        if timeout is not None and timeout < self.interval:
            self._pinged_at = now
            return KeepaliveAction.PING, now + timeout + 0.001
        return KeepaliveAction.PING, now + self.interval
