"""Behind reverse proxies: ``trusted_proxies``, the client's address from ``X-Forwarded-For``
(:class:`socketeer.server.TrustedProxies`, without sockets), and the asyncio server's
``remote_address`` and ``proxy_address``.

In the server tests the client plays the proxy: it connects from 127.0.0.1 and sends the
``X-Forwarded-For`` header a proxy would. ``tests/interop/test_nginx.py`` runs a real nginx.
"""

from __future__ import annotations

import ast
import asyncio
import logging
import re
import socket
from typing import Any

import pytest

from socketeer.asyncio.client import connect
from socketeer.asyncio.server import ServerConnection, serve
from socketeer.options import ServerOptions
from socketeer.protocol.http11 import Headers, Request, Response
from socketeer.server import TrustedProxies, format_client, forwarded_client

CLIENT = "203.0.113.7"
"""The client a proxy forwards, in the tests (a documentation address, RFC 5737)."""

PROXY = ("10.0.0.2", 41234)
"""The socket's peer, a proxy, in the tests without sockets."""


def headers(*lines: str) -> Headers:
    """Headers with one ``X-Forwarded-For`` line per argument."""
    result = Headers()
    for line in lines:
        result["X-Forwarded-For"] = line  # adds a line; does not replace
    return result


# The trusted_proxies option


class TestTrustedProxiesOption:
    def test_default_trusts_nobody(self) -> None:
        proxies = ServerOptions().proxies()
        assert not proxies
        assert not proxies.trusts(("127.0.0.1", 1234))
        assert not proxies.trusts("")

    @pytest.mark.parametrize(
        "entry", ["127.0.0.1", "::1", "10.0.0.0/8", "fd00::/8", "0.0.0.0/0", "unix"]
    )
    def test_valid(self, entry: str) -> None:
        assert ServerOptions(trusted_proxies=[entry]).proxies()

    @pytest.mark.parametrize(
        "entry", ["localhost", "10.0.0.1/8", "10.0.0.0/33", "", "127.0.0.1:8000", "UNIX", "*"]
    )
    def test_invalid_entry_named(self, entry: str) -> None:
        message = f"trusted_proxies entry {entry!r} is not an IP"
        with pytest.raises(ValueError, match=re.escape(message)):
            ServerOptions(trusted_proxies=["127.0.0.1", entry])

    def test_str_instead_of_a_sequence(self) -> None:
        with pytest.raises(TypeError, match="not a str: '127.0.0.1'"):
            ServerOptions(trusted_proxies="127.0.0.1")

    def test_entry_not_a_str(self) -> None:
        with pytest.raises(TypeError, match="must be strings, got 2130706433"):
            ServerOptions(trusted_proxies=[2130706433])  # type: ignore[list-item]

    async def test_checked_by_serve(self) -> None:
        with pytest.raises(ValueError, match="entry 'proxy.local' is not an IP address"):
            serve(echo_address, "127.0.0.1", 0, trusted_proxies=["proxy.local"])


# Who is a trusted proxy


class TestTrusts:
    proxies = TrustedProxies(["127.0.0.1", "10.0.0.0/8", "2001:db8:1::/48"])

    @pytest.mark.parametrize(
        "peer",
        [
            ("127.0.0.1", 1234),
            ("10.200.3.4", 1234),
            ("::ffff:10.1.2.3", 1234, 0, 0),  # a dual-stack socket's IPv4 peer
            ("2001:db8:1:2::5", 1234, 0, 0),
        ],
    )
    def test_trusted(self, peer: Any) -> None:
        assert self.proxies.trusts(peer)

    @pytest.mark.parametrize(
        "peer",
        [
            ("127.0.0.2", 1234),
            ("11.0.0.1", 1234),
            ("::1", 1234, 0, 0),  # trusting 127.0.0.1 does not trust ::1
            ("2001:db8:2::5", 1234, 0, 0),
            "",  # a Unix socket's peer
            b"",
            None,
            (),
            ("not an address", 1234),
        ],
    )
    def test_not_trusted(self, peer: Any) -> None:
        assert not self.proxies.trusts(peer)

    @pytest.mark.parametrize("peer", ["", "/run/nginx.sock", b"\0abstract"])
    def test_unix(self, peer: Any) -> None:
        assert TrustedProxies(["unix"]).trusts(peer)
        assert not TrustedProxies(["unix"]).trusts(("127.0.0.1", 1234))


# The client in X-Forwarded-For


