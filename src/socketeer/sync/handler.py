"""Event-style handlers on threads: :class:`Handler`, and :func:`run` for clients.

Subclass :class:`Handler`, override the methods you need, and pass the class (or
``Handler.factory(make)``) to :func:`~socketeer.sync.serve` or to :func:`run`; each connection
gets its own instance. The order of the events, errors, close codes and how a reconnecting
:func:`run` stops are the same for both drivers: see :mod:`socketeer.handler`.

The methods run in the connection's thread on a server, and in the thread that called
:func:`run` on a client; ``on_message`` returns before the next message is read.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

from ..handler import (
    HandlerBase,
    HandlerFactory,
    ReconnectPolicy,
    close_status,
    handler_maker,
    is_closing_error,
    is_failure,
    log_error,
)
from ..options import ClientOptionsDict
from ..protocol.frames import CloseCode
from ..typedefs import Data
from .client import ClientConnection
from .client import reconnect as _reconnect
from .connection import Connection

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Handler", "HandlerClass", "run", "connection_handler"]

C = TypeVar("C", bound=Connection)


class Handler(HandlerBase):
    """Handles the events of one connection; subclass it and override what you need.

    ``ws`` is the :class:`~socketeer.sync.server.ServerConnection` in a server and the
    :class:`~socketeer.sync.client.ClientConnection` in :func:`run`. Order of the events:
    ``on_open``, ``on_message`` for each message, ``on_error`` if something failed,
    ``on_close`` once; see :mod:`socketeer.handler`.
    """

    def on_open(self, ws: Connection) -> None:
        """The connection is open."""

    def on_message(self, ws: Connection, message: Data) -> None:
        """A message arrived: :class:`str` for text, :class:`bytes` for binary."""

    def on_error(self, ws: Connection, exc: Exception) -> None:
        """``on_open`` or ``on_message`` raised ``exc``, or the connection failed (``exc``
        is then a :exc:`~socketeer.exceptions.ConnectionClosedError`).

        By default, logs ``exc`` with its traceback, unless it is about the connection
        closing.
        """
        log_error(ws.logger, exc)

    def on_close(self, ws: Connection, code: int, reason: str) -> None:
        """The connection is closed: the close code and reason received, 1006 and ``""``
        after an abnormal closure."""


HandlerClass: TypeAlias = type[Handler] | HandlerFactory[Handler]
"""A :class:`Handler` subclass, or ``Handler.factory(make)``."""


def connection_handler(handler: Callable[[C], Any] | HandlerClass) -> Callable[[C], Any]:
    """The connection handler of ``serve``: ``handler`` itself if it is a plain function, or
    a function that makes a new instance and drives its events.

    Raises:
        TypeError: if ``handler`` is a :class:`Handler` instance, a handler of the asyncio
            driver, or not callable.
    """
    make = handler_maker(handler, Handler)
    if make is None:
        return cast(Callable[[C], Any], handler)

    def handle(ws: C) -> None:
        _drive(make(), ws)

    return handle


def _drive(handler: Handler, ws: Connection) -> None:
    """Run the events of ``handler`` for ``ws``, in the order of :mod:`socketeer.handler`."""
    try:
        handler.on_open(ws)
        for message in ws:
            handler.on_message(ws, message)
    except Exception as exc:
        if not is_closing_error(ws, exc):
            _fail(handler, ws, exc)  # the handler failed: on_error, then 1011
        elif is_failure(exc):
            handler.on_error(ws, exc)  # the connection failed
    finally:
        # Just waits for the end, unless something left it open (e.g. KeyboardInterrupt).
        ws.close()
        handler.on_close(ws, *close_status(ws))


def _fail(handler: Handler, ws: Connection, exc: Exception) -> None:
    try:
        handler.on_error(ws, exc)
    finally:
        ws.close(CloseCode.INTERNAL_ERROR)


def run(
    uri: str,
    handler: HandlerClass,
    *,
    reconnect: bool = False,
    **options: Unpack[ClientOptionsDict],
) -> None:
    """Connect to ``uri`` and drive a new ``handler`` instance until the connection closes.

    With ``reconnect``, connect again after each closure, until a handler closes the
    connection itself with 1000; see :mod:`socketeer.handler`.

    Args:
        uri: the ``ws://`` or ``wss://`` URI to connect to.
        handler: a :class:`Handler` subclass, or ``Handler.factory(make)``.
        reconnect: connect again after each closure, and after transient failures.
        options: the options of :func:`~socketeer.sync.connect` and
            :class:`~socketeer.sync.client.reconnect`.

    Raises:
        TypeError: if ``handler`` is neither, or if an option is invalid.
        ValueError: if an option is invalid, or if ``reconnect`` is given with ``sock`` (a
            socket connects once).
        OSError: if the connection fails (without ``reconnect``).
        HandshakeError: if the opening handshake fails (with ``reconnect``, only failures
            that will not heal).
    """
    make = handler_maker(handler, Handler)
    if make is None:
        raise TypeError(f"run() takes a Handler subclass or Handler.factory(), not {handler!r}")
    client = _reconnect(uri, **options)
    if not reconnect:
        with client.create_connection() as ws:  # what connect() does
            _drive(make(), ws)
        return
    # reconnect.__iter__ is a generator: close it at once when the run ends.
    connections = cast(Generator[ClientConnection, None, None], iter(client))
    policy = ReconnectPolicy(client.backoff)
    with contextlib.closing(connections):
        for ws in connections:
            _drive(make(), ws)
            delay = policy.after_close(ws)
            if delay is None:
                return
            if delay:
                client.logger.info(
                    "connection closed with code %s; reconnecting in %.1f s", ws.close_code, delay
                )
                time.sleep(delay)
