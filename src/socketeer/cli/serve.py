"""``socketeer serve MODULE:ATTR``: serve an application, in this process or in workers.

``ATTR`` of module ``MODULE`` is what :func:`socketeer.serve` takes: a handler coroutine
function, a :class:`~socketeer.Handler` class, an RPC application, a router... The
current directory comes first on the import path, as with ``python -m``. ``docs/cli.md``
is the user's guide.

One process (``--workers 1``, the default) binds, imports the application, serves, and on
SIGINT or SIGTERM closes every connection with 1001 (going away), then the
:class:`~socketeer.pubsub.Rooms` the application's module holds, and exits with 0. A
second signal stops at once (exit status 1).

With ``--workers N``, this process binds (:mod:`._listen`) and supervises
(:mod:`._supervisor`) N workers, each a ``python -m socketeer serve MODULE:ATTR`` process
given the hidden options ``--worker-sockets`` (the descriptors of the listening sockets it
inherits) and ``--worker-control`` (its control socket), which serves as one process does.
``--broker URL`` is checked first, then set as ``SOCKETEER_BROKER`` for the application,
workers included, so that ``Rooms()`` uses it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import socket
import ssl
import sys
import urllib.parse
from collections.abc import Callable, Sequence
from types import ModuleType

from ..asyncio.server import Server, serve
from ..options import CLOSE_TIMEOUT
from . import CommandError, one_line
from ._app import app_spec, load_app
from ._serving import (
    DEFAULT_HOST,
    LOG_FORMAT,
    LOG_LEVELS,
    add_listen_arguments,
    add_log_level,
    add_loop_argument,
    add_proxy_arguments,
    check_listen_arguments,
    handle_stop_signals,
    listen,
    print_url,
    run_loop,
    sigterm_interrupts,
)
from ._supervisor import Supervisor

__all__ = [
    "HELP",
    "DESCRIPTION",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "MAX_WORKERS",
    "LOG_LEVELS",
    "add_arguments",
    "run",
    "load_app",
]

HELP = "serve an application: a handler, a Handler class, an RPC app"
"""The command's line in the list of commands."""

DESCRIPTION = (
    "Serve MODULE:ATTR (e.g. app:handler), imported from the current directory or the "
    "Python path: anything socketeer.serve() takes. Prints the URL it serves on; SIGINT "
    "and SIGTERM close every connection with 1001 and exit."
)
"""What ``--help`` says of the command."""

DEFAULT_PORT = 8000
"""The TCP port without ``--port``."""
MAX_WORKERS = 1024
"""The most workers ``--workers`` accepts."""

logger = logging.getLogger("socketeer.server")


# The command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``serve`` to a command line parser."""
    parser.add_argument(
        "app",
        metavar="MODULE:ATTR",
        type=app_spec,
        help="what to serve: attribute ATTR of module MODULE, e.g. app:handler",
    )
    where = parser.add_argument_group("where to listen")
    add_listen_arguments(where, DEFAULT_PORT)
    where.add_argument("--certfile", metavar="FILE", help="serve TLS with this certificate")
    where.add_argument(
        "--keyfile", metavar="FILE", help="its private key, if not in the certificate file"
    )
    add_proxy_arguments(parser.add_argument_group("behind a reverse proxy"))
    scale = parser.add_argument_group("many processes")
    scale.add_argument(
        "--workers",
        metavar="N",
        type=_workers,
        default=1,
        help="worker processes sharing the port (default: %(default)s, this process)",
    )
    scale.add_argument(
        "--broker",
        metavar="URL",
        help="the rooms' broker, e.g. redis://localhost:6379/0; sets SOCKETEER_BROKER",
    )
    add_loop_argument(parser)
    add_log_level(parser)
    # A worker's: the descriptors it inherits from the supervisor.
    parser.add_argument("--worker-sockets", type=_descriptors, help=argparse.SUPPRESS)
    parser.add_argument("--worker-control", type=int, help=argparse.SUPPRESS)


