"""Event-style handlers on asyncio: :class:`Handler`, and :func:`run` for clients.

Subclass :class:`Handler`, override the coroutines you need, and pass the class (or
``Handler.factory(make)``) to :func:`~socketeer.serve` or to :func:`run`; each connection
gets its own instance. The order of the events, errors, close codes and how a reconnecting
:func:`run` stops are the same for both drivers: see :mod:`socketeer.handler`.

``on_message`` is awaited before the next message is read, so backpressure works: a handler
that takes its time leaves messages unread, and reading from the network pauses once
``max_queue`` of them wait.

``on_message`` may also be a plain method (``def``, not ``async def``). It is then called
from the event loop as each message arrives, in the context of the connection's task, with
no task switch: an echo costs the server about 40% less CPU. It cannot await; it sends with
:meth:`~socketeer.asyncio.connection.Connection.send_nowait`, and messages wait while the
write buffer is above ``write_limit``, so backpressure still works. If it returns an
awaitable, that is awaited before the next message is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

from ..exceptions import ConnectionClosed
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
from ..protocol.base import CLOSING
from ..protocol.frames import CloseCode
from ..typedefs import Data
from .client import ClientConnection, ConnectOptions, connect
from .connection import Connection

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Handler", "HandlerClass", "run", "connection_handler"]

C = TypeVar("C", bound=Connection)


class Handler(HandlerBase):
    """Handles the events of one connection; subclass it and override what you need.

    ``ws`` is the :class:`~socketeer.asyncio.server.ServerConnection` in a server and the
    :class:`~socketeer.asyncio.client.ClientConnection` in :func:`run`; send with
    ``await ws.send(...)``, close with ``await ws.close(...)``. Order of the events:
    ``on_open``, ``on_message`` for each message, ``on_error`` if something failed,
    ``on_close`` once; see :mod:`socketeer.handler`.
    """

    async def on_open(self, ws: Connection) -> None:
        """The connection is open."""

    def on_message(self, ws: Connection, message: Data) -> Awaitable[None] | None:
        """A message arrived: :class:`str` for text, :class:`bytes` for binary.

        Override it with a coroutine (``async def``), awaited before the next message is
        read, or with a plain method, called as each message arrives (see the module's
        documentation); by default, messages are dropped.
        """
        return None

    async def on_error(self, ws: Connection, exc: Exception) -> None:
        """``on_open`` or ``on_message`` raised ``exc``, or the connection failed (``exc``
        is then a :exc:`~socketeer.exceptions.ConnectionClosedError`).

        By default, logs ``exc`` with its traceback, unless it is about the connection
        closing.
        """
        log_error(ws.logger, exc)

    async def on_close(self, ws: Connection, code: int, reason: str) -> None:
        """The connection is closed: the close code and reason received, 1006 and ``""``
        after an abnormal closure."""


HandlerClass: TypeAlias = type[Handler] | HandlerFactory[Handler]
"""A :class:`Handler` subclass, or ``Handler.factory(make)``."""


def connection_handler(
    handler: Callable[[C], Awaitable[Any]] | HandlerClass,
) -> Callable[[C], Awaitable[Any]]:
    """The connection handler of ``serve``: ``handler`` itself if it is a plain function, or
    a coroutine function that makes a new instance and drives its events.

    Raises:
        TypeError: if ``handler`` is a :class:`Handler` instance, a handler of the threaded
            driver, or not callable.
    """
    make = handler_maker(handler, Handler)
    if make is None:
        return cast(Callable[[C], Awaitable[Any]], handler)

    async def handle(ws: C) -> None:
        await _drive(make(), ws)

    return handle


async def _drive(handler: Handler, ws: Connection) -> None:
    """Run the events of ``handler`` for ``ws``, in the order of :mod:`socketeer.handler`."""
    cancelled = False
    try:
        await handler.on_open(ws)
        on_message = handler.on_message
        if not inspect.iscoroutinefunction(on_message):
            # A plain method: called as each message arrives, without this task.
            result = await ws._listen(functools.partial(on_message, ws))
            if result is not None:
                await cast(Awaitable[None], result)
        async for message in ws:  # the rest of the messages, if any, and how they ended
            result = on_message(ws, message)
            if result is not None:
                await result
    except asyncio.CancelledError:
        cancelled = True
        raise
    except Exception as exc:
        if not is_closing_error(ws, exc):
            await _fail(handler, ws, exc)  # the handler failed: on_error, then 1011
        else:
            if ws.state is CLOSING:
                # send_nowait() cannot wait for the end of the closing handshake, as send()
                # does: whether the connection failed is known once it is closed.
                try:
                    await ws._raise_when_closed()
                except ConnectionClosed as closed:
                    exc = closed
            if is_failure(exc):
                await handler.on_error(ws, exc)  # the connection failed
    finally:
        if not cancelled:
            await ws.close()  # just waits for the end, unless something left it open
        await handler.on_close(ws, *close_status(ws))


async def _fail(handler: Handler, ws: Connection, exc: Exception) -> None:
    try:
        await handler.on_error(ws, exc)
    finally:
        await ws.close(CloseCode.INTERNAL_ERROR)


async def run(
    uri: str,
    handler: HandlerClass,
    *,
    reconnect: bool = False,
    **options: Unpack[ConnectOptions],
) -> None:
    """Connect to ``uri`` and drive a new ``handler`` instance until the connection closes.

    With ``reconnect``, connect again after each closure, until a handler closes the
    connection itself with 1000; see :mod:`socketeer.handler`.

    Args:
        uri: the ``ws://`` or ``wss://`` URI to connect to.
        handler: a :class:`Handler` subclass, or ``Handler.factory(make)``.
        reconnect: connect again after each closure, and after transient failures.
        options: the options of :func:`~socketeer.connect`.

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
    client = connect(uri, **options)
    if not reconnect:
        async with client as ws:
            await _drive(make(), ws)
        return
    # connect.__aiter__ is an async generator: close it at once when the run ends.
    connections = cast(AsyncGenerator[ClientConnection, None], client.__aiter__())
    policy = ReconnectPolicy(client.backoff)
    async with contextlib.aclosing(connections):
        async for ws in connections:
            await _drive(make(), ws)
            delay = policy.after_close(ws)
            if delay is None:
                return
            if delay:
                client.logger.info(
                    "connection closed with code %s; reconnecting in %.1f s", ws.close_code, delay
                )
                await asyncio.sleep(delay)
