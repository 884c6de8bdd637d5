"""Abuse and faults after the handshake: frames that break RFC 6455 or RFC 7692, and
messages past ``max_size``, sent by raw clients to real servers of both drivers.

Each attack must be answered with the right close code on the wire, then the end of the TCP
connection, while another, well-behaved connection to the same server keeps echoing; a
message past ``max_size`` must cost the server a bounded amount of memory, whatever it
announces or inflates to.
"""

from __future__ import annotations

import tracemalloc
import zlib

import pytest
from abuse_helpers import (
    KINDS,
    assert_echoes,
    frame,
    open_raw,
    running_server,
    well_behaved_client,
)

FIN = 0x80
RSV1, RSV2, RSV3 = 0x40, 0x20, 0x10
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

PROTOCOL_ERROR = 1002
INVALID_PAYLOAD = 1007
MESSAGE_TOO_BIG = 1009


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


# RFC 6455 failure paths: (what the client sends, the close code the server must send).
FAULTS = {
    # Section 8.1: "When an endpoint is to interpret a byte stream as UTF-8 but finds that the
    # byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the
    # WebSocket Connection_"; section 7.4.1: 1007 for "data within a message that was not
    # consistent with the type of the message".
    "invalid UTF-8 in a text message": (frame(FIN | TEXT, b"caf\xc3\x28"), INVALID_PAYLOAD),
    "invalid UTF-8 split across fragments": (
        frame(TEXT, b"caf\xc3") + frame(FIN | CONT, b"\x28 au lait"),
        INVALID_PAYLOAD,
    ),
    "invalid UTF-8 in the last fragment": (
        frame(TEXT, b"valid ") + frame(CONT, b"still ") + frame(FIN | CONT, b"\xff"),
        INVALID_PAYLOAD,
    ),
    # Section 5.5.1: the reason's "interpretation is not defined by this specification",
    # but "the data [...] is UTF-8-encoded"; section 8.1 applies.
    "invalid UTF-8 in a close reason": (
        frame(FIN | CLOSE, close_payload(1000, b"bye \xff")),
        INVALID_PAYLOAD,
    ),
    # Section 5.1: "The server MUST close the connection upon receiving a frame that is not
    # masked. [...] a server MAY send a Close frame with a status code of 1002".
    "unmasked text frame": (frame(FIN | TEXT, b"hello", mask=False), PROTOCOL_ERROR),
    "unmasked ping": (frame(FIN | PING, b"", mask=False), PROTOCOL_ERROR),
    # Section 5.2: "If a nonzero value is received and none of the negotiated extensions
    # defines the meaning of such a nonzero value, the receiving endpoint MUST _Fail the
    # WebSocket Connection_." (No extension was negotiated.)
    "RSV1 without extension": (frame(FIN | RSV1 | TEXT, b"hello"), PROTOCOL_ERROR),
    "RSV2 without extension": (frame(FIN | RSV2 | BINARY, b"hello"), PROTOCOL_ERROR),
    "RSV3 without extension": (frame(FIN | RSV3 | TEXT, b"hello"), PROTOCOL_ERROR),
    "RSV1 on a ping": (frame(FIN | RSV1 | PING, b""), PROTOCOL_ERROR),
    # Section 5.5: "All control frames MUST have a payload length of 125 bytes or less and
    # MUST NOT be fragmented."
    "fragmented ping": (frame(PING, b"ping"), PROTOCOL_ERROR),
    "fragmented close": (frame(CLOSE, close_payload(1000)), PROTOCOL_ERROR),
    "fragmented pong": (frame(PONG, b""), PROTOCOL_ERROR),
    "ping of 126 bytes": (frame(FIN | PING, b"p" * 126), PROTOCOL_ERROR),
    "close of 126 bytes": (frame(FIN | CLOSE, close_payload(1000, b"r" * 124)), PROTOCOL_ERROR),
    # Section 5.4: a fragmented message is "a single frame with the FIN bit clear and an
    # opcode other than 0, followed by zero or more frames with the FIN bit clear and the
    # opcode set to 0, and terminated by a single frame with the FIN bit set and an opcode
    # of 0"; "fragments of one message MUST NOT be interleaved between the fragments of
    # another message".
    "continuation without a start": (frame(FIN | CONT, b"orphan"), PROTOCOL_ERROR),
    "unfinished continuation without a start": (frame(CONT, b"orphan"), PROTOCOL_ERROR),
    "text frame in a fragmented text message": (
        frame(TEXT, b"first") + frame(FIN | TEXT, b"second"),
        PROTOCOL_ERROR,
    ),
    "binary frame in a fragmented text message": (
        frame(TEXT, b"first") + frame(CONT, b"more") + frame(FIN | BINARY, b"second"),
        PROTOCOL_ERROR,
    ),
    # Section 5.5.1: "If there is a body, the first two bytes of the body MUST be a 2-byte
    # unsigned integer [...] representing a status code".
    "close frame with a 1-byte payload": (frame(FIN | CLOSE, b"\x03"), PROTOCOL_ERROR),
}

