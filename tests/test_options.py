"""The options of clients and servers (options.py): defaults, checks, the typed keyword
arguments that mirror them, and the same protocol configuration from either driver."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import re
import socket
import ssl
import sys
import threading
import typing
from collections.abc import Iterator
from typing import Any

import pytest

import socketeer
import socketeer.asyncio.client
import socketeer.asyncio.server
import socketeer.sync
from socketeer.client import MAX_REDIRECTS, Backoff
from socketeer.options import (
    CLOSE_TIMEOUT,
    MAX_QUEUE,
    OPEN_TIMEOUT,
    PING_INTERVAL,
    PING_TIMEOUT,
    WRITE_LIMIT,
    ClientOptions,
    ClientOptionsDict,
    ConnectionOptions,
    ServerOptions,
    ServerOptionsDict,
)
from socketeer.protocol import State
from socketeer.protocol.base import MAX_SIZE
from socketeer.protocol.client import USER_AGENT, ClientProtocol
from socketeer.protocol.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from socketeer.protocol.http11 import Request
from socketeer.protocol.server import SERVER_HEADER, ServerProtocol
from socketeer.typedefs import Origin, Subprotocol
from socketeer.uri import parse_uri

URI = parse_uri("ws://example.com/chat")


def init_fields(cls: type) -> list[dataclasses.Field[Any]]:
    return [field for field in dataclasses.fields(cls) if field.init]


def keyword_options(function: Any) -> Any:
    """The TypedDict of ``function``'s ``**options: Unpack[...]``."""
    (parameter,) = [
        p for p in inspect.signature(function).parameters.values() if p.kind is p.VAR_KEYWORD
    ]
    match = re.fullmatch(r"Unpack\[(\w+)\]", parameter.annotation)
    assert match is not None, parameter.annotation
    return getattr(sys.modules[function.__module__], match[1])


async def echo(ws: Any) -> None:
    async for message in ws:
        await ws.send(message)


def sync_echo(ws: Any) -> None:
    for message in ws:
        ws.send(message)


class TestTypedKeywords:
    """The TypedDicts of the drivers' ``**options`` mirror the dataclasses: no drift."""

    @pytest.mark.parametrize(
        ("options", "keywords"),
        [(ClientOptions, ClientOptionsDict), (ServerOptions, ServerOptionsDict)],
    )
    def test_same_names_same_order_same_types(self, options: type, keywords: Any) -> None:
        fields = init_fields(options)
        assert list(keywords.__annotations__) == [field.name for field in fields]
        hints = typing.get_type_hints(options)
        assert typing.get_type_hints(keywords) == {
            field.name: hints[field.name] for field in fields
        }

    @pytest.mark.parametrize("keywords", [ClientOptionsDict, ServerOptionsDict])
    def test_every_option_is_optional(self, keywords: Any) -> None:
        assert keywords.__required_keys__ == frozenset()

    @pytest.mark.parametrize(
        ("keywords", "loop_method"),
        [
            (socketeer.asyncio.client.ConnectOptions, "create_connection"),
            (socketeer.asyncio.server.ServeOptions, "create_server"),
        ],
    )
    def test_asyncio_adds_only_arguments_of_its_loop(
        self, keywords: Any, loop_method: str
    ) -> None:
        base = ClientOptionsDict if loop_method == "create_connection" else ServerOptionsDict
        extra = set(keywords.__annotations__) - set(base.__annotations__)
        method = getattr(asyncio.BaseEventLoop, loop_method)
        parameters = set(inspect.signature(method).parameters)
        newer = {"ssl_shutdown_timeout": (3, 11), "keep_alive": (3, 13)}
        expected = {name for name in extra if sys.version_info >= newer.get(name, (3, 10))}
        assert expected <= parameters
        assert not extra & {field.name for field in init_fields(ServerOptions)}
        assert not extra & {field.name for field in init_fields(ClientOptions)}

    def test_drivers_take_them(self) -> None:
        client = socketeer.asyncio.client
        assert keyword_options(client.connect.__init__) is client.ConnectOptions
        assert keyword_options(socketeer.run) is client.ConnectOptions
        assert keyword_options(socketeer.serve.__init__) is socketeer.asyncio.server.ServeOptions
        for function in (
            socketeer.sync.connect,
            socketeer.sync.reconnect.__init__,
            socketeer.sync.run,
        ):
            assert keyword_options(function) is ClientOptionsDict
        assert keyword_options(socketeer.sync.serve) is ServerOptionsDict

    @pytest.mark.parametrize("options", [ClientOptions, ServerOptions])
    def test_split(self, options: Any) -> None:
        made, others = options.split({"max_size": 10, "backlog": 5, "family": 2})
        assert made == options(max_size=10)
        assert others == {"backlog": 5, "family": 2}


