"""UTF-8 validation for text messages and close reasons (RFC 6455 section 8.1).

RFC 6455 section 8.1: "When an endpoint is to interpret a byte stream as UTF-8 but finds that
the byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the WebSocket
Connection_." Invalid bytes are reported as soon as they arrive, even in the middle of a
fragmented message, and a message split at any byte, inside a character too, is accepted when
the whole is valid.
"""

from __future__ import annotations

import codecs

__all__ = ["Utf8Validator", "validate_utf8"]


def validate_utf8(data: bytes | bytearray | memoryview) -> None:
    """Check that ``data`` is complete, valid UTF-8.

    Raises:
        UnicodeDecodeError: if it is not.
    """
    codecs.decode(data, "utf-8")


class Utf8Validator:
    """Validate UTF-8 arriving in pieces; fail on the first piece that makes it invalid."""

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def feed(self, data: bytes | bytearray | memoryview, final: bool) -> None:
        """Validate the next piece; ``final`` is true for the last one.

        Raises:
            UnicodeDecodeError: as soon as the bytes seen so far cannot start valid UTF-8.
        """
        self._decoder.decode(data, final)
        if not final:
            pending = self._decoder.getstate()[0]
            # CPython's decoder already rejects every impossible prefix except one: a lead byte
            # 0xED followed by 0xA0-0xBF, which can only encode a UTF-16 surrogate, is held
            # back until the third byte arrives. Reject it now, as the RFC asks.
            if len(pending) >= 2 and pending[0] == 0xED and pending[1] >= 0xA0:
                raise UnicodeDecodeError("utf-8", pending, 0, 2, "invalid continuation byte")

    def reset(self) -> None:
        """Forget any pending bytes, to start a new message."""
        self._decoder.reset()
