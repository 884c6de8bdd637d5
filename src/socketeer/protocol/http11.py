"""The HTTP/1.1 messages of the opening handshake: requests, responses and their headers.

Only what the WebSocket upgrade needs (RFC 6455 section 4, RFC 9112): a request is a request
line and headers, with no body; a response is a status line, headers and, when it is not a
101, a body. Parsing is incremental, strict and bounded: :class:`RequestParser` and
:class:`ResponseParser` read complete lines from a growing buffer, remember where they stopped,
and fail as soon as a limit is passed, so that a peer that sends one byte at a time or a huge
header costs a bounded amount of memory and time.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass

from ..exceptions import InvalidMessage, MultipleValuesError, SecurityError
from ..typedefs import BytesLike

__all__ = [
    "MAX_LINE_LENGTH",
    "MAX_NUM_HEADERS",
    "MAX_HEAD_SIZE",
    "MAX_BODY_SIZE",
    "Headers",
    "Request",
    "Response",
    "RequestParser",
    "ResponseParser",
]

MAX_LINE_LENGTH = 8192
"""Longest request line, status line or header line accepted, in bytes."""

MAX_NUM_HEADERS = 128
"""Most header lines accepted in one message."""
MAX_HEAD_SIZE = 65536
"""Most bytes of a start line and header lines in all: 128 lines of 8 KiB would be 1 MiB.
(nginx stops at 32 KiB by default, Node.js at 16 KiB; big cookies fit either way.)"""

MAX_BODY_SIZE = 1_048_576
"""Largest body accepted in a response that is not a 101, in bytes."""

# RFC 9110 section 5.1: field-name = token.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 section 5.5: field-value = *field-content; no CR, LF or NUL, no other controls
# but HTAB. Leading and trailing whitespace (OWS) is not part of the value.
_VALUE = re.compile(rb"[\x09\x20-\x7e\x80-\xff]*")
_VALUE_STR = re.compile(r"[\x09\x20-\x7e\x80-\xff]*")
# The bytes of field values: to check many lines at once.
_VALUE_BYTES = bytes([0x09, *range(0x20, 0x7F), *range(0x80, 0x100)])
_DIGITS = re.compile(r"[0-9]+")
_TOKEN_STR = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Field names joined by colons, which no token contains: to check them all at once.
_TOKENS = re.compile(f"{_TOKEN_STR.pattern}(?::{_TOKEN_STR.pattern})*")
# RFC 9112 section 3: request-line = method SP request-target SP HTTP-version; the WebSocket
# upgrade uses the origin-form of request-target (RFC 6455 section 4.1, "resource name").
_REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) (HTTP/\d\.\d)")
# RFC 6455 section 4.1: the Request-URI is the resource name, or "an absolute http/https URI
# that, when parsed, has a /resource name/, /host/, and /port/ that match".
_ABSOLUTE_FORM = re.compile(rb"https?://[^/?#]+([/?][^#]*)?", re.IGNORECASE)
# RFC 9112 section 4: status-line = HTTP-version SP status-code SP [ reason-phrase ].
_STATUS_LINE = re.compile(rb"(HTTP/\d\.\d) (\d{3})(?: ([\x09\x20-\x7e\x80-\xff]*))?")


class Headers(MutableMapping[str, str]):
    """HTTP headers: a case-insensitive mapping that keeps every value and their order.

    ``headers[name]`` returns the value of a header that appears once and raises
    :exc:`~socketeer.exceptions.MultipleValuesError` for one that appears several times;
    :meth:`get_all` returns every value. Setting a header adds a value; deleting removes
    every value of that name.
    """

    __slots__ = ("_items", "_index")

    def __init__(
        self, items: Iterable[tuple[str, str]] | MutableMapping[str, str] = (), /
    ) -> None:
        # name, value, name, value...: flat, without a tuple per header.
        self._items: list[str] = []
        # Lower-case name -> values: made by the first lookup, dropped by shrink().
        self._index: dict[str, list[str]] | None = None
        if items:  # most are made empty: spare them the slow isinstance() of an ABC
            pairs = items.items() if isinstance(items, MutableMapping) else items
            for name, value in pairs:
                self[name] = value

    def _lookup(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            index = self._index = {}
            items = self._items
            for i in range(0, len(items), 2):
                index.setdefault(items[i].lower(), []).append(items[i + 1])
        return index

    def shrink(self) -> None:
        """Drop the index that speeds up lookups, to save memory while nothing looks
        anything up; the next lookup makes it again. Connections do this after the
        handshake, for the request and the response they keep."""
        self._index = None

    def __str__(self) -> str:
        # One format for every line: half the cost of formatting them one by one.
        return ("%s: %s\r\n" * (len(self._items) // 2) + "\r\n") % tuple(self._items)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({list(self.raw_items())!r})"

    def copy(self) -> Headers:
        """A shallow copy."""
        return Headers(self.raw_items())

    def serialize(self) -> bytes:
        """The header lines and the blank line that ends them, as sent on the wire."""
        return str(self).encode("latin-1")

    # The lookups read the index straight when it exists: they run several times per handshake.

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        index = self._index if self._index is not None else self._lookup()
        return key.lower() in index

    def __iter__(self) -> Iterator[str]:
        return iter(self._lookup())

    def __len__(self) -> int:
        return len(self._lookup())

    def __getitem__(self, key: str) -> str:
        index = self._index if self._index is not None else self._lookup()
        values = index[key.lower()]
        if len(values) == 1:
            return values[0]
        raise MultipleValuesError(key)

    def __setitem__(self, key: str, value: str) -> None:
        # Refuse what would let a value smuggle another header or end the block early.
        if _TOKEN_STR.fullmatch(key) is None:
            raise ValueError(f"invalid header name: {key!r}")
        if _VALUE_STR.fullmatch(value) is None:
            raise ValueError(f"invalid value for header {key}: {value!r}")
        self._add(key, value)

    def _add(self, key: str, value: str) -> None:
        # For the parser, which checked the bytes already, and for values valid by
        # construction.
        self._items += (key, value)
        if self._index is not None:
            self._index.setdefault(key.lower(), []).append(value)

    def _add_items(self, items: list[str]) -> None:
        # For the parser too: names and values in turn, checked already.
        self._items += items
        self._index = None  # made again by the next lookup

    def __delitem__(self, key: str) -> None:
        key_lower = key.lower()
        del self._lookup()[key_lower]
        self._items = [x for k, v in self.raw_items() if k.lower() != key_lower for x in (k, v)]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._lookup() == other._lookup()

    def clear(self) -> None:
        """Remove every header."""
        self._items = []
        self._index = None

    def update(self, *args: object, **kwargs: str) -> None:
        """Add headers from a mapping or from ``(name, value)`` pairs; adds, never replaces."""
        for arg in args:
            pairs = arg.items() if isinstance(arg, MutableMapping) else arg
            for name, value in pairs:  # type: ignore[attr-defined]
                self[name] = value
        for name, value in kwargs.items():
            self[name] = value

    def get_all(self, key: str) -> list[str]:
        """Every value of header ``key``, in order; an empty list when there is none."""
        index = self._index if self._index is not None else self._lookup()
        return index.get(key.lower(), [])

    def raw_items(self) -> Iterator[tuple[str, str]]:
        """Every ``(name, value)`` pair, in order, names as they were given."""
        items = self._items
        return zip(items[::2], items[1::2], strict=True)


@dataclass
class Request:
    """An HTTP request: the client's side of the opening handshake.

    Attributes:
        path: the request target, e.g. ``"/chat?room=1"``.
        headers: the request headers.
        method: the request method; ``GET`` for a WebSocket upgrade.
    """

    path: str
    headers: Headers
    method: str = "GET"

    def serialize(self) -> bytes:
        """The request's bytes on the wire."""
        start_line = f"{self.method} {self.path} HTTP/1.1\r\n"
        return start_line.encode("latin-1") + self.headers.serialize()

    @classmethod
    def parse(cls, data: BytesLike) -> Request:
        """Parse a whole request; for tools and tests (connections use :class:`RequestParser`).

        Raises:
            InvalidMessage: if ``data`` is not one whole, valid request and nothing more.
            SecurityError: if a limit is exceeded.
        """
        parser = RequestParser()
        request = parser.feed(data)
        if request is None or parser.consumed != len(data):
            raise InvalidMessage("expected exactly one complete HTTP request")
        return request