class TestDefaults:
    @pytest.mark.parametrize("options", [ClientOptions(), ServerOptions()])
    def test_shared(self, options: ClientOptions | ServerOptions) -> None:
        assert options.subprotocols is None
        assert options.compression == "deflate"
        assert options.open_timeout == OPEN_TIMEOUT
        assert options.max_size == MAX_SIZE
        for name in ("ssl", "unix", "sock", "logger"):
            assert getattr(options, name) is None, name
        assert options.connection_options() == ConnectionOptions()
        assert options.connection_options() == ConnectionOptions(
            ping_interval=PING_INTERVAL,
            ping_timeout=PING_TIMEOUT,
            close_timeout=CLOSE_TIMEOUT,
            max_queue=MAX_QUEUE,
            write_limit=WRITE_LIMIT,
        )

    def test_client(self) -> None:
        options = ClientOptions()
        for name in ("origin", "extensions", "additional_headers", "server_hostname"):
            assert getattr(options, name) is None, name
        assert options.user_agent_header == USER_AGENT
        assert options.max_redirects == MAX_REDIRECTS
        assert options.get_backoff() == Backoff()
        assert options.get_logger() is logging.getLogger("socketeer.client")
        (factory,) = options.extension_factories()
        assert isinstance(factory, ClientPerMessageDeflateFactory)

    def test_server(self) -> None:
        options = ServerOptions()
        for name in ("origins", "select_subprotocol", "extensions"):
            assert getattr(options, name) is None, name
        assert options.server_header == SERVER_HEADER
        assert options.get_logger() is logging.getLogger("socketeer.server")
        (factory,) = options.extension_factories()
        assert isinstance(factory, ServerPerMessageDeflateFactory)

    def test_given_logger_and_backoff(self) -> None:
        logger = logging.getLogger("test.options")
        backoff = Backoff(initial=0.1)
        options = ClientOptions(logger=logger, backoff=backoff)
        assert options.get_logger() is logger
        assert options.get_backoff() is backoff
        assert ServerOptions(logger=logger).get_logger() is logger

    def test_no_limits(self) -> None:
        """``None`` turns every limit off."""
        for options in (ClientOptions, ServerOptions):
            options(
                open_timeout=None,
                ping_interval=None,
                ping_timeout=None,
                close_timeout=None,
                max_size=None,
                max_queue=None,
            )

    def test_frozen(self) -> None:
        options = ClientOptions()
        with pytest.raises(dataclasses.FrozenInstanceError):
            options.max_size = 1  # type: ignore[misc]
        assert ClientOptions(max_size=1) == dataclasses.replace(options, max_size=1)

    def test_keyword_only(self) -> None:
        with pytest.raises(TypeError):
            ClientOptions(None)  # type: ignore[call-arg]


class TestExtensions:
    def test_no_compression(self) -> None:
        assert ClientOptions(compression=None).extension_factories() == []
        assert ServerOptions(compression=None).extension_factories() == []

    def test_own_deflate_settings_kept(self) -> None:
        client_factory = ClientPerMessageDeflateFactory(client_max_window_bits=10)
        assert ClientOptions(extensions=[client_factory]).extension_factories() == [client_factory]
        server_factory = ServerPerMessageDeflateFactory(server_max_window_bits=10)
        assert ServerOptions(extensions=[server_factory]).extension_factories() == [server_factory]


