"""Helpers of the RPC layer's tests (a module name unique across tests/, which has no
packages): servers on a free loopback port, raw JSON clients, bounded waits, and the
:data:`MS` time unit."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import socketeer
from socketeer.rpc import SUBPROTOCOL
from timing import MS

STEP = 5_000 * MS
"""Longest a single step may take; steps take milliseconds. Only catches hangs."""


@contextlib.asynccontextmanager
async def serving(handler: Any, **options: Any) -> AsyncIterator[str]:
    """Serve ``handler`` on a free loopback port; yield the ``ws://`` URL of its root."""
    async with socketeer.serve(handler, "127.0.0.1", 0, **options) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/"


def raw(url: str, **options: Any) -> socketeer.connect:
    """A plain WebSocket client that offers the RPC subprotocol: to send any JSON at all."""
    options.setdefault("subprotocols", [SUBPROTOCOL])
    return socketeer.connect(url, **options)


async def send_json(ws: socketeer.ClientConnection, value: Any) -> None:
    await ws.send(json.dumps(value))


async def recv_json(ws: socketeer.ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), STEP))


async def eventually(predicate: Callable[[], bool]) -> None:
    """Wait until ``predicate()`` holds, checking after each turn of the event loop (and
    now and then after a millisecond, for what comes over the network); fail after
    :data:`STEP`."""

    async def poll() -> None:
        turns = 0
        while not predicate():
            turns += 1
            await asyncio.sleep(MS if turns % 16 == 0 else 0)

    await asyncio.wait_for(poll(), STEP)


async def wait(event: asyncio.Event) -> None:
    """Wait for ``event``, at most :data:`STEP`."""
    await asyncio.wait_for(event.wait(), STEP)


def request(method: str, params: Any = None, id: Any = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    message["id"] = id
    return message


def notification(method: str, params: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def by_id(answers: Iterable[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """A batch's answers by id (their order is free)."""
    return {answer["id"]: answer for answer in answers}


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].strip("/"))
