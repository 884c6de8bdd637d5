"""Serving RPC: the application :class:`RPC`, and :class:`Router` to serve it beside others.

``socketeer.serve(rpc, host, port)`` runs an :class:`RPC` application: :func:`~socketeer.serve`
recognizes it as a :class:`~socketeer.asyncio.server.ServerApp`, so that the server selects
the subprotocol ``socketeer.rpc.v1`` and asks :meth:`RPC.process_request` about each
request before the handshake. That one:

- answers ``GET /socketeer.js`` (and ``/socketeer.d.ts``, its types) with the browser
  client, from the package's ``static`` folder, so that a page needs only
  ``import { RPC } from "/socketeer.js"``;
- refuses a WebSocket handshake from a page of another origin with ``403 Forbidden``:
  browsers let any page open a WebSocket to any server, with the user's cookies, so an RPC
  endpoint that trusts them would answer a hostile page as it answers its own
  (cross-site WebSocket hijacking). By default only pages of the server's own origin
  (their ``Origin`` names the ``Host`` the browser asked for) are let in, and clients that
  send no ``Origin`` (programs, not browsers); ``RPC(origins=[...])`` lists the origins
  allowed besides, ``RPC(origins="*")`` lets every page in;
- refuses a WebSocket handshake that does not offer ``socketeer.rpc.v1`` with
  ``400 Bad Request``, whose body says so. The connection never opens: a client that speaks
  something else fails at once with a clear status, rather than opening, getting messages
  it cannot read, and being closed;
- asks its ``authenticate`` hook, if any, who the client is, and refuses the handshake with
  ``403 Forbidden`` when it answers ``None`` (:mod:`socketeer.rpc.access`).

Then each connection gets a :class:`~socketeer.rpc.Peer` that runs until it closes. Given
:class:`~socketeer.pubsub.Rooms`, the application also serves the reserved methods of rooms
(``$/room/join``, ``$/room/leave``, and ``$/room/publish`` if clients may publish; see
``docs/pubsub.md``) to its peers.

To serve RPC beside other handlers, route by path::

    socketeer.serve(Router({"/rpc": rpc, "/chat": chat}), host, port)
"""

from __future__ import annotations

import functools
import http
import importlib.resources
import inspect
import urllib.parse
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from ..asyncio.connection import Connection
from ..asyncio.handler import HandlerClass, connection_handler
from ..asyncio.server import ServerApp, ServerConnection, is_server_app
from ..exceptions import InvalidHeaderFormat, MultipleValuesError
from ..protocol.frames import CloseCode
from ..protocol.headers import parse_subprotocol
from ..protocol.http11 import Request, Response
from ..typedefs import Subprotocol
from .access import Authenticate, Authorize, RateLimit
from .peer import SUBPROTOCOL, Peer, PeerOptions, PeerOptionsDict
from .routes import Routes

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..pubsub.rooms import Rooms

__all__ = ["RPC", "Router", "STATIC_FILES"]

STATIC_FILES = {
    "/socketeer.js": ("socketeer.js", "text/javascript; charset=utf-8"),
    "/socketeer.d.ts": ("socketeer.d.ts", "application/typescript; charset=utf-8"),
}
"""The paths :meth:`RPC.process_request` serves: the file in the package's ``static`` folder
and its content type."""


