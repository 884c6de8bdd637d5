"""``socketeer serve``: its command line (in-process, through ``main(argv)``), and the
server it runs (in a subprocess): serving, stopping on signals, workers, errors."""

from __future__ import annotations

import os
import signal
import socket
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import (
    STARTUP,
    RPCClient,
    ServeProcess,
    eventually,
    plain_clients,
    recv,
)

import socketeer
import socketeer.__main__
from socketeer.cli import main
from socketeer.pubsub import BROKER_ENV

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")

ServeApp = Callable[..., ServeProcess]

APP = """
import asyncio
import os

import socketeer
from socketeer.rpc import RPC, Router


async def handler(ws):
    await ws.send(f"pid {os.getpid()}")
    async for message in ws:
        await ws.send(message)


class Echo(socketeer.Handler):
    async def on_open(self, ws):
        await ws.send(f"pid {os.getpid()}")

    async def on_message(self, ws, message):
        await ws.send(message)


rpc = RPC()


@rpc.method
def pid() -> int:
    return os.getpid()


router = Router({"/echo": handler, "/rpc": rpc})


async def stuck(ws):
    await ws.send(f"pid {os.getpid()}")
    await asyncio.sleep(3600)  # neither reads nor notices the closing handshake
"""
"""The application of these tests: each attribute is something ``serve`` takes."""


# The command line, in-process


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run ``main`` in ``tmp_path``, and undo what it changes: the import path, the modules
    imported from ``tmp_path``, ``SOCKETEER_BROKER``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv(BROKER_ENV, raising=False)
    modules = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - modules:
        if name.startswith("cli_app_"):
            del sys.modules[name]


def one_line(text: str) -> str:
    """``text``, checked to be one line without a traceback."""
    assert text.endswith("\n") and text.count("\n") == 1, text
    assert "Traceback" not in text
    return text.removesuffix("\n")


USAGE_ERRORS: dict[str, tuple[list[str], str]] = {
    "no-command": ([], "the following arguments are required: COMMAND"),
    "unknown-command": (["serf"], "argument COMMAND: invalid choice: 'serf'"),
    "no-app": (["serve"], "the following arguments are required: MODULE:ATTR"),
    "no-colon": (["serve", "app"], "argument MODULE:ATTR: expected a module and an attribute"),
    "no-attribute": (
        ["serve", "app:"],
        "argument MODULE:ATTR: expected a module and an attribute",
    ),
    "no-module": (
        ["serve", ":handler"],
        "argument MODULE:ATTR: expected a module and an attribute",
    ),
    "not-a-name": (
        ["serve", "my-app:handler"],
        "argument MODULE:ATTR: expected a module and an attribute",
    ),
    "two-colons": (
        ["serve", "app:a:b"],
        "argument MODULE:ATTR: expected a module and an attribute",
    ),
    "port-too-big": (["serve", "app:handler", "--port", "65536"], "argument --port:"),
    "port-not-a-number": (["serve", "app:handler", "--port", "http"], "argument --port:"),
    "no-workers": (["serve", "app:handler", "--workers", "0"], "argument --workers:"),
    "workers-not-a-number": (["serve", "app:handler", "--workers", "two"], "argument --workers:"),
    "too-many-workers": (["serve", "app:handler", "--workers", "100000"], "argument --workers:"),
    "log-level": (["serve", "app:handler", "--log-level", "loud"], "argument --log-level:"),
    "broker-scheme": (
        ["serve", "app:handler", "--broker", "nats://localhost"],
        "argument --broker: broker URL must start with memory:// or redis://",
    ),
    "unix-and-port": (
        ["serve", "app:handler", "--unix", "ws.sock", "--port", "8000"],
        "argument --unix: not allowed with --host or --port",
    ),
    "keyfile-alone": (
        ["serve", "app:handler", "--keyfile", "key.pem"],
        "argument --keyfile: needs --certfile",
    ),
    "unknown-option": (["serve", "app:handler", "--bogus"], "unrecognized arguments: --bogus"),
}


