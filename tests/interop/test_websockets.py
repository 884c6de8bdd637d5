"""Interoperability with websockets, the reference Python implementation, both ways.

Every scenario runs with the two pairs: socketeer's server with websockets' client, and
websockets' server with socketeer's client. The two libraries share the shape of their API
(``serve``, ``connect``, ``send``, ``recv``, ``ping``, ``close``, ``close_code``...), so a
scenario is written once against :class:`Library`, which papers over the few differences.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import socketeer
from socketeer.protocol.frames import OP_CONT, OP_TEXT, Frame

from .peers import (
    MESSAGES,
    MS,
    TIMEOUT,
    deflate_parameters,
    extension_names,
    import_peer,
    many_messages,
    run,
    within,
)

HINT = "pip install -e '.[test]'"
ws_client = import_peer("websockets.asyncio.client", HINT)
ws_server = import_peer("websockets.asyncio.server", HINT)
ws_exceptions = import_peer("websockets.exceptions", HINT)
ws_deflate = import_peer("websockets.extensions.permessage_deflate", HINT)

MiB = 1024 * 1024
DEFLATE = ["permessage-deflate"]
LARGE_TIMEOUT = 4 * TIMEOUT  # to compress, send, decompress and echo 16 MiB on a slow machine


# Papering over the differences between the two libraries


async def socketeer_fragments(connection: Any) -> list[str] | list[bytes]:
    """Receive one message from a socketeer connection, one item per frame."""
    frame = await connection.recv_frame()
    text = frame.opcode is OP_TEXT
    frames = [frame]
    while not frame.fin:
        frame = await connection.recv_frame()
        frames.append(frame)
    if text:
        return [frame.data.decode() for frame in frames]
    return [frame.data for frame in frames]


async def websockets_fragments(connection: Any) -> list[str] | list[bytes]:
    """Receive one message from a websockets connection, one item per frame."""
    return [fragment async for fragment in connection.recv_streaming()]


async def socketeer_send_text_frames(connection: Any, parts: list[bytes]) -> None:
    """Send a text message in frames of raw bytes, which need not be whole characters."""
    for i, part in enumerate(parts):
        opcode = OP_TEXT if i == 0 else OP_CONT
        await connection.send_frame(Frame(opcode, part, fin=i == len(parts) - 1))


async def websockets_send_text_frames(connection: Any, parts: list[bytes]) -> None:
    """Send a text message in frames of raw bytes, which need not be whole characters."""
    await connection.send(parts, text=True)


async def socketeer_shutdown(server: Any) -> None:
    await server.close()


async def websockets_shutdown(server: Any) -> None:
    server.close()
    await server.wait_closed()


def websockets_connect(uri: str, **kwargs: Any) -> Any:
    # No proxy from the environment for a loopback test.
    return ws_client.connect(uri, proxy=None, **kwargs)


@dataclasses.dataclass(frozen=True)
class Library:
    """One of the two libraries, with the parts of its API that differ from the other's."""

    name: str
    serve: Callable[..., Any]
    connect: Callable[..., Any]
    shutdown: Callable[[Any], Awaitable[None]]
    recv_fragments: Callable[[Any], Awaitable[list[str] | list[bytes]]]
    send_text_frames: Callable[[Any, list[bytes]], Awaitable[None]]
    closed: type[Exception]
    closed_ok: type[Exception]

    def __str__(self) -> str:
        return self.name

    @contextlib.asynccontextmanager
    async def listen(self, handler: Callable[[Any], Awaitable[None]], **kwargs: Any) -> Any:
        """Run a server on a free loopback port; yield its URI and the server."""
        async with self.serve(handler, "127.0.0.1", 0, **kwargs) as server:
            port = server.sockets[0].getsockname()[1]
            yield f"ws://127.0.0.1:{port}/", server


