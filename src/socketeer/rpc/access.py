"""Who may do what over RPC: authentication, authorization and rate limits.

An :class:`~socketeer.rpc.RPC` application takes three hooks and two limits, all optional:

- ``authenticate(request)`` runs before the handshake, on the HTTP request (its headers,
  cookies included, and its path, query included). What it returns, if not ``None``, is the
  connection's user: :attr:`Peer.user <socketeer.rpc.Peer.user>`, which methods reach with
  ``current_peer().user`` (or ``self.peer.user`` in a class route). ``None`` refuses the
  handshake with ``403 Forbidden``: the connection never opens. It may be ``async``.
- ``authorize(peer, action, name)`` runs before each call that a client makes, with the
  action ``"call"`` and the method's name (notifications too), and before each
  ``$/room/join`` and ``$/room/publish``, with the action ``"join"`` or ``"publish"`` and the
  room's name. A false answer refuses the call with -32003 (``forbidden``; a refused
  notification is dropped). It may be ``async``; it runs in the call's task, under the call's
  execution timeout. Leaving a room is always allowed.
- ``call_limit=RateLimit(rate, burst)`` limits the calls and notifications each connection
  makes (``$/cancel`` excepted): beyond it, a call is answered -32004 (``rate limit
  exceeded``, with ``{"retry_after": seconds}``) at once, without running, and a notification
  is dropped. ``publish_limit`` does the same for ``$/room/publish``, on its own.

A method may also refuse by itself: raising :exc:`Forbidden` answers -32003, and
:exc:`RateLimited` -32004, instead of the -32000 of other exceptions.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal, TypeAlias

from ..protocol.http11 import Request

if TYPE_CHECKING:
    from .peer import Peer

__all__ = [
    "Action",
    "Authenticate",
    "Authorize",
    "Forbidden",
    "RateLimit",
    "RateLimited",
]

Action: TypeAlias = Literal["call", "join", "publish"]
"""What a client asks to do: call a method (or notify it), join a room, publish to a room."""

Authenticate: TypeAlias = Callable[[Request], object | Awaitable[object]]
"""``authenticate(request)``: the connection's user, or ``None`` to refuse it; see the module."""

Authorize: TypeAlias = Callable[["Peer", Action, str], bool | Awaitable[bool]]
"""``authorize(peer, action, name)``: whether the peer may; see the module."""


class Forbidden(Exception):
    """Raised by a method to refuse its call: the caller gets -32003 (``forbidden``), with
    the exception's message as ``data``. :attr:`RPC.authorize <socketeer.rpc.RPC>` refuses
    with it too."""


class RateLimited(Exception):
    """Raised by a method to refuse its call for now: the caller gets -32004 (``rate limit
    exceeded``), with ``{"retry_after": seconds}`` as ``data``.

    Args:
        retry_after: seconds until a call would be let through.
    """

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limit exceeded; retry after {retry_after:.3f} s")
        self.retry_after = retry_after
        """Seconds until a call would be let through."""


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """A rate limit per connection, as a token bucket: ``rate`` per second on average, and
    up to ``burst`` at once after a quiet time.

    ``RateLimit(10)`` lets a connection make 10 calls at once, then one every 0.1 s;
    ``RateLimit(10, burst=50)`` 50 at once, then the same.

    Raises:
        TypeError, ValueError: if ``rate`` is not a positive number, or ``burst`` not an
            integer of at least 1.
    """

    rate: float
    """Calls per second, on average."""
    burst: int | None = None
    """Calls at once, after a quiet time; ``None``: ``rate`` rounded up (at least 1)."""

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)):
            raise TypeError(f"rate must be a number of calls per second, got {self.rate!r}")
        if not 0 < self.rate < math.inf:  # NaN too
            raise ValueError(f"rate must be positive and finite, got {self.rate}")
        if self.burst is not None:
            if isinstance(self.burst, bool) or not isinstance(self.burst, int):
                raise TypeError(f"burst must be an integer, got {self.burst!r}")
            if self.burst < 1:
                raise ValueError(f"burst must be at least 1, got {self.burst}")

    @property
    def capacity(self) -> int:
        """The burst: calls at once after a quiet time."""
        return self.burst if self.burst is not None else max(1, math.ceil(self.rate))

    def bucket(self, now: float) -> TokenBucket:
        """A full bucket for one connection, at time ``now`` (a monotonic clock)."""
        return TokenBucket(self.rate, self.capacity, now)


class TokenBucket:
    """The state of a :class:`RateLimit` for one connection."""

    __slots__ = ("_rate", "_capacity", "_tokens", "_stamp")

    def __init__(self, rate: float, capacity: int, now: float) -> None:
        self._rate = rate
        self._capacity = float(capacity)
        self._tokens = float(capacity)
        self._stamp = now

    def take(self, now: float) -> float:
        """Take one token at time ``now``: return 0.0 if there was one, else the seconds
        until there will be one (and take nothing)."""
        tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return 0.0
        self._tokens = tokens
        return (1.0 - tokens) / self._rate
