"""A peer that vanishes without closing: keepalive finds it, and the server lets it go.

The raw client completes the opening handshake, then never answers a ping: either it reads
nothing at all (its process hangs, or its host vanished while the kernel still acknowledges),
or it reads and drops every frame. With ``ping_interval`` and ``ping_timeout`` of 0.2 s, the
server must fail the connection with 1011 (RFC 6455 section 7.4.1: "a server is terminating
the connection because it encountered an unexpected condition"; socketeer's documented code
for a keepalive timeout), tell the handler, and forget the connection.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from abuse_helpers import KINDS, WAIT, RawClient, open_raw, running_server, until

from socketeer.exceptions import ConnectionClosed, ConnectionClosedError

PING_INTERVAL = 0.2
PING_TIMEOUT = 0.2
INTERNAL_ERROR = 1011
ABNORMAL_CLOSURE = 1006


class Recorder:
    """What the server's handler saw of its connection, for either driver."""

    def __init__(self) -> None:
        self.exc: BaseException | None = None
        self.close_code: int | None = None
        self.done = threading.Event()

    async def handler(self, connection: Any) -> None:
        try:
            async for _ in connection:
                pass
        except ConnectionClosed as exc:
            self.exc = exc
        finally:
            self.close_code = connection.close_code
            self.done.set()

    def sync_handler(self, connection: Any) -> None:
        try:
            for _ in connection:
                pass
        except ConnectionClosed as exc:
            self.exc = exc
        finally:
            self.close_code = connection.close_code
            self.done.set()


async def drop_frames(raw: RawClient, seen: list[tuple[int, bytes]]) -> None:
    """Read every frame and answer none, until the server closes the connection."""
    try:
        while True:
            seen.append(await raw.read_frame())
    except (asyncio.IncompleteReadError, ConnectionResetError):
        pass


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reads", [False, True], ids=["never reads", "never answers"])
async def test_silent_peer_failed_by_keepalive_and_released(kind: str, reads: bool) -> None:
    recorder = Recorder()
    handler = recorder.handler if kind == "asyncio" else recorder.sync_handler
    options = {"ping_interval": PING_INTERVAL, "ping_timeout": PING_TIMEOUT}
    async with running_server(kind, handler, **options) as server:
        async with open_raw(server.port) as raw:
            seen: list[tuple[int, bytes]] = []
            reading = asyncio.create_task(drop_frames(raw, seen)) if reads else None
            try:
                # An upper bound for a hang, not a measurement.
                bound = PING_INTERVAL + PING_TIMEOUT + WAIT
                ended = await asyncio.to_thread(recorder.done.wait, bound)
                assert ended, "the handler did not return: keepalive missed the silent peer"
                await until(lambda: server.connections == 0)
                if reading is None:  # what the server sent waits unread in the socket
                    reading = asyncio.create_task(drop_frames(raw, seen))
                await asyncio.wait_for(reading, WAIT)
            finally:
                if reading is not None and not reading.done():
                    reading.cancel()
                    await asyncio.gather(reading, return_exceptions=True)
            # On the wire: pings, unanswered, then a close frame with 1011, then the end.
            opcodes = [first & 0x0F for first, _ in seen]
            assert opcodes[0] == 0x9, seen
            assert opcodes[-1] == 0x8, seen
            assert int.from_bytes(seen[-1][1][:2], "big") == INTERNAL_ERROR, seen[-1]
    # The handler saw the connection fail: it sent 1011 and received no close frame.
    assert isinstance(recorder.exc, ConnectionClosedError), recorder.exc
    assert recorder.exc.sent is not None and recorder.exc.sent.code == INTERNAL_ERROR
    assert recorder.exc.rcvd is None
    assert recorder.close_code == ABNORMAL_CLOSURE
