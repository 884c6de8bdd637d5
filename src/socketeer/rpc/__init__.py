"""JSON-RPC 2.0 over WebSocket: both ends call and answer (``docs/rpc-protocol.md``).

::

    rpc = socketeer.rpc.RPC()

    @rpc.method
    async def add(a: int, b: int) -> int:
        return a + b

    async with socketeer.serve(rpc, "127.0.0.1", 8000) as server:
        await server.serve_forever()

    async with socketeer.rpc.connect("ws://127.0.0.1:8000") as peer:
        print(await peer.call("add", 1, 2))

Modules: :mod:`~socketeer.rpc.messages`, the codec (pure, without sockets or asyncio);
:mod:`~socketeer.rpc.routes`, the table of methods and its exposure rules;
:mod:`~socketeer.rpc.peer`, one end of a connection, calling and answering;
:mod:`~socketeer.rpc.server`, the application and the router;
:mod:`~socketeer.rpc.access`, its authentication, authorization and rate limits;
:mod:`~socketeer.rpc.client`, the asyncio client; :mod:`~socketeer.rpc.sync`, the blocking client
(``with socketeer.rpc.sync.connect(url) as peer: peer.call("add", 1, 2)``).
"""

from __future__ import annotations

from ..exceptions import CallTimeout, ConnectionLost, RemoteError, RPCError
from . import sync as sync  # the module: socketeer.rpc.sync.connect
from .access import Action, Authenticate, Authorize, Forbidden, RateLimit, RateLimited
from .client import RPCConnectOptions, connect
from .messages import *  # noqa: F403
from .messages import __all__ as _messages_all
from .peer import (
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_EXECUTION_TIMEOUT,
    MAX_CONCURRENCY,
    SUBPROTOCOL,
    Peer,
    PeerOptions,
    PeerOptionsDict,
    Proxy,
    current_peer,
)
from .routes import DEFAULT, InvalidArguments, Method, Route, RouteClass, Routes, Timeout
from .server import RPC, STATIC_FILES, Router

__all__ = [
    # Applications, peers, clients
    "RPC",
    "Route",
    "Routes",
    "Method",
    "RouteClass",
    "InvalidArguments",
    "DEFAULT",
    "Timeout",
    "Router",
    "STATIC_FILES",
    "Peer",
    "PeerOptions",
    "PeerOptionsDict",
    "Proxy",
    "current_peer",
    "connect",
    "RPCConnectOptions",
    "SUBPROTOCOL",
    "MAX_CONCURRENCY",
    "DEFAULT_EXECUTION_TIMEOUT",
    "DEFAULT_CALL_TIMEOUT",
    # Access (socketeer.rpc.access)
    "Action",
    "Authenticate",
    "Authorize",
    "RateLimit",
    "Forbidden",
    "RateLimited",
    # Messages, the codec, error codes, method names (socketeer.rpc.messages)
    *_messages_all,
    # Exceptions
    "RPCError",
    "RemoteError",
    "CallTimeout",
    "ConnectionLost",
]
