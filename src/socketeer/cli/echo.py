"""``socketeer echo``: an echo server, to try clients, proxies and load generators on.

Every message comes back as it came: text as text, binary as binary (a fragmented message
comes back whole). It binds and stops as ``serve`` does (:mod:`._serving`): it prints its
URL once it serves; SIGINT or SIGTERM closes every connection with 1001 (going away) and
exits with 0, a second signal at once with 1. ``docs/cli.md`` is the user's guide.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from ..asyncio.server import Server, ServerConnection, serve
from ..protocol.base import MAX_SIZE
from ._listen import Listeners
from ._serving import (
    LOG_FORMAT,
    add_listen_arguments,
    add_log_level,
    add_loop_argument,
    check_listen_arguments,
    handle_stop_signals,
    listen,
    print_url,
    run_loop,
    sigterm_interrupts,
)
from ._units import format_size, size_type

__all__ = ["HELP", "DESCRIPTION", "DEFAULT_PORT", "add_arguments", "run", "handler"]

HELP = "run an echo server: every message comes back as it came"
"""The command's line in the list of commands."""

DESCRIPTION = (
    "Run a WebSocket echo server, to try clients, proxies and load generators on: every "
    "message comes back as it came, text as text, binary as binary. Prints the URL it "
    "serves on; SIGINT and SIGTERM close every connection with 1001 and exit."
)
"""What ``--help`` says of the command."""

DEFAULT_PORT = 8765
"""The TCP port without ``--port``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``echo`` to a command line parser."""
    where = parser.add_argument_group("where to listen")
    add_listen_arguments(where, DEFAULT_PORT)
    messages = parser.add_argument_group("messages")
    messages.add_argument(
        "--max-size",
        metavar="BYTES",
        type=size_type(1),
        default=MAX_SIZE,
        help=(
            "the largest message accepted, e.g. 65536, 64KiB, 1MiB, 1MB; a larger one "
            f"closes the connection with 1009 (default: {format_size(MAX_SIZE)})"
        ),
    )
    compression = messages.add_mutually_exclusive_group()
    # Two dests, not one with a default: argparse takes a value equal to the default for
    # "not given", and would accept both options. Without --no-compression, deflate.
    compression.add_argument(
        "--compression",
        choices=["deflate"],
        help="accept permessage-deflate when a client offers it (the default)",
    )
    compression.add_argument("--no-compression", action="store_true", help="refuse compression")
    add_loop_argument(parser)
    add_log_level(parser)


async def handler(ws: ServerConnection) -> None:
    """Send every message back, as it came, until the connection closes."""
    async for message in ws:
        await ws.send(message)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; return the exit status.

    Raises:
        CommandError: for a mistake in the arguments or a failure to bind.
    """
    check_listen_arguments(args)
    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    try:
        with sigterm_interrupts():
            listeners = listen(args, DEFAULT_PORT)
            try:
                return run_loop(_serve(args, listeners), args.loop)
            finally:
                listeners.close()
    except KeyboardInterrupt:
        return 0  # stopped before serving: nothing to close


async def _serve(args: argparse.Namespace, listeners: Listeners) -> int:
    """Echo on the sockets of ``listeners`` until SIGINT or SIGTERM."""
    compression = None if args.no_compression else "deflate"
    servers: list[Server] = []
    for sock in listeners.sockets():
        servers.append(
            await serve(handler, sock=sock, max_size=args.max_size, compression=compression)
        )
    stop = asyncio.Event()
    handle_stop_signals(servers, stop)
    print_url("echo", listeners.url(tls=False))
    await stop.wait()
    await asyncio.gather(*(server.close() for server in servers))
    return 0
