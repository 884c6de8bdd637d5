"""Real peers for the interoperability tests, and the helpers to run them.

A missing peer (an executable, a Python package, the Node packages) skips the tests that need
it, with a hint to install it, except under ``CI=true``, where it fails them: CI must run every
test.

Every peer listens on 127.0.0.1, on a port the OS picks, and every wait is bounded: a bug fails
a test rather than hangs it. Waits are counted in :data:`MS` (``tests/timing.py``), which
``SOCKETEER_TEST_TIMEOUT_FACTOR`` scales for slow machines; no test checks a duration.

The Node peers are ``node/server.mjs`` and ``node/client.mjs``, made with the ``ws`` package
pinned in ``node/package-lock.json``. :class:`NodeServer` runs the server from a fixture (it
prints its port, then every event, one JSON object a line); :class:`NodeClient` runs the
client inside a test's event loop, driven by JSON commands on its stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn, TypeVar

import pytest

import socketeer
from timing import MS

__all__ = [
    "IN_CI",
    "MESSAGES",
    "MS",
    "TIMEOUT",
    "TEST_TIMEOUT",
    "NODE_DIR",
    "NodeClient",
    "NodeServer",
    "deflate_parameters",
    "extension_names",
    "import_peer",
    "many_messages",
    "missing_peer",
    "node_executable",
    "typescript_compiler",
    "require_executable",
    "run",
    "socketeer_server",
    "within",
]

T = TypeVar("T")


TIMEOUT = 10_000 * MS
"""The longest any single wait may take before the test fails."""

TEST_TIMEOUT = 60_000 * MS
"""The longest a whole test may take before it fails."""

IN_CI = os.environ.get("CI") == "true"
"""Whether the tests run in CI, where every peer must be present."""

NODE_DIR = Path(__file__).parent / "node"
"""The Node package with the ``ws`` peers."""

NODE_HINT = (
    "install Node.js 18+ and npm (Debian: apt-get install nodejs npm), then run "
    "`npm ci` in tests/interop/node"
)


# Missing peers


def missing_peer(what: str, hint: str) -> NoReturn:
    """Skip the test because a peer is missing, or fail it under ``CI=true``."""
    message = f"{what} is missing: {hint}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: missing peers fail)", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def require_executable(name: str, hint: str) -> str:
    """The path of executable ``name``; skip or fail (see :func:`missing_peer`) without it."""
    path = shutil.which(name)
    if path is None:
        missing_peer(f"executable {name!r}", hint)
    return path


def import_peer(name: str, hint: str) -> ModuleType:
    """Import Python module ``name``; skip or fail (see :func:`missing_peer`) without it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing_peer(f"Python module {name!r}", hint)


