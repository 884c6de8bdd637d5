"""The permessage-deflate extension: RFC 7692 section 7.

:class:`ClientPerMessageDeflateFactory` and :class:`ServerPerMessageDeflateFactory` negotiate the
extension in the opening handshake (section 7.1); the :class:`PerMessageDeflate` they return
compresses and decompresses the data messages of one connection (section 7.2).
:func:`enable_client_permessage_deflate` and :func:`enable_server_permessage_deflate` add a
factory with memory-conscious defaults to a list of extensions.

Theory of operation
-------------------

Each direction is independent. Sending: the first frame of a data message (TEXT or BINARY)
decides whether the message is compressed: the application may say no, and a large binary
message whose samples do not shrink (data already compressed or encrypted) is sent as it
is, which costs a fraction of compressing it for nothing. Every fragment of a compressed
message goes through the same zlib compressor, which ends each fragment with a sync flush,
and the final fragment loses the flush's trailing ``00 00 ff ff``. Receiving: RSV1 on the
first frame of a message says whether it is compressed; every fragment of a compressed message
goes through the same zlib decompressor, and ``00 00 ff ff`` is appended to the final one.

State per direction: whether a message is in progress and compressed
(``_encoding_compressed``, ``_decoding_compressed``), set by its first frame and cleared by its
final frame; and the zlib object, or ``None``. Only :meth:`PerMessageDeflate.encode` and
:meth:`PerMessageDeflate.decode` change them. A zlib object is created on first use, so an
idle connection or one that never sends compressed messages pays for no buffers; it is
dropped after each message when the agreed parameters forbid context takeover in that
direction, so its memory is only held while a message is in flight.

Window bits
-----------

RFC 7692 allows windows of 2**8 to 2**15 bytes. zlib cannot compress a raw DEFLATE stream with
an 8-bit window, so 8 bits compress with 9 (as zlib itself does for zlib-wrapped streams): zlib
never emits a distance farther than its window minus 262 bytes of lookahead, 250 bytes with 9
bits, so the stream decompresses with a 256-byte window as promised. Decompression also uses
at least 9 bits; a window larger than the sender's always decodes its stream.

Limitation
----------

RFC 7692 section 7.2.1 lets a sender end a DEFLATE stream with a block that has BFINAL set and
go on with more blocks (section 7.2.3.4). These decode, but in a new zlib stream, with an empty
window: Python's zlib does not expose the old one. A sender that refers back across such a
block, which zlib-based senders cannot do, fails the connection with a :exc:`ProtocolError`
rather than corrupting data.
"""

from __future__ import annotations

import zlib
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ...exceptions import (
    DuplicateParameter,
    InvalidParameterName,
    InvalidParameterValue,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
)
from ...typedefs import ExtensionName, ExtensionParameter
from ..frames import OP_BINARY, OP_CONT, OP_TEXT, Frame, Opcode, _new_frame
from .base import ClientExtensionFactory, Extension, ServerExtensionFactory

if TYPE_CHECKING:
    from zlib import _Compress, _Decompress

__all__ = [
    "PerMessageDeflate",
    "ClientPerMessageDeflateFactory",
    "ServerPerMessageDeflateFactory",
    "enable_client_permessage_deflate",
    "enable_server_permessage_deflate",
]

_NAME = ExtensionName("permessage-deflate")

# LEN and NLEN of an empty DEFLATE block with no compression, which ends a sync flush.
_EMPTY_BLOCK_TAIL = b"\x00\x00\xff\xff"

# The header of an empty DEFLATE block with no compression, padded to a byte (section 7.2.3.6).
_EMPTY_FRAGMENT = b"\x00"

# RFC 7692 sections 7.1.2.1 and 7.1.2.2: "a decimal integer value without leading zeroes
# between 8 to 15, inclusive".
_WINDOW_BITS = {str(bits): bits for bits in range(8, 16)}

_DEFAULT_WINDOW_BITS = 15

# Smallest window zlib accepts for raw DEFLATE (see "Window bits" above).
_MIN_ZLIB_WINDOW_BITS = 9

# Final frames smaller than this get the 4 octets of section 7.2.2 appended, in a copy,
# rather than fed to zlib in a second call, which costs more than copying that much.
_APPEND_TAIL_BELOW = 4096

# Binary messages this large are probed before they are compressed, with samples of this
# size (see PerMessageDeflate._looks_incompressible): when the data compresses, the probe
# costs ~10 us, 1% to 3% of compressing a message of 64 KiB to 16 KiB.
_PROBE_FROM = 16384
_PROBE_SAMPLE = 512

# zlib settings an application may choose; the window comes from the negotiation.
_COMPRESS_SETTINGS = {
    "level": range(-1, 10),
    "memLevel": range(1, 10),
    "strategy": range(5),
}


