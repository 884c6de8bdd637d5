"""wsload, the C load generator of ``benchmarks/echo.py``: it builds, and talks RFC 6455.

Each test compiles ``benchmarks/wsload.c`` into a temporary directory (skipped without a C
compiler, failed under ``CI=true``), then runs it to a fixed number of messages: no test
depends on how fast anything runs; every wait is bounded.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_server import missing
from timing import MS

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from echo_clients import build_wsload  # noqa: E402
from echo_servers import MissingError, serve_socketeer_sync  # noqa: E402

TIMEOUT = 60_000 * MS
"""Bound of a whole wsload run (it fails by itself after 10 s without progress)."""
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@pytest.fixture(scope="module")
def wsload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return build_wsload(tmp_path_factory.mktemp("wsload") / "wsload")
    except MissingError as exc:
        missing("a C compiler for benchmarks/wsload.c", f"apt-get install gcc ({exc})")


def run_wsload(binary: Path, port: int, commands: list[str]) -> list[str]:
    """Run wsload with these commands; its answers, one per command."""
    done = subprocess.run(
        [str(binary), str(port)],
        input="".join(f"{command}\n" for command in commands),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    answers = done.stdout.splitlines()
    assert len(answers) == len(commands)
    return answers


class TestSocketeerServer:
    @pytest.fixture
    def port(self) -> Iterator[int]:
        server, port = serve_socketeer_sync()
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            yield port
        finally:
            server.shutdown()
            thread.join(TIMEOUT)

    def test_echo_and_pipeline(self, wsload: Path, port: int) -> None:
        answers = run_wsload(
            wsload,
            port,
            [
                "connect 1",
                "echo 16 60 20",
                "echo 70000 60 3",
                "pipeline 256 8 60 50",
                "close",
                "connect 3",
                "echo 256 60 31",
                "close",
            ],
        )
        assert answers[0] == answers[4] == answers[5] == answers[7] == "ok"
        counts = [int(answers[i].split()[0]) for i in (1, 2, 3, 6)]
        assert counts == [20, 3, 50, 31]
        for i in (1, 2, 3, 6):
            _, elapsed, p50, p99 = map(float, answers[i].split())
            assert 0 < p50 <= p99


# A server written for the test: every echo comes after a ping, in two fragments, some of
# them byte by byte; it checks the pongs and the closing handshake.


def receive_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("EOF from wsload")
        data += chunk
    return data


def receive_frame(sock: socket.socket) -> tuple[int, bool, bytes]:
    """(opcode, fin, payload) of a frame from the client, which must be masked."""
    first, second = receive_exactly(sock, 2)
    assert second & 0x80, "frame not masked"
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", receive_exactly(sock, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", receive_exactly(sock, 8))
    key = receive_exactly(sock, 4)
    masked = receive_exactly(sock, length)
    payload = bytes(byte ^ key[i % 4] for i, byte in enumerate(masked))
    return first & 0x0F, bool(first & 0x80), payload


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    if len(payload) < 126:
        head += bytes([len(payload)])
    elif len(payload) < 65536:
        head += bytes([126]) + struct.pack("!H", len(payload))
    else:
        head += bytes([127]) + struct.pack("!Q", len(payload))
    return head + payload


def accept_handshake(sock: socket.socket) -> None:
    request = b""
    while not request.endswith(b"\r\n\r\n"):
        request += receive_exactly(sock, 1)
    lines = request.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    accept = base64.b64encode(
        hashlib.sha1((headers["sec-websocket-key"] + GUID).encode()).digest()
    )
    sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


def serve_tricky(listener: socket.socket, report: dict[str, Any]) -> None:
    sock, _ = listener.accept()
    with sock:
        sock.settimeout(TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        accept_handshake(sock)
        number = 0
        while True:
            opcode, fin, payload = receive_frame(sock)
            if opcode == 0x8:
                report["close"] = payload
                sock.sendall(frame(0x8, payload))
                return
            if opcode == 0xA:
                report["pongs"].append(payload)
                continue
            assert opcode == 0x2 and fin
            number += 1
            ping = f"ping {number}".encode()
            half = len(payload) // 2
            data = frame(0x9, ping) + frame(0x2, payload[:half], fin=False)
            data += frame(0x0, payload[half:])
            report["pings"].append(ping)
            if number % 2:  # split across reads, as much as TCP_NODELAY splits them
                for i in range(0, len(data), max(1, len(data) // 64)):
                    sock.sendall(data[i : i + max(1, len(data) // 64)])
            else:  # several frames in one write
                sock.sendall(data)


class TestTrickyServer:
    def test_fragments_pings_and_lengths(self, wsload: Path) -> None:
        report: dict[str, Any] = {"pings": [], "pongs": []}
        with socket.create_server(("127.0.0.1", 0)) as listener:
            listener.settimeout(TIMEOUT)
            port = listener.getsockname()[1]
            errors: list[BaseException] = []

            def target() -> None:
                try:
                    serve_tricky(listener, report)
                except BaseException as exc:  # reported by the test's thread
                    errors.append(exc)

            thread = threading.Thread(target=target)
            thread.start()
            try:
                # 7-bit, 16-bit and 64-bit lengths (halves of 0, 200 and 70,000 bytes), empty.
                answers = run_wsload(
                    wsload,
                    port,
                    ["connect 1", "echo 0 60 2", "echo 400 60 3", "echo 140000 60 2", "close"],
                )
            finally:
                thread.join(TIMEOUT)
                assert not errors, errors  # the cause, if wsload failed too
        assert [answer.split()[0] for answer in answers] == ["ok", "2", "3", "2", "ok"]
        # A pong answers a ping with the same payload, in order (the server waits for each
        # echo's next request, sent once the pong is queued).
        assert report["pongs"] == report["pings"]
        assert report["close"] == struct.pack("!H", 1000)


def test_wrong_accept_fails(wsload: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        port = listener.getsockname()[1]

        def target() -> None:
            sock, _ = listener.accept()
            with sock:
                sock.settimeout(TIMEOUT)
                receive_exactly(sock, 16)
                sock.sendall(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                    + base64.b64encode(os.urandom(20))
                    + b"\r\n\r\n"
                )
                sock.recv(4096)  # until wsload closes

        thread = threading.Thread(target=target)
        thread.start()
        try:
            done = subprocess.run(
                [str(wsload), str(port)],
                input="connect 1\n",
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
            )
        finally:
            thread.join(TIMEOUT)
    assert done.returncode == 1
    assert "Sec-WebSocket-Accept" in done.stderr