def node_executable() -> str:
    """The path of ``node``, once the packages of :data:`NODE_DIR` are installed (``ws``,
    and ``typescript`` for the type checks).

    Runs ``npm ci`` there when ``node_modules`` lacks one (offline from npm's cache after
    the first time).
    """
    node = require_executable("node", NODE_HINT)
    installed = NODE_DIR / "node_modules"
    if not all((installed / name / "package.json").is_file() for name in ("ws", "typescript")):
        npm = require_executable("npm", NODE_HINT)
        command = [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"]
        try:
            subprocess.run(
                command,
                cwd=NODE_DIR,
                check=True,
                timeout=300,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        except subprocess.CalledProcessError as exc:
            output = exc.stdout.decode(errors="replace")
            missing_peer("the ws package", f"`npm ci` in {NODE_DIR} failed:\n{output}")
        except subprocess.TimeoutExpired:
            missing_peer("the ws package", f"`npm ci` in {NODE_DIR} timed out")
    return node


def typescript_compiler() -> list[str]:
    """The command that runs TypeScript's ``tsc``, from :data:`NODE_DIR`'s packages."""
    node = node_executable()
    return [node, str(NODE_DIR / "node_modules" / "typescript" / "bin" / "tsc")]


# Messages


MESSAGES: list[str | bytes] = [
    "",
    "hello",
    "héllo wörld € 𝄞",
    "x" * 125,
    "y" * 126,
    "z" * 65_535,
    "€" * 30_000,
    b"",
    b"\x00\x01\xfe\xff",
    b"\x01" * 125,
    b"\x02" * 126,
    bytes(range(256)) * 256,
    os.urandom(4_000) * 4,
    os.urandom(70_000),
]
"""Text and binary messages of every length encoding (7-bit, 16-bit, 64-bit), at their
boundaries, with characters of every UTF-8 length, and repeats at distances over 512 bytes
(the smallest deflate window)."""


def many_messages() -> list[str | bytes]:
    """Two hundred messages of up to 60 KB, text and binary: enough to fill the peers' queues
    (``max_queue``) and write buffers when sent without waiting for the echo."""
    messages: list[str | bytes] = []
    for i in range(100):
        messages.append(f"message {i}: " + "é" * (i * 197 % 30_000))
        messages.append(os.urandom(i * 331 % 50_000))
    return messages


# Running coroutines


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a test's coroutine in a new event loop, within :data:`TEST_TIMEOUT`."""
    return asyncio.run(asyncio.wait_for(main, TEST_TIMEOUT))


async def within(awaitable: Awaitable[T], timeout: float = TIMEOUT) -> T:
    """Await ``awaitable``, failing with :exc:`TimeoutError` after ``timeout`` seconds."""
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        raise TimeoutError(f"timed out after {timeout} s") from None


@contextlib.asynccontextmanager
async def socketeer_server(
    handler: Callable[[socketeer.ServerConnection], Awaitable[Any]], **kwargs: Any
) -> AsyncIterator[str]:
    """Run a socketeer server on a free loopback port; yield its ``ws://`` URI."""
    async with socketeer.serve(handler, "127.0.0.1", 0, **kwargs) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/"


def extension_names(connection: Any) -> list[str]:
    """The extensions a socketeer or websockets connection negotiated, by name."""
    return [str(extension.name) for extension in connection.protocol.extensions]


def deflate_parameters(connection: Any) -> dict[str, Any]:
    """The permessage-deflate parameters a socketeer or websockets connection agreed on.

    Both libraries name them alike: ``local_`` and ``remote_`` + ``no_context_takeover`` and
    ``max_window_bits``.
    """
    (extension,) = connection.protocol.extensions
    return {
        f"{side}_{name}": getattr(extension, f"{side}_{name}")
        for side in ("local", "remote")
        for name in ("no_context_takeover", "max_window_bits")
    }


# Node peers


def parse_event(line: bytes) -> dict[str, Any]:
    """An event printed by a Node peer; any other output becomes an ``output`` event."""
    try:
        event = json.loads(line)
    except ValueError:
        event = None
    if not isinstance(event, dict):
        return {"event": "output", "line": line.decode(errors="replace")}
    return event


class NodeServer:
    """``node/server.mjs`` in a subprocess: a ``ws`` server on a free loopback port.

    Its events (JSON objects) are read on a thread and taken with :meth:`expect`. Call
    :meth:`close` in every case.

    Args:
        node: the ``node`` executable.
        args: arguments for ``server.mjs`` (``--no-deflate``, ``--max-payload N``, ...).
    """

    def __init__(self, node: str, *args: str) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        """Every event taken so far, including those :meth:`expect` skipped."""
        self.process = subprocess.Popen(
            [node, str(NODE_DIR / "server.mjs"), *args],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            self.port: int = self.expect("listening")["port"]
        except BaseException:
            self.close()
            raise

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.events.put(parse_event(line))
        self.events.put({"event": "exit"})

    def url(self, path: str = "/") -> str:
        """The ``ws://`` URI of ``path`` on this server."""
        return f"ws://127.0.0.1:{self.port}{path}"

    def expect(self, kind: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Wait for the next event named ``kind``; skip (and keep in :attr:`seen`) others."""
        while True:
            try:
                event = self.events.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no {kind!r} event within {timeout} s: {self.seen}"
                ) from None
            self.seen.append(event)
            if event["event"] == kind:
                return event
            if event["event"] == "exit":
                raise AssertionError(f"node server exited before {kind!r}: {self.seen}")

    def close(self) -> None:
        """Stop the server (it exits when its stdin closes) and wait for it."""
        process = self.process
        assert process.stdin is not None and process.stdout is not None
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
        try:
            process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._reader.join(timeout=TIMEOUT)
        process.stdout.close()


class NodeClient:
    """``node/client.mjs`` in a subprocess: a ``ws`` client, driven from a test's event loop.

    Use :meth:`connect`; then :meth:`send` commands and :meth:`expect` events (see
    ``client.mjs`` for both).
    """

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.seen: list[dict[str, Any]] = []
        """Every event taken so far, including those :meth:`expect` skipped."""

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, node: str, url: str, *args: str) -> AsyncIterator[NodeClient]:
        """Start the client on ``url``, with arguments for ``client.mjs``; stop it on exit."""
        process = await asyncio.create_subprocess_exec(
            node,
            str(NODE_DIR / "client.mjs"),
            url,
            *args,
            cwd=NODE_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**20,  # a message event prints up to 64 KiB, base64-encoded
        )
        client = cls(process)
        try:
            yield client
        finally:
            await client.aclose()

    async def send(self, **command: Any) -> None:
        """Send a command, e.g. ``send(op="send", text="hello")``."""
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps(command).encode() + b"\n")
        await within(stdin.drain())

    async def event(self) -> dict[str, Any]:
        """The next event."""
        stdout = self.process.stdout
        assert stdout is not None
        line = await within(stdout.readline())
        if not line:
            raise AssertionError(f"node client exited: {self.seen}")
        event = parse_event(line)
        self.seen.append(event)
        return event

    async def expect(self, kind: str) -> dict[str, Any]:
        """Wait for the next event named ``kind``; skip (and keep in :attr:`seen`) others."""
        while (event := await self.event())["event"] != kind:
            pass
        return event

    async def aclose(self) -> None:
        """Close stdin (the client closes with 1000 if still open) and wait for the exit."""
        process = self.process
        assert process.stdin is not None and process.stdout is not None
        process.stdin.close()
        with contextlib.suppress(ConnectionError):
            await process.stdin.wait_closed()
        try:
            # Read what is left, or a client blocked on a full pipe would never exit.
            await within(asyncio.gather(process.stdout.read(), process.wait()))
        except TimeoutError:
            process.kill()
            await asyncio.gather(process.stdout.read(), process.wait())
