"""Echo servers for ``benchmarks/echo.py``: one per library, each run in a process of its own.

``python benchmarks/echo_servers.py LIBRARY --loop asyncio|uvloop`` listens on a free port of
127.0.0.1 and prints ``port N`` on stdout (or ``missing REASON`` when the library or the loop
is not installed), then echoes every message back until its standard input closes, so it
stops by itself when the parent goes away. ``--profile FILE`` runs it under cProfile and
writes the stats to FILE on exit. ``--compression`` serves with permessage-deflate instead
(``echo.py --compression``; socketeer, websockets and aiohttp only, see
:data:`DEFLATE_SERVERS`).

Every server sends a binary message back as binary and a text message as text, with
compression off and the message size limit raised to :data:`MAX_MESSAGE`; everything else is
the library's default.

The threaded servers, ``socketeer-sync`` (:func:`socketeer.sync.serve`) and
``websockets-sync`` (:func:`websockets.sync.server.serve`), run no event loop and ignore
``--loop``: ``serve_forever`` accepts in a thread of its own, each connection gets the
library's threads (a handler thread and a reading thread), and the main thread waits for
standard input to close, then calls ``shutdown``. Under ``--profile``, every thread started
after the server began accepting gets a cProfile profiler of its own (Python 3.11 and
earlier: from 3.12 on, cProfile is one profiler for the whole interpreter, so that ``--profile``
is refused for them), and their stats are merged on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import selectors
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

__all__ = [
    "DEFLATE_LIBRARIES",
    "LIBRARIES",
    "LOOPS",
    "MAX_MESSAGE",
    "SYNC_SERVERS",
    "MissingError",
    "new_event_loop",
    "profile_refused",
    "run",
    "serve_socketeer",
    "stdin_closed",
]

SYNC_SERVERS = ["socketeer-sync", "websockets-sync"]
"""The threaded servers: no event loop."""
LIBRARIES = [
    "socketeer",
    "socketeer-handler",
    "websockets",
    "picows",
    "aiohttp",
    "raw-protocol",
    "raw",
    *SYNC_SERVERS,
]
LOOPS = ["asyncio", "uvloop"]
MAX_MESSAGE = 16 * 1048576
"""Message size limit given to every library, above the largest message sent (1 MiB)."""
MAX_LIFETIME = 1800.0
"""Seconds after which a server stops even if its parent never closed its stdin."""

Stop = Callable[[], Awaitable[None]]


class MissingError(Exception):
    """An optional package (a library under test, or uvloop) is not installed."""


def new_event_loop(name: str) -> asyncio.AbstractEventLoop:
    """A new event loop: ``asyncio`` for the default one, or ``uvloop``.

    Raises:
        MissingError: if uvloop is asked for and not installed.
    """
    if name == "asyncio":
        return asyncio.new_event_loop()
    try:
        import uvloop
    except ImportError as exc:
        raise MissingError(f"uvloop is not installed ({exc})") from exc
    return uvloop.new_event_loop()


def run(main: Coroutine[Any, Any, Any], loop_name: str) -> Any:
    """Run ``main`` to completion on a new event loop of the given kind (3.10 and later)."""
    loop = new_event_loop(loop_name)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def serve_socketeer() -> tuple[int, Stop]:
    import socketeer

    async def handler(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    server = await socketeer.serve(handler, "127.0.0.1", 0, compression=None, max_size=MAX_MESSAGE)
    port = server.sockets[0].getsockname()[1]
    return port, server.close


async def serve_socketeer_handler() -> tuple[int, Stop]:
    import socketeer

    class Echo(socketeer.Handler):
        def on_message(self, ws: Any, message: Any) -> None:
            ws.send_nowait(message)

    server = await socketeer.serve(Echo, "127.0.0.1", 0, compression=None, max_size=MAX_MESSAGE)
    port = server.sockets[0].getsockname()[1]
    return port, server.close


async def serve_websockets() -> tuple[int, Stop]:
    try:
        from websockets.asyncio.server import serve
    except ImportError as exc:
        raise MissingError(f"websockets>=13 is not installed ({exc})") from exc

    async def handler(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    server = await serve(handler, "127.0.0.1", 0, compression=None, max_size=MAX_MESSAGE)
    port = list(server.sockets)[0].getsockname()[1]

    async def stop() -> None:
        server.close()
        await server.wait_closed()

    return port, stop


async def serve_picows() -> tuple[int, Stop]:
    try:
        import picows
    except ImportError as exc:
        raise MissingError(f"picows is not installed ({exc})") from exc
    binary, text, close = picows.WSMsgType.BINARY, picows.WSMsgType.TEXT, picows.WSMsgType.CLOSE

    class Echo(picows.WSListener):
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            msg_type = frame.msg_type
            if msg_type is binary or msg_type is text:
                # The frame points into picows' read buffer: send() copies it out at once.
                transport.send(msg_type, frame.get_payload_as_memoryview())
            elif msg_type is close:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()

    server = await picows.ws_create_server(
        lambda request: Echo(), "127.0.0.1", 0, max_frame_size=MAX_MESSAGE
    )
    port = server.sockets[0].getsockname()[1]

    async def stop() -> None:
        server.close()

    return port, stop


async def serve_aiohttp(compress: bool = False) -> tuple[int, Stop]:
    try:
        from aiohttp import WSMsgType, web
    except ImportError as exc:
        raise MissingError(f"aiohttp is not installed ({exc})") from exc

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=compress, max_msg_size=MAX_MESSAGE)
        await ws.prepare(request)
        async for message in ws:
            if message.type is WSMsgType.BINARY:
                await ws.send_bytes(message.data)
            elif message.type is WSMsgType.TEXT:
                await ws.send_str(message.data)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = _listening_socket()
    await web.SockSite(runner, sock).start()
    return sock.getsockname()[1], runner.cleanup


class _RawProtocolEcho(asyncio.Protocol):
    """Echoes bytes as they come: the plain :class:`asyncio.Protocol` way."""

    def connection_made(self, transport: Any) -> None:  # uvloop's: no asyncio.Transport
        self.write = transport.write

    def data_received(self, data: bytes) -> None:
        self.write(data)


class _RawBufferedEcho(asyncio.BufferedProtocol):
    """Echoes bytes as they come, read into one buffer: the fastest way asyncio offers.

    The default loop's :class:`asyncio.Protocol` path allocates a fresh 256 KiB ``bytes``
    for every read, which costs more than the rest of a small round trip on some machines;
    reading into a buffer allocated once does not.
    """

    def connection_made(self, transport: Any) -> None:  # uvloop's: no asyncio.Transport
        self.write = transport.write
        self.buffer = bytearray(262_144)
        self.view = memoryview(self.buffer)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        self.write(self.buffer[:nbytes])


async def serve_raw_protocol() -> tuple[int, Stop]:
    return await _serve_tcp(_RawProtocolEcho)


async def serve_raw() -> tuple[int, Stop]:
    return await _serve_tcp(_RawBufferedEcho)


async def _serve_tcp(factory: Callable[[], asyncio.BaseProtocol]) -> tuple[int, Stop]:
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def stop() -> None:
        server.close()

    return port, stop


# Threaded servers: a server object with serve_forever() and shutdown(), and its port.


def _sync_handler(ws: Any) -> None:
    for message in ws:
        ws.send(message)


def serve_socketeer_sync() -> tuple[Any, int]:
    from socketeer.sync import serve

    server = serve(_sync_handler, "127.0.0.1", 0, compression=None, max_size=MAX_MESSAGE)
    return server, server.socket.getsockname()[1]


def serve_websockets_sync() -> tuple[Any, int]:
    try:
        from websockets.sync.server import serve
    except ImportError as exc:
        raise MissingError(f"websockets>=11 is not installed ({exc})") from exc
    server = serve(_sync_handler, "127.0.0.1", 0, compression=None, max_size=MAX_MESSAGE)
    return server, server.socket.getsockname()[1]


SYNC: dict[str, Callable[[], tuple[Any, int]]] = {
    "socketeer-sync": serve_socketeer_sync,
    "websockets-sync": serve_websockets_sync,
}


def profile_refused(library: str) -> str | None:
    """Why ``--profile`` cannot profile this server here, or None when it can."""
    if library in SYNC_SERVERS and sys.version_info >= (3, 12):
        return (
            f"cannot profile the threaded {library} server on Python 3.12 and later: cProfile "
            "is then one profiler for all the threads at once, which mixes up their calls "
            "(use Python 3.11 or earlier, or profile the asyncio server)"
        )
    return None


class ThreadProfiles:
    """A cProfile profiler for every thread started from now on; stats merged on dump."""

    def __init__(self) -> None:
        import cProfile

        self.profilers: list[cProfile.Profile] = []
        self.lock = threading.Lock()

        def start(frame: Any, event: str, arg: Any) -> None:
            # The new thread's first event: from now on, its own profiler takes over.
            if threading.current_thread().name in self.IGNORED:
                sys.setprofile(None)
                return
            profiler = cProfile.Profile()
            with self.lock:
                self.profilers.append(profiler)
            profiler.enable()

        threading.setprofile(start)

    IGNORED = ("accept", "shutdown")
    """Threads that mostly wait, not profiled: the server's own, not the connections'."""

    def stop(self) -> None:
        """Profile no thread started from now on."""
        threading.setprofile(None)

    def dump(self, path: str) -> None:
        import cProfile
        import pstats

        self.stop()
        with self.lock:
            profilers = list(self.profilers) or [cProfile.Profile()]
        pstats.Stats(*profilers).dump_stats(path)


def _wait_stdin_closed() -> None:
    deadline = time.monotonic() + MAX_LIFETIME
    with selectors.DefaultSelector() as selector:
        selector.register(0, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if selector.select(left) and not os.read(0, 4096):
                return


def main_sync(library: str, profile: str | None) -> None:
    """Serve on threads until standard input closes; no event loop."""
    try:
        server, port = SYNC[library]()
    except MissingError as exc:
        print(f"missing {exc}", flush=True)
        return
    threading.Thread(target=server.serve_forever, name="accept", daemon=True).start()
    profiles = None if profile is None else ThreadProfiles()
    print(f"port {port}", flush=True)
    _wait_stdin_closed()
    if profiles is not None:
        profiles.stop()
    stopping = threading.Thread(target=server.shutdown, name="shutdown", daemon=True)
    stopping.start()
    stopping.join(5.0)
    if profiles is not None and profile is not None:
        profiles.dump(profile)


SERVERS: dict[str, Callable[[], Awaitable[tuple[int, Stop]]]] = {
    "socketeer": serve_socketeer,
    "socketeer-handler": serve_socketeer_handler,
    "websockets": serve_websockets,
    "picows": serve_picows,
    "aiohttp": serve_aiohttp,
    "raw-protocol": serve_raw_protocol,
    "raw": serve_raw,
}


# Compression on (``--compression``, for ``echo.py --compression``): the same echo, with
# permessage-deflate accepted when the client offers it, with each library's default
# settings (window bits, memory level, context takeover). picows has no compression, and the
# raw and threaded servers are not measured with it.


async def _echo_handler(ws: Any) -> None:
    async for message in ws:
        await ws.send(message)


async def serve_socketeer_deflate() -> tuple[int, Stop]:
    import socketeer

    server = await socketeer.serve(
        _echo_handler, "127.0.0.1", 0, compression="deflate", max_size=MAX_MESSAGE
    )
    return server.sockets[0].getsockname()[1], server.close


async def serve_websockets_deflate() -> tuple[int, Stop]:
    try:
        from websockets.asyncio.server import serve
    except ImportError as exc:
        raise MissingError(f"websockets>=13 is not installed ({exc})") from exc
    server = await serve(
        _echo_handler, "127.0.0.1", 0, compression="deflate", max_size=MAX_MESSAGE
    )

    async def stop() -> None:
        server.close()
        await server.wait_closed()

    return list(server.sockets)[0].getsockname()[1], stop


async def serve_aiohttp_deflate() -> tuple[int, Stop]:
    return await serve_aiohttp(compress=True)


DEFLATE_SERVERS: dict[str, Callable[[], Awaitable[tuple[int, Stop]]]] = {
    "socketeer": serve_socketeer_deflate,
    "websockets": serve_websockets_deflate,
    "aiohttp": serve_aiohttp_deflate,
}
DEFLATE_LIBRARIES = list(DEFLATE_SERVERS)
"""The libraries measured with compression on (picows has none)."""


async def stdin_closed() -> None:
    """Return once standard input closes (the parent's signal to stop), or after
    :data:`MAX_LIFETIME` seconds."""
    loop = asyncio.get_running_loop()
    closed = loop.create_future()

    def readable() -> None:
        if not os.read(0, 4096) and not closed.done():
            closed.set_result(None)

    loop.add_reader(0, readable)
    try:
        await asyncio.wait_for(closed, MAX_LIFETIME)
    except asyncio.TimeoutError:
        pass
    finally:
        loop.remove_reader(0)


async def main_async(library: str, profile: str | None, compression: bool = False) -> None:
    servers = DEFLATE_SERVERS if compression else SERVERS
    try:
        port, stop = await servers[library]()
    except MissingError as exc:
        print(f"missing {exc}", flush=True)
        return
    profiler = None
    if profile is not None:
        import cProfile

        profiler = cProfile.Profile()  # from now on: not the imports and the startup
        profiler.enable()
    print(f"port {port}", flush=True)
    await stdin_closed()
    if profiler is not None and profile is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    try:
        await asyncio.wait_for(stop(), 2.0)
    except (asyncio.TimeoutError, OSError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", choices=LIBRARIES)
    parser.add_argument(
        "--loop", choices=LOOPS, default="asyncio", help="ignored by the threaded servers"
    )
    parser.add_argument("--profile", metavar="FILE", help="write cProfile stats to FILE")
    parser.add_argument(
        "--compression",
        action="store_true",
        help=f"permessage-deflate on ({', '.join(DEFLATE_LIBRARIES)} only)",
    )
    args = parser.parse_args(argv)
    if args.compression and args.library not in DEFLATE_SERVERS:
        print(f"missing {args.library}: no permessage-deflate to measure", flush=True)
        return 0
    refused = None if args.profile is None else profile_refused(args.library)
    if refused is not None:
        parser.error(refused)
    if args.library in SYNC_SERVERS:
        main_sync(args.library, args.profile)
        return 0
    try:
        new_event_loop(args.loop).close()
    except MissingError as exc:
        print(f"missing {exc}", flush=True)
        return 0
    run(main_async(args.library, args.profile, args.compression), args.loop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