# Invalid options, the exception and the message of each, for clients and servers alike.
Invalid = list[tuple[dict[str, Any], type[Exception], str]]
INVALID_SHARED: Invalid = [
    ({"open_timeout": -1}, ValueError, "open_timeout must be positive or None, got -1"),
    ({"ping_interval": -1}, ValueError, "ping_interval must be positive or None, got -1"),
    ({"ping_timeout": -0.5}, ValueError, "ping_timeout must be positive or None, got -0.5"),
    ({"close_timeout": float("nan")}, ValueError, "close_timeout must be positive or None"),
    ({"open_timeout": "10"}, TypeError, "open_timeout must be a number of seconds or None"),
    ({"ping_interval": True}, TypeError, "ping_interval must be a number of seconds or None"),
    ({"max_size": -1}, ValueError, "max_size must be positive or None, got -1"),
    ({"max_size": 1.5}, TypeError, "max_size must be an integer or None, got 1.5"),
    ({"max_queue": 0}, ValueError, "max_queue must be at least 1 or None, got 0"),
    ({"write_limit": -1}, ValueError, "write_limit must be positive, got -1"),
    ({"write_limit": None}, TypeError, "write_limit must be an integer, got None"),
    ({"compression": "zstd"}, ValueError, "unsupported compression: zstd"),
    ({"subprotocols": ["not a token"]}, ValueError, "subprotocol"),
    ({"subprotocols": "chat"}, ValueError, "not a str"),
    ({"subprotocols": ["chat", "chat"]}, ValueError, "duplicate subprotocol"),
    ({"ssl": True}, TypeError, "ssl must be an ssl.SSLContext or None, got True"),
    ({"unix": "/tmp/x.sock", "sock": "a socket"}, ValueError, "unix and sock cannot be used"),
    ({"no_such_option": 1}, TypeError, "no_such_option"),
]
INVALID_CLIENT: Invalid = [
    *INVALID_SHARED,
    ({"max_redirects": -1}, ValueError, "max_redirects must be positive, got -1"),
]
INVALID_SERVER: Invalid = [
    *INVALID_SHARED,
    ({"origins": "https://example.com"}, TypeError, "origins must be a sequence"),
]


def ids(cases: Invalid) -> list[str]:
    return [",".join(kwargs) + f"={next(iter(kwargs.values()))!r}" for kwargs, _, _ in cases]


