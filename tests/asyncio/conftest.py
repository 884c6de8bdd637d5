"""Fixtures for the asyncio driver's tests; ``async def`` tests run with
:mod:`async_runner` (a new event loop in debug mode each, failing on any error the loop
reports), which here also accepts a TLS client giving up during the handshake.

This directory has no ``__init__.py`` on purpose: a package named ``asyncio`` would shadow
the standard library.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from async_runner import call_async_test
from socketeer.protocol import State
from socketeer.protocol.client import ClientProtocol
from socketeer.protocol.http11 import Request
from socketeer.protocol.server import ServerProtocol
from socketeer.uri import parse_uri


def pytest_collection_finish(session: pytest.Session) -> None:
    # Move what exists before the tests run out of the garbage collector's sight, so that the
    # full collection after each test, which finds what the test left, takes milliseconds.
    gc.collect()
    gc.freeze()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    return call_async_test(pyfuncitem, _tls_client_gave_up)


def _tls_client_gave_up(context: dict[str, Any]) -> bool:
    # In debug mode, asyncio reports a client that gives up during the TLS handshake
    # (e.g. it does not trust the certificate): the test expects it.
    return context["message"] == "Error on transport creation for incoming connection" and (
        isinstance(context.get("exception"), OSError)
    )


# Raw peers: plain TCP that speaks just enough WebSocket to misbehave.

RawStreams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@contextlib.asynccontextmanager
async def open_raw_client(port: int, *, handshake: bool = True) -> AsyncIterator[RawStreams]:
    """A TCP client of a WebSocket server on 127.0.0.1 that does only what the test does.

    With ``handshake``, it completes the opening handshake first (without extensions), then
    reads and writes nothing unless the test does.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if handshake:
            protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/"))
            protocol.send_request(protocol.connect())
            writer.writelines(protocol.data_to_send())
            protocol.receive_data(await reader.readuntil(b"\r\n\r\n"))
            assert protocol.state is State.OPEN, protocol.handshake_exc
        yield reader, writer
    finally:
        writer.transport.abort()
        await asyncio.sleep(0)  # let the transport call connection_lost


@contextlib.asynccontextmanager
async def serve_raw(*, handshake: bool = True) -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 that accepts WebSocket connections, then does nothing.

    With ``handshake``, it answers the opening handshake (without extensions), then never
    reads nor writes; without, it never even answers. Yields the port.
    """
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        if handshake:
            protocol = ServerProtocol()
            protocol.receive_data(await reader.readuntil(b"\r\n\r\n"))
            (request,) = protocol.events_received()
            assert isinstance(request, Request)
            protocol.send_response(protocol.accept(request))
            writer.writelines(protocol.data_to_send())

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.transport.abort()
        await server.wait_closed()
        await asyncio.sleep(0)


@pytest.fixture
def raw_client() -> Callable[..., contextlib.AbstractAsyncContextManager[RawStreams]]:
    """:func:`open_raw_client`."""
    return open_raw_client


@pytest.fixture
def raw_server() -> Callable[..., contextlib.AbstractAsyncContextManager[int]]:
    """:func:`serve_raw`."""
    return serve_raw