class RPC(Routes):
    """An RPC application: the methods a connection may call, and how they run.

    Register methods with :meth:`~Routes.method` and class routes with :meth:`~Routes.route`,
    then serve it: ``socketeer.serve(rpc, host, port)``, or on a path with :class:`Router`.
    Clients may use one too, for the calls the server makes
    (``socketeer.rpc.connect(url, routes=rpc)``).

    What a method raises goes back to its caller (-32000, with the exception's type name and
    message, and its traceback in debug mode); it is not logged. What has nobody to go back
    to (a failing notification, ``on_close``, a result JSON cannot carry) is logged.

    Args:
        rooms: rooms that clients may join and leave (``$/room/join``, ``$/room/leave``),
            receiving their publications as ``$/room/message`` notifications; a peer
            leaves all its rooms when it closes. Methods join clients to rooms themselves
            with ``await rooms.join(current_peer(), room)``.
        client_publish: let clients publish to any room (``$/room/publish``); without it
            that method is not found (-32601), and only the application publishes.
        origins: the origins of the pages allowed to connect besides the server's own
            (e.g. ``["https://app.example.com"]``), or ``"*"`` for every page; see the
            module's description.
        authenticate: ``authenticate(request)``, sync or async: the connection's user
            (:attr:`Peer.user <socketeer.rpc.Peer.user>`), or ``None`` to refuse the
            handshake with 403; see :mod:`socketeer.rpc.access`.
        authorize: ``authorize(peer, action, name)``, sync or async: whether the client may
            call a method (``"call"``), join a room (``"join"``) or publish to it
            (``"publish"``); refused calls are answered -32003.
        call_limit: the rate limit of each connection's calls and notifications; beyond
            it, calls are answered -32004 and notifications dropped.
        publish_limit: the rate limit of each connection's publications
            (``$/room/publish``), on its own.
        options: the fields of :class:`~socketeer.rpc.PeerOptions` (``debug``,
            ``max_concurrency``, ``execution_timeout``, ``call_timeout``, ``max_batch``),
            for every connection.

    Raises:
        TypeError, ValueError: if an option is invalid, ``client_publish`` or
            ``publish_limit`` is given without ``rooms``, ``publish_limit`` without
            ``client_publish``, or ``origins`` is neither ``"*"`` nor a sequence of
            origins.
    """

    def __init__(
        self,
        *,
        rooms: Rooms | None = None,
        client_publish: bool = False,
        origins: Sequence[str] | Literal["*"] = (),
        authenticate: Authenticate | None = None,
        authorize: Authorize | None = None,
        call_limit: RateLimit | None = None,
        publish_limit: RateLimit | None = None,
        **options: Unpack[PeerOptionsDict],
    ) -> None:
        super().__init__()
        self.origins: frozenset[str] | None = _check_origins(origins)
        """The origins allowed besides the server's own; ``None``: every one."""
        self.options = PeerOptions(**options)
        """The options of the peers of its connections."""
        if client_publish and rooms is None:
            raise ValueError("client_publish needs rooms")
        if publish_limit is not None and not client_publish:
            raise ValueError("publish_limit needs client_publish")
        for name, hook in (("authenticate", authenticate), ("authorize", authorize)):
            if hook is not None and not callable(hook):
                raise TypeError(f"{name} must be callable, got {hook!r}")
        for name, limit in (("call_limit", call_limit), ("publish_limit", publish_limit)):
            if limit is not None and not isinstance(limit, RateLimit):
                raise TypeError(f"{name} must be a RateLimit, got {limit!r}")
        self.rooms = rooms
        """The rooms its clients may join, if any."""
        self.authenticate = authenticate
        """The hook that tells who a client is, if any."""
        self.authorize = authorize
        """The hook that tells what a client may do, if any."""
        self.call_limit = call_limit
        """The rate limit of each connection's calls, if any."""
        self._reserved = (
            {}
            if rooms is None
            else rooms.rpc_methods(client_publish=client_publish, publish_limit=publish_limit)
        )
        # The users that authenticate() answered, from the handshake to the handler.
        self._users: weakref.WeakKeyDictionary[ServerConnection, object] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def subprotocols(self) -> Sequence[Subprotocol]:
        """``[socketeer.rpc.v1]``: what the server selects."""
        return [SUBPROTOCOL]

    async def __call__(self, connection: Connection) -> None:
        """Run a :class:`~socketeer.rpc.Peer` on ``connection`` until it closes: the
        connection handler of ``serve``.

        A connection without the subprotocol (a server that was not told to select it) is
        closed at once with 1008 (policy violation).
        """
        if connection.subprotocol != SUBPROTOCOL:
            reason = f"subprotocol {SUBPROTOCOL} required"
            await connection.close(CloseCode.POLICY_VIOLATION, reason)
            return
        user = (
            self._users.pop(connection, None) if isinstance(connection, ServerConnection) else None
        )
        if user is None and self.authenticate is not None:
            # Only a connection whose handshake this app's process_request accepted has a user.
            await connection.close(CloseCode.POLICY_VIOLATION, "not authenticated")
            return
        peer = Peer(
            connection,
            self,
            self.options,
            reserved=self._reserved,
            user=user,
            authorize=self.authorize,
            call_limit=self.call_limit,
        )
        await peer.run()

    def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None | Awaitable[Response | None]:
        """Serve the browser client, refuse handshakes without the subprotocol or that
        ``authenticate`` refuses, or return ``None`` to go on; see the module's
        description."""
        path = _path(request)
        static = STATIC_FILES.get(path)
        if static is not None:
            return _static_response(connection, request, *static)
        if _is_upgrade(request) and not self._origin_allowed(request):
            origin = request.headers.get("Origin", "")
            return connection.respond(
                http.HTTPStatus.FORBIDDEN,
                f"failed to open a WebSocket connection: origin {origin} not allowed\n",
            )
        if _is_upgrade(request) and not _offers(request, SUBPROTOCOL):
            return connection.respond(
                http.HTTPStatus.BAD_REQUEST,
                f"failed to open a WebSocket connection: this is a socketeer RPC endpoint; "
                f"offer the subprotocol {SUBPROTOCOL}\n",
            )
        if _is_upgrade(request) and self.authenticate is not None:
            return self._authenticate(self.authenticate, connection, request)
        return None

    async def _authenticate(
        self, authenticate: Authenticate, connection: ServerConnection, request: Request
    ) -> Response | None:
        user = authenticate(request)
        if inspect.isawaitable(user):
            user = await user
        if user is None:
            return connection.respond(
                http.HTTPStatus.FORBIDDEN,
                "failed to open a WebSocket connection: authentication failed\n",
            )
        self._users[connection] = user
        return None

    def _origin_allowed(self, request: Request) -> bool:
        """Whether the page that opens the connection may: see the module's description."""
        try:
            origin = request.headers.get("Origin")
        except MultipleValuesError:
            return False
        if origin is None or self.origins is None:
            return True
        origin = origin.lower()
        return origin in self.origins or _same_origin(origin, request)