SOCKETEER = Library(
    name="socketeer",
    serve=socketeer.serve,
    connect=socketeer.connect,
    shutdown=socketeer_shutdown,
    recv_fragments=socketeer_fragments,
    send_text_frames=socketeer_send_text_frames,
    closed=socketeer.ConnectionClosed,
    closed_ok=socketeer.ConnectionClosedOK,
)
WEBSOCKETS = Library(
    name="websockets",
    serve=ws_server.serve,
    connect=websockets_connect,
    shutdown=websockets_shutdown,
    recv_fragments=websockets_fragments,
    send_text_frames=websockets_send_text_frames,
    closed=ws_exceptions.ConnectionClosed,
    closed_ok=ws_exceptions.ConnectionClosedOK,
)


@dataclasses.dataclass(frozen=True)
class Pair:
    server: Library
    client: Library


PAIRS = [
    pytest.param(Pair(SOCKETEER, WEBSOCKETS), id="socketeer_server-websockets_client"),
    pytest.param(Pair(WEBSOCKETS, SOCKETEER), id="websockets_server-socketeer_client"),
]
COMPRESSION = [pytest.param("deflate", id="deflate"), pytest.param(None, id="no_compression")]


@pytest.fixture(params=PAIRS)
def pair(request: pytest.FixtureRequest) -> Pair:
    return request.param  # type: ignore[no-any-return]


def digest(message: str | bytes) -> tuple[type, int, str]:
    """What identifies a large message, without a multi-megabyte diff when it differs."""
    data = message.encode() if isinstance(message, str) else message
    return type(message), len(data), hashlib.sha256(data).hexdigest()


async def echo(connection: Any) -> None:
    async for message in connection:
        await connection.send(message)


# Data: text and binary, with and without compression on each side


@pytest.mark.parametrize("server_compression", COMPRESSION)
@pytest.mark.parametrize("client_compression", COMPRESSION)
def test_echo(pair: Pair, server_compression: str | None, client_compression: str | None) -> None:
    """Text stays text, binary stays binary, and every byte arrives, both ways."""

    async def main() -> None:
        server_extensions: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()

        async def handler(connection: Any) -> None:
            server_extensions.set_result(extension_names(connection))
            await echo(connection)

        async with pair.server.listen(handler, compression=server_compression) as (uri, _):
            async with pair.client.connect(uri, compression=client_compression) as client:
                for message in MESSAGES:
                    await within(client.send(message))
                    received = await within(client.recv())
                    assert type(received) is type(message)
                    assert received == message
                client_extensions = extension_names(client)
            assert await within(server_extensions) == client_extensions

        both = server_compression is not None and client_compression is not None
        assert client_extensions == (DEFLATE if both else [])

    run(main())


@pytest.mark.parametrize("compression", COMPRESSION)
@pytest.mark.parametrize("kind", ["binary", "text"])
def test_16_mib_message(pair: Pair, compression: str | None, kind: str) -> None:
    """A 16 MiB message goes from the client to the server and back with max_size raised.

    The binary one is random, so compression cannot shrink it; the text one is repetitive.
    """
    message: str | bytes
    if kind == "binary":
        message = os.urandom(16 * MiB)
    else:
        message = ("socketeer ❤ websockets " * MiB)[: 16 * MiB]

    async def main() -> None:
        options = {"compression": compression, "max_size": 32 * MiB}
        async with pair.server.listen(echo, **options) as (uri, _):
            async with pair.client.connect(uri, **options) as client:
                await within(client.send(message), LARGE_TIMEOUT)
                received = await within(client.recv(), LARGE_TIMEOUT)
        assert digest(received) == digest(message)

    run(main())


