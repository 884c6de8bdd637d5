"""Write the seed corpus of every fuzz target to ``fuzz/corpus/<target>/``.

Run it after changing a target's input layout: ``python fuzz/make_corpus.py``. The seeds are
deterministic (fixed masking keys), so running it again rewrites the same files. Each seed
is a target's configuration bytes (see its docstring) followed by its payload.
"""

from __future__ import annotations

import pathlib
import shutil
import struct
import zlib

from socketeer.protocol.extensions.permessage_deflate import PerMessageDeflate
from socketeer.protocol.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Frame,
)
from socketeer.protocol.http11 import MAX_LINE_LENGTH

CORPUS = pathlib.Path(__file__).parent / "corpus"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
MASK = b"\x37\xfa\x21\x3d"

# fuzz_frames.py flags: bit 0 client, bits 1-3 max_size index, bit 4 EOF, bit 5 max_pending,
# bit 6 receive_into, bit 7 Python twins.
CLIENT = 0x01
MAX_NONE = 1 << 1
MAX_0 = 2 << 1
MAX_125 = 4 << 1
MAX_1000 = 6 << 1
EOF = 0x10
PENDING = 0x20
INTO = 0x40
TWINS = 0x80


def frame(
    opcode: int, data: bytes, *, fin: bool = True, rsv1: bool = False, client: bool
) -> bytes:
    """A frame as a peer of a ``client`` (unmasked) or of a server (masked) sends it."""
    value = Frame(opcode, data, fin, rsv1)  # type: ignore[arg-type]
    return value.serialize(mask=not client, mask_key=MASK)


def header(first_byte: int, length: int, *, masked: bool) -> bytes:
    """A header with a 64-bit length, for frames larger than any seed."""
    head = struct.pack("!BBQ", first_byte, (0x80 if masked else 0) | 127, length)
    return head + (MASK if masked else b"")


def compressed(
    messages: list[list[bytes]], *, opcode: int = OP_BINARY, client: bool, takeover: bool = True
) -> bytes:
    """Messages compressed by a peer's permessage-deflate, each given as its fragments."""
    sender = PerMessageDeflate(False, not takeover, 15, 15)
    out = b""
    for fragments in messages:
        for index, fragment in enumerate(fragments):
            value = Frame(OP_CONT if index else opcode, fragment, index == len(fragments) - 1)  # type: ignore[arg-type]
            value = sender.encode(value)
            out += value.serialize(mask=not client, mask_key=MASK)
    return out


# Structured mode (bit 7 of byte 1): frames described by a descriptor byte (bits 0-3
# opcode, bit 4 FIN, bit 5 flip RSV1, bit 6 wrong masking, bit 7 compress), a length byte
# and the payload; lengths 240-255 make (n - 239) * 8 KiB from 4 pattern bytes.
STRUCTURED = 0x80
FIN_ = 0x10
COMPRESS = 0x80


def described(*frames: tuple[int, bytes]) -> bytes:
    return b"".join(bytes([descriptor, len(payload)]) + payload for descriptor, payload in frames)


def large(descriptor: int, units: int, pattern: bytes) -> bytes:
    return bytes([descriptor, 239 + units]) + pattern


