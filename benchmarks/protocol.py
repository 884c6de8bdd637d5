"""Sans-I/O core throughput: socketeer's protocol against websockets' protocol, side by side.

No sockets: each library's protocol object parses a stream of client frames (server side:
unmask, validate, emit events) and builds frames (client side: mask, serialize), so the
figures show the cost of the WebSocket work itself. Run with ``make bench`` or
``python benchmarks/protocol.py [--quick]``. Loops are bounded in count and time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

from socketeer.protocol import Frame, Opcode, Protocol
from socketeer.protocol.base import CLIENT, SERVER
from socketeer.protocol.masking import SPEEDUPS

SIZES = [16, 1024, 65536, 1048576]
MAX_SECONDS = 0.5  # per measurement


def messages_for(size: int) -> int:
    return max(8, min(20000, 32 * 1048576 // (size + 64) // 4))


def measure(run: Callable[[], int]) -> float:
    """Messages per second: the median of a few runs, each bounded in time."""
    rates = []
    for _ in range(5):
        start = time.perf_counter()
        count = run()
        rates.append(count / (time.perf_counter() - start))
        if time.perf_counter() - start > MAX_SECONDS:
            break
    return statistics.median(rates)


def client_stream(size: int, count: int, text: bool) -> bytes:
    payload = (b"a" * size) if text else os.urandom(size)
    frame = Frame(Opcode.TEXT if text else Opcode.BINARY, payload)
    return b"".join(frame.serialize(mask=True) for _ in range(count))


def socketeer_receive(stream: bytes, count: int) -> Callable[[], int]:
    def run() -> int:
        protocol = Protocol(SERVER, max_size=None)
        for start in range(0, len(stream), 65536):
            protocol.receive_data(stream[start : start + 65536])
            protocol.events_received()
            protocol.data_to_send()
        return count

    return run


def socketeer_send(payload: bytes, count: int, text: bool) -> Callable[[], int]:
    def run() -> int:
        protocol = Protocol(CLIENT, max_size=None)
        send = protocol.send_text if text else protocol.send_binary
        for _ in range(count):
            send(payload)
            protocol.data_to_send()
        return count

    return run


def websockets_receive(stream: bytes, count: int) -> Callable[[], int] | None:
    try:
        import websockets.protocol as ws
    except ImportError:
        return None

    def run() -> int:
        protocol = ws.Protocol(ws.Side.SERVER, state=ws.OPEN, max_size=None)
        for start in range(0, len(stream), 65536):
            protocol.receive_data(stream[start : start + 65536])
            protocol.events_received()
            protocol.data_to_send()
        return count

    return run


def websockets_send(payload: bytes, count: int, text: bool) -> Callable[[], int] | None:
    try:
        import websockets.protocol as ws
    except ImportError:
        return None

    def run() -> int:
        protocol = ws.Protocol(ws.Side.CLIENT, state=ws.OPEN, max_size=None)
        send = protocol.send_text if text else protocol.send_binary
        for _ in range(count):
            send(payload)
            protocol.data_to_send()
        return count

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes, for smoke tests")
    args = parser.parse_args(argv)
    sizes = SIZES[:2] if args.quick else SIZES
    print(f"Python {sys.version.split()[0]}, C speedups: {SPEEDUPS}")
    print(f"{'test':<26}{'socketeer msg/s':>16}{'websockets msg/s':>18}{'ratio':>8}")
    for text in (False, True):
        kind = "text" if text else "binary"
        for size in sizes:
            count = messages_for(size)
            stream = client_stream(size, count, text)
            payload = stream[6 : 6 + size] if size < 126 else b"a" * size
            rows = [
                ("receive", socketeer_receive(stream, count), websockets_receive(stream, count)),
                (
                    "send",
                    socketeer_send(payload, count, text),
                    websockets_send(payload, count, text),
                ),
            ]
            for name, ours, theirs in rows:
                ours_rate = measure(ours)
                theirs_rate = measure(theirs) if theirs is not None else float("nan")
                label = f"{name} {kind} {size} B"
                print(
                    f"{label:<26}{ours_rate:>16,.0f}{theirs_rate:>18,.0f}"
                    f"{ours_rate / theirs_rate:>7.2f}x"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
