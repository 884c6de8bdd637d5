"""The opening handshake between ClientProtocol and ServerProtocol (RFC 6455 section 4)."""

from __future__ import annotations

import email.utils
from types import SimpleNamespace

import pytest

from socketeer.exceptions import (
    InvalidHeader,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidState,
    InvalidStatus,
    InvalidUpgrade,
    NegotiationError,
    SecurityError,
)
from socketeer.protocol import ClientProtocol, Request, Response, ServerProtocol, State
from socketeer.protocol import server as server_module
from socketeer.protocol.frames import OP_TEXT, Frame
from socketeer.protocol.http11 import MAX_HEAD_SIZE, MAX_LINE_LENGTH
from socketeer.typedefs import Origin, Subprotocol
from socketeer.uri import parse_uri

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def make_client(uri: str = "ws://example.com/chat", **kwargs: object) -> ClientProtocol:
    client = ClientProtocol(parse_uri(uri), **kwargs)  # type: ignore[arg-type]
    client.key = KEY
    return client


def make_request(**changes: str | None) -> bytes:
    headers = {
        "Host": "example.com",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
    }
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"GET /chat HTTP/1.1\r\n{lines}\r\n".encode()


def server_answer(data: bytes, **kwargs: object) -> tuple[ServerProtocol, Response]:
    server = ServerProtocol(**kwargs)  # type: ignore[arg-type]
    server.receive_data(data)
    [request] = server.events_received()
    assert isinstance(request, Request)
    response = server.accept(request)
    server.send_response(response)
    return server, response


