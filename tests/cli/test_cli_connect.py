"""``socketeer connect``: the line editor and the escaping (without I/O); the command in
process (``main(argv)`` in a thread, standard input a pipe) against a server in the test's
event loop; the interactive mode in a pseudo-terminal and signals, in subprocesses.

Every wait is bounded (:data:`STEP`, in ``MS``); no test checks a duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import socketeer
from socketeer.cli import main
from socketeer.cli._connect_rpc import complete, parse_arguments
from socketeer.cli._connect_session import describe
from socketeer.cli._line_editor import (
    MAX_LINE,
    Candidates,
    ClearScreen,
    EndOfInput,
    Interrupted,
    LineEditor,
    Submitted,
)
from socketeer.cli._terminal import InputLines, escape, text_width
from socketeer.pubsub import Rooms
from socketeer.rpc import RPC, current_peer
from timing import MS

STEP = 5_000 * MS
"""Longest a single step may take; steps take milliseconds. Only catches hangs."""

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX terminals and signals")


# Escaping and describing messages


@pytest.mark.parametrize(
    ("text", "printed"),
    [
        ("plain text, é, 漢字", "plain text, é, 漢字"),
        ("\x1b[2J\x1b]0;title\x07", "\\x1b[2J\\x1b]0;title\\x07"),
        ("two\nlines\r\n", "two\\nlines\\r\\n"),
        ("tab\there", "tab\\there"),
        ("\x00\x7f\x9b", "\\x00\\x7f\\x9b"),
        ("abc\u202edcba", "abc\\u202edcba"),  # right-to-left override
        ("line\u2028separator", "line\\u2028separator"),
        ("back\\slash", "back\\slash"),
    ],
)
def test_escape(text: str, printed: str) -> None:
    assert escape(text) == printed


def test_describe() -> None:
    assert describe("text") == "text"
    assert describe(b"") == "(binary, 0 bytes)"
    assert describe(b"\x01") == "(binary, 1 byte) 01"
    assert describe(bytes(range(4)), limit=2) == "(binary, 4 bytes) 00 01 ..."
    assert describe(bytes(range(4)), limit=4) == "(binary, 4 bytes) 00 01 02 03"


def test_text_width() -> None:
    assert text_width("abc") == 3
    assert text_width("漢字") == 4
    assert text_width("e\u0301") == 1  # a combining accent takes no column


# The line editor


def typed(editor: LineEditor, *keys: str) -> list[Any]:
    events = []
    for key in keys:
        events += editor.feed(key)
    return events


def test_editor_inserts_and_submits() -> None:
    editor = LineEditor()
    assert editor.feed("hello") == []
    assert (editor.text, editor.cursor) == ("hello", 5)
    assert editor.feed("\r") == [Submitted("hello")]
    assert (editor.text, editor.cursor) == ("", 0)
    assert editor.feed("a\nb\r") == [Submitted("a"), Submitted("b")]


def test_editor_moves_and_deletes() -> None:
    editor = LineEditor()
    typed(editor, "helo", "\x1b[D", "l")  # Left, then insert
    assert (editor.text, editor.cursor) == ("hello", 4)
    typed(editor, "\x01", "\x1b[3~")  # Ctrl-A, Delete
    assert (editor.text, editor.cursor) == ("ello", 0)
    typed(editor, "\x05", "\x7f")  # Ctrl-E, Backspace
    assert (editor.text, editor.cursor) == ("ell", 3)
    typed(editor, "\x1b[H", "\x1b[C", "\x0b")  # Home, Right, Ctrl-K
    assert (editor.text, editor.cursor) == ("e", 1)
    typed(editor, "\x15")  # Ctrl-U
    assert (editor.text, editor.cursor) == ("", 0)


def test_editor_words() -> None:
    editor = LineEditor()
    typed(editor, "call add  1")
    typed(editor, "\x1b[1;5D")  # Ctrl-Left
    assert editor.cursor == len("call add  ")
    typed(editor, "\x1bb")  # Alt-b
    assert editor.cursor == len("call ")
    typed(editor, "\x1bf")  # Alt-f
    assert editor.cursor == len("call add")
    typed(editor, "\x17")  # Ctrl-W
    assert (editor.text, editor.cursor) == ("call   1", len("call "))


def test_editor_escape_sequences_split_across_reads() -> None:
    editor = LineEditor()
    typed(editor, "ab", "\x1b", "[", "D", "X")
    assert editor.text == "aXb"
    typed(editor, "\x1b[99~", "\x1b[1;2Q")  # unknown: ignored
    assert editor.text == "aXb"
    typed(editor, "\x00\x07\x1c")  # other control characters: ignored
    assert editor.text == "aXb"


def test_editor_history() -> None:
    editor = LineEditor()
    typed(editor, "one\r", "two\r", "two\r", "  \r", "dra")
    assert editor.history == ["one", "two"]
    typed(editor, "\x1b[A")
    assert editor.text == "two"
    typed(editor, "\x1b[A", "\x1b[A")
    assert editor.text == "one"
    typed(editor, "\x1b[B")
    assert editor.text == "two"
    typed(editor, "\x0e")  # Ctrl-N: back to the draft
    assert (editor.text, editor.cursor) == ("dra", 3)


def test_editor_end_of_input_and_interrupt() -> None:
    editor = LineEditor()
    assert editor.feed("\x04") == [EndOfInput()]
    typed(editor, "ab", "\x1b[D")
    assert editor.feed("\x04") == []  # Ctrl-D on a line deletes
    assert editor.text == "a"
    assert editor.feed("\x03") == [Interrupted()]
    assert editor.feed("\x0c") == [ClearScreen()]


def test_editor_completion() -> None:
    words = ["/ping", "/close", "/binary", "/send"]
    editor = LineEditor(lambda before: (before.rfind(" ") + 1, words))
    typed(editor, "/p", "\t")
    assert (editor.text, editor.cursor) == ("/ping ", 6)
    editor = LineEditor(lambda before: (0, ["call", "close"]))
    typed(editor, "c")
    assert editor.feed("\t") == [Candidates(("call", "close"))]
    editor = LineEditor(lambda before: (0, ["counter.increment", "counter.reset"]))
    typed(editor, "c", "\t")
    assert editor.text == "counter."
    editor = LineEditor()  # no completer: Tab does nothing
    typed(editor, "a\tb")
    assert editor.text == "ab"


# The RPC commands, without a connection


def test_parse_arguments() -> None:
    assert parse_arguments("") == []
    assert parse_arguments("1 2.5 true null") == [1, 2.5, True, None]
    assert parse_arguments('{"a": [1, 2]}  "two words" [3]') == [{"a": [1, 2]}, "two words", [3]]
    assert parse_arguments("hello 12ab {oops") == ["hello", "12ab", "{oops"]


def test_complete_rpc() -> None:
    methods = ["add", "counter.increment", "div"]
    assert complete("", methods) == (
        0,
        ("call", "notify", "join", "leave", "/ping", "/close", "/help"),
    )
    assert complete("call a", methods) == (5, methods)
    assert complete("notify ", methods) == (7, methods)
    assert complete("call add 1", methods) == (9, ())
    assert complete("join lo", methods) == (5, ())
    editor = LineEditor(lambda before: complete(before, methods))
    typed(editor, "call co", "\t", "1\r")
    assert editor.history == ["call counter.increment 1"]


# Standard input, line by line


async def test_input_lines() -> None:
    read, write = os.pipe()
    too_long = b"x" * (MAX_LINE + 10) + b"\n" + b"y" * (3 * MAX_LINE) + b"\n"
    data = b"first\r\n" + too_long + b"caf\xe9\n\nlast"

    def writer() -> None:
        with os.fdopen(write, "wb") as file:
            file.write(data)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    errors: list[str] = []
    lines = InputLines(read, errors.append)
    try:
        received = [line async for line in lines]
    finally:
        lines.close()
        thread.join(STEP)
        os.close(read)
    assert received == ["first", "", "last"]
    assert errors == [
        f"line 2 of standard input is longer than {MAX_LINE} bytes: skipped",
        f"line 3 of standard input is longer than {MAX_LINE} bytes: skipped",
        "line 4 of standard input is not UTF-8: skipped "
        "(/binary HEX or /send @FILE send binary data)",
    ]


async def test_input_lines_without_input() -> None:
    lines = InputLines(None, print)
    assert [line async for line in lines] == []


# The command in process


class Capture(io.StringIO):
    """Standard output or error, written by the command's thread, read by the test."""

    def isatty(self) -> bool:
        return False


