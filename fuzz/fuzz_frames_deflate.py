"""Fuzz target: the frame parser with a negotiated permessage-deflate (RFC 7692).

Input layout: as ``fuzz_frames.py``, with one more configuration byte before the stream::

    byte 0   flags, as fuzz_frames.py
    byte 1   chunking seed
    byte 2   the agreed parameters of permessage-deflate (fuzz_frames.deflate_extension):
             bit 0 remote_no_context_takeover, bit 1 local_no_context_takeover,
             bits 2-4 remote_max_window_bits - 8, bits 5-7 local_max_window_bits - 8
    rest     the bytes received

Checks: those of ``fuzz_frames.py``, where max_size bounds messages after decompression, and
RSV1 is only ever accepted on the first frame of a data message and never reaches events.
"""

from __future__ import annotations

from _harness import main
from fuzz_frames import check_stream


def TestOneInput(data: bytes) -> None:
    check_stream(data, deflate=True)


if __name__ == "__main__":
    main(TestOneInput)
