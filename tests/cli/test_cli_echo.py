"""``socketeer echo``: the echo server (in a subprocess): messages back as they came, the
size limit, stopping on signals, failing to bind; its command line (in-process); and the
sizes the command line accepts (``socketeer.cli._units``)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from cli_helpers import STARTUP, STEP, recv

import socketeer
from socketeer.cli import main
from socketeer.cli._units import format_size, parse_size
from timing import MS

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")


class EchoProcess:
    """``python -m socketeer echo ARGS`` in a subprocess; threads collect its output."""

    def __init__(self, directory: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "socketeer", "echo", *args],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._out: list[str] = []
        self._err: list[str] = []
        self._readers = [
            threading.Thread(target=_read, args=(self.process.stdout, self._out), daemon=True),
            threading.Thread(target=_read, args=(self.process.stderr, self._err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @property
    def stdout(self) -> str:
        return "".join(self._out)

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    def url(self) -> str:
        """The URL it printed, once it did (within :data:`STARTUP`)."""
        deadline = time.monotonic() + STARTUP
        while not self._out:
            if self.process.poll() is not None and not self._readers[0].is_alive():
                raise AssertionError(f"echo exited with {self.process.returncode}:\n{self.stderr}")
            if time.monotonic() > deadline:
                raise AssertionError(f"echo printed no URL within {STARTUP} s:\n{self.stderr}")
            time.sleep(10 * MS)
        line = self._out[0]
        assert line.startswith("socketeer echo: "), line
        return line.removeprefix("socketeer echo: ").split()[0]

    def wait(self, timeout: float = STEP) -> int:
        """Wait for the exit and the end of the output; return the exit status."""
        status = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        return status

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.wait()


def _read(stream: IO[bytes], lines: list[str]) -> None:
    for line in stream:
        lines.append(line.decode(errors="replace"))
    stream.close()


StartEcho = Callable[..., EchoProcess]


@pytest.fixture
def start_echo(tmp_path: Path) -> Iterator[StartEcho]:
    """``start_echo(*args)`` runs ``socketeer echo ARGS``; teardown kills it."""
    started: list[EchoProcess] = []

    def start(*args: str) -> EchoProcess:
        process = EchoProcess(tmp_path, *args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


def one_line(text: str) -> str:
    """``text``, checked to be one line without a traceback."""
    assert text.endswith("\n") and text.count("\n") == 1, text
    assert "Traceback" not in text
    return text.removesuffix("\n")


async def closed_code(ws: socketeer.ClientConnection) -> int | None:
    """Read until the connection closes; the close code received."""
    with pytest.raises(socketeer.ConnectionClosed) as closed:
        while True:
            await recv(ws)
    return None if closed.value.rcvd is None else closed.value.rcvd.code


# The server, in a subprocess


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
async def test_echo_then_stop(start_echo: StartEcho, signum: int) -> None:
    server = start_echo("--port", "0")
    url = server.url()
    assert url.startswith("ws://127.0.0.1:") and not url.endswith(":0/")
    async with socketeer.connect(url) as ws:
        await ws.send("hello, ☃")
        assert await recv(ws) == "hello, ☃"
        await ws.send(b"\x00\xff binary")
        assert await recv(ws) == b"\x00\xff binary"
        await ws.send(["frag", "mented"])  # one message in two frames: back whole
        assert await recv(ws) == "fragmented"
        await ws.send("")
        assert await recv(ws) == ""
        server.process.send_signal(signum)
        assert await closed_code(ws) == 1001
    assert await _exited(server) == 0
    assert server.stdout == f"socketeer echo: {url}\n"
    assert "Traceback" not in server.stderr


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_event_loop(start_echo: StartEcho, loop: str) -> None:
    server = start_echo("--port", "0", "--loop", loop)
    if loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        assert await _exited(server) == 1
        assert "argument --loop: cannot use uvloop: " in one_line(server.stderr)
        return
    async with socketeer.connect(server.url()) as ws:
        await ws.send("which loop?")
        assert await recv(ws) == "which loop?"
        server.process.send_signal(signal.SIGTERM)
        assert await closed_code(ws) == 1001
    assert await _exited(server) == 0
    assert "Traceback" not in server.stderr


async def test_max_size(start_echo: StartEcho) -> None:
    server = start_echo("--port", "0", "--max-size", "1KiB")
    url = server.url()
    async with socketeer.connect(url) as ws:
        await ws.send(b"x" * 1024)
        assert await recv(ws) == b"x" * 1024
        await ws.send("y" * 1025)
        assert await closed_code(ws) == 1009
    server.process.send_signal(signal.SIGTERM)
    assert await _exited(server) == 0


@pytest.mark.parametrize(
    "args, negotiated",
    [([], True), (["--compression", "deflate"], True), (["--no-compression"], False)],
    ids=["default", "deflate", "none"],
)
async def test_compression(start_echo: StartEcho, args: list[str], negotiated: bool) -> None:
    server = start_echo("--port", "0", *args)
    async with socketeer.connect(server.url(), compression="deflate") as ws:
        assert ws.response is not None
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions") or ""
        assert ("permessage-deflate" in extensions) is negotiated
        await ws.send("a" * 1000)
        assert await recv(ws) == "a" * 1000
    server.process.send_signal(signal.SIGTERM)
    assert await _exited(server) == 0


async def test_unix_socket(start_echo: StartEcho, unix_path: str) -> None:
    server = start_echo("--unix", unix_path)
    url = server.url()
    assert server.stdout == f"socketeer echo: ws://localhost/ (unix socket {unix_path})\n"
    async with socketeer.connect(url, unix=unix_path) as ws:
        await ws.send("hello")
        assert await recv(ws) == "hello"
        server.process.send_signal(signal.SIGTERM)
        assert await closed_code(ws) == 1001
    assert await _exited(server) == 0
    assert not os.path.exists(unix_path)


def test_port_in_use(start_echo: StartEcho) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        server = start_echo("--port", str(port))
        assert server.wait(STARTUP) == 1
    assert server.stdout == ""
    assert one_line(server.stderr) == (
        f"socketeer echo: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


async def _exited(server: EchoProcess) -> int:
    """:meth:`EchoProcess.wait`, from the event loop."""
    return await asyncio.to_thread(server.wait)


# The command line, in-process

USAGE_ERRORS: dict[str, tuple[list[str], str]] = {
    "size-fraction-of-a-byte": (
        ["--max-size", "1.5B"],
        "argument --max-size: expected a whole number of bytes, got '1.5B'",
    ),
    "size-unknown-unit": (
        ["--max-size", "10XB"],
        "argument --max-size: expected a size in bytes, such as 65536, 64KiB or 1MiB, got '10XB'",
    ),
    "size-negative": (
        ["--max-size=-1"],
        "argument --max-size: expected a size in bytes, such as 65536, 64KiB or 1MiB, got '-1'",
    ),
    "size-zero": (["--max-size", "0"], "argument --max-size: expected at least 1 byte, got '0'"),
    "port": (["--port", "65536"], "argument --port: expected a port from 0 to 65535"),
    "compression": (["--compression", "gzip"], "argument --compression: invalid choice: 'gzip'"),
    "compression-twice": (
        ["--compression", "deflate", "--no-compression"],
        "argument --no-compression: not allowed with argument --compression",
    ),
    "unix-and-port": (
        ["--unix", "ws.sock", "--port", "8765"],
        "argument --unix: not allowed with --host or --port",
    ),
    "log-level": (["--log-level", "loud"], "argument --log-level: invalid choice: 'loud'"),
}


@pytest.mark.parametrize("argv, message", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_usage_error(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["echo", *argv])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    line = one_line(err)
    assert line.startswith("python -m socketeer echo: error: "), line
    assert f": error: {message}" in line


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["echo", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for option in ("--port PORT", "--unix PATH", "--max-size BYTES", "--no-compression"):
        assert option in out


# Sizes

SIZES = {
    "0": 0,
    "65536": 65536,
    "1B": 1,
    "1k": 1000,
    "1KB": 1000,
    "64KiB": 65536,
    "64 KiB": 65536,
    "64kib": 65536,
    "1Ki": 1024,
    "1M": 1_000_000,
    "1MB": 1_000_000,
    "1MiB": 1_048_576,
    "1.5KiB": 1536,
    ".5MiB": 524_288,
    "2.KiB": 2048,
    "1G": 1_000_000_000,
    "1GiB": 1 << 30,
    " 8 ": 8,
}


@pytest.mark.parametrize("text, size", SIZES.items(), ids=SIZES.keys())
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "KiB", "1.5", "1.5B", "-1", "1e3", "1TiB", "1 1", "0x10"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_format_size() -> None:
    assert [format_size(n) for n in (0, 1, 1000, 1024, 1536, 1 << 20, 3 << 30)] == [
        "0 bytes",
        "1 byte",
        "1000 bytes",
        "1 KiB",
        "1536 bytes",
        "1 MiB",
        "3 GiB",
    ]
