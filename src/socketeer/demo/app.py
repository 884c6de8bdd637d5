"""A tiny web app for the demos: a route table from URL paths to pages, WebSocket handlers
and apps (such as an RPC app).

One server answers all of them: ``process_request`` serves the pages as plain HTTP, lets an
app answer the requests for its paths, and lets the requests for WebSocket paths go on to
the handshake; then ``handler`` runs the handler (or app) of the path the connection was
opened on. ``subprotocols`` are those of the apps, for the server to select.
"""

from __future__ import annotations

import dataclasses
import http
import importlib.resources
import inspect
import logging
import urllib.parse
from collections.abc import Mapping
from typing import TypeAlias

from ..asyncio.server import HandlerFunction, ServerApp, ServerConnection, is_server_app
from ..protocol.http11 import Request, Response
from ..typedefs import Subprotocol

__all__ = ["Page", "Route", "App", "static", "logger"]

logger = logging.getLogger("socketeer.demo")
"""Where the demos log: ignored client messages, at debug level."""

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


@dataclasses.dataclass(frozen=True)
class Page:
    """A fixed HTTP response body, served to ``GET`` requests."""

    body: bytes
    content_type: str = "text/plain; charset=utf-8"


Route: TypeAlias = Page | HandlerFunction | ServerApp
"""What a path leads to: a :class:`Page`, the WebSocket handler of connections opened there,
or an app (such as :class:`socketeer.rpc.RPC`), which answers the plain HTTP requests for
the path first (an RPC app serves ``/socketeer.js``: route that path to it too)."""


def static(filename: str) -> Page:
    """Load a file of the demo package's ``static/`` folder as a page.

    Raises:
        FileNotFoundError: if the package has no such file.
        KeyError: if the file's extension has no known content type.
    """
    body = (importlib.resources.files(__package__) / "static" / filename).read_bytes()
    extension = filename[filename.rfind(".") :]
    return Page(body, _CONTENT_TYPES[extension])


class App:
    """The routes of one server, as its ``process_request``, ``handler`` and
    ``subprotocols``.

    Args:
        routes: URL path (without query) → :class:`Page`, WebSocket handler, or app.
    """

    def __init__(self, routes: Mapping[str, Route]) -> None:
        self.routes = dict(routes)

    @property
    def subprotocols(self) -> list[Subprotocol]:
        """The subprotocols of the apps among the routes, in order."""
        subprotocols: list[Subprotocol] = []
        for route in self.routes.values():
            if is_server_app(route):
                subprotocols += [p for p in route.subprotocols if p not in subprotocols]
        return subprotocols

    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        """Serve a page, refuse the request, let an app answer, or go on with the WebSocket
        handshake."""
        route = self.routes.get(_path(request))
        if route is None:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
        if not isinstance(route, Page):
            refused = self._check_origin(connection, request)
            if refused is not None or not is_server_app(route):
                return refused
            response = route.process_request(connection, request)
            return await response if inspect.isawaitable(response) else response
        if request.method != "GET":
            return connection.respond(
                http.HTTPStatus.METHOD_NOT_ALLOWED,
                "method not allowed\n",
                headers=[("Allow", "GET")],
            )
        return connection.respond(
            http.HTTPStatus.OK,
            route.body,
            content_type=route.content_type,
            headers=[("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff")],
        )

    async def handler(self, connection: ServerConnection) -> None:
        """Run the handler (or app) of the path the connection was opened on."""
        assert connection.request is not None  # the connection is open
        route = self.routes[_path(connection.request)]  # process_request let only these in
        assert not isinstance(route, Page)
        await route(connection)

    def _check_origin(self, connection: ServerConnection, request: Request) -> Response | None:
        # A browser sends the Origin of the page that opens a WebSocket: refuse the pages of
        # other sites, which could act for whoever visits them. Other clients send no Origin.
        origins = request.headers.get_all("Origin")
        hosts = [host.lower() for host in request.headers.get_all("Host")]
        if not origins or (len(hosts) == 1 and all(_netloc(o) == hosts[0] for o in origins)):
            return None
        return connection.respond(http.HTTPStatus.FORBIDDEN, "cross-origin request refused\n")


def _netloc(url: str) -> str | None:
    try:
        return urllib.parse.urlsplit(url).netloc.lower()
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return None


def _path(request: Request) -> str:
    return urllib.parse.urlsplit(request.path).path
