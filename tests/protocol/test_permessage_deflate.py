"""The permessage-deflate extension (RFC 7692 section 7): negotiation, framing, compression."""

from __future__ import annotations

import itertools
import random
import tracemalloc
import zlib
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socketeer.exceptions import (
    DuplicateParameter,
    InvalidParameterName,
    InvalidParameterValue,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
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
    enable_client_permessage_deflate,
    enable_server_permessage_deflate,
)
from socketeer.protocol.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Frame,
    Opcode,
)
from socketeer.typedefs import ExtensionName, ExtensionParameter

KIB = 1024
MIB = 1024 * KIB
TAIL = b"\x00\x00\xff\xff"

SNCT: ExtensionParameter = ("server_no_context_takeover", None)
CNCT: ExtensionParameter = ("client_no_context_takeover", None)
CMWB: ExtensionParameter = ("client_max_window_bits", None)


def smwb(bits: int | str) -> ExtensionParameter:
    return ("server_max_window_bits", str(bits))


def cmwb(bits: int | str) -> ExtensionParameter:
    return ("client_max_window_bits", str(bits))


def pmd(
    remote_no_context_takeover: bool = False,
    local_no_context_takeover: bool = False,
    remote_max_window_bits: int = 15,
    local_max_window_bits: int = 15,
    **compress_settings: int,
) -> PerMessageDeflate:
    return PerMessageDeflate(
        remote_no_context_takeover,
        local_no_context_takeover,
        remote_max_window_bits,
        local_max_window_bits,
        compress_settings or None,
    )


def parse(hex_bytes: str) -> Frame:
    """A frame from its bytes on the wire, unmasked, as the RFC's examples show them."""
    return Frame.parse(bytes.fromhex(hex_bytes), mask=False)


def wire(frame: Frame) -> str:
    """The bytes of a frame on the wire, unmasked, in the RFC's notation."""
    return frame.serialize(mask=False).hex(" ")


def agreed(extension: PerMessageDeflate) -> tuple[bool, bool, int, int]:
    return (
        extension.remote_no_context_takeover,
        extension.local_no_context_takeover,
        extension.remote_max_window_bits,
        extension.local_max_window_bits,
    )


def fragments(opcode: Opcode, data: bytes, cuts: Sequence[int]) -> list[Frame]:
    """Split a message into frames at the given offsets."""
    bounds = [0, *sorted(min(cut, len(data)) for cut in cuts), len(data)]
    chunks = [data[start:end] for start, end in itertools.pairwise(bounds)]
    return [
        Frame(opcode if index == 0 else OP_CONT, chunk, fin=index == len(chunks) - 1)
        for index, chunk in enumerate(chunks)
    ]


def strict_inflate(payload: bytes, window_bits: int) -> bytes:
    """Decompress a message with a window of exactly ``2**window_bits`` bytes.

    Asking zlib for 16 bytes at a time makes every back-reference go through the window
    instead of the output buffer of the current call, so distances beyond it fail.
    """
    decompressor = zlib.decompressobj(wbits=-window_bits)
    data = payload + TAIL
    output = []
    while data:
        output.append(decompressor.decompress(data, 16))
        data = decompressor.unconsumed_tail
    return b"".join(output)


class OtherExtension(Extension):
    name = ExtensionName("x-other")

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        return frame

    def encode(self, frame: Frame, *, compress: bool = True) -> Frame:
        return frame