class CLI:
    """``main(["connect", *args])`` in a thread, standard input a pipe that the test writes
    to (:meth:`type`, :meth:`end_input`), standard output and error captured."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        read, self._input = os.pipe()
        self.stdin = os.fdopen(read, "r")
        self.stdout = Capture()
        self.stderr = Capture()
        self._monkeypatch = monkeypatch
        self.status: object = None
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, *args: str) -> CLI:
        # Here, not in the fixture: pytest sets its own sys.stdout and sys.stderr again
        # when the test starts.
        self._monkeypatch.setattr(sys, "stdin", self.stdin)
        self._monkeypatch.setattr(sys, "stdout", self.stdout)
        self._monkeypatch.setattr(sys, "stderr", self.stderr)
        self._thread = threading.Thread(target=self._main, args=(args,), daemon=True)
        self._thread.start()
        return self

    def _main(self, args: tuple[str, ...]) -> None:
        try:
            self.status = main(["connect", *args])
        except SystemExit as exc:
            self.status = exc.code
        except BaseException as exc:
            self.error = exc
        finally:
            self._done.set()

    def type(self, text: str | bytes) -> None:
        os.write(self._input, text.encode() if isinstance(text, str) else text)

    def end_input(self) -> None:
        if self._input >= 0:
            os.close(self._input)
            self._input = -1

    async def exited(self) -> object:
        """The exit status, once the command returned."""
        await until(self._done.is_set)
        if self.error is not None:
            raise self.error
        return self.status

    async def printed(self, text: str, stream: str = "stdout") -> None:
        capture = self.stdout if stream == "stdout" else self.stderr
        await until(lambda: text in capture.getvalue(), f"{text!r} on {stream}: {self}")

    def close(self) -> None:
        self.end_input()
        if self._thread is not None:
            self._thread.join(STEP)
        self.stdin.close()

    def __repr__(self) -> str:
        return f"stdout={self.stdout.getvalue()!r} stderr={self.stderr.getvalue()!r}"


async def until(predicate: Callable[[], bool], what: str = "") -> None:
    """Wait for ``predicate()`` to be true, checking every few milliseconds (at most
    :data:`STEP`)."""
    for _ in range(int(STEP / (10 * MS)) + 1):
        if predicate():
            return
        await asyncio.sleep(10 * MS)
    raise AssertionError(f"still false after {STEP} s {what}")


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[CLI]:
    runner = CLI(monkeypatch)
    yield runner
    runner.close()


class Server:
    """A server in the test's event loop: it echoes, and keeps what it received and its
    connections. ``on_message(ws, message)`` may replace the echo."""

    def __init__(self) -> None:
        self.received: list[socketeer.Data] = []
        self.connections: list[socketeer.ServerConnection] = []
        self.on_message: Callable[[Any, Any], Any] | None = None

    async def handler(self, ws: socketeer.ServerConnection) -> None:
        self.connections.append(ws)
        with contextlib.suppress(socketeer.ConnectionClosed):
            async for message in ws:
                self.received.append(message)
                with contextlib.suppress(socketeer.ConnectionClosed):  # read on, to the end
                    if self.on_message is not None:
                        await self.on_message(ws, message)
                    else:
                        await ws.send(message)

    @property
    def ws(self) -> socketeer.ServerConnection:
        assert self.connections, "no connection yet"
        return self.connections[-1]


@contextlib.asynccontextmanager
async def serving(
    handler: Any = None, *, scheme: str = "ws", **options: Any
) -> AsyncIterator[tuple[Server, str]]:
    server = Server()
    async with socketeer.serve(handler or server.handler, "127.0.0.1", 0, **options) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        yield server, f"{scheme}://127.0.0.1:{port}/"


def assert_one_line(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


# Lines from a pipe


async def test_lines_are_sent_and_replies_printed(cli: CLI) -> None:
    async with serving() as (server, url):
        cli.start(url, "--wait", "0")
        cli.type("hello\nsecond line\r\n\n")
        await cli.printed("hello\nsecond line\n\n")
        cli.end_input()
        assert await cli.exited() == 0
        assert server.received == ["hello", "second line", ""]
        await server.ws.wait_closed()
        assert server.ws.close_code == 1000
    assert cli.stderr.getvalue() == ""  # nothing to report on a normal closure


async def test_replies_after_the_end_of_input_are_printed(cli: CLI) -> None:
    async def reply_later(ws: Any, message: Any) -> None:
        await asyncio.sleep(20 * MS)
        await ws.send(f"re: {message}")
        await ws.send(f"re: {message}, again")

    async with serving() as (server, url):
        server.on_message = reply_later
        cli.type("one\ntwo\n")
        cli.end_input()
        cli.start(url, "--wait", str(1000 * MS))
        assert await cli.exited() == 0
    assert cli.stdout.getvalue() == "re: one\nre: one, again\nre: two\nre: two, again\n"


async def test_control_characters_are_escaped(cli: CLI) -> None:
    async def evil(ws: Any, message: Any) -> None:
        await ws.send("\x1b[2J\x1b]0;pwned\x07two\nlines\u202e")

    async with serving() as (server, url):
        server.on_message = evil
        cli.start(url, "--wait", "0")
        cli.type("go\n")
        await cli.printed("\\x1b[2J\\x1b]0;pwned\\x07two\\nlines\\u202e\n")
        cli.end_input()
        assert await cli.exited() == 0
    assert "\x1b" not in cli.stdout.getvalue()


async def test_binary_messages(cli: CLI) -> None:
    async def binary(ws: Any, message: Any) -> None:
        await ws.send(bytes(range(40)))

    async with serving() as (server, url):
        server.on_message = binary
        cli.start(url, "--wait", "0")
        cli.type("go\n")
        # Not on a terminal, every byte is shown.
        await cli.printed(f"(binary, 40 bytes) {bytes(range(40)).hex(' ')}\n")
        cli.end_input()
        assert await cli.exited() == 0


async def test_server_closes_normally(cli: CLI) -> None:
    async def close(ws: Any, message: Any) -> None:
        await ws.close(1001, "maintenance")

    async with serving() as (server, url):
        server.on_message = close
        cli.start(url)
        cli.type("bye\n")
        assert await cli.exited() == 0
    assert cli.stderr.getvalue() == (
        "= connection closed by the server: 1001 (going away) maintenance\n"
    )


async def test_server_closes_with_an_error(cli: CLI) -> None:
    async def fail(ws: Any, message: Any) -> None:
        await ws.close(1011, "boom\x1b[31m")

    async with serving() as (server, url):
        server.on_message = fail
        cli.start(url)
        cli.type("crash\n")
        assert await cli.exited() == 1
    stderr = cli.stderr.getvalue()
    assert stderr == (
        "socketeer connect: connection closed by the server: "
        "1011 (unexpected error) boom\\x1b[31m\n"
    )


async def test_connection_lost(cli: CLI) -> None:
    async def drop(ws: Any, message: Any) -> None:
        ws.transport.abort()

    async with serving() as (server, url):
        server.on_message = drop
        cli.start(url)
        cli.type("drop\n")
        assert await cli.exited() == 1
    assert "connection lost: no close frame received (1006)" in cli.stderr.getvalue()
    assert_one_line(cli.stderr.getvalue())


async def test_verbose(cli: CLI) -> None:
    async with serving(subprotocols=["chat"]) as (server, url):
        cli.start(url, "-v", "--subprotocol", "chat", "--wait", "0")
        cli.end_input()
        assert await cli.exited() == 0
    stderr = cli.stderr.getvalue()
    assert stderr.startswith("> GET / HTTP/1.1\n> Host: 127.0.0.1:")
    assert "\n> Sec-WebSocket-Protocol: chat\n" in stderr
    assert "\n>\n< HTTP/1.1 101 Switching Protocols\n" in stderr
    assert "\n= extensions: permessage-deflate" in stderr
    assert "\n= subprotocol: chat\n" in stderr
    assert stderr.endswith("= connection closed: 1000 (OK)\n")


async def test_headers_subprotocol_origin(cli: CLI) -> None:
    async with serving(subprotocols=["chat.v2", "chat"]) as (server, url):
        cli.start(
            url,
            "--header",
            "X-Token: 42",
            "-H",
            "Cookie:id=7",
            "--subprotocol",
            "chat",
            "--origin",
            "https://example.com",
            "--no-compression",
            "--wait",
            "0",
        )
        cli.end_input()
        assert await cli.exited() == 0
        request = server.ws.request
        assert request is not None
        assert request.headers["X-Token"] == "42"
        assert request.headers["Cookie"] == "id=7"
        assert request.headers["Origin"] == "https://example.com"
        assert "Sec-WebSocket-Extensions" not in request.headers
        assert server.ws.subprotocol == "chat"


async def test_commands(cli: CLI, tmp_path: Path) -> None:
    (tmp_path / "message.json").write_text('{"greeting": "hé"}')
    (tmp_path / "blob.bin").write_bytes(b"\xff\x00")
    async with serving() as (server, url):
        cli.start(url)
        cli.type("/binary 48 69\n/ping\n/ping payload\n")
        cli.type(f"/send @{tmp_path / 'message.json'}\n/send @{tmp_path / 'blob.bin'}\n")
        cli.type("//slash\n/help\n/close 4000 bye\nnever sent\n")
        assert await cli.exited() == 0
        assert server.received == [b"Hi", '{"greeting": "hé"}', b"\xff\x00", "/slash"]
        await server.ws.wait_closed()
        assert (server.ws.close_code, server.ws.close_reason) == (4000, "bye")
    stderr = cli.stderr.getvalue()
    assert stderr.count("= pong in ") == 2
    assert f"= sent {tmp_path / 'message.json'} as text (18 characters)\n" in stderr
    assert f"= sent {tmp_path / 'blob.bin'} as binary (2 bytes)\n" in stderr
    assert "= a line is sent as a text message" in stderr  # /help
    assert "Traceback" not in stderr


async def test_bad_commands_go_on(cli: CLI, tmp_path: Path) -> None:
    async with serving() as (server, url):
        cli.start(url, "--wait", "0")
        cli.type("/binary zz\n/binary\n/send @" + str(tmp_path / "missing") + "\n")
        cli.type(f"/send {tmp_path}\n/send @{tmp_path}\n/nope\n/close abc\n/close 999\n")
        cli.type("/ping " + "x" * 126 + "\nstill connected\n")
        await cli.printed("still connected\n")
        cli.end_input()
        assert await cli.exited() == 0
        assert server.received == ["still connected"]
    assert cli.stderr.getvalue().splitlines() == [
        "socketeer connect: /binary: expected bytes in hexadecimal, e.g. /binary 48 69, got 'zz'",
        "socketeer connect: /binary: expected bytes in hexadecimal, e.g. /binary 48 69, got ''",
        f"socketeer connect: /send: cannot read {tmp_path / 'missing'}: no such file",
        "socketeer connect: /send: expected @FILE, e.g. /send @message.json",
        f"socketeer connect: /send: cannot read {tmp_path}: it is a directory",
        "socketeer connect: unknown command /nope: /help lists the commands",
        "socketeer connect: /close: expected a close code, got 'abc'",
        "socketeer connect: /close: invalid close code 999",
        "socketeer connect: /ping: the text of a ping has at most 125 bytes",
    ]


async def test_lines_that_are_not_utf8_are_skipped(cli: CLI) -> None:
    async with serving() as (server, url):
        cli.start(url, "--wait", "0")
        cli.type(b"caf\xe9\nok\n")
        await cli.printed("ok\n")
        cli.end_input()
        assert await cli.exited() == 0
        assert server.received == ["ok"]
    assert cli.stderr.getvalue().startswith(
        "socketeer connect: line 1 of standard input is not UTF-8: skipped"
    )


async def test_empty_input(cli: CLI) -> None:
    async with serving() as (server, url):
        cli.end_input()
        cli.start(url, "--wait", "0")
        assert await cli.exited() == 0
        assert server.received == []


async def test_tls(cli: CLI, server_ssl: ssl.SSLContext) -> None:
    async with serving(ssl=server_ssl, scheme="wss") as (server, url):
        cli.start(url, "--insecure", "--wait", "0")
        cli.type("secret\n")
        await cli.printed("secret\n")
        cli.end_input()
        assert await cli.exited() == 0


@contextlib.contextmanager
def tls_listener(server_ssl: ssl.SSLContext) -> Iterator[str]:
    """A TLS server in a thread, for one client that gives up during the handshake (an
    asyncio server would report it as an error, which fails the test)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(STEP)

    def accept() -> None:
        with contextlib.suppress(OSError):
            connection, _ = listener.accept()
            with connection, contextlib.suppress(OSError):
                server_ssl.wrap_socket(connection, server_side=True).close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"wss://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        thread.join(STEP)
        listener.close()


