"""Conformance of the sans-I/O core to RFC 6455, sections 4 to 7, one class per section.

Every "MUST", "MUST NOT" and "SHOULD" of those sections that binds an endpoint is checked by at
least one test, whose docstring quotes the sentence. Tests drive :class:`ClientProtocol`,
:class:`ServerProtocol` and ``Protocol(side, state=OPEN)`` with bytes only, and check the bytes
they write exactly: the masking key is fixed (the one of section 5.7's examples) and expected
frames are built by :func:`wire`, an encoder written here from the RFC's figure, independent of
the code under test. Incoming frames are built with :meth:`Frame.serialize`, which
:class:`TestSection5_2BaseFramingProtocol` checks against :func:`wire`. Parsers are fed whole
and byte by byte (the ``feed`` fixture), and with trailing data where it matters.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from collections.abc import Callable, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import socketeer.protocol.base as base_module
import socketeer.protocol.client as client_module
from socketeer.exceptions import (
    InvalidHeader,
    InvalidMessage,
    InvalidState,
    InvalidStatus,
    InvalidUpgrade,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
)
from socketeer.protocol import (
    CLIENT,
    SERVER,
    ClientProtocol,
    Frame,
    Opcode,
    Protocol,
    Request,
    Response,
    ServerProtocol,
    Side,
    State,
)
from socketeer.protocol.extensions.base import (
    ClientExtensionFactory,
    Extension,
    ServerExtensionFactory,
)
from socketeer.protocol.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from socketeer.typedefs import ExtensionName, ExtensionParameter, Origin, Subprotocol
from socketeer.uri import parse_uri

CONNECTING = State.CONNECTING
OPEN = State.OPEN
CLOSING = State.CLOSING
CLOSED = State.CLOSED

OP_CONT = Opcode.CONT
OP_TEXT = Opcode.TEXT
OP_BINARY = Opcode.BINARY
OP_CLOSE = Opcode.CLOSE
OP_PING = Opcode.PING
OP_PONG = Opcode.PONG

MASK_KEY = b"\x37\xfa\x21\x3d"
"""The masking key of the examples of RFC 6455 section 5.7; every frame a client sends uses it."""

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
"""The |Sec-WebSocket-Key| of RFC 6455 sections 1.3 and 4.2.2."""

RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
"""The |Sec-WebSocket-Accept| answering :data:`RFC_KEY` in RFC 6455 sections 1.3 and 4.2.2."""

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

SIDES = pytest.mark.parametrize("side", [CLIENT, SERVER], ids=["client", "server"])

# Close codes that may appear in a close frame (RFC 6455 sections 7.4.1 and 7.4.2, and the IANA
# registry for 1012-1014), and a sample of those that may not.
VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]
VALID_CLOSE_CODES += [3000, 3999, 4000, 4999]
INVALID_CLOSE_CODES = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999]
INVALID_CLOSE_CODES += [5000, 65535]

# Byte sequences that cannot be UTF-8 however they continue (RFC 3629): a stray continuation
# byte, bytes that never appear, overlong forms, a surrogate, a code point above U+10FFFF.
INVALID_UTF8_PREFIXES = [
    b"\x80",
    b"\xbf",
    b"\xc0",
    b"\xc1",
    b"\xf5",
    b"\xff",
    b"\xe0\x80",
    b"\xf0\x80",
    b"\xed\xa0",
    b"\xf4\x90",
    b"caf\xc3\x28",
]


# Wire format, written from RFC 6455 section 5.2, independently of the code under test.


def wire(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask_key: bytes | None = None,
) -> bytes:
    """Encode a frame as RFC 6455 section 5.2 draws it, with the minimal length encoding.

    ``rsv`` is the value of the three RSV bits, e.g. ``0b100`` for RSV1.
    """
    first_byte = (0x80 if fin else 0) | rsv << 4 | opcode
    mask_bit = 0x00 if mask_key is None else 0x80
    size = len(payload)
    if size < 126:
        header = bytes([first_byte, mask_bit | size])
    elif size < 1 << 16:
        header = bytes([first_byte, mask_bit | 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([first_byte, mask_bit | 127]) + size.to_bytes(8, "big")
    if mask_key is None:
        return header + payload
    masked = bytes(byte ^ mask_key[i % 4] for i, byte in enumerate(payload))
    return header + mask_key + masked


def decode_frames(data: bytes, *, masked: bool) -> list[tuple[int, bytes]]:
    """Split bytes written by an endpoint into ``(first_byte, unmasked payload)`` pairs.

    Checks that every frame is masked (``masked``) or not, and that ``data`` ends on a frame
    boundary.
    """
    frames = []
    pos = 0
    while pos < len(data):
        first_byte, second_byte = data[pos], data[pos + 1]
        assert bool(second_byte & 0x80) is masked, f"mask bit of frame at {pos}"
        size = second_byte & 0x7F
        pos += 2
        if size == 126:
            size = int.from_bytes(data[pos : pos + 2], "big")
            pos += 2
        elif size == 127:
            size = int.from_bytes(data[pos : pos + 8], "big")
            pos += 8
        key = b"\x00\x00\x00\x00"
        if masked:
            key = data[pos : pos + 4]
            pos += 4
        payload = bytes(byte ^ key[i % 4] for i, byte in enumerate(data[pos : pos + size]))
        assert len(payload) == size, "truncated frame"
        pos += size
        frames.append((first_byte, payload))
    return frames


def close_payload(code: int, reason: bytes = b"") -> bytes:
    """The body of a close frame: a 2-byte code in network byte order, then the reason."""
    return struct.pack("!H", code) + reason


def sent_by(side: Side, opcode: int, payload: bytes = b"", *, fin: bool = True) -> bytes:
    """The exact bytes ``side`` must write for a frame: masked with MASK_KEY by a client."""
    return wire(opcode, payload, fin=fin, mask_key=MASK_KEY if side is CLIENT else None)


def from_peer(side: Side, frame: Frame, mask_key: bytes = MASK_KEY) -> bytes:
    """The bytes the peer of ``side`` writes for ``frame``: masked when the peer is a client."""
    return frame.serialize(mask=side is SERVER, mask_key=mask_key)


def raw_from_peer(side: Side, opcode: int, payload: bytes = b"", **kwargs: int | bool) -> bytes:
    """Like :func:`from_peer` for frames that :class:`Frame` cannot hold (reserved opcodes)."""
    mask_key = MASK_KEY if side is SERVER else None
    return wire(opcode, payload, mask_key=mask_key, **kwargs)  # type: ignore[arg-type]


def open_protocol(side: Side, **kwargs: int | None) -> Protocol:
    """A protocol past the opening handshake, to speak frames right away."""
    return Protocol(side, state=OPEN, **kwargs)  # type: ignore[arg-type]


# Assertions, named with the RFC's words.


def take_output(protocol: Protocol) -> tuple[bytes, bool]:
    """Everything ``protocol`` asked to write, and whether it asked to close TCP after it."""
    writes = protocol.data_to_send()
    eof = b"" in writes
    if eof:
        assert writes.index(b"") == len(writes) - 1, "data written after the end of stream"
    return b"".join(writes), eof


def assert_frames_sent(protocol: Protocol, *frames: bytes, eof: bool = False) -> None:
    """``protocol`` wrote exactly ``frames``, then closed TCP if and only if ``eof``."""
    assert take_output(protocol) == (b"".join(frames), eof)


def assert_nothing_sent(protocol: Protocol) -> None:
    assert protocol.data_to_send() == []


_CAUSES: dict[int, type[Exception]] = {
    1002: ProtocolError,
    1007: UnicodeDecodeError,
    1009: PayloadTooBig,
}


def assert_connection_failing(protocol: Protocol, code: int) -> list[object]:
    """``protocol`` _Failed the WebSocket Connection_ (section 7.1.7) because of its peer.

    It sent one close frame with ``code`` and a UTF-8 reason, masked by a client; a server
    also closed TCP, a client waits for the server to do it (section 7.1.1); the cause is in
    ``parser_exc``; and nothing that arrives afterwards is processed, not even a close frame.

    Returns:
        The events received before the failure.
    """
    data, eof = take_output(protocol)
    [(first_byte, payload)] = decode_frames(data, masked=protocol.side is CLIENT)
    assert first_byte == 0x88
    assert int.from_bytes(payload[:2], "big") == code
    payload[2:].decode()
    assert eof is (protocol.side is SERVER)
    assert protocol.state is CLOSING
    assert protocol.close_expected()
    assert isinstance(protocol.parser_exc, _CAUSES[code])
    events = protocol.events_received()
    protocol.receive_data(from_peer(protocol.side, Frame(OP_CLOSE, close_payload(1000))))
    protocol.receive_data(from_peer(protocol.side, Frame(OP_PING, b"ping")))
    assert protocol.events_received() == []
    assert_nothing_sent(protocol)
    assert protocol.close_rcvd is None
    return events


def assert_closing_handshake_complete(protocol: Protocol) -> None:
    """Both close frames passed: the server closed TCP, the client waits for it (7.1.1)."""
    if protocol.side is SERVER:
        assert protocol.eof_sent
    else:
        assert not protocol.eof_sent
    assert protocol.close_expected()


@pytest.fixture(autouse=True)
def fixed_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients mask every frame with MASK_KEY, so that what they write is deterministic."""
    monkeypatch.setattr(base_module, "new_mask", lambda: MASK_KEY)


Feed = Callable[[Protocol, bytes], None]


@pytest.fixture(params=["whole", "byte_by_byte"])
def feed(request: pytest.FixtureRequest) -> Feed:
    """Feed bytes to a protocol in one piece, or one byte at a time."""

    def feed(protocol: Protocol, data: bytes) -> None:
        if request.param == "whole":
            protocol.receive_data(data)
        else:
            for i in range(len(data)):
                protocol.receive_data(data[i : i + 1])

    return feed


# An extension that gives a meaning to RSV1, for the rules that depend on negotiation.


class Rsv1Extension(Extension):
    """``x-rsv1``: RSV1 marks frames for it; decoding clears the bit and keeps the data."""

    name = ExtensionName("x-rsv1")

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        return frame._replace(rsv1=False)

    def encode(self, frame: Frame, *, compress: bool = True) -> Frame:
        return frame


class Rsv1ClientFactory(ClientExtensionFactory):
    name = ExtensionName("x-rsv1")

    def get_request_params(self) -> list[ExtensionParameter]:
        return []

    def process_response_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> Extension:
        return Rsv1Extension()


class Rsv1ServerFactory(ServerExtensionFactory):
    name = ExtensionName("x-rsv1")

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], Extension]:
        return [], Rsv1Extension()


# Opening handshake helpers.


@pytest.fixture
def rfc_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients send the |Sec-WebSocket-Key| of the RFC's example."""
    monkeypatch.setattr(client_module, "generate_key", lambda: RFC_KEY)


@pytest.fixture
def fixed_date(monkeypatch: pytest.MonkeyPatch) -> str:
    """Servers send a fixed |Date|, so that their responses are deterministic."""
    date = "Sun, 06 Nov 1994 08:49:37 GMT"
    monkeypatch.setattr("socketeer.protocol.server._http_date", lambda: date)
    return date


def make_client(uri: str = "ws://server.example.com/chat", **kwargs: object) -> ClientProtocol:
    """A client that sent its opening handshake (and whose output was drained)."""
    client = ClientProtocol(parse_uri(uri), **kwargs)  # type: ignore[arg-type]
    client.send_request(client.connect(user_agent=None))
    client.data_to_send()
    return client