class TestExamples:
    """RFC 7692 section 7.2.3: the examples, byte for byte."""

    @pytest.mark.parametrize(
        ("frames", "messages"),
        [
            pytest.param(["c1 07 f2 48 cd c9 c9 07 00"], [b"Hello"], id="7.2.3.1 one frame"),
            pytest.param(
                ["41 03 f2 48 cd", "80 04 c9 c9 07 00"], [b"Hello"], id="7.2.3.1 two fragments"
            ),
            pytest.param(
                ["c1 07 f2 48 cd c9 c9 07 00", "c1 07 f2 48 cd c9 c9 07 00"],
                [b"Hello", b"Hello"],
                id="7.2.3.2 no sharing",
            ),
            pytest.param(
                ["c1 07 f2 48 cd c9 c9 07 00", "c1 05 f2 00 11 00 00"],
                [b"Hello", b"Hello"],
                id="7.2.3.2 sharing",
            ),
            pytest.param(
                ["c1 0b 00 05 00 fa ff 48 65 6c 6c 6f 00"], [b"Hello"], id="7.2.3.3 no compression"
            ),
            pytest.param(["c1 08 f3 48 cd c9 c9 07 00 00"], [b"Hello"], id="7.2.3.4 bfinal"),
            pytest.param(
                ["c1 0d f2 48 05 00 00 00 ff ff ca c9 c9 07 00"],
                [b"Hello"],
                id="7.2.3.5 two blocks",
            ),
            pytest.param(
                ["41 0b f2 48 cd c9 c9 07 00 00 00 ff ff", "80 01 00"],
                [b"Hello"],
                id="7.2.3.6 empty fragment",
            ),
        ],
    )
    def test_decode(self, frames: list[str], messages: list[bytes]) -> None:
        extension = pmd()
        received: list[bytes] = []
        message = b""
        first = True
        for hex_bytes in frames:
            frame = extension.decode(parse(hex_bytes))
            assert not frame.rsv1
            assert frame.opcode is (OP_TEXT if first else OP_CONT)
            message += frame.data
            first = frame.fin
            if frame.fin:
                received.append(message)
                message = b""
        assert received == messages

    def test_encode_one_frame(self) -> None:
        """7.2.3.1: "Hello" in one frame."""
        assert wire(pmd().encode(Frame(OP_TEXT, b"Hello"))) == "c1 07 f2 48 cd c9 c9 07 00"

    def test_encode_sharing_window(self) -> None:
        """7.2.3.2: the second "Hello" refers to the first one."""
        extension = pmd()
        assert wire(extension.encode(Frame(OP_TEXT, b"Hello"))) == "c1 07 f2 48 cd c9 c9 07 00"
        assert wire(extension.encode(Frame(OP_TEXT, b"Hello"))) == "c1 05 f2 00 11 00 00"

    def test_encode_without_sharing_window(self) -> None:
        """7.2.3.2: with no context takeover, the second "Hello" is like the first."""
        extension = pmd(local_no_context_takeover=True)
        assert wire(extension.encode(Frame(OP_TEXT, b"Hello"))) == "c1 07 f2 48 cd c9 c9 07 00"
        assert wire(extension.encode(Frame(OP_TEXT, b"Hello"))) == "c1 07 f2 48 cd c9 c9 07 00"

    def test_encode_no_compression(self) -> None:
        """7.2.3.3: a DEFLATE block with no compression, from zlib's level 0."""
        frame = pmd(level=0).encode(Frame(OP_TEXT, b"Hello"))
        assert wire(frame) == "c1 0b 00 05 00 fa ff 48 65 6c 6c 6f 00"

    def test_encode_empty_fragment(self) -> None:
        """7.2.3.6: a message that ends with an empty fragment, which carries 0x00."""
        extension = pmd()
        first = extension.encode(Frame(OP_TEXT, b"Hello", fin=False))
        last = extension.encode(Frame(OP_CONT, b""))
        # Non-final fragments keep the empty block that ends the flush.
        assert wire(first) == "41 0b f2 48 cd c9 c9 07 00 00 00 ff ff"
        assert wire(last) == "80 01 00"

    def test_encode_empty_fragment_when_zlib_flushes_nothing(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Section 7.2.3.6 still holds if zlib skips a flush that has nothing to flush."""

        class Compressor:
            def compress(self, data: bytes) -> bytes:
                return b""

            def flush(self, mode: int) -> bytes:
                return b""

        monkeypatch.setattr(zlib, "compressobj", lambda **kwargs: Compressor())
        assert wire(pmd().encode(Frame(OP_TEXT, b""))) == "c1 01 00"

    def test_encode_empty_message(self) -> None:
        assert wire(pmd().encode(Frame(OP_BINARY, b""))) == "c2 01 00"

    def test_decode_empty_message(self) -> None:
        assert pmd().decode(parse("c2 01 00")) == Frame(OP_BINARY, b"")

    def test_decode_bfinal_then_more_blocks(self) -> None:
        """Section 7.2.1: "The next DEFLATE block follows the padded data if any."."""
        # "Hel" in a block with BFINAL set, then "lo" in a new stream.
        first = zlib.compressobj(wbits=-15)
        second = zlib.compressobj(wbits=-15)
        payload = first.compress(b"Hel") + first.flush(zlib.Z_FINISH)
        payload += second.compress(b"lo") + second.flush(zlib.Z_SYNC_FLUSH)
        assert payload.endswith(TAIL)
        frame = Frame(OP_TEXT, payload[:-4], rsv1=True)
        assert pmd().decode(frame) == Frame(OP_TEXT, b"Hello")


class TestFraming:
    """RFC 7692 section 6: the "Per-Message Compressed" bit, and what is compressed."""

    @pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
    def test_encode_control_frame(self, opcode: Opcode) -> None:
        frame = Frame(opcode, b"\x03\xe8" * 10)
        assert pmd().encode(frame) is frame

    @pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
    def test_decode_control_frame(self, opcode: Opcode) -> None:
        frame = Frame(opcode, b"\x03\xe8" * 10)
        assert pmd().decode(frame) is frame

    @pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
    def test_decode_control_frame_with_rsv1(self, opcode: Opcode) -> None:
        with pytest.raises(ProtocolError, match="control frame"):
            pmd().decode(Frame(opcode, b"", rsv1=True))

    @pytest.mark.parametrize("compressed", [True, False], ids=["compressed", "uncompressed"])
    def test_decode_continuation_frame_with_rsv1(self, compressed: bool) -> None:
        extension = pmd()
        first = Frame(OP_TEXT, bytes.fromhex("f2 48 cd") if compressed else b"Hel", fin=False)
        extension.decode(first._replace(rsv1=compressed))
        with pytest.raises(ProtocolError, match="continuation frame"):
            extension.decode(Frame(OP_CONT, b"lo", rsv1=True))

    def test_control_frames_between_fragments(self) -> None:
        sender, receiver = pmd(), pmd()
        ping = Frame(OP_PING, b"ping")
        frames = [
            sender.encode(Frame(OP_TEXT, b"Hello, ", fin=False)),
            sender.encode(ping),
            sender.encode(Frame(OP_CONT, b"world!")),
        ]
        assert frames[1] is ping
        assert [frame.rsv1 for frame in frames] == [True, False, False]
        decoded = [receiver.decode(frame) for frame in frames]
        assert decoded[1] is ping
        assert decoded[0].data + decoded[2].data == b"Hello, world!"

    def test_rsv1_only_on_first_frame(self) -> None:
        frames = [pmd().encode(frame) for frame in fragments(OP_BINARY, b"x" * 100, [10, 50])]
        assert [(frame.opcode, frame.rsv1, frame.fin) for frame in frames] == [
            (OP_BINARY, True, False),
            (OP_CONT, False, False),
            (OP_CONT, False, True),
        ]

    def test_encode_uncompressed_message(self) -> None:
        extension = pmd()
        frames = fragments(OP_TEXT, b"Hello, world!", [5])
        assert extension.encode(frames[0], compress=False) is frames[0]
        assert extension.encode(frames[1], compress=True) is frames[1]

    def test_decode_uncompressed_message(self) -> None:
        extension = pmd()
        for frame in fragments(OP_TEXT, b"Hello, world!", [5]):
            assert extension.decode(frame) is frame

    def test_compress_flag_is_read_on_first_frame_only(self) -> None:
        sender, receiver = pmd(), pmd()
        first = sender.encode(Frame(OP_TEXT, b"Hello, ", fin=False), compress=True)
        last = sender.encode(Frame(OP_CONT, b"world!"), compress=False)
        assert first.rsv1
        assert last.data != b"world!"
        assert receiver.decode(first).data + receiver.decode(last).data == b"Hello, world!"

    def test_uncompressed_message_keeps_context(self) -> None:
        """A message sent as is neither uses nor resets the compression context."""
        sender, receiver = pmd(), pmd()
        frames = [
            sender.encode(Frame(OP_TEXT, b"Hello")),
            sender.encode(Frame(OP_TEXT, b"uncompressed"), compress=False),
            sender.encode(Frame(OP_TEXT, b"Hello")),
        ]
        assert [wire(frame) for frame in frames] == [
            "c1 07 f2 48 cd c9 c9 07 00",
            "81 0c " + b"uncompressed".hex(" "),
            "c1 05 f2 00 11 00 00",
        ]
        assert [receiver.decode(frame).data for frame in frames] == [
            b"Hello",
            b"uncompressed",
            b"Hello",
        ]

    def test_decoded_frame_keeps_other_fields(self) -> None:
        frame = Frame(OP_BINARY, bytes.fromhex("f2 48 cd c9 c9 07 00"), True, True, True, True)
        assert pmd().decode(frame) == Frame(OP_BINARY, b"Hello", True, False, True, True)


class TestDecompression:
    """RFC 7692 section 7.2.2: invalid data, context takeover and limits."""

    @pytest.mark.parametrize(
        "payload",
        [
            pytest.param("ff", id="reserved block type"),
            pytest.param("f2 00 11 00 00", id="distance too far back"),
            pytest.param("00 05 00 00 00", id="bad stored length"),
            pytest.param("f3 48 cd c9 c9 07 00 ff", id="garbage after bfinal"),
        ],
    )
    def test_invalid_data(self, payload: str) -> None:
        frame = Frame(OP_TEXT, bytes.fromhex(payload), rsv1=True)
        with pytest.raises(ProtocolError, match="decompression failed") as excinfo:
            pmd().decode(frame)
        assert isinstance(excinfo.value.__cause__, zlib.error)

    def test_invalid_data_in_non_final_fragment(self) -> None:
        with pytest.raises(ProtocolError, match="decompression failed"):
            pmd().decode(Frame(OP_TEXT, b"\xff\xff", fin=False, rsv1=True))

    def test_context_takeover(self) -> None:
        """Without no_context_takeover, messages refer to earlier ones."""
        sender, receiver = pmd(), pmd()
        for _ in range(3):
            assert receiver.decode(sender.encode(Frame(OP_TEXT, b"Hello"))).data == b"Hello"

    def test_remote_no_context_takeover(self) -> None:
        sender = pmd(local_no_context_takeover=True)
        receiver = pmd(remote_no_context_takeover=True)
        for _ in range(3):
            frame = sender.encode(Frame(OP_TEXT, b"Hello"))
            assert frame.data == bytes.fromhex("f2 48 cd c9 c9 07 00")
            assert receiver.decode(frame).data == b"Hello"

    def test_max_size_exact(self) -> None:
        data = b"Hello, world! " * 1000
        frame = pmd().encode(Frame(OP_BINARY, data))
        assert pmd().decode(frame, max_size=len(data)).data == data

    def test_max_size_exceeded(self) -> None:
        data = b"Hello, world! " * 1000
        frame = pmd().encode(Frame(OP_BINARY, data))
        with pytest.raises(PayloadTooBig) as excinfo:
            pmd().decode(frame, max_size=len(data) - 1)
        assert excinfo.value.max_size == len(data) - 1
        assert excinfo.value.size == len(data)

    def test_max_size_zero(self) -> None:
        assert pmd().decode(Frame(OP_TEXT, b"\x00", rsv1=True), max_size=0).data == b""

    def test_max_size_applies_to_each_fragment(self) -> None:
        """The caller gives each frame the budget left for the message."""
        sender, receiver = pmd(), pmd()
        frames = [sender.encode(f) for f in fragments(OP_BINARY, b"a" * 1000, [600])]
        assert len(receiver.decode(frames[0], max_size=1000).data) == 600
        with pytest.raises(PayloadTooBig):
            receiver.decode(frames[1], max_size=399)

    def test_bomb(self) -> None:
        """10 MiB of zeros in a few KiB stop at 1 MiB without allocating more."""
        frame = pmd(level=9).encode(Frame(OP_BINARY, bytes(10 * MIB)))
        assert len(frame.data) < 20 * KIB
        extension = pmd()
        tracemalloc.start()
        try:
            with pytest.raises(PayloadTooBig) as excinfo:
                extension.decode(frame, max_size=MIB)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert excinfo.value.max_size == MIB
        assert excinfo.value.size == MIB + 1
        assert peak < 3 * MIB

    def test_bomb_in_fragments(self) -> None:
        sender = pmd(level=9)
        frames = [sender.encode(f) for f in fragments(OP_BINARY, bytes(4 * MIB), [MIB])]
        receiver = pmd()
        assert len(receiver.decode(frames[0], max_size=2 * MIB).data) == MIB
        with pytest.raises(PayloadTooBig):
            receiver.decode(frames[1], max_size=MIB)


class TestMemory:
    """zlib objects exist only while needed."""

    def retained(self, frame: Frame, *, compress: bool = True, **kwargs: Any) -> int:
        """Memory an extension holds after receiving ``frame`` and sending it back."""
        tracemalloc.start()
        try:
            extension = pmd(**kwargs)
            extension.decode(frame)
            extension.encode(frame._replace(rsv1=False), compress=compress)
            current, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert extension is not None
        return current

    def test_idle(self) -> None:
        assert self.retained(Frame(OP_PING, b"")) < 8 * KIB

    def test_uncompressed_messages(self) -> None:
        assert self.retained(Frame(OP_TEXT, b"Hello"), compress=False) < 8 * KIB

    def test_context_takeover(self) -> None:
        frame = Frame(OP_TEXT, bytes.fromhex("f2 48 cd c9 c9 07 00"), rsv1=True)
        assert self.retained(frame) > 64 * KIB

    def test_no_context_takeover(self) -> None:
        frame = Frame(OP_TEXT, bytes.fromhex("f2 48 cd c9 c9 07 00"), rsv1=True)
        retained = self.retained(
            frame, remote_no_context_takeover=True, local_no_context_takeover=True
        )
        assert retained < 8 * KIB


INCOMPRESSIBLE = random.Random(7692).randbytes(64 * KIB)
COMPRESSIBLE = b'{"id": 1, "name": "alice", "tags": ["admin", "beta"]},' * 1200


class TestIncompressible:
    def test_large_random_binary_is_sent_uncompressed(self) -> None:
        frame = Frame(OP_BINARY, INCOMPRESSIBLE)
        assert pmd().encode(frame) is frame

    def test_compressible_binary_is_compressed(self) -> None:
        encoded = pmd().encode(Frame(OP_BINARY, COMPRESSIBLE[: 64 * KIB]))
        assert encoded.rsv1 and len(encoded.data) < 16 * KIB

    def test_text_is_not_probed(self) -> None:
        assert pmd().encode(Frame(OP_TEXT, INCOMPRESSIBLE.hex().encode()[: 64 * KIB])).rsv1

    def test_below_threshold_is_not_probed(self) -> None:
        assert pmd().encode(Frame(OP_BINARY, INCOMPRESSIBLE[: 16 * KIB - 1])).rsv1

    def test_random_start_compressible_middle_is_compressed(self) -> None:
        data = INCOMPRESSIBLE[: 32 * KIB] + COMPRESSIBLE[: 32 * KIB]
        assert pmd().encode(Frame(OP_BINARY, data)).rsv1

    def test_repeat_within_window_is_compressed(self) -> None:
        """The probe sees the window: a message starting with what was just sent compresses."""
        extension = pmd()
        assert not extension.encode(Frame(OP_BINARY, INCOMPRESSIBLE[8 * KIB : 32 * KIB])).rsv1
        assert extension.encode(Frame(OP_BINARY, INCOMPRESSIBLE[: 8 * KIB])).rsv1  # not probed
        repeat = extension.encode(
            Frame(OP_BINARY, INCOMPRESSIBLE[: 8 * KIB] + INCOMPRESSIBLE[40 * KIB :])
        )
        assert repeat.rsv1

    def test_context_is_unchanged_by_skipped_message(self) -> None:
        sender, receiver = pmd(), pmd()
        for data in [
            COMPRESSIBLE[:KIB],
            INCOMPRESSIBLE,
            COMPRESSIBLE[KIB : 2 * KIB],
            INCOMPRESSIBLE[:20000],
            COMPRESSIBLE[:KIB],
        ]:
            encoded = sender.encode(Frame(OP_BINARY, data))
            assert receiver.decode(encoded).data == data

    def test_fragmented_message_decided_by_first_frame(self) -> None:
        sender, receiver = pmd(), pmd()
        frames = [
            Frame(OP_BINARY, INCOMPRESSIBLE[: 32 * KIB], fin=False),
            Frame(OP_CONT, COMPRESSIBLE[:KIB]),
        ]
        encoded = [sender.encode(frame) for frame in frames]
        assert encoded == frames
        assert [receiver.decode(frame) for frame in encoded] == frames

    def test_no_context_takeover_holds_no_compressor(self) -> None:
        extension = pmd(local_no_context_takeover=True)
        assert not extension.encode(Frame(OP_BINARY, INCOMPRESSIBLE)).rsv1
        assert extension._compressor is None

    def test_level_zero_sends_large_binary_uncompressed(self) -> None:
        frame = Frame(OP_BINARY, COMPRESSIBLE[: 64 * KIB])
        assert pmd(level=0).encode(frame) is frame

    def test_encoded_bytes_for_compressible_data_unchanged(self) -> None:
        """The probe works on a copy: the bytes are those of zlib without it."""
        compressor = zlib.compressobj(wbits=-15)
        data = COMPRESSIBLE[: 64 * KIB]
        expected = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert pmd().encode(Frame(OP_BINARY, data)).data == expected[:-4]


class TestWindowBits:
    """RFC 7692 sections 7.1.2.1 and 7.1.2.2: windows from 2**8 to 2**15 bytes."""

    # 300 random bytes, repeated: every repetition is 300 bytes back.
    DATA = random.Random(7692).randbytes(300) * 10 + b"Hello, world! " * 100

    def test_strict_inflate_is_strict(self) -> None:
        compressor = zlib.compressobj(wbits=-15)
        payload = compressor.compress(self.DATA) + compressor.flush(zlib.Z_SYNC_FLUSH)
        with pytest.raises(zlib.error, match="too far back"):
            strict_inflate(payload[:-4], 8)

    @pytest.mark.parametrize("bits", range(8, 16))
    def test_compressed_data_fits_window(self, bits: int) -> None:
        frame = pmd(local_max_window_bits=bits).encode(Frame(OP_BINARY, self.DATA))
        assert strict_inflate(frame.data, bits) == self.DATA
        if bits >= 10:  # zlib reaches 300 bytes back with windows of 1 KiB or more
            assert len(frame.data) < len(self.DATA) // 2

    @pytest.mark.parametrize("bits", range(8, 16))
    def test_round_trip(self, bits: int) -> None:
        sender = pmd(local_max_window_bits=bits)
        receiver = pmd(remote_max_window_bits=bits)
        for _ in range(2):
            frame = sender.encode(Frame(OP_BINARY, self.DATA))
            assert receiver.decode(frame).data == self.DATA

    def test_decode_8_bits_from_another_compressor(self) -> None:
        """A peer with a true 256-byte window: distances up to 256 bytes."""
        # A stored block, then a fixed Huffman block that copies 258 bytes from 256 back:
        # length 258 is code 285 and distance 256 is code 15 with 6 extra bits, 63.
        data = random.Random(8).randbytes(256)
        stored = b"\x00" + (256).to_bytes(2, "little") + (0xFFFF ^ 256).to_bytes(2, "little")
        bits = [0, 1, 0]  # BFINAL 0, BTYPE 01 (fixed Huffman), LSB first
        bits += [1, 1, 0, 0, 0, 1, 0, 1]  # code 285 (length 258), MSB first
        bits += [0, 1, 1, 1, 1]  # distance code 15, MSB first
        bits += [1, 1, 1, 1, 1, 1]  # 6 extra bits: 63 -> 193 + 63 = 256, LSB first
        bits += [0] * 7  # end of block: code 256
        bits += [0, 0, 0]  # BFINAL 0, BTYPE 00: the empty block whose LEN/NLEN are removed
        bits += [0] * (-len(bits) % 8)
        huffman = bytes(
            sum(bit << shift for shift, bit in enumerate(bits[start : start + 8]))
            for start in range(0, len(bits), 8)
        )
        frame = Frame(OP_BINARY, stored + data + huffman, rsv1=True)
        expected = data + data + data[:2]
        assert strict_inflate(frame.data, 8) == expected
        assert pmd(remote_max_window_bits=8).decode(frame).data == expected

    @pytest.mark.parametrize("bits", [7, 16, 0, -15, True])
    def test_invalid(self, bits: int) -> None:
        with pytest.raises(ValueError, match="from 8 to 15"):
            pmd(remote_max_window_bits=bits)
        with pytest.raises(ValueError, match="from 8 to 15"):
            pmd(local_max_window_bits=bits)


class TestRepr:
    def test_extension(self) -> None:
        assert repr(pmd(True, False, 12, 9)) == (
            "PerMessageDeflate(remote_no_context_takeover=True, "
            "local_no_context_takeover=False, remote_max_window_bits=12, "
            "local_max_window_bits=9)"
        )

    def test_client_factory(self) -> None:
        assert repr(ClientPerMessageDeflateFactory(server_max_window_bits=10)) == (
            "ClientPerMessageDeflateFactory(server_no_context_takeover=False, "
            "client_no_context_takeover=False, server_max_window_bits=10, "
            "client_max_window_bits=True)"
        )

    def test_server_factory(self) -> None:
        assert repr(ServerPerMessageDeflateFactory(client_max_window_bits=10)) == (
            "ServerPerMessageDeflateFactory(server_no_context_takeover=False, "
            "client_no_context_takeover=False, server_max_window_bits=None, "
            "client_max_window_bits=10)"
        )


class TestCompressSettings:
    def test_valid(self) -> None:
        extension = pmd(level=1, memLevel=5, strategy=zlib.Z_FILTERED)
        assert extension.compress_settings == {"level": 1, "memLevel": 5, "strategy": 1}
        frame = extension.encode(Frame(OP_TEXT, b"Hello" * 100))
        assert pmd().decode(frame).data == b"Hello" * 100

    @pytest.mark.parametrize(
        ("settings", "message"),
        [
            ({"wbits": 15}, "unsupported compress setting: wbits"),
            ({"zdict": 1}, "unsupported compress setting: zdict"),
            ({"level": 10}, "invalid value for compress setting level: 10"),
            ({"level": -2}, "invalid value for compress setting level: -2"),
            ({"memLevel": 0}, "invalid value for compress setting memLevel: 0"),
            ({"memLevel": 10}, "invalid value for compress setting memLevel: 10"),
            ({"strategy": 5}, "invalid value for compress setting strategy: 5"),
            ({"level": True}, "invalid value for compress setting level: True"),
        ],
    )
    def test_invalid(self, settings: dict[str, int], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            PerMessageDeflate(False, False, 15, 15, settings)
        with pytest.raises(ValueError, match=message):
            ClientPerMessageDeflateFactory(compress_settings=settings)
        with pytest.raises(ValueError, match=message):
            ServerPerMessageDeflateFactory(compress_settings=settings)


# Negotiation tables: factory arguments, parameters received, expected outcome.

CLIENT_OFFERS: list[Any] = [
    pytest.param({}, [CMWB], id="default"),
    pytest.param({"client_max_window_bits": None}, [], id="nothing"),
    pytest.param({"server_no_context_takeover": True}, [SNCT, CMWB], id="snct"),
    pytest.param({"client_no_context_takeover": True}, [CNCT, CMWB], id="cnct"),
    pytest.param({"server_max_window_bits": 10}, [smwb(10), CMWB], id="smwb"),
    pytest.param({"client_max_window_bits": 12}, [cmwb(12)], id="cmwb=12"),
    pytest.param(
        {
            "server_no_context_takeover": True,
            "client_no_context_takeover": True,
            "server_max_window_bits": 8,
            "client_max_window_bits": 9,
        },
        [SNCT, CNCT, smwb(8), cmwb(9)],
        id="all",
    ),
]

# (remote_no_context_takeover, local_no_context_takeover, remote bits, local bits), where
# remote is the server.
CLIENT_ACCEPTS: list[Any] = [
    pytest.param({}, [], (False, False, 15, 15), id="nothing"),
    pytest.param({}, [SNCT], (True, False, 15, 15), id="unrequested snct"),
    pytest.param({}, [CNCT], (False, True, 15, 15), id="cnct"),
    pytest.param({"client_no_context_takeover": True}, [], (False, True, 15, 15), id="own cnct"),
    pytest.param({"server_no_context_takeover": True}, [SNCT], (True, False, 15, 15), id="snct"),
    pytest.param({}, [smwb(10)], (False, False, 10, 15), id="unrequested smwb"),
    pytest.param({"server_max_window_bits": 10}, [smwb(10)], (False, False, 10, 15), id="smwb"),
    pytest.param(
        {"server_max_window_bits": 10}, [smwb(8)], (False, False, 8, 15), id="smaller smwb"
    ),
    pytest.param({}, [cmwb(10)], (False, False, 15, 10), id="cmwb"),
    pytest.param({}, [cmwb(8)], (False, False, 15, 8), id="cmwb=8"),
    pytest.param(
        {"client_max_window_bits": 12}, [], (False, False, 15, 12), id="own cmwb without answer"
    ),
    pytest.param(
        {"client_max_window_bits": 12}, [cmwb(10)], (False, False, 15, 10), id="smaller cmwb"
    ),
    pytest.param(
        {"client_max_window_bits": 12}, [cmwb(14)], (False, False, 15, 12), id="larger cmwb"
    ),
    pytest.param(
        {"server_no_context_takeover": True, "server_max_window_bits": 9},
        [SNCT, CNCT, smwb(9), cmwb(9)],
        (True, True, 9, 9),
        id="all",
    ),
    pytest.param({}, [cmwb(9), smwb(11), CNCT, SNCT], (True, True, 11, 9), id="any order"),
]

# Shared by client and server: parameters that break the grammar of section 7.1.
MALFORMED: list[Any] = [
    pytest.param([("foo", None)], InvalidParameterName, id="unknown"),
    pytest.param([("Server_No_Context_Takeover", None)], InvalidParameterName, id="case"),
    pytest.param([("server_max_window_bits ", "10")], InvalidParameterName, id="space"),
    pytest.param([SNCT, SNCT], DuplicateParameter, id="duplicate snct"),
    pytest.param([CNCT, CNCT], DuplicateParameter, id="duplicate cnct"),
    pytest.param([smwb(10), smwb(10)], DuplicateParameter, id="duplicate smwb"),
    pytest.param([smwb(10), smwb(12)], DuplicateParameter, id="conflicting smwb"),
    pytest.param([cmwb(10), cmwb(10)], DuplicateParameter, id="duplicate cmwb"),
    pytest.param([("server_no_context_takeover", "1")], InvalidParameterValue, id="snct=1"),
    pytest.param([("server_no_context_takeover", "")], InvalidParameterValue, id="snct="),
    pytest.param([("client_no_context_takeover", "1")], InvalidParameterValue, id="cnct=1"),
    pytest.param([("server_max_window_bits", None)], InvalidParameterValue, id="smwb"),
    pytest.param([smwb(7)], InvalidParameterValue, id="smwb=7"),
    pytest.param([smwb(16)], InvalidParameterValue, id="smwb=16"),
    pytest.param([smwb("08")], InvalidParameterValue, id="smwb=08"),
    pytest.param([smwb("+9")], InvalidParameterValue, id="smwb=+9"),
    pytest.param([smwb(" 9")], InvalidParameterValue, id="smwb= 9"),
    pytest.param([smwb("")], InvalidParameterValue, id="smwb="),
    pytest.param([smwb("ten")], InvalidParameterValue, id="smwb=ten"),
    pytest.param([smwb("\u0661\u0660")], InvalidParameterValue, id="smwb=arabic 10"),
    pytest.param([cmwb(7)], InvalidParameterValue, id="cmwb=7"),
    pytest.param([cmwb(16)], InvalidParameterValue, id="cmwb=16"),
    pytest.param([cmwb("010")], InvalidParameterValue, id="cmwb=010"),
]

CLIENT_REJECTS: list[Any] = [
    pytest.param({}, [CMWB], InvalidParameterValue, id="cmwb without value"),
    pytest.param(
        {"client_max_window_bits": None}, [cmwb(10)], NegotiationError, id="cmwb not offered"
    ),
    pytest.param({"server_no_context_takeover": True}, [], NegotiationError, id="missing snct"),
    pytest.param({"server_max_window_bits": 10}, [], NegotiationError, id="missing smwb"),
    pytest.param(
        {"server_max_window_bits": 10}, [smwb(11)], InvalidParameterValue, id="larger smwb"
    ),
]

SERVER_ACCEPTS: list[Any] = [
    pytest.param({}, [], [], (False, False, 15, 15), id="nothing"),
    pytest.param({}, [SNCT], [SNCT], (False, True, 15, 15), id="snct"),
    pytest.param({}, [CNCT], [CNCT], (True, False, 15, 15), id="cnct hint"),
    pytest.param(
        {"server_no_context_takeover": True}, [], [SNCT], (False, True, 15, 15), id="own snct"
    ),
    pytest.param(
        {"client_no_context_takeover": True}, [], [CNCT], (True, False, 15, 15), id="own cnct"
    ),
    pytest.param({}, [smwb(10)], [smwb(10)], (False, False, 15, 10), id="smwb"),
    pytest.param({}, [smwb(8)], [smwb(8)], (False, False, 15, 8), id="smwb=8"),
    pytest.param(
        {"server_max_window_bits": 12}, [], [smwb(12)], (False, False, 15, 12), id="own smwb"
    ),
    pytest.param(
        {"server_max_window_bits": 12},
        [smwb(10)],
        [smwb(10)],
        (False, False, 15, 10),
        id="smaller smwb",
    ),
    pytest.param(
        {"server_max_window_bits": 10},
        [smwb(12)],
        [smwb(10)],
        (False, False, 15, 10),
        id="larger smwb",
    ),
    pytest.param({}, [CMWB], [], (False, False, 15, 15), id="cmwb"),
    pytest.param({}, [cmwb(10)], [cmwb(10)], (False, False, 10, 15), id="cmwb hint"),
    pytest.param(
        {"client_max_window_bits": 12}, [CMWB], [cmwb(12)], (False, False, 12, 15), id="own cmwb"
    ),
    pytest.param(
        {"client_max_window_bits": 12},
        [cmwb(10)],
        [cmwb(10)],
        (False, False, 10, 15),
        id="smaller cmwb",
    ),
    pytest.param(
        {"client_max_window_bits": 10},
        [cmwb(12)],
        [cmwb(10)],
        (False, False, 10, 15),
        id="larger cmwb",
    ),
    pytest.param(
        {},
        [cmwb(9), smwb(11), CNCT, SNCT],
        [SNCT, CNCT, smwb(11), cmwb(9)],
        (True, True, 9, 11),
        id="all",
    ),
]

SERVER_DECLINES: list[Any] = [
    pytest.param({"client_max_window_bits": 12}, [], id="cmwb not offered"),
    pytest.param({"client_max_window_bits": 12}, [SNCT, smwb(10)], id="cmwb not offered, others"),
]


class TestClientNegotiation:
    """RFC 7692 section 7.1, as a client."""

    @pytest.mark.parametrize(("kwargs", "params"), CLIENT_OFFERS)
    def test_offer(self, kwargs: dict[str, Any], params: list[ExtensionParameter]) -> None:
        assert ClientPerMessageDeflateFactory(**kwargs).get_request_params() == params

    @pytest.mark.parametrize(("kwargs", "params", "expected"), CLIENT_ACCEPTS)
    def test_accept(
        self,
        kwargs: dict[str, Any],
        params: list[ExtensionParameter],
        expected: tuple[bool, bool, int, int],
    ) -> None:
        factory = ClientPerMessageDeflateFactory(**kwargs, compress_settings={"level": 1})
        extension = factory.process_response_params(params, [])
        assert agreed(extension) == expected
        assert extension.compress_settings == {"level": 1}

    @pytest.mark.parametrize(("params", "error"), MALFORMED)
    def test_malformed(self, params: list[ExtensionParameter], error: type[Exception]) -> None:
        factory = ClientPerMessageDeflateFactory(client_max_window_bits=True)
        with pytest.raises(NegotiationError) as excinfo:
            factory.process_response_params(params, [])
        assert excinfo.type is error

    @pytest.mark.parametrize(("kwargs", "params", "error"), CLIENT_REJECTS)
    def test_reject(
        self, kwargs: dict[str, Any], params: list[ExtensionParameter], error: type[Exception]
    ) -> None:
        factory = ClientPerMessageDeflateFactory(**kwargs)
        with pytest.raises(NegotiationError) as excinfo:
            factory.process_response_params(params, [])
        assert excinfo.type is error

    def test_already_negotiated(self) -> None:
        factory = ClientPerMessageDeflateFactory()
        with pytest.raises(NegotiationError, match="already negotiated") as excinfo:
            factory.process_response_params([], [OtherExtension(), pmd()])
        assert excinfo.type is NegotiationError

    def test_other_extension_negotiated(self) -> None:
        factory = ClientPerMessageDeflateFactory()
        assert isinstance(factory.process_response_params([], [OtherExtension()]), Extension)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"server_max_window_bits": 7},
            {"server_max_window_bits": 16},
            {"server_max_window_bits": True},
            {"client_max_window_bits": 7},
            {"client_max_window_bits": 16},
            {"client_max_window_bits": False},
        ],
    )
    def test_invalid_arguments(self, kwargs: dict[str, Any]) -> None:
        with pytest.raises(ValueError, match="from 8 to 15"):
            ClientPerMessageDeflateFactory(**kwargs)


class TestServerNegotiation:
    """RFC 7692 section 7.1, as a server."""

    @pytest.mark.parametrize(("kwargs", "params", "response", "expected"), SERVER_ACCEPTS)
    def test_accept(
        self,
        kwargs: dict[str, Any],
        params: list[ExtensionParameter],
        response: list[ExtensionParameter],
        expected: tuple[bool, bool, int, int],
    ) -> None:
        factory = ServerPerMessageDeflateFactory(**kwargs, compress_settings={"level": 1})
        answer, extension = factory.process_request_params(params, [])
        assert answer == response
        assert agreed(extension) == expected
        assert extension.compress_settings == {"level": 1}

    @pytest.mark.parametrize(("params", "error"), MALFORMED)
    def test_malformed(self, params: list[ExtensionParameter], error: type[Exception]) -> None:
        factory = ServerPerMessageDeflateFactory()
        with pytest.raises(NegotiationError) as excinfo:
            factory.process_request_params(params, [])
        assert excinfo.type is error

    @pytest.mark.parametrize(("kwargs", "params"), SERVER_DECLINES)
    def test_decline(self, kwargs: dict[str, Any], params: list[ExtensionParameter]) -> None:
        factory = ServerPerMessageDeflateFactory(**kwargs)
        with pytest.raises(NegotiationError, match="client_max_window_bits") as excinfo:
            factory.process_request_params(params, [])
        assert excinfo.type is NegotiationError

    def test_already_negotiated(self) -> None:
        factory = ServerPerMessageDeflateFactory()
        with pytest.raises(NegotiationError, match="already negotiated") as excinfo:
            factory.process_request_params([], [pmd()])
        assert excinfo.type is NegotiationError

    def test_other_extension_negotiated(self) -> None:
        factory = ServerPerMessageDeflateFactory()
        _, extension = factory.process_request_params([], [OtherExtension()])
        assert isinstance(extension, PerMessageDeflate)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"server_max_window_bits": 7},
            {"server_max_window_bits": 16},
            {"client_max_window_bits": 7},
            {"client_max_window_bits": 16},
            {"client_max_window_bits": True},
        ],
    )
    def test_invalid_arguments(self, kwargs: dict[str, Any]) -> None:
        with pytest.raises(ValueError, match="from 8 to 15"):
            ServerPerMessageDeflateFactory(**kwargs)


class TestEndToEnd:
    """A client factory and a server factory agree, then talk both ways."""

    @pytest.mark.parametrize(
        ("client_kwargs", "server_kwargs"),
        [
            ({}, {}),
            ({"client_max_window_bits": None}, {}),
            ({"server_no_context_takeover": True}, {"client_no_context_takeover": True}),
            ({"client_no_context_takeover": True}, {}),
            ({"server_max_window_bits": 8}, {"client_max_window_bits": 8}),
            ({"client_max_window_bits": 10}, {"server_max_window_bits": 9}),
            ({}, {"server_max_window_bits": 12, "compress_settings": {"memLevel": 5}}),
            ({}, {"server_max_window_bits": 12, "compress_settings": {"level": 1}}),
        ],
    )
    def test_agree_and_talk(
        self, client_kwargs: dict[str, Any], server_kwargs: dict[str, Any]
    ) -> None:
        client_factory = ClientPerMessageDeflateFactory(**client_kwargs)
        server_factory = ServerPerMessageDeflateFactory(**server_kwargs)
        response, server = server_factory.process_request_params(
            client_factory.get_request_params(), []
        )
        client = client_factory.process_response_params(response, [])
        assert agreed(client) == (
            server.local_no_context_takeover,
            server.remote_no_context_takeover,
            server.local_max_window_bits,
            server.remote_max_window_bits,
        )
        for message in [b"Hello", TestWindowBits.DATA, b"", TestWindowBits.DATA]:
            for sender, receiver in [(client, server), (server, client)]:
                for frame in fragments(OP_BINARY, message, [len(message) // 3]):
                    encoded = sender.encode(frame)
                    assert receiver.decode(encoded) == frame
        if server.local_max_window_bits == 8:
            frame = server.encode(Frame(OP_BINARY, TestWindowBits.DATA))
            assert strict_inflate(frame.data, 8) == TestWindowBits.DATA


class TestEnable:
    def test_client_default(self) -> None:
        (factory,) = enable_client_permessage_deflate(None)
        assert isinstance(factory, ClientPerMessageDeflateFactory)
        assert factory.get_request_params() == [CMWB]
        assert factory.compress_settings == {"level": 1, "memLevel": 5}

    def test_client_appends(self) -> None:
        other = OtherClientFactory()
        extensions = [other]
        factories = enable_client_permessage_deflate(extensions)
        assert factories[0] is other
        assert isinstance(factories[1], ClientPerMessageDeflateFactory)
        assert extensions == [other]

    def test_client_keeps_existing(self) -> None:
        existing = ClientPerMessageDeflateFactory(server_no_context_takeover=True)
        extensions = [existing, OtherClientFactory()]
        factories = enable_client_permessage_deflate(extensions)
        assert factories == extensions
        assert factories is not extensions

    def test_server_default(self) -> None:
        (factory,) = enable_server_permessage_deflate(None)
        assert isinstance(factory, ServerPerMessageDeflateFactory)
        response, extension = factory.process_request_params([CMWB], [])
        assert response == [smwb(12), cmwb(12)]
        assert agreed(extension) == (False, False, 12, 12)
        assert extension.compress_settings == {"level": 1, "memLevel": 5}

    def test_server_default_without_client_max_window_bits(self) -> None:
        """A client that cannot take a window size still gets compression."""
        (factory,) = enable_server_permessage_deflate(None)
        response, extension = factory.process_request_params([], [])
        assert response == [smwb(12)]
        assert agreed(extension) == (False, False, 15, 12)

    def test_server_default_keeps_smaller_client_window(self) -> None:
        (factory,) = enable_server_permessage_deflate(None)
        response, extension = factory.process_request_params([cmwb(10)], [])
        assert response == [smwb(12), cmwb(10)]
        assert extension.remote_max_window_bits == 10

    def test_server_appends(self) -> None:
        other = OtherServerFactory()
        factories = enable_server_permessage_deflate([other])
        assert factories[0] is other
        assert isinstance(factories[1], ServerPerMessageDeflateFactory)

    def test_server_keeps_existing(self) -> None:
        existing = ServerPerMessageDeflateFactory()
        factories = enable_server_permessage_deflate((existing,))
        assert factories == [existing]

    def test_default_server_memory(self) -> None:
        """The default server compressor costs a fraction of zlib's default."""
        (factory,) = enable_server_permessage_deflate(None)
        _, extension = factory.process_request_params([], [])
        assert isinstance(extension, PerMessageDeflate)
        tracemalloc.start()
        try:
            extension.encode(Frame(OP_TEXT, b"Hello"))
            current, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert current < 64 * KIB


class OtherClientFactory(ClientExtensionFactory):
    name = ExtensionName("x-other")

    def get_request_params(self) -> list[ExtensionParameter]:
        return []

    def process_response_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> Extension:
        return OtherExtension()


class OtherServerFactory(ServerExtensionFactory):
    name = ExtensionName("x-other")

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], Extension]:
        return [], OtherExtension()