async def test_tls_certificate_not_verified(cli: CLI, server_ssl: ssl.SSLContext) -> None:
    with tls_listener(server_ssl) as url:
        cli.start(url)
        assert await cli.exited() == 1
    stderr = cli.stderr.getvalue()
    assert stderr.startswith(f"socketeer connect: cannot connect to {url}: certificate verify")
    assert stderr.endswith("(-k/--insecure skips the verification)\n")
    assert_one_line(stderr)


# Failures to connect, mistakes in the command line


async def test_connection_refused(cli: CLI) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens there once closed
    cli.start(f"ws://127.0.0.1:{port}/")
    assert await cli.exited() == 1
    assert cli.stderr.getvalue() == (
        f"socketeer connect: cannot connect to ws://127.0.0.1:{port}/: connection refused\n"
    )


async def test_handshake_refused(cli: CLI) -> None:
    def forbid(connection: Any, request: Any) -> Any:
        return connection.respond(403, "go away\n")

    async with serving(process_request=forbid) as (server, url):
        cli.start(url)
        assert await cli.exited() == 1
    assert cli.stderr.getvalue() == (
        "socketeer connect: server rejected WebSocket connection: HTTP 403\n"
    )


async def test_handshake_refused_verbose(cli: CLI) -> None:
    def forbid(connection: Any, request: Any) -> Any:
        return connection.respond(403, "go away\n")

    async with serving(process_request=forbid) as (server, url):
        cli.start(url, "-v")
        assert await cli.exited() == 1
    stderr = cli.stderr.getvalue()
    assert "< HTTP/1.1 403 Forbidden\n" in stderr
    assert "< go away\\n\n" in stderr
    assert stderr.endswith("socketeer connect: server rejected WebSocket connection: HTTP 403\n")


