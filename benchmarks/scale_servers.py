"""Servers for ``benchmarks/scale.py``: one per library, each run in a process of its own.

``python benchmarks/scale_servers.py LIBRARY --loop asyncio|uvloop [--compression]
[--tracemalloc]`` listens on a free port of 127.0.0.1 with a listen backlog of
:data:`BACKLOG`, prints ``port N`` on stdout (or ``missing REASON`` when the library or the
loop is not installed, or the library has no compression and ``--compression`` asks for it),
then answers commands, one per line on standard input, with one JSON object per line on
stdout, until its standard input closes:

- ``count``: ``{"open": N}``, the connections whose handler is running (opened, not closed).
- ``broadcast COUNT SIZE``: broadcast COUNT binary messages of SIZE bytes to every open
  connection, one after the other, yielding to the event loop between two (``asyncio.sleep(0)``);
  ``{"start": T0, "end": T1, "connections": N, "skipped": S}``, with T0 and T1 on the clock
  of :func:`time.monotonic` (system-wide on Linux: the load generators read the same clock),
  taken just before the first call and just after the last one; S is the number of
  connections the library said it skipped, or ``null`` if it does not say.
- ``memory SETTLE``: collect garbage, wait SETTLE seconds, collect again; then
  ``{"rss": B, "pss": B, "traced": B, "open": N, "zlib": {...}}``: the process's resident set
  (``VmRSS`` of ``/proc/self/status``) and proportional set size (``Pss`` of
  ``/proc/self/smaps_rollup``), the bytes tracemalloc traces (``null`` without
  ``--tracemalloc``), and what the connections hold for permessage-deflate (see
  :meth:`ScaleServer.zlib_objects`).

Every server keeps its open connections in a set, added when the handler starts (after the
opening handshake) and removed when it ends; each handler reads messages until the connection
closes and ignores them, which is all an idle connection does. Broadcasts go to that set:

- socketeer: ``socketeer.broadcast(connections, message)``;
- websockets: ``websockets.asyncio.server.broadcast(connections, message)``;
- picows: no broadcast helper: ``transport.send(BINARY, message)`` on each connection;
- aiohttp: no broadcast helper: ``await ws.send_bytes(message)`` on each connection, one after
  the other (each returns without suspending unless that connection's buffer is full).

Compression is off unless ``--compression``, which enables each library's permessage-deflate
with its default settings (negotiated only with clients that offer it; picows has none).
Everything else is each library's default.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import signal
import socket
import sys
import time
import tracemalloc
from typing import Any

from echo_servers import MissingError, new_event_loop, run

__all__ = [
    "BACKLOG",
    "LIBRARIES",
    "LOOPS",
    "MAX_LIFETIME",
    "Commands",
    "ScaleServer",
    "fd_limit",
    "reply",
]

LIBRARIES = ["socketeer", "websockets", "picows", "aiohttp", "writes"]
"""``writes`` is no library: socketeer's server whose broadcast is a bare write per
connection, the limit of the event loop (broadcast only)."""
LOOPS = ["asyncio", "uvloop"]
BACKLOG = 1024
"""Listen backlog: load generators open connections 50 at a time each, several at once."""
MAX_LIFETIME = 1800.0
"""Seconds after which a server or load generator stops even if its parent never closed its
standard input."""
SPARE_FDS = 64
"""File descriptors a process needs besides its connections."""


def fd_limit(needed: int) -> str | None:
    """Raise this process's file-descriptor limit to the hard limit; say why not enough.

    Returns:
        None if ``needed`` descriptors (plus a few) fit, else a message that says so.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    elif hard == resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < needed + SPARE_FDS:
        return (
            f"the file-descriptor limit (RLIMIT_NOFILE) is {soft} and cannot be raised (hard "
            f"limit {hard}); {needed} connections need {needed + SPARE_FDS}: raise the hard "
            "limit (e.g. `ulimit -Hn` as root, or limits.conf) or ask for fewer connections"
        )
    return None


def reply(value: object) -> None:
    """One JSON line on stdout: the answer to a command, or a report."""
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