@pytest.mark.parametrize("compression", COMPRESSION)
@pytest.mark.parametrize("receiver", ["server", "client"])
def test_message_over_max_size(pair: Pair, compression: str | None, receiver: str) -> None:
    """A message of max_size bytes passes; one byte more fails with 1009, seen by the sender.

    The messages compress well, so with compression the limit applies after decompression.
    """
    limit = 1024
    fits, too_big = b"a" * limit, b"b" * (limit + 1)
    server_limit = limit if receiver == "server" else None
    client_limit = limit if receiver == "client" else None

    async def main() -> None:
        server_code: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

        async def handler(connection: Any) -> None:
            try:
                if receiver == "server":
                    await echo(connection)
                else:
                    await connection.send(fits)
                    await connection.send(too_big)
                    await connection.recv()
            except pair.server.closed:
                pass
            await connection.wait_closed()
            server_code.set_result(connection.close_code)

        server_options = {"compression": compression, "max_size": server_limit}
        client_options = {"compression": compression, "max_size": client_limit}
        async with pair.server.listen(handler, **server_options) as (uri, _):
            async with pair.client.connect(uri, **client_options) as client:
                if receiver == "server":
                    await within(client.send(fits))
                    assert await within(client.recv()) == fits
                    await within(client.send(too_big))
                else:
                    assert await within(client.recv()) == fits
                with pytest.raises(pair.client.closed) as raised:
                    await within(client.recv())
                assert not isinstance(raised.value, pair.client.closed_ok)
                await within(client.wait_closed())
                if receiver == "server":
                    assert client.close_code == 1009
            if receiver == "client":
                assert await within(server_code) == 1009

    run(main())


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(
            {"server_no_context_takeover": True, "client_no_context_takeover": True},
            id="no_context_takeover",
        ),
        pytest.param({"server_no_context_takeover": True}, id="server_no_context_takeover"),
        pytest.param({"client_no_context_takeover": True}, id="client_no_context_takeover"),
        pytest.param({"server_max_window_bits": 9, "client_max_window_bits": 9}, id="window_9"),
        pytest.param({"server_max_window_bits": 15, "client_max_window_bits": 15}, id="window_15"),
        pytest.param({"server_max_window_bits": 10}, id="server_window_10"),
    ],
)
def test_deflate_parameters(pair: Pair, settings: dict[str, Any]) -> None:
    """socketeer agrees with websockets on the permessage-deflate parameters websockets asks
    for (as a client) or imposes (as a server), and both compress by them, message after
    message."""
    if pair.server is WEBSOCKETS:
        factory = ws_deflate.ServerPerMessageDeflateFactory(**settings)
        server_kwargs, client_kwargs = {"compression": None, "extensions": [factory]}, {}
    else:
        factory = ws_deflate.ClientPerMessageDeflateFactory(**settings)
        server_kwargs, client_kwargs = {}, {"compression": None, "extensions": [factory]}

    async def main() -> None:
        on_server: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        async def handler(connection: Any) -> None:
            on_server.set_result(deflate_parameters(connection))
            await echo(connection)

        async with pair.server.listen(handler, **server_kwargs) as (uri, _):
            async with pair.client.connect(uri, **client_kwargs) as client:
                for message in MESSAGES:
                    await within(client.send(message))
                    assert await within(client.recv()) == message
                client_params = deflate_parameters(client)
            server_params = await within(on_server)

        # What makes decompression work: each side decompresses with a window at least as large
        # as the peer compresses with, and counts on the peer resetting its compressor after
        # each message only if the peer does.
        for local, remote in [(server_params, client_params), (client_params, server_params)]:
            assert remote["remote_max_window_bits"] >= local["local_max_window_bits"]
            assert local["local_no_context_takeover"] or not remote["remote_no_context_takeover"]
        # What websockets asked for or imposed is in force (RFC 7692 section 7.1: a window size
        # is a maximum, which the other side may lower).
        for name, value in settings.items():
            side = "server" if name.startswith("server") else "client"
            params = server_params if side == "server" else client_params
            agreed = params[name.replace(side, "local")]
            assert agreed <= value if name.endswith("window_bits") else agreed == value

    run(main())