def http_head(start_line: str, headers: Sequence[str]) -> bytes:
    return (start_line + "\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode()


def parse_head(data: bytes) -> tuple[str, list[tuple[str, str]]]:
    """The start line and the (name, value) header pairs of an HTTP head, in order."""
    head, separator, body = data.partition(b"\r\n\r\n")
    assert separator
    start_line, *lines = head.decode("latin-1").split("\r\n")
    pairs = []
    for line in lines:
        name, colon, value = line.partition(":")
        assert colon
        pairs.append((name, value.strip()))
    return start_line, pairs


def header_values(pairs: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in pairs if key.lower() == name.lower()]


ACCEPT_HEADERS = (
    "Upgrade: websocket",
    "Connection: Upgrade",
    f"Sec-WebSocket-Accept: {RFC_ACCEPT}",
)


def response_101(*headers: str) -> bytes:
    """A server's 101 for :data:`RFC_KEY`; ``headers`` replace the default ones."""
    return http_head("HTTP/1.1 101 Switching Protocols", headers or ACCEPT_HEADERS)


def assert_handshake_failed(client: ClientProtocol, exc_type: type[Exception]) -> None:
    """The client _Failed the WebSocket Connection_ before it was established (section 4.1).

    The connection never opens; no close frame is sent (there is no WebSocket connection to
    close yet), the client closes TCP, and nothing that arrives afterwards is processed.
    """
    assert client.state is not OPEN
    assert isinstance(client.handshake_exc, exc_type)
    assert client.data_to_send() == [b""]
    client.events_received()
    client.receive_data(wire(OP_TEXT, b"Hello"))
    assert client.events_received() == []
    assert_nothing_sent(client)


REQUEST_HEADERS = (
    "Host: server.example.com",
    "Upgrade: websocket",
    "Connection: Upgrade",
    f"Sec-WebSocket-Key: {RFC_KEY}",
    "Sec-WebSocket-Version: 13",
)


def http_request(
    *,
    drop: Sequence[str] = (),
    add: Sequence[str] = (),
    request_line: str = "GET /chat HTTP/1.1",
) -> bytes:
    """A client's opening handshake; ``drop`` removes headers by name, ``add`` appends lines."""
    dropped = {name.lower() for name in drop}
    headers = [h for h in REQUEST_HEADERS if h.partition(":")[0].lower() not in dropped]
    return http_head(request_line, [*headers, *add])


def server_answer(data: bytes, **kwargs: object) -> tuple[ServerProtocol, Response]:
    """Feed a request to a server, let it check it with ``accept`` and send the answer."""
    server = ServerProtocol(**kwargs)  # type: ignore[arg-type]
    server.receive_data(data)
    [request] = server.events_received()
    assert isinstance(request, Request)
    response = server.accept(request)
    server.send_response(response)
    return server, response


def assert_handshake_rejected(
    server: ServerProtocol, response: Response, statuses: Sequence[int] = (400,)
) -> None:
    """The server refused the upgrade with an HTTP error, then closed TCP (section 7.2.2)."""
    assert response.status_code in statuses
    assert server.state is not OPEN
    assert server.handshake_exc is not None
    data, eof = take_output(server)
    assert data.startswith(f"HTTP/1.1 {response.status_code} ".encode())
    assert eof
    server.receive_data(wire(OP_TEXT, b"Hello", mask_key=MASK_KEY))
    assert server.events_received() == []
    assert_nothing_sent(server)


# Section 4: the opening handshake.


class TestSection4_1ClientRequirements:
    """RFC 6455 section 4.1: what the client sends and how it checks the server's answer."""

    @pytest.mark.parametrize(
        "uri",
        [
            "http://example.com/",
            "ws://",
            "ws:///chat",
            "ws://example.com:0/",
            "ws://example.com:65536/",
            "ws://example.com/chat#fragment",
            "ws://example.com/chat?a=b#",
            "ws://exa mple.com/",
            "ws://example.com/%zz",
        ],
    )
    def test_invalid_uri(self, uri: str) -> None:
        """1. "The components of the WebSocket URI passed into this algorithm (/host/, /port/,
        /resource name/, and /secure/ flag) MUST be valid according to the specification of
        WebSocket URIs specified in Section 3. If any of the components are invalid, the client
        MUST _Fail the WebSocket Connection_ and abort these steps." Section 3: "Fragment
        identifiers are meaningless in the context of WebSocket URIs and MUST NOT be used on
        these URIs." No connection is attempted: the URI is refused first.
        """
        with pytest.raises(ValueError):
            parse_uri(uri)

    @pytest.mark.parametrize(
        ("uri", "secure", "port", "resource_name"),
        [
            ("ws://example.com", False, 80, "/"),
            ("wss://example.com", True, 443, "/"),
            ("WSS://example.com/", True, 443, "/"),
            ("ws://example.com/a%23b", False, 80, "/a%23b"),
            ("ws://example.com?q", False, 80, "/?q"),
        ],
    )
    def test_uri_components(self, uri: str, secure: bool, port: int, resource_name: str) -> None:
        """Section 3: "The port component is OPTIONAL; the default for "ws" is port 80, while
        the default for "wss" is port 443." "The URI is called "secure" [...] if the scheme
        component matches "wss" case-insensitively." The resource name is ""/" if the path
        component is empty", the path, then "?" and the query; "the character "#", when not
        indicating the start of a fragment, MUST be escaped as %23"."""
        parsed = parse_uri(uri)
        assert (parsed.secure, parsed.port, parsed.resource_name) == (secure, port, resource_name)

    def test_opening_handshake_bytes(self, rfc_key: None) -> None:
        """The handshake of section 1.2's example, as the client writes it.

        "The handshake MUST be a valid HTTP request as specified by [RFC2616]." "The method of
        the request MUST be GET, and the HTTP version MUST be at least 1.1."
        """
        client = ClientProtocol(
            parse_uri("ws://server.example.com/chat"),
            origin=Origin("http://example.com"),
            subprotocols=[Subprotocol("chat"), Subprotocol("superchat")],
        )
        client.send_request(client.connect(user_agent=None))
        assert client.data_to_send() == [
            b"GET /chat HTTP/1.1\r\n"
            b"Host: server.example.com\r\n"
            b"Origin: http://example.com\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Protocol: chat, superchat\r\n"
            b"\r\n"
        ]
        assert client.state is CONNECTING

    @pytest.mark.parametrize(
        ("uri", "request_line"),
        [
            ("ws://example.com", "GET / HTTP/1.1"),
            ("ws://example.com/", "GET / HTTP/1.1"),
            ("ws://example.com/chat", "GET /chat HTTP/1.1"),
            ("ws://example.com/chat?room=1&x=y", "GET /chat?room=1&x=y HTTP/1.1"),
            ("wss://example.com/a/b/", "GET /a/b/ HTTP/1.1"),
            ("ws://example.com/caf\u00e9", "GET /caf%C3%A9 HTTP/1.1"),
        ],
    )
    def test_request_uri_is_resource_name(self, uri: str, request_line: str) -> None:
        """RFC: "The "Request-URI" part of the request MUST match the /resource name/ defined in
        Section 3 (a relative URI)"; "if the WebSocket URI is "ws://example.com/chat", the
        first line sent should be "GET /chat HTTP/1.1"."
        """
        client = ClientProtocol(parse_uri(uri))
        client.send_request(client.connect())
        [data] = client.data_to_send()
        assert parse_head(data)[0] == request_line

    @pytest.mark.parametrize(
        ("uri", "host"),
        [
            ("ws://example.com/", "example.com"),
            ("ws://example.com:80/", "example.com"),
            ("ws://example.com:8080/", "example.com:8080"),
            ("wss://example.com/", "example.com"),
            ("wss://example.com:443/", "example.com"),
            ("wss://example.com:80/", "example.com:80"),
            ("ws://Example.COM/", "example.com"),
            ("ws://127.0.0.1:8765/", "127.0.0.1:8765"),
            ("ws://[::1]:8765/", "[::1]:8765"),
            ("ws://[::1]/", "[::1]"),
        ],
    )
    def test_host_header(self, uri: str, host: str) -> None:
        """RFC: "The request MUST contain a |Host| header field whose value contains /host/ plus
        optionally ":" followed by /port/ (when not using the default port)."
        """
        client = ClientProtocol(parse_uri(uri))
        client.send_request(client.connect())
        [data] = client.data_to_send()
        assert header_values(parse_head(data)[1], "Host") == [host]

    def test_upgrade_connection_and_version_headers(self) -> None:
        """RFC: "The request MUST contain an |Upgrade| header field whose value MUST include the
        "websocket" keyword." "The request MUST contain a |Connection| header field whose
        value MUST include the "Upgrade" token." "The request MUST include a header field
        with the name |Sec-WebSocket-Version|. The value of this header field MUST be 13."
        """
        client = ClientProtocol(parse_uri("ws://example.com/"))
        client.send_request(client.connect())
        [data] = client.data_to_send()
        start_line, pairs = parse_head(data)
        assert start_line.startswith("GET ")
        assert start_line.endswith(" HTTP/1.1")
        assert header_values(pairs, "Upgrade") == ["websocket"]
        assert header_values(pairs, "Connection") == ["Upgrade"]
        assert header_values(pairs, "Sec-WebSocket-Version") == ["13"]

    def test_key_is_fresh_base64_of_16_random_bytes(self) -> None:
        """RFC: "The request MUST include a header field with the name |Sec-WebSocket-Key|. The
        value of this header field MUST be a nonce consisting of a randomly selected 16-byte
        value that has been base64-encoded (see Section 4 of [RFC4648]). The nonce MUST be
        selected randomly for each connection."
        """
        keys = []
        for _ in range(8):
            client = ClientProtocol(parse_uri("ws://example.com/"))
            client.send_request(client.connect())
            [data] = client.data_to_send()
            [key] = header_values(parse_head(data)[1], "Sec-WebSocket-Key")
            assert len(base64.b64decode(key, validate=True)) == 16
            assert base64.b64encode(base64.b64decode(key)).decode() == key
            keys.append(key)
        assert len(set(keys)) == len(keys)

    def test_origin_header(self) -> None:
        """RFC: "The request MUST include a header field with the name |Origin| [RFC6454] if the
        request is coming from a browser client." A client given an origin sends it, once; a
        client given none sends none.
        """
        client = ClientProtocol(parse_uri("ws://example.com/"), origin=Origin("https://a.b"))
        client.send_request(client.connect())
        [data] = client.data_to_send()
        assert header_values(parse_head(data)[1], "Origin") == ["https://a.b"]
        client = ClientProtocol(parse_uri("ws://example.com/"))
        client.send_request(client.connect())
        [data] = client.data_to_send()
        assert header_values(parse_head(data)[1], "Origin") == []

    def test_subprotocols_header(self) -> None:
        """RFC: "The request MAY include a header field with the name |Sec-WebSocket-Protocol|. If
        present, this value indicates one or more comma-separated subprotocol the client wishes
        to speak, ordered by preference."
        """
        offered = [Subprotocol("v2.chat"), Subprotocol("chat"), Subprotocol("x-y~z")]
        client = ClientProtocol(parse_uri("ws://example.com/"), subprotocols=offered)
        client.send_request(client.connect())
        [data] = client.data_to_send()
        [value] = header_values(parse_head(data)[1], "Sec-WebSocket-Protocol")
        assert [item.strip() for item in value.split(",")] == offered

    @pytest.mark.parametrize(
        "subprotocols",
        [["chat", "chat"], [""], ["a b"], ["a,b"], ["chat/1"], ['"chat"'], ["caf\u00e9"]],
        ids=["duplicate", "empty", "space", "comma", "slash", "quote", "non-ascii"],
    )
    def test_subprotocols_must_be_unique_tokens(self, subprotocols: list[str]) -> None:
        """RFC: "The elements that comprise this value MUST be non-empty strings with characters in
        the range U+0021 to U+007E not including separator characters as defined in
        [RFC2616] and MUST all be unique strings."
        """
        with pytest.raises(ValueError):
            ClientProtocol(parse_uri("ws://example.com/"), subprotocols=subprotocols)  # type: ignore[arg-type]

    def test_extensions_header(self) -> None:
        """RFC: "The request MAY include a header field with the name |Sec-WebSocket-Extensions|.
        If present, this value indicates the protocol-level extension(s) the client wishes to
        speak."
        """
        client = ClientProtocol(parse_uri("ws://example.com/"), extensions=[Rsv1ClientFactory()])
        client.send_request(client.connect())
        [data] = client.data_to_send()
        assert header_values(parse_head(data)[1], "Sec-WebSocket-Extensions") == ["x-rsv1"]

    def test_client_waits_for_response_before_sending_data(self) -> None:
        """RFC: "Once the client's opening handshake has been sent, the client MUST wait for a
        response from the server before sending any further data."
        """
        client = make_client()
        sends: list[Callable[[], None]] = [
            lambda: client.send_text("Hello"),
            lambda: client.send_binary(b"Hello"),
            lambda: client.send_ping(b""),
            lambda: client.send_pong(b""),
            lambda: client.send_close(1000),
        ]
        for send in sends:
            with pytest.raises(InvalidState):
                send()
        assert_nothing_sent(client)
        assert client.state is CONNECTING

    def test_valid_response_establishes_connection(self, rfc_key: None, feed: Feed) -> None:
        """RFC: "If the server's response is validated as provided for above, it is said that _The
        WebSocket Connection is Established_ and that the WebSocket Connection is in the OPEN
        state." Frames right behind the response (trailing data) are frames of the connection.
        """
        client = make_client()
        second = wire(OP_BINARY, b"World")
        feed(client, response_101() + wire(OP_TEXT, b"Hello") + second[:4])
        response, frame = client.events_received()
        assert isinstance(response, Response)
        assert response.status_code == 101
        assert frame == Frame(OP_TEXT, b"Hello")
        assert client.state is OPEN
        assert client.handshake_exc is None
        assert client.subprotocol is None
        assert client.extensions == []
        assert_nothing_sent(client)
        client.receive_data(second[4:])
        assert client.events_received() == [Frame(OP_BINARY, b"World")]

    @pytest.mark.parametrize(
        "status",
        ["200 OK", "301 Moved Permanently", "401 Unauthorized", "403 Forbidden", "404 Not Found"],
    )
    def test_status_other_than_101(self, rfc_key: None, status: str) -> None:
        """RFC: "If the status code received from the server is not 101, the client handles the
        response per HTTP [RFC2616] procedures." The connection is not established.
        """
        client = make_client()
        body = b"nope\n"
        headers = [*ACCEPT_HEADERS, f"Content-Length: {len(body)}"]
        client.receive_data(http_head(f"HTTP/1.1 {status}", headers) + body)
        [response] = client.events_received()
        assert isinstance(response, Response)
        assert response.status_code == int(status[:3])
        assert response.body == body
        assert_handshake_failed(client, InvalidStatus)
        assert isinstance(client.handshake_exc, InvalidStatus)
        assert client.handshake_exc.response is response

    def test_status_other_than_101_body_until_eof(self, rfc_key: None) -> None:
        """RFC: "the client handles the response per HTTP [RFC2616] procedures": a response
        without Content-Length ends with the connection; it is reported then."""
        client = make_client()
        client.receive_data(b"HTTP/1.1 503 Service Unavailable\r\n\r\nbusy")
        assert client.events_received() == []
        assert_nothing_sent(client)
        client.receive_eof()
        [response] = client.events_received()
        assert isinstance(response, Response)
        assert (response.status_code, response.body) == (503, b"busy")
        assert isinstance(client.handshake_exc, InvalidStatus)
        assert client.state is CLOSED
        assert_frames_sent(client, eof=True)

    @pytest.mark.parametrize(
        "upgrade",
        [
            None,
            "Upgrade: h2c",
            "Upgrade: websocket2",
            "Upgrade: web socket",
            "Upgrade: ",
            "Upgrade: websocket, h2c",
        ],
    )
    def test_response_without_websocket_upgrade(self, rfc_key: None, upgrade: str | None) -> None:
        """RFC: "If the response lacks an |Upgrade| header field or the |Upgrade| header field
        contains a value that is not an ASCII case-insensitive match for the value
        "websocket", the client MUST _Fail the WebSocket Connection_."
        """
        headers = [h for h in ACCEPT_HEADERS if not h.startswith("Upgrade")]
        if upgrade is not None:
            headers.append(upgrade)
        client = make_client()
        client.receive_data(response_101(*headers))
        assert_handshake_failed(client, InvalidHeader)

    @pytest.mark.parametrize("upgrade", ["WebSocket", "WEBSOCKET", "websocket"])
    def test_response_upgrade_is_case_insensitive(self, rfc_key: None, upgrade: str) -> None:
        """The |Upgrade| value is "an ASCII case-insensitive match for the value "websocket"."""
        headers = [h for h in ACCEPT_HEADERS if not h.startswith("Upgrade")]
        client = make_client()
        client.receive_data(response_101(*headers, f"Upgrade: {upgrade}"))
        assert client.state is OPEN

    @pytest.mark.parametrize(
        "connection", [None, "Connection: close", "Connection: keep-alive", "Connection: Upgrades"]
    )
    def test_response_without_connection_upgrade(
        self, rfc_key: None, connection: str | None
    ) -> None:
        """RFC: "If the response lacks a |Connection| header field or the |Connection| header field
        doesn't contain a token that is an ASCII case-insensitive match for the value
        "Upgrade", the client MUST _Fail the WebSocket Connection_."
        """
        headers = [h for h in ACCEPT_HEADERS if not h.startswith("Connection")]
        if connection is not None:
            headers.append(connection)
        client = make_client()
        client.receive_data(response_101(*headers))
        assert_handshake_failed(client, InvalidUpgrade)

    @pytest.mark.parametrize("connection", ["upgrade", "UPGRADE", "keep-alive, Upgrade"])
    def test_response_connection_contains_upgrade(self, rfc_key: None, connection: str) -> None:
        """The |Connection| header field "contain[s] a token that is an ASCII
        case-insensitive match for the value "Upgrade""; other tokens may come with it.
        """
        headers = [h for h in ACCEPT_HEADERS if not h.startswith("Connection")]
        client = make_client()
        client.receive_data(response_101(*headers, f"Connection: {connection}"))
        assert client.state is OPEN

    @pytest.mark.parametrize(
        "accept",
        [
            None,
            "",
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo",
            "S3PPLMBITXAQ9KYGZZHZRBK+XOO=",
            base64.b64encode(hashlib.sha1(RFC_KEY.encode()).digest()).decode(),
            base64.b64encode(hashlib.sha1(f"{RFC_KEY}x{GUID}".encode()).digest()).decode(),
            RFC_KEY,
            f"{RFC_ACCEPT}, {RFC_ACCEPT}",
        ],
        ids=["missing", "empty", "unpadded", "case", "no-guid", "other-key", "key", "list"],
    )
    def test_response_with_wrong_accept(self, rfc_key: None, accept: str | None) -> None:
        """RFC: "If the response lacks a |Sec-WebSocket-Accept| header field or the
        |Sec-WebSocket-Accept| contains a value other than the base64-encoded SHA-1 of the
        concatenation of the |Sec-WebSocket-Key| (as a string, not base64-decoded) with the
        string "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" [...] the client MUST _Fail the
        WebSocket Connection_."
        """
        headers = [h for h in ACCEPT_HEADERS if not h.startswith("Sec-WebSocket-Accept")]
        if accept is not None:
            headers.append(f"Sec-WebSocket-Accept: {accept}")
        client = make_client()
        client.receive_data(response_101(*headers))
        assert_handshake_failed(client, InvalidHeader)

    def test_response_with_accept_twice(self, rfc_key: None) -> None:
        """Two |Sec-WebSocket-Accept| header fields are not "the" base64-encoded SHA-1."""
        client = make_client()
        accept = f"Sec-WebSocket-Accept: {RFC_ACCEPT}"
        client.receive_data(response_101(*ACCEPT_HEADERS, accept))
        assert_handshake_failed(client, InvalidHeader)

    def test_response_accept_ignores_surrounding_whitespace(self, rfc_key: None) -> None:
        """The |Sec-WebSocket-Accept| check is made "ignoring any leading and trailing
        whitespace"."""
        headers = [h for h in ACCEPT_HEADERS if not h.startswith("Sec-WebSocket-Accept")]
        client = make_client()
        client.receive_data(response_101(*headers, f"Sec-WebSocket-Accept: \t {RFC_ACCEPT} \t"))
        assert client.state is OPEN

    def test_accept_computed_from_own_key(self) -> None:
        """The expected |Sec-WebSocket-Accept| is derived from the key this client sent."""
        client = make_client()
        key = client.key
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        client.receive_data(
            response_101(
                "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Accept: {accept}"
            )
        )
        assert client.state is OPEN

    @pytest.mark.parametrize("offered", [False, True], ids=["nothing-offered", "other-offered"])
    def test_response_with_extension_not_offered(self, rfc_key: None, offered: bool) -> None:
        """RFC: "If the response includes a |Sec-WebSocket-Extensions| header field and this header
        field indicates the use of an extension that was not present in the client's handshake
        (the server has indicated an extension not requested by the client), the client MUST
        _Fail the WebSocket Connection_."
        """
        client = make_client(extensions=[Rsv1ClientFactory()] if offered else [])
        client.receive_data(response_101(*ACCEPT_HEADERS, "Sec-WebSocket-Extensions: x-other"))
        assert_handshake_failed(client, NegotiationError)

    def test_response_with_extension_offered(self, rfc_key: None) -> None:
        """An extension the client offered and the server accepted is in use: "The
        _Extensions In Use_ is defined to be [...] the value of the |Sec-WebSocket-Extensions|
        header field supplied by the server's handshake"."""
        client = make_client(extensions=[Rsv1ClientFactory()])
        client.receive_data(response_101(*ACCEPT_HEADERS, "Sec-WebSocket-Extensions: x-rsv1"))
        assert client.state is OPEN
        assert [extension.name for extension in client.extensions] == ["x-rsv1"]

    def test_extension_offered_but_not_accepted_is_not_used(self, rfc_key: None) -> None:
        """Section 9.1: "the client is only offering to use any advertised extensions and MUST
        NOT use them unless the server indicates that it wishes to use the extension." Section
        5.8: "The endpoints of a connection MUST negotiate the use of any extensions during the
        opening handshake." Without the server's agreement, RSV1 keeps failing (1002)."""
        client = make_client(extensions=[Rsv1ClientFactory()])
        client.receive_data(response_101())
        assert client.state is OPEN
        assert client.extensions == []
        client.events_received()
        client.receive_data(wire(OP_TEXT, b"Hello", rsv=0b100))
        assert_connection_failing(client, 1002)

    @pytest.mark.parametrize(
        ("offered", "answer"),
        [
            ([], "chat"),
            (["chat"], "superchat"),
            (["chat", "superchat"], "Chat"),
            (["chat", "superchat"], "chat, superchat"),
        ],
        ids=["nothing-offered", "other", "case", "two"],
    )
    def test_response_with_subprotocol_not_offered(
        self, rfc_key: None, offered: list[str], answer: str
    ) -> None:
        """RFC: "If the response includes a |Sec-WebSocket-Protocol| header field and this header
        field indicates the use of a subprotocol that was not present in the client's handshake
        (the server has indicated a subprotocol not requested by the client), the client MUST
        _Fail the WebSocket Connection_." (The server answers with a single value, section
        4.2.2.)
        """
        client = make_client(subprotocols=offered)
        client.receive_data(response_101(*ACCEPT_HEADERS, f"Sec-WebSocket-Protocol: {answer}"))
        assert_handshake_failed(client, InvalidHeader if "," in answer else NegotiationError)

    def test_response_with_subprotocol_offered(self, rfc_key: None) -> None:
        """RFC: "The _Subprotocol In Use_ is defined to be the value of the
        |Sec-WebSocket-Protocol| header field in the server's handshake or the null value if
        that header field was not present in the server's handshake."
        """
        client = make_client(subprotocols=["chat", "superchat"])
        client.receive_data(response_101(*ACCEPT_HEADERS, "Sec-WebSocket-Protocol: superchat"))
        assert client.state is OPEN
        assert client.subprotocol == "superchat"
        client = make_client(subprotocols=["chat", "superchat"])
        client.receive_data(response_101())
        assert client.state is OPEN
        assert client.subprotocol is None

    @pytest.mark.parametrize(
        "data",
        [
            b"HTTP/1.0 101 Switching Protocols\r\n",
            b"HTTP/1.1 101\r\nUpgrade websocket\r\n",
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"HTTP/1.1 1O1 Switching Protocols\r\n",
        ],
        ids=["http-1.0", "bad-header", "not-http", "bad-status"],
    )
    def test_response_not_valid_http(self, rfc_key: None, data: bytes) -> None:
        """RFC: "If the server's response does not conform to the requirements for the server's
        handshake as defined in this section and in Section 4.2.2, the client MUST _Fail the
        WebSocket Connection_." The response must be "a valid HTTP response" (4.2.2).
        """
        client = make_client()
        client.receive_data(data + b"\r\n".join(h.encode() for h in ACCEPT_HEADERS) + b"\r\n\r\n")
        assert_handshake_failed(client, InvalidMessage)

    def test_header_names_are_case_insensitive(self, rfc_key: None) -> None:
        """RFC: "Please note that according to [RFC2616], all header field names in both HTTP
        requests and HTTP responses are case-insensitive."
        """
        client = make_client()
        client.receive_data(
            response_101(
                "UPGRADE: websocket",
                "connection: Upgrade",
                f"sec-websocket-accept: {RFC_ACCEPT}",
            )
        )
        assert client.state is OPEN


class TestSection4_2_1ReadingClientHandshake:
    """RFC 6455 section 4.2.1: what the server requires of the client's handshake.

    "If the server, while reading the handshake, finds that the client did not send a
    handshake that matches the description below [...], including but not limited to any
    violations of the ABNF grammar specified for the components of the handshake, the server
    MUST stop processing the client's handshake and return an HTTP response with an
    appropriate error code (such as 400 Bad Request)."
    """

    def test_valid_request(self, feed: Feed) -> None:
        """A request with every required part, fed whole or byte by byte, is accepted; frames
        the client pipelined behind it are processed once the connection is open."""
        server = ServerProtocol()
        frame = Frame(OP_TEXT, b"Hello").serialize(mask=True, mask_key=MASK_KEY)
        feed(server, http_request() + frame)
        [request] = server.events_received()
        assert isinstance(request, Request)
        assert request.path == "/chat"
        assert request.headers["Host"] == "server.example.com"
        response = server.accept(request)
        server.send_response(response)
        assert response.status_code == 101
        assert server.state is OPEN
        assert server.events_received() == [Frame(OP_TEXT, b"Hello")]

    @pytest.mark.parametrize("method", ["POST", "PUT", "HEAD", "OPTIONS", "CONNECT", "get"])
    def test_method_must_be_get(self, method: str) -> None:
        """1. "An HTTP/1.1 or higher GET request"."""
        server, response = server_answer(http_request(request_line=f"{method} /chat HTTP/1.1"))
        assert_handshake_rejected(server, response, (400, 405))

    @pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/0.9", "HTTP/1", "http/1.1"])
    def test_http_version_at_least_1_1(self, version: str) -> None:
        """1. "An HTTP/1.1 or higher GET request": older versions and malformed request lines
        are answered with an error by the server itself."""
        server = ServerProtocol()
        server.receive_data(http_request(request_line=f"GET /chat {version}"))
        assert server.events_received() == []
        data, eof = take_output(server)
        assert data.startswith(b"HTTP/1.1 400 ")
        assert eof
        assert isinstance(server.handshake_exc, InvalidMessage)
        assert server.state is not OPEN

    @pytest.mark.parametrize(
        "target", ["http://server.example.com/chat", "https://server.example.com/chat"]
    )
    def test_request_uri_may_be_absolute(self, target: str) -> None:
        """1. "An HTTP/1.1 or higher GET request, including a "Request-URI" [RFC2616] that
        should be interpreted as a /resource name/ defined in Section 3 (or an absolute
        HTTP/HTTPS URI containing the /resource name/)." (RFC 2616 section 5.1.2: "all
        HTTP/1.1 servers MUST accept the absoluteURI form in requests".)
        """
        server = ServerProtocol()
        server.receive_data(http_request(request_line=f"GET {target} HTTP/1.1"))
        [request] = server.events_received()
        assert isinstance(request, Request)
        assert request.path == "/chat"
        response = server.accept(request)
        assert response.status_code == 101

    @pytest.mark.parametrize(
        ("drop", "add"),
        [(["Host"], []), ([], ["Host: other.example.com"])],
        ids=["missing", "twice"],
    )
    def test_host_required(self, drop: list[str], add: list[str]) -> None:
        """2. "A |Host| header field containing the server's authority.\""""
        server, response = server_answer(http_request(drop=drop, add=add))
        assert_handshake_rejected(server, response)

    @pytest.mark.parametrize(
        "upgrade", [None, "h2c", "websocket2", "web-socket", "HTTP/2.0"], ids=str
    )
    def test_upgrade_websocket_required(self, upgrade: str | None) -> None:
        """3. "An |Upgrade| header field containing the value "websocket", treated as an ASCII
        case-insensitive value.\""""
        add = [] if upgrade is None else [f"Upgrade: {upgrade}"]
        server, response = server_answer(http_request(drop=["Upgrade"], add=add))
        assert_handshake_rejected(server, response, (400, 426))

    @pytest.mark.parametrize("upgrade", ["WebSocket", "WEBSOCKET", "h2c, websocket"])
    def test_upgrade_case_insensitive(self, upgrade: str) -> None:
        """3. The value "websocket" is "treated as an ASCII case-insensitive value"."""
        server, response = server_answer(
            http_request(drop=["Upgrade"], add=[f"Upgrade: {upgrade}"])
        )
        assert response.status_code == 101
        assert server.state is OPEN

    @pytest.mark.parametrize("connection", [None, "close", "keep-alive", "Upgrades"], ids=str)
    def test_connection_upgrade_required(self, connection: str | None) -> None:
        """4. "A |Connection| header field that includes the token "Upgrade", treated as an
        ASCII case-insensitive value.\""""
        add = [] if connection is None else [f"Connection: {connection}"]
        server, response = server_answer(http_request(drop=["Connection"], add=add))
        assert_handshake_rejected(server, response, (400, 426))

    @pytest.mark.parametrize(
        "connection", ["upgrade", "UPGRADE", "keep-alive, Upgrade", "Upgrade, close"]
    )
    def test_connection_includes_upgrade(self, connection: str) -> None:
        """4. The |Connection| header field "includes the token "Upgrade"", case-insensitively."""
        server, response = server_answer(
            http_request(drop=["Connection"], add=[f"Connection: {connection}"])
        )
        assert response.status_code == 101

    @pytest.mark.parametrize(
        "key",
        [
            None,
            "",
            "dGhlIHNhbXBsZSBub25jZQ",
            base64.b64encode(bytes(15)).decode(),
            base64.b64encode(bytes(17)).decode(),
            base64.b64encode(bytes(18)).decode(),
            base64.b64encode(bytes(32)).decode(),
            "dGhlIHNhbXBsZSBub25jZQ==dGhl",
            "dGhlIHNhbXBsZSBub25jZQ=!",
            "dGhlIHNhbXBsZSBub25j ZQ=",
            "dGhlIHNhbXBsZSBub25jZQ-_",
        ],
        ids=str,
    )
    def test_key_must_be_base64_of_16_bytes(self, key: str | None) -> None:
        """5. "A |Sec-WebSocket-Key| header field with a base64-encoded (see Section 4 of
        [RFC4648]) value that, when decoded, is 16 bytes in length.\""""
        add = [] if key is None else [f"Sec-WebSocket-Key: {key}"]
        server, response = server_answer(http_request(drop=["Sec-WebSocket-Key"], add=add))
        assert_handshake_rejected(server, response)

    def test_key_twice(self) -> None:
        """5. Two |Sec-WebSocket-Key| header fields are not "a" key."""
        server, response = server_answer(http_request(add=[f"Sec-WebSocket-Key: {RFC_KEY}"]))
        assert_handshake_rejected(server, response)

    @pytest.mark.parametrize(
        "key",
        [
            RFC_KEY,
            base64.b64encode(bytes(range(1, 17))).decode(),
            "AQIDBAUGBwgJCgsMDQ4PEC==",
            "/+/+/+/+/+/+/+/+/+/+/w==",
        ],
        ids=["rfc-1.3", "rfc-4.1-errata", "rfc-4.1-as-printed", "all-alphabet"],
    )
    def test_valid_keys(self, key: str) -> None:
        """5. Any base64 value of 16 bytes is a key, including section 4.1's example
        "AQIDBAUGBwgJCgsMDQ4PEC==" (whose pad bits are not zero: erratum 3150)."""
        server, response = server_answer(
            http_request(drop=["Sec-WebSocket-Key"], add=[f"Sec-WebSocket-Key: {key}"])
        )
        assert response.status_code == 101
        expected = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        assert response.headers["Sec-WebSocket-Accept"] == expected

    @pytest.mark.parametrize(
        "add",
        [
            ["Sec-WebSocket-Protocol: chat,,@"],
            ["Sec-WebSocket-Protocol: chat superchat"],
            ['Sec-WebSocket-Extensions: x-rsv1; a="b c"'],
            ["Sec-WebSocket-Extensions: x-rsv1;;"],
            ["Connection: Upgrade;"],
            ["Upgrade: websocket/"],
        ],
        ids=[
            "protocol-char",
            "protocol-space",
            "extension-quoted",
            "extension-semicolons",
            "connection",
            "upgrade",
        ],
    )
    def test_header_grammar_violation(self, add: list[str]) -> None:
        """RFC: "including but not limited to any violations of the ABNF grammar specified for the
        components of the handshake, the server MUST stop processing the client's handshake
        and return an HTTP response with an appropriate error code (such as 400 Bad Request)".
        """
        drop = [line.partition(":")[0] for line in add]
        server, response = server_answer(
            http_request(drop=drop, add=add),
            subprotocols=["chat"],
            extensions=[Rsv1ServerFactory()],
        )
        assert_handshake_rejected(server, response, (400, 426))

    @pytest.mark.parametrize(
        "line",
        [b"Host server.example.com", b"Host : server.example.com", b" folded", b"\x00: x"],
        ids=["no-colon", "space-before-colon", "obs-fold", "nul"],
    )
    def test_http_grammar_violation(self, line: bytes) -> None:
        """RFC: "[...] the server MUST stop processing the client's handshake and return an HTTP
        response with an appropriate error code (such as 400 Bad Request)." A request that is
        not valid HTTP is answered by the server itself."""
        server = ServerProtocol()
        server.receive_data(http_request()[:-2] + line + b"\r\n\r\n")
        assert server.events_received() == []
        data, eof = take_output(server)
        assert data.startswith(b"HTTP/1.1 400 ")
        assert eof
        assert server.state is not OPEN

    def test_unknown_headers_ignored(self) -> None:
        """10. "Optionally, other header fields [...]. Unknown header fields are ignored, as
        per [RFC2616].\""""
        server, response = server_answer(
            http_request(add=["X-Custom: 1", "Cookie: a=b", "Sec-WebSocket-Foo: bar"])
        )
        assert response.status_code == 101


class TestSection4_2_2SendingServerHandshake:
    """RFC 6455 section 4.2.2: the server's answer."""

    def test_accept_example(self) -> None:
        """Sections 1.3 and 4.2.2: "if the value of the |Sec-WebSocket-Key| header field in
        the client's handshake were "dGhlIHNhbXBsZSBub25jZQ==", [...] This value is then
        base64-encoded, to give the value "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", which would be
        returned in the |Sec-WebSocket-Accept| header field."
        """
        digest = hashlib.sha1(f"{RFC_KEY}{GUID}".encode()).digest()
        assert digest.hex(" ") == ("b3 7a 4f 2c c0 62 4f 16 90 f6 46 06 cf 38 59 45 b2 be c4 ea")
        assert base64.b64encode(digest).decode() == RFC_ACCEPT
        server, response = server_answer(http_request())
        assert response.headers["Sec-WebSocket-Accept"] == RFC_ACCEPT

    def test_response_bytes(self, fixed_date: str) -> None:
        """The answer to section 1.2's example handshake, as the server writes it.

        "If the server chooses to accept the incoming connection, it MUST reply with a valid
        HTTP response indicating the following. 1. A Status-Line with a 101 response code
        [...] 2. An |Upgrade| header field with value "websocket" [...] 3. A |Connection|
        header field with value "Upgrade". 4. A |Sec-WebSocket-Accept| header field."
        """
        server, response = server_answer(
            http_request(
                add=["Origin: http://example.com", "Sec-WebSocket-Protocol: chat, superchat"]
            ),
            subprotocols=["chat"],
            server_header=None,
        )
        assert server.data_to_send() == [
            b"HTTP/1.1 101 Switching Protocols\r\n"
            b"Date: " + fixed_date.encode() + b"\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            b"Sec-WebSocket-Protocol: chat\r\n"
            b"\r\n"
        ]

    def test_connection_established(self) -> None:
        """RFC: "If the server finishes these steps without aborting the WebSocket handshake, the
        server considers the WebSocket connection to be established and that the WebSocket
        connection is in the OPEN state. At this point, the server may begin sending (and
        receiving) data."
        """
        server, response = server_answer(http_request())
        server.data_to_send()
        assert server.state is OPEN
        server.send_text("Hello")
        assert_frames_sent(server, b"\x81\x05Hello")

    @pytest.mark.parametrize(
        ("origin", "origins"),
        [
            (None, ["https://example.com"]),
            ("https://evil.example", ["https://example.com"]),
            ("https://example.com:8443", ["https://example.com"]),
            ("http://example.com", ["https://example.com"]),
            ("null", ["https://example.com", None]),
        ],
        ids=["missing", "other-host", "other-port", "other-scheme", "null"],
    )
    def test_origin_not_allowed(self, origin: str | None, origins: list[str | None]) -> None:
        """/origin/: "If the server does not wish to accept this connection, it MUST return
        an appropriate HTTP error code (e.g., 403 Forbidden) and abort the WebSocket handshake
        described in this section." Section 10.2: "If the origin indicated is unacceptable to
        the server, then it SHOULD respond to the WebSocket handshake with a reply containing
        HTTP 403 Forbidden status code."
        """
        add = [] if origin is None else [f"Origin: {origin}"]
        server, response = server_answer(http_request(add=add), origins=origins)
        assert_handshake_rejected(server, response, (403,))

    @pytest.mark.parametrize(
        ("origin", "origins"),
        [
            ("https://example.com", ["https://example.com"]),
            ("https://b.example", ["https://a.example", "https://b.example"]),
            (None, [None]),
            (None, None),
            ("https://anything.example", None),
        ],
        ids=["listed", "second", "missing-allowed", "no-check-missing", "no-check"],
    )
    def test_origin_allowed(self, origin: str | None, origins: list[str | None] | None) -> None:
        """/origin/: "If the server does not validate the origin, it will accept connections
        from anywhere." An origin in the allow-list is accepted."""
        add = [] if origin is None else [f"Origin: {origin}"]
        server, response = server_answer(http_request(add=add), origins=origins)
        assert response.status_code == 101

    @pytest.mark.parametrize(
        ("offered", "supported", "chosen"),
        [
            ("chat, superchat", ["superchat", "chat"], "superchat"),
            ("chat, superchat", ["chat"], "chat"),
            ("chat", ["superchat", "chat"], "chat"),
        ],
    )
    def test_subprotocol_selected_from_offer(
        self, offered: str, supported: list[str], chosen: str
    ) -> None:
        """/subprotocol/: "Either a single value representing the subprotocol the server is
        ready to use or null. The value chosen MUST be derived from the client's handshake,
        specifically by selecting one of the values from the |Sec-WebSocket-Protocol| field
        that the server is willing to use for this connection (if any)."
        """
        server, response = server_answer(
            http_request(add=[f"Sec-WebSocket-Protocol: {offered}"]), subprotocols=supported
        )
        assert response.status_code == 101
        assert response.headers.get_all("Sec-WebSocket-Protocol") == [chosen]
        assert server.subprotocol == chosen

    @pytest.mark.parametrize(
        ("offered", "supported"),
        [(None, ["chat"]), ("superchat", ["chat"]), ("chat", []), ("Chat", ["chat"])],
        ids=["none-offered", "no-overlap", "none-supported", "case"],
    )
    def test_no_subprotocol_header_without_agreement(
        self, offered: str | None, supported: list[str]
    ) -> None:
        """/subprotocol/: "If the client's handshake did not contain such a header field or if
        the server does not agree to any of the client's requested subprotocols, the only
        acceptable value is null. [...] if the server does not wish to agree to one of the
        suggested subprotocols, it MUST NOT send back a |Sec-WebSocket-Protocol| header field
        in its response."
        """
        add = [] if offered is None else [f"Sec-WebSocket-Protocol: {offered}"]
        server, response = server_answer(http_request(add=add), subprotocols=supported)
        assert response.status_code == 101
        assert "Sec-WebSocket-Protocol" not in response.headers
        assert server.subprotocol is None

    def test_subprotocol_split_across_headers(self) -> None:
        """/subprotocol/: values may come in several |Sec-WebSocket-Protocol| header fields
        (RFC 2616 section 4.2); the answer is still a single value."""
        server, response = server_answer(
            http_request(add=["Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Protocol: v2"]),
            subprotocols=["v2"],
        )
        assert response.headers.get_all("Sec-WebSocket-Protocol") == ["v2"]

    @pytest.mark.parametrize("selected", ["superchat", ""], ids=["other", "empty"])
    def test_selected_subprotocol_must_be_offered(self, selected: str) -> None:
        """/subprotocol/: "The value chosen MUST be derived from the client's handshake"; "The
        empty string is not the same as the null value for these purposes and is not a legal
        value for this field." A selection callback that picks something else does not make
        it to the wire."""
        server, response = server_answer(
            http_request(add=["Sec-WebSocket-Protocol: chat"]),
            subprotocols=["chat", "superchat"],
            select_subprotocol=lambda offered, supported: Subprotocol(selected),
        )
        assert response.status_code != 101
        assert "Sec-WebSocket-Protocol" not in response.headers
        assert server.state is not OPEN

    @pytest.mark.parametrize(
        ("offer", "answer"),
        [
            (None, None),
            ("x-other", None),
            ("x-rsv1", "x-rsv1"),
            ("x-other, x-rsv1", "x-rsv1"),
            ("x-rsv1, x-rsv1", "x-rsv1"),
        ],
        ids=["none", "unsupported", "supported", "second", "twice"],
    )
    def test_extensions_only_from_offer(self, offer: str | None, answer: str | None) -> None:
        """/extensions/: "If the server supports multiple extensions, then the value MUST be
        derived from the client's handshake, specifically by selecting one or more of the
        values from the |Sec-WebSocket-Extensions| field. [...] Extensions not listed by the
        client MUST NOT be listed."
        """
        add = [] if offer is None else [f"Sec-WebSocket-Extensions: {offer}"]
        server, response = server_answer(http_request(add=add), extensions=[Rsv1ServerFactory()])
        assert response.status_code == 101
        expected = [] if answer is None else [answer]
        assert response.headers.get_all("Sec-WebSocket-Extensions") == expected
        assert [extension.name for extension in server.extensions] == expected

    def test_extension_not_offered_is_not_used(self) -> None:
        """Section 9: "A server MUST NOT respond with any extension not requested by the
        client." A server that supports an extension the client did not offer does not use it:
        RSV1 keeps failing (1002)."""
        server, response = server_answer(http_request(), extensions=[Rsv1ServerFactory()])
        assert "Sec-WebSocket-Extensions" not in response.headers
        assert server.extensions == []
        server.data_to_send()
        server.receive_data(wire(OP_TEXT, b"Hello", rsv=0b100, mask_key=MASK_KEY))
        assert_connection_failing(server, 1002)

    def test_resource_not_available(self) -> None:
        """/resource name/: "If the requested service is not available, the server MUST send
        an appropriate HTTP error code (such as 404 Not Found) and abort the WebSocket
        handshake." The answer is not a 101, and the connection ends after it."""
        server = ServerProtocol()
        server.receive_data(http_request(request_line="GET /nowhere HTTP/1.1"))
        [request] = server.events_received()
        assert isinstance(request, Request)
        assert request.path == "/nowhere"
        server.send_response(server.reject(404, "not found"))
        data, eof = take_output(server)
        assert data.startswith(b"HTTP/1.1 404 Not Found\r\n")
        assert data.endswith(b"\r\n\r\nnot found\n")
        assert eof
        assert server.state is not OPEN


class TestSection4_4MultipleVersions:
    """RFC 6455 section 4.4 and /version/ in section 4.2.2."""

    @pytest.mark.parametrize("version", ["8", "7", "12", "14", "25", "013", "13.0", "thirteen"])
    def test_unsupported_version(self, version: str) -> None:
        """/version/: "If this version does not match a version understood by the server, the
        server MUST abort the WebSocket handshake described in this section and instead send
        an appropriate HTTP error code (such as 426 Upgrade Required) and a
        |Sec-WebSocket-Version| header field indicating the version(s) the server is capable
        of understanding." Section 4.4: "If the server doesn't support the requested version,
        it MUST respond with a |Sec-WebSocket-Version| header field (or multiple
        |Sec-WebSocket-Version| header fields) containing all versions it is willing to use."
        """
        server, response = server_answer(
            http_request(drop=["Sec-WebSocket-Version"], add=[f"Sec-WebSocket-Version: {version}"])
        )
        assert response.headers.get_all("Sec-WebSocket-Version") == ["13"]
        assert_handshake_rejected(server, response, (400, 426))

    def test_missing_version(self) -> None:
        """4.2.1, 6. "A |Sec-WebSocket-Version| header field, with a value of 13." Without
        it, the handshake is refused."""
        server, response = server_answer(http_request(drop=["Sec-WebSocket-Version"]))
        assert_handshake_rejected(server, response, (400, 426))


# Section 5: data framing.


SEND_EVERY_FRAME = [
    ("text", lambda p: p.send_text("Hello"), OP_TEXT, b"Hello"),
    ("binary", lambda p: p.send_binary(b"\x00\xff\x10"), OP_BINARY, b"\x00\xff\x10"),
    ("ping", lambda p: p.send_ping(b"Hello"), OP_PING, b"Hello"),
    ("pong", lambda p: p.send_pong(b"Hello"), OP_PONG, b"Hello"),
    ("close", lambda p: p.send_close(1000, "bye"), OP_CLOSE, close_payload(1000, b"bye")),
    ("empty-text", lambda p: p.send_text(""), OP_TEXT, b""),
]


class TestSection5_1Overview:
    """RFC 6455 section 5.1: who masks, and what a receiver does about it."""

    @pytest.mark.parametrize(
        ("send", "opcode", "payload"),
        [case[1:] for case in SEND_EVERY_FRAME],
        ids=[case[0] for case in SEND_EVERY_FRAME],
    )
    def test_client_masks_every_frame(
        self, send: Callable[[Protocol], None], opcode: int, payload: bytes
    ) -> None:
        """RFC: "a client MUST mask all frames that it sends to the server (see Section 5.3 for
        further details)."
        """
        client = open_protocol(CLIENT)
        send(client)
        assert_frames_sent(client, wire(opcode, payload, mask_key=MASK_KEY))

    def test_client_masks_continuation_frames(self) -> None:
        """RFC: "a client MUST mask all frames that it sends to the server", fragments too."""
        client = open_protocol(CLIENT)
        client.send_binary(b"ab", fin=False)
        client.send_continuation(b"cd", fin=False)
        client.send_continuation(b"", fin=True)
        assert_frames_sent(
            client,
            wire(OP_BINARY, b"ab", fin=False, mask_key=MASK_KEY),
            wire(OP_CONT, b"cd", fin=False, mask_key=MASK_KEY),
            wire(OP_CONT, b"", mask_key=MASK_KEY),
        )

    @pytest.mark.parametrize(
        ("send", "opcode", "payload"),
        [case[1:] for case in SEND_EVERY_FRAME],
        ids=[case[0] for case in SEND_EVERY_FRAME],
    )
    def test_server_does_not_mask(
        self, send: Callable[[Protocol], None], opcode: int, payload: bytes
    ) -> None:
        """RFC: "A server MUST NOT mask any frames that it sends to the client.\""""
        server = open_protocol(SERVER)
        send(server)
        assert_frames_sent(server, wire(opcode, payload))

    @pytest.mark.parametrize(
        "frame",
        [
            Frame(OP_TEXT, b"Hello"),
            Frame(OP_BINARY, b""),
            Frame(OP_CONT, b"x"),
            Frame(OP_PING, b""),
            Frame(OP_PONG, b"x"),
            Frame(OP_CLOSE, close_payload(1000)),
        ],
        ids=["text", "binary", "continuation", "ping", "pong", "close"],
    )
    def test_server_fails_on_unmasked_frame(self, frame: Frame, feed: Feed) -> None:
        """RFC: "The server MUST close the connection upon receiving a frame that is not masked. In
        this case, a server MAY send a Close frame with a status code of 1002 (protocol error)
        as defined in Section 7.4.1."
        """
        server = open_protocol(SERVER)
        feed(server, frame.serialize(mask=False) + wire(OP_TEXT, b"more", mask_key=MASK_KEY))
        assert assert_connection_failing(server, 1002) == []

    @pytest.mark.parametrize(
        "frame",
        [
            Frame(OP_TEXT, b"Hello"),
            Frame(OP_BINARY, b""),
            Frame(OP_CONT, b"x"),
            Frame(OP_PING, b""),
            Frame(OP_PONG, b"x"),
            Frame(OP_CLOSE, close_payload(1000)),
        ],
        ids=["text", "binary", "continuation", "ping", "pong", "close"],
    )
    def test_client_fails_on_masked_frame(self, frame: Frame, feed: Feed) -> None:
        """RFC: "A client MUST close a connection if it detects a masked frame. In this case, it
        MAY use the status code 1002 (protocol error) as defined in Section 7.4.1."
        """
        client = open_protocol(CLIENT)
        feed(client, frame.serialize(mask=True, mask_key=MASK_KEY) + wire(OP_TEXT, b"more"))
        assert assert_connection_failing(client, 1002) == []

    @SIDES
    def test_masking_error_after_valid_frames(self, side: Side, feed: Feed) -> None:
        """Frames before the faulty one are delivered; the connection fails at the faulty one."""
        protocol = open_protocol(side)
        good = from_peer(side, Frame(OP_TEXT, b"ok"))
        bad = Frame(OP_TEXT, b"bad").serialize(mask=side is CLIENT, mask_key=MASK_KEY)
        feed(protocol, good + bad)
        events = assert_connection_failing(protocol, 1002)
        assert events == [Frame(OP_TEXT, b"ok")]

    @SIDES
    def test_no_data_frame_after_close_frame(self, side: Side) -> None:
        """RFC: "A data frame MAY be transmitted by either the client or the server at any time
        after opening handshake completion and before that endpoint has sent a Close frame
        (Section 5.5.1).\""""
        protocol = open_protocol(side)
        protocol.send_close(1000)
        protocol.data_to_send()
        with pytest.raises(InvalidState):
            protocol.send_text("late")
        with pytest.raises(InvalidState):
            protocol.send_binary(b"late")
        assert_nothing_sent(protocol)


class TestSection5_2BaseFramingProtocol:
    """RFC 6455 section 5.2: FIN, RSV1-3, opcodes and payload lengths."""

    @pytest.mark.parametrize(
        "frame",
        [
            Frame(OP_TEXT, b"Hello"),
            Frame(OP_BINARY, b"\x00" * 125, fin=False),
            Frame(OP_CONT, b"x" * 126),
            Frame(OP_BINARY, b"y" * 65535),
            Frame(OP_BINARY, b"z" * 65536),
            Frame(OP_PING, b""),
            Frame(OP_CLOSE, close_payload(1001, b"away")),
            Frame(OP_TEXT, b"r", rsv1=True, rsv2=False, rsv3=True),
        ],
        ids=["text", "125", "126", "65535", "65536", "ping", "close", "rsv"],
    )
    @pytest.mark.parametrize("mask_key", [None, MASK_KEY], ids=["unmasked", "masked"])
    def test_frame_builder_matches_figure(self, frame: Frame, mask_key: bytes | None) -> None:
        """The frames tests feed are laid out as the figure of section 5.2 draws them: "In a
        case of conflict between the figure below and the ABNF specified later in this
        section, the figure is authoritative."
        """
        rsv = frame.rsv1 << 2 | frame.rsv2 << 1 | frame.rsv3
        expected = wire(frame.opcode, frame.data, fin=frame.fin, rsv=rsv, mask_key=mask_key)
        assert frame.serialize(mask=mask_key is not None, mask_key=mask_key) == expected

    @SIDES
    @pytest.mark.parametrize("rsv", [0b100, 0b010, 0b001, 0b111], ids=["1", "2", "3", "all"])
    @pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_PING, OP_CLOSE], ids=str)
    def test_reserved_bits_fail(self, side: Side, rsv: int, opcode: int, feed: Feed) -> None:
        """RSV1, RSV2, RSV3: "MUST be 0 unless an extension is negotiated that defines
        meanings for non-zero values. If a nonzero value is received and none of the
        negotiated extensions defines the meaning of such a nonzero value, the receiving
        endpoint MUST _Fail the WebSocket Connection_."
        """
        protocol = open_protocol(side)
        payload = close_payload(1000) if opcode is OP_CLOSE else b"Hello"
        feed(protocol, raw_from_peer(side, opcode, payload, rsv=rsv))
        assert assert_connection_failing(protocol, 1002) == []

    @SIDES
    def test_reserved_bit_in_continuation_fails(self, side: Side) -> None:
        """RSV bits are checked on every frame, continuation frames too."""
        protocol = open_protocol(side)
        protocol.receive_data(from_peer(side, Frame(OP_TEXT, b"a", fin=False)))
        protocol.receive_data(raw_from_peer(side, OP_CONT, b"b", rsv=0b010))
        assert assert_connection_failing(protocol, 1002) == [Frame(OP_TEXT, b"a", fin=False)]

    @SIDES
    def test_reserved_bit_defined_by_extension(self, side: Side, feed: Feed) -> None:
        """RFC: "MUST be 0 unless an extension is negotiated that defines meanings for non-zero
        values": with an extension that uses RSV1, RSV1 is accepted; RSV2 still fails."""
        protocol = open_protocol(side)
        protocol.extensions = [Rsv1Extension()]
        feed(protocol, raw_from_peer(side, OP_TEXT, b"Hello", rsv=0b100))
        assert protocol.events_received() == [Frame(OP_TEXT, b"Hello")]
        assert_nothing_sent(protocol)
        feed(protocol, raw_from_peer(side, OP_TEXT, b"Hello", rsv=0b010))
        assert_connection_failing(protocol, 1002)

    @SIDES
    @pytest.mark.parametrize("rsv", ["rsv1", "rsv2", "rsv3"])
    def test_reserved_bits_never_sent(self, side: Side, rsv: str) -> None:
        """RSV1, RSV2, RSV3 "MUST be 0 unless an extension is negotiated that defines meanings
        for non-zero values": a frame with one set is refused without an extension."""
        protocol = open_protocol(side)
        with pytest.raises(ProtocolError):
            protocol.send_frame(Frame(OP_TEXT, b"x", **{rsv: True}))
        assert_nothing_sent(protocol)
        assert protocol.state is OPEN

    @SIDES
    @pytest.mark.parametrize("opcode", [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF], ids=hex)
    def test_unknown_opcode_fails(self, side: Side, opcode: int, feed: Feed) -> None:
        """Opcode: "If an unknown opcode is received, the receiving endpoint MUST _Fail the
        WebSocket Connection_." (%x3-7 and %xB-F are reserved.)
        """
        protocol = open_protocol(side)
        feed(
            protocol, raw_from_peer(side, opcode, b"Hello") + from_peer(side, Frame(OP_TEXT, b"x"))
        )
        assert assert_connection_failing(protocol, 1002) == []

    @SIDES
    def test_unknown_opcode_fails_before_its_payload(self, side: Side) -> None:
        """The opcode is in the first byte: the connection fails without waiting for the rest."""
        protocol = open_protocol(side)
        protocol.receive_data(raw_from_peer(side, 0x3, b"x" * 1000)[:2])
        assert_connection_failing(protocol, 1002)

    @SIDES
    @pytest.mark.parametrize(
        ("size", "length_bytes"),
        [
            (0, b"\x00"),
            (1, b"\x01"),
            (124, b"\x7c"),
            (125, b"\x7d"),
            (126, b"\x7e\x00\x7e"),
            (127, b"\x7e\x00\x7f"),
            (65535, b"\x7e\xff\xff"),
            (65536, b"\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
            (100_000, b"\x7f\x00\x00\x00\x00\x00\x01\x86\xa0"),
        ],
    )
    def test_minimal_length_encoding(self, side: Side, size: int, length_bytes: bytes) -> None:
        """Payload length: "if 0-125, that is the payload length. If 126, the following 2
        bytes interpreted as a 16-bit unsigned integer are the payload length. If 127, the
        following 8 bytes interpreted as a 64-bit unsigned integer (the most significant bit
        MUST be 0) are the payload length. Multibyte length quantities are expressed in network
        byte order. Note that in all cases, the minimal number of bytes MUST be used to encode
        the length, for example, the length of a 124-byte-long string can't be encoded as the
        sequence 126, 0, 124."
        """
        protocol = open_protocol(side)
        payload = bytes(i % 251 for i in range(size))
        protocol.send_binary(payload)
        data, eof = take_output(protocol)
        mask_bit = 0x80 if side is CLIENT else 0x00
        header = bytes([0x82, length_bytes[0] | mask_bit]) + length_bytes[1:]
        assert data[: len(header)] == header
        assert data == sent_by(side, OP_BINARY, payload)
        assert not eof

    @SIDES
    @pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
    def test_payload_lengths_received(self, side: Side, size: int) -> None:
        """Each of the three length encodings is understood, fed whole and in two pieces that
        split the header."""
        payload = bytes(i % 253 for i in range(size))
        data = from_peer(side, Frame(OP_BINARY, payload))
        for cut in [len(data), 1, 3, 9, min(12, len(data))]:
            protocol = open_protocol(side)
            protocol.receive_data(data[:cut])
            protocol.receive_data(data[cut:])
            assert protocol.events_received() == [Frame(OP_BINARY, payload)]
            assert_nothing_sent(protocol)

    @SIDES
    @pytest.mark.parametrize("max_size", [None, 1 << 20])
    @pytest.mark.parametrize(
        "length", [1 << 63, (1 << 64) - 1, (1 << 63) + 5], ids=["msb", "max", "msb+5"]
    )
    def test_64_bit_length_most_significant_bit(
        self, side: Side, max_size: int | None, length: int, feed: Feed
    ) -> None:
        """RFC: "If 127, the following 8 bytes interpreted as a 64-bit unsigned integer (the most
        significant bit MUST be 0) are the payload length." The ABNF: "frame-payload-length-63
        = %x0000000000000000-7FFFFFFFFFFFFFFF"."""
        protocol = open_protocol(side, max_size=max_size)
        mask = b"\x80" if side is SERVER else b"\x00"
        header = b"\x82" + bytes([mask[0] | 127]) + length.to_bytes(8, "big")
        feed(protocol, header + (MASK_KEY if side is SERVER else b"") + b"data")
        assert_connection_failing(protocol, 1002)

    @SIDES
    def test_fin_bit(self, side: Side) -> None:
        """FIN: "Indicates that this is the final fragment in a message. The first fragment
        MAY also be the final fragment." Received frames report FIN as sent."""
        protocol = open_protocol(side)
        protocol.receive_data(from_peer(side, Frame(OP_TEXT, b"a", fin=False)))
        protocol.receive_data(from_peer(side, Frame(OP_CONT, b"b", fin=True)))
        protocol.receive_data(from_peer(side, Frame(OP_BINARY, b"c", fin=True)))
        frames = protocol.events_received()
        assert [frame.fin for frame in frames if isinstance(frame, Frame)] == [False, True, True]


class TestSection5_3ClientToServerMasking:
    """RFC 6455 section 5.3."""

    def test_masking_algorithm(self) -> None:
        """RFC: "Octet i of the transformed data ("transformed-octet-i") is the XOR of octet i of
        the original data ("original-octet-i") with octet at index i modulo 4 of the masking
        key ("masking-key-octet-j")"; "A masked frame MUST have the field frame-masked set to
        1"; the masking key follows the length.
        """
        client = open_protocol(CLIENT)
        payload = bytes(range(11))
        client.send_binary(payload)
        [data] = client.data_to_send()
        assert data[:2] == b"\x82\x8b"
        assert data[2:6] == MASK_KEY
        assert data[6:] == bytes(b ^ MASK_KEY[i % 4] for i, b in enumerate(payload))

    def test_fresh_masking_key_for_every_frame(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """RFC: "When preparing a masked frame, the client MUST pick a fresh masking key from the
        set of allowed 32-bit values." Section 10.3: "Clients MUST choose a new masking key for
        each frame"."""
        keys = [bytes([i, 0x5A, 0xC3, 255 - i]) for i in range(1, 8)]
        remaining = iter(keys)
        monkeypatch.setattr(base_module, "new_mask", lambda: next(remaining))
        client = open_protocol(CLIENT)
        client.send_text("a", fin=False)
        client.send_ping(b"p")
        client.send_continuation("b", fin=True)
        client.send_binary(b"c")
        client.send_pong(b"q")
        client.send_close(1000)
        assert_frames_sent(
            client,
            wire(OP_TEXT, b"a", fin=False, mask_key=keys[0]),
            wire(OP_PING, b"p", mask_key=keys[1]),
            wire(OP_CONT, b"b", mask_key=keys[2]),
            wire(OP_BINARY, b"c", mask_key=keys[3]),
            wire(OP_PONG, b"q", mask_key=keys[4]),
            wire(OP_CLOSE, close_payload(1000), mask_key=keys[5]),
        )

    def test_masking_keys_are_unpredictable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """RFC: "The masking key needs to be unpredictable; thus, the masking key MUST be derived
        from a strong source of entropy, and the masking key for a given frame MUST NOT make it
        simple for a server/proxy to predict the masking key for a subsequent frame." With the
        real key source, no two of 64 frames share a key (a collision has a probability of
        about 5e-7 for random keys)."""
        monkeypatch.undo()
        client = open_protocol(CLIENT)
        for _ in range(64):
            client.send_binary(b"\x00\x00\x00\x00")
        data = b"".join(client.data_to_send())
        frames = [data[i : i + 10] for i in range(0, len(data), 10)]
        keys = {frame[2:6] for frame in frames}
        assert len(frames) == 64
        assert len(keys) == 64
        assert {frame[6:] for frame in frames} == keys  # zeros masked give the key back

    def test_masking_does_not_change_length(self) -> None:
        """RFC: "The masking does not affect the length of the "Payload data".\" "The payload
        length, indicated in the framing as frame-payload-length, does NOT include the length
        of the masking key.\""""
        client = open_protocol(CLIENT)
        client.send_binary(b"x" * 126)
        [data] = client.data_to_send()
        assert data[:4] == b"\x82\xfe\x00\x7e"
        assert len(data) == 4 + 4 + 126

    @pytest.mark.parametrize(
        "mask_key",
        [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x02\x03\x04", MASK_KEY],
        ids=["zero", "ones", "counting", "rfc"],
    )
    @pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 126, 4097, 70_000])
    def test_server_removes_masking(self, mask_key: bytes, size: int) -> None:
        """Section 6.2: "A server MUST remove masking for data frames received from a client
        as described in Section 5.3." "The same algorithm applies regardless of the direction
        of the translation"."""
        payload = bytes((7 * i) % 256 for i in range(size))
        server = open_protocol(SERVER)
        server.receive_data(Frame(OP_BINARY, payload).serialize(mask=True, mask_key=mask_key))
        assert server.events_received() == [Frame(OP_BINARY, payload)]


class TestSection5_4Fragmentation:
    """RFC 6455 section 5.4."""

    @SIDES
    @pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=str)
    def test_unfragmented_message(self, side: Side, opcode: Opcode, feed: Feed) -> None:
        """RFC: "An unfragmented message consists of a single frame with the FIN bit set (Section
        5.2) and an opcode other than 0." "Clients and servers MUST support receiving both
        fragmented and unfragmented messages."
        """
        protocol = open_protocol(side)
        feed(protocol, from_peer(side, Frame(opcode, b"Hello")))
        assert protocol.events_received() == [Frame(opcode, b"Hello")]
        assert_nothing_sent(protocol)

    @SIDES
    @pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=str)
    def test_fragmented_message(self, side: Side, opcode: Opcode, feed: Feed) -> None:
        """RFC: "A fragmented message consists of a single frame with the FIN bit clear and an
        opcode other than 0, followed by zero or more frames with the FIN bit clear and the
        opcode set to 0, and terminated by a single frame with the FIN bit set and an opcode
        of 0." "Message fragments MUST be delivered to the recipient in the order sent by the
        sender." "Clients and servers MUST support receiving both fragmented and unfragmented
        messages."
        """
        frames = [
            Frame(opcode, b"He", fin=False),
            Frame(OP_CONT, b"", fin=False),
            Frame(OP_CONT, b"l", fin=False),
            Frame(OP_CONT, b"lo"),
        ]
        protocol = open_protocol(side)
        feed(protocol, b"".join(from_peer(side, frame) for frame in frames))
        assert protocol.events_received() == frames
        assert_nothing_sent(protocol)

    @SIDES
    def test_two_fragment_message(self, side: Side) -> None:
        """RFC: "followed by zero or more frames with the FIN bit clear": a first fragment and a
        final one make a message; the next data frame starts a new one (section 6.2:
        "Subsequent data frames MUST be interpreted as belonging to a new WebSocket
        message")."""
        frames = [Frame(OP_BINARY, b"a", fin=False), Frame(OP_CONT, b"b"), Frame(OP_TEXT, b"c")]
        protocol = open_protocol(side)
        protocol.receive_data(b"".join(from_peer(side, frame) for frame in frames))
        assert protocol.events_received() == frames

    @SIDES
    @pytest.mark.parametrize(
        "control",
        [Frame(OP_PING, b"ping"), Frame(OP_PONG, b"pong"), Frame(OP_PING, b"")],
        ids=["ping", "pong", "empty-ping"],
    )
    def test_control_frames_in_fragmented_message(
        self, side: Side, control: Frame, feed: Feed
    ) -> None:
        """RFC: "Control frames (see Section 5.5) MAY be injected in the middle of a fragmented
        message." "An endpoint MUST be capable of handling control frames in the middle of a
        fragmented message."
        """
        frames = [
            Frame(OP_TEXT, b"He", fin=False),
            control,
            Frame(OP_CONT, b"l", fin=False),
            control,
            control,
            Frame(OP_CONT, b"lo"),
        ]
        protocol = open_protocol(side)
        feed(protocol, b"".join(from_peer(side, frame) for frame in frames))
        assert protocol.events_received() == frames
        if control.opcode is OP_PING:
            assert_frames_sent(protocol, *[sent_by(side, OP_PONG, control.data)] * 3)
        else:
            assert_nothing_sent(protocol)

    @SIDES
    def test_close_in_fragmented_message(self, side: Side) -> None:
        """RFC: "Control frames [...] MAY be injected in the middle of a fragmented message": a
        close frame in the middle starts the closing handshake; the rest is not processed."""
        protocol = open_protocol(side)
        protocol.receive_data(
            from_peer(side, Frame(OP_TEXT, b"He", fin=False))
            + from_peer(side, Frame(OP_CLOSE, close_payload(1001)))
            + from_peer(side, Frame(OP_CONT, b"llo"))
        )
        assert protocol.events_received() == [
            Frame(OP_TEXT, b"He", fin=False),
            Frame(OP_CLOSE, close_payload(1001)),
        ]
        assert_frames_sent(
            protocol, sent_by(side, OP_CLOSE, close_payload(1001)), eof=side is SERVER
        )

    @SIDES
    @pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE], ids=str)
    def test_fragmented_control_frame_fails(self, side: Side, opcode: int, feed: Feed) -> None:
        """RFC: "Control frames themselves MUST NOT be fragmented." Section 5.5: "All control
        frames [...] MUST NOT be fragmented."
        """
        protocol = open_protocol(side)
        payload = close_payload(1000) if opcode == OP_CLOSE else b"x"
        feed(protocol, raw_from_peer(side, opcode, payload, fin=False))
        assert assert_connection_failing(protocol, 1002) == []

    @SIDES
    @pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE], ids=str)
    def test_fragmented_control_frame_not_sent(self, side: Side, opcode: Opcode) -> None:
        """RFC: "Control frames themselves MUST NOT be fragmented.\""""
        protocol = open_protocol(side)
        with pytest.raises(ProtocolError):
            protocol.send_frame(Frame(opcode, b"", fin=False))
        assert_nothing_sent(protocol)

    @SIDES
    @pytest.mark.parametrize("first", [OP_TEXT, OP_BINARY], ids=str)
    @pytest.mark.parametrize("second", [OP_TEXT, OP_BINARY], ids=str)
    @pytest.mark.parametrize("fin", [True, False], ids=["fin", "no-fin"])
    def test_interleaved_messages_fail(
        self, side: Side, first: Opcode, second: Opcode, fin: bool, feed: Feed
    ) -> None:
        """RFC: "The fragments of one message MUST NOT be interleaved between the fragments of
        another message unless an extension has been negotiated that can interpret the
        interleaving." A new text or binary frame while a message is unfinished fails.
        """
        protocol = open_protocol(side)
        feed(
            protocol,
            from_peer(side, Frame(first, b"a", fin=False))
            + from_peer(side, Frame(second, b"b", fin=fin)),
        )
        assert assert_connection_failing(protocol, 1002) == [Frame(first, b"a", fin=False)]

    @SIDES
    @pytest.mark.parametrize("fin", [True, False], ids=["fin", "no-fin"])
    def test_continuation_without_message_fails(self, side: Side, fin: bool, feed: Feed) -> None:
        """A continuation frame belongs to "a single frame with the FIN bit clear and an
        opcode other than 0" before it; "all fragments of a message are of the same type, as
        set by the first fragment's opcode". Without a first fragment, there is no message."""
        protocol = open_protocol(side)
        feed(protocol, from_peer(side, Frame(OP_CONT, b"x", fin=fin)))
        assert assert_connection_failing(protocol, 1002) == []

    @SIDES
    def test_continuation_after_final_fragment_fails(self, side: Side) -> None:
        """Once "terminated by a single frame with the FIN bit set and an opcode of 0", the
        message is over: another continuation frame has nothing to continue."""
        protocol = open_protocol(side)
        protocol.receive_data(
            from_peer(side, Frame(OP_TEXT, b"a", fin=False))
            + from_peer(side, Frame(OP_CONT, b"b"))
            + from_peer(side, Frame(OP_CONT, b"c"))
        )
        events = assert_connection_failing(protocol, 1002)
        assert events == [Frame(OP_TEXT, b"a", fin=False), Frame(OP_CONT, b"b")]

    @SIDES
    def test_continuation_after_unfragmented_message_fails(self, side: Side) -> None:
        """An unfragmented message is "a single frame with the FIN bit set": nothing continues
        it."""
        protocol = open_protocol(side)
        protocol.receive_data(
            from_peer(side, Frame(OP_BINARY, b"b")) + from_peer(side, Frame(OP_CONT, b"c"))
        )
        assert assert_connection_failing(protocol, 1002) == [Frame(OP_BINARY, b"b")]

    def test_rfc_example_sent(self) -> None:
        """RFC: "EXAMPLE: For a text message sent as three fragments, the first fragment would have
        an opcode of 0x1 and a FIN bit clear, the second fragment would have an opcode of 0x0
        and a FIN bit clear, and the third fragment would have an opcode of 0x0 and a FIN bit
        that is set.\""""
        server = open_protocol(SERVER)
        server.send_text("Hel", fin=False)
        server.send_continuation("l", fin=False)
        server.send_continuation("o", fin=True)
        assert_frames_sent(server, b"\x01\x03Hel", b"\x00\x01l", b"\x80\x01o")

    @SIDES
    def test_control_frames_sent_in_fragmented_message(self, side: Side) -> None:
        """RFC: "Control frames (see Section 5.5) MAY be injected in the middle of a fragmented
        message": a ping or a pong may go out between two fragments."""
        protocol = open_protocol(side)
        protocol.send_binary(b"ab", fin=False)
        protocol.send_ping(b"1")
        protocol.send_pong(b"2")
        protocol.send_continuation(b"cd", fin=True)
        assert_frames_sent(
            protocol,
            sent_by(side, OP_BINARY, b"ab", fin=False),
            sent_by(side, OP_PING, b"1"),
            sent_by(side, OP_PONG, b"2"),
            sent_by(side, OP_CONT, b"cd"),
        )

    @SIDES
    def test_sender_cannot_interleave_messages(self, side: Side) -> None:
        """RFC: "The fragments of one message MUST NOT be interleaved between the fragments of
        another message": a new message cannot start before the current one is finished."""
        protocol = open_protocol(side)
        protocol.send_text("a", fin=False)
        protocol.data_to_send()
        sends: list[Callable[[], None]] = [
            lambda: protocol.send_text("b"),
            lambda: protocol.send_binary(b"b"),
            lambda: protocol.send_text("b", fin=False),
            lambda: protocol.send_frame(Frame(OP_BINARY, b"b")),
        ]
        for send in sends:
            with pytest.raises(InvalidState):
                send()
        assert_nothing_sent(protocol)
        protocol.send_continuation("b", fin=True)
        protocol.send_binary(b"c")
        assert_frames_sent(protocol, sent_by(side, OP_CONT, b"b"), sent_by(side, OP_BINARY, b"c"))

    @SIDES
    def test_sender_cannot_continue_without_message(self, side: Side) -> None:
        """A continuation frame is only sent after "a single frame with the FIN bit clear and
        an opcode other than 0"."""
        protocol = open_protocol(side)
        with pytest.raises(InvalidState):
            protocol.send_continuation(b"x", fin=True)
        protocol.send_binary(b"a")
        with pytest.raises(InvalidState):
            protocol.send_continuation(b"x", fin=False)
        with pytest.raises(InvalidState):
            protocol.send_frame(Frame(OP_CONT, b"x"))
        assert_frames_sent(protocol, sent_by(side, OP_BINARY, b"a"))


