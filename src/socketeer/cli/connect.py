"""``socketeer connect URL``: a WebSocket client for people, and for shell scripts.

``docs/cli.md`` is the user's guide. Two modes, chosen by what standard input and output
are:

- **interactive** (both are terminals, see :func:`~._terminal.is_interactive`): a line
  editor of our own (:class:`~._terminal.Terminal`, whose docstring says why not readline)
  reads lines in the event loop; messages received are printed above the line being
  typed, which is drawn again below them. Ctrl-D and Ctrl-C close the connection.
- **lines** (otherwise: a pipe, a file): standard input is read line by line in a thread
  (:class:`~._terminal.InputLines`); at its end, ``connect`` waits for replies until
  nothing arrived for ``--wait`` seconds, then closes the connection (1000).

In both, a line is a text message or a command (``/ping``, ``/close``, ``/binary``,
``/send``, ``/help``); with ``--rpc``, a call (:mod:`._connect_rpc`). A session
(:mod:`._connect_session`) runs the connection from open to closed and makes the exit
status; what arrives is printed with control characters escaped
(:func:`~._terminal.escape`), through its console, the one way to print while connected
(socketeer's own warnings included). This module parses the command line, connects, and
turns failures to connect into one-line errors.

Modules: this one, the command; :mod:`._connect_session`, the sessions;
:mod:`._connect_rpc`, the RPC session; :mod:`._terminal`, the terminal and standard input;
:mod:`._line_editor`, the line editor (without I/O).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import Any, TextIO

from ..asyncio.client import connect as connect_websocket
from ..asyncio.connection import Connection
from ..exceptions import HandshakeError, InvalidStatus, InvalidURI
from ..protocol import Headers, Response
from . import CommandError, one_line
from ._connect_session import BINARY_PREVIEW, Console, MessageSession, Session
from ._line_editor import LineEditor
from ._terminal import InputLines, Terminal, escape, is_interactive, write_line

__all__ = ["HELP", "DESCRIPTION", "DEFAULT_WAIT", "PROMPT", "add_arguments", "run"]

HELP = "connect to a WebSocket server: send lines, print what arrives"
"""The command's line in the list of commands."""

DESCRIPTION = (
    "Connect to URL. On a terminal, type messages and commands (/help lists them) and see "
    "what arrives above the line you type; Ctrl-D or Ctrl-C closes. With standard input "
    "from a pipe or a file, send each line, print what arrives (one message per line, on "
    "standard output), and close once the input ended and replies stopped coming."
)
"""What ``--help`` says of the command."""

DEFAULT_WAIT = 0.5
"""Seconds without a message that end the wait for replies, once standard input ended."""
PROMPT = "> "
"""What the line being typed starts with, on a terminal."""

# Headers that the opening handshake sets itself: the options that change them are named.
_HANDSHAKE_HEADERS = {
    "host": "the URL",
    "upgrade": None,
    "connection": None,
    "sec-websocket-key": None,
    "sec-websocket-version": None,
    "sec-websocket-extensions": "--no-compression",
    "sec-websocket-protocol": "--subprotocol",
    "origin": "--origin",
}


# The command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``connect`` to a command line parser."""
    parser.add_argument("url", metavar="URL", help="where to connect: ws://... or wss://...")
    handshake = parser.add_argument_group("the opening handshake")
    handshake.add_argument(
        "-H",
        "--header",
        metavar='"NAME: VALUE"',
        action="append",
        type=_header,
        default=[],
        help="add a header to the request (repeat for more), e.g. -H 'Cookie: id=42'",
    )
    handshake.add_argument(
        "--subprotocol",
        metavar="NAME",
        action="append",
        default=[],
        help="offer a subprotocol (repeat for more, in order of preference)",
    )
    handshake.add_argument("--origin", metavar="ORIGIN", help="send this Origin header")
    handshake.add_argument(
        "-k", "--insecure", action="store_true", help="wss://: do not verify the certificate"
    )
    handshake.add_argument(
        "--no-compression", action="store_true", help="do not offer permessage-deflate"
    )
    parser.add_argument(
        "--wait",
        metavar="SECONDS",
        type=_seconds,
        default=DEFAULT_WAIT,
        help="once standard input (not a terminal) ended, print replies until none came "
        "for SECONDS, then close; 0: close at once, inf: wait for the server to close "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print the handshake, the extensions and the subprotocol (on standard error)",
    )
    parser.add_argument(
        "--rpc",
        action="store_true",
        help="speak socketeer's JSON-RPC: call, notify, join and leave rooms (/help)",
    )


