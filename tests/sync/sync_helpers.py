"""Helpers of the threaded driver's tests (a module name unique across tests/, which has no
packages): servers in a thread, URIs, an echo handler, and the :data:`MS` time unit."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from socketeer.sync import Server, serve
from timing import MS


@contextlib.contextmanager
def run_server(
    handler: Any, host: str = "127.0.0.1", port: int = 0, **kwargs: Any
) -> Iterator[Server]:
    """A server running ``serve_forever`` in a thread, shut down on exit."""
    server = serve(handler, host, port, **kwargs)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(2000 * MS)
        assert not thread.is_alive()


def uri(server: Server, scheme: str = "ws") -> str:
    host, port = server.socket.getsockname()[:2]
    return f"{scheme}://{host}:{port}/"


def echo(ws: Any) -> None:
    for message in ws:
        ws.send(message)
