"""Incremental UTF-8 validation (RFC 6455 section 8.1)."""

from __future__ import annotations

import pytest

from socketeer.protocol.utf8 import Utf8Validator, validate_utf8


def test_validate_utf8() -> None:
    validate_utf8("κόσμε 𝄞".encode())
    with pytest.raises(UnicodeDecodeError):
        validate_utf8(b"\xce\xba\xe1\xbd")


@pytest.mark.parametrize("text", ["", "ascii", "κόσμε", "𝄞𝄞", "\U0010ffff", "\u0800\uffff"])
def test_any_split_is_accepted(text: str) -> None:
    data = text.encode()
    for split in range(len(data) + 1):
        validator = Utf8Validator()
        validator.feed(data[:split], False)
        validator.feed(data[split:], True)


def test_byte_by_byte() -> None:
    validator = Utf8Validator()
    data = "κόσμε𝄞".encode()
    for byte in data[:-1]:
        validator.feed(bytes([byte]), False)
    validator.feed(data[-1:], True)


@pytest.mark.parametrize(
    ("prefix", "bad"),
    [
        (b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", b"\xf4\x90"),  # above U+10FFFF
        (b"ok", b"\xed\xa0"),  # a surrogate, U+D800
        (b"ok", b"\xed\xbf"),  # a surrogate, U+DFFF
        (b"ok", b"\xc0"),  # overlong lead byte
        (b"ok", b"\xe0\x80"),  # overlong 3-byte form
        (b"ok", b"\xf0\x80"),  # overlong 4-byte form
        (b"ok", b"\xf5"),  # lead byte beyond U+10FFFF
        (b"ok", b"\x80"),  # lone continuation byte
    ],
)
def test_fails_fast(prefix: bytes, bad: bytes) -> None:
    validator = Utf8Validator()
    validator.feed(prefix, False)
    with pytest.raises(UnicodeDecodeError):
        validator.feed(bad, False)


def test_incomplete_at_end_fails() -> None:
    validator = Utf8Validator()
    validator.feed(b"\xe2\x82", False)
    with pytest.raises(UnicodeDecodeError):
        validator.feed(b"", True)


def test_reset() -> None:
    validator = Utf8Validator()
    validator.feed(b"\xe2\x82", False)
    validator.reset()
    validator.feed(b"ok", True)
