"""Interoperability with Node's ws package, both ways.

socketeer's client talks to ``node/server.mjs`` (a ws server, started by the ``ws_server``
fixture); ws' client, ``node/client.mjs``, talks to socketeer's server (both scripts are
described at their top). With permessage-deflate on, both scripts compress every message,
however small, unless a test sets ws' default threshold (1 KiB) to mix compressed and
uncompressed messages on one connection.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import socketeer
from socketeer.protocol.frames import OP_BINARY, OP_CONT, OP_TEXT
from socketeer.typedefs import Subprotocol

from .peers import (
    MESSAGES,
    NodeClient,
    NodeServer,
    deflate_parameters,
    extension_names,
    many_messages,
    node_executable,
    run,
    socketeer_server,
    within,
)

MiB = 1024 * 1024
DEFLATE = ["permessage-deflate"]
COMPRESSION = [pytest.param("deflate", id="deflate"), pytest.param(None, id="no_compression")]
# How the Node peer compresses: every message, only those over 1 KiB (ws' default, so that
# compressed and uncompressed messages mix on one connection), or none.
NODE_COMPRESSION = [
    pytest.param([], id="deflate"),
    pytest.param(["--deflate-options", '{"threshold": 1024}'], id="deflate_over_1_KiB"),
    pytest.param(["--no-deflate"], id="no_compression"),
]


# 1 MiB: exactly socketeer's default max_size, which lets it through.
LARGE: list[str | bytes] = [os.urandom(MiB), ("socketeer ❤ ws " * MiB).encode()[:MiB].decode()]

CLOSES = [
    pytest.param(1000, "", id="1000"),
    pytest.param(1001, "going away", id="1001"),
    pytest.param(3000, "registered", id="3000"),
    pytest.param(4000, "r" * 123, id="4000_longest_reason"),
    pytest.param(4999, "privé ✓", id="4999_utf8_reason"),
]


@pytest.fixture(scope="session")
def node() -> str:
    """The ``node`` executable, with the ws package installed."""
    return node_executable()


@pytest.fixture
def ws_server(node: str) -> Iterator[Callable[..., NodeServer]]:
    """Start ws servers with arguments for ``server.mjs``; stop them after the test."""
    servers: list[NodeServer] = []

    def start(*args: str) -> NodeServer:
        server = NodeServer(node, *args)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def node_args(compression: str | None) -> list[str]:
    return [] if compression == "deflate" else ["--no-deflate"]


def digest(message: str | bytes) -> tuple[bool, int, str]:
    """What a message is, as ``client.mjs`` prints it: binary, size, SHA-256."""
    data = message.encode() if isinstance(message, str) else message
    return isinstance(message, bytes), len(data), hashlib.sha256(data).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def command(message: str | bytes) -> dict[str, Any]:
    """The ``client.mjs`` command that sends ``message``."""
    if isinstance(message, str):
        return {"op": "send", "text": message}
    return {"op": "send", "b64": b64(message)}


def received(event: dict[str, Any]) -> tuple[bool, int, str]:
    """The digest of a message event of ``client.mjs``."""
    assert event["event"] == "message"
    return event["binary"], event["size"], event["sha256"]


async def echo(connection: socketeer.ServerConnection) -> None:
    async for message in connection:
        await connection.send(message)


# ws' perMessageDeflate options: what it imposes as a server, or asks for as a client.
DEFLATE_OPTIONS = [
    pytest.param({"serverNoContextTakeover": True}, id="server_no_context_takeover"),
    pytest.param({"clientNoContextTakeover": True}, id="client_no_context_takeover"),
    pytest.param({"serverMaxWindowBits": 9}, id="server_window_9"),
    pytest.param({"clientMaxWindowBits": 9}, id="client_window_9"),
    pytest.param(
        {
            "serverNoContextTakeover": True,
            "clientNoContextTakeover": True,
            "serverMaxWindowBits": 10,
            "clientMaxWindowBits": 11,
        },
        id="all",
    ),
]


def check_deflate_options(options: dict[str, Any], agreed: dict[str, Any], side: str) -> None:
    """Check what a socketeer connection agreed on against ws' options (RFC 7692 section 7.1).

    ``side`` is socketeer's side. Window sizes are maxima, which the other side may lower;
    the ws client's offer of ``client_no_context_takeover`` is only a hint.
    """
    for option, value in options.items():
        owner = "server" if option.startswith("server") else "client"
        param = "local" if owner == side else "remote"
        if option.endswith("NoContextTakeover"):
            if side == "client" or owner == "server":
                assert agreed[f"{param}_no_context_takeover"] is True, option
        else:
            assert agreed[f"{param}_max_window_bits"] <= value, option


# socketeer's client, ws' server


@pytest.mark.parametrize("server_args", NODE_COMPRESSION)
@pytest.mark.parametrize("client_compression", COMPRESSION)
def test_client_echo(
    ws_server: Callable[..., NodeServer], server_args: list[str], client_compression: str | None
) -> None:
    """Text stays text, binary stays binary, and every byte arrives, both ways.

    With compression, one message in three goes uncompressed (``compress=False``).
    """
    server = ws_server(*server_args)

    async def main() -> list[str]:
        async with socketeer.connect(server.url(), compression=client_compression) as client:
            for i, message in enumerate([*MESSAGES, *LARGE]):
                await within(client.send(message, compress=i % 3 != 0))
                echoed = await within(client.recv())
                assert type(echoed) is type(message)
                assert digest(echoed) == digest(message)
            return extension_names(client)

    extensions = run(main())
    both = "--no-deflate" not in server_args and client_compression is not None
    assert extensions == (DEFLATE if both else [])
    assert server.expect("open")["extensions"] == ",".join(extensions)
    assert server.expect("close")["code"] == 1000


@pytest.mark.parametrize("options", DEFLATE_OPTIONS)
def test_client_deflate_parameters(
    ws_server: Callable[..., NodeServer], options: dict[str, Any]
) -> None:
    """socketeer's client follows the permessage-deflate parameters ws' server answers with,
    message after message (a compressor that ignored them would break ws' decompressor)."""
    server = ws_server("--deflate-options", json.dumps(options))

    async def main() -> dict[str, Any]:
        async with socketeer.connect(server.url()) as client:
            for message in MESSAGES:
                await within(client.send(message))
                assert await within(client.recv()) == message
            return deflate_parameters(client)

    check_deflate_options(options, run(main()), "client")
    assert server.expect("close")["code"] == 1000


@pytest.mark.parametrize("compression", COMPRESSION)
def test_client_many_messages_in_flight(
    ws_server: Callable[..., NodeServer], compression: str | None
) -> None:
    """Hundreds of messages in flight both ways arrive whole and in order, while flow control
    pauses and resumes both sides."""
    server = ws_server(*node_args(compression))
    messages = many_messages()

    async def main() -> list[str | bytes]:
        async with socketeer.connect(server.url(), compression=compression) as client:

            async def send_all() -> None:
                for message in messages:
                    await client.send(message)

            sender = asyncio.create_task(send_all())
            received = [await within(client.recv()) for _ in messages]
            await within(sender)
        return received

    received = run(main())
    assert [digest(message) for message in received] == [digest(m) for m in messages]


@pytest.mark.parametrize("compression", COMPRESSION)
@pytest.mark.parametrize(
    "fragments",
    [
        pytest.param(["héllo", "", " wörld", " €𝄞"], id="text"),
        pytest.param([b"\x00\x01", b"", b"\xfe\xff" * 1000], id="binary"),
    ],
)
def test_client_sends_fragmented_message(
    ws_server: Callable[..., NodeServer], compression: str | None, fragments: list[Any]
) -> None:
    """ws joins the fragments socketeer sends into one message."""
    server = ws_server(*node_args(compression))
    whole = "".join(fragments) if isinstance(fragments[0], str) else b"".join(fragments)

    async def main() -> None:
        async with socketeer.connect(server.url(), compression=compression) as client:
            await within(client.send(fragments))
            assert await within(client.recv()) == whole

    run(main())
    assert server.expect("message")["size"] == len(whole.encode() if type(whole) is str else whole)


@pytest.mark.parametrize("compression", COMPRESSION)
@pytest.mark.parametrize(
    "message",
    [
        # Cut in three by bytes: the frames end inside "é" and inside "€".
        pytest.param("hé€", id="text_cut_inside_utf8"),
        pytest.param("fragmented ❤ " * 1000, id="long_text"),
        pytest.param(bytes(range(256)) * 10, id="binary"),
    ],
)
def test_client_receives_fragmented_message(
    ws_server: Callable[..., NodeServer], compression: str | None, message: str | bytes
) -> None:
    """socketeer receives ws' fragmented messages frame by frame, or joined by recv()."""
    server = ws_server(*node_args(compression))
    data = message.encode() if isinstance(message, str) else message
    opcode = OP_TEXT if isinstance(message, str) else OP_BINARY

    async def main() -> None:
        async with socketeer.connect(server.url("/fragment"), compression=compression) as client:
            await within(client.send(message))
            frames = [await within(client.recv_frame()) for _ in range(3)]
            assert [frame.opcode for frame in frames] == [opcode, OP_CONT, OP_CONT]
            assert [frame.fin for frame in frames] == [False, False, True]
            assert b"".join(frame.data for frame in frames) == data
            await within(client.send(message))
            assert await within(client.recv()) == message

    run(main())


@pytest.mark.parametrize("compression", COMPRESSION)
@pytest.mark.parametrize("receiver", ["server", "client"])
def test_client_message_over_max_size(
    ws_server: Callable[..., NodeServer], compression: str | None, receiver: str
) -> None:
    """A message of the limit's size passes; one byte more fails with 1009, both ways.

    The messages compress well, so with compression the limits apply after decompression.
    """
    limit = 1024
    fits, too_big = b"a" * limit, b"b" * (limit + 1)
    limit_args = ["--max-payload", str(limit)] if receiver == "server" else []
    server = ws_server(*node_args(compression), *limit_args)
    client_limit = limit if receiver == "client" else None

    async def main() -> tuple[int | None, str | None]:
        async with socketeer.connect(
            server.url(), compression=compression, max_size=client_limit
        ) as client:
            await within(client.send(fits))
            assert await within(client.recv()) == fits
            await within(client.send(too_big))
            with pytest.raises(socketeer.ConnectionClosedError):
                await within(client.recv())
            await within(client.wait_closed())
            return client.close_code, client.close_reason

    close_code, _ = run(main())
    if receiver == "server":
        assert close_code == 1009  # received from ws
    else:
        assert server.expect("close")["code"] == 1009  # received from socketeer


@pytest.mark.parametrize("initiator", ["server", "client"])
@pytest.mark.parametrize(("code", "reason"), CLOSES)
def test_client_close(
    ws_server: Callable[..., NodeServer], initiator: str, code: int, reason: str
) -> None:
    """The side that did not start the closing handshake sees its code and reason; the side
    that did sees its own code echoed."""
    server = ws_server()
    query = urllib.parse.urlencode({"code": code, "reason": reason})

    async def main() -> tuple[int | None, str | None]:
        if initiator == "client":
            async with socketeer.connect(server.url()) as client:
                await within(client.close(code, reason))
        else:
            async with socketeer.connect(server.url(f"/close?{query}")) as client:
                with pytest.raises(socketeer.ConnectionClosed) as raised:
                    await within(client.recv())
                normal = code in (1000, 1001)
                assert isinstance(raised.value, socketeer.ConnectionClosedOK) is normal
                await within(client.wait_closed())
        return client.close_code, client.close_reason

    client_close = run(main())
    server_close = server.expect("close")
    if initiator == "client":
        assert (server_close["code"], server_close["reason"]) == (code, reason)
        assert client_close[0] == code
    else:
        assert client_close == (code, reason)
        assert server_close["code"] == code


def test_client_close_without_code(ws_server: Callable[..., NodeServer]) -> None:
    """An empty close frame from ws' server reads as 1005 (no status received), a normal
    closure."""
    server = ws_server()

    async def main() -> tuple[int | None, str | None]:
        async with socketeer.connect(server.url("/close")) as client:
            with pytest.raises(socketeer.ConnectionClosedOK):
                await within(client.recv())
            await within(client.wait_closed())
            return client.close_code, client.close_reason

    assert run(main()) == (1005, "")
    assert server.expect("close")["code"] == 1005


@pytest.mark.parametrize("pinger", ["server", "client"])
def test_client_ping(ws_server: Callable[..., NodeServer], pinger: str) -> None:
    """Pings are answered with the same payload, both ways."""
    server = ws_server()

    async def main() -> None:
        path = "/ping?text=from+ws" if pinger == "server" else "/"
        async with socketeer.connect(server.url(path)) as client:
            if pinger == "client":
                latency = await within(await within(client.ping(b"from socketeer")))
                assert isinstance(latency, float)
            await within(client.send("after ping"))
            assert await within(client.recv()) == "after ping"

    run(main())
    if pinger == "server":
        assert server.expect("pong")["text"] == "from ws"


def test_client_subprotocol(ws_server: Callable[..., NodeServer]) -> None:
    """Both ends agree on the subprotocol the server picks from the client's offer."""
    server = ws_server("--subprotocol", "chat.v2", "--subprotocol", "chat.v1")

    async def main() -> str | None:
        offered = [Subprotocol("chat.v3"), Subprotocol("chat.v1")]
        async with socketeer.connect(server.url(), subprotocols=offered) as client:
            return client.subprotocol

    assert run(main()) == "chat.v1"
    assert server.expect("open")["protocol"] == "chat.v1"


# ws' client, socketeer's server


@pytest.mark.parametrize("server_compression", COMPRESSION)
@pytest.mark.parametrize("client_args", NODE_COMPRESSION)
def test_server_echo(node: str, server_compression: str | None, client_args: list[str]) -> None:
    """Text stays text, binary stays binary, and every byte arrives, both ways.

    With compression, one message in three goes uncompressed (``compress=False``).
    """

    async def main() -> None:
        server_extensions: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()

        async def handler(connection: socketeer.ServerConnection) -> None:
            server_extensions.set_result(extension_names(connection))
            i = 0
            async for message in connection:
                await connection.send(message, compress=i % 3 != 0)
                i += 1

        async with socketeer_server(handler, compression=server_compression) as uri:
            async with NodeClient.connect(node, uri, *client_args) as client:
                opened = await client.expect("open")
                for message in [*MESSAGES, *LARGE]:
                    await client.send(**command(message))
                    assert received(await client.expect("message")) == digest(message)
                await client.send(op="close", code=1000)
                assert (await client.expect("close"))["code"] == 1000

        extensions = await within(server_extensions)
        both = server_compression is not None and "--no-deflate" not in client_args
        assert extensions == (DEFLATE if both else [])
        assert opened["extensions"] == ",".join(extensions)

    run(main())


@pytest.mark.parametrize("options", DEFLATE_OPTIONS)
def test_server_deflate_parameters(node: str, options: dict[str, Any]) -> None:
    """socketeer's server accepts the permessage-deflate parameters ws' client offers and
    follows them, message after message."""

    async def main() -> dict[str, Any]:
        on_server: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        async def handler(connection: socketeer.ServerConnection) -> None:
            on_server.set_result(deflate_parameters(connection))
            await echo(connection)

        async with socketeer_server(handler) as uri:
            args = ["--deflate-options", json.dumps(options)]
            async with NodeClient.connect(node, uri, *args) as client:
                assert (await client.expect("open"))["extensions"] == "permessage-deflate"
                for message in MESSAGES:
                    await client.send(**command(message))
                    assert received(await client.expect("message")) == digest(message)
                await client.send(op="close", code=1000)
                assert (await client.expect("close"))["code"] == 1000
        return await within(on_server)

    check_deflate_options(options, run(main()), "server")


@pytest.mark.parametrize("compression", COMPRESSION)
def test_server_many_messages_in_flight(node: str, compression: str | None) -> None:
    """Hundreds of messages in flight both ways arrive whole and in order, while flow control
    pauses and resumes both sides."""
    messages = many_messages()

    async def main() -> None:
        async with socketeer_server(echo, compression=compression) as uri:
            async with NodeClient.connect(node, uri, *node_args(compression)) as client:

                async def send_all() -> None:
                    for message in messages:
                        await client.send(**command(message))

                sender = asyncio.create_task(send_all())
                for message in messages:
                    assert received(await client.expect("message")) == digest(message)
                await within(sender)

    run(main())


@pytest.mark.parametrize("compression", COMPRESSION)
@pytest.mark.parametrize(
    ("fragments", "binary"),
    [
        pytest.param(["héllo", "", " wörld", " €𝄞"], False, id="text"),
        pytest.param([b"\x00\x01", b"", b"\xfe\xff" * 1000], True, id="binary"),
    ],
)
def test_server_fragmented_messages(
    node: str, compression: str | None, fragments: list[Any], binary: bool
) -> None:
    """socketeer receives ws' fragments frame by frame; ws joins socketeer's fragments."""

    async def main() -> None:
        on_server: asyncio.Future[list[socketeer.Frame]] = (
            asyncio.get_running_loop().create_future()
        )

        async def handler(connection: socketeer.ServerConnection) -> None:
            frames = [await connection.recv_frame()]
            while not frames[-1].fin:
                frames.append(await connection.recv_frame())
            on_server.set_result(frames)
            parts = [frame.data for frame in frames]
            await connection.send(parts if binary else [part.decode() for part in parts])
            await echo(connection)

        whole = b"".join(fragments) if binary else "".join(fragments)
        async with socketeer_server(handler, compression=compression) as uri:
            async with NodeClient.connect(node, uri, *node_args(compression)) as client:
                if binary:
                    await client.send(op="send", fragments_b64=[b64(f) for f in fragments])
                else:
                    await client.send(op="send", fragments=fragments)
                frames = await within(on_server)
                assert [frame.opcode for frame in frames] == [
                    OP_BINARY if binary else OP_TEXT,
                    *[OP_CONT] * (len(fragments) - 1),
                ]
                assert [frame.fin for frame in frames] == [False] * (len(fragments) - 1) + [True]
                data = [f if binary else f.encode() for f in fragments]
                assert [frame.data for frame in frames] == data
                assert received(await client.expect("message")) == digest(whole)

    run(main())


@pytest.mark.parametrize("compression", COMPRESSION)
def test_server_receives_text_frames_cut_inside_utf8(node: str, compression: str | None) -> None:
    """A text message may be cut anywhere, even inside a character: here, one byte a frame."""
    message = "hé€𝄞"

    async def main() -> None:
        async with socketeer_server(echo, compression=compression) as uri:
            async with NodeClient.connect(node, uri, *node_args(compression)) as client:
                parts = [b64(bytes([byte])) for byte in message.encode()]
                await client.send(op="send", fragments_b64=parts, binary=False)
                assert (await client.expect("message"))["text"] == message

    run(main())


@pytest.mark.parametrize(
    "parts",
    [
        pytest.param([b"\xff"], id="invalid_byte"),
        pytest.param([b"\xed\xa0\x80"], id="surrogate"),
        pytest.param([b"caf\xc3", b"("], id="invalid_across_frames"),
        pytest.param([b"caf\xc3"], id="truncated_at_end"),
    ],
)
def test_server_invalid_utf8_fails_with_1007(node: str, parts: list[bytes]) -> None:
    """socketeer fails the connection with 1007 when ws sends a text message that is not
    UTF-8 (ws does not check what it sends)."""

    async def main() -> None:
        async with socketeer_server(echo) as uri:
            async with NodeClient.connect(node, uri) as client:
                await client.send(op="send", fragments_b64=[b64(p) for p in parts], binary=False)
                assert (await client.expect("close"))["code"] == 1007

    run(main())


@pytest.mark.parametrize("compression", COMPRESSION)
@pytest.mark.parametrize("receiver", ["server", "client"])
def test_server_message_over_max_size(node: str, compression: str | None, receiver: str) -> None:
    """A message of the limit's size passes; one byte more fails with 1009, both ways.

    The messages compress well, so with compression the limits apply after decompression.
    """
    limit = 1024
    fits, too_big = b"a" * limit, b"b" * (limit + 1)
    server_limit = limit if receiver == "server" else None
    client_args = ["--max-payload", str(limit)] if receiver == "client" else []

    async def main() -> None:
        server_code: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

        async def handler(connection: socketeer.ServerConnection) -> None:
            try:
                await echo(connection)
            finally:
                await connection.wait_closed()
                server_code.set_result(connection.close_code)

        async with socketeer_server(
            handler, compression=compression, max_size=server_limit
        ) as uri:
            args = [*node_args(compression), *client_args]
            async with NodeClient.connect(node, uri, *args) as client:
                await client.send(**command(fits))
                assert received(await client.expect("message")) == digest(fits)
                await client.send(**command(too_big))
                client_close = await client.expect("close")
            if receiver == "server":
                assert client_close["code"] == 1009  # received from socketeer
            else:
                assert await within(server_code) == 1009  # received from ws

    run(main())


@pytest.mark.parametrize("initiator", ["server", "client"])
@pytest.mark.parametrize(("code", "reason"), CLOSES)
def test_server_close(node: str, initiator: str, code: int, reason: str) -> None:
    """The side that did not start the closing handshake sees its code and reason; the side
    that did sees its own code echoed."""

    async def main() -> None:
        on_server: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()

        async def handler(connection: socketeer.ServerConnection) -> None:
            if initiator == "server":
                await connection.close(code, reason)
            else:
                with pytest.raises(socketeer.ConnectionClosed):
                    await connection.recv()
                await connection.wait_closed()
            on_server.set_result((connection.close_code, connection.close_reason))

        async with socketeer_server(handler) as uri:
            async with NodeClient.connect(node, uri) as client:
                await client.expect("open")
                if initiator == "client":
                    await client.send(op="close", code=code, reason=reason)
                client_close = await client.expect("close")
            server_close = await within(on_server)

        if initiator == "client":
            assert server_close == (code, reason)
            assert client_close["code"] == code
        else:
            assert (client_close["code"], client_close["reason"]) == (code, reason)
            assert server_close[0] == code

    run(main())


def test_server_close_without_code(node: str) -> None:
    """An empty close frame from ws' client reads as 1005 (no status received), a normal
    closure."""

    async def main() -> None:
        on_server: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()

        async def handler(connection: socketeer.ServerConnection) -> None:
            with pytest.raises(socketeer.ConnectionClosedOK):
                await connection.recv()
            await connection.wait_closed()
            on_server.set_result((connection.close_code, connection.close_reason))

        async with socketeer_server(handler) as uri:
            async with NodeClient.connect(node, uri) as client:
                await client.send(op="close")
                assert (await client.expect("close"))["code"] == 1005
            assert await within(on_server) == (1005, "")

    run(main())


@pytest.mark.parametrize("compression", COMPRESSION)
def test_server_close_inside_fragmented_message(node: str, compression: str | None) -> None:
    """A close frame may come in the middle of a fragmented message: the unfinished message
    is dropped and the connection closes normally."""

    async def main() -> None:
        on_server: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()

        async def handler(connection: socketeer.ServerConnection) -> None:
            with pytest.raises(socketeer.ConnectionClosedOK):
                await connection.recv()
            await connection.wait_closed()
            on_server.set_result((connection.close_code, connection.close_reason))

        async with socketeer_server(handler, compression=compression) as uri:
            async with NodeClient.connect(node, uri, *node_args(compression)) as client:
                await client.send(op="send", fragments=["never ", "finished"], fin=False)
                await client.send(op="close", code=1000, reason="bye")
                assert (await client.expect("close"))["code"] == 1000
            assert await within(on_server) == (1000, "bye")

    run(main())


def test_server_shutdown(node: str) -> None:
    """Shutting socketeer's server down closes ws' connection with 1001."""

    async def main() -> None:
        async with socketeer.serve(echo, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with NodeClient.connect(node, f"ws://127.0.0.1:{port}/") as client:
                await client.expect("open")
                await within(server.close())
                assert (await client.expect("close"))["code"] == 1001

    run(main())


@pytest.mark.parametrize("pinger", ["server", "client"])
def test_server_ping(node: str, pinger: str) -> None:
    """Pings are answered with the same payload, both ways."""

    async def main() -> None:
        async def handler(connection: socketeer.ServerConnection) -> None:
            if pinger == "server":
                latency = await within(await connection.ping(b"from socketeer"))
                await connection.send(f"latency {type(latency).__name__}")
            await echo(connection)

        async with socketeer_server(handler) as uri:
            async with NodeClient.connect(node, uri) as client:
                if pinger == "server":
                    assert (await client.expect("message"))["text"] == "latency float"
                else:
                    await client.send(op="ping", text="from ws")
                    assert (await client.expect("pong"))["text"] == "from ws"
                await client.send(op="send", text="after ping")
                assert (await client.expect("message"))["text"] == "after ping"

    run(main())


def test_server_subprotocol(node: str) -> None:
    """Both ends agree on the subprotocol the server picks from the client's offer."""

    async def main() -> None:
        on_server: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

        async def handler(connection: socketeer.ServerConnection) -> None:
            on_server.set_result(connection.subprotocol)
            await echo(connection)

        supported = [Subprotocol("chat.v2"), Subprotocol("chat.v1")]
        async with socketeer_server(handler, subprotocols=supported) as uri:
            args = ["--subprotocol", "chat.v3", "--subprotocol", "chat.v1"]
            async with NodeClient.connect(node, uri, *args) as client:
                assert (await client.expect("open"))["protocol"] == "chat.v1"
                assert await within(on_server) == "chat.v1"

    run(main())
