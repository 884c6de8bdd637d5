"""Helpers of the abuse and fault tests (a module name unique across tests/, which has no
packages): servers of either driver on 127.0.0.1, raw clients that build their own frames,
and well-behaved clients that check the server still serves."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import socketeer.sync
from socketeer.asyncio.client import ClientConnection, connect
from socketeer.asyncio.server import serve
from timing import MS

__all__ = [
    "KINDS",
    "WAIT",
    "RawClient",
    "RunningServer",
    "assert_echoes",
    "frame",
    "open_raw",
    "running_server",
    "until",
    "well_behaved_client",
]

KINDS = ["asyncio", "sync"]
"""The servers under test: ``socketeer.serve`` and ``socketeer.sync.serve``."""

WAIT = 5_000 * MS
"""Upper bound on any single wait: long enough never to matter, short enough to fail a
hang quickly."""

HANDSHAKE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


async def until(condition: Callable[[], object]) -> None:
    """Wait until ``condition()`` is true; fail after :data:`WAIT`."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(5 * MS)

    await asyncio.wait_for(poll(), WAIT)


# Servers


async def _echo(connection: Any) -> None:
    async for message in connection:
        await connection.send(message)


def _sync_echo(connection: Any) -> None:
    for message in connection:
        connection.send(message)


@dataclass
class RunningServer:
    kind: str
    server: Any
    port: int

    @property
    def connections(self) -> int:
        """How many connections the server holds."""
        return len(self.server.connections)


@contextlib.asynccontextmanager
async def running_server(
    kind: str, handler: Any = None, **options: Any
) -> AsyncIterator[RunningServer]:
    """A server of the ``kind`` driver on a free port of 127.0.0.1; an echo server unless
    ``handler`` is given (a coroutine function for asyncio, a function for sync)."""
    options.setdefault("close_timeout", 2_000 * MS)
    if kind == "asyncio":
        async with serve(handler or _echo, "127.0.0.1", 0, **options) as server:
            yield RunningServer(kind, server, server.sockets[0].getsockname()[1])
        return
    assert kind == "sync", kind
    sync_server = socketeer.sync.serve(handler or _sync_echo, "127.0.0.1", 0, **options)
    thread = threading.Thread(target=sync_server.serve_forever, daemon=True)
    thread.start()
    try:
        yield RunningServer(kind, sync_server, sync_server.socket.getsockname()[1])
    finally:
        await asyncio.to_thread(sync_server.shutdown)
        await asyncio.to_thread(thread.join, WAIT)
        assert not thread.is_alive()


@contextlib.asynccontextmanager
async def well_behaved_client(port: int) -> AsyncIterator[ClientConnection]:
    """A socketeer client of the server, to check that it keeps serving others."""
    async with connect(f"ws://127.0.0.1:{port}/", open_timeout=WAIT) as client:
        await assert_echoes(client, "hello")
        yield client


async def assert_echoes(client: ClientConnection, message: str = "still here") -> None:
    await client.send(message)
    assert await asyncio.wait_for(client.recv(), WAIT) == message


# Raw clients


def _mask(payload: bytes, key: bytes) -> bytes:
    size = len(payload)
    stream = (key * (size // 4 + 1))[:size]
    masked = int.from_bytes(payload, "little") ^ int.from_bytes(stream, "little")
    return masked.to_bytes(size, "little")


def frame(first_byte: int, payload: bytes = b"", *, mask: bool = True, length: int = -1) -> bytes:
    """A frame as a client sends it: ``first_byte`` is FIN, RSV1-3 and the opcode;
    ``length`` announces another payload length than the real one (only the header is
    built then, without the payload)."""
    size = len(payload) if length < 0 else length
    mask_bit = 0x80 if mask else 0
    if size < 126:
        header = bytes([first_byte, mask_bit | size])
    elif size < 65_536:
        header = bytes([first_byte, mask_bit | 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([first_byte, mask_bit | 127]) + size.to_bytes(8, "big")
    if length >= 0:
        return header + (os.urandom(4) if mask else b"")
    if not mask:
        return header + payload
    key = os.urandom(4)
    return header + key + _mask(payload, key)


def handshake_request(port: int, *headers: str) -> bytes:
    lines = [
        "GET / HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {HANDSHAKE_KEY}",
        "Sec-WebSocket-Version: 13",
        *headers,
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


@dataclass
class RawClient:
    """A TCP client that completed the opening handshake and does only what the test says."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    response: bytes
    """The handshake response, headers included."""

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_frame(self) -> tuple[int, bytes]:
        """The next frame from the server: its first byte and its payload."""
        first, second = await self.reader.readexactly(2)
        assert not second & 0x80, "the server masked a frame"
        size = second & 0x7F
        if size == 126:
            size = int.from_bytes(await self.reader.readexactly(2), "big")
        elif size == 127:
            size = int.from_bytes(await self.reader.readexactly(8), "big")
        return first, await self.reader.readexactly(size)

    async def read_close(self) -> tuple[int | None, bytes]:
        """Skip frames until the server's close frame; return its code (``None`` without a
        payload) and its reason, as bytes. Fails if the connection ends first."""

        async def read() -> tuple[int | None, bytes]:
            while True:
                first, payload = await self.read_frame()
                if first & 0x0F == 0x8:
                    assert first & 0x80, "fragmented close frame"
                    if not payload:
                        return None, b""
                    return int.from_bytes(payload[:2], "big"), payload[2:]

        try:
            return await asyncio.wait_for(read(), WAIT)
        except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
            raise AssertionError(f"connection ended without a close frame: {exc!r}") from exc

    async def assert_eof(self) -> None:
        """Check that the server closes the TCP connection (EOF or reset) after what it sent
        (any frames left are read and ignored)."""

        async def read_to_end() -> None:
            while await self.reader.read(65_536):
                pass

        with contextlib.suppress(ConnectionResetError):
            await asyncio.wait_for(read_to_end(), WAIT)


@contextlib.asynccontextmanager
async def open_raw(port: int, *headers: str) -> AsyncIterator[RawClient]:
    """A raw client that completed the opening handshake with ``headers`` added."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(handshake_request(port, *headers))
        response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert response.startswith(b"HTTP/1.1 101 "), response
        yield RawClient(reader, writer, response)
    finally:
        writer.transport.abort()
        await asyncio.sleep(0)  # let the transport call connection_lost
