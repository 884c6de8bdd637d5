"""What the event-style handlers of both drivers share: the contract, and the adapter.

The asyncio driver (:class:`socketeer.Handler`, whose methods are coroutines) and the threaded
one (:class:`socketeer.sync.Handler`, plain methods) offer the style of websocket-client and
twspy: subclass ``Handler``, override the events you need, and pass the class to ``serve`` or
to ``run``::

    class Echo(socketeer.Handler):
        async def on_message(self, ws, message):
            await ws.send(message)

    async with socketeer.serve(Echo, "127.0.0.1", 8765):
        ...
    await socketeer.run("ws://127.0.0.1:8765", Client, reconnect=True)

What is a handler
-----------------

``serve`` and ``run`` take a ``Handler`` subclass, or ``Handler.factory(make)`` where ``make``
is a function without arguments that returns a new instance (``Handler.factory(lambda:
MyHandler(config))``): the wrapper says that it is a factory, since a plain function given to
``serve`` is the connection handler itself, as always. Each connection gets its own instance,
made when it opens. ``serve`` refuses a ``Handler`` instance (it would be shared by every
connection) and a handler of the other driver, with :exc:`TypeError`.

The events, for one connection
------------------------------

1. ``on_open(ws)`` once the connection is open;
2. ``on_message(ws, message)`` for each message, :class:`str` for text, :class:`bytes` for
   binary, one at a time and in order: the next message is read when ``on_message``
   returned, so a slow handler slows its peer down (backpressure), not the other
   connections;
3. ``on_error(ws, exc)`` when ``on_open`` or ``on_message`` raised ``exc``; the connection is
   then closed with 1011 (internal error), on the server side as a failing handler function
   would be, and on the client side too (the peer learns the code, not the exception). Also
   ``on_error(ws, exc)`` with a :exc:`~socketeer.exceptions.ConnectionClosedError` when the
   connection fails: it is lost without a closing handshake (``exc.rcvd`` is ``None``), or
   the peer broke the protocol (the :exc:`~socketeer.exceptions.ProtocolError` is
   ``exc.__cause__``). A closing handshake is no error, whatever its code: ``on_close`` has
   it. The default ``on_error`` logs the exceptions that are not about the connection
   closing, with their traceback, to the connection's logger;
4. ``on_close(ws, code, reason)`` exactly once, at the end, always: after the TCP connection
   ended, with the close code and reason received (1005 and ``""`` for a close frame without
   a code, 1006 and ``""`` for an abnormal closure). When the task running the handler is
   cancelled (asyncio: a server that shuts down cancels handlers still busy after
   ``close_timeout``), ``on_close`` comes at once, with 1006 if the connection is still open,
   and then the cancellation goes on.

A handler method that raises :exc:`~socketeer.exceptions.ConnectionClosed` because its own
connection closed (a ``send`` that came too late) does not count as an error: the connection
ends as if ``on_message`` returned, with ``on_error`` only if it failed. An exception
that ``on_error`` or ``on_close`` raises propagates: the server logs it, as for any failing
handler; ``run`` raises it.

Clients: run
------------

``run(uri, handler, reconnect=False, ...)``, whose other arguments are ``connect``'s,
connects (raising if it cannot), drives one handler instance, and returns once the
connection is closed. With
``reconnect=True``, it connects again after every closure, with a new instance each time, and
retries failed attempts with exponential backoff and jitter, raising only errors that will not
heal (those of the client's reconnection: ``async for ws in connect(uri)``, or
``socketeer.sync.client.reconnect``). A connection that ended other than with 1000 or 1001
both ways (the connection was lost, the server failed or closed with its own code) counts as
a failed attempt: the run waits a backoff delay before the next one, so that a server that
accepts and drops at once is not hammered; a normal closure starts the delays over and
reconnects at once.

A handler stops a reconnecting run by closing the connection itself with 1000:
``ws.close()`` (the default code) in any of its methods; ``run`` then returns after
``on_close``. Closing with another code, or the server closing, reconnects. From outside,
cancel the task (asyncio) or close the connection with 1000 from another thread (threads).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Generic, TypeVar

from .client import Backoff
from .connection import ConnectionBase
from .exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from .protocol.base import OPEN
from .protocol.frames import CloseCode
from .typedefs import LoggerLike

__all__ = [
    "HandlerBase",
    "HandlerFactory",
    "handler_maker",
    "is_closing_error",
    "is_failure",
    "close_status",
    "ReconnectPolicy",
    "log_error",
]

H = TypeVar("H", bound="HandlerBase")
H_co = TypeVar("H_co", bound="HandlerBase", covariant=True)


class HandlerBase:
    """The base of :class:`socketeer.Handler` and :class:`socketeer.sync.Handler`.

    It has no events of its own: their signatures differ between the drivers.
    """

    @classmethod
    def factory(cls, make: Callable[[], H]) -> HandlerFactory[H]:
        """Mark ``make`` as a factory of handlers, for ``serve`` and ``run``.

        Args:
            make: called without arguments for each connection; returns a new instance,
                e.g. ``lambda: MyHandler(config)``.
        """
        return HandlerFactory(make, cls)


@dataclasses.dataclass(frozen=True)
class HandlerFactory(Generic[H_co]):
    """A function that makes a handler per connection; see :meth:`HandlerBase.factory`."""

    make: Callable[[], H_co]
    """Returns a new handler instance."""
    kind: type[HandlerBase]
    """The class ``factory`` was called on, for an early check of the driver."""


def handler_maker(handler: object, base: type[H]) -> Callable[[], H] | None:
    """What makes a handler for each connection: ``None`` if ``handler`` is a plain function.

    Args:
        handler: what the application gave ``serve`` or ``run``.
        base: the ``Handler`` class of the driver.

    Raises:
        TypeError: if ``handler`` is a handler instance, a handler of the other driver, or
            not callable.
    """
    kind: type[HandlerBase]
    if isinstance(handler, HandlerFactory):
        kind, make = handler.kind, handler.make
    elif isinstance(handler, type) and issubclass(handler, HandlerBase):
        kind = make = handler
    elif isinstance(handler, HandlerBase):
        raise TypeError(
            f"got a {type(handler).__name__} instance; pass the class, or "
            "Handler.factory(make), so that each connection gets its own instance"
        )
    elif callable(handler):
        return None
    else:
        raise TypeError(f"handler must be callable, got {type(handler).__name__}")
    if not issubclass(kind, base):
        raise TypeError(
            f"{kind.__module__}.{kind.__qualname__} is not a subclass of "
            f"{base.__module__}.{base.__qualname__}: a handler of the other driver?"
        )

    def checked() -> H:
        instance = make()
        if not isinstance(instance, base):
            raise TypeError(f"handler factory returned {instance!r}, not a {base.__qualname__}")
        return instance

    return checked


def is_closing_error(ws: ConnectionBase, exc: Exception) -> bool:
    """Whether ``exc``, raised by a handler method, only says that ``ws`` is closing.

    A :exc:`ConnectionClosed` while ``ws`` is open comes from another connection: that is a
    failure of the handler.
    """
    return isinstance(exc, ConnectionClosed) and ws.state is not OPEN


def is_failure(exc: Exception) -> bool:
    """Whether ``exc`` says that the connection failed: lost without a closing handshake, or
    failed because the peer broke the protocol (the cause is chained)."""
    return isinstance(exc, ConnectionClosedError) and (
        exc.rcvd is None or exc.__cause__ is not None
    )


def close_status(ws: ConnectionBase) -> tuple[int, str]:
    """The code and reason for ``on_close``: 1006 and ``""`` unless a close frame came."""
    code, reason = ws.close_code, ws.close_reason
    if code is None or reason is None:
        return CloseCode.ABNORMAL_CLOSURE, ""
    return code, reason


class ReconnectPolicy:
    """What a reconnecting ``run`` does once a connection closed: stop, or wait and reconnect.

    Failed attempts to connect are the business of the client's reconnection (``connect``'s
    iteration); this policy only looks at connections that opened, then closed.
    """

    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff
        self.failures = 0
        """Connections in a row that ended with an error."""

    def after_close(self, ws: ConnectionBase) -> float | None:
        """``None`` to stop the run, else the seconds to wait before connecting again.

        The run stops when this side started the closing handshake with 1000. It reconnects
        at once after a normal closure (1000 or 1001 both ways), and after a backoff delay,
        growing with each failure in a row, after any other end.
        """
        protocol = ws.protocol
        sent = protocol.close_sent
        if (
            sent is not None
            and sent.code == CloseCode.NORMAL_CLOSURE
            and not protocol.close_rcvd_then_sent
        ):
            return None
        if isinstance(ws._closed_exc(), ConnectionClosedOK):
            self.failures = 0
            return 0.0
        self.failures += 1
        return self.backoff.delay(self.failures - 1)


def log_error(logger: LoggerLike, exc: Exception) -> None:
    """The default ``on_error``: log ``exc`` with its traceback, unless it is a closure."""
    if not isinstance(exc, ConnectionClosed):
        logger.error("connection handler failed", exc_info=exc)