def structured_seeds(deflate: bool) -> dict[str, bytes]:
    config = bytes([7 << 2 | 7 << 5]) if deflate else b""
    euro = "\u20ac".encode()
    conversation = described(
        (OP_TEXT, b"hel"),
        (OP_PING | FIN_, b"ping"),
        (OP_CONT, b"lo " + euro[:2]),
        (OP_CONT | FIN_, euro[2:]),
        (OP_BINARY | FIN_ | COMPRESS, b"abc" * 40),
        (OP_TEXT | COMPRESS, "caf\u00e9 ".encode() * 5),
        (OP_PONG | FIN_, b""),
        (OP_CONT | FIN_, b"!"),
        (OP_CLOSE | FIN_, struct.pack("!H", 1000) + b"bye"),
    )
    return {
        "structured-conversation": bytes([0, STRUCTURED | 3]) + config + conversation,
        "structured-client": bytes([CLIENT | PENDING, STRUCTURED | 1]) + config + conversation,
        "structured-large": bytes([MAX_NONE | INTO, STRUCTURED | 6])
        + config
        + large(OP_BINARY | FIN_ | COMPRESS, 10, b"\x01\x02\x03\x04")
        + large(OP_BINARY | FIN_, 6, b"\x81seed"[:4]),
        "structured-over-max": bytes([(7 << 1) | TWINS, STRUCTURED | 5])
        + config
        + large(OP_TEXT | COMPRESS, 8, b"abcd")
        + large(OP_CONT | FIN_, 1, b"efgh"),
        "structured-invalid": bytes([CLIENT | EOF, STRUCTURED | 2])
        + config
        + described((OP_TEXT | FIN_ | 0x20, b"rsv1"), (OP_PING, b"not final")),
    }


def frames_seeds() -> dict[str, bytes]:
    c, s = True, False  # the receiving side is a client, or a server
    close_1000 = struct.pack("!H", 1000) + b"bye"
    conversation = (
        frame(OP_TEXT, b"hello", client=s)
        + frame(OP_PING, b"ping", client=s)
        + frame(OP_BINARY, bytes(range(200)), fin=False, client=s)
        + frame(OP_PONG, b"", client=s)
        + frame(OP_CONT, b"\x00" * 10, client=s)
        + frame(OP_TEXT, "caf\u00e9 \U0001f600".encode(), client=s)
        + frame(OP_CLOSE, close_1000, client=s)
    )
    euro = "\u20ac".encode()
    return {
        "text-masked": bytes([0, 0]) + frame(OP_TEXT, b"hello", client=s),
        "binary-126": bytes([0, 3]) + frame(OP_BINARY, bytes(range(126)), client=s),
        "text-client": bytes([CLIENT, 1]) + frame(OP_TEXT, b"hello", client=c),
        "fragmented-ping": bytes([PENDING, 5])
        + frame(OP_TEXT, b"hel", fin=False, client=s)
        + frame(OP_PING, b"are you there", client=s)
        + frame(OP_CONT, b"lo", client=s),
        "utf8-split": bytes([CLIENT | TWINS, 0])
        + frame(OP_TEXT, euro[:1], fin=False, client=c)
        + frame(OP_CONT, euro[1:], fin=False, client=c)
        + frame(OP_CONT, b"!", client=c),
        "utf8-invalid": bytes([0, 2]) + frame(OP_TEXT, b"ab\xed\xa0\x80cd", client=s),
        "close-1000": bytes([EOF, 4]) + frame(OP_CLOSE, close_1000, client=s),
        "close-empty-client": bytes([CLIENT | EOF, 4]) + frame(OP_CLOSE, b"", client=c),
        "close-1005": bytes([0, 6]) + frame(OP_CLOSE, struct.pack("!H", 1005), client=s),
        "unmasked-to-server": bytes([0, 1]) + frame(OP_TEXT, b"hello", client=c),
        "reserved-opcode": bytes([CLIENT, 1]) + frame(0x3, b"", client=c),
        "too-big": bytes([MAX_125, 3]) + frame(OP_BINARY, bytes(126), client=s),
        "max-size-0": bytes([CLIENT | MAX_0, 3])
        + frame(OP_TEXT, b"", client=c)
        + frame(OP_TEXT, b"x", client=c),
        "fragments-over-max": bytes([MAX_1000, 6])
        + frame(OP_BINARY, bytes(600), fin=False, client=s)
        + frame(OP_CONT, bytes(600), client=s),
        "large-partial": bytes([MAX_NONE | INTO | EOF, 7])
        + header(0x82, 70_000, masked=True)
        + bytes(range(256)) * 8,
        "large-partial-client": bytes([CLIENT | INTO | TWINS, 6])
        + header(0x02, 100_000, masked=False)
        + bytes(3000),
        "eof-mid-frame": bytes([EOF, 2]) + frame(OP_TEXT, b"hello", client=s)[:-2],
        "conversation": bytes([PENDING | INTO, 2]) + conversation,
        **structured_seeds(deflate=False),
    }


