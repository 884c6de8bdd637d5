"""Masking (RFC 6455 section 5.3): the C speedup and its pure-Python reference agree."""

from __future__ import annotations

import importlib
import os

import pytest

from socketeer.protocol import masking

IMPLEMENTATIONS = [pytest.param(masking._py_apply_mask, id="python")]
try:
    from socketeer.protocol._speedups import apply_mask as c_apply_mask
except ImportError:  # pragma: no cover - depends on the build
    if os.environ.get("CI") == "true":
        raise
else:
    IMPLEMENTATIONS.append(pytest.param(c_apply_mask, id="c"))


def reference(data: bytes, mask: bytes) -> bytes:
    return bytes(byte ^ mask[i % 4] for i, byte in enumerate(data))


@pytest.mark.parametrize("apply_mask", IMPLEMENTATIONS)
class TestApplyMask:
    @pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 125, 4096, 65537])
    def test_matches_reference(self, apply_mask, size: int) -> None:
        data = bytes((i * 7 + 3) % 256 for i in range(size))
        mask = b"\x37\xfa\x21\x3d"
        assert apply_mask(data, mask) == reference(data, mask)
        assert apply_mask(apply_mask(data, mask), mask) == data

    def test_rfc_example(self, apply_mask) -> None:
        assert apply_mask(b"Hello", bytes.fromhex("37fa213d")) == bytes.fromhex("7f9f4d5158")

    @pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
    def test_accepts_buffers(self, apply_mask, kind) -> None:
        result = apply_mask(kind(b"Hello"), bytes.fromhex("37fa213d"))
        assert type(result) is bytes
        assert result == bytes.fromhex("7f9f4d5158")

    def test_large_payload_released_gil(self, apply_mask) -> None:
        data = os.urandom(300_000)
        assert apply_mask(data, b"\x01\x02\x03\x04") == reference(data, b"\x01\x02\x03\x04")

    @pytest.mark.parametrize("mask", [b"", b"\x00", b"\x00" * 5])
    def test_mask_must_be_4_bytes(self, apply_mask, mask: bytes) -> None:
        with pytest.raises(ValueError, match="4 bytes"):
            apply_mask(b"data", mask)


def test_speedups_required_in_ci() -> None:
    # `make test` runs tests/protocol a second time on the pure-Python reference alone.
    if os.environ.get("CI") == "true" and os.environ.get("SOCKETEER_NO_SPEEDUPS") != "1":
        assert masking.SPEEDUPS


def test_no_speedups_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCKETEER_NO_SPEEDUPS", "1")
    try:
        module = importlib.reload(masking)
        assert module.SPEEDUPS is False
        assert module.apply_mask is module._py_apply_mask
    finally:
        monkeypatch.undo()  # the environment of the run, with or without the variable
        importlib.reload(masking)


def test_new_mask_is_fresh() -> None:
    masks = {masking.new_mask() for _ in range(5000)}
    assert all(len(mask) == 4 for mask in masks)
    # 5000 draws of 32 random bits collide with a probability of about 0.3%.
    assert len(masks) >= 4990