def _check_origins(origins: Sequence[str] | Literal["*"]) -> frozenset[str] | None:
    if origins == "*":
        return None
    if isinstance(origins, str) or not all(isinstance(o, str) for o in origins):
        raise TypeError(f'origins must be "*" or a sequence of origins, got {origins!r}')
    for origin in origins:
        parts = urllib.parse.urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            raise ValueError(f"origin must be scheme://host[:port], got {origin!r}")
    return frozenset(origin.lower() for origin in origins)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _same_origin(origin: str, request: Request) -> bool:
    """Whether ``origin`` (lower-case) names the host the request was sent to."""
    try:
        host = request.headers.get("Host")
        parts = urllib.parse.urlsplit(origin)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        target = urllib.parse.urlsplit(f"//{host}")
        target_port = target.port or _DEFAULT_PORTS.get(parts.scheme)
    except (MultipleValuesError, ValueError):
        return False
    if host is None or parts.hostname is None or parts.scheme not in _DEFAULT_PORTS:
        return False
    return (parts.hostname, port) == (target.hostname, target_port)


@functools.cache
def _static_file(filename: str) -> bytes:
    return (importlib.resources.files("socketeer") / "static" / filename).read_bytes()


def _static_response(
    connection: ServerConnection, request: Request, filename: str, content_type: str
) -> Response:
    if request.method != "GET":
        return connection.respond(
            http.HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed\n", headers=[("Allow", "GET")]
        )
    headers = [
        ("Cache-Control", "no-cache"),
        ("X-Content-Type-Options", "nosniff"),
        # A public, static module: pages of other origins may import it.
        ("Access-Control-Allow-Origin", "*"),
    ]
    body = _static_file(filename)
    return connection.respond(http.HTTPStatus.OK, body, content_type=content_type, headers=headers)


def _path(request: Request) -> str:
    return urllib.parse.urlsplit(request.path).path


def _is_upgrade(request: Request) -> bool:
    return any("websocket" in value.lower() for value in request.headers.get_all("Upgrade"))


def _offers(request: Request, subprotocol: Subprotocol) -> bool:
    try:
        return any(
            subprotocol in parse_subprotocol(value)
            for value in request.headers.get_all("Sec-WebSocket-Protocol")
        )
    except InvalidHeaderFormat:
        return True  # the handshake refuses the header itself, with its own message


Handler: TypeAlias = Callable[[ServerConnection], Awaitable[Any]] | HandlerClass | ServerApp
"""What a path leads to: a handler function, a ``Handler`` class or factory, or an app
such as :class:`RPC`."""


class Router:
    """Route connections to handlers by the path of their URL; a
    :class:`~socketeer.asyncio.server.ServerApp` for :func:`~socketeer.serve`::

        socketeer.serve(Router({"/rpc": rpc, "/chat": chat}), host, port)

    The path of the handshake request, without its query, picks the handler; paths match
    exactly. A request for another path is answered ``404 Not Found``, except plain HTTP
    requests (not WebSocket handshakes), which the apps among the handlers may answer first,
    in order: that is how an :class:`RPC` app routed on ``/rpc`` still serves
    ``/socketeer.js``.

    On an app's path, its ``process_request`` runs before the handshake. The server selects
    the subprotocols of all the apps (in order): a client that offers one of them gets it,
    whatever the path.

    Args:
        routes: URL path (starting with ``/``) → handler function, ``Handler`` class or
            factory, or app.

    Raises:
        ValueError: if a path does not start with ``/``.
        TypeError: if a handler is a ``Handler`` instance or a handler of the threaded
            driver.
    """

    def __init__(self, routes: Mapping[str, Handler]) -> None:
        for path in routes:
            if not path.startswith("/"):
                raise ValueError(f"paths start with /, got {path!r}")
        self._handlers = {path: connection_handler(h) for path, h in routes.items()}
        self._apps = {path: h for path, h in routes.items() if is_server_app(h)}

    @property
    def subprotocols(self) -> Sequence[Subprotocol]:
        """The subprotocols of its apps, in order."""
        subprotocols: list[Subprotocol] = []
        for app in self._apps.values():
            subprotocols += [p for p in app.subprotocols if p not in subprotocols]
        return subprotocols

    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        """Refuse unknown paths, or let the app of the path answer; see the class."""
        path = _path(request)
        if path in self._handlers:
            app = self._apps.get(path)
            return (
                None
                if app is None
                else await _maybe_await(app.process_request(connection, request))
            )
        if not _is_upgrade(request):
            for app in self._apps.values():
                response = await _maybe_await(app.process_request(connection, request))
                if response is not None:
                    return response
        return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")

    async def __call__(self, connection: ServerConnection) -> None:
        """Run the handler of the path the connection was opened on."""
        assert connection.request is not None  # the connection is open
        handler = self._handlers[_path(connection.request)]  # process_request let only these in
        await handler(connection)


async def _maybe_await(value: Response | None | Awaitable[Response | None]) -> Response | None:
    return await value if inspect.isawaitable(value) else value