def _workers(value: str) -> int:
    workers = int(value) if value.isdecimal() else 0
    if not 1 <= workers <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"expected a number of workers from 1 to {MAX_WORKERS}, got {value!r}"
        )
    return workers


def _descriptors(value: str) -> list[int]:
    return [int(fd) for fd in value.split(",")]


def _check(args: argparse.Namespace) -> None:
    """Check what argparse cannot: the options that go together, or do not."""
    check_listen_arguments(args)
    if args.keyfile is not None and args.certfile is None:
        raise CommandError("argument --keyfile: needs --certfile", 2)
    if args.workers > 1 and os.name != "posix":  # pragma: no cover
        raise CommandError("argument --workers: more than 1 needs a POSIX system", 2)


# Running


def run(args: argparse.Namespace) -> int:
    """Serve as the parsed arguments say, until SIGINT or SIGTERM; return the exit status.

    Raises:
        CommandError: for a mistake in the arguments or a failure to start.
    """
    if args.worker_control is not None:
        return _run_worker(args)
    _check(args)
    tls = _tls_context(args)
    broker = _set_broker(args.broker)
    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    if args.workers == 1:
        return _run_here(args, tls)
    listeners = listen(args, DEFAULT_PORT, args.workers)
    url = listeners.url(tls is not None)

    def ready() -> None:
        print_url("serve", url)
        if urllib.parse.urlsplit(broker).scheme == "memory":
            logger.warning(
                "the broker is %s: rooms do not span the %d workers (use --broker redis://...)",
                broker,
                args.workers,
            )

    try:
        command = functools.partial(_worker_command, args)
        return Supervisor(command, listeners, args.workers, ready).run()
    finally:
        listeners.close()


def _run_here(args: argparse.Namespace, tls: ssl.SSLContext | None) -> int:
    """Serve in this process."""
    try:
        with sigterm_interrupts():
            module, app = load_app(args.app)
            listeners = listen(args, DEFAULT_PORT)
            try:
                ready = functools.partial(print_url, "serve", listeners.url(tls is not None))
                main = _serve(args, module, app, listeners.sockets(), tls, ready)
                return run_loop(main, args.loop)
            finally:
                listeners.close()
    except KeyboardInterrupt:
        return 0  # stopped before serving: nothing to close


def _run_worker(args: argparse.Namespace) -> int:
    """Serve as a worker of a supervisor: on inherited sockets, reporting on ``control``."""
    control = socket.socket(fileno=args.worker_control)
    sockets = [socket.socket(fileno=fd) for fd in args.worker_sockets or ()]
    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    try:
        with sigterm_interrupts():
            tls = _tls_context(args)
            module, app = load_app(args.app)
            ready = functools.partial(_tell, control, "ready")
            return run_loop(_serve(args, module, app, sockets, tls, ready, control), args.loop)
    except CommandError as exc:
        _tell(control, f"error {one_line(exc)}")
        return exc.status
    except KeyboardInterrupt:
        return 0  # stopped before serving: nothing to close
    finally:
        for sock in sockets:
            sock.close()
        control.close()


def _tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The server's TLS context, if ``--certfile`` asks for one."""
    if args.certfile is None:
        return None
    for option, path in (("--certfile", args.certfile), ("--keyfile", args.keyfile)):
        if path is not None and not os.path.isfile(path):
            raise CommandError(f"{option} {path}: no such file")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(args.certfile, args.keyfile)
    except (OSError, ssl.SSLError) as exc:
        files = " and ".join(f for f in (args.certfile, args.keyfile) if f is not None)
        raise CommandError(f"cannot load the certificate from {files}: {exc}") from exc
    return context


