"""Serving RPC: ``socketeer.serve(rpc, ...)`` (subprotocol, refusal, the browser client over
HTTP), the ServerApp hook of ``serve``, and the Router."""

from __future__ import annotations

import http
import importlib.resources
from typing import Any

import pytest
from rpc_helpers import port_of, raw, recv_json, request, send_json, serving

import socketeer
from raw_http import http_get
from socketeer.asyncio.server import is_server_app
from socketeer.exceptions import ConnectionClosed, InvalidStatus, NegotiationError
from socketeer.rpc import RPC, SUBPROTOCOL, Router, connect


def app() -> RPC:
    rpc = RPC()
    rpc.method("add")(lambda a, b: a + b)
    return rpc


def static(name: str) -> bytes:
    return (importlib.resources.files("socketeer") / "static" / name).read_bytes()


async def echo(ws: socketeer.ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


# serve(rpc)


async def test_serve_selects_the_subprotocol() -> None:
    async with serving(app()) as url:
        async with raw(url, subprotocols=["chat", SUBPROTOCOL]) as ws:
            assert ws.subprotocol == SUBPROTOCOL
            await send_json(ws, request("add", [1, 2]))
            assert (await recv_json(ws))["result"] == 3
        async with connect(url + "any/path?x=1") as peer:  # any path
            assert await peer.call("add", 2, 2) == 4


async def test_client_without_the_subprotocol_is_refused() -> None:
    async with serving(app()) as url:
        for subprotocols in [None, ["chat"]]:
            with pytest.raises(InvalidStatus) as info:
                await socketeer.connect(url, subprotocols=subprotocols)
            response = info.value.response
            assert response.status_code == 400
            assert b"offer the subprotocol socketeer.rpc.v1" in response.body


# Cross-site WebSocket hijacking: the Origin of browsers' handshakes


async def test_same_origin_and_programs_are_let_in() -> None:
    async with serving(app()) as url:
        port = port_of(url)
        for origin in [f"http://127.0.0.1:{port}", f"HTTPS://127.0.0.1:{port}", None]:
            async with raw(url, subprotocols=[SUBPROTOCOL], origin=origin) as ws:
                await send_json(ws, request("add", [1, 2]))
                assert (await recv_json(ws))["result"] == 3


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "http://127.0.0.1",  # another port
        "http://127.0.0.1:1",
        "null",  # sandboxed frames, file:// pages
        "http://127.0.0.1.evil.example",
    ],
)
async def test_other_origins_are_refused(origin: str) -> None:
    async with serving(app()) as url:
        with pytest.raises(InvalidStatus) as info:
            await socketeer.connect(url, subprotocols=[SUBPROTOCOL], origin=origin)
        response = info.value.response
        assert response.status_code == 403
        assert f"origin {origin} not allowed".encode() in response.body


async def test_origins_allowed_besides() -> None:
    rpc = RPC(origins=["https://app.example.com"])
    rpc.method("add")(lambda a, b: a + b)
    async with serving(rpc) as url:
        async with raw(url, subprotocols=[SUBPROTOCOL], origin="https://APP.example.com") as ws:
            await send_json(ws, request("add", [1, 2]))
            assert (await recv_json(ws))["result"] == 3
        with pytest.raises(InvalidStatus):
            await socketeer.connect(url, subprotocols=[SUBPROTOCOL], origin="https://x.example")


async def test_every_origin_allowed() -> None:
    rpc = RPC(origins="*")
    async with serving(rpc) as url:
        async with raw(url, subprotocols=[SUBPROTOCOL], origin="http://evil.example") as ws:
            assert ws.subprotocol == SUBPROTOCOL