class TestSection5_5ControlFrames:
    """RFC 6455 section 5.5: "All control frames MUST have a payload length of 125 bytes or
    less and MUST NOT be fragmented.\""""

    @SIDES
    @pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE], ids=str)
    @pytest.mark.parametrize("size", [126, 127, 65536])
    def test_long_control_frame_fails(self, side: Side, opcode: int, size: int) -> None:
        """RFC: "All control frames MUST have a payload length of 125 bytes or less": a longer one
        fails the connection as soon as its header arrives."""
        payload = close_payload(1000, b"x" * (size - 2)) if opcode == OP_CLOSE else b"x" * size
        protocol = open_protocol(side)
        protocol.receive_data(raw_from_peer(side, opcode, payload)[:10])
        assert assert_connection_failing(protocol, 1002) == []

    @SIDES
    @pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE], ids=str)
    def test_125_byte_control_frame(self, side: Side, opcode: Opcode, feed: Feed) -> None:
        """RFC: "125 bytes or less": 125 bytes is allowed."""
        payload = close_payload(1000, b"x" * 123) if opcode is OP_CLOSE else b"x" * 125
        protocol = open_protocol(side)
        feed(protocol, from_peer(side, Frame(opcode, payload)))
        assert protocol.events_received() == [Frame(opcode, payload)]
        expected = (
            []
            if opcode is OP_PONG
            else [sent_by(side, OP_PONG if opcode is OP_PING else OP_CLOSE, payload)]
        )
        assert_frames_sent(protocol, *expected, eof=side is SERVER and opcode is OP_CLOSE)

    @SIDES
    def test_long_control_frames_not_sent(self, side: Side) -> None:
        """RFC: "All control frames MUST have a payload length of 125 bytes or less\""""
        protocol = open_protocol(side)
        with pytest.raises(ValueError):
            protocol.send_ping(b"x" * 126)
        with pytest.raises(ValueError):
            protocol.send_pong(b"x" * 126)
        with pytest.raises(ValueError):
            protocol.send_close(1000, "x" * 124)
        with pytest.raises(ValueError):
            protocol.send_close(1000, "\u00e9" * 62)
        with pytest.raises((ProtocolError, ValueError)):
            protocol.send_frame(Frame(OP_PING, b"x" * 126))
        assert_nothing_sent(protocol)
        assert protocol.state is OPEN
        protocol.send_ping(b"x" * 125)
        protocol.send_close(1000, "x" * 123)
        assert_frames_sent(
            protocol,
            sent_by(side, OP_PING, b"x" * 125),
            sent_by(side, OP_CLOSE, close_payload(1000, b"x" * 123)),
        )


