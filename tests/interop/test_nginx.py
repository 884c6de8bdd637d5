"""socketeer behind a real nginx, configured exactly as ``docs/deployment.md`` says.

Each test starts a socketeer server, then nginx in front of it (``tests/nginx_server.py``),
with the page's configuration blocks and the test's ports and paths, and talks to the server
through nginx only: messages of every kind (1 MiB too) with compression negotiated end to
end, RPC calls both ways, the origin check, rooms, the client's address from
``X-Forwarded-For``, an upstream on a Unix socket, TLS at nginx, and ``socketeer serve
--workers``. Without nginx, the tests skip (they fail under ``CI=true``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import socketeer
import socketeer.rpc
from nginx_server import Nginx, documented, require_nginx, substitute
from socketeer.asyncio.server import ServerConnection
from socketeer.exceptions import InvalidStatus
from socketeer.pubsub import MESSAGE_METHOD, Rooms
from socketeer.rpc import RPC, SUBPROTOCOL, current_peer

from .peers import MS, TIMEOUT, extension_names, run, within

MiB = 1024 * 1024

LISTEN = "listen 80;"
"""The ``listen`` line of the documented site, which the tests replace with theirs."""
UPSTREAM = "server 127.0.0.1:8000;"
"""The documented upstream server, which the tests replace with theirs."""
UNIX_UPSTREAM = "server unix:/run/socketeer/socketeer.sock;"
"""The documented upstream server on a Unix socket."""

STARTUP = 20_000 * MS
"""Longest ``socketeer serve --workers 2`` may take to serve: two Python processes start."""

StartNginx = Callable[..., Nginx]


# nginx, configured as the documentation says


@pytest.fixture(scope="module")
def nginx_executable() -> str:
    return require_nginx()


@pytest.fixture
def nginx(nginx_executable: str, tmp_path: Path) -> Iterator[StartNginx]:
    """Start nginx in front of an upstream: ``start(upstream, tls=None, site=None)``.

    ``upstream`` is a TCP port on 127.0.0.1, or a Unix socket path; ``tls`` the paths of a
    certificate chain and its key, to serve TLS as the page's TLS block says; ``site``
    another text for the page's site block. Stopped at the end of the test.
    """
    started: list[Nginx] = []

    def start(
        upstream: int | str, tls: tuple[Path, Path] | None = None, site: str | None = None
    ) -> Nginx:
        text = documented("site") if site is None else site
        if isinstance(upstream, int):
            text = substitute(text, UPSTREAM, f"server 127.0.0.1:{upstream};")
        else:
            # The page's upstream block on a Unix socket, in place of the one on TCP.
            unix_block = documented("unix")
            tcp_block = substitute(unix_block, UNIX_UPSTREAM, UPSTREAM)
            path = UNIX_UPSTREAM.replace("/run/socketeer/socketeer.sock", upstream)
            text = substitute(text, tcp_block, substitute(unix_block, UNIX_UPSTREAM, path))
        listen = "listen 127.0.0.1:{port};"
        if tls is not None:
            certificate, key = tls
            listen = documented("tls").strip()
            listen = substitute(listen, "listen 443 ssl;", "listen 127.0.0.1:{port} ssl;")
            listen = re.sub(r"ssl_certificate +\S+;", f"ssl_certificate {certificate};", listen)
            listen = re.sub(r"ssl_certificate_key +\S+;", f"ssl_certificate_key {key};", listen)
        text = substitute(text, LISTEN, listen)
        server = Nginx(nginx_executable, tmp_path / f"nginx-{len(started)}", text)
        server.directory.mkdir()
        started.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def listener() -> tuple[socket.socket, int]:
    """A listening socket for the socketeer server on 127.0.0.1, and its port: nginx can
    be told the port before the server starts."""
    sock = socket.create_server(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


# The application


async def hello_then_echo(connection: ServerConnection) -> None:
    """Say what the server sees of the connection, then echo every message."""
    await connection.send(
        json.dumps(
            {
                "remote_address": connection.remote_address,
                "proxy_address": connection.proxy_address,
                "extensions": extension_names(connection),
                "host": connection.request.headers.get("Host") if connection.request else None,
            }
        )
    )
    async for message in connection:
        await connection.send(message)


async def hello(ws: socketeer.ClientConnection) -> dict[str, Any]:
    message = await within(ws.recv())
    assert isinstance(message, str)
    result: dict[str, Any] = json.loads(message)
    return result


def rpc_app(rooms: Rooms | None = None) -> RPC:
    """An RPC app whose methods call the client back and tell its address."""
    rpc = RPC(rooms=rooms)

    @rpc.method
    def add(a: int, b: int) -> int:
        return a + b

    @rpc.method
    async def double_by_the_client(x: int) -> Any:
        return await current_peer().call("double", x)

    @rpc.method
    def address() -> Any:
        return current_peer().connection.remote_address

    return rpc


def client_routes() -> socketeer.rpc.Routes:
    routes = socketeer.rpc.Routes()

    @routes.method
    def double(x: int) -> int:
        return 2 * x

    return routes


# Messages


def test_echo(nginx: StartNginx) -> None:
    sock, port = listener()
    proxy = nginx(port)
    url = f"ws://127.0.0.1:{proxy.port}/chat"
    messages: list[str | bytes] = [
        "",
        "hello",
        "héllo wörld € 𝄞",
        b"\x00\x01\xfe\xff",
        os.urandom(70_000),
        "€" * (MiB // 3),  # 1 MiB of text, with repeats that compress
        os.urandom(MiB),  # 1 MiB that does not
    ]

    async def main() -> None:
        async with (
            socketeer.serve(hello_then_echo, sock=sock, trusted_proxies=["127.0.0.1"]),
            socketeer.connect(url, max_size=2 * MiB) as ws,
        ):
            seen = await hello(ws)
            # permessage-deflate, negotiated between the client and socketeer, through nginx
            assert seen["extensions"] == ["permessage-deflate"]
            assert extension_names(ws) == ["permessage-deflate"]
            assert seen["host"] == f"127.0.0.1:{proxy.port}"  # $http_host: with the port
            for message in messages:
                await ws.send(message)
                assert await within(ws.recv()) == message
            # Pipelined, then read back in order.
            for message in messages:
                await ws.send(message)
            for message in messages:
                assert await within(ws.recv()) == message
            await ws.close()
            assert ws.close_code == 1000

    run(main())


def test_without_http_1_1(nginx: StartNginx) -> None:
    """As the page says: without ``proxy_http_version 1.1``, every request gets 400."""
    site = substitute(documented("site"), "proxy_http_version 1.1;\n", "")
    sock, port = listener()
    proxy = nginx(port, site=site)

    async def main() -> None:
        async with socketeer.serve(hello_then_echo, sock=sock):
            with pytest.raises(InvalidStatus) as raised:
                await socketeer.connect(f"ws://127.0.0.1:{proxy.port}/")
            assert raised.value.response.status_code == 400

    run(main())


# The client's address


def test_remote_address(nginx: StartNginx, caplog: pytest.LogCaptureFixture) -> None:
    sock, port = listener()
    proxy = nginx(port)
    url = f"ws://127.0.0.1:{proxy.port}/"

    async def main() -> None:
        async with socketeer.serve(hello_then_echo, sock=sock, trusted_proxies=["127.0.0.1"]):
            async with socketeer.connect(url) as ws:
                seen = await hello(ws)
            # The client, 127.0.0.1 too (through X-Forwarded-For); nginx, the socket's peer.
            assert seen["remote_address"] == ["127.0.0.1", 0]
            nginx_host, nginx_port = seen["proxy_address"]
            assert nginx_host == "127.0.0.1" and nginx_port not in (0, proxy.port)
            await until_logged(
                caplog, f"connection open from 127.0.0.1 via 127.0.0.1:{nginx_port}"
            )

    with caplog.at_level("INFO", "socketeer.server"):
        run(main())


def test_forged_x_forwarded_for(nginx: StartNginx) -> None:
    """A client that is not a trusted proxy cannot choose its address: nginx appends the
    one it sees, the rightmost that is not trusted, and that is what socketeer believes."""
    sock, port = listener()
    proxy = nginx(port)
    url = f"ws://127.0.0.1:{proxy.port}/"
    client = socket.socket()
    try:
        client.bind(("127.0.0.2", 0))  # the loopback, but not the trusted 127.0.0.1
        client.connect(("127.0.0.1", proxy.port))
    except OSError:  # pragma: no cover - not every system routes 127.0.0.0/8 to loopback
        client.close()
        pytest.skip("cannot connect from 127.0.0.2")
    # Made up: a client, and a trusted proxy it pretends to have come through.
    forged = [("X-Forwarded-For", "6.6.6.6, 127.0.0.1")]

    async def main() -> None:
        async with (
            socketeer.serve(hello_then_echo, sock=sock, trusted_proxies=["127.0.0.1"]),
            socketeer.connect(url, sock=client, additional_headers=forged) as ws,
        ):
            seen = await hello(ws)
            assert seen["remote_address"] == ["127.0.0.2", 0]
            assert seen["proxy_address"][0] == "127.0.0.1"

    run(main())


def test_not_trusted(nginx: StartNginx) -> None:
    """Without ``trusted_proxies``, the client's address is nginx's."""
    sock, port = listener()
    proxy = nginx(port)

    async def main() -> None:
        async with (
            socketeer.serve(hello_then_echo, sock=sock),
            socketeer.connect(f"ws://127.0.0.1:{proxy.port}/") as ws,
        ):
            seen = await hello(ws)
            host, nginx_port = seen["remote_address"]
            assert host == "127.0.0.1" and nginx_port not in (0, proxy.port)
            assert seen["proxy_address"] is None

    run(main())


async def until_logged(caplog: pytest.LogCaptureFixture, message: str) -> None:
    async def poll() -> None:
        while message not in caplog.messages:
            await asyncio.sleep(MS)

    await within(poll())


# RPC


def test_rpc(nginx: StartNginx) -> None:
    sock, port = listener()
    proxy = nginx(port)
    url = f"ws://127.0.0.1:{proxy.port}/rpc"
    page = f"http://127.0.0.1:{proxy.port}"  # the origin of a page nginx serves

    async def main() -> None:
        async with socketeer.serve(rpc_app(), sock=sock, trusted_proxies=["127.0.0.1"]):
            async with socketeer.rpc.connect(url, routes=client_routes(), origin=page) as peer:
                assert await within(peer.call("add", 1, 2)) == 3
                assert await within(peer.call("double_by_the_client", 21)) == 42
                assert await within(peer.call("address")) == ["127.0.0.1", 0]
            # A page of another origin: refused.
            for origin in ["http://evil.example", f"http://127.0.0.1:{port}"]:
                with pytest.raises(InvalidStatus) as raised:
                    await socketeer.rpc.connect(url, origin=origin)
                assert raised.value.response.status_code == 403
            # Plain HTTP through the same location: the browser client.
            status, body = await asyncio.to_thread(fetch, f"{page}/socketeer.js")
            assert status == 200 and b"export class RPC" in body

    run(main())


def fetch(url: str, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=TIMEOUT, context=context) as response:
        return response.status, response.read()


def test_rooms(nginx: StartNginx) -> None:
    sock, port = listener()
    proxy = nginx(port)
    url = f"ws://127.0.0.1:{proxy.port}/rpc"

    async def main() -> None:
        async with (
            Rooms() as rooms,
            socketeer.serve(rpc_app(rooms), sock=sock, trusted_proxies=["127.0.0.1"]),
            socketeer.connect(url, subprotocols=[SUBPROTOCOL]) as ws,
        ):
            join = {"jsonrpc": "2.0", "method": "$/room/join", "params": {"room": "news"}, "id": 1}
            await ws.send(json.dumps(join))
            answer = json.loads(await within(ws.recv()))
            assert answer["id"] == 1 and answer["result"]["offset"] == 0
            await rooms.publish("news", {"headline": "through nginx"})
            message = json.loads(await within(ws.recv()))
            assert message["method"] == MESSAGE_METHOD
            assert message["params"]["room"] == "news"
            assert message["params"]["offset"] == 1
            assert message["params"]["data"] == {"headline": "through nginx"}

    run(main())


# Other upstreams and TLS


def test_unix_upstream(nginx: StartNginx, unix_path: str) -> None:
    proxy = nginx(unix_path)

    async def main() -> None:
        async with (
            socketeer.serve(hello_then_echo, unix=unix_path, trusted_proxies=["unix"]),
            socketeer.connect(f"ws://127.0.0.1:{proxy.port}/") as ws,
        ):
            seen = await hello(ws)
            assert seen["remote_address"] == ["127.0.0.1", 0]
            assert seen["proxy_address"] == ""
            await ws.send("over a Unix socket")
            assert await within(ws.recv()) == "over a Unix socket"

    run(main())


def test_tls(
    nginx: StartNginx, certificate_authority: Any, client_ssl: ssl.SSLContext, tmp_path: Path
) -> None:
    _, certificate = certificate_authority
    chain, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    for blob in certificate.cert_chain_pems:
        blob.write_to_path(str(chain), append=True)
    certificate.private_key_pem.write_to_path(str(key))
    sock, port = listener()
    proxy = nginx(port, tls=(chain, key))
    page = f"https://127.0.0.1:{proxy.port}"

    async def main() -> None:
        async with socketeer.serve(rpc_app(), sock=sock, trusted_proxies=["127.0.0.1"]):
            url = f"wss://127.0.0.1:{proxy.port}/rpc"
            async with socketeer.rpc.connect(url, ssl=client_ssl, origin=page) as peer:
                assert await within(peer.call("address")) == ["127.0.0.1", 0]
            with pytest.raises(InvalidStatus) as raised:
                await socketeer.rpc.connect(url, ssl=client_ssl, origin="https://evil.example")
            assert raised.value.response.status_code == 403
            status, _ = await asyncio.to_thread(fetch, f"{page}/socketeer.js", client_ssl)
            assert status == 200

    run(main())


# socketeer serve --workers


WORKERS_APP = """
import os
from socketeer.rpc import RPC, current_peer

