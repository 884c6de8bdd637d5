"""Clients: connecting, TLS, the opening handshake, redirects, reconnection (asyncio/client.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from socketeer.asyncio.client import (
    MAX_REDIRECTS,
    Backoff,
    ClientConnection,
    connect,
    is_transient,
)
from socketeer.asyncio.server import Server, ServerConnection, serve
from socketeer.exceptions import (
    ConnectionClosedOK,
    InvalidHeader,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
    NegotiationError,
    SecurityError,
)
from socketeer.protocol.client import USER_AGENT
from socketeer.protocol.http11 import Headers, Request, Response
from socketeer.typedefs import Origin, Subprotocol
from timing import MS

# Reconnection delays short enough for tests.
BACKOFF = Backoff(initial=10 * MS, maximum=50 * MS)


def port_of(server: Server) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


def uri_of(server: Server, path: str = "/") -> str:
    return f"ws://127.0.0.1:{port_of(server)}{path}"


async def until(condition: Callable[[], object]) -> None:
    """Wait until ``condition()`` is true; the test's timeout catches a hang."""
    while not condition():
        await asyncio.sleep(MS)


async def echo(connection: ServerConnection) -> None:
    async for message in connection:
        await connection.send(message)


def recording(requests: list[Request]) -> Callable[[ServerConnection, Request], None]:
    """A ``process_request`` that records the requests and lets them through."""

    def process_request(connection: ServerConnection, request: Request) -> None:
        requests.append(request)

    return process_request


def redirecting(
    location: Callable[[Request], str | None], status: int = 302
) -> Callable[[ServerConnection, Request], Response | None]:
    """A ``process_request`` that redirects to ``location(request)`` unless it is None."""

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        target = location(request)
        if target is None:
            return None
        return connection.respond(status, "moved\n", headers=[("Location", target)])

    return process_request


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (for a while, with luck)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port: int = sock.getsockname()[1]
    return port


def client_log(caplog: pytest.LogCaptureFixture, prefix: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "socketeer.client" and record.getMessage().startswith(prefix)
    ]


