"""The asyncio RPC client: :func:`connect`.

::

    async with socketeer.rpc.connect("ws://localhost:8000/rpc") as peer:
        peer.register("ui.flash", flash)           # the server may call it
        peer.on("news", print)                     # the server's notifications
        print(await peer.call("add", 1, 2))
        print(await peer.proxy.counter.increment(by=2))

It offers the subprotocol ``socketeer.rpc.v1`` and fails if the server does not select it.
Unlike the browser client, it does not reconnect: a lost connection fails the calls in
flight with :exc:`~socketeer.exceptions.ConnectionLost`, as later calls, and the peer stops.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..asyncio.client import ConnectOptions
from ..asyncio.client import connect as connect_websocket
from ..exceptions import NegotiationError
from ..protocol.frames import CloseCode
from .peer import SUBPROTOCOL, Peer, PeerOptions, PeerOptionsDict
from .routes import Routes
from .server import RPC

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["connect", "RPCConnectOptions"]


class RPCConnectOptions(ConnectOptions, PeerOptionsDict, total=False):
    """The keyword arguments of :class:`connect`: those of :func:`socketeer.connect`
    (without ``subprotocols``), and the fields of :class:`~socketeer.rpc.PeerOptions`."""


class connect:  # noqa: N801 - a function to its users: awaitable and async context manager
    """Connect to an RPC server; return the connection's :class:`~socketeer.rpc.Peer`.

    ``async with connect(url) as peer:`` closes the connection on exit; ``peer = await
    connect(url)`` leaves it to ``await peer.close()``. The peer reads and answers messages
    in a task of its own until the connection closes.

    Args:
        uri: the ``ws://`` or ``wss://`` URI.
        routes: the methods the server may call, besides those given to
            :meth:`Peer.register`; an :class:`~socketeer.rpc.RPC` also gives its options
            as defaults.
        options: the fields of :class:`~socketeer.rpc.PeerOptions` (e.g. ``call_timeout``)
            and the options of :func:`socketeer.connect` (e.g. ``open_timeout``, ``ssl``),
            except ``subprotocols``.

    Raises:
        TypeError: if ``subprotocols`` is given, or an option is invalid.
        ValueError: if an option is invalid.
        InvalidURI: if ``uri`` is not a valid WebSocket URI.
    """

    def __init__(
        self,
        uri: str,
        *,
        routes: Routes | None = None,
        **options: Unpack[RPCConnectOptions],
    ) -> None:
        if "subprotocols" in options:
            raise TypeError(f"rpc.connect() offers the subprotocol {SUBPROTOCOL} itself")
        names = {field.name for field in dataclasses.fields(PeerOptions)}
        peer_options: Any = {n: v for n, v in options.items() if n in names}
        connect_options: Any = {n: v for n, v in options.items() if n not in names}
        defaults = routes.options if isinstance(routes, RPC) else PeerOptions()
        self.options = dataclasses.replace(defaults, **peer_options)
        """The options of the peer."""
        self.routes = routes
        self._connect = connect_websocket(uri, subprotocols=[SUBPROTOCOL], **connect_options)
        self.peer: Peer | None = None
        """The peer, once connected."""

    async def _start(self) -> Peer:
        connection = await self._connect
        if connection.subprotocol != SUBPROTOCOL:
            await connection.close(CloseCode.PROTOCOL_ERROR, f"{SUBPROTOCOL} required")
            raise NegotiationError(f"server did not select subprotocol {SUBPROTOCOL}")
        self.peer = Peer(connection, self.routes, self.options)
        self.peer.start()
        return self.peer

    def __await__(self) -> Generator[Any, None, Peer]:
        return self._start().__await__()

    async def __aenter__(self) -> Peer:
        return await self._start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.peer is not None:
            await self.peer.close()