@dataclass
class Response:
    """An HTTP response: the server's side of the opening handshake.

    Attributes:
        status_code: the status code, e.g. 101.
        reason_phrase: the reason phrase, e.g. ``"Switching Protocols"``.
        headers: the response headers.
        body: the body; always empty for a 101.
    """

    status_code: int
    reason_phrase: str
    headers: Headers
    body: bytes = b""

    def serialize(self) -> bytes:
        """The response's bytes on the wire."""
        status_line = f"HTTP/1.1 {self.status_code} {self.reason_phrase}\r\n"
        return status_line.encode("latin-1") + self.headers.serialize() + self.body

    @classmethod
    def parse(cls, data: BytesLike) -> Response:
        """Parse a whole response, its body ending where ``data`` ends; for tools and tests.

        Raises:
            InvalidMessage: if ``data`` is not one whole, valid response and nothing more.
            SecurityError: if a limit is exceeded.
        """
        parser = ResponseParser()
        response = parser.feed(data, eof=True)
        if response is None or parser.consumed != len(data):
            raise InvalidMessage("expected exactly one complete HTTP response")
        return response


class _HeadParser:
    """Reads a start line and header lines from a buffer that grows between calls.

    Theory of operation: ``consumed`` is the offset of the first byte not yet read into a
    line; every call reads the complete lines after it and stops at the first incomplete one,
    so each byte is scanned once however the message is split. Limits are checked on every
    line and on the incomplete tail, before it is buffered any further.
    """

    def __init__(self) -> None:
        self.consumed = 0
        """Bytes of the buffer read so far."""
        self.start_line: bytes | None = None
        self.headers = Headers()
        self.done = False
        self._count = 0

    def _feed_head(self, buffer: BytesLike) -> bool:
        """Read lines until the blank line; return whether it was reached."""
        pos = self.consumed
        view = bytes(buffer[pos:]) if not isinstance(buffer, bytes) else buffer[pos:]
        if self.start_line is None and self._read_whole_head(view):
            return True
        offset = 0
        while not self.done:
            end = view.find(b"\r\n", offset)
            if end < 0:
                # A chunk may end between CR and LF: the CR is not part of the line.
                if len(view) - offset - view.endswith(b"\r") > MAX_LINE_LENGTH:
                    raise SecurityError(f"line exceeds limit of {MAX_LINE_LENGTH} bytes")
                break
            if end - offset > MAX_LINE_LENGTH:
                raise SecurityError(f"line exceeds limit of {MAX_LINE_LENGTH} bytes")
            self._read_line(view[offset:end])
            offset = end + 2
        self.consumed = pos + offset
        if (self.consumed if self.done else pos + len(view)) > MAX_HEAD_SIZE:
            raise SecurityError(f"headers exceed limit of {MAX_HEAD_SIZE} bytes")
        return self.done

    def _read_whole_head(self, view: bytes) -> bool:
        """Read a head that arrived whole and breaks no rule, at once; return whether it did.

        The usual case, made cheaper than line by line: within :data:`MAX_LINE_LENGTH` bytes,
        a head cannot break a size limit, and the rules of :meth:`_read_line` are checked
        for every line with one call each. Anything else (an incomplete head, a longer one, a
        fault, too many lines) is left to the line by line reader, from the start, which
        reports the first fault as it always did.
        """
        end = view.find(b"\r\n\r\n", 0, MAX_LINE_LENGTH + 4)
        if end < 0:
            return False
        first = view.find(b"\r\n")  # the end of the start line, at most end
        lines = view[first + 2 : end]
        # Controls but HTAB (CR and LF included) are in no name and no value: the separators
        # are the only ones left, one CRLF between two lines.
        if lines.translate(None, _VALUE_BYTES) != b"\r\n" * lines.count(b"\r\n"):
            return False
        items: list[str] = []  # name, value, name, value...
        if first < end:
            for line in lines.decode("latin-1").split("\r\n"):
                name, colon, value = line.partition(":")
                if not colon:
                    return False
                # Names are interned: every connection shares the strings of the usual ones.
                items += (sys.intern(name), value.strip(" \t"))
        # Names are tokens: checked at once, joined by a colon, which none contains.
        if len(items) > 2 * MAX_NUM_HEADERS:
            return False
        if items and _TOKENS.fullmatch(":".join(items[::2])) is None:
            return False
        self.headers._add_items(items)
        self.start_line = view[:first]
        self._count = len(items) // 2
        self.done = True
        self.consumed = end + 4
        return True

    def _read_line(self, line: bytes) -> None:
        if self.start_line is None:
            self.start_line = line
            return
        if not line:
            self.done = True
            return
        self._count += 1
        if self._count > MAX_NUM_HEADERS:
            raise SecurityError(f"more than {MAX_NUM_HEADERS} headers")
        name, colon, value = line.partition(b":")
        # RFC 9112 section 5.1: "No whitespace is allowed between the field name and colon. [...]
        # A server MUST reject, with a response status code of 400 (Bad Request), any
        # received request message that contains whitespace between a header field name and
        # colon." Obsolete line folding starts with whitespace and fails the same check.
        if not colon or _TOKEN.fullmatch(name) is None:
            raise InvalidMessage(f"invalid HTTP header line: {_show(line)}")
        value = value.strip(b" \t")
        if _VALUE.fullmatch(value) is None:
            raise InvalidMessage(f"invalid HTTP header value: {_show(line)}")
        # Names are interned: every connection shares the strings of the usual ones.
        self.headers._add(sys.intern(name.decode("ascii")), value.decode("latin-1"))


