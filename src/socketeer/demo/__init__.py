"""The demos: web pages and their WebSocket handlers, served by one socketeer server.

Run them with ``python -m socketeer demo`` (or ``make demo``) and open the URL it prints:
the counter over plain WebSocket (``/``, which links the others), the same with RPC
(``/rpc-counter``), the server calling the page (``/server-calls``), and a live chat on
rooms (``/rooms``, :mod:`.rooms`). To add a demo, write its handler in a module of this
package (or its methods in :mod:`.rpc`) and its page in ``static/``, then add both to
:func:`routes`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from ..asyncio.server import serve
from ..pubsub import Rooms
from .app import App, Page, Route, static
from .counter import Counter
from .rooms import chat_rooms, rooms_app
from .rpc import rpc_app

__all__ = [
    "DESCRIPTION",
    "MAX_SIZE",
    "routes",
    "demo_server",
    "main",
    "add_arguments",
    "run",
    "run_parsed",
]

DESCRIPTION = "Serve the socketeer demos; open the URL it prints in several browser tabs."
"""What ``--help`` says of the demo command."""

MAX_SIZE = 1024
"""The largest message a demo client may send, in bytes: theirs are tiny."""


def routes(*, rooms: Rooms | None = None) -> dict[str, Route]:
    """A new route table: URL path → page, WebSocket handler or app, with fresh demo state.

    Args:
        rooms: the rooms of the chat; by default new ones (:func:`.rooms.chat_rooms`),
            which nothing closes: :func:`demo_server` passes its own, and closes them.
    """
    counter = Counter()
    rpc = rpc_app()
    chat = rooms_app(chat_rooms() if rooms is None else rooms)
    return {
        "/": static("counter.html"),
        "/counter.js": static("counter.js"),
        "/rpc-counter": static("rpc-counter.html"),
        "/server-calls": static("server-calls.html"),
        "/rooms": static("rooms.html"),
        "/rooms.js": static("rooms.js"),
        "/demo.css": static("demo.css"),
        "/ws/counter": counter.handler,
        "/rpc": rpc,
        "/rpc/rooms": chat,
        "/socketeer.js": rpc,  # the RPC app serves its browser client
        "/healthz": Page(b"ok\n"),
    }


class _DemoServe(serve):
    """:func:`~socketeer.serve` that also closes the demos' rooms, after the server."""

    def __init__(self, rooms: Rooms, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rooms = rooms

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await super().__aexit__(exc_type, exc_value, traceback)
        finally:
            await self.rooms.close()  # after the handlers: the members left already


def demo_server(
    host: str = "127.0.0.1", port: int = 8000, *, rooms: Rooms | None = None, **kwargs: Any
) -> serve:
    """The demo server, not started yet: use ``async with demo_server(...) as server:``,
    which closes the chat's rooms too on exit.

    Args:
        host: where to listen.
        port: the TCP port; 0 picks a free one.
        rooms: the rooms of the chat; by default new ones on a memory broker
            (:func:`.rooms.chat_rooms`).
        kwargs: passed to :func:`~socketeer.serve`.
    """
    if rooms is None:
        rooms = chat_rooms()
    app = App(routes(rooms=rooms))
    kwargs.setdefault("max_size", MAX_SIZE)
    kwargs.setdefault("subprotocols", app.subprotocols)  # the RPC apps'
    return _DemoServe(
        rooms, app.handler, host, port, process_request=app.process_request, **kwargs
    )


async def main(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the demos until cancelled, then close every connection with 1001 (going away).

    Prints the URL of the first listening socket (with the port actually bound when ``port``
    is 0) to standard output.
    """
    async with demo_server(host, port) as server:
        address = server.sockets[0].getsockname()
        bound_host = f"[{address[0]}]" if ":" in address[0] else address[0]
        print(f"socketeer demo: http://{bound_host}:{address[1]}/", flush=True)
        await server.serve_forever()


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be a number from 0 to 65535, not {value!r}")
    return port


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to a command line parser."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="where to listen (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=8000,
        help="TCP port, 0 for any free one (default: %(default)s)",
    )


def run(argv: Sequence[str] | None = None) -> int:
    """Run the demo server from command line arguments until Ctrl-C; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m socketeer demo", description=DESCRIPTION)
    add_arguments(parser)
    return run_parsed(parser.parse_args(argv))


def run_parsed(args: argparse.Namespace) -> int:
    """Run the demo server with options parsed by :func:`add_arguments`; see :func:`run`."""
    try:
        asyncio.run(main(args.host, args.port))
    except KeyboardInterrupt:
        pass  # asyncio.run cancelled main(), which closed the server: a normal way out
    except OSError as exc:  # e.g. the port is taken
        print(f"socketeer demo: {exc}", file=sys.stderr)
        return 1
    return 0
