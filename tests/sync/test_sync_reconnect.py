"""``for ws in reconnect(uri)``: the threaded twin of ``async for ws in connect(uri)``."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sync_helpers import MS, echo, run_server, uri

from socketeer.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatus,
    InvalidURI,
    SecurityError,
)
from socketeer.protocol.base import State
from socketeer.protocol.http11 import Request, Response
from socketeer.sync import Backoff, ClientConnection, Server, ServerConnection, reconnect, serve

# Reconnection delays short enough for tests.
BACKOFF = Backoff(initial=10 * MS, maximum=50 * MS)


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


def test_invalid_arguments_raise_at_once() -> None:
    with pytest.raises(InvalidURI):
        reconnect("http://localhost/")
    with pytest.raises(ValueError):
        reconnect("ws://localhost/", compression="brotli")
    with pytest.raises(ValueError):
        reconnect("ws://localhost/", ssl=ssl.create_default_context())
    with pytest.raises(ValueError):
        reconnect("ws://localhost/", write_limit=-1)


def test_yields_open_connections_and_closes_them() -> None:
    with run_server(echo) as server:
        seen: list[ClientConnection] = []
        for ws in reconnect(uri(server), backoff=BACKOFF):
            assert ws.state is State.OPEN
            ws.send(f"hello {len(seen)}")
            assert ws.recv(timeout=1) == f"hello {len(seen)}"
            seen.append(ws)
            if len(seen) == 3:
                break
        # Each turn of the loop closes the previous connection; leaving it, the last one.
        for ws in seen:
            assert ws.wait_closed(1000 * MS)
            assert ws.close_code == 1000
        assert len(set(seen)) == 3


def test_new_connection_after_server_closes() -> None:
    count = 0

    def handler(ws: ServerConnection) -> None:
        nonlocal count
        count += 1
        ws.send(f"connection {count}")

    seen: list[ClientConnection] = []
    with run_server(handler) as server:
        for ws in reconnect(uri(server), backoff=BACKOFF):
            seen.append(ws)
            assert ws.recv(timeout=1) == f"connection {len(seen)}"
            with pytest.raises(ConnectionClosedOK):
                ws.recv(timeout=1)
            if len(seen) == 3:
                break
    assert all(ws.close_code == 1000 for ws in seen)


def test_new_connection_after_server_drops_it() -> None:
    def drop(ws: ServerConnection) -> None:
        ws.send("bye")
        ws.socket.shutdown(socket.SHUT_RDWR)  # no closing handshake
        ws.wait_closed(1000 * MS)

    seen: list[ClientConnection] = []
    with run_server(drop) as server:
        for ws in reconnect(uri(server), backoff=BACKOFF):
            seen.append(ws)
            try:
                for message in ws:
                    assert message == "bye"
            except ConnectionClosed as exc:
                assert isinstance(exc, ConnectionClosedError)
                if len(seen) == 3:
                    break
                continue
            pytest.fail("the connection should end abnormally")
    assert all(ws.close_code == 1006 for ws in seen)


def test_retries_until_server_starts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="socketeer.client")
    port = closed_port()
    servers: list[Server] = []
    threads: list[threading.Thread] = []
    attempts: list[int] = []

    class StartServerOnThirdFailure(Backoff):
        def delay(self, attempt: int) -> float:
            attempts.append(attempt)
            if attempt == 2:
                server = serve(echo, "127.0.0.1", port)
                servers.append(server)
                threads.append(threading.Thread(target=server.serve_forever))
                threads[0].start()
            return super().delay(attempt)

    try:
        for ws in reconnect(f"ws://127.0.0.1:{port}/", backoff=StartServerOnThirdFailure(MS)):
            ws.send("at last")
            assert ws.recv(timeout=1) == "at last"
            break
    finally:
        for server in servers:
            server.shutdown()
        for thread in threads:
            thread.join(2000 * MS)
    assert attempts == [0, 1, 2]
    failures = client_log(caplog, "connection failed")
    assert len(failures) == 3
    assert all("retrying in" in failure for failure in failures)


def test_refused_with_503_then_accepted_and_backoff_starts_again() -> None:
    requests = 0
    attempts: list[int] = []

    def unavailable(connection: ServerConnection, request: Request) -> Response | None:
        nonlocal requests
        requests += 1
        # Two refusals, a connection, two refusals, a connection.
        return None if requests % 3 == 0 else connection.respond(503, "later\n")

    class Recording(Backoff):
        def delay(self, attempt: int) -> float:
            attempts.append(attempt)
            return super().delay(attempt)

    seen = 0
    with run_server(echo, process_request=unavailable) as server:
        for ws in reconnect(uri(server), backoff=Recording(MS, 2, 10 * MS)):
            ws.send("lucky")
            assert ws.recv(timeout=1) == "lucky"
            seen += 1
            if seen == 2:
                break
    assert requests == 6
    assert attempts == [0, 1, 0, 1]


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_retries_on_server_error(status: int) -> None:
    attempts = 0

    def unavailable_twice(connection: ServerConnection, request: Request) -> Response | None:
        nonlocal attempts
        attempts += 1
        return connection.respond(status, "later\n") if attempts <= 2 else None

    with run_server(echo, process_request=unavailable_twice) as server:
        for ws in reconnect(uri(server), backoff=BACKOFF):
            ws.send("third time lucky")
            assert ws.recv(timeout=1) == "third time lucky"
            break
    assert attempts == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_stops_on_client_error(status: int) -> None:
    attempts = 0

    def refuse(connection: ServerConnection, request: Request) -> Response:
        nonlocal attempts
        attempts += 1
        return connection.respond(status, "no\n")

    with run_server(echo, process_request=refuse) as server:
        with pytest.raises(InvalidStatus) as raised:
            for _ in reconnect(uri(server), backoff=BACKOFF):
                pytest.fail("no connection expected")
    assert raised.value.response.status_code == status
    assert attempts == 1


def test_stops_after_a_connection_then_403() -> None:
    attempts = 0

    def once(connection: ServerConnection, request: Request) -> Response | None:
        nonlocal attempts
        attempts += 1
        return None if attempts == 1 else connection.respond(403, "no more\n")

    seen: list[ClientConnection] = []
    with run_server(echo, process_request=once) as server:
        with pytest.raises(InvalidStatus):
            for ws in reconnect(uri(server), backoff=BACKOFF):
                seen.append(ws)
                ws.close()
    assert len(seen) == 1
    assert attempts == 2


def test_stops_on_untrusted_certificate(server_ssl: ssl.SSLContext) -> None:
    with run_server(echo, ssl=server_ssl) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            for _ in reconnect(uri(server, "wss"), backoff=BACKOFF, open_timeout=1):
                pytest.fail("no connection expected")


def test_stops_on_too_many_redirects() -> None:
    def moved(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(302, "", headers=[("Location", "/again")])

    with run_server(echo, process_request=moved) as server:
        with pytest.raises(SecurityError):
            for _ in reconnect(uri(server), backoff=BACKOFF, max_redirects=1):
                pytest.fail("no connection expected")


def test_follows_redirects() -> None:
    def moved(connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/old":
            return connection.respond(301, "", headers=[("Location", "/new")])
        return None

    with run_server(echo, process_request=moved) as server:
        for ws in reconnect(uri(server) + "old", backoff=BACKOFF):
            assert ws.request is not None
            assert ws.request.path == "/new"
            break


def test_exception_in_body_leaves_the_loop_and_closes() -> None:
    connections: list[ClientConnection] = []
    with run_server(echo) as server:
        with pytest.raises(ZeroDivisionError):
            for ws in reconnect(uri(server), backoff=BACKOFF):
                connections.append(ws)
                1 / 0  # noqa: B018
    (ws,) = connections
    assert ws.wait_closed(1000 * MS)
    assert ws.close_code == 1000


def test_iterator_close_closes_the_connection() -> None:
    with run_server(echo) as server:
        iterator: Iterator[ClientConnection] = iter(reconnect(uri(server), backoff=BACKOFF))
        first = next(iterator)
        iterator.close()  # type: ignore[attr-defined]
        assert first.wait_closed(1000 * MS)
        assert first.close_code == 1000


def test_options_apply_to_every_connection(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Any] = []

    def handler(ws: ServerConnection) -> None:
        seen.append((ws.subprotocol, ws.request.headers.get("X-Token")))  # type: ignore[union-attr]

    with run_server(handler, subprotocols=["chat"]) as server:
        count = 0
        for ws in reconnect(
            uri(server),
            backoff=BACKOFF,
            subprotocols=["chat"],
            additional_headers={"X-Token": "t"},
            compression=None,
            write_limit=1024,
        ):
            assert ws.options.write_limit == 1024
            assert ws.response is not None
            assert "Sec-WebSocket-Extensions" not in ws.response.headers
            count += 1
            if count == 2:
                break
    assert seen == [("chat", "t"), ("chat", "t")]