@pytest.mark.parametrize("compression", COMPRESSION)
def test_many_messages_in_flight(pair: Pair, compression: str | None) -> None:
    """Hundreds of messages in flight both ways arrive whole and in order, while flow control
    (max_queue, write buffers) pauses and resumes both sides."""
    messages = many_messages()

    async def main() -> list[Any]:
        async with pair.server.listen(echo, compression=compression) as (uri, _):
            async with pair.client.connect(uri, compression=compression) as client:

                async def send_all() -> None:
                    for message in messages:
                        await client.send(message)

                sender = asyncio.create_task(send_all())
                received = [await within(client.recv()) for _ in messages]
                await within(sender)
        return received

    received = run(main())
    assert [digest(message) for message in received] == [digest(m) for m in messages]


# Fragmentation


@pytest.mark.parametrize("compression", COMPRESSION)
@pytest.mark.parametrize(
    "fragments",
    [
        pytest.param(["héllo", " ", "wörld", " €𝄞"], id="text"),
        pytest.param([b"\x00\x01", b"", b"\xfe\xff" * 1000], id="binary"),
    ],
)
def test_fragmented_message(
    pair: Pair, compression: str | None, fragments: list[str] | list[bytes]
) -> None:
    """A fragmented message arrives frame by frame, from the client and from the server.

    The client sends a message in fragments; the server receives it frame by frame and sends
    the same fragments back, which the client receives frame by frame too. Both libraries end
    a fragmented message with an empty final frame, and empty fragments stay empty, so the
    comparison is on the non-empty ones.
    """
    expected = [fragment for fragment in fragments if fragment]

    async def main() -> None:
        on_server: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

        async def handler(connection: Any) -> None:
            received = await pair.server.recv_fragments(connection)
            on_server.set_result(received)
            await connection.send([fragment for fragment in received if fragment])
            await echo(connection)

        async with pair.server.listen(handler, compression=compression) as (uri, _):
            async with pair.client.connect(uri, compression=compression) as client:
                await within(client.send(fragments))
                assert [f for f in await within(on_server) if f] == expected
                received = await within(pair.client.recv_fragments(client))
                assert [f for f in received if f] == expected
                # The connection goes on with whole messages.
                await within(client.send(fragments[0]))
                assert await within(client.recv()) == fragments[0]

    run(main())


@pytest.mark.parametrize("sender", ["server", "client"])
def test_ping_inside_fragmented_message(pair: Pair, sender: str) -> None:
    """A ping between two fragments of a message is answered before the message ends."""

    async def send_with_ping(connection: Any) -> None:
        async def fragments() -> AsyncIterator[str]:
            yield "before "
            pong = await connection.ping(b"inside")
            yield "ping, "
            await within(pong)  # the peer answers while the message is still unfinished
            yield "after pong"

        await connection.send(fragments())

    async def main() -> None:
        server_received: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def handler(connection: Any) -> None:
            if sender == "server":
                await send_with_ping(connection)
            else:
                server_received.set_result(await connection.recv())
            await connection.wait_closed()

        async with pair.server.listen(handler) as (uri, _):
            async with pair.client.connect(uri) as client:
                if sender == "server":
                    received = await within(client.recv())
                else:
                    await within(send_with_ping(client))
                    received = await within(server_received)
        assert received == "before ping, after pong"

    run(main())


@pytest.mark.parametrize("compression", COMPRESSION)
@pytest.mark.parametrize("sender", ["server", "client"])
def test_text_frames_cut_inside_utf8(pair: Pair, compression: str | None, sender: str) -> None:
    """A text message may be cut anywhere, even inside a character: here, one byte a frame."""
    message = "hé€𝄞"
    parts = [bytes([byte]) for byte in message.encode()]

    async def main() -> None:
        server_received: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def handler(connection: Any) -> None:
            if sender == "server":
                await pair.server.send_text_frames(connection, parts)
            else:
                server_received.set_result(await connection.recv())
            await connection.wait_closed()

        async with pair.server.listen(handler, compression=compression) as (uri, _):
            async with pair.client.connect(uri, compression=compression) as client:
                if sender == "server":
                    received = await within(client.recv())
                else:
                    await within(pair.client.send_text_frames(client, parts))
                    received = await within(server_received)
        assert received == message

    run(main())


