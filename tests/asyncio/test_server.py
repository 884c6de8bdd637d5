"""Servers: listening, the opening handshake, handlers, shutdown, logs (asyncio/server.py)."""

from __future__ import annotations

import asyncio
import http
import logging
import socket
import ssl
from collections.abc import Awaitable, Sequence
from typing import Any

import pytest

from socketeer.asyncio.client import connect
from socketeer.asyncio.server import Server, ServerConnection, serve
from socketeer.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatus,
)
from socketeer.options import ServerOptions
from socketeer.protocol.client import ClientProtocol
from socketeer.protocol.frames import OP_TEXT, Frame
from socketeer.protocol.http11 import Request, Response
from socketeer.protocol.server import SERVER_HEADER
from socketeer.server import connection_limit
from socketeer.typedefs import Origin, Subprotocol
from socketeer.uri import parse_uri
from timing import MS


def port_of(server: Server) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


def uri_of(server: Server) -> str:
    return f"ws://127.0.0.1:{port_of(server)}/"


async def until(condition: Any) -> None:
    """Wait until ``condition()`` is true; the test's timeout catches a hang."""
    while not condition():
        await asyncio.sleep(MS)


async def echo(connection: ServerConnection) -> None:
    async for message in connection:
        await connection.send(message)


async def wait_until_closed(connection: ServerConnection) -> None:
    await connection.wait_closed()