async def test_rpc_needs_an_rpc_server(cli: CLI) -> None:
    async with serving() as (server, url):
        cli.start(url, "--rpc")
        assert await cli.exited() == 1
    assert cli.stderr.getvalue() == (
        "socketeer connect: opening handshake failed: "
        "server did not select subprotocol socketeer.rpc.v1\n"
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["http://example.com/"], "isn't a valid WebSocket URI: scheme must be ws or wss"),
        (["ws://"], "isn't a valid WebSocket URI"),
        (["ws://h/", "--header", "no colon"], "expected \"NAME: VALUE\", got 'no colon'"),
        (["ws://h/", "--header", "Bad Name: 1"], "invalid header name"),
        (["ws://h/", "-H", "X: a\rb"], "invalid value for header X"),
        (["ws://h/", "-H", "Sec-WebSocket-Key: x"], "Sec-WebSocket-Key is set by the opening"),
        (["ws://h/", "-H", "Origin: x"], "Origin is set by the opening handshake (use --origin)"),
        (["ws://h/", "--subprotocol", "a b"], "subprotocol"),
        (["ws://h/", "--origin", "a\nb"], "argument --origin: invalid value for header Origin"),
        (["ws://h/", "--insecure"], "argument -k/--insecure: only for wss:// URLs"),
        (["ws://h/", "--rpc", "--subprotocol", "x"], "argument --subprotocol: not allowed"),
        (["ws://h/", "--wait", "-1"], "expected seconds, 0 or more, or inf, got '-1'"),
        (["ws://h/", "--wait", "nan"], "expected seconds"),
    ],
)
def test_usage_errors(args: list[str], error: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["connect", *args])
    assert raised.value.code == 2
    stderr = capsys.readouterr().err
    assert error in stderr
    assert stderr.startswith(("socketeer connect: error: ", "python -m socketeer connect: error:"))
    assert_one_line(stderr)


