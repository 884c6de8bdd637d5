"""Fuzz target: the opening handshake, the HTTP/1.1 upgrade parser of both sides.

A ``ServerProtocol`` in CONNECTING state receives request bytes, and answers the request as a
driver does (``accept()``, or ``respond()`` for a plain page); or a ``ClientProtocol`` that
sent its request receives response bytes. Whatever follows the head is frames, checked as
``fuzz_frames.py`` checks them, with the extensions the handshake negotiated.

Input layout (``_harness.Input``)::

    byte 0   flags: bit 0     0 server (receives a request), 1 client (receives a response)
                    bit 1     receive_eof() after the last byte
                    bits 2-3  extension factories: SERVER_EXTENSIONS or CLIENT_EXTENSIONS[n]
                    bits 4-5  subprotocols: SUBPROTOCOLS[n]
                    bit 6     server: answer with respond(200) instead of accept()
                    bit 7     server: only accept the origins of ORIGINS
    byte 1   chunking seed (_harness.split)
    byte 2   amplifier, to reach the size limits with small inputs: bits 0-1 kind (none, a
             header line of MAX_LINE_LENGTH - 4 to + 3 bytes, MAX_NUM_HEADERS - 0 to 15
             headers, a line of that size left unterminated at the end), bits 2-5 how many
             bytes or headers off the limit; bit 6: the chunked run sets max_pending = 1,
             bit 7: it reads large payloads with receive_into()
    rest     the bytes received

Checks: no exception out of receive_data or receive_eof; a request that cannot be parsed is
answered with 400 (InvalidMessage), or 414 or 431 (SecurityError) and the connection closes;
accept() answers a parsed request with 101, or with 400, 403, 405 or 426 and handshake_exc set;
a 101 carries the right Sec-WebSocket-Accept, negotiates only offered extensions and
subprotocols, and its permessage-deflate answer is accepted by a client that made the same
offer, with windows and context takeover that decode what each side sends; every response
written parses back; a parsed request serializes and parses back to itself; a client fails a
bad response with a HandshakeError, writes nothing but the half-close, and keeps the promises
of its offer; then the frame contract; and the same outcome for any chunking.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from _harness import (
    CHUNKING_LIMIT,
    Driver,
    Input,
    check_frames,
    check_misuse,
    main,
    normalize,
    split,
)

from socketeer.exceptions import (
    HandshakeError,
    InvalidMessage,
    InvalidStatus,
    NegotiationError,
    SecurityError,
)
from socketeer.protocol.base import Protocol, State
from socketeer.protocol.client import ClientProtocol
from socketeer.protocol.extensions.base import ClientExtensionFactory, ServerExtensionFactory
from socketeer.protocol.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
    enable_client_permessage_deflate,
    enable_server_permessage_deflate,
)
from socketeer.protocol.frames import Frame
from socketeer.protocol.headers import accept_key, parse_extension, parse_subprotocol
from socketeer.protocol.http11 import MAX_LINE_LENGTH, MAX_NUM_HEADERS, Request, Response
from socketeer.protocol.server import ServerProtocol
from socketeer.typedefs import ExtensionParameter, Origin, Subprotocol
from socketeer.uri import parse_uri

# The example key of RFC 6455 section 1.3: seeds answer it with its accept value.
KEY = "dGhlIHNhbXBsZSBub25jZQ=="

SERVER_EXTENSIONS: tuple[tuple[ServerExtensionFactory, ...], ...] = (
    (),
    tuple(enable_server_permessage_deflate(None)),
    (
        ServerPerMessageDeflateFactory(
            server_no_context_takeover=True,
            client_no_context_takeover=True,
            server_max_window_bits=10,
            client_max_window_bits=9,
        ),
    ),
    (ServerPerMessageDeflateFactory(client_max_window_bits=12), ServerPerMessageDeflateFactory()),
)
CLIENT_EXTENSIONS: tuple[tuple[ClientExtensionFactory, ...], ...] = (
    (),
    tuple(enable_client_permessage_deflate(None)),
    (
        ClientPerMessageDeflateFactory(
            server_no_context_takeover=True,
            client_no_context_takeover=True,
            server_max_window_bits=10,
            client_max_window_bits=12,
        ),
    ),
    (ClientPerMessageDeflateFactory(client_max_window_bits=None),),
)
SUBPROTOCOLS: tuple[tuple[Subprotocol, ...], ...] = (
    (),
    (Subprotocol("chat"), Subprotocol("superchat")),
    (Subprotocol("superchat"),),
    (Subprotocol("x"),),
)
ORIGINS = (Origin("https://example.com"), None)


def _echo_last(offered: Sequence[Subprotocol], supported: Sequence[Subprotocol]) -> Subprotocol:
    """A select_subprotocol that trusts the client: whatever it offered last."""
    return offered[-1]


def amplify(stream: bytes, amp: int) -> bytes:
    """Insert what reaches a size limit of the HTTP parser (see the layout above)."""
    kind, offset = amp & 3, amp >> 2 & 15
    if kind == 0:
        return stream
    if kind == 2:
        extra = b"X-N: 1\r\n" * (MAX_NUM_HEADERS - offset)
    else:
        extra = b"X-Pad: " + b"a" * (MAX_LINE_LENGTH + (offset & 7) - 4 - 7)
        if kind == 3:
            return stream + extra
        extra += b"\r\n"
    end = stream.find(b"\r\n")
    at = 0 if end < 0 else end + 2
    return stream[:at] + extra + stream[at:]


def new_server(flags: int) -> ServerProtocol:
    subprotocols = flags >> 4 & 3
    return ServerProtocol(
        origins=ORIGINS if flags & 0x80 else None,
        extensions=SERVER_EXTENSIONS[flags >> 2 & 3],
        subprotocols=SUBPROTOCOLS[subprotocols],
        select_subprotocol=_echo_last if subprotocols == 3 else None,
    )


def new_client(flags: int) -> ClientProtocol:
    """A client that sent its request, with the RFC's key so that seeds can answer it."""
    client = ClientProtocol(
        parse_uri("ws://example.com/chat"),
        extensions=CLIENT_EXTENSIONS[flags >> 2 & 3],
        subprotocols=SUBPROTOCOLS[flags >> 4 & 3],
    )
    client.key = KEY
    client.send_request(client.connect())
    client.data_to_send()
    return client