class RequestParser(_HeadParser):
    """Parses an HTTP/1.1 request incrementally; see :meth:`feed`."""

    def feed(self, buffer: BytesLike) -> Request | None:
        """Read what ``buffer`` holds of the request.

        Pass the whole buffer each time, with new data appended; the parser remembers where it
        stopped. Bytes after the request (frames sent without waiting for the response) start
        at :attr:`consumed`.

        Returns:
            The request once it is complete, else ``None``.

        Raises:
            InvalidMessage: if the request is malformed.
            SecurityError: if a line is too long or there are too many headers.
        """
        if not self._feed_head(buffer):
            return None
        assert self.start_line is not None
        match = _REQUEST_LINE.fullmatch(self.start_line)
        if match is None:
            raise InvalidMessage(f"invalid HTTP request line: {_show(self.start_line)}")
        method, target, version = match.groups()
        if target.startswith(b"/"):
            path = target
        else:
            absolute = _ABSOLUTE_FORM.fullmatch(target)
            if absolute is None:
                raise InvalidMessage(f"invalid request target: {_show(target)}")
            path = absolute.group(1) or b"/"
            if path.startswith(b"?"):
                path = b"/" + path
        # RFC 6455 section 4.1: "the HTTP version MUST be at least 1.1"; 1.1 is the only
        # version that is at least 1.1 and uses this syntax.
        if version != b"HTTP/1.1":
            raise InvalidMessage(f"unsupported protocol; expected HTTP/1.1: {_show(version)}")
        return Request(path.decode("ascii"), self.headers, method.decode("ascii"))


