"""``socketeer serve --trusted-proxy``: its checks (in-process, through ``main(argv)``), and
the server it runs (in a subprocess), which believes ``X-Forwarded-For`` from those proxies.

``tests/interop/test_nginx.py`` runs it with ``--workers`` behind a real nginx.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Callable

import pytest
from cli_helpers import ServeProcess, recv

import socketeer
from socketeer.cli import main
from socketeer.cli import serve as serve_command

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")

APP = """
async def handler(ws):
    await ws.send(repr((ws.remote_address, ws.proxy_address)))
"""


@pytest.mark.parametrize("value", ["localhost", "10.0.0.1/8", "127.0.0.1:8000", ""])
def test_invalid(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "app:handler", "--trusted-proxy", "127.0.0.1", "--trusted-proxy", value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert (
        f"error: argument --trusted-proxy: expected an IP address, a network such as "
        f"10.0.0.0/8, or unix, got {value!r}"
    ) in err


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve_command.add_arguments(parser)
    return parser.parse_args(["app:handler", *argv])


def test_parsed() -> None:
    assert parse().trusted_proxies is None
    args = parse("--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "unix")
    assert args.trusted_proxies == ["10.0.0.0/8", "unix"]


def test_given_to_workers() -> None:
    args = parse("--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "::1", "--workers", "2")
    command = serve_command._worker_command(args, [3], 4)
    at = command.index("--trusted-proxy")
    assert command[at : at + 4] == ["--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "::1"]
    assert "--trusted-proxy" not in serve_command._worker_command(parse(), [3], 4)


async def test_serve(serve_app: Callable[..., ServeProcess]) -> None:
    server = serve_app(APP, "app:handler", "--port", "0", "--trusted-proxy", "127.0.0.1")
    url = server.url()
    headers = [("X-Forwarded-For", "6.6.6.6, 203.0.113.7")]
    async with socketeer.connect(url, additional_headers=headers) as ws:
        remote, proxy = ast.literal_eval(str(await recv(ws)))
        local = ws.local_address
    assert remote == ("203.0.113.7", 0)
    assert proxy == local
