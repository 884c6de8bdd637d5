"""``socketeer bench``: in-process, through ``main(argv)``, against servers running in a
thread of their own (socketeer's echo handler, and servers that misbehave); then its
latency record and its schedule, alone.

No test checks a duration: loads are tiny, and counts are checked with generous bounds."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from random import Random
from typing import Any

import pytest
from cli_helpers import STEP

import socketeer
from socketeer.cli import bench, echo, main
from timing import MS

Handler = Callable[[socketeer.ServerConnection], Awaitable[None]]

JSON_KEYS = {
    "url",
    "loop",
    "connections",
    "connected",
    "type",
    "size",
    "compression",
    "rate",
    "duration",
    "messages",
    "messages_per_second",
    "latency_ms",
    "latency_samples",
    "errors",
    "errors_by_kind",
}
"""The keys of ``--json``, as ``docs/cli.md`` documents them."""


class ServerThread:
    """A socketeer server on 127.0.0.1, in an event loop in a thread of its own."""

    def __init__(self, handler: Handler, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.messages: list[str | bytes] = []
        """What the handlers of the tests record."""
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self._handler = handler
        self._options = options
        self._thread.start()
        assert started.wait(STEP), "the server did not start"
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/"

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            self.server = await socketeer.serve(self._handler, "127.0.0.1", 0, **self._options)

        async def close() -> None:
            await self.server.close()

        self.loop.run_until_complete(start())
        started.set()
        self.loop.run_forever()
        self.loop.run_until_complete(close())
        self.loop.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(STEP)


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerThread]]:
    """``start_server(handler, **options)``; teardown stops it."""
    started: list[ServerThread] = []

    def start(handler: Handler = echo.handler, **options: Any) -> ServerThread:
        server = ServerThread(handler, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def run_bench(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``main(["bench", *args])``: its status, stdout and stderr."""
    status = main(["bench", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out, err


def one_line(text: str) -> str:
    """``text``, checked to be one line without a traceback."""
    assert text.endswith("\n") and text.count("\n") == 1, text
    return text.removesuffix("\n")


def free_port() -> int:
    """A port nothing listens on (for a moment)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Against socketeer's echo handler


@pytest.mark.parametrize("loop", ["asyncio", "auto"])
def test_json(
    start_server: Callable[..., ServerThread], loop: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = start_server()
    args = ["--messages", "200", "--connections", "4", "--json", "--loop", loop]
    status, out, err = run_bench(server.url, *args, capsys=capsys)
    assert status == 0, err
    assert err == ""
    assert out.count("\n") == 1
    result = json.loads(out)
    assert set(result) == JSON_KEYS
    uvloop = sys.platform != "win32" and _installed("uvloop")
    assert result["loop"] == ("uvloop" if loop == "auto" and uvloop else "asyncio")
    assert result["url"] == server.url
    assert result["connections"] == result["connected"] == 4
    assert (result["type"], result["size"], result["compression"]) == ("binary", 16, None)
    assert result["rate"] is None
    assert result["messages"] == result["latency_samples"] == 200
    assert result["errors"] == 0
    assert result["errors_by_kind"] == {"connect": 0, "closed": 0, "timeout": 0, "mismatch": 0}
    latency = result["latency_ms"]
    assert list(latency) == ["p50", "p90", "p99", "max"]
    assert 0 <= latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert result["duration"] > 0 and result["messages_per_second"] > 0


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def test_text_messages(
    start_server: Callable[..., ServerThread], capsys: pytest.CaptureFixture[str]
) -> None:
    async def recording_echo(ws: socketeer.ServerConnection) -> None:
        async for message in ws:
            server.messages.append(message)
            await ws.send(message)

    server = start_server(recording_echo)
    args = ["--text", "--size", "1KiB", "--messages", "20", "--connections", "2", "--json"]
    status, out, _ = run_bench(server.url, *args, capsys=capsys)
    assert status == 0
    result = json.loads(out)
    assert (result["type"], result["size"], result["messages"]) == ("text", 1024, 20)
    assert len(server.messages) == 20
    assert all(isinstance(m, str) and len(m) == 1024 for m in server.messages)
    assert len(set(server.messages)) == 20  # each message is numbered


@pytest.mark.parametrize("size", ["0", "1", "15", "16", "17"])
def test_small_sizes(
    start_server: Callable[..., ServerThread], size: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def recording_echo(ws: socketeer.ServerConnection) -> None:
        async for message in ws:
            server.messages.append(message)
            await ws.send(message)

    server = start_server(recording_echo)
    status, out, _ = run_bench(
        server.url, "--size", size, "--messages", "3", "--connections", "1", "--json",
        capsys=capsys,
    )  # fmt: skip
    assert status == 0
    assert json.loads(out)["messages"] == 3
    assert [len(m) for m in server.messages] == [int(size)] * 3
    assert all(isinstance(m, bytes) for m in server.messages)


def test_compression(
    start_server: Callable[..., ServerThread], capsys: pytest.CaptureFixture[str]
) -> None:
    offers: list[str] = []

    async def recording_echo(ws: socketeer.ServerConnection) -> None:
        assert ws.request is not None
        offers.append(ws.request.headers.get("Sec-WebSocket-Extensions") or "")
        await echo.handler(ws)

    server = start_server(recording_echo)
    for args, offered in ((["--compression", "deflate"], True), (["--no-compression"], False)):
        status, out, _ = run_bench(
            server.url, *args, "--messages", "5", "--connections", "1", "--json", capsys=capsys
        )
        assert status == 0
        assert json.loads(out)["compression"] == ("deflate" if offered else None)
        assert ("permessage-deflate" in offers.pop()) is offered


def test_table(
    start_server: Callable[..., ServerThread], capsys: pytest.CaptureFixture[str]
) -> None:
    server = start_server()
    status, out, _ = run_bench(
        server.url, "--messages", "50", "--connections", "2", "--size", "1KiB", capsys=capsys
    )
    assert status == 0
    rows = dict(line.split(None, 1) for line in out.replace("latency ms", "latency").splitlines())
    assert list(rows) == [
        "url",
        "connections",
        "payload",
        "loop",
        "duration",
        "messages",
        "latency",
        "errors",
    ]
    assert rows["url"] == server.url
    assert rows["connections"] == "2 open of 2"
    assert rows["payload"] == "1 KiB, binary, no compression, as fast as possible"
    assert rows["messages"].startswith("50: ") and rows["messages"].endswith(" msg/s")
    assert rows["latency"].startswith("p50 ") and " max " in rows["latency"]
    assert rows["errors"] == "0"


def test_rate_bounds_the_count(
    start_server: Callable[..., ServerThread], capsys: pytest.CaptureFixture[str]
) -> None:
    server = start_server()
    rate, duration, connections = 100, 0.3, 2
    args = ["--rate", str(rate), "--duration", str(duration), "--connections", str(connections)]
    status, out, _ = run_bench(server.url, *args, "--json", capsys=capsys)
    assert status == 0
    result = json.loads(out)
    assert result["rate"] == rate
    assert 1 <= result["messages"] <= rate * duration + connections
    assert result["errors"] == 0


def test_rate_with_messages(
    start_server: Callable[..., ServerThread], capsys: pytest.CaptureFixture[str]
) -> None:
    server = start_server()
    args = ["--rate", "1000", "--messages", "30", "--connections", "3", "--json"]
    status, out, _ = run_bench(server.url, *args, capsys=capsys)
    assert status == 0
    assert json.loads(out)["messages"] == 30


def test_progress_on_a_terminal(
    start_server: Callable[..., ServerThread],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(bench, "PROGRESS_INTERVAL", 10 * MS)
    server = start_server()
    args = ["--rate", "200", "--duration", "0.2", "--connections", "1", "--json"]
    assert main(["bench", server.url, *args]) == 0
    progress = terminal.getvalue()
    assert (
        progress.startswith("\r") and " messages, " in progress and " msg/s, 0 errors" in progress
    )
    assert progress.endswith("\r") and "\n" not in progress  # the line is erased at the end
    assert json.loads(capsys.readouterr().out)["errors"] == 0


# Failures


def test_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"ws://127.0.0.1:{free_port()}/"
    status, out, err = run_bench(url, "--messages", "10", "--connections", "3", capsys=capsys)
    assert status == 1
    assert out == ""
    assert one_line(err).startswith(f"socketeer bench: cannot connect to {url}: ")


def test_some_connections_fail(
    start_server: Callable[..., ServerThread], capsys: pytest.CaptureFixture[str]
) -> None:
    handshakes = 0

    def every_other(connection: Any, request: Any) -> Any:
        nonlocal handshakes
        handshakes += 1
        if handshakes % 2 == 0:
            return connection.respond(503, "busy\n")
        return None

    server = start_server(process_request=every_other)
    args = ["--messages", "40", "--connections", "4", "--json"]
    status, out, err = run_bench(server.url, *args, capsys=capsys)
    assert status == 1
    assert one_line(err).startswith("socketeer bench: 2 of 4 connections failed: ")
    assert "503" in err
    result = json.loads(out)
    assert (result["connected"], result["messages"]) == (2, 40)
    assert result["errors"] == result["errors_by_kind"]["connect"] == 2


def test_wrong_echo(
    start_server: Callable[..., ServerThread], capsys: pytest.CaptureFixture[str]
) -> None:
    async def wrong_echo(ws: socketeer.ServerConnection) -> None:
        async for message in ws:
            await ws.send(message[::-1])

    server = start_server(wrong_echo)
    args = ["--messages", "10", "--connections", "2", "--size", "32", "--json"]
    status, out, _ = run_bench(server.url, *args, capsys=capsys)
    assert status == 1
    result = json.loads(out)
    assert result["messages"] == 0
    assert result["errors"] == result["errors_by_kind"]["mismatch"] == 10
    assert result["latency_ms"] == {"p50": None, "p90": None, "p99": None, "max": None}


def test_text_for_binary(
    start_server: Callable[..., ServerThread], capsys: pytest.CaptureFixture[str]
) -> None:
    async def text_echo(ws: socketeer.ServerConnection) -> None:
        async for message in ws:
            await ws.send(message.decode() if isinstance(message, bytes) else message)

    server = start_server(text_echo)
    status, out, _ = run_bench(server.url, "--messages", "4", "--json", capsys=capsys)
    assert status == 1
    assert json.loads(out)["errors_by_kind"]["mismatch"] == 4


def test_no_echo(
    start_server: Callable[..., ServerThread], capsys: pytest.CaptureFixture[str]
) -> None:
    async def silent(ws: socketeer.ServerConnection) -> None:
        async for _ in ws:
            pass

    server = start_server(silent)
    args = ["--messages", "10", "--connections", "2", "--timeout", str(100 * MS), "--json"]
    status, out, _ = run_bench(server.url, *args, capsys=capsys)
    assert status == 1
    result = json.loads(out)
    assert result["messages"] == 0
    assert result["errors"] == result["errors_by_kind"]["timeout"] == 2  # then they stop


def test_server_closes(
    start_server: Callable[..., ServerThread], capsys: pytest.CaptureFixture[str]
) -> None:
    async def echo_once(ws: socketeer.ServerConnection) -> None:
        await ws.send(await ws.recv())

    server = start_server(echo_once)
    args = ["--messages", "10", "--connections", "2", "--json"]
    status, out, _ = run_bench(server.url, *args, capsys=capsys)
    assert status == 1
    result = json.loads(out)
    assert result["messages"] == 2
    assert result["errors"] == result["errors_by_kind"]["closed"] == 2


def test_uvloop_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    status, out, err = run_bench("ws://127.0.0.1:1/", "--loop", "uvloop", capsys=capsys)
    assert status == 1
    assert one_line(err).startswith("socketeer bench: argument --loop: cannot use uvloop: ")


USAGE_ERRORS: dict[str, tuple[list[str], str]] = {
    "no-url": ([], "the following arguments are required: URL"),
    "http-url": (
        ["http://127.0.0.1/"],
        "argument URL: 'http://127.0.0.1/' isn't a valid WebSocket URI: scheme must be ws or wss",
    ),
    "connections-zero": (
        ["ws://h/", "--connections", "0"],
        "argument --connections: expected a number of connections from 1 to 10000, got '0'",
    ),
    "messages-zero": (
        ["ws://h/", "--messages", "0"],
        "argument --messages: expected a number of messages of 1 or more, got '0'",
    ),
    "size-too-big": (
        ["ws://h/", "--size", "1GiB"],
        "argument --size: expected at most 64 MiB, got '1GiB'",
    ),
    "size-bad": (["ws://h/", "--size", "big"], "argument --size: expected a size in bytes"),
    "duration-zero": (
        ["ws://h/", "--duration", "0"],
        "argument --duration: expected a duration in seconds, more than 0, got '0'",
    ),
    "duration-nan": (["ws://h/", "--duration", "nan"], "argument --duration: expected"),
    "duration-and-messages": (
        ["ws://h/", "--duration", "1", "--messages", "10"],
        "argument --messages: not allowed with argument --duration",
    ),
    "rate-negative": (
        ["ws://h/", "--rate=-5"],
        "argument --rate: expected messages per second, more than 0, got '-5'",
    ),
    "rate-infinite": (["ws://h/", "--rate", "inf"], "argument --rate: expected"),
    "text-and-binary": (
        ["ws://h/", "--binary", "--text"],
        "argument --text: not allowed with argument --binary",
    ),
    "compression-twice": (
        ["ws://h/", "--compression", "deflate", "--no-compression"],
        "argument --no-compression: not allowed with argument --compression",
    ),
    "loop": (["ws://h/", "--loop", "trio"], "argument --loop: invalid choice: 'trio'"),
}


@pytest.mark.parametrize("argv, message", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_usage_error(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["bench", *argv])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    line = one_line(err)
    assert line.startswith("python -m socketeer bench: error: "), line
    assert f": error: {message}" in line


# The latency record and the schedule


def test_latencies_percentiles() -> None:
    latencies = bench.Latencies()
    assert latencies.percentile(50) is None
    for value in range(100, 0, -1):  # 100 ... 1
        latencies.add(value / 1000)
    assert latencies.count == 100 and latencies.max == 0.1
    assert [latencies.percentile(p) for p in (1, 50, 90, 99, 100)] == [
        0.001,
        0.05,
        0.09,
        0.099,
        0.1,
    ]
    latencies.add(1.0)  # after a percentile was asked for
    assert latencies.percentile(100) == 1.0


def test_latencies_sample_is_bounded() -> None:
    latencies = bench.Latencies(capacity=100, rng=Random(7))
    for value in range(10_000):
        latencies.add(float(value))
    assert latencies.count == 10_000
    assert latencies.max == 9999.0  # exact, sample or not
    assert len(latencies.samples) == 100
    median = latencies.percentile(50)
    assert median is not None and 2_000 < median < 8_000  # a uniform sample's


def test_schedule_with_rate_and_duration() -> None:
    schedule = bench.Schedule(duration=1.0, messages=None, rate=10)
    tickets = []
    while (ticket := schedule.take()) is not None:
        tickets.append(ticket)
    assert [number for number, _ in tickets] == list(range(10))
    assert [round(due - schedule.start, 6) for _, due in tickets] == [k / 10 for k in range(10)]


def test_schedule_with_messages() -> None:
    schedule = bench.Schedule(duration=None, messages=3, rate=None)
    assert [schedule.take() is not None for _ in range(4)] == [True, True, True, False]
    schedule = bench.Schedule(duration=None, messages=3, rate=None)
    schedule.stop()
    assert schedule.take() is None


async def test_schedule_stop_wakes_the_waiters() -> None:
    schedule = bench.Schedule(duration=None, messages=None, rate=1 / 3600)
    schedule.take()
    _, due = schedule.take() or (0, 0.0)  # due in an hour
    waiting = asyncio.create_task(schedule.wait(due))
    await asyncio.sleep(0)
    schedule.stop()
    await asyncio.wait_for(waiting, STEP)
    assert schedule.take() is None
