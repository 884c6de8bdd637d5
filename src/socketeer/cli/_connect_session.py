"""The sessions of ``socketeer connect``: one connection each, from open to closed.

A :class:`Session` reads the lines typed or piped in and handles them one after the other,
in the order they came (a line waits for the previous one: a ``/ping`` for its pong, a call
for its answer), while it prints what arrives; it closes the connection when asked (end of
input, ``/close``, Ctrl-C) and makes the exit status (:meth:`Session.status`): 0 after a
normal closure (1000, 1001, or none: 1005) from the server, or after a closure this side
asked for and the server answered; 1 otherwise. :class:`MessageSession` speaks plain
WebSocket messages; :class:`~._connect_rpc.RPCSession`, JSON-RPC.

Everything printed while connected goes through :class:`Console`, escaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TextIO

from ..asyncio.connection import Connection
from ..exceptions import ConnectionClosed
from ..options import PING_TIMEOUT
from ..protocol import CloseCode
from ..typedefs import Data
from . import one_line
from ._terminal import Terminal, escape, write_line

__all__ = [
    "BINARY_PREVIEW",
    "MAX_FILE",
    "NORMAL_CLOSURE",
    "describe",
    "Console",
    "CommandFailed",
    "Session",
    "MessageSession",
]

BINARY_PREVIEW = 32
"""Bytes of a binary message shown on a terminal (a pipe gets them all)."""
MAX_FILE = 16 * 1024 * 1024
"""The largest file ``/send @FILE`` reads, in bytes."""
NORMAL_CLOSURE = frozenset(
    {CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY, CloseCode.NO_STATUS_RCVD}
)
"""Close codes from the server that make a normal closure (exit status 0)."""


# Printing


def describe(message: Data, limit: int | None = None) -> str:
    """A message as printed (before :func:`~._terminal.escape`): text as it is, binary as
    ``(binary, N bytes)`` and its first ``limit`` bytes in hexadecimal (all if ``None``)."""
    if isinstance(message, str):
        return message
    shown = message if limit is None else message[:limit]
    text = f"(binary, {len(message)} {'byte' if len(message) == 1 else 'bytes'})"
    if shown:
        text += " " + shown.hex(" ")
    if len(shown) < len(message):
        text += " ..."
    return text


class Console:
    """Where everything printed while connected goes, escaped, one line each.

    On a terminal (:attr:`terminal` set), everything goes above the line being typed:
    ``< `` messages received, ``= `` information, ``! `` errors. Otherwise, messages go to
    standard output as they are (escaped) and the rest to standard error, errors as
    ``socketeer connect: ...``.

    Args:
        stdout: where messages go when there is no terminal.
        stderr: where the rest goes when there is no terminal.
    """

    def __init__(self, stdout: TextIO, stderr: TextIO) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.terminal: Terminal | None = None
        """The terminal, while the line editor runs."""
        self.binary_limit: int | None = None
        """Bytes of a binary message shown (see :func:`describe`); all if ``None``."""
        self.on_broken_pipe: Callable[[], None] = lambda: None
        """Called once when standard output is gone (``connect ... | head -1``)."""
        self._broken = False

    @property
    def interactive(self) -> bool:
        """Whether the line editor runs."""
        return self.terminal is not None

    def message(self, text: str) -> None:
        """Print what was received (text, or :func:`describe`'s)."""
        self._print("< ", self.stdout, "", text)

    def info(self, text: str) -> None:
        """Print information: a round-trip time, how the connection closed..."""
        self._print("= ", self.stderr, "= ", text)

    def error(self, text: str) -> None:
        """Print what went wrong, and did not stop the command."""
        self._print("! ", self.stderr, "socketeer connect: ", text)

    def _print(self, mark: str, stream: TextIO, prefix: str, text: str) -> None:
        if self._broken:
            return
        try:
            if self.terminal is not None:
                self.terminal.print(mark + escape(text))
            else:
                write_line(stream, prefix + escape(text))
        except OSError:  # BrokenPipeError, or a terminal that went away
            self._broken = True
            with contextlib.suppress(OSError, ValueError, AttributeError):
                # Nothing more reaches it; and Python's last flush must not fail either.
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
                os.close(devnull)
            self.on_broken_pipe()


# Sessions


class CommandFailed(Exception):
    """A command could not run: the message is printed as an error, and the session goes
    on."""


class Session:
    """One connection, from open to closed: runs the lines typed or piped, prints what
    arrives, closes, and makes the exit status (see :meth:`status`).

    Subclasses receive (:meth:`receive`) and handle lines (:meth:`handle`).

    Args:
        connection: the open connection.
        console: where to print.
        wait: see ``--wait``.
        verbose: ``-v``: also report a normal closure when not on a terminal.
    """

    HELP: Sequence[str] = ()
    """What ``/help`` prints, line by line."""

    def __init__(
        self, connection: Connection, console: Console, *, wait: float, verbose: bool
    ) -> None:
        self.connection = connection
        self.console = console
        self.wait = wait
        self.verbose = verbose
        self.loop = asyncio.get_running_loop()
        self.last_activity = self.loop.time()
        """When something last arrived (or the input ended): the wait for replies counts
        from then."""
        self.background: set[asyncio.Task[Any]] = set()
        """Tasks that the session cancels when it ends."""
        self._close_requested = False
        self._interrupts = 0

    # What subclasses provide

    async def receive(self) -> None:
        """Print what arrives, until the connection is closed."""
        raise NotImplementedError

    async def handle(self, line: str) -> bool:
        """Handle a line; return ``False`` to stop reading lines (after ``/close``).

        Raises:
            CommandFailed: to print an error and go on.
            ConnectionClosed: when the connection is closed (reading stops).
        """
        raise NotImplementedError

    def complete(self, before_cursor: str) -> tuple[int, Sequence[str]]:
        """The completer of the line editor (see :data:`~._line_editor.Completer`)."""
        return len(before_cursor), ()

    # Running

    async def run(self, lines: AsyncIterator[str]) -> int:
        """Handle ``lines`` and print what arrives until the connection is closed; return
        the exit status."""
        self.spawn(self._read(lines))
        try:
            await self.receive()
            await self.connection.wait_closed()
        finally:
            for task in self.background:
                task.cancel()
            await asyncio.gather(*self.background, return_exceptions=True)
        return self.status()

    def spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        """Run ``coroutine`` in a task that ends with the session, at the latest."""
        task = self.loop.create_task(coroutine)
        self.background.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.console.error(f"unexpected error: {one_line(task.exception())}")

    async def _read(self, lines: AsyncIterator[str]) -> None:
        async for line in lines:
            try:
                if not await self.handle(line):
                    return
            except CommandFailed as exc:
                self.console.error(str(exc))
            except ConnectionClosed:
                return
            except Exception as exc:  # a bug: say so, and go on
                self.console.error(f"unexpected error: {type(exc).__name__}: {one_line(exc)}")
        if not self.console.interactive:
            await self._wait_for_replies()
        await self.close()

    async def _wait_for_replies(self) -> None:
        """At the end of standard input: until nothing arrived for :attr:`wait` seconds."""
        if self.wait == float("inf"):
            await self.connection.wait_closed()
            return
        self.last_activity = max(self.last_activity, self.loop.time())
        while (delay := self.last_activity + self.wait - self.loop.time()) > 0:
            await asyncio.sleep(delay)

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the connection, as asked by the user.

        Raises:
            ValueError: if the code cannot be sent or the reason is too long.
        """
        self._close_requested = True
        try:
            await self.connection.close(code, reason)
        except ValueError:
            self._close_requested = False
            raise

    def interrupt(self) -> None:
        """Ctrl-C (or SIGTERM): close; a second time: stop at once."""
        self._interrupts += 1
        if self._interrupts == 1:
            self.spawn(self.close())
        elif self.connection.transport is not None:
            self.connection.transport.abort()

    def status(self) -> int:
        """Report how the connection closed; return the exit status."""
        protocol = self.connection.protocol
        rcvd, sent = protocol.close_rcvd, protocol.close_sent
        cause = f": {protocol.parser_exc}" if protocol.parser_exc is not None else ""
        if rcvd is None:
            if self._close_requested or sent is None:
                self.console.error(f"connection lost: no close frame received (1006){cause}")
            else:
                self.console.error(f"connection failed: sent {sent}{cause}")
            return 1
        if protocol.close_rcvd_then_sent is not False:  # the server closed
            if rcvd.code in NORMAL_CLOSURE:
                self.console.info(f"connection closed by the server: {rcvd}")
                return 0
            self.console.error(f"connection closed by the server: {rcvd}")
            return 1
        if self._close_requested:
            if self.console.interactive or self.verbose:
                self.console.info(f"connection closed: {rcvd}")
            return 0
        self.console.error(f"connection failed: sent {sent}{cause}")  # keepalive, protocol
        return 1

    # Commands that every session has

    async def ping(self, argument: str) -> None:
        """``/ping [TEXT]``."""
        if len(argument.encode()) > 125:
            raise CommandFailed("/ping: the text of a ping has at most 125 bytes")
        pong = await self.connection.ping(argument or None)
        try:
            latency = await asyncio.wait_for(pong, PING_TIMEOUT)
        except asyncio.TimeoutError:
            raise CommandFailed(f"/ping: no pong within {PING_TIMEOUT:g} s") from None
        self.console.info(f"pong in {latency * 1000:.2f} ms")

    async def close_command(self, argument: str) -> bool:
        """``/close [CODE [REASON]]``; ``False`` once closing."""
        code_text, _, reason = argument.partition(" ")
        if code_text and not code_text.isdecimal():
            raise CommandFailed(f"/close: expected a close code, got {code_text!r}")
        code = int(code_text) if code_text else CloseCode.NORMAL_CLOSURE
        try:
            await self.close(code, reason.strip())
        except ValueError as exc:
            raise CommandFailed(f"/close: {exc}") from None
        return False

    def help(self) -> None:
        """``/help``."""
        for line in self.HELP:
            self.console.info(line)


class MessageSession(Session):
    """A plain WebSocket session: lines are text messages, or commands."""

    HELP = (
        "a line is sent as a text message; //TEXT sends /TEXT; commands:",
        "  /ping [TEXT]            send a ping, print the round-trip time",
        "  /close [CODE [REASON]]  close the connection (code 1000 by default)",
        "  /binary HEX             send a binary message, e.g. /binary 48 69 or /binary 4869",
        "  /send @FILE             send a file: as text if it is UTF-8, else as binary",
        "  /help                   this help",
        "Ctrl-D or Ctrl-C closes the connection (Ctrl-C again stops at once)",
    )
    COMMANDS = ("/ping", "/close", "/binary", "/send", "/help")
    """The commands, for completion."""

    async def receive(self) -> None:
        while True:
            try:
                message = await self.connection.recv()
            except ConnectionClosed:
                return
            self.last_activity = self.loop.time()
            self.console.message(describe(message, self.console.binary_limit))

    async def handle(self, line: str) -> bool:
        if line.startswith("/") and not line.startswith("//"):
            name, _, argument = line.partition(" ")
            return await self.command(name, argument.strip())
        if not line and self.console.interactive:
            return True  # Enter on an empty line sends nothing
        await self.connection.send(line[1:] if line.startswith("//") else line)
        return True

    async def command(self, name: str, argument: str) -> bool:
        """Run a command; ``False`` once closing."""
        if name == "/ping":
            await self.ping(argument)
        elif name == "/close":
            return await self.close_command(argument)
        elif name == "/binary":
            await self.binary(argument)
        elif name == "/send":
            await self.send_file(argument)
        elif name == "/help":
            self.help()
        else:
            raise CommandFailed(f"unknown command {name}: /help lists the commands")
        return True

    async def binary(self, argument: str) -> None:
        """``/binary HEX``."""
        try:
            data = bytes.fromhex(argument)
        except ValueError:
            data = b""
        if not data:
            raise CommandFailed(
                f"/binary: expected bytes in hexadecimal, e.g. /binary 48 69, got {argument!r}"
            )
        await self.connection.send(data)

    async def send_file(self, argument: str) -> None:
        """``/send @FILE``."""
        if not argument.startswith("@") or len(argument) == 1:
            raise CommandFailed("/send: expected @FILE, e.g. /send @message.json")
        path = os.path.expanduser(argument[1:])
        try:
            data = await asyncio.to_thread(_read_file, path)
        except OSError as exc:
            raise CommandFailed(f"/send: cannot read {path}: {_file_error(exc)}") from None
        try:
            text = data.decode()
        except UnicodeDecodeError:
            await self.connection.send(data)
            self.console.info(f"sent {path} as binary ({len(data)} bytes)")
        else:
            await self.connection.send(text)
            self.console.info(f"sent {path} as text ({len(text)} characters)")

    def complete(self, before_cursor: str) -> tuple[int, Sequence[str]]:
        start = before_cursor.rfind(" ") + 1
        word, previous = before_cursor[start:], before_cursor[:start].split()
        if not previous and word.startswith("/"):
            return start, self.COMMANDS
        if previous == ["/send"] and word.startswith("@"):
            return start, ["@" + path for path in _paths(word[1:])]
        return start, ()


def _read_file(path: str) -> bytes:
    """A file's contents, at most :data:`MAX_FILE` bytes.

    Raises:
        OSError: if it cannot be read, or is too large (``EFBIG``).
    """
    with open(path, "rb") as file:
        data = file.read(MAX_FILE + 1)
    if len(data) > MAX_FILE:
        raise OSError(errno.EFBIG, f"larger than {MAX_FILE} bytes")
    return data


def _file_error(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "it is a directory"
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def _paths(prefix: str) -> list[str]:
    """The paths that start with ``prefix``, for completion (directories end with /)."""
    directory, start = os.path.split(prefix)
    try:
        names = os.listdir(os.path.expanduser(directory) or ".")
    except OSError:
        return []
    paths = []
    for name in names:
        if name.startswith(start) and (start.startswith(".") or not name.startswith(".")):
            path = os.path.join(directory, name)
            paths.append(path + "/" if os.path.isdir(os.path.expanduser(path)) else path)
    return paths