class ResponseParser(_HeadParser):
    """Parses an HTTP/1.1 response incrementally, with its body; see :meth:`feed`.

    Args:
        max_body_size: the largest body accepted, in bytes.
    """

    def __init__(self, max_body_size: int = MAX_BODY_SIZE) -> None:
        super().__init__()
        self.max_body_size = max_body_size
        self._status: tuple[int, str] | None = None
        self._body_size: int | None = None

    def feed(self, buffer: BytesLike, *, eof: bool = False) -> Response | None:
        """Read what ``buffer`` holds of the response.

        Pass the whole buffer each time, with new data appended, and ``eof=True`` once the
        connection is closed. A 101 has no body; bytes after it (the server's first frames)
        start at :attr:`consumed`. Other responses end after ``Content-Length`` bytes, or at
        the end of the connection.

        Returns:
            The response once it is complete, else ``None``.

        Raises:
            InvalidMessage: if the response is malformed or the connection ended too early.
            SecurityError: if a limit is exceeded.
        """
        if self._status is None:
            if not self._feed_head(buffer):
                if eof:
                    raise InvalidMessage("connection closed while reading HTTP response")
                return None
            self._status = self._parse_status_line()
            self._body_size = self._get_body_size(self._status[0])
        status_code, reason = self._status
        body_size = self._body_size
        available = len(buffer) - self.consumed
        if body_size is None:  # until the end of the connection
            if available > self.max_body_size:
                raise SecurityError(f"body exceeds limit of {self.max_body_size} bytes")
            if not eof:
                return None
            body_size = available
        elif available < body_size:
            if eof:
                raise InvalidMessage("connection closed while reading HTTP response body")
            return None
        body = bytes(buffer[self.consumed : self.consumed + body_size])
        self.consumed += body_size
        return Response(status_code, reason, self.headers, body)

    def _parse_status_line(self) -> tuple[int, str]:
        assert self.start_line is not None
        match = _STATUS_LINE.fullmatch(self.start_line)
        if match is None:
            raise InvalidMessage(f"invalid HTTP status line: {_show(self.start_line)}")
        version, status, reason = match.group(1, 2, 3)
        if version != b"HTTP/1.1":
            raise InvalidMessage(f"unsupported protocol; expected HTTP/1.1: {_show(version)}")
        status_code = int(status)
        if not 100 <= status_code < 600:
            raise InvalidMessage(f"invalid HTTP status code: {status_code}")
        return status_code, (reason or b"").decode("latin-1")

    def _get_body_size(self, status_code: int) -> int | None:
        """The body's size in bytes, or ``None`` when it runs to the end of the connection."""
        # RFC 9112 section 6.3: 1xx, 204 and 304 responses have no body.
        if status_code < 200 or status_code in (204, 304):
            return 0
        if "Transfer-Encoding" in self.headers:
            # A chunked error page would need a decoder just to be shown to the user; read it
            # to the end of the connection instead, raw and bounded.
            return None
        lengths = self.headers.get_all("Content-Length")
        if not lengths:
            return None
        if len(set(lengths)) != 1 or _DIGITS.fullmatch(lengths[0]) is None:
            raise InvalidMessage(f"invalid Content-Length: {', '.join(lengths)[:80]}")
        if len(lengths[0]) > 18:
            raise SecurityError(f"body exceeds limit of {self.max_body_size} bytes")
        size = int(lengths[0])
        if size > self.max_body_size:
            raise SecurityError(f"body of {size} bytes exceeds limit of {self.max_body_size}")
        return size


def _show(data: bytes, limit: int = 80) -> str:
    """A short, printable rendering of bytes from the wire, for error messages."""
    text = data[:limit].decode("ascii", "backslashreplace")
    return repr(text + ("..." if len(data) > limit else ""))