class TestConnect:
    async def test_await(self) -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            client = await connect(uri_of(server))
            assert isinstance(client, ClientConnection)
            await client.send("hello")
            assert await client.recv() == "hello"
            await client.close()

    async def test_context_manager(self) -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            async with connect(uri_of(server)) as client:
                await client.send("hello")
                assert await client.recv() == "hello"
            assert client.close_code == 1000

    async def test_context_manager_with_error(self) -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            with pytest.raises(RuntimeError):
                async with connect(uri_of(server)) as client:
                    raise RuntimeError
            assert client.close_code == 1000

    async def test_unix(self, unix_path: str) -> None:
        async with serve(echo, unix=unix_path):
            async with connect("ws://localhost/chat", unix=unix_path) as client:
                assert client.request is not None
                assert client.request.headers["Host"] == "localhost"
                await client.send("hello")
                assert await client.recv() == "hello"

    async def test_sock(self) -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            sock = socket.create_connection(("127.0.0.1", port_of(server)))
            async with connect("ws://example.invalid/", sock=sock) as client:
                await client.send("hello")
                assert await client.recv() == "hello"

    async def test_connection_refused(self) -> None:
        with pytest.raises(ConnectionRefusedError):
            await connect(f"ws://127.0.0.1:{closed_port()}/")

    async def test_server_closes_during_handshake(self) -> None:
        async def close_at_once(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        server = await asyncio.start_server(close_at_once, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            with pytest.raises(InvalidMessage):
                await connect(f"ws://127.0.0.1:{port}/")

    async def test_invalid_response(self) -> None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\n"
                b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
            )
            await reader.read()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            with pytest.raises(InvalidHeader, match="Sec-WebSocket-Accept"):
                await connect(f"ws://127.0.0.1:{port}/")

    async def test_cancelled_while_connecting(self, raw_server: Any) -> None:
        async with raw_server(handshake=False) as port:
            connecting = asyncio.create_task(
                connect(f"ws://127.0.0.1:{port}/").create_connection()
            )
            await asyncio.sleep(5 * MS)
            connecting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await connecting

    @pytest.mark.parametrize(
        "uri",
        ["http://localhost/", "ws://", "ws://localhost:99999/", "ws://local host/", "ws://h/#f"],
    )
    async def test_invalid_uri(self, uri: str) -> None:
        with pytest.raises(InvalidURI):
            connect(uri)

    async def test_invalid_arguments(self) -> None:
        with pytest.raises(ValueError, match="unsupported compression"):
            connect("ws://localhost/", compression="zstd")
        with pytest.raises(ValueError, match="ssl"):
            connect("ws://localhost/", ssl=ssl.create_default_context())
        with pytest.raises(ValueError):
            connect("ws://localhost/", subprotocols=[Subprotocol("not a token")])


class TestOpenTimeout:
    async def test_server_never_answers(self, raw_server: Any) -> None:
        async with raw_server(handshake=False) as port:
            with pytest.raises(TimeoutError, match="opening handshake"):
                await connect(f"ws://127.0.0.1:{port}/", open_timeout=20 * MS)

    async def test_no_timeout(self) -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            async with connect(uri_of(server), open_timeout=None) as client:
                await client.send("hello")
                assert await client.recv() == "hello"


class TestTLS:
    async def test_trusted_certificate(
        self, server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext
    ) -> None:
        async with serve(echo, "127.0.0.1", 0, ssl=server_ssl) as server:
            uri = f"wss://127.0.0.1:{port_of(server)}/"
            async with connect(uri, ssl=client_ssl) as client:
                assert client.transport is not None
                assert client.transport.get_extra_info("ssl_object") is not None
                await client.send("secret")
                assert await client.recv() == "secret"

    async def test_untrusted_certificate(self, server_ssl: ssl.SSLContext) -> None:
        # Without ssl=, the client verifies the certificate against the system's CAs.
        async with serve(echo, "127.0.0.1", 0, ssl=server_ssl) as server:
            with pytest.raises(ssl.SSLCertVerificationError):
                await connect(f"wss://127.0.0.1:{port_of(server)}/")

    async def test_server_hostname(
        self, server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext
    ) -> None:
        async with serve(echo, "127.0.0.1", 0, ssl=server_ssl) as server:
            uri = f"wss://127.0.0.1:{port_of(server)}/"
            async with connect(uri, ssl=client_ssl, server_hostname="localhost") as client:
                assert client.transport is not None
                ssl_object = client.transport.get_extra_info("ssl_object")
                assert ssl_object.server_hostname == "localhost"
            with pytest.raises(ssl.SSLCertVerificationError):
                await connect(uri, ssl=client_ssl, server_hostname="other.example")

    async def test_unix(
        self, server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext, unix_path: str
    ) -> None:
        async with serve(echo, unix=unix_path, ssl=server_ssl):
            async with connect("wss://localhost/", unix=unix_path, ssl=client_ssl) as client:
                await client.send("secret")
                assert await client.recv() == "secret"


class TestHandshake:
    async def test_request(self) -> None:
        requests: list[Request] = []
        async with serve(echo, "127.0.0.1", 0, process_request=recording(requests)) as server:
            port = port_of(server)
            async with connect(uri_of(server, "/chat?room=1")):
                pass
        (request,) = requests
        assert request.path == "/chat?room=1"
        assert request.headers["Host"] == f"127.0.0.1:{port}"
        assert request.headers["User-Agent"] == USER_AGENT
        assert "Origin" not in request.headers

    async def test_origin(self) -> None:
        requests: list[Request] = []
        async with serve(echo, "127.0.0.1", 0, process_request=recording(requests)) as server:
            async with connect(uri_of(server), origin=Origin("https://example.com")):
                pass
        assert requests[0].headers["Origin"] == "https://example.com"

    @pytest.mark.parametrize(
        "headers",
        [{"Authorization": "Bearer token", "X-Id": "1"}, [("Authorization", "Bearer token")]],
        ids=["mapping", "pairs"],
    )
    async def test_additional_headers(self, headers: Any) -> None:
        requests: list[Request] = []
        async with serve(echo, "127.0.0.1", 0, process_request=recording(requests)) as server:
            async with connect(uri_of(server), additional_headers=headers):
                pass
        assert requests[0].headers["Authorization"] == "Bearer token"

    @pytest.mark.parametrize("user_agent", ["test/1.0", None])
    async def test_user_agent(self, user_agent: str | None) -> None:
        requests: list[Request] = []
        async with serve(echo, "127.0.0.1", 0, process_request=recording(requests)) as server:
            async with connect(uri_of(server), user_agent_header=user_agent):
                pass
        assert requests[0].headers.get("User-Agent") == user_agent

    async def test_user_info(self) -> None:
        requests: list[Request] = []
        async with serve(echo, "127.0.0.1", 0, process_request=recording(requests)) as server:
            async with connect(f"ws://user:pass@127.0.0.1:{port_of(server)}/"):
                pass
        assert requests[0].headers["Authorization"] == "Basic dXNlcjpwYXNz"

    async def test_subprotocols(self) -> None:
        supported = [Subprotocol("chat")]
        async with serve(echo, "127.0.0.1", 0, subprotocols=supported) as server:
            offer = [Subprotocol("superchat"), Subprotocol("chat")]
            async with connect(uri_of(server), subprotocols=offer) as client:
                assert client.request is not None
                assert client.request.headers["Sec-WebSocket-Protocol"] == "superchat, chat"
                assert client.subprotocol == "chat"
            async with connect(uri_of(server), subprotocols=[Subprotocol("other")]) as client:
                assert client.subprotocol is None

    async def test_subprotocol_not_offered(self) -> None:
        def process_response(
            connection: ServerConnection, request: Request, response: Response
        ) -> None:
            response.headers["Sec-WebSocket-Protocol"] = "unheard-of"

        async with serve(echo, "127.0.0.1", 0, process_response=process_response) as server:
            with pytest.raises(NegotiationError):
                await connect(uri_of(server), subprotocols=[Subprotocol("chat")])

    async def test_compression(self) -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            async with connect(uri_of(server)) as client:
                assert client.request is not None
                offer = client.request.headers["Sec-WebSocket-Extensions"]
                assert offer.startswith("permessage-deflate")
                assert [e.name for e in client.protocol.extensions] == ["permessage-deflate"]
            async with connect(uri_of(server), compression=None) as client:
                assert client.request is not None
                assert "Sec-WebSocket-Extensions" not in client.request.headers
                assert client.protocol.extensions == []
                await client.send("plain " * 100)
                assert await client.recv() == "plain " * 100

    async def test_invalid_status(self) -> None:
        def not_found(connection: ServerConnection, request: Request) -> Response:
            return connection.respond(404, "no such room\n")

        async with serve(echo, "127.0.0.1", 0, process_request=not_found) as server:
            with pytest.raises(InvalidStatus) as raised:
                await connect(uri_of(server))
        assert raised.value.response.status_code == 404
        assert raised.value.response.body == b"no such room\n"
        assert str(raised.value) == "server rejected WebSocket connection: HTTP 404"


class TestRedirects:
    @pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
    async def test_same_server(self, status: int) -> None:
        moved = redirecting(lambda r: "/new" if r.path == "/old" else None, status)
        async with serve(echo, "127.0.0.1", 0, process_request=moved) as server:
            async with connect(uri_of(server, "/old")) as client:
                assert client.request is not None
                assert client.request.path == "/new"
                await client.send("hello")
                assert await client.recv() == "hello"

    async def test_other_port_with_http_scheme(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="socketeer.client")
        async with serve(echo, "127.0.0.1", 0) as target:
            location = f"http://127.0.0.1:{port_of(target)}/there"
            moved = redirecting(lambda _: location)
            async with serve(echo, "127.0.0.1", 0, process_request=moved) as server:
                async with connect(uri_of(server)) as client:
                    assert client.remote_address[1] == port_of(target)
                    assert client.request is not None
                    assert client.request.path == "/there"
                    assert client.request.headers["Host"] == f"127.0.0.1:{port_of(target)}"
        assert client_log(caplog, "redirected") == [f"redirected to {location}"]

    async def test_relative_location(self) -> None:
        moved = redirecting(lambda r: "next" if r.path == "/a/b" else None)
        async with serve(echo, "127.0.0.1", 0, process_request=moved) as server:
            async with connect(uri_of(server, "/a/b")) as client:
                assert client.request is not None
                assert client.request.path == "/a/next"

    async def test_loop(self) -> None:
        requests: list[Request] = []

        def loop(connection: ServerConnection, request: Request) -> Response:
            requests.append(request)
            return connection.respond(302, "", headers=[("Location", "/again")])

        async with serve(echo, "127.0.0.1", 0, process_request=loop) as server:
            with pytest.raises(SecurityError, match="more than 3 redirects"):
                await connect(uri_of(server), max_redirects=3)
            assert len(requests) == 4
            requests.clear()
            with pytest.raises(SecurityError):
                await connect(uri_of(server))
            assert len(requests) == MAX_REDIRECTS + 1

    async def test_secure_to_insecure_refused(
        self, server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext
    ) -> None:
        async with serve(echo, "127.0.0.1", 0) as insecure:
            moved = redirecting(lambda _: uri_of(insecure))
            async with serve(
                echo, "127.0.0.1", 0, ssl=server_ssl, process_request=moved
            ) as server:
                uri = f"wss://127.0.0.1:{port_of(server)}/"
                with pytest.raises(SecurityError, match="wss:// to ws://"):
                    await connect(uri, ssl=client_ssl)
            assert not insecure.connections

    async def test_insecure_to_secure(self, server_ssl: ssl.SSLContext) -> None:
        # connect() accepts no ssl= for ws://, so the redirect verifies with the system's CAs.
        async with serve(echo, "127.0.0.1", 0, ssl=server_ssl) as secure:
            moved = redirecting(lambda _: f"wss://127.0.0.1:{port_of(secure)}/")
            async with serve(echo, "127.0.0.1", 0, process_request=moved) as server:
                with pytest.raises(ssl.SSLCertVerificationError):
                    await connect(uri_of(server))

    async def test_redirect_without_location(self) -> None:
        def no_location(connection: ServerConnection, request: Request) -> Response:
            return connection.respond(302, "")

        async with serve(echo, "127.0.0.1", 0, process_request=no_location) as server:
            with pytest.raises(InvalidStatus) as raised:
                await connect(uri_of(server))
            assert raised.value.response.status_code == 302

    async def test_no_redirect_over_a_unix_socket(self, unix_path: str) -> None:
        # The socket path leads to one server: a redirect has nowhere else to go.
        moved = redirecting(lambda r: "/new" if r.path == "/old" else None)
        async with serve(echo, unix=unix_path, process_request=moved):
            with pytest.raises(InvalidStatus) as raised:
                await connect("ws://localhost/old", unix=unix_path)
            assert raised.value.response.status_code == 302

    async def test_invalid_location(self) -> None:
        moved = redirecting(lambda _: "ftp://127.0.0.1/")
        async with serve(echo, "127.0.0.1", 0, process_request=moved) as server:
            with pytest.raises(InvalidURI):
                await connect(uri_of(server))


@contextlib.asynccontextmanager
async def connections(uri: str, **options: Any) -> AsyncIterator[AsyncIterator[ClientConnection]]:
    """``async for`` over ``connect(uri)``, closed at the end even after a ``break``."""
    iterator = connect(uri, backoff=BACKOFF, **options).__aiter__()
    try:
        yield iterator
    finally:
        await iterator.aclose()  # type: ignore[attr-defined]


class TestReconnect:
    async def test_retries_until_server_starts(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="socketeer.client")
        port = closed_port()

        async def start_server_later() -> Server:
            await until(lambda: len(client_log(caplog, "connection failed")) >= 3)
            server: Server = await serve(echo, "127.0.0.1", port)
            return server

        starting = asyncio.create_task(start_server_later())
        async with connections(f"ws://127.0.0.1:{port}/") as iterator:
            async for client in iterator:
                await client.send("at last")
                assert await client.recv() == "at last"
                break
        server = await starting
        await server.close()
        failures = client_log(caplog, "connection failed")
        assert len(failures) >= 3
        assert all("retrying in" in failure for failure in failures)

    async def test_new_connection_after_close(self) -> None:
        count = 0

        async def handler(connection: ServerConnection) -> None:
            nonlocal count
            count += 1
            await connection.send(f"connection {count}")

        seen: list[ClientConnection] = []
        async with serve(handler, "127.0.0.1", 0) as server:
            async with connections(uri_of(server)) as iterator:
                async for client in iterator:
                    seen.append(client)
                    assert await client.recv() == f"connection {len(seen)}"
                    with pytest.raises(ConnectionClosedOK):
                        await client.recv()
                    if len(seen) == 3:
                        break
        assert len(set(seen)) == 3
        assert all(client.close_code == 1000 for client in seen)

    async def test_connection_closed_after_loop_body(self) -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            async with connections(uri_of(server)) as iterator:
                first = await anext(iterator)
            await first.wait_closed()
            assert first.close_code == 1000

    @pytest.mark.parametrize("status", [400, 403, 404])
    async def test_stops_on_client_error(self, status: int) -> None:
        attempts = 0

        def refuse(connection: ServerConnection, request: Request) -> Response:
            nonlocal attempts
            attempts += 1
            return connection.respond(status, "no\n")

        async with serve(echo, "127.0.0.1", 0, process_request=refuse) as server:
            with pytest.raises(InvalidStatus) as raised:
                async with connections(uri_of(server)) as iterator:
                    async for _ in iterator:
                        pytest.fail("no connection expected")
        assert raised.value.response.status_code == status
        assert attempts == 1

    @pytest.mark.parametrize("status", [429, 500, 503])
    async def test_retries_on_server_error(self, status: int) -> None:
        attempts = 0

        def unavailable_twice(connection: ServerConnection, request: Request) -> Response | None:
            nonlocal attempts
            attempts += 1
            return connection.respond(status, "later\n") if attempts <= 2 else None

        async with serve(echo, "127.0.0.1", 0, process_request=unavailable_twice) as server:
            async with connections(uri_of(server)) as iterator:
                async for client in iterator:
                    await client.send("third time lucky")
                    assert await client.recv() == "third time lucky"
                    break
        assert attempts == 3

    async def test_stops_on_untrusted_certificate(self, server_ssl: ssl.SSLContext) -> None:
        async with serve(echo, "127.0.0.1", 0, ssl=server_ssl) as server:
            with pytest.raises(ssl.SSLCertVerificationError):
                async with connections(f"wss://127.0.0.1:{port_of(server)}/") as iterator:
                    async for _ in iterator:
                        pytest.fail("no connection expected")

    async def test_stops_on_too_many_redirects(self) -> None:
        moved = redirecting(lambda _: "/again")
        async with serve(echo, "127.0.0.1", 0, process_request=moved) as server:
            with pytest.raises(SecurityError):
                async with connections(uri_of(server), max_redirects=1) as iterator:
                    async for _ in iterator:
                        pytest.fail("no connection expected")


class TestBackoff:
    def test_delays(self) -> None:
        backoff = Backoff(initial=1.0, factor=2.0, maximum=5.0)
        for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 5.0), (50, 5.0)]:
            delays = [backoff.delay(attempt) for _ in range(100)]
            assert all(0 <= delay <= ceiling for delay in delays)
            assert max(delays) > ceiling / 2  # jittered over the whole range

    def test_defaults(self) -> None:
        assert Backoff() == Backoff(initial=1.0, factor=1.618, maximum=60.0)

    @pytest.mark.parametrize(
        ("exc", "transient"),
        [
            (ConnectionRefusedError(), True),
            (TimeoutError(), True),
            (InvalidMessage("connection closed"), True),
            (InvalidStatus(Response(503, "Service Unavailable", Headers())), True),
            (InvalidStatus(Response(429, "Too Many Requests", Headers())), True),
            (InvalidStatus(Response(404, "Not Found", Headers())), False),
            (InvalidStatus(Response(301, "Moved Permanently", Headers())), False),
            (SecurityError("too many redirects"), False),
            (InvalidURI("x", "bad"), False),
            (InvalidHeader("Sec-WebSocket-Accept"), False),
            (ssl.SSLCertVerificationError(), False),
            (ValueError(), False),
        ],
    )
    def test_is_transient(self, exc: Exception, transient: bool) -> None:
        assert is_transient(exc) is transient


class TestLogging:
    async def test_one_line_per_connection_opened_and_closed(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="socketeer.client")
        async with serve(echo, "127.0.0.1", 0) as server:
            async with connect(uri_of(server)):
                pass
            async with connect(uri_of(server)) as client:
                await client.close(4000)
        assert client_log(caplog, "connection") == [
            "connection open to 127.0.0.1",
            "connection closed with code 1000",
            "connection open to 127.0.0.1",
            "connection closed with code 4000",
        ]

    async def test_no_lines_for_failed_handshakes(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="socketeer.client")
        async with serve(echo, "127.0.0.1", 0, origins=[]) as server:
            with pytest.raises(InvalidStatus):
                await connect(uri_of(server))
        assert client_log(caplog, "connection") == []