class TestClientAddress:
    proxies = TrustedProxies(["10.0.0.0/8", "2001:db8:1::/48"])

    @pytest.mark.parametrize(
        ("lines", "client"),
        [
            ([CLIENT], CLIENT),
            # What the client sent itself is left of what the proxies added: not believed.
            ([f"6.6.6.6, {CLIENT}"], CLIENT),
            ([f"10.0.0.9, {CLIENT}"], CLIENT),  # even a trusted address
            ([f"6.6.6.6, {CLIENT}, 10.0.0.5"], CLIENT),  # past the trusted proxies
            ([f"{CLIENT},10.0.0.5,10.7.7.7"], CLIENT),
            # Several lines make one list, in order.
            (["6.6.6.6", f"{CLIENT}, 10.0.0.5"], CLIENT),
            ([f"6.6.6.6, {CLIENT}", "10.0.0.5"], CLIENT),
            ([CLIENT, "10.0.0.5", "10.0.0.6"], CLIENT),
            # When every address is trusted, the client is the leftmost.
            (["10.0.0.9, 10.0.0.5"], "10.0.0.9"),
            # Empty elements are skipped, as HTTP's list rule says.
            ([f", {CLIENT} ,, "], CLIENT),
            ([f" \t{CLIENT}\t"], CLIENT),
            # IPv6, normalized; IPv4-mapped IPv6 as IPv4.
            (["2001:DB8::0007"], "2001:db8::7"),
            (["2001:db8::7, 2001:db8:1::1"], "2001:db8::7"),
            ([f"::ffff:{CLIENT}"], CLIENT),
            (["fe80::7%eth0"], "fe80::7%eth0"),
            # With a port, as some proxies write them: the port is dropped.
            ([f"{CLIENT}:4711"], CLIENT),
            (["[2001:db8::7]:4711"], "2001:db8::7"),
            (["[2001:db8::7]"], "2001:db8::7"),
            (["[2001:db8::7]:4711, 10.0.0.5:80"], "2001:db8::7"),
            # What is left of the client is never read.
            ([f"unknown, <script>, {CLIENT}"], CLIENT),
        ],
    )
    def test_client(self, lines: list[str], client: str) -> None:
        assert self.proxies.client_address(PROXY, headers(*lines)) == (client, 0)

    @pytest.mark.parametrize("lines", [[], [""], [" , ,"], ["", ""]])
    def test_no_client(self, lines: list[str]) -> None:
        assert self.proxies.client_address(PROXY, headers(*lines)) is None

    def test_peer_not_trusted(self) -> None:
        for peer in [("127.0.0.1", 1234), ("11.0.0.1", 80), "", None]:
            assert self.proxies.client_address(peer, headers(CLIENT)) is None

    def test_unix_peer(self) -> None:
        proxies = TrustedProxies(["unix"])
        assert proxies.client_address("", headers(f"6.6.6.6, {CLIENT}")) == (CLIENT, 0)
        assert TrustedProxies(["10.0.0.0/8"]).client_address("", headers(CLIENT)) is None

    @pytest.mark.parametrize(
        "line",
        [
            "unknown",
            "_hidden",
            "unix:",
            "example.com",
            "203.0.113",
            "203.0.113.007",
            "203.0.113.7:",
            "203.0.113.7:http",
            "203.0.113.7:123456",
            "[203.0.113.7]",
            "[2001:db8::7",
            "[2001:db8::7]4711",
            "[2001:db8::7]:",
            "2001:db8::7]:4711",
            "2001:db8::7:4711:1:2:3:4:5",
            "203.0.113.7 10.0.0.5",
            f"{CLIENT}, 10.0.0.5, garbage",  # garbage where a proxy should have written
            f"{CLIENT}, garbage, 10.0.0.5",
        ],
    )
    def test_invalid(self, line: str) -> None:
        with pytest.raises(ValueError, match="invalid address in X-Forwarded-For"):
            self.proxies.client_address(PROXY, headers(line))

    def test_invalid_logged_and_ignored(self, caplog: pytest.LogCaptureFixture) -> None:
        logger = logging.getLogger("socketeer.server")
        with caplog.at_level(logging.WARNING, "socketeer.server"):
            assert forwarded_client(self.proxies, PROXY, headers("unknown"), logger) is None
        assert caplog.messages == [
            "ignored X-Forwarded-For from 10.0.0.2:41234: "
            "invalid address in X-Forwarded-For: 'unknown'"
        ]

    def test_forwarded_client(self) -> None:
        logger = logging.getLogger("socketeer.server")
        assert forwarded_client(self.proxies, PROXY, headers(CLIENT), logger) == (CLIENT, 0)
        nobody = TrustedProxies()
        assert forwarded_client(nobody, PROXY, headers(CLIENT), logger) is None

    def test_format_client(self) -> None:
        assert format_client((CLIENT, 0), PROXY) == f"{CLIENT} via 10.0.0.2:41234"
        assert format_client(("2001:db8::7", 0), "") == "2001:db8::7 via unix socket"
        assert format_client(PROXY, None) == "10.0.0.2:41234"