class Commands:
    """Lines of standard input, as they come, read by the event loop; ``None`` at the end."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.buffer = b""
        self.deadline = time.monotonic() + MAX_LIFETIME
        self.loop.add_reader(0, self._readable)

    def _readable(self) -> None:
        data = os.read(0, 65536)
        if not data:
            self.loop.remove_reader(0)
            self.queue.put_nowait(None)
            return
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        for line in lines:
            self.queue.put_nowait(line.decode().strip())

    async def next(self) -> str | None:
        """The next line; ``None`` once standard input closed or :data:`MAX_LIFETIME` passed."""
        try:
            return await asyncio.wait_for(self.queue.get(), self.deadline - time.monotonic())
        except asyncio.TimeoutError:
            return None


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class ScaleServer:
    """A library's server, its set of open connections, and a broadcast over them."""

    def __init__(self, compression: bool) -> None:
        self.compression = compression
        self.connections: set[Any] = set()

    async def start(self) -> int:
        """Start listening; the port.

        Raises:
            MissingError: if the library is not installed, or has no compression.
        """
        raise NotImplementedError

    async def broadcast(self, message: bytes) -> int | None:
        """Send ``message`` to every open connection; the connections skipped, if known."""
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    def zlib_objects(self) -> dict[str, int | None]:
        """What the connections hold for permessage-deflate, looked up in the libraries'
        internals: ``negotiated`` (connections with the extension), ``compressors`` and
        ``decompressors`` (zlib objects alive); ``None`` where it cannot be seen."""
        return {"negotiated": None, "compressors": None, "decompressors": None}

    async def read_until_closed(self, ws: Any) -> None:
        """The handler of socketeer and websockets: register, read until closed."""
        self.connections.add(ws)
        try:
            async for _ in ws:
                pass
        except Exception:  # closed with an error: nothing to do about it here
            pass
        finally:
            self.connections.discard(ws)


class SocketeerServer(ScaleServer):
    async def start(self) -> int:
        import socketeer

        self.socketeer = socketeer
        compression = "deflate" if self.compression else None
        self.server = await socketeer.serve(
            self.read_until_closed, "127.0.0.1", 0, compression=compression, backlog=BACKLOG
        )
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def broadcast(self, message: bytes) -> int | None:
        return self.socketeer.broadcast(self.connections, message).skipped

    async def stop(self) -> None:
        await self.server.close()

    def zlib_objects(self) -> dict[str, int | None]:
        from socketeer.protocol.extensions.permessage_deflate import PerMessageDeflate

        found = {"negotiated": 0, "compressors": 0, "decompressors": 0}
        for ws in self.connections:
            for extension in ws.protocol.extensions:
                if isinstance(extension, PerMessageDeflate):
                    found["negotiated"] += 1
                    found["compressors"] += extension._compressor is not None
                    found["decompressors"] += extension._decompressor is not None
        return dict(found)


class WebsocketsServer(ScaleServer):
    async def start(self) -> int:
        try:
            from websockets.asyncio.server import broadcast, serve
        except ImportError as exc:
            raise MissingError(f"websockets>=13 is not installed ({exc})") from exc
        self._broadcast = broadcast
        compression = "deflate" if self.compression else None
        self.server = await serve(
            self.read_until_closed, "127.0.0.1", 0, compression=compression, backlog=BACKLOG
        )
        port: int = list(self.server.sockets)[0].getsockname()[1]
        return port

    async def broadcast(self, message: bytes) -> int | None:
        self._broadcast(self.connections, message)
        return None

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    def zlib_objects(self) -> dict[str, int | None]:
        from websockets.extensions.permessage_deflate import PerMessageDeflate

        found = {"negotiated": 0, "compressors": 0, "decompressors": 0}
        for ws in self.connections:
            for extension in ws.protocol.extensions:
                if isinstance(extension, PerMessageDeflate):
                    found["negotiated"] += 1
                    # Deleted after each message without context takeover, else kept.
                    found["compressors"] += hasattr(extension, "encoder")
                    found["decompressors"] += hasattr(extension, "decoder")
        return dict(found)


class PicowsServer(ScaleServer):
    async def start(self) -> int:
        try:
            import picows
        except ImportError as exc:
            raise MissingError(f"picows is not installed ({exc})") from exc
        if self.compression:
            raise MissingError("picows has no permessage-deflate")
        self.binary = picows.WSMsgType.BINARY
        close = picows.WSMsgType.CLOSE
        connections = self.connections

        class Idle(picows.WSListener):
            def on_ws_connected(self, transport: Any) -> None:
                connections.add(transport)

            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                if frame.msg_type is close:
                    transport.send_close(frame.get_close_code(), frame.get_close_message())
                    transport.disconnect()

            def on_ws_disconnected(self, transport: Any) -> None:
                connections.discard(transport)

        self.server = await picows.ws_create_server(
            lambda request: Idle(), "127.0.0.1", 0, backlog=BACKLOG
        )
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def broadcast(self, message: bytes) -> int | None:
        binary = self.binary
        for transport in self.connections:
            transport.send(binary, message)
        return None

    async def stop(self) -> None:
        self.server.close()