def answer(server: ServerProtocol, respond: bool) -> Callable[[object], None]:
    """What a server driver does with the request: answer it at once."""

    def on_request(event: object) -> None:
        assert isinstance(event, Request), f"server received {event!r}"
        assert server.request is event
        response = server.respond(200, "hello\n") if respond else server.accept(event)
        server.send_response(response)

    return on_request


def check_request_round_trip(request: Request) -> None:
    """A parsed request serializes to bytes that parse back to it."""
    again = Request.parse(request.serialize())
    assert again == request, f"{request} parsed back as {again}"


def check_server(server: ServerProtocol, driver: Driver, respond: bool) -> None:
    events, writes = driver.events, driver.writes
    handshake = [event for event in events if not isinstance(event, Frame)]
    assert len(handshake) <= 1 and events[: len(handshake)] == handshake, events
    exc = server.handshake_exc
    eof_rcvd = server.state is State.CLOSED
    response = Response.parse(writes[0]) if writes and writes[0] else None
    assert (response is None) is (server.response is None), "response sent and not written"
    if not handshake:
        # No request: the protocol answers an unparsable one itself, else waits.
        assert events == []
        if response is not None:
            assert isinstance(exc, (InvalidMessage, SecurityError)), repr(exc)
            if isinstance(exc, SecurityError):
                # 414 for a request line too long (RFC 9112 section 3), 431 for the headers.
                assert response.status_code in (414, 431), (response.status_code, exc)
                assert response.status_code == 431 or "line exceeds" in str(exc), exc
            else:
                assert response.status_code == 400, (response.status_code, exc)
            assert writes[1:] == [b""], writes
        else:
            assert isinstance(exc, InvalidMessage) if eof_rcvd else exc is None, repr(exc)
            assert writes == [b""] * eof_rcvd, writes
            assert server.state is (State.CLOSED if eof_rcvd else State.CONNECTING)
        return
    request = handshake[0]
    assert isinstance(request, Request)
    check_request_round_trip(request)
    assert response is not None, "a request without an answer"
    status = response.status_code
    if respond:
        assert status == 200 and exc is None, (status, exc)
    elif status == 101:
        assert exc is None, repr(exc)
        check_accepted(server, request, response)
        check_frames(server, events[1:], writes[1:])
        return
    else:
        assert status in (400, 403, 405, 426), status
        assert isinstance(exc, HandshakeError), repr(exc)
    assert events == [request], events
    assert writes[1:] == [b""], writes
    assert server.state is (State.CLOSED if eof_rcvd else State.CONNECTING)


