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
import importlib
import logging
import os
import signal
import socket
import ssl
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from types import FrameType, ModuleType
from typing import Any

from ..asyncio.server import Server, serve
from ..options import CLOSE_TIMEOUT
from . import CommandError, one_line
from ._listen import Listeners
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

DEFAULT_HOST = "127.0.0.1"
"""Where to listen without ``--host``: this machine only."""
DEFAULT_PORT = 8000
"""The TCP port without ``--port``."""
MAX_WORKERS = 1024
"""The most workers ``--workers`` accepts."""
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
"""The values of ``--log-level``."""
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s"
"""How log lines look: the process id tells the workers apart."""

logger = logging.getLogger("socketeer.server")


# The command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``serve`` to a command line parser."""
    parser.add_argument(
        "app",
        metavar="MODULE:ATTR",
        type=_app_spec,
        help="what to serve: attribute ATTR of module MODULE, e.g. app:handler",
    )
    where = parser.add_argument_group("where to listen")
    where.add_argument("--host", help=f"a host name or address (default: {DEFAULT_HOST})")
    where.add_argument(
        "--port", type=_port, help=f"TCP port, 0 for any free one (default: {DEFAULT_PORT})"
    )
    where.add_argument("--unix", metavar="PATH", help="a Unix socket, instead of TCP")
    where.add_argument("--certfile", metavar="FILE", help="serve TLS with this certificate")
    where.add_argument(
        "--keyfile", metavar="FILE", help="its private key, if not in the certificate file"
    )
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
    parser.add_argument(
        "--log-level",
        metavar="LEVEL",
        type=str.lower,
        choices=LOG_LEVELS,
        default="info",
        help=f"{', '.join(LOG_LEVELS)} (default: %(default)s)",
    )
    # A worker's: the descriptors it inherits from the supervisor.
    parser.add_argument("--worker-sockets", type=_descriptors, help=argparse.SUPPRESS)
    parser.add_argument("--worker-control", type=int, help=argparse.SUPPRESS)


def _app_spec(value: str) -> str:
    module, colon, attr = value.partition(":")
    if not (colon and _dotted(module) and _dotted(attr)):
        raise argparse.ArgumentTypeError(
            f"expected a module and an attribute, such as app:handler or package.app:rpc, "
            f"got {value!r}"
        )
    return value


def _dotted(name: str) -> bool:
    return all(part.isidentifier() for part in name.split("."))


def _port(value: str) -> int:
    port = int(value) if value.isdecimal() else -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {value!r}")
    return port


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
    if args.unix is not None:
        if args.host is not None or args.port is not None:
            raise CommandError("argument --unix: not allowed with --host or --port", 2)
        if not hasattr(socket, "AF_UNIX"):  # pragma: no cover
            raise CommandError("argument --unix: no Unix sockets on this system", 2)
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
    listeners = _listen(args, args.workers)
    url = listeners.url(tls is not None)

    def ready() -> None:
        _print_url(url)
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
        with _sigterm_interrupts():
            module, app = load_app(args.app)
            listeners = _listen(args, 1)
            try:
                ready = functools.partial(_print_url, listeners.url(tls is not None))
                return _run_loop(_serve(args.app, module, app, listeners.sockets(), tls, ready))
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
        with _sigterm_interrupts():
            tls = _tls_context(args)
            module, app = load_app(args.app)
            ready = functools.partial(_tell, control, "ready")
            return _run_loop(_serve(args.app, module, app, sockets, tls, ready, control))
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


def _listen(args: argparse.Namespace, slots: int) -> Listeners:
    if args.unix is not None:
        return Listeners.unix(args.unix)
    host = DEFAULT_HOST if args.host is None else args.host
    port = DEFAULT_PORT if args.port is None else args.port
    return Listeners.tcp(host, port, slots)


def _print_url(url: str) -> None:
    print(f"socketeer serve: {url}", flush=True)


def _tell(control: socket.socket, line: str) -> None:
    """Write a line to the supervisor; it may be gone already."""
    with contextlib.suppress(OSError):
        control.sendall(line.encode() + b"\n")


def _worker_command(args: argparse.Namespace, sockets: list[int], control: int) -> list[str]:
    """A worker's command line; the environment carries ``SOCKETEER_BROKER``."""
    command = [sys.executable, "-m", "socketeer", "serve", args.app]
    command += ["--log-level", args.log_level]
    for option, path in (("--certfile", args.certfile), ("--keyfile", args.keyfile)):
        if path is not None:
            command += [option, os.path.abspath(path)]
    command += ["--worker-sockets", ",".join(map(str, sockets))]
    command += ["--worker-control", str(control)]
    return command


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Make SIGTERM stop the process as SIGINT does, until the event loop handles both."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_loop(main: Any) -> int:
    try:
        status: int = asyncio.run(main)
    except asyncio.CancelledError:
        logger.warning("stopped without waiting for every connection to close")
        return 1
    return status


# The application


def load_app(spec: str) -> tuple[ModuleType, object]:
    """Import ``MODULE:ATTR``; return the module and the attribute (dots walk further).

    Puts the current directory first on the import path, as ``python -m`` does.

    Raises:
        CommandError: if the module cannot be imported, or has no such attribute.
    """
    name, _, attr = spec.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise CommandError(
                f"cannot import {name}: no module named {exc.name!r} "
                f"in the current directory ({cwd}) or the Python path"
            ) from exc
        raise _import_failed(name, exc) from exc
    except Exception as exc:
        raise _import_failed(name, exc) from exc
    app: object = module
    for part in attr.split("."):
        try:
            app = getattr(app, part)
        except AttributeError as exc:
            raise CommandError(f"module {name!r} has no attribute {attr!r}") from exc
    return module, app


def _import_failed(name: str, exc: Exception) -> CommandError:
    logger.debug("importing %s failed", name, exc_info=exc)
    return CommandError(
        f"cannot import {name}: {type(exc).__name__}: {exc} (--log-level debug shows where)"
    )


async def _serve(
    spec: str,
    module: ModuleType,
    app: object,
    sockets: list[socket.socket],
    tls: ssl.SSLContext | None,
    ready: Callable[[], None],
    control: socket.socket | None = None,
) -> int:
    """Serve ``app`` on ``sockets`` until SIGINT, SIGTERM, or the end of ``control``."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    stop = asyncio.Event()
    servers: list[Server] = []
    try:
        for sock in sockets:
            servers.append(await serve(app, sock=sock, ssl=tls))  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        await asyncio.gather(*(server.close() for server in servers))
        raise CommandError(f"cannot serve {spec}: {exc}") from exc

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