class AiohttpServer(ScaleServer):
    async def start(self) -> int:
        try:
            from aiohttp import web
        except ImportError as exc:
            raise MissingError(f"aiohttp is not installed ({exc})") from exc
        connections = self.connections
        compress = self.compression

        async def handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse(compress=compress)
            await ws.prepare(request)
            connections.add(ws)
            try:
                async for _ in ws:
                    pass
            finally:
                connections.discard(ws)
            return ws

        app = web.Application()
        app.router.add_get("/", handler)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        sock = _listening_socket()
        await web.SockSite(self.runner, sock, backlog=BACKLOG).start()
        port: int = sock.getsockname()[1]
        return port

    async def broadcast(self, message: bytes) -> int | None:
        # The set may change while a send waits: go round a copy.
        for ws in list(self.connections):
            await ws.send_bytes(message)
        return None

    async def stop(self) -> None:
        await self.runner.cleanup()

    def zlib_objects(self) -> dict[str, int | None]:
        found: dict[str, int | None] = {"negotiated": 0, "compressors": 0, "decompressors": 0}
        for ws in self.connections:
            found["negotiated"] = (found["negotiated"] or 0) + bool(ws.compress)
            for key, holder, name in (
                ("compressors", getattr(ws, "_writer", None), "_compressobj"),
                ("decompressors", getattr(ws, "_reader", None), "_decompressobj"),
            ):
                try:
                    held = getattr(holder, name)
                except AttributeError:  # the compiled reader hides it
                    found[key] = None
                    continue
                if found[key] is not None:
                    found[key] = (found[key] or 0) + (held is not None)
        return found


class WritesServer(SocketeerServer):
    """The limit of a broadcast on the event loop: socketeer's server and connections, but
    the frame is built once and written to each connection's transport, with no check at
    all (neither state nor backlog)."""

    async def broadcast(self, message: bytes) -> int | None:
        from socketeer.protocol.frames import encode_frame

        frame = encode_frame(0x82, message, None)  # FIN, binary; servers do not mask
        for ws in self.connections:
            ws.transport.write(frame)
        return None


SERVERS: dict[str, type[ScaleServer]] = {
    "socketeer": SocketeerServer,
    "websockets": WebsocketsServer,
    "picows": PicowsServer,
    "aiohttp": AiohttpServer,
    "writes": WritesServer,
}


# Commands


async def broadcasts(server: ScaleServer, count: int, size: int) -> dict[str, Any]:
    message = os.urandom(size)
    connections = len(server.connections)
    skipped: int | None = 0
    start = time.monotonic()
    for _ in range(count):
        skips = await server.broadcast(message)
        skipped = None if skips is None or skipped is None else skipped + skips
        await asyncio.sleep(0)
    end = time.monotonic()
    return {"start": start, "end": end, "connections": connections, "skipped": skipped}


def _status_field(path: str, name: str) -> int | None:
    """A ``kB`` field of a /proc file, in bytes."""
    try:
        with open(path) as file:
            for line in file:
                if line.startswith(name + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


async def memory(server: ScaleServer, settle: float) -> dict[str, Any]:
    gc.collect()
    await asyncio.sleep(settle)
    gc.collect()
    return {
        "rss": _status_field("/proc/self/status", "VmRSS"),
        "pss": _status_field("/proc/self/smaps_rollup", "Pss"),
        "traced": tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None,
        "open": len(server.connections),
        "zlib": server.zlib_objects(),
    }


async def serve(library: str, compression: bool) -> None:
    server = SERVERS[library](compression)
    try:
        port = await server.start()
    except MissingError as exc:
        print(f"missing {exc}", flush=True)
        return
    print(f"port {port}", flush=True)
    commands = Commands()
    while (line := await commands.next()) is not None:
        word, *args = line.split() or [""]
        try:
            if word == "count":
                reply({"open": len(server.connections)})
            elif word == "broadcast":
                reply(await broadcasts(server, int(args[0]), int(args[1])))
            elif word == "memory":
                reply(await memory(server, float(args[0])))
            else:
                reply({"error": f"unknown command: {line!r}"})
        except Exception as exc:  # tell the parent, which reports it, and go on
            reply({"error": f"{word}: {type(exc).__name__}: {exc}"})
    try:
        await asyncio.wait_for(server.stop(), 2.0)
    except (asyncio.TimeoutError, OSError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", choices=LIBRARIES)
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    parser.add_argument("--compression", action="store_true", help="permessage-deflate on")
    parser.add_argument("--tracemalloc", action="store_true", help="trace Python allocations")
    parser.add_argument("--connections", type=int, default=0, help="connections to expect")
    args = parser.parse_args(argv)
    # The parent stops every process it started: a Ctrl-C leaves that to it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    too_few = fd_limit(args.connections)
    if too_few is not None:
        print(f"missing {too_few}", flush=True)
        return 0
    try:
        new_event_loop(args.loop).close()
    except MissingError as exc:
        print(f"missing {exc}", flush=True)
        return 0
    if args.tracemalloc:
        tracemalloc.start()
    run(serve(args.library, args.compression), args.loop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