def _set_broker(url: str | None) -> str:
    """Check the broker URL (``--broker``, or else ``SOCKETEER_BROKER``), and set it as
    ``SOCKETEER_BROKER``; return it (``memory://`` without either)."""
    from ..pubsub import BROKER_ENV, broker_from_url

    source = "argument --broker" if url is not None else BROKER_ENV
    if url is None:
        url = os.environ.get(BROKER_ENV) or "memory://"
    try:
        broker_from_url(url)
    except ValueError as exc:
        raise CommandError(f"{source}: {exc}", 2 if source != BROKER_ENV else 1) from exc
    except ImportError as exc:
        raise CommandError(f"{source}: {exc}") from exc
    os.environ[BROKER_ENV] = url
    return url


def _tell(control: socket.socket, line: str) -> None:
    """Write a line to the supervisor; it may be gone already."""
    with contextlib.suppress(OSError):
        control.sendall(line.encode() + b"\n")


def _worker_command(args: argparse.Namespace, sockets: list[int], control: int) -> list[str]:
    """A worker's command line; the environment carries ``SOCKETEER_BROKER``."""
    command = [sys.executable, "-m", "socketeer", "serve", args.app]
    command += ["--log-level", args.log_level, "--loop", args.loop]
    for proxy in args.trusted_proxies or ():
        command += ["--trusted-proxy", proxy]
    for option, path in (("--certfile", args.certfile), ("--keyfile", args.keyfile)):
        if path is not None:
            command += [option, os.path.abspath(path)]
    command += ["--worker-sockets", ",".join(map(str, sockets))]
    command += ["--worker-control", str(control)]
    return command


# The application


async def _serve(
    args: argparse.Namespace,
    module: ModuleType,
    app: object,
    sockets: list[socket.socket],
    tls: ssl.SSLContext | None,
    ready: Callable[[], None],
    control: socket.socket | None = None,
) -> int:
    """Serve ``app`` on ``sockets`` until SIGINT, SIGTERM, or the end of ``control``."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    servers: list[Server] = []
    proxies: Sequence[str] = args.trusted_proxies or ()
    try:
        for sock in sockets:
            starting = serve(app, sock=sock, ssl=tls, trusted_proxies=proxies)  # type: ignore[arg-type]
            servers.append(await starting)
    except (TypeError, ValueError) as exc:
        await asyncio.gather(*(server.close() for server in servers))
        raise CommandError(f"cannot serve {args.app}: {exc}") from exc

    handle_stop_signals(servers, stop)
    if control is not None:
        control.setblocking(False)
        loop.add_reader(control.fileno(), _watch, control, stop)
    try:
        ready()
        await stop.wait()
        await asyncio.gather(*(server.close() for server in servers))
        await _close_rooms(module, app)
    finally:
        if control is not None:
            loop.remove_reader(control.fileno())
    return 0


def _watch(control: socket.socket, stop: asyncio.Event) -> None:
    """Stop when the supervisor is gone: its end of ``control`` closed."""
    try:
        if control.recv(64):
            return  # the supervisor says nothing yet
    except BlockingIOError:
        return
    except OSError:
        pass
    asyncio.get_running_loop().remove_reader(control.fileno())
    if not stop.is_set():
        logger.warning("the supervisor is gone: closing the connections")
        stop.set()


async def _close_rooms(module: ModuleType, app: object) -> None:
    """Close the rooms of the application: those its module holds, and an RPC app's; so
    that their presence entries go at once, rather than expire on the other nodes."""
    if "socketeer.pubsub" not in sys.modules:
        return  # the application has no rooms
    from ..pubsub import Rooms

    found = [value for value in vars(module).values() if isinstance(value, Rooms)]
    rooms = getattr(app, "rooms", None)
    if isinstance(rooms, Rooms) and rooms not in found:
        found.append(rooms)
    for rooms in found:
        try:
            await asyncio.wait_for(rooms.close(), CLOSE_TIMEOUT)
        except Exception as exc:
            logger.warning("closing %r failed: %s", rooms, exc)