def _header(value: str) -> tuple[str, str]:
    name, colon, content = value.partition(":")
    name, content = name.strip(), content.strip()
    if not colon or not name:
        raise argparse.ArgumentTypeError(f'expected "NAME: VALUE", got {value!r}')
    try:
        Headers([(name, content)])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if name.lower() in _HANDSHAKE_HEADERS:
        option = _HANDSHAKE_HEADERS[name.lower()]
        instead = f" (use {option})" if option is not None else ""
        raise argparse.ArgumentTypeError(f"{name} is set by the opening handshake{instead}")
    return name, content


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"expected seconds, 0 or more, or inf, got {value!r}")
    return seconds


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The options of :func:`socketeer.connect` that the arguments ask for.

    Raises:
        CommandError: for an option that does not go with the others, or the URL.
    """
    secure = urllib.parse.urlsplit(args.url).scheme.lower() == "wss"
    if args.insecure and not secure:
        raise CommandError("argument -k/--insecure: only for wss:// URLs", 2)
    if args.rpc and args.subprotocol:
        raise CommandError("argument --subprotocol: not allowed with --rpc", 2)
    options: dict[str, Any] = {}
    if args.header:
        options["additional_headers"] = args.header
    if args.subprotocol:
        options["subprotocols"] = args.subprotocol
    if args.origin is not None:
        try:
            Headers([("Origin", args.origin)])
        except ValueError as exc:
            raise CommandError(f"argument --origin: {exc}", 2) from None
        options["origin"] = args.origin
    if args.no_compression:
        options["compression"] = None
    if args.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        options["ssl"] = context
    return options


# Running


def run(args: argparse.Namespace) -> int:
    """Connect as the parsed arguments say, run the session; return the exit status.

    Raises:
        CommandError: for a mistake in the arguments (status 2), or a failure to connect.
    """
    options = _options(args)
    try:
        if args.rpc:
            from ..rpc import connect as connect_rpc

            connector: Any = connect_rpc(args.url, **options)
        else:
            connector = connect_websocket(args.url, **options)
    except InvalidURI as exc:
        raise CommandError(str(exc), 2) from None
    except (TypeError, ValueError) as exc:
        raise CommandError(str(exc), 2) from None
    try:
        return asyncio.run(_main(args, connector))
    except KeyboardInterrupt:  # before the event loop handles SIGINT, or where it cannot
        raise CommandError("interrupted") from None


class _Signals:
    """SIGINT and SIGTERM, while the event loop runs: each calls :attr:`handler` (where
    the loop can handle signals: the main thread, on POSIX)."""

    def __init__(self) -> None:
        self.handler: Callable[[], object] = lambda: None
        """What a signal does now."""
        self.count = 0
        """Signals received."""
        self._loop = asyncio.get_running_loop()
        self._installed: list[int] = []
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.install(signum, self._received)

    def install(self, signum: int, callback: Callable[[], None]) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            self._loop.add_signal_handler(signum, callback)
            self._installed.append(signum)

    def _received(self) -> None:
        self.count += 1
        self.handler()

    def close(self) -> None:
        for signum in self._installed:
            self._loop.remove_signal_handler(signum)


async def _main(args: argparse.Namespace, connector: Any) -> int:
    """Connect, run the session, and return its exit status."""
    console = Console(sys.stdout, sys.stderr)
    interactive = is_interactive(sys.stdin, sys.stdout)
    signals = _Signals()
    logs = _LogToConsole(console)
    logging.getLogger("socketeer").addHandler(logs)
    try:
        opening = asyncio.ensure_future(_open(connector, args.url, args.verbose))
        signals.handler = opening.cancel  # a no-op once open: see below
        try:
            opened = await opening
        except asyncio.CancelledError:
            if signals.count:
                raise CommandError("interrupted while connecting") from None
            raise
        session: Session
        if args.rpc:
            from ._connect_rpc import RPCSession

            session = RPCSession(opened, console, wait=args.wait, verbose=args.verbose)
        else:
            session = MessageSession(opened, console, wait=args.wait, verbose=args.verbose)
        if args.verbose:
            _print_handshake(session.connection, sys.stderr)
        signals.handler = session.interrupt
        if signals.count:  # a signal came as the connection opened: it closes it
            session.interrupt()
        console.on_broken_pipe = session.interrupt
        if interactive:
            return await _run_interactive(session, console, signals, args.url)
        return await _run_lines(session, console)
    finally:
        logging.getLogger("socketeer").removeHandler(logs)
        signals.close()


class _LogToConsole(logging.Handler):
    """socketeer's warnings and errors while connected, printed through the console: one
    line each, without traceback (Python's last-resort handler would write them across
    the line being typed)."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.WARNING)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.error(one_line(record.getMessage()))
        except Exception:
            self.handleError(record)


