"""What the commands that serve (``serve``, ``echo``) share: where to listen, logging, and
stopping on signals.

A serving command binds with :func:`listen` before its event loop starts (a port in use is
one error), prints its URL with :func:`print_url` once it serves, and runs its main
coroutine with :func:`run_loop` inside :func:`sigterm_interrupts`. In the loop,
:func:`handle_stop_signals` makes the first SIGINT or SIGTERM set an event (the command
then closes its servers: every connection with 1001, going away) and the second cancel
the main task (:func:`run_loop` then returns 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import signal
import socket
from collections.abc import Callable, Coroutine, Iterator, Sequence
from types import FrameType
from typing import Any, TypeVar

from ..asyncio.server import Server
from ..server import UNIX, TrustedProxies
from . import CommandError
from ._listen import Listeners

__all__ = [
    "DEFAULT_HOST",
    "LOG_LEVELS",
    "LOG_FORMAT",
    "add_listen_arguments",
    "add_log_level",
    "add_proxy_arguments",
    "add_loop_argument",
    "event_loop",
    "trusted_proxy",
    "check_listen_arguments",
    "port",
    "listen",
    "print_url",
    "sigterm_interrupts",
    "run_loop",
    "handle_stop_signals",
]

DEFAULT_HOST = "127.0.0.1"
"""Where to listen without ``--host``: this machine only."""
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
"""The values of ``--log-level``."""
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s"
"""How log lines look: the process id tells the workers apart."""

logger = logging.getLogger("socketeer.server")


# The command line


def add_listen_arguments(group: argparse._ArgumentGroup, default_port: int) -> None:
    """Add ``--host``, ``--port`` and ``--unix`` to a group of options."""
    group.add_argument("--host", help=f"a host name or address (default: {DEFAULT_HOST})")
    group.add_argument(
        "--port", type=port, help=f"TCP port, 0 for any free one (default: {default_port})"
    )
    group.add_argument("--unix", metavar="PATH", help="a Unix socket, instead of TCP")


def add_log_level(parser: argparse.ArgumentParser, default: str = "info") -> None:
    """Add ``--log-level``."""
    parser.add_argument(
        "--log-level",
        metavar="LEVEL",
        type=str.lower,
        choices=LOG_LEVELS,
        default=default,
        help=f"{', '.join(LOG_LEVELS)} (default: %(default)s)",
    )


def add_proxy_arguments(group: argparse._ArgumentGroup) -> None:
    """Add ``--trusted-proxy``, repeatable, to a group of options: the ``trusted_proxies``
    of the servers, in ``args.trusted_proxies``."""
    group.add_argument(
        "--trusted-proxy",
        metavar="ADDR",
        dest="trusted_proxies",
        action="append",
        type=trusted_proxy,
        help=(
            f"believe the X-Forwarded-For header of this reverse proxy: an IP address, a "
            f"network (10.0.0.0/8), or {UNIX} for the peers of a Unix socket; repeatable"
        ),
    )


def add_loop_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add ``--loop``: ``auto``, ``asyncio`` or ``uvloop``."""
    parser.add_argument(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="the event loop: auto is uvloop if installed, else asyncio's (default: auto)",
    )


T = TypeVar("T")


def event_loop(name: str) -> tuple[str, Callable[[Coroutine[Any, Any, T]], T]]:
    """The event loop of ``--loop``: its name, and a function that runs a coroutine in a
    new one.

    Raises:
        CommandError: if uvloop is asked for and not installed.
    """
    if name != "asyncio":
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError as exc:
            if name == "uvloop":
                raise CommandError(
                    f"argument --loop: cannot use uvloop: {exc} (pip install socketeer[fast])"
                ) from exc
        else:
            run: Callable[[Coroutine[Any, Any, T]], T] = uvloop.run
            return "uvloop", run
    return "asyncio", asyncio.run


def trusted_proxy(value: str) -> str:
    """An argparse ``type``: an entry of ``trusted_proxies``."""
    try:
        TrustedProxies([value])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an IP address, a network such as 10.0.0.0/8, or {UNIX}, got {value!r}"
        ) from None
    return value


def port(value: str) -> int:
    """An argparse ``type``: a TCP port, 0 to 65535."""
    number = int(value) if value.isdecimal() else -1
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {value!r}")
    return number


def check_listen_arguments(args: argparse.Namespace) -> None:
    """Check what argparse cannot: ``--unix`` goes without ``--host`` and ``--port``.

    Raises:
        CommandError: with status 2.
    """
    if args.unix is not None:
        if args.host is not None or args.port is not None:
            raise CommandError("argument --unix: not allowed with --host or --port", 2)
        if not hasattr(socket, "AF_UNIX"):  # pragma: no cover
            raise CommandError("argument --unix: no Unix sockets on this system", 2)


# Running


def listen(args: argparse.Namespace, default_port: int, slots: int = 1) -> Listeners:
    """Bind where ``--host``, ``--port`` or ``--unix`` say.

    Raises:
        CommandError: if the address cannot be bound.
    """
    if args.unix is not None:
        return Listeners.unix(args.unix)
    host = DEFAULT_HOST if args.host is None else args.host
    return Listeners.tcp(host, default_port if args.port is None else args.port, slots)


def print_url(command: str, url: str) -> None:
    """Say where the command serves: ``socketeer COMMAND: URL``, one line on stdout."""
    print(f"socketeer {command}: {url}", flush=True)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Make SIGTERM stop the process as SIGINT does, until the event loop handles both."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_loop(main: Coroutine[Any, Any, int], loop: str = "asyncio") -> int:
    """Run ``main`` in a new event loop of ``--loop``; return its exit status, or 1 if it was
    cancelled (by a second signal).

    Raises:
        CommandError: if uvloop is asked for and not installed.
    """
    try:
        _, run = event_loop(loop)
    except CommandError:
        main.close()  # never to run
        raise
    try:
        status: int = run(main)
    except asyncio.CancelledError:
        logger.warning("stopped without waiting for every connection to close")
        return 1
    return status


def handle_stop_signals(servers: Sequence[Server], stop: asyncio.Event) -> None:
    """On SIGINT or SIGTERM, set ``stop``; on the second one, cancel the current task.

    Call it from the command's main task, in the event loop (which removes the handlers
    when it closes).
    """
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None

    def stop_signal(signum: signal.Signals) -> None:
        if stop.is_set():
            logger.warning("%s again: stopping now", signum.name)
            main.cancel()
        else:
            connections = sum(len(server.connections) for server in servers)
            logger.info("%s: closing %d connections", signum.name, connections)
            stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C ends asyncio.run
            loop.add_signal_handler(signum, stop_signal, signum)