def check_accepted(server: ServerProtocol, request: Request, response: Response) -> None:
    """A 101 follows RFC 6455 section 4.2.2 and negotiates only what was offered."""
    headers = response.headers
    assert headers["Upgrade"] == "websocket" and headers["Connection"] == "Upgrade"
    key = request.headers["Sec-WebSocket-Key"]
    assert headers["Sec-WebSocket-Accept"] == accept_key(key)
    offered = [
        p for v in request.headers.get_all("Sec-WebSocket-Protocol") for p in parse_subprotocol(v)
    ]
    chosen = headers.get_all("Sec-WebSocket-Protocol")
    assert chosen == ([] if server.subprotocol is None else [server.subprotocol])
    assert server.subprotocol is None or server.subprotocol in offered
    if server.select_subprotocol is not _echo_last:
        assert server.subprotocol is None or server.subprotocol in server.available_subprotocols
    answers = [e for v in headers.get_all("Sec-WebSocket-Extensions") for e in parse_extension(v)]
    assert [name for name, _ in answers] == [e.name for e in server.extensions]
    assert len(server.extensions) <= 1, server.extensions
    if server.extensions:
        extension = server.extensions[0]
        assert isinstance(extension, PerMessageDeflate)
        offer = accepted_offer(server, request)
        check_deflate_agreement(offer, answers[0][1], extension)


def accepted_offer(server: ServerProtocol, request: Request) -> list[ExtensionParameter]:
    """The client's offer that the server accepted: the first one a factory accepts."""
    offers = [
        o for v in request.headers.get_all("Sec-WebSocket-Extensions") for o in parse_extension(v)
    ]
    for name, params in offers:
        for factory in server.available_extensions:
            if factory.name != name:
                continue
            try:
                factory.process_request_params(params, [])
            except NegotiationError:
                continue
            return params
    raise AssertionError("no offer accepted, yet an extension is in use")


def check_deflate_agreement(
    offer: Sequence[ExtensionParameter],
    answer_params: Sequence[ExtensionParameter],
    server_side: PerMessageDeflate,
) -> None:
    """A client that made ``offer`` accepts the answer, and the two sides agree: each
    compresses with a window the other can decompress with, and resets its compressor after
    each message when the other drops its decompressor."""
    values = dict(offer)
    bits = values.get("client_max_window_bits")
    factory = ClientPerMessageDeflateFactory(
        server_no_context_takeover="server_no_context_takeover" in values,
        client_no_context_takeover="client_no_context_takeover" in values,
        server_max_window_bits=(
            int(values["server_max_window_bits"] or "")
            if "server_max_window_bits" in values
            else None
        ),
        client_max_window_bits=(
            None if "client_max_window_bits" not in values else True if bits is None else int(bits)
        ),
    )
    try:
        client_side = factory.process_response_params(answer_params, [])
    except NegotiationError as exc:
        raise AssertionError(f"a client refuses the answer {answer_params}: {exc}") from exc
    pairs = [(client_side, server_side), (server_side, client_side)]
    for sender, receiver in pairs:
        assert sender.local_max_window_bits <= receiver.remote_max_window_bits, (sender, receiver)
        if receiver.remote_no_context_takeover:
            assert sender.local_no_context_takeover, (sender, receiver)


