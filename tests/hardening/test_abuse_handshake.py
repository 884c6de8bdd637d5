"""Abuse of the opening handshake against real servers: slow clients (slowloris),
oversized request lines and headers (both drivers), a flood of bytes after the request while
the server decides how to answer it (both drivers), and more clients than
``max_connections``.

Each attack must cost the server a bounded amount of time and memory, and never keep it
from serving a well-behaved client meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import tracemalloc

import pytest
from abuse_helpers import (
    KINDS,
    WAIT,
    assert_echoes,
    handshake_request,
    running_server,
    until,
    well_behaved_client,
)

from socketeer.protocol.http11 import MAX_LINE_LENGTH, MAX_NUM_HEADERS
from timing import MS


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """What the server sent until it closed the connection; ``b""`` if it reset it."""
    try:
        return await asyncio.wait_for(reader.read(), WAIT)
    except ConnectionResetError:
        return b""


async def read_response(reader: asyncio.StreamReader) -> bytes:
    """The server's answer to a request: a 101's head, or any other response whole, read
    until the server closed the connection; ``b""`` if it closed it without answering."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    except asyncio.IncompleteReadError as exc:
        return exc.partial
    except ConnectionResetError:
        return b""
    if head.startswith(b"HTTP/1.1 101 "):
        return head
    return head + await read_until_closed(reader)


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response.split(b" ", 2)[1])


# Slowloris


SLOW_CLIENTS = 50
OPEN_TIMEOUT = 1_000 * MS


async def slow_client(port: int, connected: list[None]) -> bytes:
    """Send a handshake request that never ends, one byte every 50 ms: its headers, then
    a header line that goes on and on. Return what the server sent before it closed."""
    head = handshake_request(port)[:-2]  # without the blank line that ends the request
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    connected.append(None)
    try:
        reading = asyncio.create_task(read_until_closed(reader))
        sent = 0
        data = head + b"X-Slow: "
        while not reading.done():
            writer.write(data[sent : sent + 1] if sent < len(data) else b"a")
            sent += 1
            # Paces the attack; the server must drop it at OPEN_TIMEOUT, however fast it is.
            await asyncio.wait({reading}, timeout=50 * MS)
        return await reading
    finally:
        writer.transport.abort()
        await asyncio.sleep(0)


async def test_slowloris_dropped_after_open_timeout_while_others_are_served() -> None:
    async with running_server("asyncio", open_timeout=OPEN_TIMEOUT) as server:
        connected: list[None] = []
        attack = [
            asyncio.create_task(asyncio.wait_for(slow_client(server.port, connected), WAIT))
            for _ in range(SLOW_CLIENTS)
        ]
        try:
            await until(lambda: len(connected) == SLOW_CLIENTS)
            # During the attack, a well-behaved client connects and echoes.
            async with well_behaved_client(server.port) as good:
                for _ in range(3):
                    await assert_echoes(good)
                answers = await asyncio.gather(*attack)
                # Each one was closed by the server (EOF or reset), without a response: the
                # open timeout covers the whole handshake, however steadily bytes arrive.
                assert answers == [b""] * SLOW_CLIENTS
                await until(lambda: server.connections == 1)
                await assert_echoes(good)
        finally:
            for task in attack:
                task.cancel()
            await asyncio.gather(*attack, return_exceptions=True)


# Oversized request lines and headers


def request_with(first_line: bytes, *header_lines: bytes) -> bytes:
    """A valid upgrade request, but for its request line and extra header lines."""
    lines = handshake_request(0).split(b"\r\n")
    lines[0] = first_line
    return b"\r\n".join(lines[:-2] + list(header_lines) + [b"", b""])


# RFC 9112 section 3: "A server that receives a request-target longer than any URI it wishes
# to parse MUST respond with a 414 (URI Too Long) status code"; 400 (Bad Request) is the
# generic answer to a request line the server cannot parse. 431 (RFC 6585 section 5) is for
# header fields: "It can be used both when the set of request header fields in total is too
# large, and when a single header field is at fault."
REQUEST_LINE_TOO_LONG = {400, 414}
HEADERS_TOO_LARGE = {431}

LONG_LINE = MAX_LINE_LENGTH + 1_000

OVERSIZED = {
    "request line": (
        request_with(b"GET /" + b"a" * LONG_LINE + b" HTTP/1.1"),
        REQUEST_LINE_TOO_LONG,
    ),
    "header line": (
        request_with(b"GET / HTTP/1.1", b"X-Long: " + b"a" * LONG_LINE),
        HEADERS_TOO_LARGE,
    ),
    "too many headers": (
        request_with(
            b"GET / HTTP/1.1", *(b"X-Many-%d: x" % i for i in range(MAX_NUM_HEADERS + 1))
        ),
        HEADERS_TOO_LARGE,
    ),
    # Each line and their number within the limits above, but 256 KiB of headers in all:
    # no server needs that much to accept a WebSocket (nginx stops at 32 KiB, Node.js and
    # h11 at 16 KiB), and it would cost that much memory per connection in the handshake.
    "total header size": (
        request_with(
            b"GET / HTTP/1.1",
            *(b"X-Big-%02d: " % i + b"b" * 8_000 for i in range(33)),
        ),
        HEADERS_TOO_LARGE,
    ),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(OVERSIZED))