def _deflated_budget(size: int) -> int:
    """The largest compressed payload allowed for a message of at most ``size`` bytes: data
    that does not compress grows a little when deflated. What it inflates to is checked
    against ``size`` as it is decompressed."""
    return size + (size >> 8) + 64


# Defaults of the enable_*() helpers. zlib's compressor takes 2**(wbits + 2) + 2**(memLevel + 9)
# bytes: 256 KiB by default. memLevel 5 cuts the second term from 128 KiB to 16 KiB, for a
# small loss of ratio on typical WebSocket messages; 12 bits cut the first to 16 KiB. Level 1
# (Z_BEST_SPEED, as aiohttp's WebSocket writer and libwebsockets use) instead of zlib's 6:
# callgrind, JSON-like messages, 12-bit window, memLevel 5: compressing and decompressing
# costs 20% less at 1 KiB and 34% less at 64 KiB, for 15% more bytes (30% of the original
# size instead of 26%; 27% instead of 23% at 64 KiB). A setting costs no memory.
_DEFAULT_COMPRESS_SETTINGS = {"level": 1, "memLevel": 5}
_LOW_MEMORY_SERVER_WINDOW_BITS = 12


def _check_window_bits(name: str, bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 8 <= bits <= 15:
        raise ValueError(f"{name} must be an integer from 8 to 15, got {bits!r}")


def _check_compress_settings(settings: Mapping[str, int] | None) -> dict[str, int]:
    if settings is None:
        return {}
    for key, value in settings.items():
        allowed = _COMPRESS_SETTINGS.get(key)
        if allowed is None:
            raise ValueError(f"unsupported compress setting: {key}")
        if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
            raise ValueError(f"invalid value for compress setting {key}: {value!r}")
    return dict(settings)


def _zlib_window_bits(bits: int) -> int:
    return -max(bits, _MIN_ZLIB_WINDOW_BITS)


class PerMessageDeflate(Extension):
    """The permessage-deflate extension, bound to one connection (RFC 7692 section 7.2).

    "Local" is this side of the connection and "remote" the peer: on a client, local values
    are the ``client_*`` parameters and remote values the ``server_*`` ones.

    Args:
        remote_no_context_takeover: whether the peer resets its compressor after each message,
            so this side may decompress each message with an empty window.
        local_no_context_takeover: whether this side must compress each message with an empty
            window.
        remote_max_window_bits: base-2 logarithm of the peer's window, from 8 to 15.
        local_max_window_bits: base-2 logarithm of this side's window, from 8 to 15.
        compress_settings: zlib settings for compression: ``level``, ``memLevel`` and
            ``strategy``, as in :func:`zlib.compressobj`.

    Raises:
        ValueError: if a window size or a compress setting is out of range.
    """

    name = _NAME

    def __init__(
        self,
        remote_no_context_takeover: bool,
        local_no_context_takeover: bool,
        remote_max_window_bits: int,
        local_max_window_bits: int,
        compress_settings: Mapping[str, int] | None = None,
    ) -> None:
        _check_window_bits("remote_max_window_bits", remote_max_window_bits)
        _check_window_bits("local_max_window_bits", local_max_window_bits)
        self.remote_no_context_takeover = remote_no_context_takeover
        """Whether the peer compresses each message with an empty window."""
        self.local_no_context_takeover = local_no_context_takeover
        """Whether this side compresses each message with an empty window."""
        self.remote_max_window_bits = remote_max_window_bits
        """Base-2 logarithm of the peer's window."""
        self.local_max_window_bits = local_max_window_bits
        """Base-2 logarithm of this side's window."""
        self.compress_settings = _check_compress_settings(compress_settings)
        """zlib settings for compression."""
        self._compressor: _Compress | None = None
        self._decompressor: _Decompress | None = None
        self._encoding_compressed = False
        self._decoding_compressed = False

    def __repr__(self) -> str:
        return (
            f"PerMessageDeflate("
            f"remote_no_context_takeover={self.remote_no_context_takeover}, "
            f"local_no_context_takeover={self.local_no_context_takeover}, "
            f"remote_max_window_bits={self.remote_max_window_bits}, "
            f"local_max_window_bits={self.local_max_window_bits})"
        )

    # Receiving (RFC 7692 section 7.2.2)

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        """Decompress a received frame if it belongs to a compressed message.

        Call it on every received frame, in order, control frames included.

        Args:
            frame: the frame as received, masking removed.
            max_size: the largest payload the decoded frame may have, in bytes; ``None`` for
                no limit. Decompression stops as soon as it goes past it, so a small payload
                that inflates hugely never allocates much more than ``max_size``.

        Returns:
            The frame with its payload decompressed and RSV1 clear; control frames and frames
            of uncompressed messages unchanged.

        Raises:
            ProtocolError: if RSV1 is set on a control or continuation frame, or the
                compressed data is invalid.
            PayloadTooBig: if the decompressed payload exceeds ``max_size``; its ``size`` is
                the number of bytes decompressed when decompression stopped.
        """
        opcode = frame.opcode
        if opcode is OP_TEXT or opcode is OP_BINARY:
            self._decoding_compressed = frame.rsv1
        elif frame.rsv1:
            # RFC 7692 section 6: "An endpoint MUST NOT set the "Per-Message Compressed" bit
            # of control frames and non-first fragments of a data message. An endpoint
            # receiving such a frame MUST _Fail the WebSocket Connection_."
            kind = "continuation" if opcode is OP_CONT else "control"
            raise ProtocolError(f"per-message compressed bit (RSV1) set on a {kind} frame")
        elif opcode is not OP_CONT:
            return frame
        if not self._decoding_compressed:
            return frame
        fin = frame.fin
        if fin:
            data = self.decode_final(frame.data, max_size)
            self._decoding_compressed = False
        else:
            data = self._decompress((frame.data,), max_size)
        return _new_frame(Frame, (opcode, data, fin, False, frame.rsv2, frame.rsv3))

    def decode_final(self, data: bytes, max_size: int | None = None) -> bytes:
        """Decompress the payload of the final frame of a compressed message.

        :meth:`decode` calls it; a driver may call it directly for a whole compressed message
        in one frame (RSV1 and FIN set, opcode TEXT or BINARY) when no message is in
        progress, which spares building a :class:`Frame` to decode.

        Raises:
            ProtocolError: if the compressed data is invalid.
            PayloadTooBig: as :meth:`decode`.
        """
        # RFC 7692 section 7.2.2: "Append 4 octets of 0x00 0x00 0xff 0xff to the tail end of
        # the payload of the message." A small payload is copied with them, which costs less
        # than a second call of zlib; a large one is fed to zlib first, to avoid copying it.
        if len(data) < _APPEND_TAIL_BELOW:
            data = self._decompress((data + _EMPTY_BLOCK_TAIL,), max_size)
        else:
            data = self._decompress((data, _EMPTY_BLOCK_TAIL), max_size)
        # RFC 7692 section 7.2.2: with "no_context_takeover" for the peer, this side "MAY
        # decompress each new message with an empty LZ77 sliding window". Dropping the
        # decompressor frees its window until the next compressed message.
        if self.remote_no_context_takeover:
            self._decompressor = None
        return data

    def _decompress(self, chunks: tuple[bytes, ...], max_size: int | None) -> bytes:
        parts: list[bytes] = []
        size = 0
        try:
            for data in chunks:
                while data:
                    decompressor = self._decompressor or self._new_decompressor()
                    if max_size is None:
                        part = decompressor.decompress(data)
                    else:
                        # Ask for one byte more than allowed: zlib allocates no more than
                        # that, and getting it proves that the payload is too big.
                        part = decompressor.decompress(data, max(max_size - size, 0) + 1)
                        if size + len(part) > max_size:
                            raise PayloadTooBig(size + len(part), max_size)
                    if part:
                        parts.append(part)
                        size += len(part)
                    if decompressor.eof:
                        # A block with BFINAL set ended the DEFLATE stream. RFC 7692 section
                        # 7.2.1: "The next DEFLATE block follows the padded data if any." It
                        # starts a new stream, with an empty window: zlib does not expose
                        # the old one.
                        data = decompressor.unused_data
                        self._decompressor = None
                    else:
                        # Empty unless the limit stopped zlib, which raised above.
                        data = decompressor.unconsumed_tail
        except zlib.error as exc:
            raise ProtocolError(f"decompression failed: {exc}") from exc
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _new_decompressor(self) -> _Decompress:
        wbits = _zlib_window_bits(self.remote_max_window_bits)
        self._decompressor = decompressor = zlib.decompressobj(wbits=wbits)
        return decompressor

    # Sending (RFC 7692 section 7.2.1)

    def encoding_key(self) -> Hashable | None:
        """Without context takeover, messages compress the same way on every connection with
        the same window and settings: broadcasts compress them once."""
        if not self.local_no_context_takeover:
            return None
        settings = tuple(sorted(self.compress_settings.items()))
        return (self.name, self.local_max_window_bits, settings)

    def encode(self, frame: Frame, *, compress: bool = True) -> Frame:
        """Compress a frame to send if it belongs to a compressed message.

        Call it on every frame to send, in order, control frames included.

        Args:
            frame: the frame the application sends.
            compress: on the first frame of a data message, ``False`` sends this message
                uncompressed, which leaves the compression context as it was for the next
                compressed message; ignored on other frames. ``True`` compresses it, unless
                it is binary, its first frame has 16 KiB or more, and samples of that frame
                do not shrink when compressed: data already compressed or encrypted goes
                uncompressed (see :meth:`_looks_incompressible`).

        Returns:
            The frame to put on the wire: compressed, with RSV1 set on the first frame of a
            compressed message; or unchanged.
        """
        opcode = frame.opcode
        if opcode is OP_TEXT or opcode is OP_BINARY:
            data = self.encode_first(opcode, frame.data, frame.fin, compress)
            if data is None:
                return frame
            return _new_frame(Frame, (opcode, data, frame.fin, True, frame.rsv2, frame.rsv3))
        # RFC 7692 section 6: "PMCEs operate only on data messages."
        if opcode is not OP_CONT or not self._encoding_compressed:
            return frame
        # RFC 7692 section 6: "An endpoint MUST NOT set the "Per-Message Compressed" bit of
        # control frames and non-first fragments of a data message."
        data = self._compress(frame.data, frame.fin)
        return _new_frame(Frame, (opcode, data, frame.fin, False, frame.rsv2, frame.rsv3))

    def encode_first(self, opcode: Opcode, data: bytes, fin: bool, compress: bool) -> bytes | None:
        """Compress the payload of the first frame of a data message, or decide not to.

        :meth:`encode` calls it; a driver may call it directly for a TEXT or BINARY frame,
        which spares building a :class:`Frame` to encode.

        Args:
            opcode: :data:`OP_TEXT` or :data:`OP_BINARY`.
            data: the frame's payload.
            fin: whether the frame is the whole message.
            compress: as in :meth:`encode`.

        Returns:
            The payload to send with RSV1 set; ``None`` when the message goes uncompressed,
            as it is, with RSV1 clear.
        """
        # RFC 7692 section 6: "On a WebSocket connection where a PMCE is in use, this bit
        # indicates whether a message is compressed or not." Any message may go without.
        if compress and opcode is OP_BINARY and len(data) >= _PROBE_FROM:
            compress = not self._looks_incompressible(data)
        self._encoding_compressed = compress
        return self._compress(data, fin) if compress else None

    def _looks_incompressible(self, data: bytes) -> bool:
        """Whether DEFLATE saves nothing on samples of a large binary message.

        Data that is already compressed or encrypted (images, archives, media, random bytes)
        does not shrink, yet costs zlib as much time as text, or more: about 40 ns a byte,
        for a 64 KiB message nearly all the work of sending it. Such a message is better sent
        uncompressed (RSV1 clear): the peer then has nothing to decompress, and the wire
        carries fewer bytes than DEFLATE's stored blocks.

        Samples from the start and the middle of the message go through a copy of the
        compressor, with its settings and its window (so a message that repeats what came
        before counts as compressible); the copy is then dropped, and the compression
        context is left as it was. The message is compressed as soon as a sample shrinks
        by more than the 5 octets of a sync flush (about 1%): data that compresses costs
        one sample, ~10 us. The verdict depends only on the data, the settings and the
        window: without context takeover, it is the same on every connection (see
        :meth:`encoding_key`).
        """
        probe = (self._compressor or self._new_compressor()).copy()
        for start in (0, len(data) // 2):
            sample = data[start : start + _PROBE_SAMPLE]
            if len(probe.compress(sample)) + len(probe.flush(zlib.Z_SYNC_FLUSH)) <= _PROBE_SAMPLE:
                return False
        if self.local_no_context_takeover:
            self._compressor = None  # fresh and unused: no memory held between messages
        return True

    def _compress(self, data: bytes, fin: bool) -> bytes:
        compressor = self._compressor or self._new_compressor()
        # A sync flush ends every fragment on a byte boundary with an empty block with no
        # compression, so the peer can decompress each fragment when it arrives. In a
        # non-final fragment that block is ordinary DEFLATE data and stays.
        compressed = compressor.compress(data)
        flushed = compressor.flush(zlib.Z_SYNC_FLUSH)
        if not fin:
            return compressed + flushed
        # RFC 7692 section 7.2.1, steps 2 and 3: "If the resulting data does not end with an
        # empty DEFLATE block with no compression (the "BTYPE" bits are set to 00), append an
        # empty DEFLATE block with no compression to the tail end." then "Remove 4 octets
        # (that are 0x00 0x00 0xff 0xff) from the tail end." The sync flush ends with that
        # block: its 4 octets are removed from the flush's output, before the (larger)
        # output of compress() is joined to it, which avoids copying that output twice.
        if flushed.endswith(_EMPTY_BLOCK_TAIL):
            flushed = flushed[: -len(_EMPTY_BLOCK_TAIL)]
        data = compressed + flushed
        if not data:
            # Nothing new since the previous fragment's flush: appending an empty block and
            # removing its last 4 octets leaves its header, 0x00 (section 7.2.3.6).
            data = _EMPTY_FRAGMENT
        self._encoding_compressed = False
        # RFC 7692 section 7.2.1: if the "agreed parameters" contain
        # "client_no_context_takeover", "the client MUST start compressing each new message
        # with an empty LZ77 sliding window" (and likewise for the server).
        if self.local_no_context_takeover:
            self._compressor = None
        return data

    def _new_compressor(self) -> _Compress:
        settings = self.compress_settings
        self._compressor = compressor = zlib.compressobj(
            level=settings.get("level", zlib.Z_DEFAULT_COMPRESSION),
            wbits=_zlib_window_bits(self.local_max_window_bits),
            memLevel=settings.get("memLevel", zlib.DEF_MEM_LEVEL),
            strategy=settings.get("strategy", zlib.Z_DEFAULT_STRATEGY),
        )
        return compressor


# Negotiation (RFC 7692 section 7.1)


@dataclass(frozen=True)
class _Params:
    """The parameters of one offer or response, parsed."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    client_max_window_bits: int | None = None
    has_client_max_window_bits: bool = False


def _parse_window_bits(name: str, value: str | None) -> int:
    bits = None if value is None else _WINDOW_BITS.get(value)
    if bits is None:
        raise InvalidParameterValue(name, value)
    return bits


def _parse_params(params: Sequence[ExtensionParameter], *, offer: bool) -> _Params:
    """Parse the parameters of an offer (``offer=True``) or of a response.

    Raises:
        DuplicateParameter: if a parameter appears twice.
        InvalidParameterName: if a parameter is unknown.
        InvalidParameterValue: if a parameter has a value it does not allow.
    """
    seen: set[str] = set()
    server_bits: int | None = None
    client_bits: int | None = None
    for name, value in params:
        if name in seen:
            raise DuplicateParameter(name)
        seen.add(name)
        if name == "server_no_context_takeover" or name == "client_no_context_takeover":
            # RFC 7692 sections 7.1.1.1 and 7.1.1.2: "This extension parameter has no value."
            if value is not None:
                raise InvalidParameterValue(name, value)
        elif name == "server_max_window_bits":
            server_bits = _parse_window_bits(name, value)
        elif name == "client_max_window_bits":
            # RFC 7692 section 7.1.2.2: in an offer, "This parameter has no value or a decimal
            # integer value"; in a response, it "has a decimal integer value".
            if value is not None or not offer:
                client_bits = _parse_window_bits(name, value)
        else:
            raise InvalidParameterName(name)
    return _Params(
        server_no_context_takeover="server_no_context_takeover" in seen,
        client_no_context_takeover="client_no_context_takeover" in seen,
        server_max_window_bits=server_bits,
        client_max_window_bits=client_bits,
        has_client_max_window_bits="client_max_window_bits" in seen,
    )


def _check_not_negotiated(accepted_extensions: Sequence[Extension]) -> None:
    # RFC 7692 section 5: "A server MUST NOT accept a PMCE extension negotiation offer
    # together with another extension if the PMCE will conflict with the extension on their
    # use of the RSV1 bit. A client that received a response accepting a PMCE extension
    # negotiation offer together with such an extension MUST _Fail the WebSocket
    # Connection_." permessage-deflate conflicts with itself.
    for extension in accepted_extensions:
        if extension.name == _NAME:
            raise NegotiationError(f"{_NAME} was already negotiated")


def _min_bits(first: int | None, second: int | None) -> int | None:
    if first is None:
        return second
    if second is None:
        return first
    return min(first, second)


class ClientPerMessageDeflateFactory(ClientExtensionFactory):
    """Offers permessage-deflate in a client's request (RFC 7692 section 7.1).

    Args:
        server_no_context_takeover: ask the server to compress each message with an empty
            window, so this side needs no window between messages.
        client_no_context_takeover: compress each message with an empty window, and tell
            the server it may drop its window between messages.
        server_max_window_bits: ask the server for a window of at most 2**N bytes (8 to 15);
            ``None`` accepts up to 2**15.
        client_max_window_bits: ``True`` lets the server choose this side's window; an
            integer (8 to 15) also promises never to use more than 2**N bytes; ``None`` does
            not offer the parameter, so the server cannot choose.
        compress_settings: zlib settings for compression: ``level``, ``memLevel`` and
            ``strategy``, as in :func:`zlib.compressobj`.

    Raises:
        ValueError: if a window size or a compress setting is out of range.
    """

    name = _NAME

    def __init__(
        self,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
        client_max_window_bits: int | Literal[True] | None = True,
        compress_settings: Mapping[str, int] | None = None,
    ) -> None:
        if server_max_window_bits is not None:
            _check_window_bits("server_max_window_bits", server_max_window_bits)
        if client_max_window_bits is not None and client_max_window_bits is not True:
            _check_window_bits("client_max_window_bits", client_max_window_bits)
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.compress_settings = _check_compress_settings(compress_settings)

    def __repr__(self) -> str:
        return (
            f"ClientPerMessageDeflateFactory("
            f"server_no_context_takeover={self.server_no_context_takeover}, "
            f"client_no_context_takeover={self.client_no_context_takeover}, "
            f"server_max_window_bits={self.server_max_window_bits}, "
            f"client_max_window_bits={self.client_max_window_bits})"
        )

    def get_request_params(self) -> list[ExtensionParameter]:
        """The parameters of the offer, in the order of RFC 7692 section 7.1."""
        params: list[ExtensionParameter] = []
        if self.server_no_context_takeover:
            params.append(("server_no_context_takeover", None))
        if self.client_no_context_takeover:
            params.append(("client_no_context_takeover", None))
        if self.server_max_window_bits is not None:
            params.append(("server_max_window_bits", str(self.server_max_window_bits)))
        if self.client_max_window_bits is True:
            params.append(("client_max_window_bits", None))
        elif self.client_max_window_bits is not None:
            params.append(("client_max_window_bits", str(self.client_max_window_bits)))
        return params

    def process_response_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> PerMessageDeflate:
        """Check the server's answer to the offer and build the extension.

        Args:
            params: the parameters of the server's answer.
            accepted_extensions: the extensions accepted before this one.

        Returns:
            The extension, with the client's values as local and the server's as remote.

        Raises:
            NegotiationError: if the answer is not acceptable (RFC 7692 section 7.1); the
                client must then fail the connection. :exc:`DuplicateParameter`,
                :exc:`InvalidParameterName` and :exc:`InvalidParameterValue` name the
                offending parameter.
        """
        _check_not_negotiated(accepted_extensions)
        # RFC 7692 section 7: "A client MUST _Fail the WebSocket Connection_ if the peer
        # server accepted an extension negotiation offer for this extension with an
        # extension negotiation response meeting any of the following conditions": unknown,
        # invalid or duplicate parameters, or a configuration the client does not support.
        response = _parse_params(params, offer=False)

        # RFC 7692 section 7.1.1.1: "A server accepts an extension negotiation offer that
        # includes the "server_no_context_takeover" extension parameter by including the
        # "server_no_context_takeover" extension parameter in the corresponding extension
        # negotiation response". Without it the server ignored part of the offer.
        if self.server_no_context_takeover and not response.server_no_context_takeover:
            raise NegotiationError("expected server_no_context_takeover")

        # RFC 7692 section 7.1.1.2: "A client MUST support the "client_no_context_takeover"
        # extension parameter." Having offered it, the client keeps its word either way.
        client_no_context_takeover = (
            self.client_no_context_takeover or response.client_no_context_takeover
        )

        # RFC 7692 section 7.1.2.1: "A server accepts an extension negotiation offer with this
        # parameter by including the "server_max_window_bits" extension parameter in the
        # extension negotiation response to send back to the client with the same or smaller
        # value as the offer."
        server_max_window_bits = response.server_max_window_bits
        if self.server_max_window_bits is not None:
            if server_max_window_bits is None:
                raise NegotiationError("expected server_max_window_bits")
            if server_max_window_bits > self.server_max_window_bits:
                raise InvalidParameterValue("server_max_window_bits", str(server_max_window_bits))

        # RFC 7692 section 7.1.2.2: "If a received extension negotiation offer doesn't have
        # the "client_max_window_bits" extension parameter, the corresponding extension
        # negotiation response to the offer MUST NOT include the "client_max_window_bits"
        # extension parameter."
        if response.has_client_max_window_bits and self.client_max_window_bits is None:
            raise NegotiationError("unexpected client_max_window_bits: it was not offered")
        # A value in the offer is a promise not to exceed it, whatever the response says.
        offered = self.client_max_window_bits
        client_max_window_bits = _min_bits(
            None if offered is True else offered, response.client_max_window_bits
        )

        return PerMessageDeflate(
            remote_no_context_takeover=response.server_no_context_takeover,
            local_no_context_takeover=client_no_context_takeover,
            remote_max_window_bits=server_max_window_bits or _DEFAULT_WINDOW_BITS,
            local_max_window_bits=client_max_window_bits or _DEFAULT_WINDOW_BITS,
            compress_settings=self.compress_settings,
        )


class ServerPerMessageDeflateFactory(ServerExtensionFactory):
    """Answers a client's offer of permessage-deflate (RFC 7692 section 7.1).

    Args:
        server_no_context_takeover: compress each message with an empty window, so this side
            holds no compression buffers between messages.
        client_no_context_takeover: require the client to compress each message with an
            empty window, so this side holds no decompression buffers between messages.
        server_max_window_bits: use a window of at most 2**N bytes (8 to 15) to compress;
            ``None`` uses 2**15 unless the client asks for less.
        client_max_window_bits: require the client to use a window of at most 2**N bytes
            (8 to 15), which bounds the memory this side needs to decompress; offers that
            cannot carry this limit (without ``client_max_window_bits``) are declined,
            unless ``require_client_max_window_bits`` is false.
        compress_settings: zlib settings for compression: ``level``, ``memLevel`` and
            ``strategy``, as in :func:`zlib.compressobj`.
        require_client_max_window_bits: with ``client_max_window_bits``, whether to decline
            offers that cannot carry it; when false, they are accepted, and such a client
            compresses with its window of up to 2**15 bytes.

    Raises:
        ValueError: if a window size or a compress setting is out of range.
    """

    name = _NAME

    def __init__(
        self,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
        client_max_window_bits: int | None = None,
        compress_settings: Mapping[str, int] | None = None,
        require_client_max_window_bits: bool = True,
    ) -> None:
        if server_max_window_bits is not None:
            _check_window_bits("server_max_window_bits", server_max_window_bits)
        if client_max_window_bits is not None:
            _check_window_bits("client_max_window_bits", client_max_window_bits)
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.compress_settings = _check_compress_settings(compress_settings)
        self.require_client_max_window_bits = require_client_max_window_bits

    def __repr__(self) -> str:
        return (
            f"ServerPerMessageDeflateFactory("
            f"server_no_context_takeover={self.server_no_context_takeover}, "
            f"client_no_context_takeover={self.client_no_context_takeover}, "
            f"server_max_window_bits={self.server_max_window_bits}, "
            f"client_max_window_bits={self.client_max_window_bits})"
        )

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        """Answer one offer of the client.

        Args:
            params: the parameters the client offered.
            accepted_extensions: the extensions accepted before this one.

        Returns:
            The parameters of the answer, in the order of RFC 7692 section 7.1, and the
            extension, with the server's values as local and the client's as remote.

        Raises:
            NegotiationError: if the offer is declined (RFC 7692 section 7.1); the server then
                tries the client's next offer, if any. :exc:`DuplicateParameter`,
                :exc:`InvalidParameterName` and :exc:`InvalidParameterValue` name the
                offending parameter.
        """
        _check_not_negotiated(accepted_extensions)
        # RFC 7692 section 7: "A server MUST decline an extension negotiation offer for this
        # extension if any of the following conditions are met": unknown, invalid or
        # duplicate parameters, or "The server doesn't support the offered configuration."
        offer = _parse_params(params, offer=True)

        # RFC 7692 section 7.1.2.2: "If a received extension negotiation offer doesn't have
        # the "client_max_window_bits" extension parameter, the corresponding extension
        # negotiation response to the offer MUST NOT include the "client_max_window_bits"
        # extension parameter." A limit that cannot be sent cannot be enforced: decline,
        # unless the limit is only a preference.
        if (
            not offer.has_client_max_window_bits
            and self.client_max_window_bits is not None
            and self.require_client_max_window_bits
        ):
            raise NegotiationError("client_max_window_bits required but not offered")

        # RFC 7692 section 7.1.1.1: "A server accepts an extension negotiation offer that
        # includes the "server_no_context_takeover" extension parameter by including the
        # "server_no_context_takeover" extension parameter in the corresponding extension
        # negotiation response".
        server_no_context_takeover = (
            self.server_no_context_takeover or offer.server_no_context_takeover
        )
        # RFC 7692 section 7.2.2: "even if the client has included the
        # "client_no_context_takeover" extension parameter in its offer, the server MUST
        # decompress each new message using the LZ77 sliding window used to process the last
        # compressed message if the "agreed parameters" don't contain the
        # "client_no_context_takeover" extension parameter." Echo the client's hint, so this
        # side may drop its window between messages.
        client_no_context_takeover = (
            self.client_no_context_takeover or offer.client_no_context_takeover
        )
        # RFC 7692 section 7.1.2.1: the server answers "with the same or smaller value as the
        # offer".
        server_max_window_bits = _min_bits(
            self.server_max_window_bits, offer.server_max_window_bits
        )
        # RFC 7692 section 7.1.2.2: the server may answer "with a value equal to or smaller
        # than the received value"; a value in the offer binds the client either way.
        client_max_window_bits = _min_bits(
            self.client_max_window_bits if offer.has_client_max_window_bits else None,
            offer.client_max_window_bits,
        )

        response: list[ExtensionParameter] = []
        if server_no_context_takeover:
            response.append(("server_no_context_takeover", None))
        if client_no_context_takeover:
            response.append(("client_no_context_takeover", None))
        if server_max_window_bits is not None:
            response.append(("server_max_window_bits", str(server_max_window_bits)))
        if client_max_window_bits is not None:
            response.append(("client_max_window_bits", str(client_max_window_bits)))

        extension = PerMessageDeflate(
            remote_no_context_takeover=client_no_context_takeover,
            local_no_context_takeover=server_no_context_takeover,
            remote_max_window_bits=client_max_window_bits or _DEFAULT_WINDOW_BITS,
            local_max_window_bits=server_max_window_bits or _DEFAULT_WINDOW_BITS,
            compress_settings=self.compress_settings,
        )
        return response, extension


def _wants_deflate(compression: str | None) -> bool:
    """Whether the ``compression`` argument of serve() or connect() asks for deflate.

    Raises:
        ValueError: for a value other than ``"deflate"`` or ``None``.
    """
    if compression is not None and compression != "deflate":
        raise ValueError(f"unsupported compression: {compression}")
    return compression is not None


def enable_client_permessage_deflate(
    extensions: Sequence[ClientExtensionFactory] | None,
    compression: str | None = "deflate",
) -> list[ClientExtensionFactory]:
    """Add permessage-deflate to a client's extensions, unless it is already there.

    The default factory offers ``client_max_window_bits`` without a value, so the server may
    shrink the client's window, and compresses with ``memLevel=5``, which takes 144 KiB
    instead of zlib's 256 KiB with a 15-bit window, for a small loss of ratio, and at
    ``level=1``, for speed (see :func:`enable_server_permessage_deflate`). It accepts any
    window from the server: a client holds one connection or a few, and can afford a
    32 KiB window to decompress.

    Args:
        extensions: the client's extension factories, or ``None`` for none.
        compression: the ``compression`` argument of ``connect()``: ``None`` adds nothing.

    Returns:
        A new list: ``extensions`` with a :class:`ClientPerMessageDeflateFactory` at the end,
        if none was there.

    Raises:
        ValueError: if ``compression`` is neither ``"deflate"`` nor ``None``.
    """
    factories = list(extensions or ())
    if _wants_deflate(compression) and not any(f.name == _NAME for f in factories):
        factories.append(
            ClientPerMessageDeflateFactory(compress_settings=_DEFAULT_COMPRESS_SETTINGS)
        )
    return factories


def enable_server_permessage_deflate(
    extensions: Sequence[ServerExtensionFactory] | None,
    compression: str | None = "deflate",
) -> list[ServerExtensionFactory]:
    """Add permessage-deflate to a server's extensions, unless it is already there.

    A server holds one compressor per connection, so the default factory shrinks it:
    ``server_max_window_bits=12`` and ``memLevel=5`` take about 32 KiB instead of zlib's
    256 KiB, and still compress typical messages (JSON, text, a few KiB) almost as well. It
    asks the clients that let it choose (browsers and most libraries offer
    ``client_max_window_bits``) for the same 4 KiB window, as websockets does: the
    decompressor, which exists only from the first compressed message received, takes
    about 11 KiB instead of 40 KiB, and the client compresses at a fraction of the CPU
    (zlib with a 32 KiB window and ``memLevel=5`` is 1.6 to 1.8 times slower), for about
    17% more bytes from the client on JSON. Clients that do not offer it still get
    compression, with their own window.

    It compresses at ``level=1`` (zlib's fastest) rather than zlib's default 6: on JSON,
    compressing and decompressing a message costs 20% (1 KiB) to 34% (64 KiB) less CPU, for
    about 15% more bytes (30% of the original size instead of 26%). For the smallest
    messages on the wire, put in ``extensions`` the factory this function makes, with
    ``compress_settings={"level": 6, "memLevel": 5}`` (or level 9).

    Args:
        extensions: the server's extension factories, or ``None`` for none.
        compression: the ``compression`` argument of ``serve()``: ``None`` adds nothing.

    Returns:
        A new list: ``extensions`` with a :class:`ServerPerMessageDeflateFactory` at the end,
        if none was there.

    Raises:
        ValueError: if ``compression`` is neither ``"deflate"`` nor ``None``.
    """
    factories = list(extensions or ())
    if _wants_deflate(compression) and not any(f.name == _NAME for f in factories):
        factories.append(
            ServerPerMessageDeflateFactory(
                server_max_window_bits=_LOW_MEMORY_SERVER_WINDOW_BITS,
                client_max_window_bits=_LOW_MEMORY_SERVER_WINDOW_BITS,
                compress_settings=_DEFAULT_COMPRESS_SETTINGS,
                require_client_max_window_bits=False,
            )
        )
    return factories