class TestSection5_5_1Close:
    """RFC 6455 section 5.5.1."""

    @SIDES
    @pytest.mark.parametrize(
        ("code", "reason", "payload"),
        [
            (1000, "", b"\x03\xe8"),
            (1001, "bye", b"\x03\xe9bye"),
            (4999, "\u00e9t\u00e9", b"\x13\x87\xc3\xa9t\xc3\xa9"),
        ],
    )
    def test_close_body(self, side: Side, code: int, reason: str, payload: bytes) -> None:
        """RFC: "If there is a body, the first two bytes of the body MUST be a 2-byte unsigned
        integer (in network byte order) representing a status code with value /code/ defined
        in Section 7.4. Following the 2-byte integer, the body MAY contain UTF-8-encoded data
        with value /reason/". "Close frames sent from client to server must be masked as per
        Section 5.3."
        """
        protocol = open_protocol(side)
        protocol.send_close(code, reason)
        assert_frames_sent(protocol, sent_by(side, OP_CLOSE, payload))

    @SIDES
    def test_close_without_body(self, side: Side) -> None:
        """RFC: "The Close frame MAY contain a body": a close frame without a code has none."""
        protocol = open_protocol(side)
        protocol.send_close()
        assert_frames_sent(protocol, sent_by(side, OP_CLOSE, b""))

    @SIDES
    def test_reason_requires_code(self, side: Side) -> None:
        """The reason follows "the 2-byte integer": there is no reason without a code."""
        protocol = open_protocol(side)
        with pytest.raises(ValueError):
            protocol.send_close(None, "reason")
        assert_nothing_sent(protocol)

    @SIDES
    @pytest.mark.parametrize("payload", [b"\x03", b"\xe8", b"\x00"], ids=lambda p: p.hex())
    def test_one_byte_body_fails(self, side: Side, payload: bytes, feed: Feed) -> None:
        """RFC: "If there is a body, the first two bytes of the body MUST be a 2-byte unsigned
        integer (in network byte order) representing a status code": a 1-byte body is a
        protocol error."""
        protocol = open_protocol(side)
        feed(protocol, from_peer(side, Frame(OP_CLOSE, payload)))
        assert assert_connection_failing(protocol, 1002) == []

    @SIDES
    @pytest.mark.parametrize(
        "reason",
        [
            b"\xff",
            b"\x80abc",
            b"caf\xc3",
            b"\xc0\xaf",
            b"\xe0\x80\xaf",
            b"\xed\xa0\x80",
            b"\xed\xbf\xbf",
            b"\xf4\x90\x80\x80",
            b"ok \xf0\x9f\x98",
        ],
        ids=lambda r: r.hex(),
    )
    def test_reason_not_utf8_fails(self, side: Side, reason: bytes, feed: Feed) -> None:
        """RFC: "Following the 2-byte integer, the body MAY contain UTF-8-encoded data with value
        /reason/". Section 8.1: "When an endpoint is to interpret a byte stream as UTF-8 but
        finds that the byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST
        _Fail the WebSocket Connection_." The close code for that is 1007 (section 7.4.1).
        """
        protocol = open_protocol(side)
        feed(protocol, from_peer(side, Frame(OP_CLOSE, close_payload(1000, reason))))
        assert assert_connection_failing(protocol, 1007) == []

    @SIDES
    def test_reason_utf8(self, side: Side) -> None:
        """A reason in UTF-8, with characters of 1 to 4 bytes, is received as sent."""
        reason = "ok \u00e9 \u20ac \U0001f600"
        protocol = open_protocol(side)
        protocol.receive_data(
            from_peer(side, Frame(OP_CLOSE, close_payload(1000, reason.encode())))
        )
        assert protocol.close_rcvd is not None
        assert protocol.close_rcvd.code == 1000
        assert protocol.close_rcvd.reason == reason

    @SIDES
    def test_no_data_frames_after_sending_close(self, side: Side) -> None:
        """RFC: "The application MUST NOT send any more data frames after sending a Close
        frame." Not even the rest of a fragmented message."""
        protocol = open_protocol(side)
        protocol.send_text("a", fin=False)
        protocol.send_close(1000)
        protocol.data_to_send()
        sends: list[Callable[[], None]] = [
            lambda: protocol.send_text("late"),
            lambda: protocol.send_binary(b"late"),
            lambda: protocol.send_continuation("late", fin=True),
            lambda: protocol.send_frame(Frame(OP_TEXT, b"late")),
            lambda: protocol.send_frame(Frame(OP_CONT, b"late")),
        ]
        for send in sends:
            with pytest.raises(InvalidState):
                send()
        assert_nothing_sent(protocol)

    @SIDES
    def test_no_second_close_frame(self, side: Side) -> None:
        """A close frame is sent once: "If an endpoint receives a Close frame and did not
        previously send a Close frame" is the only case where a close answers a close."""
        protocol = open_protocol(side)
        protocol.send_close(1000)
        protocol.data_to_send()
        with pytest.raises(InvalidState):
            protocol.send_close(1001)
        protocol.fail(1011)
        data, _ = take_output(protocol)
        assert data == b""
        assert protocol.close_sent is not None
        assert protocol.close_sent.code == 1000

    @SIDES
    @pytest.mark.parametrize(
        "payload",
        [
            b"",
            close_payload(1000),
            close_payload(1001, b"going away"),
            close_payload(4321, b"\xc3\xa9"),
        ],
        ids=["empty", "1000", "1001-reason", "4321-utf8"],
    )
    def test_close_answered_with_close(self, side: Side, payload: bytes, feed: Feed) -> None:
        """RFC: "If an endpoint receives a Close frame and did not previously send a Close frame,
        the endpoint MUST send a Close frame in response. (When sending a Close frame in
        response, the endpoint typically echos the status code it received.) It SHOULD do so
        as soon as practical." "After both sending and receiving a Close message, an endpoint
        considers the WebSocket connection closed and MUST close the underlying TCP
        connection. The server MUST close the underlying TCP connection immediately; the
        client SHOULD wait for the server to close the connection".
        """
        protocol = open_protocol(side)
        feed(protocol, from_peer(side, Frame(OP_CLOSE, payload)))
        assert protocol.events_received() == [Frame(OP_CLOSE, payload)]
        [(first_byte, echo)] = decode_frames(take_output(protocol)[0], masked=side is CLIENT)
        assert first_byte == 0x88
        assert echo[:2] == payload[:2]
        assert protocol.state is CLOSING
        assert_closing_handshake_complete(protocol)

    @SIDES
    def test_close_echo_bytes(self, side: Side) -> None:
        """The answer to a close frame, byte for byte: the received code and reason, masked by
        a client; then a server closes TCP."""
        protocol = open_protocol(side)
        protocol.receive_data(from_peer(side, Frame(OP_CLOSE, close_payload(1000, b"bye"))))
        assert_frames_sent(protocol, sent_by(side, OP_CLOSE, b"\x03\xe8bye"), eof=side is SERVER)

    @SIDES
    def test_initiator_receives_answer(self, side: Side) -> None:
        """RFC: "After both sending and receiving a Close message, an endpoint considers the
        WebSocket connection closed and MUST close the underlying TCP connection. The server
        MUST close the underlying TCP connection immediately; the client SHOULD wait for the
        server to close the connection".
        """
        protocol = open_protocol(side)
        protocol.send_close(1000, "done")
        assert_frames_sent(protocol, sent_by(side, OP_CLOSE, close_payload(1000, b"done")))
        assert protocol.state is CLOSING
        assert protocol.close_expected()
        protocol.receive_data(from_peer(side, Frame(OP_CLOSE, close_payload(1000))))
        assert protocol.events_received() == [Frame(OP_CLOSE, close_payload(1000))]
        assert_frames_sent(protocol, eof=side is SERVER)
        assert_closing_handshake_complete(protocol)
        protocol.receive_eof()
        assert_frames_sent(protocol, eof=side is CLIENT)
        assert protocol.state is CLOSED

    @SIDES
    def test_simultaneous_close(self, side: Side) -> None:
        """RFC: "If a client and server both send a Close message at the same time, both endpoints
        will have sent and received a Close message and should consider the WebSocket
        connection closed and close the underlying TCP connection." No second close frame is
        sent."""
        protocol = open_protocol(side)
        protocol.send_close(1001)
        protocol.data_to_send()
        protocol.receive_data(from_peer(side, Frame(OP_CLOSE, close_payload(1000))))
        assert_frames_sent(protocol, eof=side is SERVER)
        assert_closing_handshake_complete(protocol)
        protocol.receive_eof()
        assert protocol.close_code == 1000

    @SIDES
    def test_data_after_close_discarded(self, side: Side, feed: Feed) -> None:
        """Section 1.4 and 7.1.1: after the close frame the peer sends nothing, and bytes that
        follow are discarded ("discarding any trailing bytes that may have been received"); a
        ping after it is not answered (section 5.5.2: "unless it already received a Close
        frame")."""
        protocol = open_protocol(side)
        feed(
            protocol,
            from_peer(side, Frame(OP_CLOSE, close_payload(1000)))
            + from_peer(side, Frame(OP_TEXT, b"late"))
            + from_peer(side, Frame(OP_PING, b"late"))
            + b"\xff\xff\xff",
        )
        protocol.receive_data(from_peer(side, Frame(OP_CLOSE, close_payload(1001))))
        assert protocol.events_received() == [Frame(OP_CLOSE, close_payload(1000))]
        assert_frames_sent(
            protocol, sent_by(side, OP_CLOSE, close_payload(1000)), eof=side is SERVER
        )
        assert protocol.parser_exc is None
        protocol.receive_eof()
        assert protocol.close_code == 1000

    @SIDES
    def test_data_still_received_after_sending_close(self, side: Side) -> None:
        """RFC: "A data frame MAY be transmitted by either the client or the server at any time
        [...] before that endpoint has sent a Close frame": until the peer's close frame
        arrives, its data frames are still frames of the connection."""
        protocol = open_protocol(side)
        protocol.send_close(1000)
        protocol.data_to_send()
        protocol.receive_data(from_peer(side, Frame(OP_TEXT, b"in flight")))
        assert protocol.events_received() == [Frame(OP_TEXT, b"in flight")]
        assert_nothing_sent(protocol)
        assert protocol.state is CLOSING

    @SIDES
    def test_close_echo_during_own_fragmented_message(self, side: Side) -> None:
        """RFC: "An endpoint MAY delay sending a Close frame until its current message is sent";
        if it does not, it sends no more fragments: "The application MUST NOT send any more
        data frames after sending a Close frame.\""""
        protocol = open_protocol(side)
        protocol.send_text("Hel", fin=False)
        protocol.data_to_send()
        protocol.receive_data(from_peer(side, Frame(OP_CLOSE, close_payload(1000))))
        data, _ = take_output(protocol)
        with pytest.raises(InvalidState):
            protocol.send_continuation("lo", fin=True)
        assert_nothing_sent(protocol)
        assert [first for first, _ in decode_frames(data, masked=side is CLIENT)] == [0x88]


