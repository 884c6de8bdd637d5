"""A real ``redis-server`` for the tests, on a free loopback port, that can be killed and
restarted on the same port.

A missing ``redis-server`` or ``redis`` package skips the tests that need them, with a hint to
install them, except under ``CI=true``, where it fails them: CI must run every test.
Every wait is bounded, in :data:`MS`, which ``SOCKETEER_TEST_TIMEOUT_FACTOR`` scales.
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import NoReturn

import pytest

from timing import MS

__all__ = ["IN_CI", "RedisServer", "missing", "require_redis"]

IN_CI = os.environ.get("CI") == "true"
"""Whether the tests run in CI, where redis-server and the redis package must be present."""

START_TIMEOUT = 5_000 * MS
"""Longest a server may take to answer ``PING`` once started."""


def missing(what: str, hint: str) -> NoReturn:
    """Skip the test (or module) because ``what`` is missing, or fail it under ``CI=true``."""
    message = f"{what} is missing: {hint}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: missing peers fail)", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def require_redis() -> str:
    """The path of ``redis-server``, once the ``redis`` package imports; skip or fail
    (see :func:`missing`) without either."""
    executable = shutil.which("redis-server")
    if executable is None:
        missing("executable 'redis-server'", "apt-get install redis-server")
    try:
        importlib.import_module("redis")
    except ImportError:
        missing("Python package 'redis'", "pip install redis")
    return executable


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A ``redis-server`` process that persists nothing, in ``directory``.

    :meth:`start` picks a free port the first time and keeps it: :meth:`restart` comes back
    on the same one, empty (nothing is saved), as a real server that crashed would.
    """

    def __init__(self, executable: str, directory: Path) -> None:
        self.executable = executable
        self.directory = directory
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's URL, database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers ``PING``.

        Raises:
            RuntimeError: if it exits or does not answer within :data:`START_TIMEOUT`.
        """
        assert self.process is None, "server already running"
        attempts = 1 if self.port else 3  # a first port may be taken before the server binds it
        for attempt in range(attempts):
            if not self.port or attempt:
                self.port = free_port()
            try:
                self._spawn()
                return
            except RuntimeError:
                if attempt == attempts - 1:
                    raise

    def _spawn(self) -> None:
        log = self.directory / f"redis-{self.port}.log"
        command = [
            self.executable,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--logfile",
            str(log),
        ]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, cwd=self.directory)
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self._reap(signal.SIGKILL)
                output = log.read_text(errors="replace") if log.exists() else ""
                raise RuntimeError(f"redis-server on port {self.port} did not start:\n{output}")
            time.sleep(MS)

    def ping(self) -> bool:
        """Whether the server answers ``PING`` now."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=100 * MS) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """Kill the server with SIGKILL, as a crash would, and wait until it is gone."""
        self._reap(signal.SIGKILL)

    def restart(self) -> None:
        """Start the server again on the same port (killing it first if it runs)."""
        self._reap(signal.SIGKILL)
        self.start()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL if it lingers)."""
        self._reap(signal.SIGTERM)

    def _reap(self, sig: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=START_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=START_TIMEOUT)