async def http_request(port: int, request: bytes) -> bytes:
    """Send raw bytes to 127.0.0.1:port and read the answer until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode()


async def assert_dropped(reading: Awaitable[bytes]) -> None:
    """Check that the server closed or aborted the connection without answering."""
    try:
        data = await reading
    except ConnectionResetError:
        return
    assert data == b""


def server_log(caplog: pytest.LogCaptureFixture, prefix: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "socketeer.server" and record.getMessage().startswith(prefix)
    ]


class TestListen:
    async def test_host_and_port(self) -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            assert isinstance(server, Server)
            (sock,) = server.sockets
            assert sock.getsockname()[0] == "127.0.0.1"
            async with connect(uri_of(server)) as client:
                await client.send("hello")
                assert await client.recv() == "hello"

    async def test_ipv6(self) -> None:
        if not socket.has_ipv6:  # pragma: no cover
            pytest.skip("no IPv6")
        try:
            async with serve(echo, "::1", 0) as server:
                async with connect(f"ws://[::1]:{port_of(server)}/") as client:
                    assert client.remote_address[0] == "::1"
                    await client.send("hello")
                    assert await client.recv() == "hello"
        except OSError as exc:  # pragma: no cover
            pytest.skip(f"no IPv6 loopback: {exc}")

    async def test_unix(self, unix_path: str) -> None:
        async with serve(echo, unix=unix_path) as server:
            assert server.sockets[0].getsockname() == unix_path
            async with connect("ws://localhost/", unix=unix_path) as client:
                await client.send("hello")
                assert await client.recv() == "hello"

    async def test_sock(self) -> None:
        sock = socket.create_server(("127.0.0.1", 0))
        async with serve(echo, sock=sock) as server:
            assert server.sockets[0].getsockname() == sock.getsockname()
            async with connect(uri_of(server)) as client:
                await client.send("hello")
                assert await client.recv() == "hello"

    async def test_tls(self, server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext) -> None:
        async with serve(echo, "127.0.0.1", 0, ssl=server_ssl) as server:
            uri = f"wss://127.0.0.1:{port_of(server)}/"
            async with connect(uri, ssl=client_ssl) as client:
                assert client.transport is not None
                assert client.transport.get_extra_info("ssl_object") is not None
                await client.send("secret")
                assert await client.recv() == "secret"

    async def test_await(self) -> None:
        server = await serve(echo, "127.0.0.1", 0)
        try:
            async with connect(uri_of(server)) as client:
                await client.send("hello")
                assert await client.recv() == "hello"
        finally:
            await server.close()

    async def test_invalid_compression(self) -> None:
        with pytest.raises(ValueError):
            serve(echo, "127.0.0.1", 0, compression="zstd")

    async def test_invalid_subprotocol(self) -> None:
        with pytest.raises(ValueError):
            serve(echo, "127.0.0.1", 0, subprotocols=[Subprotocol("not a token")])


class TestHandshake:
    @pytest.mark.parametrize(
        ("origins", "origin"),
        [
            ([Origin("https://good.example")], Origin("https://good.example")),
            ([Origin("https://good.example")], Origin("https://GOOD.example")),
            ([Origin("https://good.example"), None], None),
        ],
    )
    async def test_allowed_origin(
        self, origins: Sequence[Origin | None], origin: Origin | None
    ) -> None:
        async with serve(echo, "127.0.0.1", 0, origins=origins) as server:
            async with connect(uri_of(server), origin=origin) as client:
                await client.send("hello")
                assert await client.recv() == "hello"

    @pytest.mark.parametrize("origin", [Origin("https://evil.example"), None])
    async def test_forbidden_origin(self, origin: Origin | None) -> None:
        origins = [Origin("https://good.example")]
        async with serve(echo, "127.0.0.1", 0, origins=origins) as server:
            with pytest.raises(InvalidStatus) as raised:
                await connect(uri_of(server), origin=origin)
            assert raised.value.response.status_code == 403
            assert not server.connections or all(
                c.state.name != "OPEN" for c in server.connections
            )

    @pytest.mark.parametrize(
        ("offered", "expected"),
        [(["superchat", "chat"], "chat"), (["superchat"], "superchat"), (["other"], None)],
    )
    async def test_subprotocols(self, offered: list[str], expected: str | None) -> None:
        subprotocols = [Subprotocol("chat"), Subprotocol("superchat")]
        offer = [Subprotocol(s) for s in offered]
        async with serve(echo, "127.0.0.1", 0, subprotocols=subprotocols) as server:
            async with connect(uri_of(server), subprotocols=offer) as client:
                assert client.subprotocol == expected
                (connection,) = server.connections
                assert connection.subprotocol == expected

    async def test_no_subprotocol_offered(self) -> None:
        subprotocols = [Subprotocol("chat")]
        async with serve(echo, "127.0.0.1", 0, subprotocols=subprotocols) as server:
            async with connect(uri_of(server)) as client:
                assert client.subprotocol is None
                assert client.response is not None
                assert "Sec-WebSocket-Protocol" not in client.response.headers

    async def test_select_subprotocol(self) -> None:
        calls = []

        def select(
            offered: Sequence[Subprotocol], supported: Sequence[Subprotocol]
        ) -> Subprotocol | None:
            calls.append((list(offered), list(supported)))
            return offered[-1]

        offer = [Subprotocol("a"), Subprotocol("b")]
        async with serve(
            echo, "127.0.0.1", 0, subprotocols=[Subprotocol("a")], select_subprotocol=select
        ) as server:
            async with connect(uri_of(server), subprotocols=offer) as client:
                assert client.subprotocol == "b"
        assert calls == [(["a", "b"], ["a"])]

    async def test_select_subprotocol_not_offered(self) -> None:
        def select(
            offered: Sequence[Subprotocol], supported: Sequence[Subprotocol]
        ) -> Subprotocol | None:
            return Subprotocol("unheard-of")

        offer = [Subprotocol("a")]
        async with serve(echo, "127.0.0.1", 0, select_subprotocol=select) as server:
            with pytest.raises(InvalidStatus) as raised:
                await connect(uri_of(server), subprotocols=offer)
            assert raised.value.response.status_code == 400

    async def test_compression_by_default(self) -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            async with connect(uri_of(server)) as client:
                assert client.response is not None
                answer = client.response.headers["Sec-WebSocket-Extensions"]
                assert answer.startswith("permessage-deflate")
                assert [e.name for e in client.protocol.extensions] == ["permessage-deflate"]
                (connection,) = server.connections
                assert [e.name for e in connection.protocol.extensions] == ["permessage-deflate"]
                await client.send("compressed " * 100)
                assert await client.recv() == "compressed " * 100

    async def test_compression_off(self) -> None:
        async with serve(echo, "127.0.0.1", 0, compression=None) as server:
            async with connect(uri_of(server)) as client:
                assert client.request is not None
                assert "Sec-WebSocket-Extensions" in client.request.headers  # offered
                assert client.response is not None
                assert "Sec-WebSocket-Extensions" not in client.response.headers
                assert client.protocol.extensions == []
                (connection,) = server.connections
                assert connection.protocol.extensions == []

    async def test_health_check(self) -> None:
        def process_request(connection: ServerConnection, request: Request) -> Response | None:
            if request.path == "/healthz":
                return connection.respond(http.HTTPStatus.OK, "ok\n")
            return None

        async with serve(echo, "127.0.0.1", 0, process_request=process_request) as server:
            answer = await http_request(port_of(server), get("/healthz"))
            head, _, body = answer.partition(b"\r\n\r\n")
            status, *headers = head.split(b"\r\n")
            assert status == b"HTTP/1.1 200 OK"
            assert b"Content-Length: 3" in headers
            assert b"Content-Type: text/plain; charset=utf-8" in headers
            assert body == b"ok\n"
            # Other paths go on with the WebSocket handshake.
            async with connect(uri_of(server)) as client:
                await client.send("hello")
                assert await client.recv() == "hello"
            await until(lambda: not server.connections)

    async def test_respond_with_bytes_and_headers(self) -> None:
        def process_request(connection: ServerConnection, request: Request) -> Response:
            return connection.respond(
                404, b"\x00", content_type="application/octet-stream", headers=[("X-A", "b")]
            )

        async with serve(echo, "127.0.0.1", 0, process_request=process_request) as server:
            with pytest.raises(InvalidStatus) as raised:
                await connect(uri_of(server))
            response = raised.value.response
            assert response.status_code == 404
            assert response.body == b"\x00"
            assert response.headers["Content-Type"] == "application/octet-stream"
            assert response.headers["X-A"] == "b"

    async def test_process_request_continues(self) -> None:
        seen: list[Request] = []

        def process_request(connection: ServerConnection, request: Request) -> None:
            assert connection.state.name == "CONNECTING"
            seen.append(request)

        async with serve(echo, "127.0.0.1", 0, process_request=process_request) as server:
            async with connect(uri_of(server) + "room?id=1") as client:
                await client.send("hello")
                assert await client.recv() == "hello"
        (request,) = seen
        assert request.path == "/room?id=1"
        assert request.headers["Upgrade"] == "websocket"

    async def test_async_process_request(self) -> None:
        async def process_request(
            connection: ServerConnection, request: Request
        ) -> Response | None:
            await asyncio.sleep(0)
            if request.headers.get("Authorization") != "Bearer token":
                return connection.respond(401, "who are you?\n")
            return None

        async with serve(echo, "127.0.0.1", 0, process_request=process_request) as server:
            with pytest.raises(InvalidStatus) as raised:
                await connect(uri_of(server))
            assert raised.value.response.status_code == 401
            assert raised.value.response.body == b"who are you?\n"
            headers = {"Authorization": "Bearer token"}
            async with connect(uri_of(server), additional_headers=headers) as client:
                await client.send("hello")
                assert await client.recv() == "hello"

    async def test_process_request_fails(self, caplog: pytest.LogCaptureFixture) -> None:
        def process_request(connection: ServerConnection, request: Request) -> None:
            raise RuntimeError("oops")

        async with serve(echo, "127.0.0.1", 0, process_request=process_request) as server:
            with pytest.raises(InvalidStatus) as raised:
                await connect(uri_of(server))
            assert raised.value.response.status_code == 500
            assert b"oops" not in raised.value.response.body
        (record,) = [r for r in caplog.records if r.getMessage() == "opening handshake failed"]
        assert record.levelno == logging.ERROR
        assert record.exc_info is not None
        assert isinstance(record.exc_info[1], RuntimeError)

    async def test_process_response_changes_headers(self) -> None:
        def process_response(
            connection: ServerConnection, request: Request, response: Response
        ) -> None:
            response.headers["X-Request-Path"] = request.path

        async with serve(echo, "127.0.0.1", 0, process_response=process_response) as server:
            async with connect(uri_of(server) + "here") as client:
                assert client.response is not None
                assert client.response.headers["X-Request-Path"] == "/here"

    async def test_async_process_response_replaces_response(self) -> None:
        async def process_response(
            connection: ServerConnection, request: Request, response: Response
        ) -> Response:
            await asyncio.sleep(0)
            return connection.respond(503, "come back later\n")

        async with serve(echo, "127.0.0.1", 0, process_response=process_response) as server:
            with pytest.raises(InvalidStatus) as raised:
                await connect(uri_of(server))
            assert raised.value.response.status_code == 503
            assert raised.value.response.body == b"come back later\n"

    @pytest.mark.parametrize(
        ("server_header", "expected"),
        [(SERVER_HEADER, SERVER_HEADER), ("test/1.0", "test/1.0"), (None, None)],
    )
    async def test_server_header(self, server_header: str | None, expected: str | None) -> None:
        async with serve(echo, "127.0.0.1", 0, server_header=server_header) as server:
            async with connect(uri_of(server)) as client:
                assert client.response is not None
                assert client.response.headers.get("Server") == expected

    async def test_plain_http_request(self) -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            answer = await http_request(port_of(server), get("/"))
            assert answer.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
            assert b"\r\nUpgrade: websocket\r\n" in answer

    async def test_invalid_request(self) -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            answer = await http_request(port_of(server), b"BLAH\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
            await until(lambda: not server.connections)

    async def test_frames_right_after_request(self) -> None:
        # A client may send frames without waiting for the 101: they wait for the handler.
        async with serve(echo, "127.0.0.1", 0, compression=None) as server:
            protocol = ClientProtocol(parse_uri(uri_of(server)))
            protocol.send_request(protocol.connect())
            (request,) = protocol.data_to_send()
            frame = Frame(OP_TEXT, b"early").serialize(mask=True)
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
            try:
                writer.write(request + frame)
                protocol.receive_data(await reader.readuntil(b"\r\n\r\n"))
                assert protocol.state.name == "OPEN"
                assert await reader.readexactly(7) == Frame(OP_TEXT, b"early").serialize(
                    mask=False
                )
            finally:
                writer.close()
                await writer.wait_closed()

    async def test_client_leaves_during_process_request(self) -> None:
        entered = asyncio.Event()
        leave = asyncio.Event()

        async def process_request(connection: ServerConnection, request: Request) -> None:
            entered.set()
            await leave.wait()

        async with serve(echo, "127.0.0.1", 0, process_request=process_request) as server:
            connecting = asyncio.create_task(connect(uri_of(server)).create_connection())
            await entered.wait()
            (connection,) = server.connections
            connecting.cancel()
            await connection.wait_closed()
            leave.set()
            assert connection.handler_task is not None
            await connection.handler_task
            assert connection.response is None


class TestHandler:
    async def test_return_closes_normally(self) -> None:
        async def handler(connection: ServerConnection) -> None:
            await connection.send("bye")

        async with serve(handler, "127.0.0.1", 0) as server:
            async with connect(uri_of(server)) as client:
                assert await client.recv() == "bye"
                with pytest.raises(ConnectionClosedOK) as raised:
                    await client.recv()
                assert raised.value.code == 1000

    async def test_error_closes_with_1011_and_is_logged(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        async def handler(connection: ServerConnection) -> None:
            raise RuntimeError("handler bug")

        async with serve(handler, "127.0.0.1", 0) as server:
            async with connect(uri_of(server)) as client:
                with pytest.raises(ConnectionClosedError) as raised:
                    await client.recv()
                assert raised.value.code == 1011
                assert raised.value.reason == ""  # the peer learns nothing of it
        (record,) = [r for r in caplog.records if r.getMessage() == "connection handler failed"]
        assert record.name == "socketeer.server"
        assert record.levelno == logging.ERROR
        assert record.exc_info is not None
        assert str(record.exc_info[1]) == "handler bug"

    async def test_own_connection_closed_is_not_an_error(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        async def handler(connection: ServerConnection) -> None:
            await connection.recv()  # raises ConnectionClosedOK, not caught

        async with serve(handler, "127.0.0.1", 0) as server:
            async with connect(uri_of(server)):
                pass
            await until(lambda: not server.connections)
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    async def test_other_connection_closed_is_an_error(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        # A handler that relays to another connection lets its ConnectionClosed escape: this
        # connection must still be closed, and the error reported.
        async def handler(connection: ServerConnection) -> None:
            async with serve(wait_until_closed, "127.0.0.1", 0) as upstream_server:
                async with connect(uri_of(upstream_server)) as upstream:
                    await upstream.close()
                    await upstream.send("relayed")

        async with serve(handler, "127.0.0.1", 0) as server:
            async with connect(uri_of(server)) as client:
                with pytest.raises(ConnectionClosedError) as raised:
                    await client.recv()
                assert raised.value.code == 1011
        (record,) = [r for r in caplog.records if r.getMessage() == "connection handler failed"]
        assert record.exc_info is not None
        assert isinstance(record.exc_info[1], ConnectionClosed)

    async def test_handler_sees_its_connection(self) -> None:
        seen: list[Any] = []

        async def handler(connection: ServerConnection) -> None:
            seen.append(connection.server)
            seen.append(connection.handler_task is asyncio.current_task())
            seen.append(connection in connection.server.connections)

        async with serve(handler, "127.0.0.1", 0) as server:
            async with connect(uri_of(server)) as client:
                await client.wait_closed()
        assert seen == [server, True, True]


class TestClose:
    async def test_close_connections_with_going_away(self) -> None:
        ended = []

        async def handler(connection: ServerConnection) -> None:
            async for _ in connection:
                pass
            ended.append(connection.close_code)

        server = await serve(handler, "127.0.0.1", 0)
        uri = uri_of(server)
        async with connect(uri) as first, connect(uri) as second:
            await until(lambda: len(server.connections) == 2)
            await server.close()
            assert ended == [1001, 1001]
            assert not server.connections
            for client in (first, second):
                with pytest.raises(ConnectionClosedOK) as raised:
                    await client.recv()
                assert raised.value.code == 1001
        with pytest.raises(OSError):
            await connect(uri)

    async def test_close_waits_for_busy_handler(self) -> None:
        # The connection closes with 1001 at once; the handler is left to finish (it is not
        # cancelled), and close() waits for it.
        events = []

        async def handler(connection: ServerConnection) -> None:
            await connection.wait_closed()
            events.append(("closed", connection.close_code))
            await asyncio.sleep(20 * MS)  # e.g. saving state
            events.append(("handler done", None))

        server = await serve(handler, "127.0.0.1", 0)
        async with connect(uri_of(server)):
            await until(lambda: server.connections)
            await server.close()
        assert events == [("closed", 1001), ("handler done", None)]

    async def test_close_aborts_handshakes(self, raw_client: Any) -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            async with raw_client(port_of(server), handshake=False) as (reader, _):
                await until(lambda: server.connections)
                await server.close()
                await assert_dropped(reader.read())

    async def test_close_leaving_connections_open(self) -> None:
        async def handler(connection: ServerConnection) -> None:
            await connection.send("hello")
            await connection.wait_closed()

        server = await serve(handler, "127.0.0.1", 0)
        uri = uri_of(server)
        async with connect(uri) as client:
            assert await client.recv() == "hello"
            closing = server.close(close_connections=False)
            await asyncio.sleep(5 * MS)
            assert not closing.done()  # the handler still runs
            with pytest.raises(OSError):
                await connect(uri)  # but the server stopped listening
            await client.send("still open")
        await closing
        assert client.close_code == 1000

    async def test_close_twice(self) -> None:
        server = await serve(echo, "127.0.0.1", 0)
        first = server.close()
        assert server.close() is first
        await first
        await server.close()

    async def test_serve_forever(self) -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            serving = asyncio.create_task(server.serve_forever())
            async with connect(uri_of(server)) as client:
                await client.send("hello")
                assert await client.recv() == "hello"
            await asyncio.sleep(0)
            assert not serving.done()
            server.close()
            await serving

    async def test_wait_closed(self) -> None:
        server = await serve(echo, "127.0.0.1", 0)
        waiting = asyncio.create_task(server.wait_closed())
        await asyncio.sleep(0)
        assert not waiting.done()
        await server.close()
        await waiting
        await server.wait_closed()  # after the close too

    async def test_connections_and_sockets(self) -> None:
        async with serve(wait_until_closed, "127.0.0.1", 0) as server:
            assert server.connections == set()
            async with connect(uri_of(server)) as client:
                (connection,) = server.connections
                assert isinstance(connection, ServerConnection)
                assert connection.remote_address == client.local_address
                assert server.sockets[0].getsockname()[1] == client.remote_address[1]
            await until(lambda: not server.connections)
        assert server.sockets == ()


class TestOpenTimeout:
    async def test_client_sends_nothing(self, raw_client: Any) -> None:
        async with serve(echo, "127.0.0.1", 0, open_timeout=20 * MS) as server:
            async with raw_client(port_of(server), handshake=False) as (reader, _):
                await assert_dropped(reader.read())
            assert not server.connections

    async def test_client_sends_slowly(self, raw_client: Any) -> None:
        request = get("/", "Upgrade: websocket", "Connection: Upgrade")
        async with serve(echo, "127.0.0.1", 0, open_timeout=50 * MS) as server:
            async with raw_client(port_of(server), handshake=False) as (reader, writer):
                reading = asyncio.create_task(reader.read())
                sent = 0
                while not reading.done():
                    writer.write(request[sent : sent + 1])
                    sent += 1
                    await asyncio.sleep(10 * MS)
                await assert_dropped(reading)
                assert sent < len(request)

    async def test_open_timeout_none(self, raw_client: Any) -> None:
        async with serve(echo, "127.0.0.1", 0, open_timeout=None) as server:
            async with raw_client(port_of(server), handshake=False):
                await until(lambda: server.connections)
                (connection,) = server.connections
                assert connection._open_timer is None

    async def test_handshake_in_time(self) -> None:
        async with serve(echo, "127.0.0.1", 0, open_timeout=20 * MS) as server:
            async with connect(uri_of(server)) as client:
                await asyncio.sleep(40 * MS)  # past open_timeout: the timer is off
                await client.send("hello")
                assert await client.recv() == "hello"


class TestMaxConnections:
    async def test_beyond_the_limit_503(self) -> None:
        async with serve(echo, "127.0.0.1", 0, max_connections=2) as server:
            async with connect(uri_of(server)), connect(uri_of(server)):
                with pytest.raises(InvalidStatus) as info:
                    await connect(uri_of(server))
                response = info.value.response
                assert response.status_code == 503
                assert response.headers["Retry-After"] == "1"
                assert b"limit of 2 connections" in response.body
            await until(lambda: not server.connections)
            async with connect(uri_of(server)) as client:  # room again
                await client.send("hello")
                assert await client.recv() == "hello"

    def test_default_from_the_file_descriptor_limit(self) -> None:
        resource = pytest.importorskip("resource")
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        expected = None if soft == resource.RLIM_INFINITY else max(1, int(soft * 0.9))
        assert connection_limit(None) == expected
        assert connection_limit(5) == 5

    @pytest.mark.parametrize("value", [0, -1, 1.5, True])
    def test_bad_values(self, value: Any) -> None:
        with pytest.raises((TypeError, ValueError), match="max_connections"):
            ServerOptions(max_connections=value)


class TestLogging:
    async def test_one_line_per_connection_opened_and_closed(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="socketeer.server")
        async with serve(echo, "127.0.0.1", 0) as server:
            port = port_of(server)
            addresses = []
            for code in (1000, 4000):
                async with connect(uri_of(server)) as client:
                    addresses.append("{}:{}".format(*client.local_address))
                    await client.close(code)
                await until(lambda: not server.connections)
        assert server_log(caplog, "connection open") == [
            f"connection open from {address}" for address in addresses
        ]
        assert server_log(caplog, "connection closed") == [
            f"connection closed from {addresses[0]} with code 1000",
            f"connection closed from {addresses[1]} with code 4000",
        ]
        (listening,) = server_log(caplog, "server listening")
        assert listening == f"server listening on 127.0.0.1:{port}"

    async def test_no_lines_for_failed_handshakes(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="socketeer.server")
        async with serve(echo, "127.0.0.1", 0, origins=[]) as server:
            with pytest.raises(InvalidStatus):
                await connect(uri_of(server))
            await http_request(port_of(server), get("/"))
            await until(lambda: not server.connections)
        assert server_log(caplog, "connection") == []

    async def test_unix_socket_address(
        self, caplog: pytest.LogCaptureFixture, unix_path: str
    ) -> None:
        caplog.set_level(logging.INFO, logger="socketeer.server")
        async with serve(echo, unix=unix_path) as server:
            async with connect("ws://localhost/", unix=unix_path):
                pass
            await until(lambda: not server.connections)
        assert server_log(caplog, "connection") == [
            "connection open from unix socket",
            "connection closed from unix socket with code 1000",
        ]

    async def test_custom_logger(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="test.server")
        logger = logging.getLogger("test.server")
        async with serve(echo, "127.0.0.1", 0, logger=logger) as server:
            async with connect(uri_of(server)):
                pass
            await until(lambda: not server.connections)
        messages = [r.getMessage() for r in caplog.records if r.name == "test.server"]
        assert [m.split(" from ")[0] for m in messages if m.startswith("connection")] == [
            "connection open",
            "connection closed",
        ]