class TestSection5_5_2Ping:
    """RFC 6455 section 5.5.2."""

    @SIDES
    @pytest.mark.parametrize("payload", [b"", b"Hello", b"\x00\xff" * 62 + b"!"], ids=len)
    def test_ping_answered_with_pong(self, side: Side, payload: bytes, feed: Feed) -> None:
        """RFC: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in response,
        unless it already received a Close frame. It SHOULD respond with Pong frame as soon as
        is practical." Section 5.5.3: "A Pong frame sent in response to a Ping frame must have
        identical "Application data" as found in the message body of the Ping frame being
        replied to."
        """
        protocol = open_protocol(side)
        feed(protocol, from_peer(side, Frame(OP_PING, payload)))
        assert protocol.events_received() == [Frame(OP_PING, payload)]
        assert_frames_sent(protocol, sent_by(side, OP_PONG, payload))
        assert protocol.state is OPEN

    @SIDES
    def test_each_ping_answered(self, side: Side) -> None:
        """RFC: "If an endpoint receives a Ping frame and has not yet sent Pong frame(s) in
        response to previous Ping frame(s), the endpoint MAY elect to send a Pong frame for only
        the most recently processed Ping frame." The last ping is answered in any case."""
        protocol = open_protocol(side)
        protocol.receive_data(
            b"".join(from_peer(side, Frame(OP_PING, bytes([i]))) for i in range(3))
        )
        data, _ = take_output(protocol)
        pongs = decode_frames(data, masked=side is CLIENT)
        assert pongs[-1] == (0x8A, b"\x02")
        assert all(first == 0x8A for first, _ in pongs)

    @SIDES
    def test_no_pong_after_close_received(self, side: Side) -> None:
        """RFC: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in response,
        unless it already received a Close frame.\""""
        protocol = open_protocol(side)
        protocol.receive_data(
            from_peer(side, Frame(OP_CLOSE, close_payload(1000)))
            + from_peer(side, Frame(OP_PING, b"x"))
        )
        assert_frames_sent(
            protocol, sent_by(side, OP_CLOSE, close_payload(1000)), eof=side is SERVER
        )

    @SIDES
    def test_ping_sent(self, side: Side) -> None:
        """RFC: "An endpoint MAY send a Ping frame any time after the connection is established and
        before the connection is closed." "A Ping frame MAY include "Application data".\""""
        protocol = open_protocol(side)
        protocol.send_ping(b"")
        protocol.send_ping(b"\x01\x02")
        assert_frames_sent(protocol, sent_by(side, OP_PING), sent_by(side, OP_PING, b"\x01\x02"))

    def test_ping_not_sent_before_established(self) -> None:
        """RFC: "An endpoint MAY send a Ping frame any time after the connection is
        established": not before."""
        client = make_client()
        with pytest.raises(InvalidState):
            client.send_ping(b"x")
        server = ServerProtocol()
        with pytest.raises(InvalidState):
            server.send_ping(b"x")
        assert_nothing_sent(client)
        assert_nothing_sent(server)