async def _run_interactive(session: Session, console: Console, signals: _Signals, url: str) -> int:
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    terminal = Terminal(
        sys.stdin.fileno(),
        sys.stdout,
        PROMPT,
        LineEditor(session.complete),
        on_line=lines.put_nowait,
        on_end=lambda: lines.put_nowait(None),
        on_interrupt=session.interrupt,
    )

    async def typed() -> AsyncIterator[str]:
        while (line := await lines.get()) is not None:
            yield line

    try:
        terminal.start()
    except OSError:  # a terminal that cannot be set up: read lines as from a pipe
        return await _run_lines(session, console)
    console.binary_limit = BINARY_PREVIEW
    try:
        console.terminal = terminal
        signals.install(signal.SIGTSTP, terminal.suspend)
        console.info(f"connected to {url}; /help lists the commands, Ctrl-D closes")
        return await session.run(typed())
    finally:
        console.terminal = None
        terminal.stop()


async def _run_lines(session: Session, console: Console) -> int:
    try:
        fd: int | None = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):  # no standard input, or closed
        fd = None
    lines = InputLines(fd, console.error)
    try:
        return await session.run(lines)
    finally:
        lines.close()


async def _open(connector: Any, url: str, verbose: bool) -> Any:
    """Await ``connector``; turn its failures into one-line errors.

    Raises:
        CommandError: if the connection fails.
    """
    try:
        return await connector
    except InvalidStatus as exc:
        if verbose:
            _print_response(exc.response, sys.stderr)
        raise CommandError(str(exc)) from None
    except HandshakeError as exc:
        raise CommandError(f"opening handshake failed: {exc}") from None
    except ssl.SSLCertVerificationError as exc:
        raise CommandError(
            f"cannot connect to {url}: certificate verify failed: {exc.verify_message} "
            f"(-k/--insecure skips the verification)"
        ) from None
    except TimeoutError as exc:
        raise CommandError(f"cannot connect to {url}: {exc}") from None
    except OSError as exc:
        raise CommandError(f"cannot connect to {url}: {_os_error(exc)}") from None


def _os_error(exc: OSError) -> str:
    """What went wrong, without the noise: "connection refused", not "[Errno 111] ..."."""
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror) or not (exc.errno and exc.errno > 0):
        text = exc.strerror or str(exc)
    else:
        text = os.strerror(exc.errno)
    return text[:1].lower() + text[1:]


def _print_handshake(connection: Connection, stream: TextIO) -> None:
    """``-v``: the request and the response, the extensions and the subprotocol."""
    request = connection.request
    if request is not None:
        write_line(stream, escape(f"> {request.method} {request.path} HTTP/1.1"))
        for name, value in request.headers.raw_items():
            write_line(stream, escape(f"> {name}: {value}"))
        write_line(stream, ">")
    response = connection.response
    if response is not None:
        _print_response(response, stream)
        extensions = ", ".join(response.headers.get_all("Sec-WebSocket-Extensions"))
        write_line(stream, escape(f"= extensions: {extensions or 'none'}"))
    write_line(stream, escape(f"= subprotocol: {connection.subprotocol or 'none'}"))


def _print_response(response: Response, stream: TextIO) -> None:
    write_line(stream, escape(f"< HTTP/1.1 {response.status_code} {response.reason_phrase}"))
    for name, value in response.headers.raw_items():
        write_line(stream, escape(f"< {name}: {value}"))
    write_line(stream, "<")
    if response.body:
        body = response.body[:1000].decode(errors="replace")
        write_line(stream, escape(f"< {body}"))
