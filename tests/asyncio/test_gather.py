"""Frames sent while more received messages wait go out together (Connection._gather).

A raw client sends a burst of messages in one write, so that the server reads them at once;
the server's handler answers each. The answers must arrive complete and in order, with
anything else the connection writes (pings, broadcasts, the close frame) in its place among
them, and in fewer writes than answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from socketeer.asyncio.connection import GATHER_LIMIT, broadcast
from socketeer.asyncio.server import ServerConnection, serve
from socketeer.protocol.frames import Frame, Opcode

WAIT = 10  # seconds before a test that waits for a frame fails rather than hangs

Handler = Callable[[ServerConnection], Awaitable[None]]


def burst(*payloads: bytes) -> bytes:
    """Masked binary frames, one per payload, as one buffer."""
    return b"".join(
        Frame(Opcode.BINARY, payload).serialize(mask=True, mask_key=b"\x01\x02\x03\x04")
        for payload in payloads
    )


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await asyncio.wait_for(reader.readexactly(2), WAIT)
    size = second & 0x7F
    if size == 126:
        size = int.from_bytes(await reader.readexactly(2), "big")
    elif size == 127:
        size = int.from_bytes(await reader.readexactly(8), "big")
    return first, await asyncio.wait_for(reader.readexactly(size), WAIT)


@contextlib.asynccontextmanager
async def server_and_client(
    handler: Handler, raw_client: Any
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter, list[int]]]:
    """A server running ``handler``, a raw client, and the sizes of the server's writes
    since the handler started."""
    writes: list[int] = []

    async def recording(connection: ServerConnection) -> None:
        assert connection.transport is not None
        write = connection.transport.write

        def recording_write(data: Any) -> None:
            writes.append(len(data))
            write(data)

        connection.transport.write = recording_write  # type: ignore[method-assign]
        await handler(connection)

    async with serve(recording, "127.0.0.1", 0, compression=None) as server:
        async with raw_client(server.sockets[0].getsockname()[1]) as (reader, writer):
            yield reader, writer, writes


async def test_answers_to_a_burst_go_out_together(raw_client: Any) -> None:
    async def echo(connection: ServerConnection) -> None:
        async for message in connection:
            await connection.send(message)

    payloads = [b"message %d" % i for i in range(50)]
    async with server_and_client(echo, raw_client) as (reader, writer, writes):
        writer.write(burst(*payloads))
        received = [await read_frame(reader) for _ in payloads]
    assert received == [(0x82, payload) for payload in payloads]
    assert len(writes) < len(payloads)  # one write per read of the burst, in practice


async def test_other_writes_keep_their_place(raw_client: Any) -> None:
    async def answer(connection: ServerConnection) -> None:
        async for message in connection:
            await connection.send(message)
            if message == b"1":
                await connection.ping(b"ping")
            elif message == b"3":
                broadcast([connection], b"broadcast")
            elif message == b"5":
                await connection.close(1000, "done")

    async with server_and_client(answer, raw_client) as (reader, writer, _):
        writer.write(burst(*[b"%d" % i for i in range(8)]))
        received = [await read_frame(reader) for _ in range(9)]
    assert received == [
        (0x82, b"0"),
        (0x82, b"1"),
        (0x89, b"ping"),
        (0x82, b"2"),
        (0x82, b"3"),
        (0x82, b"broadcast"),
        (0x82, b"4"),
        (0x82, b"5"),
        (0x88, b"\x03\xe8done"),
    ]


async def test_an_answer_goes_out_when_nothing_else_is_sent(raw_client: Any) -> None:
    # The handler answers the first message only, while four more wait unread.
    async def first_only(connection: ServerConnection) -> None:
        await connection.send(await connection.recv())
        await connection.wait_closed()

    async with server_and_client(first_only, raw_client) as (reader, writer, _):
        writer.write(burst(b"first", b"2", b"3", b"4", b"5"))
        assert await read_frame(reader) == (0x82, b"first")


async def test_gathered_bytes_are_bounded(raw_client: Any) -> None:
    async def echo(connection: ServerConnection) -> None:
        async for message in connection:
            await connection.send(message)

    payloads = [bytes([i]) * 10_000 for i in range(15)]  # 150 KB of answers to one burst
    async with server_and_client(echo, raw_client) as (reader, writer, writes):
        writer.write(burst(*payloads))
        received = [await read_frame(reader) for _ in payloads]
    assert received == [(0x82, payload) for payload in payloads]
    assert max(writes) < GATHER_LIMIT + 10_010