def check_client(client: ClientProtocol, driver: Driver, eof: bool) -> None:
    events, writes = driver.events, driver.writes
    handshake = [event for event in events if not isinstance(event, Frame)]
    assert len(handshake) <= 1 and events[: len(handshake)] == handshake, events
    exc = client.handshake_exc
    if exc is not None:
        # RFC 6455 section 4.1: the client fails the connection: no close frame, no frames.
        assert isinstance(exc, HandshakeError), repr(exc)
        assert events == handshake and writes == [b""], (events, writes)
        if isinstance(exc, InvalidStatus):
            assert handshake == [exc.response] and exc.response.status_code != 101
        assert client.state is (State.CLOSED if eof else State.CONNECTING)
        return
    if not handshake:
        assert not eof, "end of stream without a response nor a failure"
        assert events == [] and writes == [] and client.state is State.CONNECTING
        return
    response = handshake[0]
    assert isinstance(response, Response) and response.status_code == 101, response
    assert client.response is response
    check_offer_kept(client)
    check_frames(client, events[1:], writes)


def check_offer_kept(client: ClientProtocol) -> None:
    """The extension in use keeps the promises the client's offer made (RFC 7692 7.1)."""
    assert client.subprotocol is None or client.subprotocol in client.available_subprotocols
    assert len(client.extensions) <= 1, client.extensions
    for extension in client.extensions:
        assert isinstance(extension, PerMessageDeflate)
        (factory,) = client.available_extensions
        assert isinstance(factory, ClientPerMessageDeflateFactory)
        if factory.server_no_context_takeover:
            assert extension.remote_no_context_takeover
        if factory.client_no_context_takeover:
            assert extension.local_no_context_takeover
        if factory.server_max_window_bits is not None:
            assert extension.remote_max_window_bits <= factory.server_max_window_bits
        bits = factory.client_max_window_bits
        if bits is not None and bits is not True:
            assert extension.local_max_window_bits <= bits


def run(
    flags: int, chunks: Sequence[bytes], eof: bool, *, into: bool = False, pending: bool = False
) -> tuple[Protocol, Driver]:
    """Feed ``chunks`` to a new client or server and check the outcome."""
    max_pending = 1 if pending else None
    protocol: Protocol
    if flags & 1:
        protocol = new_client(flags)
        driver = Driver(protocol, into=into, max_pending=max_pending).run(chunks, eof)
        check_client(protocol, driver, eof)
    else:
        protocol = server = new_server(flags)
        on_request = answer(server, bool(flags & 0x40))
        driver = Driver(protocol, into=into, max_pending=max_pending, on_handshake=on_request)
        driver.run(chunks, eof)
        check_server(server, driver, bool(flags & 0x40))
    return protocol, driver


def TestOneInput(data: bytes) -> None:
    source = Input(data)
    flags = source.byte()
    seed = source.byte()
    amp = source.byte()
    stream = amplify(source.rest(), amp)
    eof = bool(flags & 2)
    protocol, whole = run(flags, [stream], eof)
    outcome = normalize(protocol, whole, http=not flags & 1)
    check_misuse(protocol, eof)
    if len(stream) > CHUNKING_LIMIT and amp & 3 == 0:
        return
    chunks = split(stream, seed)
    protocol, chunked = run(flags, chunks, eof, into=bool(amp & 0x80), pending=bool(amp & 0x40))
    assert normalize(protocol, chunked, http=not flags & 1) == outcome, "depends on the chunking"


if __name__ == "__main__":
    main(TestOneInput)