# RPC


def make_rpc(rooms: Rooms, notified: list[Any]) -> RPC:
    rpc = RPC(rooms=rooms)

    @rpc.method
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @rpc.method
    def div(a: float, b: float) -> float:
        return a / b

    @rpc.method
    def echo(*values: Any) -> list[Any]:
        return list(values)

    @rpc.method
    def remember(value: Any) -> None:
        notified.append(value)

    return rpc


async def test_rpc(cli: CLI) -> None:
    notified: list[Any] = []
    async with Rooms() as rooms, serving(make_rpc(rooms, notified)) as (server, url):
        cli.start(url, "--rpc", "--wait", "0")
        cli.type("call add 1 2\n")
        await cli.printed("3\n")
        cli.type('call echo hello "two words" {"k": [1, null]} 1.5 true\n')
        await cli.printed('["hello","two words",{"k":[1,null]},1.5,true]\n')
        cli.type("call div 1 0\ncall nope\ncall\nnotify remember 42\nbogus\nhelp\n")
        cli.type("join lobby\n")
        await cli.printed("= joined lobby (epoch ", "stderr")
        await rooms.publish("lobby", "hello\x1b")
        await rooms.publish("lobby", {"n": 1})
        await rooms.publish("lobby", b"\x00\x01")
        await cli.printed("[lobby #3] (binary, 2 bytes) 00 01\n")
        cli.type("leave lobby\n")
        await cli.printed("= left lobby\n", "stderr")
        assert notified == [42]
        cli.end_input()
        assert await cli.exited() == 0
    assert cli.stdout.getvalue().splitlines()[2:] == [
        "[lobby #1] hello\\x1b",
        '[lobby #2] {"n":1}',
        "[lobby #3] (binary, 2 bytes) 00 01",
    ]
    stderr = cli.stderr.getvalue()
    assert "socketeer connect: div failed: ZeroDivisionError: division by zero\n" in stderr
    assert "socketeer connect: nope failed: Method not found" in stderr
    assert "socketeer connect: call: expected a method, e.g. call add 1 2\n" in stderr
    assert "socketeer connect: unknown command bogus: /help lists the commands\n" in stderr
    assert "= an ARG that is not JSON is taken as a plain string" in stderr
    assert "Traceback" not in stderr


