"""HTTP/1.1 messages of the opening handshake: parsed strictly, incrementally and bounded."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from socketeer.exceptions import InvalidMessage, MultipleValuesError, SecurityError
from socketeer.protocol.http11 import (
    MAX_LINE_LENGTH,
    MAX_NUM_HEADERS,
    Headers,
    Request,
    RequestParser,
    Response,
    ResponseParser,
)

REQUEST = (
    b"GET /chat?x=1 HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)

RESPONSE_101 = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"\r\n"
)


def feed_by_byte(parser: RequestParser, data: bytes) -> Request | None:
    buffer = bytearray()
    result = None
    for byte in data:
        assert result is None
        buffer.append(byte)
        result = parser.feed(buffer)
    return result


class TestHeaders:
    def test_case_insensitive_and_ordered(self) -> None:
        headers = Headers([("Set-Cookie", "a=1"), ("set-cookie", "b=2"), ("Host", "x")])
        assert headers["HOST"] == "x"
        assert headers.get_all("SET-COOKIE") == ["a=1", "b=2"]
        assert "host" in headers
        assert 1 not in headers
        assert len(headers) == 2
        assert list(headers.raw_items())[1] == ("set-cookie", "b=2")
        with pytest.raises(MultipleValuesError, match="set-cookie"):
            headers["set-cookie"]
        with pytest.raises(KeyError):
            headers["missing"]
        assert headers.get_all("missing") == []

    def test_serialize(self) -> None:
        headers = Headers({"Host": "x", "Upgrade": "websocket"})
        assert headers.serialize() == b"Host: x\r\nUpgrade: websocket\r\n\r\n"

    def test_delete_update_copy_clear(self) -> None:
        headers = Headers([("A", "1"), ("B", "2"), ("a", "3")])
        del headers["a"]
        assert list(headers.raw_items()) == [("B", "2")]
        copy = headers.copy()
        copy.update({"C": "3"}, [("D", "4")], E="5")
        assert headers == Headers([("B", "2")])
        assert copy.get_all("e") == ["5"]
        copy.clear()
        assert len(copy) == 0
        assert headers != copy
        assert headers.__eq__(object()) is NotImplemented
        assert repr(Headers([("A", "1")])) == "Headers([('A', '1')])"

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("X-Bad", "a\r\nInjected: yes"),
            ("X-Bad", "a\nb"),
            ("X-Bad", "nul\x00"),
            ("Bad Name", "x"),
            ("Bad:Name", "x"),
            ("", "x"),
        ],
    )
    def test_refuses_injection(self, name: str, value: str) -> None:
        with pytest.raises(ValueError, match="invalid"):
            Headers()[name] = value


class TestRequestParser:
    def test_whole(self) -> None:
        request = Request.parse(REQUEST)
        assert request.method == "GET"
        assert request.path == "/chat?x=1"
        assert request.headers["sec-websocket-key"] == "dGhlIHNhbXBsZSBub25jZQ=="
        assert request.serialize() == REQUEST

    def test_byte_by_byte(self) -> None:
        parser = RequestParser()
        request = feed_by_byte(parser, REQUEST)
        assert request == Request.parse(REQUEST)
        assert parser.consumed == len(REQUEST)

    def test_trailing_data_is_left(self) -> None:
        parser = RequestParser()
        buffer = REQUEST + b"\x81\x85frame"
        assert parser.feed(buffer) is not None
        assert buffer[parser.consumed :] == b"\x81\x85frame"

    def test_ows_is_stripped_and_obs_text_kept(self) -> None:
        request = Request.parse(
            b"GET / HTTP/1.1\r\nX-A: \t a b \t\r\nX-B: caf\xe9\r\nX-C:\r\n\r\n"
        )
        assert request.headers["X-A"] == "a b"
        assert request.headers["X-B"] == "café"
        assert request.headers["X-C"] == ""

    @pytest.mark.parametrize(
        "data",
        [
            b"GET / HTTP/1.0\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET ftp://example.com/ HTTP/1.1\r\n\r\n",
            b"GET example.com/ HTTP/1.1\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET /\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost\r\n\r\n",
            b"GET / HTTP/1.1\r\n folded: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
            b"GET /caf\xe9 HTTP/1.1\r\n\r\n",
            b"G\xc3T / HTTP/1.1\r\n\r\n",
        ],
    )
    def test_invalid(self, data: bytes) -> None:
        with pytest.raises(InvalidMessage):
            RequestParser().feed(data)

    @pytest.mark.parametrize(
        ("target", "path"),
        [
            (b"http://example.com/chat?x=1", "/chat?x=1"),
            (b"HTTPS://example.com:8443", "/"),
            (b"http://example.com?x", "/?x"),
        ],
    )
    def test_absolute_form(self, target: bytes, path: str) -> None:
        assert Request.parse(b"GET " + target + b" HTTP/1.1\r\n\r\n").path == path

    def test_whole_parse_needs_exactly_one_request(self) -> None:
        with pytest.raises(InvalidMessage):
            Request.parse(REQUEST[:-2])
        with pytest.raises(InvalidMessage):
            Request.parse(REQUEST + b"x")

    def test_line_too_long_fails_before_the_line_ends(self) -> None:
        parser = RequestParser()
        assert parser.feed(b"GET /" + b"a" * (MAX_LINE_LENGTH - 5)) is None
        with pytest.raises(SecurityError, match="line exceeds limit"):
            parser.feed(b"GET /" + b"a" * (MAX_LINE_LENGTH - 4))

    def test_header_line_too_long(self) -> None:
        data = b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_LINE_LENGTH + b"\r\n\r\n"
        with pytest.raises(SecurityError, match="line exceeds limit"):
            RequestParser().feed(data)

    def test_too_many_headers(self) -> None:
        lines = b"".join(b"X-%d: y\r\n" % i for i in range(MAX_NUM_HEADERS))
        assert RequestParser().feed(b"GET / HTTP/1.1\r\n" + lines + b"\r\n") is not None
        with pytest.raises(SecurityError, match="more than 128 headers"):
            RequestParser().feed(b"GET / HTTP/1.1\r\n" + lines + b"X: y\r\n\r\n")


class TestResponseParser:
    def test_101_has_no_body(self) -> None:
        parser = ResponseParser()
        buffer = RESPONSE_101 + b"\x81\x02hi"
        response = parser.feed(buffer)
        assert response is not None
        assert response.status_code == 101
        assert response.reason_phrase == "Switching Protocols"
        assert response.body == b""
        assert buffer[parser.consumed :] == b"\x81\x02hi"
        assert response.serialize() == RESPONSE_101

    def test_byte_by_byte(self) -> None:
        parser = ResponseParser()
        buffer = bytearray()
        for byte in RESPONSE_101[:-1]:
            buffer.append(byte)
            assert parser.feed(buffer) is None
        buffer += RESPONSE_101[-1:]
        assert parser.feed(buffer) == Response.parse(RESPONSE_101)

    def test_content_length_body(self) -> None:
        data = b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope!"
        parser = ResponseParser()
        assert parser.feed(data[:-1]) is None
        response = parser.feed(data)
        assert response is not None
        assert (response.status_code, response.body) == (404, b"nope!")

    def test_body_until_eof(self) -> None:
        data = b"HTTP/1.1 500 Internal Server Error\r\n\r\nboom"
        parser = ResponseParser()
        assert parser.feed(data) is None
        response = parser.feed(data, eof=True)
        assert response is not None and response.body == b"boom"

    def test_chunked_body_read_raw_until_eof(self) -> None:
        data = b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nno!\r\n0\r\n\r\n"
        response = Response.parse(data)
        assert response.body == b"3\r\nno!\r\n0\r\n\r\n"

    @pytest.mark.parametrize("status", [100, 204, 304])
    def test_no_body_statuses(self, status: int) -> None:
        response = ResponseParser().feed(b"HTTP/1.1 %d X\r\n\r\nleft" % status)
        assert response is not None and response.body == b""

    def test_empty_reason(self) -> None:
        assert Response.parse(b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n").reason_phrase == ""

    def test_eof_too_early(self) -> None:
        with pytest.raises(InvalidMessage, match="while reading HTTP response"):
            ResponseParser().feed(b"HTTP/1.1 101 Switching", eof=True)
        with pytest.raises(InvalidMessage, match="response body"):
            ResponseParser().feed(b"HTTP/1.1 404 X\r\nContent-Length: 9\r\n\r\nab", eof=True)

    @pytest.mark.parametrize(
        "data",
        [
            b"HTTP/1.0 101 Switching Protocols\r\n\r\n",
            b"HTTP/1.1 1010 Oops\r\n\r\n",
            b"HTTP/1.1 099 Low\r\n\r\n",
            b"HTTP/1.1 abc Oops\r\n\r\n",
            b"ICY 200 OK\r\n\r\n",
            b"HTTP/1.1 404 X\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 404 X\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ],
    )
    def test_invalid(self, data: bytes) -> None:
        with pytest.raises(InvalidMessage):
            ResponseParser().feed(data, eof=True)

    def test_body_limit(self) -> None:
        with pytest.raises(SecurityError, match="exceeds limit"):
            ResponseParser(max_body_size=4).feed(b"HTTP/1.1 404 X\r\nContent-Length: 5\r\n\r\n")
        with pytest.raises(SecurityError, match="exceeds limit"):
            ResponseParser(max_body_size=4).feed(b"HTTP/1.1 404 X\r\n\r\n12345")


def outcome(parser: RequestParser | ResponseParser, data: bytes, *, by_byte: bool) -> Any:
    """What a parser makes of ``data``, fed whole or byte by byte: the message and where it
    ends, or the exception and its message."""
    chunks = [data[: i + 1] for i in range(len(data))] if by_byte else [data]
    try:
        for chunk in chunks:
            message = parser.feed(chunk)
            if message is not None:
                return message, parser.consumed
        return None, parser.start_line
    except (InvalidMessage, SecurityError) as exc:
        return type(exc), str(exc)


def head_of(*lines: bytes) -> bytes:
    return b"".join(line + b"\r\n" for line in lines) + b"\r\n"


# Heads read at once when they arrive whole: every one must read as it does line by line.
HEADS = [
    REQUEST,
    REQUEST + b"\x81\x85frame",
    head_of(b"GET / HTTP/1.1"),
    head_of(b"GET / HTTP/1.1", b"X-A: \t a b \t", b"X-B: caf\xe9", b"X-C:", b"X-D: a:b: c"),
    head_of(b"HTTP/1.1 101 Switching Protocols", b"Upgrade: websocket"),
    b"\r\n\r\n",
    b"\r\nHost: x\r\n\r\n",
    head_of(b"GET / HTTP/1.1", b"Host : x"),
    head_of(b"GET / HTTP/1.1", b"Host"),
    head_of(b"GET / HTTP/1.1", b": x"),
    head_of(b"GET / HTTP/1.1", b" folded: x"),
    head_of(b"GET / HTTP/1.1", b"X: a\x00b"),
    head_of(b"GET / HTTP/1.1", b"X: a\rb"),
    head_of(b"GET / HTTP/1.1", b"X: a\nB: c"),
    head_of(b"GET / HTTP/1.1", b"X: a\x7f"),
    head_of(b"GET / HTTP/1.1", b"X\xe9: a"),
    head_of(b"GET / HTTP/1.1", b"Bad Name: a", b"Host: x"),
    head_of(b"GET / HTTP/1.1", *[b"X-%d: y" % i for i in range(MAX_NUM_HEADERS)]),
    head_of(b"GET / HTTP/1.1", *[b"X-%d: y" % i for i in range(MAX_NUM_HEADERS + 1)]),
    head_of(b"GET / HTTP/1.1", b"Bad Name: y", *[b"X: y" for _ in range(MAX_NUM_HEADERS)]),
    # Around the size of the heads read at once.
    head_of(b"GET / HTTP/1.1", b"X: " + b"a" * (MAX_LINE_LENGTH - 19)),
    head_of(b"GET / HTTP/1.1", b"X: " + b"a" * (MAX_LINE_LENGTH - 18)),
    head_of(b"GET / HTTP/1.1", b"X: " + b"a" * (MAX_LINE_LENGTH - 3)),
    head_of(b"GET / HTTP/1.1", b"X: " + b"a" * (MAX_LINE_LENGTH - 2)),
    head_of(b"GET /" + b"a" * (MAX_LINE_LENGTH - 14) + b" HTTP/1.1"),
    head_of(b"GET /" + b"a" * (MAX_LINE_LENGTH - 13) + b" HTTP/1.1"),
]


class TestWholeHead:
    """A head that arrives whole is read at once: the same messages, the same faults, and
    the same limits as line by line (which a head fed byte by byte always gets)."""

    @pytest.mark.parametrize("data", HEADS)
    @pytest.mark.parametrize("parser_type", [RequestParser, ResponseParser])
    def test_same_as_line_by_line(
        self, data: bytes, parser_type: type[RequestParser | ResponseParser]
    ) -> None:
        whole = outcome(parser_type(), data, by_byte=False)
        assert whole == outcome(parser_type(), data, by_byte=True)

    def test_header_names_are_interned(self) -> None:
        first, second = Request.parse(REQUEST), Request.parse(bytes(REQUEST))
        names = [name for name, _ in first.headers.raw_items()]
        assert all(a is b for a, (b, _) in zip(names, second.headers.raw_items(), strict=True))

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        lines=st.lists(
            st.lists(
                st.sampled_from(
                    [
                        b"Host",
                        b"X-A",
                        b":",
                        b" ",
                        b"\t",
                        b"v",
                        b"a b",
                        b"\xe9",
                        b"\x00",
                        b"\x7f",
                        b"\r",
                        b"\n",
                        b"(",
                        b"=",
                        b"GET / HTTP/1.1",
                        b"",
                    ]
                ),
                max_size=6,
            ).map(b"".join),
            max_size=8,
        ),
        start_line=st.sampled_from([b"GET / HTTP/1.1", b"HTTP/1.1 101 OK", b""]),
        trailing=st.sampled_from([b"", b"\r\n", b"\x81\x80"]),
    )
    def test_any_head(self, lines: list[bytes], start_line: bytes, trailing: bytes) -> None:
        data = head_of(start_line, *lines) + trailing
        for parser_type in (RequestParser, ResponseParser):
            whole = outcome(parser_type(), data, by_byte=False)
            assert whole == outcome(parser_type(), data, by_byte=True)