@pytest.mark.parametrize("argv, message", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_usage_error(
    argv: list[str], message: str, isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    line = one_line(err)
    assert line.startswith("python -m socketeer")
    assert f": error: {message}" in line
    assert line.endswith("--help)")


RUNTIME_ERRORS: dict[str, tuple[str, list[str], str]] = {
    "module-not-found": (
        "",
        ["cli_app_nowhere:handler"],
        "cannot import cli_app_nowhere: no module named 'cli_app_nowhere' "
        "in the current directory",
    ),
    "package-not-found": (
        "",
        ["cli_app_nowhere.app:handler"],
        "cannot import cli_app_nowhere.app: no module named 'cli_app_nowhere'",
    ),
    "attribute-missing": (
        "handler = None\n",
        ["{module}:missing"],
        "module '{module}' has no attribute 'missing'",
    ),
    "nested-attribute-missing": (
        "handler = None\n",
        ["{module}:handler.missing"],
        "module '{module}' has no attribute 'handler.missing'",
    ),
    "import-raises": (
        "raise RuntimeError('no configuration\\nfound')\n",
        ["{module}:handler"],
        "cannot import {module}: RuntimeError: no configuration found "
        "(--log-level debug shows where)",
    ),
    "syntax-error": (
        "def handler(:\n",
        ["{module}:handler"],
        "cannot import {module}: SyntaxError: ",
    ),
    "missing-dependency": (
        "import cli_app_missing_dependency\n",
        ["{module}:handler"],
        "cannot import {module}: ModuleNotFoundError: "
        "No module named 'cli_app_missing_dependency'",
    ),
    "certfile-missing": (
        "handler = None\n",
        ["{module}:handler", "--certfile", "cert.pem"],
        "--certfile cert.pem: no such file",
    ),
    "keyfile-missing": (
        "handler = None\n",
        ["{module}:handler", "--certfile", "{module}.py", "--keyfile", "key.pem"],
        "--keyfile key.pem: no such file",
    ),
    "certfile-not-a-certificate": (
        "handler = None\n",
        ["{module}:handler", "--certfile", "{module}.py"],
        "cannot load the certificate from {module}.py: ",
    ),
}


@pytest.mark.parametrize(
    "source, args, message", RUNTIME_ERRORS.values(), ids=RUNTIME_ERRORS.keys()
)
def test_runtime_error(
    source: str,
    args: list[str],
    message: str,
    isolated: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    module = f"cli_app_{uuid.uuid4().hex[:12]}"
    (isolated / f"{module}.py").write_text(source)
    argv = ["serve", *(arg.format(module=module) for arg in args)]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert one_line(err).startswith(f"socketeer serve: {message.format(module=module)}")


def test_redis_not_installed(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.delitem(sys.modules, "socketeer.pubsub.brokers.redis", raising=False)
    assert main(["serve", "app:handler", "--broker", "redis://localhost:6379/0"]) == 1
    assert one_line(capsys.readouterr().err) == (
        "socketeer serve: argument --broker: "
        "RedisBroker requires the redis package: pip install socketeer[redis]"
    )


def test_bad_broker_in_the_environment(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(BROKER_ENV, "nats://localhost")
    assert main(["serve", "app:handler"]) == 1
    assert one_line(capsys.readouterr().err).startswith(
        f"socketeer serve: {BROKER_ENV}: broker URL must start with memory:// or redis://"
    )


def test_console_script_name(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/socketeer"])
    with pytest.raises(SystemExit):
        main(["serve"])
    assert one_line(capsys.readouterr().err).startswith("socketeer serve: error: ")


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "usage: python -m socketeer" in out
    assert "demo" in out and "serve" in out
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for option in ("MODULE:ATTR", "--workers N", "--broker URL", "--unix PATH", "--certfile"):
        assert option in out
    assert "--worker-control" not in out  # the workers' own


def test_python_m_socketeer_runs_the_cli() -> None:
    assert socketeer.__main__.main is main


# Serving, in a subprocess


def serving(serve_app: ServeApp, attr: str, *args: str) -> tuple[ServeProcess, str]:
    """Run ``serve app:ATTR --port 0 ARGS``; return it and its URL."""
    server = serve_app(APP, f"app:{attr}", "--port", "0", *args)
    return server, server.url()


async def closed_code(ws: socketeer.ClientConnection) -> int | None:
    """Read until the connection closes; the close code received."""
    with pytest.raises(socketeer.ConnectionClosed) as closed:
        while True:
            await recv(ws)
    return None if closed.value.rcvd is None else closed.value.rcvd.code


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
async def test_serve_then_stop(serve_app: ServeApp, workers: str, signum: int) -> None:
    server, url = serving(serve_app, "handler", "--workers", workers)
    assert url.startswith("ws://127.0.0.1:") and not url.endswith(":0/")
    async with socketeer.connect(url) as ws:
        assert str(await recv(ws)).startswith("pid ")
        await ws.send("hello")
        assert await recv(ws) == "hello"
        server.send_signal(signum)
        assert await closed_code(ws) == 1001
    assert await server.exited() == 0
    assert server.stdout == f"socketeer serve: {url}\n"
    assert "Traceback" not in server.stderr
    memory_warning = "the broker is memory://: rooms do not span the 2 workers"
    assert (memory_warning in server.stderr) is (workers == "2")


async def test_handler_class(serve_app: ServeApp) -> None:
    server, url = serving(serve_app, "Echo")
    async with socketeer.connect(url) as ws:
        assert str(await recv(ws)).startswith("pid ")
        await ws.send("hello")
        assert await recv(ws) == "hello"
    server.send_signal(signal.SIGTERM)
    assert await server.exited() == 0


async def test_rpc_app_and_router(serve_app: ServeApp) -> None:
    server, url = serving(serve_app, "router")
    client = await RPCClient.connect(url + "rpc")
    pid = await client.call("pid")
    await client.close()
    async with socketeer.connect(url + "echo") as ws:
        assert await recv(ws) == f"pid {pid}"
    server.send_signal(signal.SIGTERM)
    assert await server.exited() == 0


async def test_rpc_app_with_workers(serve_app: ServeApp) -> None:
    server, url = serving(serve_app, "rpc", "--workers", "2")
    client = await RPCClient.connect(url)
    assert isinstance(await client.call("pid"), int)
    server.send_signal(signal.SIGTERM)
    await client.ws.wait_closed()
    assert client.ws.close_code == 1001
    await client.close()
    assert await server.exited() == 0


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_unix_socket(serve_app: ServeApp, unix_path: str, workers: str) -> None:
    server = serve_app(APP, "app:handler", "--unix", unix_path, "--workers", workers)
    url = server.url()
    assert server.stdout == f"socketeer serve: ws://localhost/ (unix socket {unix_path})\n"
    clients = await plain_clients(url, 1, unix=unix_path)
    (ws,) = clients.values()
    await ws.send("hello")
    assert await recv(ws) == "hello"
    server.send_signal(signal.SIGTERM)
    assert await closed_code(ws) == 1001
    assert await server.exited() == 0
    assert not os.path.exists(unix_path)


async def test_tls(
    serve_app: ServeApp, app_dir: Path, certificate_authority: Any, client_ssl: Any
) -> None:
    _, certificate = certificate_authority
    certificate.cert_chain_pems[0].write_to_path(str(app_dir / "cert.pem"))
    certificate.private_key_pem.write_to_path(str(app_dir / "key.pem"))
    server, url = serving(
        serve_app, "handler", "--certfile", "cert.pem", "--keyfile", "key.pem", "--workers", "2"
    )
    assert url.startswith("wss://127.0.0.1:")
    async with socketeer.connect(url, ssl=client_ssl) as ws:
        assert str(await recv(ws)).startswith("pid ")
        await ws.send("hello")
        assert await recv(ws) == "hello"
    server.send_signal(signal.SIGTERM)
    assert await server.exited() == 0


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_second_signal_stops_at_once(serve_app: ServeApp, workers: str) -> None:
    server, url = serving(serve_app, "stuck", "--workers", workers)
    async with socketeer.connect(url) as ws:
        assert str(await recv(ws)).startswith("pid ")
        server.send_signal(signal.SIGTERM)
        assert await closed_code(ws) == 1001  # the handler still runs: it is stuck

        async def closing() -> bool:
            return "SIGTERM: closing 1 connections" in server.stderr

        await eventually(closing)
        server.send_signal(signal.SIGTERM)
        assert await server.exited() == 1


# Workers


async def test_dead_worker_is_restarted(serve_app: ServeApp) -> None:
    server, url = serving(serve_app, "handler", "--workers", "2")
    clients = await plain_clients(url, 2)
    (pid, ws), (other_pid, other) = clients.items()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(socketeer.ConnectionClosedError):
        await recv(ws)

    async def restarted() -> bool:
        lines = server.stderr.splitlines()
        death = f"(pid {pid}) was killed by SIGKILL; restarting it"
        logged = [i for i, line in enumerate(lines) if death in line]
        return bool(logged) and any(line.endswith(" serving") for line in lines[logged[0] :])

    await eventually(restarted)
    (new,) = (await plain_clients(url, 1, exclude=frozenset(clients))).values()
    await new.send("hello")
    assert await recv(new) == "hello"
    server.send_signal(signal.SIGTERM)
    for client in (new, other):
        assert await closed_code(client) == 1001
    assert await server.exited() == 0


async def test_workers_stop_when_the_supervisor_dies(serve_app: ServeApp) -> None:
    server, url = serving(serve_app, "handler", "--workers", "2")
    clients = await plain_clients(url, 2)
    server.process.kill()
    for ws in clients.values():
        assert await closed_code(ws) == 1001
    assert await server.exited() == -signal.SIGKILL

    async def gone() -> bool:
        return not any(_alive(pid) for pid in clients)

    await eventually(gone)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:  # pragma: no cover - no /proc
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


# Failures to start, in a subprocess


@pytest.mark.parametrize("workers", ["1", "2"])
def test_port_in_use(serve_app: ServeApp, workers: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        server = serve_app(APP, "app:handler", "--port", str(port), "--workers", workers)
        assert server.wait(STARTUP) == 1
    assert server.stdout == ""
    assert one_line(server.stderr) == (
        f"socketeer serve: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


@pytest.mark.parametrize("workers", ["1", "2"])
def test_import_error(serve_app: ServeApp, workers: str) -> None:
    server = serve_app(APP, "nowhere:handler", "--port", "0", "--workers", workers)
    assert server.wait(STARTUP) == 1
    assert server.stdout == ""
    assert one_line(server.stderr).startswith(
        "socketeer serve: cannot import nowhere: no module named 'nowhere'"
    )
