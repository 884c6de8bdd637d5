"""Helpers of the command line tests: ``socketeer serve`` in a subprocess, and a raw JSON-RPC
client for the rooms' reserved methods.

Every wait is bounded, in :data:`MS` (``tests/timing.py``); no test checks a duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import socketeer
from socketeer.rpc import SUBPROTOCOL
from timing import MS

__all__ = [
    "STARTUP",
    "STEP",
    "RPCClient",
    "ServeProcess",
    "connect_until",
    "eventually",
    "kill_processes_in",
    "plain_clients",
    "processes_in",
    "recv",
]

STARTUP = 20_000 * MS
"""Longest ``serve`` may take to print its URL (workers import the application one by one)."""

STEP = 5_000 * MS
"""Longest a single step may take; steps take milliseconds. Only catches hangs."""


class ServeProcess:
    """``python -m socketeer serve ARGS`` in a subprocess, run in ``directory``.

    Threads collect its standard output and error (the workers write to them too).
    :meth:`kill` kills it and every process running in ``directory``: its workers.
    """

    def __init__(self, directory: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.directory = directory
        environment = {k: v for k, v in os.environ.items() if k != "SOCKETEER_BROKER"}
        environment.update(env or {})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "socketeer", "serve", *args],
            cwd=directory,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self._stdout)),
            threading.Thread(target=self._read, args=(self.process.stderr, self._stderr)),
        ]
        for reader in self._readers:
            reader.daemon = True
            reader.start()

    @staticmethod
    def _read(stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.decode(errors="replace"))
        stream.close()

    @property
    def stdout(self) -> str:
        return "".join(self._stdout)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def url(self) -> str:
        """The URL ``serve`` printed, once it did (within :data:`STARTUP`)."""
        deadline = time.monotonic() + STARTUP
        while not self._stdout:
            if self.process.poll() is not None and not self._readers[0].is_alive():
                raise AssertionError(
                    f"serve exited with {self.process.returncode}:\n{self.stderr}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"serve printed no URL within {STARTUP} s:\n{self.stderr}")
            time.sleep(10 * MS)
        line = self._stdout[0]
        assert line.startswith("socketeer serve: "), line
        return line.removeprefix("socketeer serve: ").split()[0]

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = STEP) -> int:
        """Wait for the exit (and the end of the output); return the exit status."""
        status = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        return status

    async def exited(self, timeout: float = STEP) -> int:
        """:meth:`wait`, from an event loop."""
        return await asyncio.to_thread(self.wait, timeout)

    def kill(self) -> None:
        """Kill the process and every process running in its directory (its workers)."""
        pids = {self.process.pid, *processes_in(self.directory)}
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            self.process.wait(STEP)
        finally:
            for reader in self._readers:
                reader.join(STEP)


def processes_in(directory: Path) -> list[int]:
    """The processes whose current directory is ``directory`` (Linux; none elsewhere)."""
    pids = []
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if entry.isdecimal():
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry}/cwd") == str(directory):
                        pids.append(int(entry))
    return pids


def kill_processes_in(directory: Path) -> None:
    """Kill every process whose current directory is ``directory`` (see :func:`processes_in`)."""
    for pid in processes_in(directory):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = STEP) -> None:
    """Await ``check()`` every few milliseconds until it is true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s")
        await asyncio.sleep(20 * MS)


class RPCClient:
    """A raw JSON-RPC client over one WebSocket connection: requests get their answers,
    ``$/room/message`` notifications queue in :attr:`messages`."""

    def __init__(self, ws: socketeer.ClientConnection) -> None:
        self.ws = ws
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        """The params of each ``$/room/message`` received, in order."""
        self._ids = itertools.count(1)
        self._answers: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str) -> RPCClient:
        ws = await asyncio.wait_for(socketeer.connect(url, subprotocols=[SUBPROTOCOL]), STEP)
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                message = json.loads(text)
                if message.get("method") == "$/room/message":
                    self.messages.put_nowait(message["params"])
                elif message.get("id") in self._answers:
                    self._answers.pop(message["id"]).set_result(message)
        except socketeer.ConnectionClosed:
            pass
        finally:
            for answer in self._answers.values():
                answer.cancel()

    async def request(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a request; return its answer, ``{"result": ...}`` or ``{"error": ...}``."""
        id = next(self._ids)
        answer = self._answers[id] = asyncio.get_running_loop().create_future()
        request = {"jsonrpc": "2.0", "method": method, "params": params, "id": id}
        await self.ws.send(json.dumps(request))
        return await asyncio.wait_for(answer, STEP)

    async def call(self, method: str, **params: Any) -> Any:
        """Send a request; return its result (fail on an error)."""
        answer = await self.request(method, **params)
        assert "result" in answer, answer
        return answer["result"]

    async def message(self, timeout: float = STEP) -> dict[str, Any]:
        """The params of the next ``$/room/message``."""
        return await asyncio.wait_for(self.messages.get(), timeout)

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.wait_for(self._reader, STEP)


async def connect_until(
    url: str, workers: int | set[int], attempts: int = 50
) -> dict[int, RPCClient]:
    """Connect RPC clients until some are on ``workers`` different workers, or on each of
    the workers whose pids are given (the application's ``pid`` method tells); close the
    others. Return them by pid; fail after ``attempts`` connections."""
    count = workers if isinstance(workers, int) else len(workers)
    found: dict[int, RPCClient] = {}
    for _ in range(attempts):
        client = await RPCClient.connect(url)
        pid = await client.call("pid")
        if pid not in found and (isinstance(workers, int) or pid in workers):
            found[pid] = client
            if len(found) == count:
                return found
        else:
            await client.close()
    for client in found.values():
        await client.close()
    raise AssertionError(f"no clients on {workers} workers after {attempts} connections")


async def recv(ws: socketeer.ClientConnection) -> str | bytes:
    """The next message, within :data:`STEP`."""
    return await asyncio.wait_for(ws.recv(), STEP)


async def plain_clients(
    url: str,
    workers: int,
    exclude: frozenset[int] = frozenset(),
    attempts: int = 50,
    **kwargs: Any,
) -> dict[int, socketeer.ClientConnection]:
    """Connect plain clients until some are on ``workers`` different workers, not those of
    ``exclude`` (the application's first message is ``pid N``); close the others. Return
    them by pid; fail after ``attempts`` connections."""
    found: dict[int, socketeer.ClientConnection] = {}
    for _ in range(attempts):
        ws = await asyncio.wait_for(socketeer.connect(url, **kwargs), STEP)
        greeting = await recv(ws)
        assert isinstance(greeting, str) and greeting.startswith("pid "), greeting
        pid = int(greeting.removeprefix("pid "))
        if pid not in found and pid not in exclude:
            found[pid] = ws
            if len(found) == workers:
                return found
        else:
            await ws.close()
    for ws in found.values():
        await ws.close()
    raise AssertionError(f"no clients on {workers} workers after {attempts} connections")