def frames_deflate_seeds() -> dict[str, bytes]:
    c, s = True, False
    text = b"hello hello hello, permessage-deflate " * 4
    # Config byte: bit 0 remote_no_context_takeover, bit 1 local, bits 2-4 and 5-7 windows - 8.
    default = 7 << 2 | 7 << 5
    no_takeover = default | 1
    raw = zlib.compressobj(wbits=-15)
    bfinal = raw.compress(b"first stream") + raw.flush()  # ends with BFINAL set
    second = zlib.compressobj(wbits=-15)
    bfinal += second.compress(b"second") + second.flush(zlib.Z_SYNC_FLUSH)
    bomb = zlib.compressobj(wbits=-15)
    zeros = bomb.compress(bytes(100_000)) + bomb.flush(zlib.Z_SYNC_FLUSH)
    return {
        "text": bytes([0, 0, default]) + compressed([[text]], opcode=OP_TEXT, client=s),
        "fragmented": bytes([0, 3, default])
        + compressed([[b"abc" * 20, b"def" * 20, b"abc" * 20]], client=s),
        "takeover": bytes([CLIENT, 2, default]) + compressed([[text], [text]], client=c),
        "no-takeover": bytes([0, 5, no_takeover])
        + compressed([[text], [text]], client=s, takeover=False),
        "uncompressed": bytes([0, 1, default]) + frame(OP_TEXT, b"plain", client=s),
        "window-8": bytes([CLIENT | TWINS, 4, 0]) + compressed([[text]], client=c),
        "rsv1-continuation": bytes([0, 0, default])
        + frame(OP_TEXT, b"a", fin=False, client=s)
        + frame(OP_CONT, b"b", rsv1=True, client=s),
        "rsv1-ping": bytes([0, 0, default]) + frame(OP_PING, b"", rsv1=True, client=s),
        "invalid-deflate": bytes([0, 0, default])
        + frame(OP_BINARY, b"\xff\xff\xff\xff", rsv1=True, client=s),
        "bomb": bytes([MAX_1000, 6, default]) + frame(OP_BINARY, zeros[:-4], rsv1=True, client=s),
        "bfinal-then-more": bytes([CLIENT, 2, default])
        + frame(OP_BINARY, bfinal[:-4], rsv1=True, client=c),
        "compressed-then-close": bytes([EOF | PENDING, 3, default])
        + compressed([[text]], client=s)
        + frame(OP_PING, b"p", client=s)
        + frame(OP_CLOSE, struct.pack("!H", 1001), client=s),
        **structured_seeds(deflate=True),
    }


def request(*lines: str, target: str = "/chat", method: str = "GET") -> bytes:
    head = [
        f"{method} {target} HTTP/1.1",
        "Host: example.com",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {KEY}",
        "Sec-WebSocket-Version: 13",
        *lines,
    ]
    return "\r\n".join(head).encode() + b"\r\n\r\n"


def response(*lines: str, status: str = "101 Switching Protocols") -> bytes:
    head = [
        f"HTTP/1.1 {status}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {ACCEPT}",
        *lines,
    ]
    return "\r\n".join(head).encode() + b"\r\n\r\n"