# Properties

payloads = st.one_of(
    st.binary(max_size=3000),
    st.text(max_size=1000).map(str.encode),
    st.tuples(st.binary(min_size=1, max_size=40), st.integers(1, 100)).map(lambda t: t[0] * t[1]),
)
messages = st.lists(
    st.tuples(
        payloads,
        st.booleans(),  # compress
        st.lists(st.integers(0, 3000), max_size=4),  # fragment boundaries
        st.sampled_from([OP_TEXT, OP_BINARY]),
    ),
    max_size=8,
)


@settings(deadline=None, max_examples=200)
@given(
    messages=messages,
    local_no_context_takeover=st.booleans(),
    remote_no_context_takeover=st.booleans(),
    local_max_window_bits=st.integers(8, 15),
    remote_max_window_bits=st.integers(8, 15),
    limit=st.booleans(),
)
def test_round_trip(
    messages: list[tuple[bytes, bool, list[int], Opcode]],
    local_no_context_takeover: bool,
    remote_no_context_takeover: bool,
    local_max_window_bits: int,
    remote_max_window_bits: int,
    limit: bool,
) -> None:
    """Whatever the data, fragmentation and parameters, the receiver gets the sent data."""
    sender = PerMessageDeflate(
        remote_no_context_takeover,
        local_no_context_takeover,
        remote_max_window_bits,
        local_max_window_bits,
    )
    receiver = PerMessageDeflate(
        local_no_context_takeover,
        remote_no_context_takeover,
        local_max_window_bits,
        remote_max_window_bits,
    )
    for data, compress, cuts, opcode in messages:
        received = b""
        for index, frame in enumerate(fragments(opcode, data, cuts)):
            encoded = sender.encode(frame, compress=compress)
            assert encoded.opcode is frame.opcode
            assert encoded.fin is frame.fin
            assert encoded.rsv1 is (compress and index == 0)
            if not compress:
                assert encoded is frame
            # Control frames may come between fragments.
            ping = Frame(OP_PING, b"keepalive")
            assert receiver.decode(sender.encode(ping)) is ping
            budget = len(data) - len(received) if limit else None
            decoded = receiver.decode(encoded, max_size=budget)
            assert decoded == frame
            received += decoded.data
        assert received == data


@settings(deadline=None)
@given(
    frames=st.lists(st.binary(max_size=200), min_size=1, max_size=4),
    max_size=st.none() | st.integers(0, 10_000),
)
def test_decode_anything(frames: list[bytes], max_size: int | None) -> None:
    """Any payload is decompressed or rejected with a documented exception."""
    extension = pmd()
    for index, payload in enumerate(frames):
        frame = Frame(
            OP_BINARY if index == 0 else OP_CONT,
            payload,
            fin=index == len(frames) - 1,
            rsv1=index == 0,
        )
        try:
            decoded = extension.decode(frame, max_size=max_size)
        except (ProtocolError, PayloadTooBig):
            return
        assert not decoded.rsv1
        assert max_size is None or len(decoded.data) <= max_size
