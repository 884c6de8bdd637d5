"""Parsers and builders for the header grammars of the opening handshake.

RFC 6455 sections 4 and 9.1 build on the HTTP grammar of RFC 7230 section 3.2.6 (``token``,
``quoted-string``, ``OWS``) and on its list rule (section 7):

.. code-block:: text

    1#element = *( "," OWS ) element *( OWS "," [ OWS element ] )

    Connection               = 1#token
    Upgrade                  = 1#( token [ "/" token ] )
    Sec-WebSocket-Protocol   = 1#token
    Sec-WebSocket-Extensions = 1#( token *( OWS ";" OWS param ) )
    param                    = token [ OWS "=" OWS ( token / quoted-string ) ]

Empty list elements, as in ``", ,a"``, are allowed and skipped. Every ``parse_*`` function runs
in linear time and raises only :exc:`~socketeer.exceptions.InvalidHeaderFormat` (and
:exc:`~socketeer.exceptions.InvalidHeaderValue` for an unsupported authorization scheme).
The ``build_*`` functions raise :exc:`ValueError` for values their grammar cannot carry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import Callable, Sequence
from typing import TypeVar

from ..exceptions import InvalidHeaderFormat, InvalidHeaderValue
from ..typedefs import (
    ConnectionOption,
    ExtensionHeader,
    ExtensionName,
    ExtensionParameter,
    Subprotocol,
    UpgradeProtocol,
)

__all__ = [
    "parse_connection",
    "parse_upgrade",
    "parse_extension",
    "build_extension",
    "parse_subprotocol",
    "parse_values",
    "build_subprotocol",
    "validate_subprotocols",
    "generate_key",
    "validate_key",
    "accept_key",
    "build_host",
    "build_authorization_basic",
    "parse_authorization_basic",
    "build_www_authenticate_basic",
]

_T = TypeVar("_T")

# RFC 7230 section 3.2.6. Every quantified group below has alternatives that cannot match the
# same character, so matching never backtracks more than once per character.
_TOKEN_RE = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_OWS_RE = re.compile(r"[\t ]*")
_QUOTED_STRING_RE = re.compile(
    r'"(?:[\t !\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"'
)
_QUOTED_PAIR_RE = re.compile(r"\\([\t\x20-\x7e\x80-\xff])")
_QDTEXT_RE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
# RFC 7235 section 2.1.
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# RFC 4648 section 4: 16 bytes are 22 characters of the alphabet and two padding characters.
_KEY_RE = re.compile(r"[A-Za-z0-9+/]{22}==")

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

_ItemParser = Callable[[str, int, str], tuple[_T, int]]


# Building blocks: each takes (header, pos, header_name) and returns (value, new_pos).


def _parse_ows(header: str, pos: int) -> int:
    """Skip optional whitespace; return the position after it."""
    match = _OWS_RE.match(header, pos)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _parse_token(header: str, pos: int, header_name: str) -> tuple[str, int]:
    """Read a token at ``pos``.

    Raises:
        InvalidHeaderFormat: if there is no token at ``pos``.
    """
    match = _TOKEN_RE.match(header, pos)
    if match is None:
        raise InvalidHeaderFormat(header_name, "expected token", header, pos)
    return match.group(), match.end()


def _parse_quoted_string(header: str, pos: int, header_name: str) -> tuple[str, int]:
    """Read a quoted-string at ``pos`` and return its unescaped content.

    Raises:
        InvalidHeaderFormat: if there is no complete quoted-string at ``pos``.
    """
    match = _QUOTED_STRING_RE.match(header, pos)
    if match is None:
        raise InvalidHeaderFormat(header_name, "expected quoted string", header, pos)
    return _QUOTED_PAIR_RE.sub(r"\1", match.group()[1:-1]), match.end()


def _parse_list(parse_item: _ItemParser[_T], header: str, pos: int, header_name: str) -> list[_T]:
    """Read a ``1#element`` list with ``parse_item``, skipping empty elements.

    Raises:
        InvalidHeaderFormat: if the list is empty or an element is malformed.
    """
    items: list[_T] = []
    pos = _parse_ows(header, pos)
    while True:
        # Empty elements: "," OWS, any number of times, before an element or at the end.
        while header.startswith(",", pos):
            pos = _parse_ows(header, pos + 1)
        if items and pos == len(header):
            return items
        item, pos = parse_item(header, pos, header_name)
        items.append(item)
        pos = _parse_ows(header, pos)
        if pos == len(header):
            return items
        if not header.startswith(",", pos):
            raise InvalidHeaderFormat(header_name, "expected comma", header, pos)


# Connection and Upgrade: RFC 7230 sections 6.1 and 6.7.


def _parse_token_list(parse_item: _ItemParser[str], header: str, header_name: str) -> list[str]:
    """Read a list whose elements are tokens, or start with one (``parse_item``).

    A value that is one token, the usual case, is that list of one, read in one call.
    """
    if _TOKEN_RE.fullmatch(header):
        return [header]
    return _parse_list(parse_item, header, 0, header_name)


def parse_values(values: Sequence[str], parse: Callable[[str], list[_T]]) -> list[_T]:
    """The items of every value of a header that may repeat, in order, each read with
    ``parse``.

    Raises:
        InvalidHeaderFormat: if a value breaks the grammar.
    """
    if len(values) == 1:  # the usual case
        return parse(values[0])
    return [item for value in values for item in parse(value)]


def parse_connection(header: str) -> list[ConnectionOption]:
    """Parse a ``Connection`` header, e.g. ``"keep-alive, Upgrade"``.

    Args:
        header: the header value.

    Returns:
        The connection options, in order, with their case preserved.

    Raises:
        InvalidHeaderFormat: if the value breaks the grammar.
    """
    return [ConnectionOption(t) for t in _parse_token_list(_parse_token, header, "Connection")]


def _parse_upgrade_protocol(header: str, pos: int, header_name: str) -> tuple[str, int]:
    """Read ``protocol-name ["/" protocol-version]`` at ``pos``."""
    name, pos = _parse_token(header, pos, header_name)
    if header.startswith("/", pos):
        version, pos = _parse_token(header, pos + 1, header_name)
        name = f"{name}/{version}"
    return name, pos


def parse_upgrade(header: str) -> list[UpgradeProtocol]:
    """Parse an ``Upgrade`` header, e.g. ``"websocket"`` or ``"HTTP/2.0, websocket"``.

    Args:
        header: the header value.

    Returns:
        The protocols, in order, each as ``name`` or ``name/version``.

    Raises:
        InvalidHeaderFormat: if the value breaks the grammar.
    """
    protocols = _parse_token_list(_parse_upgrade_protocol, header, "Upgrade")
    return [UpgradeProtocol(p) for p in protocols]


# Sec-WebSocket-Extensions: RFC 6455 section 9.1.


def _parse_extension_param(
    header: str, pos: int, header_name: str
) -> tuple[ExtensionParameter, int]:
    """Read ``token [ "=" ( token / quoted-string ) ]`` at ``pos``."""
    name, pos = _parse_token(header, pos, header_name)
    pos = _parse_ows(header, pos)
    if not header.startswith("=", pos):
        return (name, None), pos
    pos = _parse_ows(header, pos + 1)
    if not header.startswith('"', pos):
        value, pos = _parse_token(header, pos, header_name)
        return (name, value), pos
    start = pos
    value, pos = _parse_quoted_string(header, pos, header_name)
    # RFC 6455 section 9.1: "When using the quoted-string syntax variant, the value after
    # quoted-string unescaping MUST conform to the 'token' ABNF."
    if _TOKEN_RE.fullmatch(value) is None:
        raise InvalidHeaderFormat(header_name, "quoted value is not a token", header, start)
    return (name, value), pos


def _parse_extension_item(header: str, pos: int, header_name: str) -> tuple[ExtensionHeader, int]:
    """Read ``extension-token *( ";" extension-param )`` at ``pos``."""
    name, pos = _parse_token(header, pos, header_name)
    params: list[ExtensionParameter] = []
    pos = _parse_ows(header, pos)
    while header.startswith(";", pos):
        param, pos = _parse_extension_param(header, _parse_ows(header, pos + 1), header_name)
        params.append(param)
        pos = _parse_ows(header, pos)
    return (ExtensionName(name), params), pos


def parse_extension(header: str) -> list[ExtensionHeader]:
    """Parse a ``Sec-WebSocket-Extensions`` header.

    For example ``"permessage-deflate; client_max_window_bits, x-foo"`` gives
    ``[("permessage-deflate", [("client_max_window_bits", None)]), ("x-foo", [])]``.
    Quoted parameter values are unescaped.

    Args:
        header: the header value.

    Returns:
        The extensions, in order, each with its parameters in order.

    Raises:
        InvalidHeaderFormat: if the value breaks the grammar.
    """
    return _parse_list(_parse_extension_item, header, 0, "Sec-WebSocket-Extensions")


def _check_token(value: str, what: str) -> None:
    """Raise :exc:`ValueError` unless ``value`` is a token."""
    if _TOKEN_RE.fullmatch(value) is None:
        raise ValueError(f"invalid {what}: {value!r}")


def build_extension(extensions: Sequence[ExtensionHeader]) -> str:
    """Build a ``Sec-WebSocket-Extensions`` header; the reverse of :func:`parse_extension`.

    Args:
        extensions: the extensions, each with its parameters.

    Returns:
        The header value, e.g. ``"permessage-deflate; client_max_window_bits=10, x-foo"``;
        ``""`` for no extensions, in which case the header must not be sent.

    Raises:
        ValueError: if a name or a value is not a token.
    """
    elements = []
    for name, params in extensions:
        _check_token(name, "extension name")
        parts: list[str] = [name]
        for param_name, value in params:
            _check_token(param_name, "extension parameter name")
            if value is None:
                parts.append(param_name)
            else:
                _check_token(value, "extension parameter value")
                parts.append(f"{param_name}={value}")
        elements.append("; ".join(parts))
    return ", ".join(elements)


# Sec-WebSocket-Protocol: RFC 6455 sections 4.1 and 11.3.4.


def parse_subprotocol(header: str) -> list[Subprotocol]:
    """Parse a ``Sec-WebSocket-Protocol`` header, e.g. ``"chat, superchat"``.

    Args:
        header: the header value.

    Returns:
        The subprotocols, in order.

    Raises:
        InvalidHeaderFormat: if the value breaks the grammar.
    """
    tokens = _parse_token_list(_parse_token, header, "Sec-WebSocket-Protocol")
    return [Subprotocol(t) for t in tokens]


def validate_subprotocols(subprotocols: Sequence[Subprotocol]) -> None:
    """Check subprotocols given by the user, before any connection is made.

    Args:
        subprotocols: the subprotocols to offer or to support.

    Raises:
        ValueError: if one is not a token or if one appears twice.
    """
    if isinstance(subprotocols, str):
        raise ValueError("expected a sequence of subprotocols, not a str")
    # RFC 6455 section 4.1: "The elements that comprise this value MUST be non-empty strings
    # with characters in the range U+0021 to U+007E not including separator characters as
    # defined in [RFC2616] and MUST all be unique strings."
    for subprotocol in subprotocols:
        _check_token(subprotocol, "subprotocol")
    if len(set(subprotocols)) != len(subprotocols):
        raise ValueError(f"duplicate subprotocol in {list(subprotocols)!r}")


def build_subprotocol(subprotocols: Sequence[Subprotocol]) -> str:
    """Build a ``Sec-WebSocket-Protocol`` header; the reverse of :func:`parse_subprotocol`.

    Args:
        subprotocols: the subprotocols, in order of preference.

    Returns:
        The header value, e.g. ``"chat, superchat"``; ``""`` for no subprotocols, in which
        case the header must not be sent.

    Raises:
        ValueError: if one is not a token or if one appears twice.
    """
    validate_subprotocols(subprotocols)
    return ", ".join(subprotocols)


# Sec-WebSocket-Key and Sec-WebSocket-Accept: RFC 6455 sections 1.3, 4.1 and 4.2.2.


def generate_key() -> str:
    """Generate a fresh ``Sec-WebSocket-Key`` for a client handshake.

    Returns:
        24 characters of base64 encoding 16 random bytes.
    """
    # RFC 6455 section 4.1: "The value of this header field MUST be a nonce consisting of a
    # randomly selected 16-byte value that has been base64-encoded (see Section 4 of
    # [RFC4648]). The nonce MUST be selected randomly for each connection."
    return base64.b64encode(secrets.token_bytes(16)).decode("ascii")


def validate_key(key: str) -> bool:
    """Tell whether a ``Sec-WebSocket-Key`` received by a server is valid.

    It must be base64 (RFC 4648 section 4, with padding) of exactly 16 bytes. Like most
    decoders (RFC 4648 section 3.5), this does not check that the unused pad bits are zero.

    Args:
        key: the header value.

    Returns:
        Whether the key is valid.
    """
    # RFC 6455 section 4.2.1: "A |Sec-WebSocket-Key| header field with a base64-encoded (see
    # Section 4 of [RFC4648]) value that, when decoded, is 16 bytes in length."
    return _KEY_RE.fullmatch(key) is not None


def accept_key(key: str) -> str:
    """Compute the ``Sec-WebSocket-Accept`` that answers a ``Sec-WebSocket-Key``.

    RFC 6455 section 1.3: the server concatenates the key with the GUID
    ``"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"``, hashes it with SHA-1 and base64-encodes the
    20-byte hash.

    Args:
        key: the client's key, already checked with :func:`validate_key`.

    Returns:
        The accept value, e.g. ``"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="`` for the RFC's example key
        ``"dGhlIHNhbXBsZSBub25jZQ=="``.

    Raises:
        ValueError: if the key is not ASCII.
    """
    digest = hashlib.sha1((key + _GUID).encode("ascii")).digest()
    return binascii.b2a_base64(digest, newline=False).decode("ascii")


# Host: RFC 6455 section 4.1 and RFC 7230 section 5.4.


def build_host(host: str, port: int, secure: bool) -> str:
    """Build the ``Host`` header of a client handshake.

    Args:
        host: a host name, an IPv4 address or an IPv6 address without brackets.
        port: the TCP port.
        secure: whether the connection uses TLS (``wss``).

    Returns:
        The header value, e.g. ``"example.com"``, ``"[::1]:8765"``.
    """
    if ":" in host:
        host = f"[{host}]"
    # RFC 6455 section 4.1: "The request MUST contain a |Host| header field whose value
    # contains /host/ plus optionally ":" followed by /port/ (when not using the default port)."
    if port == (443 if secure else 80):
        return host
    return f"{host}:{port}"


# Basic authentication: RFC 7617.


def build_authorization_basic(username: str, password: str) -> str:
    """Build an ``Authorization`` header for HTTP Basic authentication.

    Args:
        username: the user-id.
        password: the password.

    Returns:
        The header value, ``"Basic "`` followed by base64 of ``username:password`` in UTF-8.

    Raises:
        ValueError: if the username contains a colon, or either part is not encodable in
            UTF-8 (a lone surrogate).
    """
    # RFC 7617 section 2: "a user-id containing a colon character is invalid".
    if ":" in username:
        raise ValueError(f"username contains a colon: {username!r}")
    credentials = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(credentials).decode("ascii")


def parse_authorization_basic(header: str) -> tuple[str, str]:
    """Parse an ``Authorization`` header for HTTP Basic authentication.

    Args:
        header: the header value, e.g. ``"Basic dXNlcjpwYXNz"``.

    Returns:
        The username and the password.

    Raises:
        InvalidHeaderFormat: if the value breaks the grammar or the credentials are not
            base64 of UTF-8 ``username:password``.
        InvalidHeaderValue: if the scheme is not ``Basic``.
    """
    name = "Authorization"
    scheme, pos = _parse_token(header, 0, name)
    # RFC 7235 section 2.1: the scheme is case-insensitive.
    if scheme.lower() != "basic":
        raise InvalidHeaderValue(name, f"unsupported scheme: {scheme}")
    start = _parse_ows(header, pos)
    if start == pos:
        raise InvalidHeaderFormat(name, "expected space after scheme", header, pos)
    match = _TOKEN68_RE.match(header, start)
    if match is None:
        raise InvalidHeaderFormat(name, "expected token68", header, start)
    pos = _parse_ows(header, match.end())
    if pos != len(header):
        raise InvalidHeaderFormat(name, "unexpected data after credentials", header, pos)
    try:
        credentials = base64.b64decode(match.group(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidHeaderFormat(name, "expected base64 of UTF-8", header, start) from None
    username, colon, password = credentials.partition(":")
    if not colon:
        raise InvalidHeaderFormat(name, "expected username:password", header, start)
    return username, password


def build_www_authenticate_basic(realm: str) -> str:
    """Build a ``WWW-Authenticate`` header asking for HTTP Basic authentication.

    Args:
        realm: the protection space, shown to the user by some clients.

    Returns:
        The header value, e.g. ``'Basic realm="chat", charset="UTF-8"'``.

    Raises:
        ValueError: if the realm contains a control character or a character outside
            ISO-8859-1, which a quoted-string cannot carry.
    """
    if _QDTEXT_RE.fullmatch(realm) is None:
        raise ValueError(f"realm cannot be quoted: {realm!r}")
    quoted = realm.replace("\\", "\\\\").replace('"', '\\"')
    # RFC 7617 section 2.1: the only allowed value of charset is "UTF-8".
    return f'Basic realm="{quoted}", charset="UTF-8"'