rpc = RPC()


@rpc.method
def whoami():
    return [os.getpid(), current_peer().connection.remote_address]
"""


@pytest.mark.skipif(sys.platform == "win32", reason="workers need a POSIX system")
def test_workers(nginx: StartNginx, tmp_path: Path) -> None:
    (tmp_path / "workers_app.py").write_text(WORKERS_APP)
    command = [sys.executable, "-m", "socketeer", "serve", "workers_app:rpc", "--port", "0"]
    command += ["--workers", "2", "--trusted-proxy", "127.0.0.1", "--log-level", "warning"]
    with serve_process(command, tmp_path) as port:
        proxy = nginx(port)
        url = f"ws://127.0.0.1:{proxy.port}/"

        async def main() -> None:
            # Which worker gets which connection is up to the kernel: each must know nginx.
            for _ in range(4):
                async with socketeer.rpc.connect(url) as peer:
                    _, address = await within(peer.call("whoami"))
                    assert address == ["127.0.0.1", 0]

        run(main())


@contextlib.contextmanager
def serve_process(command: list[str], directory: Path) -> Iterator[int]:
    """Run ``socketeer serve``; yield the port it prints; stop it with SIGTERM."""
    process = subprocess.Popen(
        command, cwd=directory, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], STARTUP)
        assert ready, "socketeer serve did not start"
        line = process.stdout.readline()  # one line, once every worker serves
        match = re.fullmatch(r"socketeer serve: ws://127\.0\.0\.1:(\d+)/\n", line)
        assert match, f"unexpected output: {line!r}"
        yield int(match[1])
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
