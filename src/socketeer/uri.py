"""WebSocket URIs: the ``ws`` and ``wss`` schemes of RFC 6455 section 3.

.. code-block:: text

    ws-URI  = "ws:" "//" host [ ":" port ] path [ "?" query ]
    wss-URI = "wss:" "//" host [ ":" port ] path [ "?" query ]

:func:`parse_uri` checks a URI given by the user and returns a :class:`WebSocketURI` whose
fields are ready for the opening handshake: an ASCII host, a port, and a resource name that
can go on the request line as is. User info (``user:password@``), which RFC 6455 does not
mention, is accepted for HTTP Basic authentication.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

from .exceptions import InvalidURI

__all__ = ["WebSocketURI", "parse_uri"]

_DEFAULT_PORTS = {"ws": 80, "wss": 443}

# Anything that must not appear anywhere in a URI: C0 and C1 controls, DEL, whitespace (which
# would break the request line or hide part of the URI) and lone surrogates (not encodable).
_FORBIDDEN_RE = re.compile(r"[\x00-\x20\x7f-\x9f\s\ud800-\udfff]")
# RFC 3986 appendix B, after "scheme:" and without a fragment: "//" authority, path, query.
# Each group stops at the first delimiter of the next one, so matching is linear.
_HIER_PART_RE = re.compile(r"//([^/?]*)([^?]*)(?:\?(.*))?")
# RFC 3986 section 2.1: "%" starts a percent-encoding, two hexadecimal digits.
_BAD_PERCENT_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# RFC 3986 section 3.2.1, plus the non-ASCII characters of an IRI (RFC 3987).
_USERINFO_RE = re.compile(r"(?:[-A-Za-z0-9._~!$&'()*+,;=:%]|[^\x00-\x7f])*")
# RFC 3986 section 3.2.2: reg-name, after IDNA conversion; IPv4 addresses match it too.
_REG_NAME_RE = re.compile(r"[-A-Za-z0-9._~!$&'()*+,;=]+")
_PORT_RE = re.compile(r"[0-9]*")
# RFC 3986 section 3.3 and 3.4: pchar without the letters, digits and "_.-~" that
# urllib.parse.quote never encodes, and "%" to keep percent-encodings as they are.
_PATH_SAFE = "!$&'()*+,;=:@/%"
_QUERY_SAFE = _PATH_SAFE + "?"


@dataclass(frozen=True)
class WebSocketURI:
    """A parsed ``ws://`` or ``wss://`` URI.

    Build it with :func:`parse_uri`, which checks and normalizes every field.
    """

    secure: bool
    """Whether the scheme is ``wss``, i.e. the connection uses TLS."""
    host: str
    """Host name in ASCII (IDNA for international names), lower-cased, or an IP address;
    IPv6 addresses come without brackets."""
    port: int
    """TCP port: the explicit one, else 80 for ``ws`` and 443 for ``wss``."""
    path: str = "/"
    """Absolute path, percent-encoded; ``"/"`` when the URI has none."""
    query: str = ""
    """Query, percent-encoded, without the ``"?"``; ``""`` when the URI has none."""
    username: str | None = None
    """User name from the user info, percent-decoded, or ``None``."""
    password: str | None = None
    """Password from the user info, percent-decoded, or ``None`` when there is no ``":"``."""

    @property
    def resource_name(self) -> str:
        """The request target of the handshake: the path, then ``"?"`` and the query if any."""
        return f"{self.path}?{self.query}" if self.query else self.path

    @property
    def user_info(self) -> tuple[str, str] | None:
        """The username and password for Basic authentication, or ``None`` without user info.

        The password is ``""`` when the URI gives a user name only.
        """
        if self.username is None:
            return None
        return self.username, self.password or ""


def parse_uri(uri: str) -> WebSocketURI:
    """Parse and check a WebSocket URI.

    Args:
        uri: the URI, e.g. ``"wss://example.com/chat?room=1"`` or ``"ws://[::1]:8765/"``.

    Returns:
        The URI's parts, normalized: see :class:`WebSocketURI`.

    Raises:
        InvalidURI: if ``uri`` is not a str or not a valid ``ws``/``wss`` URI.
    """
    value: object = uri
    if not isinstance(value, str):
        raise InvalidURI(repr(value), f"expected str, got {type(value).__name__}")
    forbidden = _FORBIDDEN_RE.search(uri)
    if forbidden is not None:
        raise InvalidURI(uri, f"invalid character {forbidden.group()!r} at {forbidden.start()}")
    # RFC 6455 section 3: "Fragment identifiers are meaningless in the context of WebSocket
    # URIs and MUST NOT be used on these URIs. As with any URI scheme, the character "#",
    # when not indicating the start of a fragment, MUST be escaped as %23."
    if "#" in uri:
        raise InvalidURI(uri, "fragments are not allowed")
    scheme, _, rest = uri.partition(":")
    scheme = scheme.lower() if scheme.isascii() else scheme
    if scheme not in _DEFAULT_PORTS:
        raise InvalidURI(uri, "scheme must be ws or wss")
    match = _HIER_PART_RE.fullmatch(rest)
    if match is None:
        raise InvalidURI(uri, "missing host")
    authority, path, query = match.groups(default="")
    userinfo, at, hostport = authority.rpartition("@")
    host, port = _parse_hostport(uri, hostport, _DEFAULT_PORTS[scheme])
    username, password = _parse_userinfo(uri, userinfo) if at else (None, None)
    return WebSocketURI(
        secure=scheme == "wss",
        host=host,
        port=port,
        path=_encode(uri, path or "/", _PATH_SAFE),
        query=_encode(uri, query, _QUERY_SAFE),
        username=username,
        password=password,
    )


def _parse_hostport(uri: str, hostport: str, default_port: int) -> tuple[str, int]:
    """Split ``host [":" port]`` and check both parts.

    Raises:
        InvalidURI: if the host or the port is missing or invalid.
    """
    if hostport.startswith("["):
        literal, bracket, rest = hostport[1:].partition("]")
        if not bracket:
            raise InvalidURI(uri, "unclosed bracket in host")
        if rest and not rest.startswith(":"):
            raise InvalidURI(uri, "unexpected characters after IPv6 address")
        return _parse_ipv6(uri, literal), _parse_port(uri, rest[1:], default_port)
    if hostport.count(":") > 1 and _is_ipv6(hostport):
        raise InvalidURI(uri, "IPv6 addresses must be enclosed in brackets")
    host, _, port = hostport.partition(":")
    return _parse_host(uri, host), _parse_port(uri, port, default_port)


def _is_ipv6(host: str) -> bool:
    """Tell whether ``host`` is an IPv6 address."""
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def _parse_ipv6(uri: str, literal: str) -> str:
    """Check an IPv6 address found between brackets and return its compressed form.

    Raises:
        InvalidURI: if it is not an IPv6 address, or has a zone identifier (RFC 6874).
    """
    if "%" in literal:
        raise InvalidURI(uri, "IPv6 zone identifiers are not supported")
    try:
        return ipaddress.IPv6Address(literal).compressed
    except ValueError:
        raise InvalidURI(uri, f"invalid IPv6 address: {literal}") from None


def _parse_host(uri: str, host: str) -> str:
    """Percent-decode a host name, lower-case it and convert it to ASCII with IDNA.

    Raises:
        InvalidURI: if the host is missing or cannot be a host name.
    """
    if not host:
        raise InvalidURI(uri, "missing host")
    try:
        decoded = urllib.parse.unquote(host, errors="strict").lower()
        ascii_host = decoded.encode("idna").decode("ascii")
        # IDNA splits labels on dots before mapping characters, some of which map to dots
        # (U+2025 TWO DOT LEADER becomes ".."): check the labels of the result again.
        ascii_host.encode("idna")
    except UnicodeError:
        raise InvalidURI(uri, f"invalid host: {host}") from None
    if _REG_NAME_RE.fullmatch(ascii_host) is None:
        raise InvalidURI(uri, f"invalid host: {host}")
    return ascii_host


def _parse_port(uri: str, port: str, default_port: int) -> int:
    """Check a port; an empty one means the default (RFC 3986 section 3.2.3).

    Raises:
        InvalidURI: if the port is not a number from 1 to 65535.
    """
    if not port:
        return default_port
    if _PORT_RE.fullmatch(port) is None:
        raise InvalidURI(uri, f"invalid port: {port}")
    # Strip leading zeros first: int() refuses strings of thousands of digits.
    digits = port.lstrip("0")
    if len(digits) > 5 or not 1 <= int(digits or "0") <= 65535:
        raise InvalidURI(uri, f"port out of range: {port}")
    return int(digits)


def _parse_userinfo(uri: str, userinfo: str) -> tuple[str, str | None]:
    """Split ``user [":" password]`` and percent-decode both parts.

    Raises:
        InvalidURI: if the user info has characters RFC 3986 does not allow there,
            percent-encodings that are not UTF-8, or a username with a colon.
    """
    if _USERINFO_RE.fullmatch(userinfo) is None or _BAD_PERCENT_RE.search(userinfo):
        raise InvalidURI(uri, "invalid user info")
    username, colon, password = userinfo.partition(":")
    try:
        username = urllib.parse.unquote(username, errors="strict")
        password = urllib.parse.unquote(password, errors="strict")
    except UnicodeDecodeError:
        raise InvalidURI(uri, "user info is not UTF-8") from None
    # User info only serves Basic authentication, and RFC 7617 section 2 says that "a user-id
    # containing a colon character is invalid": fail now rather than during the handshake.
    if ":" in username:
        raise InvalidURI(uri, "username contains a colon")
    return username, password if colon else None


def _encode(uri: str, component: str, safe: str) -> str:
    """Percent-encode what a path or a query cannot hold as is, in UTF-8.

    Raises:
        InvalidURI: if a ``"%"`` does not start a percent-encoding.
    """
    bad = _BAD_PERCENT_RE.search(component)
    if bad is not None:
        raise InvalidURI(
            uri, f"invalid percent-encoding: {component[bad.start() : bad.end() + 2]}"
        )
    return urllib.parse.quote(component, safe=safe)