class TestClientRequest:
    def test_connect(self) -> None:
        client = make_client(
            "ws://user:p%40ss@example.com:8080/chat?x=1", origin=Origin("https://o")
        )
        request = client.connect()
        assert request.path == "/chat?x=1"
        assert list(request.headers.raw_items()) == [
            ("Host", "example.com:8080"),
            ("Authorization", "Basic dXNlcjpwQHNz"),
            ("Origin", "https://o"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", "13"),
            ("User-Agent", request.headers["User-Agent"]),
        ]
        assert request.headers["User-Agent"].startswith("Python/3.")

    def test_default_port_and_ipv6_host(self) -> None:
        assert make_client("wss://[::1]/").connect().headers["Host"] == "[::1]"
        assert make_client("ws://[::1]:81/").connect().headers["Host"] == "[::1]:81"

    def test_additional_headers_and_user_agent(self) -> None:
        request = make_client().connect(
            additional_headers={"Cookie": "a=1", "User-Agent": "mine"}, user_agent="ignored"
        )
        assert request.headers["Cookie"] == "a=1"
        assert request.headers.get_all("User-Agent") == ["mine"]
        assert "User-Agent" not in make_client().connect(user_agent=None).headers

    def test_subprotocols_offered(self) -> None:
        client = make_client(subprotocols=[Subprotocol("a"), Subprotocol("b")])
        assert client.connect().headers["Sec-WebSocket-Protocol"] == "a, b"

    def test_invalid_subprotocol(self) -> None:
        with pytest.raises(ValueError):
            make_client(subprotocols=[Subprotocol("not a token")])

    def test_random_keys(self) -> None:
        keys = {ClientProtocol(parse_uri("ws://x/")).key for _ in range(100)}
        assert len(keys) == 100

    def test_send_request_once(self) -> None:
        client = make_client()
        client.send_request(client.connect())
        assert client.data_to_send()[0].startswith(b"GET /chat HTTP/1.1\r\n")
        with pytest.raises(InvalidState):
            client.send_request(client.connect())


class TestClientResponse:
    def connected(self, response: bytes, **kwargs: object) -> ClientProtocol:
        client = make_client(**kwargs)
        client.send_request(client.connect())
        client.data_to_send()
        client.receive_data(response)
        return client

    def response(self, *extra: str, status: str = "101 Switching Protocols") -> bytes:
        lines = [
            f"HTTP/1.1 {status}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {ACCEPT}",
            *extra,
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def test_accepted_with_frames_in_the_same_read(self) -> None:
        client = self.connected(self.response() + b"\x81\x02hi")
        assert client.state is State.OPEN
        events = client.events_received()
        assert isinstance(events[0], Response)
        assert events[1:] == [Frame(OP_TEXT, b"hi")]
        assert client.handshake_exc is None
        assert not client.close_expected()

    def test_accepted_byte_by_byte(self) -> None:
        client = make_client()
        client.send_request(client.connect())
        data = self.response() + b"\x81\x02hi"
        for i in range(len(data)):
            client.receive_data(data[i : i + 1])
        assert [type(e) for e in client.events_received()] == [Response, Frame]

    def assert_refused(self, client: ClientProtocol, exc_type: type[Exception]) -> None:
        assert isinstance(client.handshake_exc, exc_type), repr(client.handshake_exc)
        assert client.state is State.CONNECTING
        assert client.data_to_send() == [b""]
        assert client.close_expected()

    def test_not_101(self) -> None:
        data = b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope"
        client = self.connected(data)
        self.assert_refused(client, InvalidStatus)
        assert str(client.handshake_exc) == "server rejected WebSocket connection: HTTP 404"
        assert client.response is not None and client.response.body == b"nope"

    def test_response_until_eof(self) -> None:
        client = self.connected(b"HTTP/1.1 503 Service Unavailable\r\n\r\nbusy")
        assert client.events_received() == []
        client.receive_eof()
        assert isinstance(client.handshake_exc, InvalidStatus)
        assert client.response is not None and client.response.body == b"busy"

    def test_eof_before_the_response(self) -> None:
        client = self.connected(b"HTTP/1.1 101 Swi")
        client.receive_eof()
        assert isinstance(client.handshake_exc, InvalidMessage)
        assert client.state is State.CLOSED

    def test_malformed_response(self) -> None:
        self.assert_refused(self.connected(b"HTTP/1.1 abc\r\n\r\n"), InvalidMessage)

    def test_huge_response_line(self) -> None:
        client = self.connected(b"HTTP/1.1 101 " + b"x" * MAX_LINE_LENGTH)
        self.assert_refused(client, SecurityError)

    @pytest.mark.parametrize(
        ("drop", "add", "exc_type"),
        [
            ("Upgrade: websocket", "", InvalidUpgrade),
            ("Upgrade: websocket", "Upgrade: h2c", InvalidUpgrade),
            ("Upgrade: websocket", "Upgrade: websocket, h2c", InvalidUpgrade),
            ("Connection: Upgrade", "", InvalidUpgrade),
            ("Connection: Upgrade", "Connection: close", InvalidUpgrade),
            (f"Sec-WebSocket-Accept: {ACCEPT}", "", InvalidHeader),
            (f"Sec-WebSocket-Accept: {ACCEPT}", "Sec-WebSocket-Accept: AAAA", InvalidHeaderValue),
            ("", f"Sec-WebSocket-Accept: {ACCEPT}", InvalidHeader),
            ("", "Sec-WebSocket-Protocol: chat", NegotiationError),
            ("", "Sec-WebSocket-Extensions: x-unknown", NegotiationError),
        ],
    )
    def test_invalid_101(self, drop: str, add: str, exc_type: type[Exception]) -> None:
        data = self.response(add).decode()
        if drop:
            data = data.replace(drop + "\r\n", "", 1)
        self.assert_refused(
            self.connected(data.replace("\r\n\r\n\r\n", "\r\n\r\n").encode()), exc_type
        )

    def test_case_insensitive_tokens(self) -> None:
        data = (
            self.response()
            .replace(b"websocket", b"WebSocket")
            .replace(b"Connection: Upgrade", b"Connection: keep-alive, UPGRADE")
        )
        assert self.connected(data).state is State.OPEN

    def test_subprotocol_chosen(self) -> None:
        offered = [Subprotocol("a"), Subprotocol("b")]
        client = self.connected(self.response("Sec-WebSocket-Protocol: b"), subprotocols=offered)
        assert client.subprotocol == "b"
        client = self.connected(
            self.response("Sec-WebSocket-Protocol: a, b"), subprotocols=offered
        )
        self.assert_refused(client, InvalidHeader)

    def test_no_data_before_request(self) -> None:
        client = make_client()
        client.receive_data(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        assert isinstance(client.handshake_exc, InvalidState)


class TestServer:
    def test_accept(self) -> None:
        server, response = server_answer(make_request() + b"\x81\x82\x00\x00\x00\x00hi")
        assert response.status_code == 101
        assert response.headers["Sec-WebSocket-Accept"] == ACCEPT
        assert response.headers["Upgrade"] == "websocket"
        assert response.headers["Connection"] == "Upgrade"
        assert "Sec-WebSocket-Protocol" not in response.headers
        assert server.state is State.OPEN
        # Frames sent right after the request are processed once the server accepts.
        assert server.events_received() == [Frame(OP_TEXT, b"hi")]
        assert server.data_to_send()[0].startswith(b"HTTP/1.1 101 Switching Protocols\r\n")

    def test_request_byte_by_byte(self) -> None:
        server = ServerProtocol()
        data = make_request()
        for i in range(len(data)):
            server.receive_data(data[i : i + 1])
        assert [type(e) for e in server.events_received()] == [Request]

    def test_data_buffered_until_answer(self) -> None:
        server = ServerProtocol()
        server.receive_data(make_request())
        server.receive_data(b"\x81\x82\x00\x00\x00\x00hi")
        [request] = server.events_received()
        assert isinstance(request, Request)
        server.send_response(server.accept(request))
        assert server.events_received() == [Frame(OP_TEXT, b"hi")]

    def assert_rejected(
        self, data: bytes, status: int, **kwargs: object
    ) -> tuple[ServerProtocol, Response]:
        server, response = server_answer(data, **kwargs)
        assert response.status_code == status, response.body
        assert response.body.startswith(b"failed to open a WebSocket connection: ")
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert response.headers["Content-Length"] == str(len(response.body))
        assert server.handshake_exc is not None
        assert server.data_to_send()[-1] == b""
        assert server.state is State.CONNECTING
        return server, response

    @pytest.mark.parametrize(
        ("changes", "status"),
        [
            ({"Host": None}, 400),
            ({"Upgrade": None}, 426),
            ({"Upgrade": "h2c"}, 426),
            ({"Connection": None}, 426),
            ({"Connection": "keep-alive"}, 426),
            ({"Sec-WebSocket-Key": None}, 400),
            ({"Sec-WebSocket-Key": "short"}, 400),
            ({"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="}, 400),
            ({"Sec-WebSocket-Version": None}, 400),
            ({"Sec-WebSocket-Extensions": "bad;;"}, 400),
            ({"Sec-WebSocket-Protocol": "a b"}, 400),
        ],
    )
    def test_invalid_requests(self, changes: dict[str, str | None], status: int) -> None:
        self.assert_rejected(make_request(**changes), status)

    def test_upgrade_required_says_so(self) -> None:
        _, response = self.assert_rejected(make_request(Upgrade=None), 426)
        assert response.headers["Upgrade"] == "websocket"

    @pytest.mark.parametrize("version", ["8", "14", "13, 8"])
    def test_unsupported_version(self, version: str) -> None:
        _, response = self.assert_rejected(make_request(Sec_WebSocket_Version=version), 426)
        assert response.headers["Sec-WebSocket-Version"] == "13"

    def test_duplicate_key(self) -> None:
        data = make_request().replace(
            b"\r\n\r\n", f"\r\nSec-WebSocket-Key: {KEY}\r\n\r\n".encode()
        )
        self.assert_rejected(data, 400)

    def test_method_not_allowed(self) -> None:
        _, response = self.assert_rejected(make_request().replace(b"GET", b"POST", 1), 405)
        assert response.headers["Allow"] == "GET"

    def test_origins(self) -> None:
        origins = [Origin("https://good"), None]
        server, response = server_answer(make_request(Origin="https://good"), origins=origins)
        assert response.status_code == 101
        server, response = server_answer(make_request(), origins=origins)
        assert response.status_code == 101
        server, response = server_answer(make_request(Origin="HTTPS://Good"), origins=origins)
        assert response.status_code == 101
        self.assert_rejected(make_request(Origin="https://evil"), 403, origins=origins)
        self.assert_rejected(make_request(), 403, origins=[Origin("https://good")])

    def test_subprotocol_selection(self) -> None:
        supported = [Subprotocol("b"), Subprotocol("a")]
        server, response = server_answer(
            make_request(Sec_WebSocket_Protocol="a, b"), subprotocols=supported
        )
        assert response.headers["Sec-WebSocket-Protocol"] == "b"
        assert server.subprotocol == "b"
        _, response = server_answer(
            make_request(Sec_WebSocket_Protocol="c"), subprotocols=supported
        )
        assert response.status_code == 101
        assert "Sec-WebSocket-Protocol" not in response.headers

    def test_select_subprotocol_hook(self) -> None:
        _, response = server_answer(
            make_request(Sec_WebSocket_Protocol="a, b"),
            select_subprotocol=lambda offered, supported: offered[-1],
        )
        assert response.headers["Sec-WebSocket-Protocol"] == "b"
        self.assert_rejected(
            make_request(Sec_WebSocket_Protocol="a"),
            400,
            select_subprotocol=lambda offered, supported: Subprotocol("z"),
        )

    def test_unparsable_request_is_answered_400(self) -> None:
        server = ServerProtocol()
        server.receive_data(b"GET / HTTP/1.0\r\n\r\n")
        assert server.events_received() == []
        [response, eof] = server.data_to_send()
        assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert b"unsupported protocol" in response
        assert eof == b""
        assert isinstance(server.handshake_exc, InvalidMessage)

    def test_oversized_request_line_is_answered_414(self) -> None:
        # RFC 9112 section 3: a request-target too long MUST get 414.
        server = ServerProtocol()
        server.receive_data(b"GET /" + b"a" * (MAX_LINE_LENGTH + 1))
        [response, eof] = server.data_to_send()
        assert response.startswith(b"HTTP/1.1 414 ")  # "URI Too Long" in RFC 9110
        server.receive_data(b"more is ignored")
        assert server.data_to_send() == []

    def test_oversized_header_line_is_answered_431(self) -> None:
        server = ServerProtocol()
        server.receive_data(b"GET / HTTP/1.1\r\nCookie: " + b"a" * MAX_LINE_LENGTH)
        [response, eof] = server.data_to_send()
        assert response.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")

    def test_oversized_head_is_answered_431(self) -> None:
        # Lines within their limit, but too many bytes of them in all.
        server = ServerProtocol()
        line = b"X-Filler: " + b"a" * 8000 + b"\r\n"
        server.receive_data(b"GET / HTTP/1.1\r\n" + line * (MAX_HEAD_SIZE // len(line) + 1))
        [response, eof] = server.data_to_send()
        assert response.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
        assert b"headers exceed limit of 65536 bytes" in response

    def test_head_at_its_limit_is_accepted(self) -> None:
        start = b"GET / HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
        end = b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        end += b"Sec-WebSocket-Version: 13\r\n\r\n"
        filler = MAX_HEAD_SIZE - len(start) - len(end)
        lines = []
        while filler > 0:
            size = min(filler, 8000)
            lines.append(b"X-Filler: " + b"a" * (size - 12) + b"\r\n")
            filler -= size
        head = start + b"".join(lines) + end
        assert len(head) == MAX_HEAD_SIZE
        server = ServerProtocol()
        server.receive_data(head)
        [request] = server.events_received()
        assert isinstance(request, Request)

    def test_eof_during_request(self) -> None:
        server = ServerProtocol()
        server.receive_data(b"GET / HT")
        server.receive_eof()
        assert isinstance(server.handshake_exc, InvalidMessage)
        assert server.state is State.CLOSED

    def test_reject_for_plain_http(self) -> None:
        server = ServerProtocol(server_header=None)
        server.receive_data(make_request())
        response = server.reject(404, "no such room")
        assert (response.status_code, response.reason_phrase) == (404, "Not Found")
        assert response.body == b"no such room\n"
        assert "Server" not in response.headers
        server.send_response(response)
        assert server.data_to_send()[-1] == b""
        with pytest.raises(InvalidState):
            server.send_response(response)

    def test_response_headers(self) -> None:
        _, response = server_answer(make_request())
        assert response.headers["Server"].startswith("socketeer/")
        assert response.headers["Date"].endswith(" GMT")


class TestDate:
    """RFC 9110 section 6.6.1: the ``Date`` header, formatted once per second."""

    @pytest.fixture
    def clock(self, monkeypatch: pytest.MonkeyPatch) -> list[float]:
        now = [784111777.0]  # RFC 9110's example: Sun, 06 Nov 1994 08:49:37 GMT
        monkeypatch.setattr(server_module, "time", SimpleNamespace(time=lambda: now[0]))
        monkeypatch.setattr(server_module, "_date", (0, ""))
        return now

    def test_imf_fixdate(self, clock: list[float]) -> None:
        assert server_module._http_date() == "Sun, 06 Nov 1994 08:49:37 GMT"
        clock[0] = 784111778.999
        assert server_module._http_date() == "Sun, 06 Nov 1994 08:49:38 GMT"

    def test_formatted_once_per_second(
        self, clock: list[float], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        formatted: list[float] = []
        original = email.utils.formatdate

        def formatdate(timeval: float, usegmt: bool) -> str:
            formatted.append(timeval)
            return original(timeval, usegmt=usegmt)

        monkeypatch.setattr(server_module.email.utils, "formatdate", formatdate)
        for now in [784111777.0, 784111777.5, 784111777.999, 784111778.0, 784111778.2]:
            clock[0] = now
            server_module._http_date()
        assert formatted == [784111777, 784111778]

    def test_every_response_has_it(self, clock: list[float]) -> None:
        _, response = server_answer(make_request())
        assert response.headers["Date"] == "Sun, 06 Nov 1994 08:49:37 GMT"
        clock[0] += 1
        rejection = ServerProtocol().reject(404, "no such room")
        assert rejection.headers["Date"] == "Sun, 06 Nov 1994 08:49:38 GMT"


class TestEndToEnd:
    def test_client_and_server(self) -> None:
        client = make_client(subprotocols=[Subprotocol("chat")])
        server = ServerProtocol(subprotocols=[Subprotocol("chat")])
        client.send_request(client.connect())
        for data in client.data_to_send():
            server.receive_data(data)
        [request] = server.events_received()
        assert isinstance(request, Request)
        server.send_response(server.accept(request))
        for data in server.data_to_send():
            client.receive_data(data)
        assert client.state is server.state is State.OPEN
        assert client.subprotocol == server.subprotocol == "chat"
        assert isinstance(client.response, Response)
        assert client.response.headers == server.response.headers  # type: ignore[union-attr]