def handshake_seeds() -> dict[str, bytes]:
    # Flags: bit 0 client, bit 1 EOF, bits 2-3 extensions, bits 4-5 subprotocols, bit 6
    # respond(), bit 7 origins.
    hs_client, hs_eof, ext1, ext2, sub1, sub3 = 1, 2, 1 << 2, 2 << 2, 1 << 4, 3 << 4
    masked_text = frame(OP_TEXT, b"hi", client=False)
    text = frame(OP_TEXT, b"hi", client=True)
    offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"
    line = "X-Pad: " + "a" * (MAX_LINE_LENGTH - 7)
    return {
        "request": bytes([0, 2, 0]) + request() + masked_text,
        "request-deflate": bytes([ext1, 3, 0])
        + request(offer)
        + compressed([[b"hello" * 10]], client=False),
        "request-deflate-params": bytes([ext2, 1, 0])
        + request(
            "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=11; "
            'client_max_window_bits="10"; server_no_context_takeover, permessage-deflate'
        ),
        "request-subprotocols": bytes([sub1, 4, 0])
        + request("Sec-WebSocket-Protocol: superchat, chat", "Origin: https://example.com"),
        "request-echo-subprotocol": bytes([sub3, 0, 0])
        + request("Sec-WebSocket-Protocol: a, b", "Sec-WebSocket-Protocol: c"),
        "request-absolute-form": bytes([0x80, 5, 0])
        + request(target="http://example.com/chat?x=1"),
        "request-post": bytes([0, 0, 0]) + request(method="POST"),
        "request-version-8": bytes([0, 0, 0]) + request().replace(b"Version: 13", b"Version: 8"),
        "request-no-upgrade": bytes([0, 0, 0]) + request().replace(b"Upgrade: websocket", b"X: y"),
        "request-bad-origin": bytes([0x80, 0, 0]) + request("Origin: https://evil.example"),
        "request-http10": bytes([0, 0, 0]) + request().replace(b"HTTP/1.1", b"HTTP/1.0"),
        "request-space-before-colon": bytes([0, 1, 0]) + request().replace(b"Host:", b"Host :"),
        "request-long-line": bytes([0, 7, 0])
        + request().replace(b"\r\n\r\n", b"\r\n" + line.encode() + b"\r\n\r\n"),
        "request-amplified-line": bytes([0, 3, 1 | 5 << 2]) + request(),
        "request-amplified-headers": bytes([0, 6, 2 | 4 << 2]) + request(),
        "request-respond": bytes([0x40 | hs_eof, 2, 0]) + request() + masked_text,
        "request-truncated-eof": bytes([hs_eof, 1, 0]) + request()[:40],
        "response": bytes([hs_client, 2, 0]) + response() + text,
        "response-deflate": bytes([hs_client | ext1, 3, 0])
        + response("Sec-WebSocket-Extensions: permessage-deflate")
        + compressed([[b"hello" * 10]], client=True),
        "response-deflate-params": bytes([hs_client | ext2, 1, 0])
        + response(
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
            "server_max_window_bits=9; client_max_window_bits=11"
        ),
        "response-subprotocol": bytes([hs_client | sub1, 0, 0])
        + response("Sec-WebSocket-Protocol: chat"),
        "response-404": bytes([hs_client, 4, 0])
        + b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
        "response-200-until-eof": bytes([hs_client | hs_eof, 5, 0])
        + b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome body",
        "response-bad-accept": bytes([hs_client, 0, 0])
        + response().replace(ACCEPT.encode(), b"AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        "response-unknown-extension": bytes([hs_client, 0, 0])
        + response("Sec-WebSocket-Extensions: x-unknown; a=1"),
        "response-chunked": bytes([hs_client | hs_eof, 1, 0])
        + b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n4\r\noops\r\n0\r\n\r\n",
    }


def uri_seeds() -> dict[str, bytes]:
    # Mode: bits 0-1 prefix ("", "ws://", "wss://", "wS://u:p@"), bits 2-3 decoding
    # (UTF-8 with surrogateescape, Latin-1, UTF-16-LE, UTF-8 with replacement), bit 4 bytes.
    uris = {
        "plain": (0, "ws://example.com/chat?room=1"),
        "port": (0, "wss://localhost:8765/"),
        "ipv4": (1, "127.0.0.1:1/"),
        "ipv6": (1, "[2001:DB8::1]:443/a/b?c"),
        "ipv6-mapped": (2, "[::ffff:192.0.2.1]"),
        "ipv6-zone": (1, "[fe80::1%25eth0]/"),
        "userinfo": (0, "ws://user:p%40ss@example.com/"),
        "userinfo-prefix": (3, "example.com:08080/x"),
        "userinfo-colon": (0, "ws://a%3Ab:c@h/"),
        "idna": (0, "wss://b\u00fccher.example/caf\u00e9?q=th\u00e9"),
        "idna-upper": (0, "ws://B\u00dcCHER.\u4f8b\u3048/"),
        "percent-host": (0, "ws://ex%61mple.com/%F0%9F%98%80"),
        "bad-percent": (0, "ws://h/a%zz"),
        "fragment": (0, "ws://h/#frag"),
        "no-host": (0, "ws:///path"),
        "port-range": (1, "h:65536"),
        "http-scheme": (0, "http://example.com/"),
        "query-only": (1, "h?a=/?@:&b=%20"),
    }
    seeds = {name: bytes([mode]) + text.encode() for name, (mode, text) in uris.items()}
    seeds["latin1"] = bytes([1 | 1 << 2]) + "h\u00e9/\u00ff".encode("latin-1")
    seeds["utf16"] = bytes([2 << 2]) + "ws://h/\U0001f600\ud800".encode(
        "utf-16-le", "surrogatepass"
    )
    seeds["bytes"] = bytes([0x10]) + b"ws://h/"
    return seeds


def rpc_seeds() -> dict[str, bytes]:
    # Flags: bit 0 binary, bits 1-2 max_batch (100, None, 1, 3), bit 3 as str.
    messages = {
        "request": (0, '{"jsonrpc":"2.0","method":"counter.increment","params":[1,2],"id":1}'),
        "request-named": (8, '{"jsonrpc":"2.0","method":"add","params":{"a":1,"b":2.5},"id":"x"}'),
        "notification": (0, '{"jsonrpc":"2.0","method":"$/cancel","params":{"id":3}}'),
        "response": (0, '{"jsonrpc":"2.0","result":{"a":[1,true,null,"\\u00e9"]},"id":7}'),
        "error": (
            0,
            '{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found",'
            '"data":"x"},"id":2}',
        ),
        "batch": (
            0,
            '[{"jsonrpc":"2.0","method":"a","id":1},{"jsonrpc":"2.0","method":"b"},'
            '{"jsonrpc":"2.0","result":0,"id":-1.5e-7},{"foo":"bar"},1]',
        ),
        "batch-too-long": (3 << 1, "[1,2,3,4]"),
        "empty-batch": (0, "[]"),
        "invalid-json": (0, '{"jsonrpc":"2.0","method":'),
        "nan": (0, '{"jsonrpc":"2.0","method":"a","params":[NaN,Infinity],"id":1}'),
        "big-number": (0, '{"jsonrpc":"2.0","result":1e400,"id":12345678901234567890123}'),
        "surrogate": (8, '{"jsonrpc":"2.0","method":"a","params":["\\ud800"],"id":"\\udc00"}'),
        "bad-version": (0, '{"jsonrpc":"1.0","method":"a","id":true}'),
        "both-result-error": (0, '{"jsonrpc":"2.0","result":1,"error":{},"id":1}'),
        "deep": (0, "[" * 300 + "]" * 300),
        "too-deep": (0, "[" * 1100 + "]" * 1100),
        "too-many-digits": (0, '{"jsonrpc":"2.0","result":' + "9" * 4400 + ',"id":1}'),
        "floats": (0, "[1e-5,1e-9,1e16,5e-324,-0.0,0.1,1.7976931348623157e308]"),
        "binary": (1, '{"jsonrpc":"2.0","method":"a"}'),
    }
    seeds = {name: bytes([flags]) + text.encode() for name, (flags, text) in messages.items()}
    seeds["invalid-utf8"] = bytes([0]) + b'{"jsonrpc":"2.0","method":"\xff"}'
    return seeds


SEEDS = {
    "frames": frames_seeds,
    "frames_deflate": frames_deflate_seeds,
    "handshake": handshake_seeds,
    "uri": uri_seeds,
    "rpc": rpc_seeds,
}


def main() -> None:
    for target, make in SEEDS.items():
        directory = CORPUS / target
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        for name, data in make().items():
            (directory / name).write_bytes(data)
        print(f"{target}: {len(list(directory.iterdir()))} seeds")


if __name__ == "__main__":
    main()