class TestChecks:
    """Invalid options fail once, in the dataclass, with the same error in both drivers."""

    @pytest.mark.parametrize(
        ("kwargs", "error", "message"), INVALID_CLIENT, ids=ids(INVALID_CLIENT)
    )
    def test_client(self, kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
        uri = "ws://127.0.0.1:1/"
        with pytest.raises(error, match=re.escape(message)):
            ClientOptions(**kwargs)
        if "no_such_option" not in kwargs:  # the asyncio client passes it to its loop
            with pytest.raises(error, match=re.escape(message)):
                socketeer.connect(uri, **kwargs)
        with pytest.raises(error, match=re.escape(message)):
            socketeer.sync.connect(uri, **kwargs)
        with pytest.raises(error, match=re.escape(message)):
            socketeer.sync.reconnect(uri, **kwargs)

    @pytest.mark.parametrize(
        ("kwargs", "error", "message"), INVALID_SERVER, ids=ids(INVALID_SERVER)
    )
    def test_server(self, kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
        with pytest.raises(error, match=re.escape(message)):
            ServerOptions(**kwargs)
        if "no_such_option" not in kwargs:  # the asyncio server passes it to its loop
            with pytest.raises(error, match=re.escape(message)):
                socketeer.serve(echo, "127.0.0.1", 0, **kwargs)
        with pytest.raises(error, match=re.escape(message)):
            socketeer.sync.serve(sync_echo, "127.0.0.1", 0, **kwargs)  # before listening

    def test_ssl_for_ws_uri(self) -> None:
        context = ssl.create_default_context()
        ClientOptions(ssl=context).check_uri(parse_uri("wss://example.com/"))
        message = "ssl is for wss:// URIs, not ws://"
        with pytest.raises(ValueError, match=message):
            ClientOptions(ssl=context).check_uri(URI)
        with pytest.raises(ValueError, match=message):
            socketeer.connect("ws://localhost/", ssl=context)
        with pytest.raises(ValueError, match=message):
            socketeer.sync.reconnect("ws://localhost/", ssl=context)

    def test_reconnect_with_socket(self) -> None:
        with socket.socket() as sock:
            reconnecting = socketeer.sync.reconnect("ws://localhost/", sock=sock)
            with pytest.raises(ValueError, match="cannot reconnect with a given socket"):
                next(iter(reconnecting))

            async def main() -> None:
                with pytest.raises(ValueError, match="cannot reconnect with a given socket"):
                    async for _ in socketeer.connect("ws://localhost/", sock=sock):
                        pass  # pragma: no cover

            asyncio.run(main())


# Options that change every part of the configuration.
CLIENT_OPTIONS: dict[str, Any] = {
    "origin": Origin("https://example.com"),
    "subprotocols": [Subprotocol("chat"), Subprotocol("superchat")],
    "extensions": [ClientPerMessageDeflateFactory(client_max_window_bits=10)],
    "additional_headers": {"X-Token": "secret"},
    "user_agent_header": "test/1.0",
    "open_timeout": 5.0,
    "ping_interval": None,
    "ping_timeout": 3.0,
    "close_timeout": 2.0,
    "max_size": 1000,
    "max_queue": 4,
    "write_limit": 100,
    "logger": logging.getLogger("test.client"),
    "max_redirects": 2,
    "backoff": Backoff(initial=0.5),
}
SERVER_OPTIONS: dict[str, Any] = {
    "origins": [Origin("https://example.com")],
    "subprotocols": [Subprotocol("superchat"), Subprotocol("chat")],
    "extensions": [ServerPerMessageDeflateFactory(server_max_window_bits=11)],
    "server_header": "test/1.0",
    "open_timeout": 5.0,
    "ping_interval": None,
    "ping_timeout": 3.0,
    "close_timeout": 2.0,
    "max_size": 1000,
    "max_queue": 4,
    "write_limit": 100,
    "logger": logging.getLogger("test.server"),
}


def request_bytes(protocol: ClientProtocol) -> bytes:
    """The handshake request ``protocol`` sends, with a fixed key."""
    protocol.key = "dGhlIHNhbXBsZSBub25jZQ=="
    options = ClientOptions(**CLIENT_OPTIONS)
    protocol.send_request(
        protocol.connect(
            additional_headers=options.additional_headers, user_agent=options.user_agent_header
        )
    )
    return protocol.data_to_send()[0]


def response_bytes(protocol: ServerProtocol, request: bytes) -> bytes:
    """The response of ``protocol`` to ``request``, without its date."""
    protocol.receive_data(request)
    (event,) = protocol.events_received()
    assert isinstance(event, Request)
    response = protocol.accept(event)
    del response.headers["Date"]
    protocol.send_response(response)
    assert protocol.state is State.OPEN
    return protocol.data_to_send()[0]


def connection_summary(ws: Any) -> tuple[Any, ...]:
    """What a connection got from its options."""
    protocol = ws.protocol
    assert protocol.response is not None
    headers = protocol.response.headers
    extension = protocol.extensions[0]
    return (
        ws.options,
        protocol.max_size,
        protocol.logger,
        headers.get("Sec-WebSocket-Protocol"),
        headers.get("Sec-WebSocket-Extensions"),
        headers.get("Server"),
        (extension.local_max_window_bits, extension.remote_max_window_bits),
    )


@contextlib.contextmanager
def running_sync_server(handler: Any, **options: Any) -> Iterator[socketeer.sync.Server]:
    server = socketeer.sync.serve(handler, "127.0.0.1", 0, **options)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join()


class TestSameConfiguration:
    """Each driver builds the same protocol configuration from the same options."""

    def test_client(self) -> None:
        uri = "ws://example.com/chat"
        asyncio_client = socketeer.connect(uri, **CLIENT_OPTIONS)
        sync_client = socketeer.sync.reconnect(uri, **CLIENT_OPTIONS)
        assert asyncio_client.options == sync_client.options == ClientOptions(**CLIENT_OPTIONS)
        assert asyncio_client.kwargs == {}
        assert asyncio_client.backoff == sync_client.backoff == Backoff(initial=0.5)
        assert asyncio_client.logger is sync_client.logger is CLIENT_OPTIONS["logger"]
        protocols = [client.options.new_protocol(URI) for client in (asyncio_client, sync_client)]
        for protocol in protocols:
            assert protocol.max_size == 1000
            assert protocol.logger is CLIENT_OPTIONS["logger"]
        request = request_bytes(protocols[0])
        assert request == request_bytes(protocols[1])
        for header in [
            b"Origin: https://example.com",
            b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10",
            b"Sec-WebSocket-Protocol: chat, superchat",
            b"X-Token: secret",
            b"User-Agent: test/1.0",
        ]:
            assert header + b"\r\n" in request

    def test_server(self) -> None:
        asyncio_server = socketeer.serve(echo, "127.0.0.1", 0, **SERVER_OPTIONS).server
        sync_server = socketeer.sync.serve(sync_echo, "127.0.0.1", 0, **SERVER_OPTIONS)
        try:
            assert asyncio_server.options == sync_server.options
            assert asyncio_server.options == ServerOptions(**SERVER_OPTIONS)
            assert asyncio_server.logger is sync_server.logger is SERVER_OPTIONS["logger"]
            protocols = [server.options.new_protocol() for server in (asyncio_server, sync_server)]
        finally:
            sync_server.shutdown()
        for protocol in protocols:
            assert protocol.max_size == 1000
            assert protocol.logger is SERVER_OPTIONS["logger"]
        request = request_bytes(ClientOptions(**CLIENT_OPTIONS).new_protocol(URI))
        response = response_bytes(protocols[0], request)
        assert response == response_bytes(protocols[1], request)
        for header in [
            b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=11; "
            b"client_max_window_bits=10",
            b"Sec-WebSocket-Protocol: superchat",
            b"Server: test/1.0",
        ]:
            assert header + b"\r\n" in response

    def test_connections(self) -> None:
        """Connections of either driver, opened with the same options, get the same."""
        seen: dict[str, tuple[Any, ...]] = {}

        async def handler(ws: Any) -> None:
            seen["asyncio server"] = connection_summary(ws)

        async def main() -> None:
            async with socketeer.serve(handler, "127.0.0.1", 0, **SERVER_OPTIONS) as server:
                host, port = server.sockets[0].getsockname()[:2]
                uri = f"ws://{host}:{port}/"
                async with socketeer.connect(uri, **CLIENT_OPTIONS) as ws:
                    seen["asyncio client"] = connection_summary(ws)
                    await ws.wait_closed()

        asyncio.run(main())

        def sync_handler(ws: Any) -> None:
            seen["sync server"] = connection_summary(ws)

        with running_sync_server(sync_handler, **SERVER_OPTIONS) as server:
            host, port = server.socket.getsockname()[:2]
            with socketeer.sync.connect(f"ws://{host}:{port}/", **CLIENT_OPTIONS) as ws:
                seen["sync client"] = connection_summary(ws)
                ws.wait_closed()

        assert seen["asyncio server"] == seen["sync server"]
        assert seen["asyncio client"] == seen["sync client"]
        server_options = ServerOptions(**SERVER_OPTIONS)
        assert seen["sync server"][0] == server_options.connection_options()
        assert seen["sync client"][0] == ClientOptions(**CLIENT_OPTIONS).connection_options()
