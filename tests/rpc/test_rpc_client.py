"""The asyncio RPC client: ``socketeer.rpc.connect``, its options, its peer's lifetime, and
the proxy."""

from __future__ import annotations

import asyncio
import dataclasses
import typing
from typing import Any

import pytest
from rpc_helpers import MS, serving

import socketeer
from socketeer.exceptions import ConnectionLost, NegotiationError
from socketeer.rpc import (
    RPC,
    SUBPROTOCOL,
    Peer,
    PeerOptions,
    PeerOptionsDict,
    Proxy,
    connect,
    current_peer,
)


def app() -> RPC:
    rpc = RPC()

    @rpc.method
    def add(a: int, b: int) -> int:
        return a + b

    @rpc.method
    async def discover_client() -> Any:
        return await current_peer().call("rpc.discover")

    return rpc


async def test_context_manager_returns_the_peer() -> None:
    async with serving(app()) as url:
        client = connect(url)
        async with client as peer:
            assert isinstance(peer, Peer) and client.peer is peer
            assert peer.connection.subprotocol == SUBPROTOCOL
            assert await peer.call("add", 1, 2) == 3
        assert peer.closed
        assert peer.connection.close_code == 1000


async def test_await_returns_the_peer_and_close_closes() -> None:
    async with serving(app()) as url:
        peer = await connect(url)
        async with peer:  # a Peer is an async context manager too
            assert await peer.proxy.add(2, 3) == 5
        assert peer.closed
        await peer.close()  # again: nothing happens
        await peer.wait_closed()


async def test_server_may_discover_the_client() -> None:
    async with serving(app()) as url, connect(url) as peer:
        assert await peer.call("discover_client") == []

        def flash(text: str, *, level: str = "info") -> None:
            """Show a message."""

        peer.register("ui.flash", flash)
        assert await peer.call("discover_client") == [
            {
                "name": "ui.flash",
                "params": [
                    {"name": "text", "kind": "positional_or_keyword"},
                    {"name": "level", "kind": "keyword_only", "default": "info"},
                ],
                "doc": "Show a message.",
            }
        ]


async def test_server_that_does_not_select_the_subprotocol_is_refused() -> None:
    closed = asyncio.Event()

    async def handler(ws: socketeer.ServerConnection) -> None:
        assert ws.request is not None
        assert ws.request.headers["Sec-WebSocket-Protocol"] == SUBPROTOCOL
        await ws.wait_closed()
        closed.set()

    async with serving(handler) as url:
        with pytest.raises(NegotiationError, match="server did not select subprotocol"):
            await connect(url)
        await asyncio.wait_for(closed.wait(), 5000 * MS)


async def test_options() -> None:
    async with serving(app()) as url:
        async with connect(url, call_timeout=5, open_timeout=1, max_concurrency=3) as peer:
            assert peer.options == PeerOptions(call_timeout=5, max_concurrency=3)
        routes = RPC(debug=True, call_timeout=7)
        async with connect(url, routes=routes, call_timeout=8) as peer:
            assert peer.options == PeerOptions(debug=True, call_timeout=8)
            assert peer.routes is routes


def test_options_twin_matches_the_dataclass() -> None:
    fields = dataclasses.fields(PeerOptions)
    assert list(PeerOptionsDict.__annotations__) == [field.name for field in fields]
    hints = typing.get_type_hints(PeerOptions)
    assert typing.get_type_hints(PeerOptionsDict) == {f.name: hints[f.name] for f in fields}
    assert PeerOptionsDict.__required_keys__ == frozenset()


def test_subprotocols_cannot_be_given() -> None:
    with pytest.raises(TypeError, match="offers the subprotocol socketeer.rpc.v1 itself"):
        connect("ws://localhost/", subprotocols=["chat"])  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "options, error",
    [
        ({"max_concurrency": 0}, ValueError),
        ({"max_concurrency": 1.5}, TypeError),
        ({"call_timeout": -1}, ValueError),
        ({"execution_timeout": "1"}, TypeError),
        ({"max_batch": 0}, ValueError),
        ({"debug": 1}, TypeError),
        ({"open_timeout": -1}, ValueError),
    ],
)
def test_invalid_options(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        connect("ws://localhost/", **options)


def test_invalid_uri() -> None:
    with pytest.raises(socketeer.InvalidURI):
        connect("http://localhost/")


async def test_calls_after_the_server_left() -> None:
    rpc = app()
    async with serving(rpc) as url:
        peer = await connect(url)
    # The server closed with 1001 (going away) when it shut down.
    await peer.wait_closed()
    with pytest.raises(ConnectionLost) as info:
        await peer.call("add", 1, 2)
    assert info.value.code == 1001
    await peer.close()


async def test_proxy() -> None:
    async with serving(app()) as url, connect(url) as peer:
        proxy = peer.proxy
        assert repr(proxy) == "<Proxy (root)>"
        assert repr(proxy.counter.increment) == "<Proxy counter.increment>"
        for name in ["_private", "__dunder__", "__await__", "1x", "café"]:
            with pytest.raises(AttributeError):
                getattr(proxy.counter, name)
        assert proxy.counter.__class__ is Proxy  # Python's own attributes stay what they are
        with pytest.raises(TypeError, match="peer.proxy is not a method"):
            proxy()
        assert await proxy.add(a=1, b=1) == 2
