"""Fuzz target: the WebSocket URI parser, ``socketeer.uri.parse_uri``.

Input layout (``_harness.Input``)::

    byte 0   bits 0-1  prefix put before the text: "", "ws://", "wss://", "wS://u:p@"
             bits 2-3  how the rest becomes text: UTF-8 (invalid bytes become lone
                       surrogates, with surrogateescape), Latin-1, UTF-16-LE (any code point,
                       lone surrogates too), UTF-8 with replacement characters
             bit 4     also call parse_uri with the bytes themselves (not a str)
    rest     the URI

Checks: parse_uri returns a WebSocketURI or raises InvalidURI, nothing else; an accepted URI
has an ASCII, lower-case host (an IPv6 address without brackets, or a reg-name), a port from 1
to 65535, a path starting with "/" and a query, both ASCII without spaces, controls or "#";
the URI rebuilt from its fields parses to the same fields; and it is "ready for the opening
handshake": a ClientProtocol builds its request, which a server parses back with the same
resource name, Host and Basic credentials.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse

from _harness import Input, main

from socketeer.exceptions import InvalidURI
from socketeer.protocol.client import ClientProtocol
from socketeer.protocol.headers import build_host, parse_authorization_basic
from socketeer.protocol.http11 import Request
from socketeer.uri import WebSocketURI, parse_uri

PREFIXES = ("", "ws://", "wss://", "wS://u:p@")
DECODINGS = (
    lambda data: data.decode("utf-8", "surrogateescape"),
    lambda data: data.decode("latin-1"),
    lambda data: data[: len(data) & ~1].decode("utf-16-le", "surrogatepass"),
    lambda data: data.decode("utf-8", "replace"),
)

# RFC 3986 section 3.2.2: reg-name characters (after IDNA conversion and lower-casing).
_REG_NAME = re.compile(r"[-a-z0-9._~!$&'()*+,;=]+")
# What a request target may hold as is: visible ASCII (RFC 9112 section 3.2), no "#".
_TARGET_CHARS = re.compile(r"[\x21-\x22\x24-\x7e]*")


def check_fields(uri: WebSocketURI, text: str) -> None:
    assert type(uri) is WebSocketURI
    assert uri.secure is (text[:4].lower() == "wss:"), (uri.secure, text)
    host = uri.host
    assert host and host.isascii() and host == host.lower(), host
    if ":" in host:
        assert ipaddress.IPv6Address(host).compressed == host, host
    else:
        assert _REG_NAME.fullmatch(host), host
    assert type(uri.port) is int and 1 <= uri.port <= 65535, uri.port
    assert uri.path.startswith("/") and "?" not in uri.path, uri.path
    assert _TARGET_CHARS.fullmatch(uri.path), uri.path
    assert _TARGET_CHARS.fullmatch(uri.query), uri.query
    assert uri.resource_name == (f"{uri.path}?{uri.query}" if uri.query else uri.path)
    if uri.username is None:
        assert uri.password is None and uri.user_info is None
    else:
        assert ":" not in uri.username
        assert uri.user_info == (uri.username, uri.password or "")


def rebuild(uri: WebSocketURI) -> str:
    """The URI of ``uri``'s fields, every one written explicitly."""
    userinfo = ""
    if uri.username is not None:
        userinfo = urllib.parse.quote(uri.username, safe="")
        if uri.password is not None:
            userinfo += ":" + urllib.parse.quote(uri.password, safe="")
        userinfo += "@"
    host = f"[{uri.host}]" if ":" in uri.host else uri.host
    scheme = "wss" if uri.secure else "ws"
    return f"{scheme}://{userinfo}{host}:{uri.port}{uri.resource_name}"


def check_handshake(uri: WebSocketURI) -> None:
    """A client's request for ``uri`` parses back on the server side."""
    client = ClientProtocol(uri)
    request = Request.parse(client.connect(user_agent=None).serialize())
    assert request.path == uri.resource_name, (request.path, uri.resource_name)
    assert request.headers["Host"] == build_host(uri.host, uri.port, uri.secure)
    if uri.user_info is None:
        assert "Authorization" not in request.headers
    else:
        credentials = parse_authorization_basic(request.headers["Authorization"])
        assert credentials == uri.user_info, (credentials, uri.user_info)


def TestOneInput(data: bytes) -> None:
    source = Input(data)
    mode = source.byte()
    text = PREFIXES[mode & 3] + DECODINGS[mode >> 2 & 3](source.rest())
    if mode & 0x10:
        try:
            parse_uri(data)  # type: ignore[arg-type]
        except InvalidURI:
            pass
        else:
            raise AssertionError("parse_uri accepted bytes")
    try:
        uri = parse_uri(text)
    except InvalidURI as exc:
        assert isinstance(exc, ValueError)
        str(exc)  # formats, whatever the input
        return
    check_fields(uri, text)
    # Finding 1 (docs/fuzzing.md): hosts that IDNA turned into names with an empty label,
    # such as a..b from a\u2025b, broke this round trip; fixed in 7e0f44d.
    again = parse_uri(rebuild(uri))
    assert again == uri, f"{text!r} gave {uri}, then {rebuild(uri)!r} gave {again}"
    check_handshake(uri)


if __name__ == "__main__":
    # Percent-decoding, IPv6 and IDNA are done by these; their branches guide the fuzzer too.
    main(TestOneInput, ("urllib.parse", "ipaddress", "encodings.idna", "encodings.punycode"))