async def test_oversized_request_rejected(kind: str, name: str) -> None:
    request, statuses = OVERSIZED[name]
    async with running_server(kind) as server:
        async with well_behaved_client(server.port) as good:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            try:
                writer.write(request)
                response = await read_response(reader)
            finally:
                writer.transport.abort()
                await asyncio.sleep(0)
            assert status_of(response) in statuses, f"{name}: {response[:200]!r}"
            await assert_echoes(good)


STREAM_SIZE = 1_048_576
CHUNK_SIZE = 4_096

ENDLESS = {
    "request line": (b"GET /" + b"a" * (CHUNK_SIZE - 5), b"a", REQUEST_LINE_TOO_LONG),
    "header line": (
        handshake_request(0)[:-2] + b"X-Endless: ",
        b"a",
        HEADERS_TOO_LARGE,
    ),
    "header lines": (handshake_request(0)[:-2], b"X-More: x\r\n", HEADERS_TOO_LARGE),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(ENDLESS))
async def test_endless_request_rejected_before_it_is_all_sent(kind: str, name: str) -> None:
    # Stream up to 1 MiB of a request that never ends, in chunks: the server must answer
    # once it read past its limit, while the client is still sending, rather than buffer
    # everything. Nothing here measures time: the pause between chunks only lets the
    # answer arrive; the check is on how much was sent before it did.
    start, filler, statuses = ENDLESS[name]
    async with running_server(kind) as server:
        async with well_behaved_client(server.port) as good:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            try:
                reading = asyncio.create_task(read_response(reader))
                chunk = filler * (CHUNK_SIZE // len(filler))
                sent = 0
                with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                    writer.write(start)
                    sent += len(start)
                    while sent < STREAM_SIZE and not reading.done():
                        writer.write(chunk)
                        sent += len(chunk)
                        await writer.drain()
                        await asyncio.wait({reading}, timeout=MS)
                response = await reading
            finally:
                writer.transport.abort()
                await asyncio.sleep(0)
            assert sent < STREAM_SIZE, f"{name}: the server answered after reading everything"
            assert status_of(response) in statuses, f"{name}: {response[:200]!r}"
            await assert_echoes(good)


# Bytes that come after the request, while the server is still deciding how to answer it
# (an async process_request that checks a token, for example), are frames the client sent
# without waiting for the response (RFC 6455 section 4.1 allows it). The server must not read
# them into memory without limit meanwhile: it stops reading, and TCP pushes back.

FLOOD_SIZE = 32 * 1_048_576
FLOOD_MEMORY_BOUND = 8 * 1_048_576


def send_until_pushed_back(sock: socket.socket, chunk: bytes) -> int:
    """Send ``chunk`` again and again, up to :data:`FLOOD_SIZE` bytes, until a send makes no
    progress for a while (the peer stopped reading); return how many bytes were sent."""
    sock.settimeout(500 * MS)  # only ends the flood early: a server that reads gets it all
    sent = 0
    with contextlib.suppress(TimeoutError, ConnectionError):
        while sent < FLOOD_SIZE:
            sock.sendall(chunk)
            sent += len(chunk)
    return sent


@pytest.mark.parametrize("kind", KINDS)
async def test_bytes_after_request_not_buffered_while_handshake_pending(kind: str) -> None:
    opened = asyncio.Event()
    released = threading.Event()

    async def slow_check(connection: object, request: object) -> None:
        await opened.wait()

    def slow_check_sync(connection: object, request: object) -> None:
        released.wait(WAIT)

    process_request = slow_check if kind == "asyncio" else slow_check_sync
    chunk = bytes(65_536)
    async with running_server(kind, process_request=process_request) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        try:
            sock.sendall(handshake_request(server.port))
            tracemalloc.start()
            try:
                baseline, _ = tracemalloc.get_traced_memory()
                sent = await asyncio.to_thread(send_until_pushed_back, sock, chunk)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        finally:
            opened.set()
            released.set()
            sock.close()
    assert peak - baseline < FLOOD_MEMORY_BOUND, (
        f"memory grew by {peak - baseline} bytes while {sent} bytes came after the request"
    )


# More clients than max_connections (tests/asyncio/test_server.py checks the 503 itself;
# this one checks a burst of them, while the open connections keep working).

MAX_CONNECTIONS = 3
REFUSED = 30


async def refused_client(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(handshake_request(port))
        return await read_response(reader)
    finally:
        writer.transport.abort()
        await asyncio.sleep(0)


async def test_burst_beyond_max_connections_gets_503_while_open_ones_echo() -> None:
    async with running_server("asyncio", max_connections=MAX_CONNECTIONS) as server:
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(well_behaved_client(server.port))
                for _ in range(MAX_CONNECTIONS)
            ]

            async def keep_echoing() -> None:
                for _ in range(10):
                    await asyncio.gather(*(assert_echoes(client) for client in clients))

            echoing = asyncio.create_task(keep_echoing())
            responses = await asyncio.gather(
                *(refused_client(server.port) for _ in range(REFUSED))
            )
            await echoing
            for response in responses:
                assert status_of(response) == 503, response[:200]
                head = response.partition(b"\r\n\r\n")[0].lower()
                assert b"\r\nretry-after: 1\r\n" in head + b"\r\n", head
            await until(lambda: server.connections == MAX_CONNECTIONS)
            for client in clients:
                await assert_echoes(client)
