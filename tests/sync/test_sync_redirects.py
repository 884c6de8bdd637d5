"""The threaded client follows HTTP redirects like the asyncio one (sync/client.py)."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable

import pytest
from sync_helpers import MS, echo, run_server, uri

from socketeer.client import MAX_REDIRECTS, Redirects, redirect_location, redirect_uri
from socketeer.exceptions import InvalidStatus, InvalidURI, SecurityError
from socketeer.protocol.http11 import Headers, Request, Response
from socketeer.sync import ServerConnection, connect
from socketeer.uri import parse_uri


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


def port_of(server: object) -> int:
    port: int = server.socket.getsockname()[1]  # type: ignore[attr-defined]
    return port


def client_log(caplog: pytest.LogCaptureFixture, prefix: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "socketeer.client" and record.getMessage().startswith(prefix)
    ]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_same_server(status: int) -> None:
    moved = redirecting(lambda r: "/new" if r.path == "/old" else None, status)
    with run_server(echo, process_request=moved) as server:
        with connect(uri(server) + "old") as ws:
            assert ws.request is not None
            assert ws.request.path == "/new"
            ws.send("hello")
            assert ws.recv(timeout=1) == "hello"


def test_other_port_with_http_scheme(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="socketeer.client")
    with run_server(echo) as target:
        location = f"http://127.0.0.1:{port_of(target)}/there"
        with run_server(echo, process_request=redirecting(lambda _: location)) as server:
            with connect(uri(server)) as ws:
                assert ws.remote_address[1] == port_of(target)
                assert ws.request is not None
                assert ws.request.path == "/there"
                assert ws.request.headers["Host"] == f"127.0.0.1:{port_of(target)}"
    assert client_log(caplog, "redirected") == [f"redirected to {location}"]


def test_relative_location() -> None:
    moved = redirecting(lambda r: "next" if r.path == "/a/b" else None)
    with run_server(echo, process_request=moved) as server:
        with connect(uri(server) + "a/b") as ws:
            assert ws.request is not None
            assert ws.request.path == "/a/next"


def test_chain_of_redirects_within_the_limit() -> None:
    hops = {"/1": "/2", "/2": "/3", "/3": "/4"}
    with run_server(echo, process_request=redirecting(lambda r: hops.get(r.path))) as server:
        with connect(uri(server) + "1", max_redirects=3) as ws:
            assert ws.request is not None
            assert ws.request.path == "/4"
        with pytest.raises(SecurityError, match="more than 2 redirects"):
            connect(uri(server) + "1", max_redirects=2)


def test_loop() -> None:
    requests: list[Request] = []

    def loop(connection: ServerConnection, request: Request) -> Response:
        requests.append(request)
        return connection.respond(302, "", headers=[("Location", "/again")])

    with run_server(echo, process_request=loop) as server:
        with pytest.raises(SecurityError, match="more than 3 redirects"):
            connect(uri(server), max_redirects=3)
        assert len(requests) == 4
        requests.clear()
        with pytest.raises(SecurityError):
            connect(uri(server))
        assert len(requests) == MAX_REDIRECTS + 1
        requests.clear()
        with pytest.raises(SecurityError, match="more than 0 redirects"):
            connect(uri(server), max_redirects=0)
        assert len(requests) == 1


def test_secure_to_insecure_refused(
    server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext
) -> None:
    seen: list[Request] = []

    def record(connection: ServerConnection, request: Request) -> None:
        seen.append(request)

    with run_server(echo, process_request=record) as insecure:
        moved = redirecting(lambda _: uri(insecure))
        with run_server(echo, ssl=server_ssl, process_request=moved) as server:
            with pytest.raises(SecurityError, match="wss:// to ws://"):
                connect(uri(server, "wss"), ssl=client_ssl)
    assert seen == []


def test_insecure_to_secure(server_ssl: ssl.SSLContext) -> None:
    # connect() accepts no ssl= for ws://, so the redirect verifies with the system's CAs.
    with run_server(echo, ssl=server_ssl) as secure:
        moved = redirecting(lambda _: uri(secure, "wss"))
        with run_server(echo, process_request=moved) as server:
            with pytest.raises(ssl.SSLCertVerificationError):
                connect(uri(server), open_timeout=1)


def test_secure_to_secure(server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext) -> None:
    with run_server(echo, ssl=server_ssl) as target:
        moved = redirecting(lambda _: f"https://127.0.0.1:{port_of(target)}/tls")
        with run_server(echo, ssl=server_ssl, process_request=moved) as server:
            with connect(uri(server, "wss"), ssl=client_ssl) as ws:
                assert isinstance(ws.socket, ssl.SSLSocket)
                assert ws.remote_address[1] == port_of(target)
                ws.send("secret")
                assert ws.recv(timeout=1) == "secret"


def test_redirect_without_location() -> None:
    def no_location(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(302, "")

    with run_server(echo, process_request=no_location) as server:
        with pytest.raises(InvalidStatus) as raised:
            connect(uri(server))
        assert raised.value.response.status_code == 302


def test_redirect_with_two_locations() -> None:
    def two(connection: ServerConnection, request: Request) -> Response:
        headers = [("Location", "/a"), ("Location", "/b")]
        return connection.respond(302, "", headers=headers)

    with run_server(echo, process_request=two) as server:
        with pytest.raises(InvalidStatus):
            connect(uri(server))


def test_no_redirect_over_a_unix_socket(unix_path: str) -> None:
    # The socket path leads to one server: a redirect has nowhere else to go.
    moved = redirecting(lambda r: "/new" if r.path == "/old" else None)
    with run_server(echo, host=None, unix=unix_path, process_request=moved):
        with pytest.raises(InvalidStatus) as raised:
            connect("ws://localhost/old", unix=unix_path)
        assert raised.value.response.status_code == 302


def test_no_redirect_over_a_given_socket() -> None:
    moved = redirecting(lambda r: "/new" if r.path == "/old" else None)
    with run_server(echo, process_request=moved) as server:
        sock = socket.create_connection(("127.0.0.1", port_of(server)), timeout=1)
        with pytest.raises(InvalidStatus):
            connect(uri(server) + "old", sock=sock)
        assert sock.fileno() == -1  # closed with the connection


def test_invalid_location() -> None:
    with run_server(echo, process_request=redirecting(lambda _: "ftp://127.0.0.1/")) as server:
        with pytest.raises(InvalidURI):
            connect(uri(server))


def test_open_timeout_covers_redirects() -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts in the kernel, never answers
    try:
        location = f"ws://127.0.0.1:{silent.getsockname()[1]}/"
        with run_server(echo, process_request=redirecting(lambda _: location)) as server:
            with pytest.raises(TimeoutError):
                connect(uri(server), open_timeout=100 * MS)
    finally:
        silent.close()


# The shared, sans-I/O half (socketeer/client.py), which both drivers use.


@pytest.mark.parametrize(
    ("base", "location", "expected"),
    [
        ("ws://example.com/a/b", "/c", "ws://example.com/c"),
        ("ws://example.com/a/b", "c?d=e", "ws://example.com/a/c?d=e"),
        ("ws://example.com:8000/", "//other/x", "ws://other/x"),
        ("ws://example.com/", "http://other:81/x", "ws://other:81/x"),
        ("ws://example.com/", "https://other/x", "wss://other/x"),
        ("ws://example.com/", "WSS://other/x", "wss://other/x"),
        ("wss://example.com/", "https://other/x", "wss://other/x"),
        ("wss://example.com:8443/a", "b", "wss://example.com:8443/b"),
        ("ws://[::1]:8000/a/b", "c", "ws://[::1]:8000/a/c"),
    ],
)
def test_redirect_uri(base: str, location: str, expected: str) -> None:
    assert redirect_uri(parse_uri(base), location) == parse_uri(expected)


@pytest.mark.parametrize("location", ["ws://other/", "http://other/", "//[::1]:80/"])
def test_redirect_uri_from_secure_to_insecure(location: str) -> None:
    uri = parse_uri("wss://example.com/")
    if location.startswith("//"):
        assert redirect_uri(uri, location).secure  # same scheme
    else:
        with pytest.raises(SecurityError):
            redirect_uri(uri, location)


def test_redirect_uri_invalid() -> None:
    with pytest.raises(InvalidURI):
        redirect_uri(parse_uri("ws://example.com/"), "ftp://example.com/")


@pytest.mark.parametrize(
    ("status", "locations", "expected"),
    [
        (301, ["/x"], "/x"),
        (308, ["/x"], "/x"),
        (300, ["/x"], None),
        (304, ["/x"], None),
        (302, [], None),
        (302, ["/x", "/y"], None),
        (200, ["/x"], None),
    ],
)
def test_redirect_location(status: int, locations: list[str], expected: str | None) -> None:
    headers = Headers()
    for location in locations:
        headers["Location"] = location
    assert redirect_location(Response(status, "", headers)) == expected


def test_redirects_counts_and_moves() -> None:
    redirects = Redirects(parse_uri("ws://example.com/0"), 2)
    moved = Headers([("Location", "/next")])
    assert redirects.follow(Response(302, "Found", moved)) == "/next"
    assert redirects.uri == parse_uri("ws://example.com/next")
    assert redirects.follow(Response(404, "Not Found", Headers())) is None
    assert redirects.follow(Response(307, "Temporary Redirect", moved)) == "/next"
    assert redirects.count == 2
    with pytest.raises(SecurityError, match="more than 2 redirects"):
        redirects.follow(Response(302, "Found", moved))
    assert redirects.uri == parse_uri("ws://example.com/next")


def test_redirects_disabled() -> None:
    redirects = Redirects(parse_uri("ws://example.com/"), 10, enabled=False)
    assert redirects.follow(Response(302, "Found", Headers([("Location", "/x")]))) is None
    assert redirects.count == 0