async def test_rpc_server_closes(cli: CLI) -> None:
    rpc = RPC()

    @rpc.method
    async def stop() -> None:
        await current_peer().close(1011, "stopped")

    async with serving(rpc) as (server, url):
        cli.start(url, "--rpc")
        cli.type("call stop\n")
        assert await cli.exited() == 1
    stderr = cli.stderr.getvalue()
    assert "connection closed by the server: 1011 (unexpected error) stopped\n" in stderr


# Subprocesses: signals, and the interactive mode in a pseudo-terminal


class Process:
    """``python -m socketeer connect ARGS`` in a subprocess; :meth:`kill` in teardown."""

    def __init__(self, *args: str, **popen: Any) -> None:
        env = {**os.environ, "TERM": "xterm", "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "socketeer", "connect", *args]
        self.process = subprocess.Popen(command, env=env, **popen)

    async def exited(self) -> int:
        await until(lambda: self.process.poll() is not None, "the process exits")
        assert self.process.returncode is not None
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(STEP)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def spawn() -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def start(*args: str, **popen: Any) -> Process:
        process = Process(*args, **popen)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@posix_only
async def test_sigint_closes(spawn: Callable[..., Process]) -> None:
    async with serving() as (server, url):
        process = spawn(url, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        await until(lambda: bool(server.connections), "the client connects")
        process.process.send_signal(signal.SIGINT)
        assert await process.exited() == 0
        await server.ws.wait_closed()
        assert server.ws.close_code == 1000
        stdout, stderr = process.process.communicate(timeout=STEP)
        assert (stdout, stderr) == (b"", b"")


class PseudoTerminal:
    """A pseudo-terminal of 80 columns: the test types on its master side, and reads what
    the program draws (collected by the event loop)."""

    def __init__(self) -> None:
        import fcntl
        import struct
        import termios

        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        os.set_blocking(self.master, False)
        self.output = b""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.master, self._read)

    def _read(self) -> None:
        try:
            self.output += os.read(self.master, 65536)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:  # EIO: the program exited
            self._loop.remove_reader(self.master)

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    async def shows(self, text: str, after: int = 0) -> int:
        """Wait until the output shows ``text`` after index ``after``; return where."""
        await until(lambda: self.text.find(text, after) >= 0, f"{text!r} in {self.text!r}")
        return self.text.find(text, after)

    def close(self) -> None:
        self._loop.remove_reader(self.master)
        os.close(self.master)
        os.close(self.slave)


@posix_only
async def test_interactive(spawn: Callable[..., Process]) -> None:
    import termios

    terminal = PseudoTerminal()
    try:
        before = termios.tcgetattr(terminal.slave)
        async with serving() as (server, url):
            tty = {"stdin": terminal.slave, "stdout": terminal.slave, "stderr": terminal.slave}
            process = spawn(url, start_new_session=True, **tty)
            await terminal.shows("= connected to")
            await terminal.shows("> ")
            await until(lambda: bool(server.connections), "the client connects")

            # Half a line typed; a message arrives: printed above, the line drawn again.
            terminal.type("hel")
            start = await terminal.shows("> hel")
            await server.ws.send("news\x1b[2J")
            news = await terminal.shows("< news\\x1b[2J\r", start)
            await terminal.shows("> hel", news)
            assert "\x1b[2J" not in terminal.text  # the server's escape was escaped

            # The line finished: the server gets it whole.
            terminal.type("lo\r")
            await until(lambda: server.received == ["hello"], "the server receives hello")
            await terminal.shows("< hello", news)

            # Editing, history, a command, completion.
            terminal.type("\x1b[Aworld\x01\x0b/pi\t\r")  # Up, Ctrl-A, Ctrl-K, /pi + Tab
            await terminal.shows("= pong in ", news)
            terminal.type("\x1b[A\x1b[A\x15abc\x1b[D\x1b[DX\r")  # a line edited in the middle
            await until(lambda: server.received == ["hello", "aXbc"], "the server gets aXbc")

            # Ctrl-D closes.
            terminal.type("\x04")
            assert await process.exited() == 0
            await terminal.shows("= connection closed: 1000 (OK)")
            assert server.ws.close_code == 1000
        assert "Traceback" not in terminal.text
        assert termios.tcgetattr(terminal.slave) == before  # the settings are restored
    finally:
        terminal.close()


@posix_only
async def test_interactive_server_closes(spawn: Callable[..., Process]) -> None:
    terminal = PseudoTerminal()
    try:
        async with serving() as (server, url):
            tty = {"stdin": terminal.slave, "stdout": terminal.slave, "stderr": terminal.slave}
            process = spawn(url, start_new_session=True, **tty)
            await terminal.shows("> ")
            await until(lambda: bool(server.connections), "the client connects")
            terminal.type("half")
            await terminal.shows("> half")
            await server.ws.close(1011, "boom")
            assert await process.exited() == 1
            await terminal.shows("! connection closed by the server: 1011 (unexpected error) boom")
    finally:
        terminal.close()


@posix_only
async def test_interactive_rpc_completion(spawn: Callable[..., Process]) -> None:
    terminal = PseudoTerminal()
    try:
        async with Rooms() as rooms, serving(make_rpc(rooms, [])) as (server, url):
            tty = {"stdin": terminal.slave, "stdout": terminal.slave, "stderr": terminal.slave}
            process = spawn(url, "--rpc", start_new_session=True, **tty)
            await terminal.shows("> ")
            # The method names come from rpc.discover, once connected: Tab until they did.
            for _ in range(int(STEP / (100 * MS))):
                terminal.type("\x15call ad\t")  # Ctrl-U first: a new try on an empty line
                await asyncio.sleep(100 * MS)
                if "call add " in terminal.text:
                    break
            terminal.type("1 2\r")
            await terminal.shows("< 3\r")
            terminal.type("\x04")
            assert await process.exited() == 0
    finally:
        terminal.close()