@pytest.mark.parametrize(
    "parts",
    [
        pytest.param([b"\xff"], id="invalid_byte"),
        pytest.param([b"\xc0\xaf"], id="overlong"),
        pytest.param([b"\xed\xa0\x80"], id="surrogate"),
        pytest.param([b"caf\xc3", b"("], id="invalid_across_frames"),
        pytest.param([b"caf\xc3"], id="truncated_at_end"),
    ],
)
def test_invalid_utf8_fails_with_1007(pair: Pair, parts: list[bytes]) -> None:
    """socketeer fails the connection with 1007 when a text message is not UTF-8.

    websockets sends the bytes unchecked (``send(..., text=True)``) and sees the code.
    """
    sender = "client" if pair.client is WEBSOCKETS else "server"

    async def main() -> None:
        server_code: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

        async def handler(connection: Any) -> None:
            if sender == "server":
                await pair.server.send_text_frames(connection, parts)
            with contextlib.suppress(pair.server.closed):
                await connection.recv()
            await connection.wait_closed()
            server_code.set_result(connection.close_code)

        async with pair.server.listen(handler) as (uri, _):
            async with pair.client.connect(uri) as client:
                if sender == "client":
                    await within(pair.client.send_text_frames(client, parts))
                with pytest.raises(pair.client.closed):
                    await within(client.recv())
                await within(client.wait_closed())
                client_code = client.close_code
            code = client_code if sender == "client" else await within(server_code)
        assert code == 1007

    run(main())


# Subprotocols


@pytest.mark.parametrize(
    ("offered", "expected"),
    [
        pytest.param(["chat.v3", "chat.v1"], "chat.v1", id="common"),
        pytest.param(["chat.v2"], "chat.v2", id="only"),
        pytest.param(None, None, id="none_offered"),
    ],
)
def test_subprotocol(pair: Pair, offered: list[str] | None, expected: str | None) -> None:
    """Both ends agree on the subprotocol the server picks from the client's offer."""
    supported = ["chat.v2", "chat.v1"] if offered is not None else None

    async def main() -> None:
        on_server: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

        async def handler(connection: Any) -> None:
            on_server.set_result(connection.subprotocol)

        async with pair.server.listen(handler, subprotocols=supported) as (uri, _):
            async with pair.client.connect(uri, subprotocols=offered) as client:
                assert client.subprotocol == expected
                assert await within(on_server) == expected
                await within(client.wait_closed())  # the handler returned: the server closes

    run(main())


# Closing


CLOSES = [
    pytest.param(1000, "", id="1000"),
    pytest.param(1000, "done", id="1000_with_reason"),
    pytest.param(1001, "going away", id="1001"),
    pytest.param(3000, "registered", id="3000"),
    pytest.param(4000, "r" * 123, id="4000_longest_reason"),
    pytest.param(4999, "privé ✓", id="4999_utf8_reason"),
]


@pytest.mark.parametrize("initiator", ["server", "client"])
@pytest.mark.parametrize(("code", "reason"), CLOSES)
def test_close(pair: Pair, initiator: str, code: int, reason: str) -> None:
    """The side that did not start the closing handshake sees its code and reason.

    The side that started it sees its own code echoed; both raise ConnectionClosedOK after
    1000 and 1001 and ConnectionClosedError after other codes.
    """
    normal = code in (1000, 1001)

    async def main() -> None:
        on_server: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()

        async def handler(connection: Any) -> None:
            if initiator == "server":
                await connection.close(code, reason)
                exc = None
            else:
                with pytest.raises(pair.server.closed) as raised:
                    await connection.recv()
                exc = raised.value
                await connection.wait_closed()
            on_server.set_result((connection.close_code, connection.close_reason, exc))

        async with pair.server.listen(handler) as (uri, _):
            async with pair.client.connect(uri) as client:
                if initiator == "client":
                    await within(client.close(code, reason))
                else:
                    with pytest.raises(pair.client.closed) as raised:
                        await within(client.recv())
                    assert isinstance(raised.value, pair.client.closed_ok) is normal
                    await within(client.wait_closed())
                client_close = client.close_code, client.close_reason
            server_code, server_reason, server_exc = await within(on_server)

        if initiator == "client":
            assert (server_code, server_reason) == (code, reason)
            assert isinstance(server_exc, pair.server.closed_ok) is normal
            assert client_close[0] == code
        else:
            assert client_close == (code, reason)
            assert server_code == code

    run(main())


