"""A walk through the sans-I/O core: a client and a server talk, and every byte is shown.

No socket is involved: the bytes one protocol object writes are fed to the other. This is
what the asyncio and threaded drivers do, with a network in between.

Run it with ``python examples/sansio_walkthrough.py``.
"""

from __future__ import annotations

from socketeer.protocol import ClientProtocol, Protocol, ServerProtocol
from socketeer.protocol.extensions.permessage_deflate import (
    enable_client_permessage_deflate,
    enable_server_permessage_deflate,
)
from socketeer.uri import parse_uri


def show(direction: str, data: bytes) -> None:
    if not data:
        print(f"  {direction} (end of stream)")
    elif data[:4] in (b"GET ", b"HTTP"):
        for line in data.decode("latin-1").splitlines():
            print(f"  {direction} {line}")
    else:
        print(f"  {direction} {data.hex(' ')}")


def transfer(source: Protocol, target: Protocol, direction: str) -> None:
    for data in source.data_to_send():
        show(direction, data)
        if data:
            target.receive_data(data)
        else:
            target.receive_eof()
    for event in target.events_received():
        print(f"    {type(target).__name__} received: {event}")


def main() -> None:
    client = ClientProtocol(
        parse_uri("ws://localhost:8000/demo"),
        extensions=enable_client_permessage_deflate(None),
    )
    server = ServerProtocol(extensions=enable_server_permessage_deflate(None))

    print("1. The opening handshake (RFC 6455 section 4), with permessage-deflate offered")
    client.send_request(client.connect())
    transfer(client, server, "C>S")
    request = server.request
    assert request is not None
    server.send_response(server.accept(request))
    transfer(server, client, "S>C")
    print(f"  client is {client.state.name}, extensions: {[e.name for e in client.extensions]}")

    print("\n2. A text message, masked by the client and compressed")
    client.send_text("Hello, Hello, Hello!")
    transfer(client, server, "C>S")

    print("\n3. The same message sent with compress=False")
    client.send_text("Hello, Hello, Hello!", compress=False)
    transfer(client, server, "C>S")

    print("\n4. A fragmented binary message from the server, with a ping in the middle")
    server.send_binary(b"\x00\x01", fin=False)
    server.send_ping(b"are you there?")
    server.send_continuation(b"\x02\x03", fin=True)
    transfer(server, client, "S>C")
    print("  the client answered the ping:")
    transfer(client, server, "C>S")

    print("\n5. Invalid UTF-8 from the client fails the connection with 1007")
    client.send_text(b"caf\xc3")
    transfer(client, server, "C>S")
    transfer(server, client, "S>C")
    transfer(client, server, "C>S")
    print(f"  server: state {server.state.name}, cause: {server.parser_exc!r}")
    print(f"  client: state {client.state.name}, close code {client.close_code}")


if __name__ == "__main__":
    main()