@pytest.mark.parametrize(
    ("origins", "error", "message"),
    [
        ("https://a.example", TypeError, "origins must be"),
        ([1], TypeError, "origins must be"),
        (["a.example"], ValueError, "origin must be scheme://host"),
        (["https://a.example/path"], ValueError, "origin must be scheme://host"),
    ],
)
def test_origins_are_checked(origins: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        RPC(origins=origins)


async def test_browser_client_is_served() -> None:
    async with serving(app()) as url:
        port = port_of(url)
        status, headers, body = await http_get(port, "/socketeer.js?v=1")
        assert status == 200
        assert headers["content-type"] == "text/javascript; charset=utf-8"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["access-control-allow-origin"] == "*"
        assert body == static("socketeer.js")
        assert b'export const SUBPROTOCOL = "socketeer.rpc.v1";' in body

        status, headers, body = await http_get(port, "/socketeer.d.ts")
        assert status == 200
        assert headers["content-type"] == "application/typescript; charset=utf-8"
        assert body == static("socketeer.d.ts")

        status, headers, _ = await http_get(port, "/socketeer.js", method="POST")
        assert (status, headers["allow"]) == (405, "GET")


async def test_plain_http_elsewhere_is_told_to_upgrade() -> None:
    async with serving(app()) as url:
        status, _, _ = await http_get(port_of(url), "/")
    assert status == http.HTTPStatus.UPGRADE_REQUIRED


async def test_process_request_and_subprotocols_given_to_serve_come_first() -> None:
    def health(connection: socketeer.ServerConnection, request: socketeer.Request) -> Any:
        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "ok\n")
        return None

    async with serving(app(), process_request=health, subprotocols=["chat"]) as url:
        port = port_of(url)
        assert (await http_get(port, "/healthz"))[0] == 200
        assert (await http_get(port, "/socketeer.js"))[0] == 200
        async with raw(url, subprotocols=[SUBPROTOCOL, "chat"]) as ws:
            assert ws.subprotocol == "chat"  # the server's preference
        async with connect(url) as peer:
            assert await peer.call("add", 1, 1) == 2


async def test_rpc_as_a_plain_handler_closes_without_the_subprotocol() -> None:
    rpc = app()

    async def handler(ws: socketeer.ServerConnection) -> None:
        await rpc(ws)  # serve() does not know: it selects no subprotocol

    async with serving(handler) as url:
        with pytest.raises(NegotiationError):
            await connect(url)
        async with socketeer.connect(url) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (
        1008,
        "subprotocol socketeer.rpc.v1 required",
    )


def test_server_apps() -> None:
    assert is_server_app(RPC())
    assert is_server_app(Router({}))
    assert not is_server_app(echo)
    assert not is_server_app(socketeer.Handler)
    assert not is_server_app(RPC)


# Router


class Greeter(socketeer.Handler):
    async def on_open(self, ws: Any) -> None:
        await ws.send("hello")


def router() -> Router:
    return Router({"/rpc": app(), "/echo": echo, "/greet": Greeter})


async def test_router_routes_by_path() -> None:
    async with serving(router()) as url:
        async with connect(url + "rpc?token=1") as peer:
            assert await peer.call("add", 1, 2) == 3
        async with socketeer.connect(url + "echo") as ws:
            assert ws.subprotocol is None
            await ws.send("hi")
            assert await ws.recv() == "hi"
        async with socketeer.connect(url + "greet") as ws:
            assert await ws.recv() == "hello"


async def test_router_refuses_other_paths() -> None:
    async with serving(router()) as url:
        for path in ["", "nope", "rpc/", "echo/x"]:
            with pytest.raises(InvalidStatus) as info:
                await socketeer.connect(url + path)
            assert info.value.response.status_code == 404
        with pytest.raises(InvalidStatus) as info:
            await connect(url + "nope")
        assert info.value.response.status_code == 404
        port = port_of(url)
        assert (await http_get(port, "/nope"))[0] == 404


async def test_router_lets_apps_answer_their_requests() -> None:
    async with serving(router()) as url:
        # The RPC app refuses handshakes on its path without the subprotocol...
        with pytest.raises(InvalidStatus) as info:
            await socketeer.connect(url + "rpc")
        assert info.value.response.status_code == 400
        port = port_of(url)
        # ...and still serves the browser client, on a path of its own.
        status, headers, body = await http_get(port, "/socketeer.js")
        assert (status, headers["content-type"]) == (200, "text/javascript; charset=utf-8")
        assert body == static("socketeer.js")
        assert (await http_get(port, "/rpc"))[0] == 426


def test_router_subprotocols() -> None:
    class Chat:
        subprotocols = ["chat", SUBPROTOCOL]

        async def __call__(self, ws: Any) -> None:
            pass

        def process_request(self, connection: Any, request: Any) -> None:
            return None

    assert Router({"/a": RPC(), "/b": Chat(), "/c": echo}).subprotocols == [SUBPROTOCOL, "chat"]


def test_router_checks_its_routes() -> None:
    with pytest.raises(ValueError, match="paths start with /"):
        Router({"rpc": RPC()})
    with pytest.raises(TypeError, match="pass the class"):
        Router({"/greet": Greeter()})
    assert socketeer.Router is Router