# Section 5.2: "%x3-7 are reserved for further non-control frames", "%xB-F are reserved for
# further control frames"; receiving one fails the connection (section 5.2 as for RSV bits,
# and section 7.4.1's 1002 for a protocol error).
FAULTS.update(
    {
        f"reserved opcode {opcode:#x}": (frame(FIN | opcode, b""), PROTOCOL_ERROR)
        for opcode in [*range(0x3, 0x8), *range(0xB, 0x10)]
    }
)

# Section 7.4: codes 0-999 are "not used", 1004 is reserved, 1005, 1006 and 1015 "MUST NOT
# be set as a status code in a Close control frame by an endpoint", 1016-2999 are for this
# protocol's future revisions and extensions, and there is nothing above 4999. Section 7.4.1
# with 1002 for "a protocol error".
BAD_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000]
FAULTS.update(
    {
        f"close code {code}": (frame(FIN | CLOSE, close_payload(code)), PROTOCOL_ERROR)
        for code in BAD_CLOSE_CODES
    }
)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(FAULTS))
async def test_rfc_fault_closes_with_code_and_others_keep_echoing(kind: str, name: str) -> None:
    data, code = FAULTS[name]
    async with running_server(kind) as server:
        async with well_behaved_client(server.port) as good:
            async with open_raw(server.port) as raw:
                await raw.send(data)
                received, reason = await raw.read_close()
                assert received == code, f"{name}: closed with {received} ({reason!r})"
                reason.decode()  # the server's reason is valid UTF-8
                await raw.assert_eof()
            await assert_echoes(good)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("code", [1000, 1001, 3000, 4999])
async def test_valid_close_code_is_echoed(kind: str, code: int) -> None:
    # Section 7.4.2: 3000-3999 are registered with IANA, 4000-4999 are for private use; a
    # close frame with one is a normal closing handshake, which the server echoes (section
    # 5.5.1), then it closes the TCP connection first (section 7.1.1).
    async with running_server(kind) as server:
        async with well_behaved_client(server.port) as good:
            async with open_raw(server.port) as raw:
                await raw.send(frame(FIN | CLOSE, close_payload(code, b"done")))
                assert await raw.read_close() == (code, b"done")
                await raw.assert_eof()
            await assert_echoes(good)


# Messages past max_size: 1009 (section 7.4.1: "a message that is too big for it to
# process"), and memory that stays flat.

MAX_SIZE = 65_536
MEMORY_BOUND = 8 * MAX_SIZE + 1_048_576
"""The most memory the test process (where the server runs) may gain during an attack."""


def deflate_bomb(size: int) -> bytes:
    """``size`` zero bytes compressed as a permessage-deflate message (RFC 7692 section
    7.2.1: raw DEFLATE, sync flush, without its final ``00 00 ff ff``), made without ever
    holding the zeros."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1_048_576)
    parts = [compressor.compress(chunk) for _ in range(size // len(chunk))]
    parts.append(compressor.compress(bytes(size % len(chunk))))
    parts.append(compressor.flush(zlib.Z_SYNC_FLUSH))
    data = b"".join(parts)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


def too_big_attacks() -> dict[str, tuple[list[str], bytes]]:
    half = MAX_SIZE // 2
    bomb = deflate_bomb(1000 * MAX_SIZE)
    # Small enough to pass any check on the frame's length: only inflating it finds out.
    assert len(bomb) <= MAX_SIZE
    return {
        "one frame of max_size + 1": ([], frame(FIN | BINARY, bytes(MAX_SIZE + 1))),
        "fragments adding up to max_size + 1": (
            [],
            frame(BINARY, bytes(half)) + frame(CONT, bytes(half)) + frame(FIN | CONT, b"\0"),
        ),
        "text fragments adding up to max_size + 1": (
            [],
            frame(TEXT, b"a" * half) + frame(FIN | CONT, b"a" * (half + 1)),
        ),
        # A header alone, then a little of the payload it announces.
        "a frame header announcing 2**63 - 1 bytes": (
            [],
            frame(FIN | BINARY, length=2**63 - 1) + bytes(4096),
        ),
        "compressed message inflating 1000 times past max_size": (
            ["Sec-WebSocket-Extensions: permessage-deflate"],
            frame(FIN | RSV1 | BINARY, bomb),
        ),
    }


TOO_BIG = too_big_attacks()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(TOO_BIG))
async def test_message_too_big_closes_with_1009_in_bounded_memory(kind: str, name: str) -> None:
    headers, attack = TOO_BIG[name]
    async with running_server(kind, max_size=MAX_SIZE) as server:
        async with well_behaved_client(server.port) as good:
            async with open_raw(server.port, *headers) as raw:
                if headers:
                    assert b"permessage-deflate" in raw.response.lower()
                tracemalloc.start()
                try:
                    baseline, _ = tracemalloc.get_traced_memory()
                    await raw.send(attack)
                    code, reason = await raw.read_close()
                    await raw.assert_eof()
                    _, peak = tracemalloc.get_traced_memory()
                finally:
                    tracemalloc.stop()
                assert code == MESSAGE_TOO_BIG, f"{name}: closed with {code} ({reason!r})"
                assert peak - baseline < MEMORY_BOUND, (
                    f"{name}: memory grew by {peak - baseline} bytes during the attack"
                )
            await assert_echoes(good)
