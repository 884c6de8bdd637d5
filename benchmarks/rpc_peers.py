"""The other Python RPC libraries of ``benchmarks/rpc.py``: their servers and their clients.

- **wsrpc-aiohttp** (PyPI ``wsrpc-aiohttp``): a server route ``async def echo(socket, *,
  text): return text`` on a :class:`wsrpc_aiohttp.WebSocketAsync` view of an aiohttp
  application; the client :class:`wsrpc_aiohttp.WSRPCClient` calls
  ``await client.call("echo", text=text)`` (its calls take keyword arguments only).
- **python-socketio** (PyPI ``python-socketio``): an :class:`socketio.AsyncServer` on
  aiohttp, websocket transport only, with an ``echo`` event whose handler returns its
  argument, which goes back as the acknowledgement; the client :class:`socketio.AsyncClient`
  (websocket transport only, no reconnection) calls ``await client.call("echo", text)``,
  which emits the event and waits for that acknowledgement.

Both run on aiohttp, whose server accepts permessage-deflate; neither client offers it, so
compression is off, as for socketeer. Their message size limits are their defaults (4 MiB
for wsrpc-aiohttp's aiohttp server, 1 MB for python-socketio's), above every message sent.
A library that is not installed raises :exc:`echo_servers.MissingError`, and its column
says n/a.

Servers return ``(port, stop)`` as ``echo_servers``' do; openers return ``(call, close)``
as ``rpc.py``'s do.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from echo_servers import MissingError, Stop, _listening_socket

__all__ = [
    "PEER_KINDS",
    "cancel_tasks",
    "PEER_OPENERS",
    "PEER_SERVERS",
    "open_socketio",
    "open_wsrpc",
    "request_size",
    "serve_aiohttp",
    "serve_socketio",
    "serve_wsrpc",
]

PEER_KINDS = {"wsrpc": "wsrpc-aiohttp", "socketio": "python-socketio"}
"""The other RPC libraries measured, by kind, with their titles."""
PACKAGES = {"wsrpc": "wsrpc-aiohttp", "socketio": "python-socketio"}
"""Their distributions on PyPI (for versions and install hints)."""
METHOD = "echo"
CALL_TIMEOUT = 60.0
"""Seconds a call may take before it fails: a hang, not a figure."""
CONNECT_TIMEOUT = 30.0


def _quiet() -> None:
    """No per-call logging: wsrpc-aiohttp logs every call it sends at INFO level."""
    for name in ("wsrpc_aiohttp", "socketio", "engineio", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.WARNING)


# Servers


async def serve_wsrpc() -> tuple[int, Stop]:
    try:
        from aiohttp import web
        from wsrpc_aiohttp import WebSocketAsync
    except ImportError as exc:
        raise MissingError(f"wsrpc-aiohttp is not installed ({exc})") from exc
    _quiet()

    async def echo(socket: Any, *, text: str) -> str:
        return text

    WebSocketAsync.add_route(METHOD, echo)
    app = web.Application()
    app.router.add_route("*", "/", WebSocketAsync)
    return await serve_aiohttp(web, app)


async def serve_socketio() -> tuple[int, Stop]:
    try:
        import socketio
        from aiohttp import web
    except ImportError as exc:
        raise MissingError(f"python-socketio is not installed ({exc})") from exc
    _quiet()
    server = socketio.AsyncServer(async_mode="aiohttp", transports=["websocket"])

    @server.on(METHOD)
    async def echo(sid: str, text: str) -> str:
        return text  # the acknowledgement: what client.call() returns

    app = web.Application()
    server.attach(app)
    return await serve_aiohttp(web, app, server)


async def serve_aiohttp(web: Any, app: Any, server: Any = None) -> tuple[int, Stop]:
    """Serve ``app`` on a free port; stopping also ends the tasks left (python-socketio's
    pings), which would otherwise be reported as destroyed when the loop closes."""
    before = asyncio.all_tasks()  # the caller's: not to be cancelled
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = _listening_socket()
    await web.SockSite(runner, sock).start()

    async def stop() -> None:
        if server is not None:
            await server.shutdown()
        await runner.cleanup()
        await cancel_tasks(before)

    return sock.getsockname()[1], stop


async def cancel_tasks(keep: set[asyncio.Task[Any]]) -> None:
    """Cancel every task but this one and those in ``keep``; wait (a little) for them."""
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current and task not in keep]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=1.0)


PEER_SERVERS: dict[str, Callable[[], Awaitable[tuple[int, Stop]]]] = {
    "wsrpc": serve_wsrpc,
    "socketio": serve_socketio,
}


# Clients: (call, close), where call(text) returns what came back.

Connection = tuple[Callable[[str], Awaitable[Any]], Callable[[], Awaitable[Any]]]


async def open_wsrpc(uri: str) -> Connection:
    try:
        from wsrpc_aiohttp import WSRPCClient
    except ImportError as exc:
        raise MissingError(f"wsrpc-aiohttp is not installed ({exc})") from exc
    _quiet()
    client = WSRPCClient(uri, timeout=CALL_TIMEOUT)  # an aiohttp ClientSession of its own
    try:
        await client.connect()
    except BaseException:
        await client.close()
        raise

    async def call(text: str) -> Any:
        return await client.call(METHOD, text=text)

    return call, client.close


async def open_socketio(uri: str) -> Connection:
    try:
        import socketio
    except ImportError as exc:
        raise MissingError(f"python-socketio is not installed ({exc})") from exc
    _quiet()
    client = socketio.AsyncClient(reconnection=False)
    url = uri.replace("ws://", "http://", 1)
    await client.connect(url, transports=["websocket"], wait_timeout=CONNECT_TIMEOUT)

    async def call(text: str) -> Any:
        return await client.call(METHOD, text, timeout=CALL_TIMEOUT)

    return call, client.disconnect


PEER_OPENERS: dict[str, Callable[[str], Awaitable[Connection]]] = {
    "wsrpc": open_wsrpc,
    "socketio": open_socketio,
}


def request_size(kind: str, size: int) -> int | None:
    """Bytes of a call's request on the wire (one WebSocket message) with a string of
    ``size``, with a five-digit id; None when the library is not installed."""
    text = "x" * size
    if kind == "wsrpc":
        # WSRPCClient.call sends json.dumps(dict(id=..., method=..., params=kwargs)).
        return len(json.dumps({"id": 10000, "method": METHOD, "params": {"text": text}}))
    try:
        from socketio import packet
    except ImportError:
        return None
    # An Engine.IO message ("4") carrying a Socket.IO event with an acknowledgement id.
    encoded = packet.Packet(packet.EVENT, data=[METHOD, text], id=10000).encode()
    return 1 + len(encoded)