# The asyncio server


async def echo_address(connection: ServerConnection) -> None:
    """Send the connection's ``remote_address`` and ``proxy_address``."""
    await connection.send(repr((connection.remote_address, connection.proxy_address)))


async def addresses(uri: str, *lines: str, **options: Any) -> tuple[Any, Any]:
    """Connect with these ``X-Forwarded-For`` lines; what :func:`echo_address` says."""
    extra = [("X-Forwarded-For", line) for line in lines]
    async with connect(uri, additional_headers=extra, **options) as client:
        message = await asyncio.wait_for(client.recv(), 5)
        assert isinstance(message, str)
        local = client.local_address
    remote, proxy = ast.literal_eval(message)
    if proxy is not None:
        assert proxy == local  # the proxy is the socket's peer: the client of the test
    return remote, proxy


class TestServer:
    async def test_trusted_proxy(self) -> None:
        async with serve(echo_address, "127.0.0.1", 0, trusted_proxies=["127.0.0.1"]) as server:
            uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
            remote, proxy = await addresses(uri, f"6.6.6.6, {CLIENT}")
            assert remote == (CLIENT, 0)
            assert proxy[0] == "127.0.0.1"
            # Without X-Forwarded-For, the proxy's connection is its own.
            remote, proxy = await addresses(uri)
            assert remote[0] == "127.0.0.1" and remote[1] != 0
            assert proxy is None

    @pytest.mark.parametrize("trusted", [[], ["10.0.0.0/8", "::1", "unix"]])
    async def test_untrusted_peer(self, trusted: list[str]) -> None:
        async with serve(echo_address, "127.0.0.1", 0, trusted_proxies=trusted) as server:
            uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
            remote, proxy = await addresses(uri, CLIENT)
            assert remote[0] == "127.0.0.1" and remote[1] != 0
            assert proxy is None

    async def test_invalid_header_ignored(self, caplog: pytest.LogCaptureFixture) -> None:
        async with serve(echo_address, "127.0.0.1", 0, trusted_proxies=["127.0.0.1"]) as server:
            uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
            with caplog.at_level(logging.WARNING, "socketeer.server"):
                remote, proxy = await addresses(uri, "6.6.6.6, unknown")
        assert remote[0] == "127.0.0.1" and remote[1] != 0
        assert proxy is None
        (message,) = [m for m in caplog.messages if m.startswith("ignored X-Forwarded-For")]
        assert message.endswith("invalid address in X-Forwarded-For: 'unknown'")

    async def test_process_request_sees_the_client(self) -> None:
        seen: list[Any] = []

        def process_request(connection: ServerConnection, request: Request) -> Response | None:
            seen.append((connection.remote_address, connection.proxy_address))
            return None

        async with serve(
            echo_address,
            "127.0.0.1",
            0,
            process_request=process_request,
            trusted_proxies=["127.0.0.0/8"],
        ) as server:
            uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
            await addresses(uri, CLIENT)
        ((remote, proxy),) = seen
        assert remote == (CLIENT, 0)
        assert proxy[0] == "127.0.0.1"

    async def test_logs(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.INFO, "socketeer.server"):
            async with serve(
                echo_address, "127.0.0.1", 0, trusted_proxies=["127.0.0.1"]
            ) as server:
                uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
                _, proxy = await addresses(uri, CLIENT)
        via = f"{CLIENT} via 127.0.0.1:{proxy[1]}"
        assert f"connection open from {via}" in caplog.messages
        assert f"connection closed from {via} with code 1000" in caplog.messages

    async def test_ipv6(self) -> None:
        if not socket.has_ipv6:  # pragma: no cover
            pytest.skip("no IPv6")
        try:
            server = await serve(echo_address, "::1", 0, trusted_proxies=["::1"])
        except OSError:  # pragma: no cover
            pytest.skip("no IPv6 loopback")
        async with server:
            uri = f"ws://[::1]:{server.sockets[0].getsockname()[1]}/"
            remote, proxy = await addresses(uri, "2001:db8::7, 2001:db8::8")
            assert remote == ("2001:db8::8", 0)
            assert proxy[0] == "::1"

    @pytest.mark.parametrize(("trusted", "forwarded"), [(["unix"], True), (["::1"], False)])
    async def test_unix(self, unix_path: str, trusted: list[str], forwarded: bool) -> None:
        async with serve(echo_address, unix=unix_path, trusted_proxies=trusted):
            remote, proxy = await addresses("ws://localhost/", CLIENT, unix=unix_path)
        if forwarded:
            assert (remote, proxy) == ((CLIENT, 0), "")
        else:
            assert (remote, proxy) == ("", None)
