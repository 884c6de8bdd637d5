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
:mod:`~socketeer.rpc.server`, the application and the router; :mod:`~socketeer.rpc.client`,
the asyncio client; :mod:`~socketeer.rpc.sync`, the blocking client
(``with socketeer.rpc.sync.connect(url) as peer: peer.call("add", 1, 2)``).
"""

from __future__ import annotations

from ..exceptions import CallTimeout, ConnectionLost, RemoteError, RPCError
from . import sync as sync  # the module: socketeer.rpc.sync.connect
from .client import RPCConnectOptions, connect
from .messages import (
    APPLICATION_ERROR,
    CALL_CANCELLED,
    CALL_TIMEOUT,
    CANCEL_METHOD,
    DISCOVER_METHOD,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    MAX_BATCH,
    MAX_METHOD_NAME_LENGTH,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    PING_METHOD,
    RESERVED_METHODS,
    Answer,
    Batch,
    Error,
    ErrorCode,
    ErrorResponse,
    Incoming,
    Invalid,
    Item,
    Message,
    Notification,
    Params,
    PendingCalls,
    Request,
    RequestId,
    Response,
    application_error,
    call_cancelled,
    call_timeout,
    internal_error,
    invalid_params,
    invalid_request,
    is_reserved_method_name,
    is_valid_method_name,
    method_not_found,
    parse,
    parse_error,
    serialize,
    serialize_answers,
)
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
    # Messages
    "RequestId",
    "Params",
    "Error",
    "Request",
    "Notification",
    "Response",
    "ErrorResponse",
    "Invalid",
    "Batch",
    "Message",
    "Answer",
    "Item",
    "Incoming",
    # Codec
    "parse",
    "serialize",
    "serialize_answers",
    "PendingCalls",
    # Error codes and standard error responses
    "ErrorCode",
    "PARSE_ERROR",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "INVALID_PARAMS",
    "INTERNAL_ERROR",
    "APPLICATION_ERROR",
    "CALL_TIMEOUT",
    "CALL_CANCELLED",
    "parse_error",
    "invalid_request",
    "method_not_found",
    "invalid_params",
    "internal_error",
    "application_error",
    "call_timeout",
    "call_cancelled",
    # Method names and limits
    "MAX_BATCH",
    "MAX_METHOD_NAME_LENGTH",
    "CANCEL_METHOD",
    "PING_METHOD",
    "DISCOVER_METHOD",
    "RESERVED_METHODS",
    "is_valid_method_name",
    "is_reserved_method_name",
    # Exceptions
    "RPCError",
    "RemoteError",
    "CallTimeout",
    "ConnectionLost",
]