def test_server_shutdown(pair: Pair) -> None:
    """Shutting the server down closes its connections with 1001, a normal closure."""

    async def main() -> None:
        async with pair.server.listen(echo) as (uri, server):
            async with pair.client.connect(uri) as client:
                await within(client.send("hello"))
                assert await within(client.recv()) == "hello"
                await within(pair.server.shutdown(server))
                with pytest.raises(pair.client.closed_ok):
                    await within(client.recv())
                await within(client.wait_closed())
                assert client.close_code == 1001

    run(main())


def test_server_handler_returns(pair: Pair) -> None:
    """When the handler returns, the server closes with 1000 and the client's loop ends."""

    async def main() -> None:
        async def handler(connection: Any) -> None:
            await connection.send("bye")

        async with pair.server.listen(handler) as (uri, _):
            async with pair.client.connect(uri) as client:

                async def messages() -> list[Any]:
                    return [message async for message in client]

                assert await within(messages()) == ["bye"]
                await within(client.wait_closed())
                assert client.close_code == 1000

    run(main())


# Ping and pong


@pytest.mark.parametrize("payload", [None, b"", b"socketeer", b"\xff" * 125])
@pytest.mark.parametrize("pinger", ["server", "client"])
def test_ping(pair: Pair, pinger: str, payload: bytes | None) -> None:
    """The peer answers a ping with a pong carrying the same payload, which resolves the
    waiter with the round-trip time."""

    async def ping(connection: Any) -> float:
        pong = await connection.ping() if payload is None else await connection.ping(payload)
        latency: float = await within(pong)
        return latency

    async def main() -> None:
        async def handler(connection: Any) -> None:
            if pinger == "server":
                latency = await ping(connection)
                await connection.send(f"latency {type(latency).__name__}")
            await echo(connection)

        async with pair.server.listen(handler) as (uri, _):
            async with pair.client.connect(uri) as client:
                if pinger == "server":
                    assert await within(client.recv()) == "latency float"
                else:
                    assert isinstance(await ping(client), float)
                # The connection is still usable.
                await within(client.send("after ping"))
                assert await within(client.recv()) == "after ping"

    run(main())


@pytest.mark.parametrize("pinger", ["server", "client"])
def test_keepalive(pair: Pair, pinger: str) -> None:
    """Keepalive pings, every few milliseconds here, are answered, and the connection stays
    open and usable."""
    fast = {"ping_interval": 20 * MS, "ping_timeout": TIMEOUT}
    server_options = fast if pinger == "server" else {"ping_interval": None}
    client_options = fast if pinger == "client" else {"ping_interval": None}

    async def pong_received(connection: Any) -> None:
        while connection.latency == 0:  # until the first keepalive pong
            await asyncio.sleep(5 * MS)

    async def main() -> None:
        async def handler(connection: Any) -> None:
            if pinger == "server":
                await pong_received(connection)
                await connection.send("pong received")
            await echo(connection)

        async with pair.server.listen(handler, **server_options) as (uri, _):
            async with pair.client.connect(uri, **client_options) as client:
                if pinger == "server":
                    assert await within(client.recv()) == "pong received"
                else:
                    await within(pong_received(client))
                await within(client.send("still open"))
                assert await within(client.recv()) == "still open"
            assert client.close_code == 1000

    run(main())