class TestSection5_5_3Pong:
    """RFC 6455 section 5.5.3."""

    @SIDES
    def test_unsolicited_pong_received(self, side: Side, feed: Feed) -> None:
        """RFC: "A Pong frame MAY be sent unsolicited. This serves as a unidirectional heartbeat. A
        response to an unsolicited Pong frame is not expected.\""""
        protocol = open_protocol(side)
        feed(protocol, from_peer(side, Frame(OP_PONG, b"beat")))
        assert protocol.events_received() == [Frame(OP_PONG, b"beat")]
        assert_nothing_sent(protocol)

    @SIDES
    def test_unsolicited_pong_sent(self, side: Side) -> None:
        """RFC: "A Pong frame MAY be sent unsolicited.\""""
        protocol = open_protocol(side)
        protocol.send_pong(b"beat")
        assert_frames_sent(protocol, sent_by(side, OP_PONG, b"beat"))


class TestSection5_6DataFrames:
    """RFC 6455 section 5.6 (and section 8.1 for invalid UTF-8)."""

    @SIDES
    @pytest.mark.parametrize(
        "text",
        ["", "Hello", "caf\u00e9", "\u20ac100", "\U0001f600\U0001d11e", "\x00\x7f\u0080\uffff"],
    )
    def test_text_is_utf8(self, side: Side, text: str, feed: Feed) -> None:
        """Text: "The "Payload data" is text data encoded as UTF-8.\""""
        protocol = open_protocol(side)
        feed(protocol, from_peer(side, Frame(OP_TEXT, text.encode())))
        assert protocol.events_received() == [Frame(OP_TEXT, text.encode())]
        protocol.send_text(text)
        assert_frames_sent(protocol, sent_by(side, OP_TEXT, text.encode()))

    @SIDES
    @pytest.mark.parametrize(
        "payload",
        [
            *INVALID_UTF8_PREFIXES,
            b"\xc3",
            b"\xe2\x82",
            b"\xf0\x9f\x98",
            b"\xed\xa0\x80",
            b"\xed\xbf\xbf",
            b"\xf4\x90\x80\x80",
            b"\xf8\x88\x80\x80\x80",
            b"\xc0\xaf",
            b"\xe0\x80\xaf",
        ],
        ids=lambda p: p.hex(),
    )
    def test_invalid_utf8_in_text_fails(self, side: Side, payload: bytes, feed: Feed) -> None:
        """Text: "the whole message MUST contain valid UTF-8. Invalid UTF-8 in reassembled
        messages is handled as described in Section 8.1." Section 8.1: "that endpoint MUST
        _Fail the WebSocket Connection_"; section 7.4.1: 1007 is for "non-UTF-8 [RFC3629]
        data within a text message".
        """
        protocol = open_protocol(side)
        feed(protocol, from_peer(side, Frame(OP_TEXT, payload)))
        assert assert_connection_failing(protocol, 1007) == []

    @SIDES
    @pytest.mark.parametrize(
        "text", ["\u00e9", "\u20ac", "\U0001f600", "a\u00e9\u20ac\U0001f600z"]
    )
    def test_fragment_boundary_inside_character(self, side: Side, text: str, feed: Feed) -> None:
        """Text: "Note that a particular text frame might include a partial UTF-8 sequence;
        however, the whole message MUST contain valid UTF-8." Every split of the message into
        two or three fragments, inside a character or not, is accepted.
        """
        data = text.encode()
        splits = [(i, j) for i in range(len(data) + 1) for j in range(i, len(data) + 1)]
        for i, j in splits:
            frames = [
                Frame(OP_TEXT, data[:i], fin=False),
                Frame(OP_CONT, data[i:j], fin=False),
                Frame(OP_CONT, data[j:]),
            ]
            protocol = open_protocol(side)
            feed(protocol, b"".join(from_peer(side, frame) for frame in frames))
            assert protocol.events_received() == frames, (i, j)
            assert_nothing_sent(protocol)

    @SIDES
    @pytest.mark.parametrize("payload", INVALID_UTF8_PREFIXES, ids=lambda p: p.hex())
    def test_invalid_utf8_in_first_fragment_fails_at_once(
        self, side: Side, payload: bytes, feed: Feed
    ) -> None:
        """Section 8.1: "When an endpoint is to interpret a byte stream as UTF-8 but finds that
        the byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the
        WebSocket Connection_." Bytes that no continuation can make valid fail the connection
        when their fragment arrives, before the message ends.
        """
        protocol = open_protocol(side)
        feed(protocol, from_peer(side, Frame(OP_TEXT, b"ok" + payload, fin=False)))
        assert assert_connection_failing(protocol, 1007) == []

    @SIDES
    @pytest.mark.parametrize("payload", INVALID_UTF8_PREFIXES, ids=lambda p: p.hex())
    def test_invalid_utf8_in_middle_fragment_fails_at_once(
        self, side: Side, payload: bytes
    ) -> None:
        """Section 8.1 applies to each fragment as it arrives, not only to the whole message."""
        protocol = open_protocol(side)
        protocol.receive_data(from_peer(side, Frame(OP_TEXT, b"ok", fin=False)))
        protocol.receive_data(from_peer(side, Frame(OP_CONT, payload, fin=False)))
        assert assert_connection_failing(protocol, 1007) == [Frame(OP_TEXT, b"ok", fin=False)]

    @SIDES
    @pytest.mark.parametrize(
        ("first", "second"),
        [
            (b"\xed", b"\xa0\x80"),
            (b"\xe0", b"\x80\x80"),
            (b"\xf4", b"\x90\x80\x80"),
            (b"\xc3", b"("),
        ],
        ids=["surrogate", "overlong", "too-high", "bad-continuation"],
    )
    def test_invalid_sequence_across_fragments_fails(
        self, side: Side, first: bytes, second: bytes
    ) -> None:
        """A character split across fragments is checked as a whole: a first fragment ending
        with a lead byte is fine, the continuation that makes it invalid fails (1007)."""
        protocol = open_protocol(side)
        protocol.receive_data(from_peer(side, Frame(OP_TEXT, first, fin=False)))
        assert_nothing_sent(protocol)
        protocol.receive_data(from_peer(side, Frame(OP_CONT, second, fin=False)))
        assert assert_connection_failing(protocol, 1007) == [Frame(OP_TEXT, first, fin=False)]

    @SIDES
    @pytest.mark.parametrize(
        "tail", [b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98"], ids=lambda t: t.hex()
    )
    def test_message_ending_inside_character_fails(self, side: Side, tail: bytes) -> None:
        """RFC: "the whole message MUST contain valid UTF-8": a message whose last fragment ends in
        the middle of a character fails (1007)."""
        protocol = open_protocol(side)
        protocol.receive_data(from_peer(side, Frame(OP_TEXT, b"ok", fin=False)))
        protocol.receive_data(from_peer(side, Frame(OP_CONT, tail)))
        assert assert_connection_failing(protocol, 1007) == [Frame(OP_TEXT, b"ok", fin=False)]

    @SIDES
    def test_utf8_state_does_not_leak_into_next_message(self, side: Side) -> None:
        """Each text message is checked on its own: a binary message between two text messages,
        or a finished text message, leaves no pending bytes behind."""
        frames = [
            Frame(OP_TEXT, b"\xc3", fin=False),
            Frame(OP_CONT, b"\xa9"),
            Frame(OP_BINARY, b"\xff", fin=False),
            Frame(OP_CONT, b"\xfe"),
            Frame(OP_TEXT, b"\xe2\x82\xac", fin=False),
            Frame(OP_CONT, b""),
        ]
        protocol = open_protocol(side)
        protocol.receive_data(b"".join(from_peer(side, frame) for frame in frames))
        assert protocol.events_received() == frames
        assert_nothing_sent(protocol)

    @SIDES
    @pytest.mark.parametrize("payload", [b"\xff\xfe\xfd", b"\xed\xa0\x80", bytes(range(256))])
    def test_binary_is_arbitrary(self, side: Side, payload: bytes, feed: Feed) -> None:
        """Binary: "The "Payload data" is arbitrary binary data whose interpretation is solely
        up to the application layer.\""""
        protocol = open_protocol(side)
        feed(
            protocol,
            from_peer(side, Frame(OP_BINARY, payload[:2], fin=False))
            + from_peer(side, Frame(OP_CONT, payload[2:])),
        )
        assert protocol.events_received() == [
            Frame(OP_BINARY, payload[:2], fin=False),
            Frame(OP_CONT, payload[2:]),
        ]
        assert_nothing_sent(protocol)


class TestSection5_7Examples:
    """RFC 6455 section 5.7, each example sent and received."""

    def test_single_frame_unmasked_text(self, feed: Feed) -> None:
        """RFC: "A single-frame unmasked text message * 0x81 0x05 0x48 0x65 0x6c 0x6c 0x6f
        (contains "Hello")\""""
        data = bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
        server = open_protocol(SERVER)
        server.send_text("Hello")
        assert_frames_sent(server, data)
        client = open_protocol(CLIENT)
        feed(client, data)
        assert client.events_received() == [Frame(OP_TEXT, b"Hello")]

    def test_single_frame_masked_text(self, feed: Feed) -> None:
        """RFC: "A single-frame masked text message * 0x81 0x85 0x37 0xfa 0x21 0x3d 0x7f 0x9f 0x4d
        0x51 0x58 (contains "Hello")\""""
        data = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
        client = open_protocol(CLIENT)
        client.send_text("Hello")
        assert_frames_sent(client, data)
        server = open_protocol(SERVER)
        feed(server, data)
        assert server.events_received() == [Frame(OP_TEXT, b"Hello")]

    def test_fragmented_unmasked_text(self, feed: Feed) -> None:
        """RFC: "A fragmented unmasked text message * 0x01 0x03 0x48 0x65 0x6c (contains "Hel") *
        0x80 0x02 0x6c 0x6f (contains "lo")\""""
        data = [bytes([0x01, 0x03, 0x48, 0x65, 0x6C]), bytes([0x80, 0x02, 0x6C, 0x6F])]
        server = open_protocol(SERVER)
        server.send_text("Hel", fin=False)
        server.send_continuation("lo", fin=True)
        assert_frames_sent(server, *data)
        client = open_protocol(CLIENT)
        feed(client, b"".join(data))
        assert client.events_received() == [
            Frame(OP_TEXT, b"Hel", fin=False),
            Frame(OP_CONT, b"lo"),
        ]

    def test_unmasked_ping_and_masked_pong(self, feed: Feed) -> None:
        """RFC: "Unmasked Ping request and masked Ping response * 0x89 0x05 0x48 0x65 0x6c 0x6c
        0x6f (contains a body of "Hello", but the contents of the body are arbitrary) * 0x8a 0x85
        0x37 0xfa 0x21 0x3d 0x7f 0x9f 0x4d 0x51 0x58 (contains a body of "Hello", matching the body
        of the ping)\""""
        ping = bytes([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
        pong = bytes([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
        server = open_protocol(SERVER)
        server.send_ping(b"Hello")
        assert_frames_sent(server, ping)
        client = open_protocol(CLIENT)
        feed(client, ping)
        assert client.events_received() == [Frame(OP_PING, b"Hello")]
        assert_frames_sent(client, pong)
        server.receive_data(pong)
        assert server.events_received() == [Frame(OP_PONG, b"Hello")]

    def test_256_bytes_binary_unmasked(self) -> None:
        """RFC: "256 bytes binary message in a single unmasked frame * 0x82 0x7E 0x0100 [256 bytes
        of binary data]\""""
        payload = bytes(range(256))
        data = b"\x82\x7e\x01\x00" + payload
        server = open_protocol(SERVER)
        server.send_binary(payload)
        assert_frames_sent(server, data)
        client = open_protocol(CLIENT)
        client.receive_data(data)
        assert client.events_received() == [Frame(OP_BINARY, payload)]

    def test_64_kib_binary_unmasked(self) -> None:
        """RFC: "64KiB binary message in a single unmasked frame * 0x82 0x7F 0x0000000000010000
        [65536 bytes of binary data]\""""
        payload = bytes(i % 256 for i in range(65536))
        data = b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00" + payload
        server = open_protocol(SERVER)
        server.send_binary(payload)
        assert_frames_sent(server, data)
        client = open_protocol(CLIENT)
        for i in range(0, len(data), 1000):
            client.receive_data(data[i : i + 1000])
        assert client.events_received() == [Frame(OP_BINARY, payload)]

    def test_examples_back_to_back(self) -> None:
        """The unmasked examples in one stream, whole, byte by byte and with trailing data."""
        stream = (
            b"\x81\x05Hello"
            + b"\x01\x03Hel"
            + b"\x89\x05Hello"
            + b"\x80\x02lo"
            + b"\x82\x7e\x01\x00"
            + bytes(256)
        )
        expected = [
            Frame(OP_TEXT, b"Hello"),
            Frame(OP_TEXT, b"Hel", fin=False),
            Frame(OP_PING, b"Hello"),
            Frame(OP_CONT, b"lo"),
            Frame(OP_BINARY, bytes(256)),
        ]
        for chunk_size in [len(stream), 1, 2, 3, 7]:
            client = open_protocol(CLIENT)
            for i in range(0, len(stream), chunk_size):
                client.receive_data(stream[i : i + chunk_size])
            assert client.events_received() == expected
            client.receive_data(b"\x81\x05Hel")
            assert client.events_received() == []
            client.receive_data(b"lo\x81")
            assert client.events_received() == [Frame(OP_TEXT, b"Hello")]


def deflate(*fragments: bytes) -> list[bytes]:
    """Compress a message as RFC 7692 section 7.2.1 does, one payload per fragment."""
    compressor = zlib.compressobj(wbits=-15)
    payloads = [
        compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH) for data in fragments
    ]
    assert payloads[-1].endswith(b"\x00\x00\xff\xff")
    payloads[-1] = payloads[-1][:-4]
    return payloads


def deflate_protocol(side: Side, **kwargs: int | None) -> Protocol:
    """A protocol past a handshake that negotiated permessage-deflate with default parameters."""
    protocol = open_protocol(side, **kwargs)
    protocol.extensions = [PerMessageDeflate(False, False, 15, 15)]
    return protocol


class TestSection5_8Extensibility:
    """RFC 6455 section 5.8 and 9, with the permessage-deflate extension of RFC 7692, which
    gives RSV1 a meaning: the rules of sections 5 to 7 still hold around it.
    """

    def test_extension_negotiated_then_used(self) -> None:
        """RFC: "The endpoints of a connection MUST negotiate the use of any extensions during
        the opening handshake." Once both sides agreed, RSV1 (and only RSV1) marks compressed
        messages, in both directions; the receiver gets the data back."""
        client = ClientProtocol(
            parse_uri("ws://example.com/"), extensions=[ClientPerMessageDeflateFactory()]
        )
        client.send_request(client.connect())
        server = ServerProtocol(extensions=[ServerPerMessageDeflateFactory()])
        server.receive_data(b"".join(client.data_to_send()))
        [request] = server.events_received()
        assert isinstance(request, Request)
        server.send_response(server.accept(request))
        client.receive_data(b"".join(server.data_to_send()))
        assert client.state is OPEN
        assert server.state is OPEN
        assert [e.name for e in client.extensions] == [e.name for e in server.extensions]
        assert [e.name for e in client.extensions] == ["permessage-deflate"]
        client.events_received()
        message = "Hello, Hello, Hello, Hello, Hello!"
        for sender, receiver in [(client, server), (server, client)]:
            sender.send_text(message)
            [data] = sender.data_to_send()
            assert data[0] == 0xC1  # FIN, RSV1, text
            receiver.receive_data(data)
            assert receiver.events_received() == [Frame(OP_TEXT, message.encode())]
            assert_nothing_sent(receiver)

    @SIDES
    def test_control_frames_not_compressed(self, side: Side) -> None:
        """Section 5.5: control frames keep their format: "All control frames MUST have a
        payload length of 125 bytes or less"; RFC 7692 section 6: "PMCEs operate only on data
        messages." Pings, pongs and close frames go out as without the extension."""
        protocol = deflate_protocol(side)
        protocol.send_ping(b"ping")
        protocol.send_pong(b"pong")
        protocol.send_close(1000, "bye")
        assert_frames_sent(
            protocol,
            sent_by(side, OP_PING, b"ping"),
            sent_by(side, OP_PONG, b"pong"),
            sent_by(side, OP_CLOSE, close_payload(1000, b"bye")),
        )

    @SIDES
    @pytest.mark.parametrize("rsv", [0b010, 0b001, 0b110], ids=["rsv2", "rsv3", "rsv1+rsv2"])
    def test_reserved_bits_without_meaning_still_fail(
        self, side: Side, rsv: int, feed: Feed
    ) -> None:
        """Section 5.2: "If a nonzero value is received and none of the negotiated extensions
        defines the meaning of such a nonzero value, the receiving endpoint MUST _Fail the
        WebSocket Connection_." permessage-deflate defines RSV1 only."""
        protocol = deflate_protocol(side)
        [payload] = deflate(b"Hello")
        feed(protocol, raw_from_peer(side, OP_TEXT, payload, rsv=rsv))
        assert assert_connection_failing(protocol, 1002) == []

    @SIDES
    @pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE, OP_CONT], ids=str)
    def test_rsv1_where_extension_gives_no_meaning_fails(self, side: Side, opcode: int) -> None:
        """Section 5.2: the nonzero value must be one a negotiated extension "defines the
        meaning of"; RFC 7692 section 6: "An endpoint MUST NOT set the "Per-Message
        Compressed" bit of control frames and non-first fragments of a data message. An
        endpoint receiving such a frame MUST _Fail the WebSocket Connection_.\""""
        protocol = deflate_protocol(side)
        if opcode == OP_CONT:
            [first, _] = deflate(b"He", b"llo")
            protocol.receive_data(from_peer(side, Frame(OP_TEXT, first, fin=False, rsv1=True)))
            protocol.events_received()
        payload = close_payload(1000) if opcode == OP_CLOSE else b"x"
        protocol.receive_data(raw_from_peer(side, opcode, payload, rsv=0b100))
        assert assert_connection_failing(protocol, 1002) == []

    @SIDES
    def test_control_frames_inside_compressed_message(self, side: Side, feed: Feed) -> None:
        """Section 5.4: "An endpoint MUST be capable of handling control frames in the middle
        of a fragmented message", compressed or not."""
        first, second = deflate(b"Hello, ", b"world")
        protocol = deflate_protocol(side)
        feed(
            protocol,
            from_peer(side, Frame(OP_TEXT, first, fin=False, rsv1=True))
            + from_peer(side, Frame(OP_PING, b"p"))
            + from_peer(side, Frame(OP_CONT, second)),
        )
        assert protocol.events_received() == [
            Frame(OP_TEXT, b"Hello, ", fin=False),
            Frame(OP_PING, b"p"),
            Frame(OP_CONT, b"world"),
        ]
        assert_frames_sent(protocol, sent_by(side, OP_PONG, b"p"))

    @SIDES
    @pytest.mark.parametrize("payload", [b"ok\xff", b"caf\xc3", b"\xed\xa0\x80"], ids=bytes.hex)
    def test_invalid_utf8_after_decompression_fails(self, side: Side, payload: bytes) -> None:
        """Section 5.6: "the whole message MUST contain valid UTF-8"; section 8.1: the endpoint
        "MUST _Fail the WebSocket Connection_" (1007). The text is the decompressed data."""
        protocol = deflate_protocol(side)
        [compressed] = deflate(payload)
        protocol.receive_data(from_peer(side, Frame(OP_TEXT, compressed, rsv1=True)))
        assert assert_connection_failing(protocol, 1007) == []

    @SIDES
    def test_invalid_utf8_in_compressed_fragment_fails_at_once(self, side: Side) -> None:
        """Section 8.1 applies as fragments arrive: a compressed first fragment that
        decompresses to invalid UTF-8 fails the connection before the message ends."""
        protocol = deflate_protocol(side)
        first, _ = deflate(b"ok\xc0", b"more")
        protocol.receive_data(from_peer(side, Frame(OP_TEXT, first, fin=False, rsv1=True)))
        assert assert_connection_failing(protocol, 1007) == []

    @SIDES
    def test_max_size_applies_after_decompression(self, side: Side) -> None:
        """Section 10.4: implementations "MUST protect themselves against exceeding those
        limits", which are on "the total message size after reassembly": a small compressed
        frame that inflates past the limit fails with 1009."""
        protocol = deflate_protocol(side, max_size=1000)
        [compressed] = deflate(b"\x00" * 1_000_000)
        assert len(compressed) < 1000
        protocol.receive_data(from_peer(side, Frame(OP_BINARY, compressed, rsv1=True)))
        assert assert_connection_failing(protocol, 1009) == []

    @SIDES
    def test_message_at_limit_after_decompression_accepted(self, side: Side) -> None:
        """``max_size`` is "the largest message accepted, in bytes, after decompression"
        (``Protocol``'s documentation): a message of exactly that size is accepted even when
        its compressed form is a few bytes longer (incompressible data)."""
        message = b"".join(hashlib.sha256(bytes([i])).digest() for i in range(32))[:1000]
        [compressed] = deflate(message)
        assert len(compressed) > 1000
        protocol = deflate_protocol(side, max_size=1000)
        protocol.receive_data(from_peer(side, Frame(OP_BINARY, compressed, rsv1=True)))
        assert protocol.events_received() == [Frame(OP_BINARY, message)]
        assert_nothing_sent(protocol)


# Section 6: sending and receiving data.


class TestSection6_1SendingData:
    """RFC 6455 section 6.1."""

    def test_not_open_while_connecting(self) -> None:
        """1. "The endpoint MUST ensure the WebSocket connection is in the OPEN state (cf.
        Sections 4.1 and 4.2.2.)": before the opening handshake completes, nothing is sent."""
        client = make_client()
        server = ServerProtocol()
        for protocol in [client, server]:
            with pytest.raises(InvalidState):
                protocol.send_text("Hello")
            with pytest.raises(InvalidState):
                protocol.send_binary(b"Hello")
            with pytest.raises(InvalidState):
                protocol.send_frame(Frame(OP_TEXT, b"Hello"))
            assert_nothing_sent(protocol)

    @SIDES
    def test_not_open_when_closing_or_closed(self, side: Side) -> None:
        """1. "The endpoint MUST ensure the WebSocket connection is in the OPEN state": not
        CLOSING (close frame sent or received), not CLOSED."""
        protocol = open_protocol(side)
        protocol.receive_data(from_peer(side, Frame(OP_CLOSE, close_payload(1000))))
        protocol.data_to_send()
        with pytest.raises(InvalidState):
            protocol.send_text("Hello")
        protocol.receive_eof()
        protocol.data_to_send()
        assert protocol.state is CLOSED
        with pytest.raises(InvalidState):
            protocol.send_binary(b"Hello")
        with pytest.raises(InvalidState):
            protocol.send_ping(b"")
        assert_nothing_sent(protocol)

    @SIDES
    def test_not_open_after_connection_lost(self, side: Side) -> None:
        """1. "If at any point the state of the WebSocket connection changes, the endpoint MUST
        abort the following steps.\""""
        protocol = open_protocol(side)
        protocol.receive_eof()
        protocol.data_to_send()
        with pytest.raises(InvalidState):
            protocol.send_text("Hello")
        assert_nothing_sent(protocol)

    @SIDES
    def test_opcode_fin_and_mask(self, side: Side) -> None:
        """2. "An endpoint MUST encapsulate the /data/ in a WebSocket frame as defined in
        Section 5.2." 3. "The opcode (frame-opcode) of the first frame containing the data MUST
        be set to the appropriate value from Section 5.2 for data that is to be interpreted by
        the recipient as text or binary data." 4. "The FIN bit (frame-fin) of the last frame
        containing the data MUST be set to 1 as defined in Section 5.2." 5. "If the data is
        being sent by the client, the frame(s) MUST be masked as defined in Section 5.3."
        """
        protocol = open_protocol(side)
        protocol.send_text("t\u00e9xt")
        protocol.send_binary(b"\x00\x01")
        protocol.send_binary(b"fr", fin=False)
        protocol.send_continuation(b"ag", fin=True)
        assert_frames_sent(
            protocol,
            sent_by(side, OP_TEXT, "t\u00e9xt".encode()),
            sent_by(side, OP_BINARY, b"\x00\x01"),
            sent_by(side, OP_BINARY, b"fr", fin=False),
            sent_by(side, OP_CONT, b"ag"),
        )

    @SIDES
    def test_data_types_accepted(self, side: Side) -> None:
        """2. The /data/ goes on the wire as given, from bytes, bytearray or memoryview."""
        protocol = open_protocol(side)
        protocol.send_binary(bytearray(b"ab"))
        protocol.send_binary(memoryview(b"cd"))
        protocol.send_text(b"ef")
        assert_frames_sent(
            protocol,
            sent_by(side, OP_BINARY, b"ab"),
            sent_by(side, OP_BINARY, b"cd"),
            sent_by(side, OP_TEXT, b"ef"),
        )


class TestSection6_2ReceivingData:
    """RFC 6455 section 6.2."""

    @SIDES
    def test_frames_parsed_from_stream(self, side: Side) -> None:
        """RFC: "Incoming data MUST be parsed as WebSocket frames as defined in Section 5.2."
        Frames are found however the stream is cut, and an incomplete frame at the end waits for
        the rest (trailing data)."""
        frames = [
            Frame(OP_TEXT, b"one"),
            Frame(OP_PONG, b""),
            Frame(OP_BINARY, b"\x00" * 300, fin=False),
            Frame(OP_PING, b"p"),
            Frame(OP_CONT, b"\x01" * 70_000),
        ]
        stream = b"".join(from_peer(side, frame) for frame in frames)
        for chunk_size in [len(stream), 1, 5, 127, 4096]:
            protocol = open_protocol(side)
            for i in range(0, len(stream) - 3, chunk_size):
                protocol.receive_data(stream[i : min(i + chunk_size, len(stream) - 3)])
            assert protocol.events_received() == frames[:-1]
            protocol.receive_data(stream[-3:])
            assert protocol.events_received() == frames[-1:]
            assert_frames_sent(protocol, sent_by(side, OP_PONG, b"p"))

    @SIDES
    @settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
    def test_same_events_for_any_chunking(self, side: Side, cuts: list[int]) -> None:
        """RFC: "Incoming data MUST be parsed as WebSocket frames as defined in Section 5.2",
        wherever TCP splits the stream: any chunking gives the same events and answers."""
        frames = [
            Frame(OP_TEXT, "h\u00e9\u20ac\U0001f600".encode()[:5], fin=False),
            Frame(OP_PING, b"ping"),
            Frame(OP_CONT, "h\u00e9\u20ac\U0001f600".encode()[5:]),
            Frame(OP_BINARY, bytes(200)),
            Frame(OP_CLOSE, close_payload(1000, b"bye")),
        ]
        stream = b"".join(from_peer(side, frame) for frame in frames)
        protocol = open_protocol(side)
        previous = 0
        for cut in [*sorted(cuts), len(stream)]:
            protocol.receive_data(stream[previous : max(previous, cut)])
            previous = max(previous, cut)
        assert protocol.events_received() == frames
        assert_frames_sent(
            protocol,
            sent_by(side, OP_PONG, b"ping"),
            sent_by(side, OP_CLOSE, close_payload(1000, b"bye")),
            eof=side is SERVER,
        )

    @SIDES
    def test_control_frame_handled(self, side: Side) -> None:
        """RFC: "If a control frame (Section 5.5) is received, the frame MUST be handled as defined
        by Section 5.5." A ping is answered, a close is answered."""
        protocol = open_protocol(side)
        protocol.receive_data(from_peer(side, Frame(OP_PING, b"a")))
        protocol.receive_data(from_peer(side, Frame(OP_CLOSE, close_payload(1000))))
        assert_frames_sent(
            protocol,
            sent_by(side, OP_PONG, b"a"),
            sent_by(side, OP_CLOSE, close_payload(1000)),
            eof=side is SERVER,
        )

    @SIDES
    def test_subsequent_data_frames_start_new_message(self, side: Side) -> None:
        """RFC: "Subsequent data frames MUST be interpreted as belonging to a new WebSocket
        message." After a finished text message, a binary message starts with its own type
        and its own UTF-8 rules."""
        frames = [
            Frame(OP_TEXT, b"a", fin=False),
            Frame(OP_CONT, b"b"),
            Frame(OP_BINARY, b"\xff", fin=False),
            Frame(OP_CONT, b"\xfe"),
            Frame(OP_TEXT, b"c"),
        ]
        protocol = open_protocol(side)
        protocol.receive_data(b"".join(from_peer(side, frame) for frame in frames))
        assert protocol.events_received() == frames


# Section 7: closing the connection.


class TestSection7_1_1CloseTheConnection:
    """RFC 6455 section 7.1.1."""

    def test_server_closes_tcp_first(self) -> None:
        """RFC: "The underlying TCP connection, in most normal cases, SHOULD be closed first by the
        server [...] when a server is instructed to _Close the WebSocket Connection_ it SHOULD
        initiate a TCP Close immediately".
        """
        server = open_protocol(SERVER)
        server.receive_data(from_peer(SERVER, Frame(OP_CLOSE, close_payload(1000))))
        assert_frames_sent(server, wire(OP_CLOSE, close_payload(1000)), eof=True)
        server.receive_eof()
        assert_nothing_sent(server)
        assert server.state is CLOSED

    def test_client_waits_for_server(self) -> None:
        """RFC: "when a client is instructed to do the same, it SHOULD wait for a TCP Close from
        the server." "In abnormal cases (such as not having received a TCP Close from the server
        after a reasonable amount of time) a client MAY initiate the TCP Close." The client does
        not close TCP itself, tells its driver to expect the server to, and closes its side once
        the server did.
        """
        client = open_protocol(CLIENT)
        client.send_close(1000)
        client.receive_data(from_peer(CLIENT, Frame(OP_CLOSE, close_payload(1000))))
        assert_frames_sent(client, wire(OP_CLOSE, close_payload(1000), mask_key=MASK_KEY))
        assert client.close_expected()
        assert client.state is CLOSING
        client.receive_eof()
        assert_frames_sent(client, eof=True)
        assert client.state is CLOSED

    @SIDES
    def test_trailing_bytes_discarded(self, side: Side) -> None:
        """RFC: "An endpoint SHOULD use a method that cleanly closes the TCP connection [...]
        discarding any trailing bytes that may have been received.\""""
        protocol = open_protocol(side)
        protocol.receive_data(from_peer(side, Frame(OP_CLOSE, close_payload(1000))) + b"\x81")
        protocol.receive_data(b"\x05Hello garbage \x00\xff")
        assert protocol.events_received() == [Frame(OP_CLOSE, close_payload(1000))]
        protocol.data_to_send()
        protocol.receive_eof()
        assert protocol.parser_exc is None
        assert protocol.close_code == 1000


class TestSection7_1_2StartClosingHandshake:
    """RFC 6455 section 7.1.2."""

    @SIDES
    def test_start_closing_handshake(self, side: Side) -> None:
        """RFC: "To _Start the WebSocket Closing Handshake_ with a status code (Section 7.4) /code/
        and an optional close reason (Section 7.1.6) /reason/, an endpoint MUST send a Close
        control frame, as described in Section 5.5.1, whose status code is set to /code/ and
        whose close reason is set to /reason/. Once an endpoint has both sent and received a
        Close control frame, that endpoint SHOULD _Close the WebSocket Connection_ as defined
        in Section 7.1.1."
        """
        protocol = open_protocol(side)
        protocol.send_close(3000, "app")
        assert_frames_sent(protocol, sent_by(side, OP_CLOSE, b"\x0b\xb8app"))
        assert protocol.close_sent is not None
        assert (protocol.close_sent.code, protocol.close_sent.reason) == (3000, "app")
        protocol.receive_data(from_peer(side, Frame(OP_CLOSE, close_payload(3000, b"app"))))
        assert_frames_sent(protocol, eof=side is SERVER)
        assert_closing_handshake_complete(protocol)


class TestSection7_1_3ClosingHandshakeStarted:
    """RFC 6455 section 7.1.3: "Upon either sending or receiving a Close control frame, it is
    said that _The WebSocket Closing Handshake is Started_ and that the WebSocket connection
    is in the CLOSING state.\""""

    @SIDES
    def test_closing_after_sending_close(self, side: Side) -> None:
        """RFC: "Upon either sending [...] a Close control frame, [...] the WebSocket connection is
        in the CLOSING state.\""""
        protocol = open_protocol(side)
        protocol.send_close(1000)
        assert protocol.state is CLOSING

    @SIDES
    def test_closing_after_receiving_close(self, side: Side) -> None:
        """RFC: "Upon either [...] receiving a Close control frame, [...] the WebSocket connection
        is in the CLOSING state.\""""
        protocol = open_protocol(side)
        protocol.receive_data(from_peer(side, Frame(OP_CLOSE, b"")))
        assert protocol.state is CLOSING


class TestSection7_1_4ConnectionClosed:
    """RFC 6455 section 7.1.4."""

    @SIDES
    def test_closed_cleanly(self, side: Side) -> None:
        """RFC: "When the underlying TCP connection is closed, it is said that _The WebSocket
        Connection is Closed_ and that the WebSocket connection is in the CLOSED state. If the
        TCP connection was closed after the WebSocket closing handshake was completed, the
        WebSocket connection is said to have been closed _cleanly_."
        """
        protocol = open_protocol(side)
        protocol.send_close(1000)
        protocol.receive_data(from_peer(side, Frame(OP_CLOSE, close_payload(1000))))
        assert protocol.state is CLOSING
        protocol.receive_eof()
        assert protocol.state is CLOSED
        assert protocol.close_sent is not None
        assert protocol.close_rcvd is not None

    @SIDES
    def test_closed_not_cleanly(self, side: Side) -> None:
        """RFC: "When the underlying TCP connection is closed, [...] the WebSocket connection is in
        the CLOSED state", whether or not the closing handshake happened."""
        protocol = open_protocol(side)
        protocol.receive_eof()
        assert protocol.state is CLOSED
        assert protocol.close_rcvd is None

    def test_connection_not_established(self) -> None:
        """RFC: "If the WebSocket connection could not be established, it is also said that _The
        WebSocket Connection is Closed_, but not _cleanly_.\""""
        client = make_client()
        client.receive_data(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        client.receive_eof()
        assert client.state is CLOSED
        assert client.close_code == 1006


class TestSection7_1_5CloseCode:
    """RFC 6455 section 7.1.5."""

    @SIDES
    @pytest.mark.parametrize("code", [1000, 1001, 1011, 3000, 4999])
    def test_code_of_received_close(self, side: Side, code: int) -> None:
        """RFC: "_The WebSocket Connection Close Code_ is defined as the status code (Section 7.4)
        contained in the first Close control frame received by the application implementing
        this protocol.\""""
        protocol = open_protocol(side)
        protocol.receive_data(from_peer(side, Frame(OP_CLOSE, close_payload(code, b"x"))))
        protocol.receive_data(from_peer(side, Frame(OP_CLOSE, close_payload(1000))))
        protocol.receive_eof()
        assert protocol.close_code == code

    @SIDES
    def test_no_status_code_is_1005(self, side: Side) -> None:
        """RFC: "If this Close control frame contains no status code, _The WebSocket Connection
        Close Code_ is considered to be 1005.\""""
        protocol = open_protocol(side)
        protocol.receive_data(from_peer(side, Frame(OP_CLOSE, b"")))
        protocol.receive_eof()
        assert protocol.close_code == 1005
        assert protocol.close_rcvd is not None
        assert protocol.close_rcvd.code == 1005

    @SIDES
    @pytest.mark.parametrize(
        "before_eof",
        [b"", b"\x81", b"\x82\x7e\x01", None],
        ids=["nothing", "partial-header", "partial-length", "after-sending-close"],
    )
    def test_no_close_frame_is_1006(self, side: Side, before_eof: bytes | None) -> None:
        """RFC: "If _The WebSocket Connection is Closed_ and no Close control frame was received by
        the endpoint (such as could occur if the underlying transport connection is lost), _The
        WebSocket Connection Close Code_ is considered to be 1006.\""""
        protocol = open_protocol(side)
        if before_eof is None:
            protocol.send_close(1000)
        else:
            protocol.receive_data(before_eof)
        protocol.receive_eof()
        assert protocol.close_code == 1006
        assert protocol.close_reason == ""

    @SIDES
    def test_after_failing_is_1006(self, side: Side) -> None:
        """When the endpoint failed the connection, the peer's close frame, if any, is not
        processed (section 7.1.7), so none was received: 1006."""
        protocol = open_protocol(side)
        protocol.receive_data(raw_from_peer(side, 0x3))
        protocol.receive_data(from_peer(side, Frame(OP_CLOSE, close_payload(1000))))
        protocol.receive_eof()
        assert protocol.close_code == 1006

    @SIDES
    def test_simultaneous_close_keeps_peer_code(self, side: Side) -> None:
        """RFC: "Each endpoint will see the status code sent by the other end as _The WebSocket
        Connection Close Code_.\""""
        protocol = open_protocol(side)
        protocol.send_close(1001)
        protocol.receive_data(from_peer(side, Frame(OP_CLOSE, close_payload(4000))))
        protocol.receive_eof()
        assert protocol.close_code == 4000


class TestSection7_1_6CloseReason:
    """RFC 6455 section 7.1.6."""

    @SIDES
    def test_reason_of_received_close(self, side: Side) -> None:
        """RFC: "_The WebSocket Connection Close Reason_ is defined as the UTF-8-encoded data
        following the status code (Section 7.4) contained in the first Close control frame
        received by the application implementing this protocol.\""""
        protocol = open_protocol(side)
        protocol.receive_data(
            from_peer(side, Frame(OP_CLOSE, close_payload(1000, b"d\xc3\xa9j\xc3\xa0")))
        )
        protocol.receive_data(from_peer(side, Frame(OP_CLOSE, close_payload(1000, b"second"))))
        protocol.receive_eof()
        assert protocol.close_reason == "d\u00e9j\u00e0"

    @SIDES
    @pytest.mark.parametrize("payload", [b"", b"\x03\xe8"], ids=["no-code", "code-only"])
    def test_no_reason_is_empty(self, side: Side, payload: bytes) -> None:
        """RFC: "If there is no such data in the Close control frame, _The WebSocket Connection
        Close Reason_ is the empty string.\""""
        protocol = open_protocol(side)
        protocol.receive_data(from_peer(side, Frame(OP_CLOSE, payload)))
        protocol.receive_eof()
        assert protocol.close_reason == ""


class TestSection7_1_7FailTheConnection:
    """RFC 6455 section 7.1.7."""

    @SIDES
    @pytest.mark.parametrize("code", [1002, 1008, 1011, 4000])
    def test_fail_sends_close_then_closes(self, side: Side, code: int) -> None:
        """RFC: "To do so, the client MUST _Close the WebSocket Connection_ [...]. Similarly, to do
        so, the server MUST _Close the WebSocket Connection_". "If _The WebSocket Connection is
        Established_ prior to the point where the endpoint is required to _Fail the WebSocket
        Connection_, the endpoint SHOULD send a Close frame with an appropriate status code
        (Section 7.4) before proceeding to _Close the WebSocket Connection_." (The client
        closes TCP when its driver sees ``close_expected()``, section 7.1.1.)
        """
        protocol = open_protocol(side)
        protocol.fail(code, "why")
        assert_frames_sent(
            protocol, sent_by(side, OP_CLOSE, close_payload(code, b"why")), eof=side is SERVER
        )
        assert protocol.state is CLOSING
        assert protocol.close_expected()

    def test_server_logs_the_problem(self, caplog: pytest.LogCaptureFixture) -> None:
        """RFC: "Similarly, to do so, the server MUST _Close the WebSocket Connection_, and
        SHOULD log the problem." With logging enabled, the failure and its code are logged;
        the cause is kept in ``parser_exc`` for the driver to report."""
        caplog.set_level("DEBUG", logger="socketeer.server")
        server = open_protocol(SERVER)
        server.receive_data(wire(OP_TEXT, b"unmasked"))
        assert isinstance(server.parser_exc, ProtocolError)
        messages = [r.getMessage() for r in caplog.records if r.name == "socketeer.server"]
        assert any("1002" in message for message in messages)

    @SIDES
    def test_no_data_processed_after_failing(self, side: Side, feed: Feed) -> None:
        """RFC: "An endpoint MUST NOT continue to attempt to process data (including a responding
        Close frame) from the remote endpoint after being instructed to _Fail the WebSocket
        Connection_.\""""
        protocol = open_protocol(side)
        protocol.fail(1008)
        protocol.data_to_send()
        feed(
            protocol,
            from_peer(side, Frame(OP_TEXT, b"x"))
            + from_peer(side, Frame(OP_PING, b"y"))
            + from_peer(side, Frame(OP_CLOSE, close_payload(1008))),
        )
        assert protocol.events_received() == []
        assert_nothing_sent(protocol)
        assert protocol.close_rcvd is None
        protocol.receive_eof()
        assert protocol.close_code == 1006

    @SIDES
    def test_no_data_processed_after_failing_in_same_chunk(self, side: Side) -> None:
        """RFC: "An endpoint MUST NOT continue to attempt to process data [...] after being
        instructed to _Fail the WebSocket Connection_": frames in the same read as the faulty
        one are not processed either."""
        protocol = open_protocol(side)
        protocol.receive_data(
            from_peer(side, Frame(OP_TEXT, b"\xff"))
            + from_peer(side, Frame(OP_PING, b"y"))
            + from_peer(side, Frame(OP_CLOSE, close_payload(1000)))
        )
        assert_connection_failing(protocol, 1007)

    @SIDES
    def test_fail_after_close_sent(self, side: Side) -> None:
        """After its close frame, an endpoint that fails sends no other close frame (section
        5.5.1) but still closes: the server closes TCP, the client expects it."""
        protocol = open_protocol(side)
        protocol.send_close(1000)
        protocol.data_to_send()
        protocol.receive_data(raw_from_peer(side, 0xB))
        assert_frames_sent(protocol, eof=side is SERVER)
        assert protocol.close_expected()
        assert isinstance(protocol.parser_exc, ProtocolError)

    @SIDES
    def test_fail_with_1006_sends_no_close_frame(self, side: Side) -> None:
        """RFC: "An endpoint MAY omit sending a Close frame if it believes the other side is
        unlikely to be able to receive and process the Close frame"; section 7.4.1: 1006
        "MUST NOT be set as a status code in a Close control frame by an endpoint"."""
        protocol = open_protocol(side)
        protocol.fail(1006)
        data, eof = take_output(protocol)
        assert data == b""
        assert protocol.close_sent is None
        # The server closes TCP; the client, with no closing handshake to wait for, closes it
        # too or tells its driver to (section 7.1.7: "the client MUST _Close the WebSocket
        # Connection_").
        assert eof if side is SERVER else eof or protocol.close_expected()

    @SIDES
    @pytest.mark.parametrize("code", [1015, 1004, 999, 2999, 5000])
    def test_fail_never_sends_reserved_code(self, side: Side, code: int) -> None:
        """Section 7.4.1: 1015 "is a reserved value and MUST NOT be set as a status code in a
        Close control frame by an endpoint"; section 7.4.2: "Status codes in the range 0-999
        are not used". Failing with such a code does not put it on the wire (either the call
        is refused or the close frame carries another code, or none)."""
        protocol = open_protocol(side)
        try:
            protocol.fail(code)
        except ValueError:
            return
        data, _ = take_output(protocol)
        for first_byte, payload in decode_frames(data, masked=side is CLIENT):
            if first_byte == 0x88 and len(payload) >= 2:
                assert int.from_bytes(payload[:2], "big") != code

    def test_server_fail_before_established(self) -> None:
        """RFC: "If _The WebSocket Connection is Established_ prior to the point where the endpoint
        is required to _Fail the WebSocket Connection_, the endpoint SHOULD send a Close
        frame": before, there is no close frame, only the TCP close (section 7.2.2)."""
        server = ServerProtocol()
        server.receive_data(http_request()[:20])
        server.fail(1002)
        assert_frames_sent(server, eof=True)
        assert server.state is not OPEN

    def test_client_fail_before_established(self) -> None:
        """RFC: "To do so, the client MUST _Close the WebSocket Connection_". Before the connection
        is established no close frame is sent, but the TCP connection must still end: either
        the client writes the end of stream, or it tells its driver to expect it
        (``close_expected()``)."""
        client = make_client()
        client.fail(1002)
        data, eof = take_output(client)
        assert data == b""
        assert eof or client.close_expected()


class TestSection7_2AbnormalClosures:
    """RFC 6455 section 7.2."""

    def test_client_fails_on_lost_connection(self) -> None:
        """7.2.1: "If at any point the underlying transport layer connection is unexpectedly
        lost, the client MUST _Fail the WebSocket Connection_.\""""
        client = open_protocol(CLIENT)
        client.receive_data(b"\x82\x7e\x01\x00" + bytes(100))
        client.receive_eof()
        assert_frames_sent(client, eof=True)
        assert client.state is CLOSED
        assert client.close_code == 1006
        assert client.parser_exc is not None

    @pytest.mark.parametrize(
        "data",
        [b"", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"],
        ids=["nothing", "partial"],
    )
    def test_client_fails_on_lost_connection_during_handshake(self, data: bytes) -> None:
        """7.2.1: "If at any point the underlying transport layer connection is unexpectedly
        lost, the client MUST _Fail the WebSocket Connection_": during the opening handshake
        too."""
        client = make_client()
        client.receive_data(data)
        client.receive_eof()
        assert client.state is CLOSED
        assert client.handshake_exc is not None
        assert_frames_sent(client, eof=True)

    @pytest.mark.parametrize("status", [400, 403, 404, 503])
    def test_server_abort_closes_connection(self, status: int) -> None:
        """7.2.2: "Certain algorithms require or recommend that the server _Abort the WebSocket
        Connection_ during the opening handshake. To do so, the server MUST simply _Close the
        WebSocket Connection_ (Section 7.1.1)." A refused handshake ends with the TCP close."""
        server = ServerProtocol()
        server.receive_data(http_request())
        server.events_received()
        server.send_response(server.reject(status, "no"))
        data, eof = take_output(server)
        assert data.startswith(f"HTTP/1.1 {status} ".encode())
        assert eof
        assert server.state is not OPEN


class TestSection7_4StatusCodes:
    """RFC 6455 section 7.4."""

    @SIDES
    @pytest.mark.parametrize("code", VALID_CLOSE_CODES)
    def test_valid_codes_received(self, side: Side, code: int) -> None:
        """7.4.1 and 7.4.2: 1000-1003, 1007-1011 (and 1012-1014, registered since with IANA)
        are defined; 3000-3999 "are reserved for use by libraries, frameworks, and
        applications"; 4000-4999 "are reserved for private use". A close frame with one of
        them is a normal closing handshake, echoed."""
        protocol = open_protocol(side)
        protocol.receive_data(from_peer(side, Frame(OP_CLOSE, close_payload(code))))
        assert_frames_sent(
            protocol, sent_by(side, OP_CLOSE, close_payload(code)), eof=side is SERVER
        )
        assert protocol.parser_exc is None
        protocol.receive_eof()
        assert protocol.close_code == code

    @SIDES
    @pytest.mark.parametrize("code", INVALID_CLOSE_CODES)
    def test_invalid_codes_received_fail(self, side: Side, code: int, feed: Feed) -> None:
        """7.4.1: 1005, 1006 and 1015 are "a reserved value and MUST NOT be set as a status
        code in a Close control frame by an endpoint"; 1004 is "Reserved"; 7.4.2: "Status codes
        in the range 0-999 are not used", and 1016-2999 are reserved for future definition by
        the protocol. A close frame with one of them is a protocol error (1002).
        """
        protocol = open_protocol(side)
        feed(protocol, from_peer(side, Frame(OP_CLOSE, close_payload(code, b"r"))))
        assert assert_connection_failing(protocol, 1002) == []

    @SIDES
    @pytest.mark.parametrize("code", VALID_CLOSE_CODES)
    def test_valid_codes_sent(self, side: Side, code: int) -> None:
        """RFC: "Endpoints MAY use the following pre-defined status codes when sending a Close
        frame"; 3000-4999 are for libraries, frameworks, applications and private use."""
        protocol = open_protocol(side)
        protocol.send_close(code)
        assert_frames_sent(protocol, sent_by(side, OP_CLOSE, close_payload(code)))

    @SIDES
    @pytest.mark.parametrize("code", [code for code in INVALID_CLOSE_CODES if code != 1005])
    def test_invalid_codes_not_sent(self, side: Side, code: int) -> None:
        """7.4.1: 1006 and 1015 "MUST NOT be set as a status code in a Close control frame by
        an endpoint"; 1004 is reserved, 0-999 are not used, 1016-2999 are not defined."""
        protocol = open_protocol(side)
        with pytest.raises(ValueError):
            protocol.send_close(code)
        with pytest.raises(ValueError):
            protocol.send_close(code, "reason")
        with pytest.raises((ValueError, ProtocolError)):
            protocol.send_frame(Frame(OP_CLOSE, close_payload(code)))
        assert_nothing_sent(protocol)
        assert protocol.state is OPEN

    @SIDES
    def test_1005_never_on_the_wire(self, side: Side) -> None:
        """7.4.1: 1005 "MUST NOT be set as a status code in a Close control frame by an
        endpoint. It is designated for use in applications expecting a status code to
        indicate that no status code was actually present." Asking for it sends a close frame
        without a status code; asking for it with a reason is refused."""
        protocol = open_protocol(side)
        with pytest.raises(ValueError):
            protocol.send_close(1005, "reason")
        protocol.send_close(1005)
        assert_frames_sent(protocol, sent_by(side, OP_CLOSE, b""))


# Section 10.4: limits (the 1009 close code of section 7.4.1).


class TestSection10_4ImplementationSpecificLimits:
    """RFC 6455 section 10.4: "Implementations that have implementation- and/or
    platform-specific limitations regarding the frame size or total message size after
    reassembly from multiple frames MUST protect themselves against exceeding those limits.
    [...] Such an implementation SHOULD impose a limit on frame sizes and the total message
    size after reassembly from multiple frames." Section 7.4.1: "1009 indicates that an
    endpoint is terminating the connection because it has received a message that is too big
    for it to process."
    """

    @SIDES
    @pytest.mark.parametrize(
        ("max_size", "size"),
        [(10, 11), (125, 126), (1000, 65536), (65536, 65537), (1 << 20, (1 << 62) + 1)],
    )
    def test_frame_too_big_fails_before_payload(
        self, side: Side, max_size: int, size: int
    ) -> None:
        """A frame whose header announces more than the limit fails the connection with 1009
        as soon as the header arrives, before its payload is buffered."""
        protocol = open_protocol(side, max_size=max_size)
        mask_bit = 0x80 if side is SERVER else 0
        if size < 126:
            header = bytes([0x82, mask_bit | size])
        elif size < 65536:
            header = bytes([0x82, mask_bit | 126]) + size.to_bytes(2, "big")
        else:
            header = bytes([0x82, mask_bit | 127]) + size.to_bytes(8, "big")
        if side is SERVER:
            header += MASK_KEY
        for i in range(len(header)):
            protocol.receive_data(header[i : i + 1])
        assert assert_connection_failing(protocol, 1009) == []

    @SIDES
    def test_message_too_big_across_fragments(self, side: Side, feed: Feed) -> None:
        """RFC: "the total message size after reassembly from multiple frames": fragments that add
        up to more than the limit fail with 1009 at the fragment that goes over it."""
        protocol = open_protocol(side, max_size=10)
        feed(
            protocol,
            from_peer(side, Frame(OP_BINARY, b"x" * 4, fin=False))
            + from_peer(side, Frame(OP_PONG, b"p" * 100))
            + from_peer(side, Frame(OP_CONT, b"y" * 4, fin=False))
            + from_peer(side, Frame(OP_CONT, b"z" * 3)),
        )
        events = assert_connection_failing(protocol, 1009)
        assert events == [
            Frame(OP_BINARY, b"x" * 4, fin=False),
            Frame(OP_PONG, b"p" * 100),
            Frame(OP_CONT, b"y" * 4, fin=False),
        ]

    @SIDES
    def test_message_at_limit(self, side: Side, feed: Feed) -> None:
        """A message of exactly the limit, whole or in fragments, is accepted; control frames
        do not count; the count starts again with each message."""
        frames = [
            Frame(OP_TEXT, b"a" * 10),
            Frame(OP_BINARY, b"b" * 6, fin=False),
            Frame(OP_PING, b"p" * 125),
            Frame(OP_CONT, b"c" * 4),
            Frame(OP_BINARY, b"d" * 10, fin=False),
            Frame(OP_CONT, b""),
        ]
        protocol = open_protocol(side, max_size=10)
        feed(protocol, b"".join(from_peer(side, frame) for frame in frames))
        assert protocol.events_received() == frames
        assert_frames_sent(protocol, sent_by(side, OP_PONG, b"p" * 125))

    @SIDES
    def test_no_limit(self, side: Side) -> None:
        """With ``max_size=None`` the application takes on the protection itself."""
        protocol = open_protocol(side, max_size=None)
        payload = b"\x00" * (2 << 20)
        protocol.receive_data(from_peer(side, Frame(OP_BINARY, payload)))
        assert protocol.events_received() == [Frame(OP_BINARY, payload)]
