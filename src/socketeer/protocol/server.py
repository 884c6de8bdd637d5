"""The server side of the sans-I/O protocol: the opening handshake of RFC 6455 section 4.2.

Usage: feed what the client sends to
:meth:`~socketeer.protocol.base.Protocol.receive_data`. The first event is the client's
:class:`~socketeer.protocol.http11.Request`. Answer it with
:meth:`ServerProtocol.accept` (which checks it and returns a 101, or a rejection when it is
not a valid upgrade) or with :meth:`ServerProtocol.reject` (any other answer: a health
check, a page, a refusal), and queue the answer with :meth:`ServerProtocol.send_response`.
After a 101 the state is ``OPEN``; after anything else the connection ends.

A request that cannot be parsed is answered by the protocol itself: 400, or 431 when it
breaks a size limit.
"""

from __future__ import annotations

import email.utils
import http
import time
from collections.abc import Callable, Iterable, Sequence

from ..exceptions import (
    HandshakeError,
    InvalidHeader,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidOrigin,
    InvalidState,
    InvalidUpgrade,
    MultipleValuesError,
    NegotiationError,
    SecurityError,
)
from ..typedefs import ExtensionHeader, LoggerLike, Origin, StatusLike, Subprotocol
from ..version import __version__
from .base import CONNECTING, MAX_SIZE, OPEN, SERVER, Protocol, State
from .extensions.base import Extension, ServerExtensionFactory
from .headers import (
    accept_key,
    build_extension,
    parse_connection,
    parse_extension,
    parse_subprotocol,
    parse_upgrade,
    parse_values,
    validate_key,
    validate_subprotocols,
)
from .http11 import Headers, Request, RequestParser, Response

__all__ = ["ServerProtocol", "SERVER_HEADER", "SelectSubprotocol"]

SERVER_HEADER = f"socketeer/{__version__}"
"""Default ``Server`` header."""

SelectSubprotocol = Callable[[Sequence[Subprotocol], Sequence[Subprotocol]], Subprotocol | None]
"""``select_subprotocol(offered, supported)``: the subprotocol to use, or ``None``."""


class ServerProtocol(Protocol):
    """The sans-I/O protocol of a WebSocket server.

    Args:
        origins: the acceptable values of the ``Origin`` header, ``None`` standing for
            requests without one; ``None`` (the default) accepts any origin.
        extensions: the extensions supported, in order of preference.
        subprotocols: the subprotocols supported, in order of preference.
        select_subprotocol: picks the subprotocol from the client's offer; by default the
            first of ``subprotocols`` that the client offered.
        server_header: the ``Server`` header; ``None`` to send none.
        state: the initial state; ``OPEN`` skips the handshake.
        max_size: the largest message accepted, in bytes; ``None`` for no limit.
        logger: where to log; ``socketeer.server`` by default.

    Raises:
        ValueError: if a subprotocol is not a valid token.
    """

    # Slots too: an idle connection keeps its protocol; a dict would cost ~350 bytes.
    __slots__ = (
        "origins",
        "available_extensions",
        "available_subprotocols",
        "select_subprotocol",
        "server_header",
        "subprotocol",
        "request",
        "response",
        "_parser",
    )

    def __init__(
        self,
        *,
        origins: Sequence[Origin | None] | None = None,
        extensions: Sequence[ServerExtensionFactory] | None = None,
        subprotocols: Sequence[Subprotocol] | None = None,
        select_subprotocol: SelectSubprotocol | None = None,
        server_header: str | None = SERVER_HEADER,
        state: State = CONNECTING,
        max_size: int | None = MAX_SIZE,
        logger: LoggerLike | None = None,
    ) -> None:
        super().__init__(SERVER, state=state, max_size=max_size, logger=logger)
        self.origins = None if origins is None else list(origins)
        """The acceptable origins, or ``None`` for any."""
        self.available_extensions = list(extensions or ())
        """The extensions supported."""
        self.available_subprotocols = list(subprotocols or ())
        """The subprotocols supported."""
        if self.available_subprotocols:
            validate_subprotocols(self.available_subprotocols)
        self.select_subprotocol = select_subprotocol or _first_supported
        self.server_header = server_header
        self.subprotocol: Subprotocol | None = None
        """The subprotocol chosen, once the handshake succeeded."""
        self.request: Request | None = None
        """The client's request, once received."""
        self.response: Response | None = None
        """The response sent, once sent."""
        self._parser: RequestParser | None = RequestParser()  # until the request is read

    def _receive_handshake(self) -> None:
        if self._parser is None:
            return  # waiting for the driver to answer; keep buffering what comes
        try:
            request = self._parser.feed(self._buffer)
        except SecurityError as exc:
            self.handshake_exc = exc
            # RFC 9112 section 3: a request-target too long MUST get 414; 431 is for headers
            # (RFC 6585 section 5).
            status = 414 if self._parser.start_line is None else 431
            self.send_response(self.reject(status, f"request rejected: {exc}"))
            return
        except InvalidMessage as exc:
            self.handshake_exc = exc
            self.send_response(self.reject(400, f"request rejected: {exc}"))
            return
        if request is None:
            return
        del self._buffer[: self._parser.consumed]
        self._parser = None
        self.request = request
        if self.debug:
            self.logger.debug("< %s %s HTTP/1.1", request.method, request.path)
            for name, value in request.headers.raw_items():
                self.logger.debug("< %s: %s", name, value)
        self._events.append(request)

    @property
    def handshake_backlog(self) -> int:
        """Bytes received after the request, waiting for the answer to the handshake (a
        driver stops reading past a limit while the application decides)."""
        return len(self._buffer) if self._parser is None and self.state is CONNECTING else 0

    def _receive_handshake_eof(self) -> None:
        if self.request is None and self.handshake_exc is None:
            self.handshake_exc = InvalidMessage("connection closed while reading HTTP request")

    def accept(self, request: Request) -> Response:
        """Check the opening handshake request and build the answer.

        Returns:
            A 101 that accepts the upgrade when the request is valid; otherwise a rejection
            (400, 403, 405 or 426) whose body says why, and :attr:`handshake_exc` holds the
            cause. Queue it with :meth:`send_response`.
        """
        try:
            key, extensions_header, subprotocol = self.process_request(request)
        except InvalidOrigin as exc:
            return self._reject_for(exc, http.HTTPStatus.FORBIDDEN)
        except InvalidUpgrade as exc:
            response = self._reject_for(exc, http.HTTPStatus.UPGRADE_REQUIRED)
            response.headers["Upgrade"] = "websocket"
            return response
        except _MethodNotAllowed as exc:
            response = self._reject_for(exc, http.HTTPStatus.METHOD_NOT_ALLOWED)
            response.headers["Allow"] = "GET"
            return response
        except _UnsupportedVersion as exc:
            response = self._reject_for(exc, http.HTTPStatus.UPGRADE_REQUIRED)
            response.headers["Sec-WebSocket-Version"] = "13"
            return response
        except HandshakeError as exc:
            return self._reject_for(exc, http.HTTPStatus.BAD_REQUEST)

        headers = Headers()
        self._add_common_headers(headers)
        # Valid values by construction: no need to check them as headers[...] = ... does.
        headers._add("Upgrade", "websocket")
        headers._add("Connection", "Upgrade")
        headers._add("Sec-WebSocket-Accept", accept_key(key))
        if extensions_header:
            headers["Sec-WebSocket-Extensions"] = build_extension(extensions_header)
        if subprotocol is not None:
            headers["Sec-WebSocket-Protocol"] = subprotocol
        self.subprotocol = subprotocol
        return Response(101, "Switching Protocols", headers)

    def _reject_for(self, exc: HandshakeError, status: http.HTTPStatus) -> Response:
        self.handshake_exc = exc
        if self.debug:
            self.logger.debug("! invalid handshake request: %s", exc)
        return self.reject(status, f"failed to open a WebSocket connection: {exc}")

    def process_request(
        self, request: Request
    ) -> tuple[str, list[ExtensionHeader], Subprotocol | None]:
        """Check the request, as RFC 6455 section 4.2.1 lists it, and negotiate.

        Returns:
            The ``Sec-WebSocket-Key``, the accepted extensions' answer and the subprotocol.

        Raises:
            HandshakeError: if the request is not a valid upgrade; the subclass tells which
                status answers it.
        """
        headers = request.headers
        # "An HTTP/1.1 or higher GET request, including a "Request-URI"" (the parser checked
        # the version and the origin-form of the target).
        if request.method != "GET":
            raise _MethodNotAllowed(f"unsupported method {request.method}; expected GET")
        # "A |Host| header field containing the server's authority."
        _single(headers, "Host")
        # "An |Upgrade| header field containing the value "websocket", treated as an ASCII
        # case-insensitive value."
        upgrade = parse_values(headers.get_all("Upgrade"), parse_upgrade)
        if "websocket" not in map(str.lower, upgrade):
            raise InvalidUpgrade("Upgrade", ", ".join(upgrade) or None)
        # "A |Connection| header field that includes the token "Upgrade", treated as an ASCII
        # case-insensitive value."
        connection = parse_values(headers.get_all("Connection"), parse_connection)
        if "upgrade" not in map(str.lower, connection):
            raise InvalidUpgrade("Connection", ", ".join(connection) or None)
        # "A |Sec-WebSocket-Key| header field with a base64-encoded value that, when decoded,
        # is 16 bytes in length."
        key = _single(headers, "Sec-WebSocket-Key")
        if not validate_key(key):
            raise InvalidHeaderValue("Sec-WebSocket-Key", key)
        # "A |Sec-WebSocket-Version| header field, with a value of 13." Section 4.4: otherwise
        # the server answers 426 with the versions it supports.
        version = _single(headers, "Sec-WebSocket-Version")
        if version != "13":
            raise _UnsupportedVersion("Sec-WebSocket-Version", version)
        # "Optionally, an |Origin| header field." Section 10.2: a server that checks it
        # answers 403 to an origin it does not accept.
        self._process_origin(headers)
        return key, self._process_extensions(headers), self._process_subprotocol(headers)

    def _process_origin(self, headers: Headers) -> None:
        if self.origins is None:
            return
        try:
            origin = Origin(headers["Origin"])
        except KeyError:
            origin = None
        except MultipleValuesError:
            raise InvalidHeader("Origin", "multiple values") from None
        # RFC 6455 section 4.2.2: "The origin is serialized to ASCII and converted to
        # lowercase"; compare it that way.
        lowered = None if origin is None else origin.lower()
        if not any(o == lowered if o is None else o.lower() == lowered for o in self.origins):
            raise InvalidOrigin(origin)

    def _process_extensions(self, headers: Headers) -> list[ExtensionHeader]:
        # Section 9.1: the server accepts offers in the client's order of preference, each
        # extension at most once, and declines what it cannot accept.
        answers: list[ExtensionHeader] = []
        accepted: list[Extension] = []
        offers = parse_values(headers.get_all("Sec-WebSocket-Extensions"), parse_extension)
        for name, params in offers:
            for factory in self.available_extensions:
                if factory.name != name or any(e.name == name for e in accepted):
                    continue
                try:
                    answer, extension = factory.process_request_params(params, accepted)
                except NegotiationError:
                    continue
                answers.append((name, answer))
                accepted.append(extension)
                break
        self.extensions = accepted
        return answers

    def _process_subprotocol(self, headers: Headers) -> Subprotocol | None:
        offered = parse_values(headers.get_all("Sec-WebSocket-Protocol"), parse_subprotocol)
        if not offered:
            return None
        chosen = self.select_subprotocol(offered, self.available_subprotocols)
        # Section 4.2.2: the server answers with "a single value representing the
        # subprotocol" that "MUST have been derived from the [client's] list".
        if chosen is not None and chosen not in offered:
            raise NegotiationError(f"selected subprotocol {chosen} was not offered")
        return chosen

    def reject(self, status: StatusLike, text: str) -> Response:
        """Build an HTTP response that refuses the upgrade.

        Args:
            status: the status code, e.g. 404 or ``http.HTTPStatus.NOT_FOUND``.
            text: the body, sent as UTF-8 ``text/plain`` with a final newline.

        Returns:
            The response; queue it with :meth:`send_response`.
        """
        return self.respond(status, text if text.endswith("\n") else text + "\n")

    def respond(
        self,
        status: StatusLike,
        body: str | bytes,
        *,
        content_type: str = "text/plain; charset=utf-8",
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """Build a plain HTTP response, e.g. a health check or a page, instead of upgrading.

        Args:
            status: the status code, e.g. 200 or ``http.HTTPStatus.NOT_FOUND``.
            body: the body; :class:`str` is encoded to UTF-8.
            content_type: the ``Content-Type`` header.
            headers: more headers.

        Returns:
            The response; queue it with :meth:`send_response`. The connection closes after it.
        """
        status = http.HTTPStatus(status)
        data = body.encode() if isinstance(body, str) else body
        response_headers = Headers()
        self._add_common_headers(response_headers)
        response_headers["Connection"] = "close"
        response_headers["Content-Length"] = str(len(data))
        response_headers["Content-Type"] = content_type
        response_headers.update(headers)
        return Response(status.value, status.phrase, response_headers, data)

    def _add_common_headers(self, headers: Headers) -> None:
        headers._add("Date", _http_date())
        if self.server_header is not None:
            headers["Server"] = self.server_header

    def send_response(self, response: Response) -> None:
        """Queue the answer to the handshake request.

        A 101 opens the connection, and frames that arrived right after the request are
        processed at once; any other status ends the connection after the response.

        Raises:
            InvalidState: if a response was already sent.
        """
        if self.state is not CONNECTING or self.response is not None:
            raise InvalidState("the handshake response can be sent once, while connecting")
        self.response = response
        if self.debug:
            self.logger.debug("> HTTP/1.1 %d %s", response.status_code, response.reason_phrase)
            for name, value in response.headers.raw_items():
                self.logger.debug("> %s: %s", name, value)
        self._writes.append(response.serialize())
        if response.status_code == 101:
            # Kept for the application; their lookup indexes are made again if it looks.
            response.headers.shrink()
            if self.request is not None:
                self.request.headers.shrink()
            self._set_state(OPEN)
            if self._buffer:
                self._receive_frames(self._buffer)
        else:
            self._discard = True
            self._buffer.clear()
            self._send_eof()


class _MethodNotAllowed(InvalidMessage):
    """A request with another method than GET: answered with 405."""


class _UnsupportedVersion(InvalidHeaderValue):
    """A Sec-WebSocket-Version other than 13: answered with 426."""


_date: tuple[int, str] = (0, "")  # the second of the last Date header, and its value


def _http_date() -> str:
    """The ``Date`` header for now: RFC 9110 section 5.6.7's IMF-fixdate, such as
    ``"Sun, 06 Nov 1994 08:49:37 GMT"``.

    Formatted once per second, not once per response: a busy server answers many requests
    in a second. Threads may race to format a new second; they format the same value.
    """
    global _date
    now = int(time.time())
    second, value = _date
    if second != now:
        value = email.utils.formatdate(now, usegmt=True)
        _date = (now, value)
    return value


def _single(headers: Headers, name: str) -> str:
    try:
        return headers[name]
    except KeyError:
        raise InvalidHeader(name) from None
    except MultipleValuesError:
        raise InvalidHeader(name, "multiple values") from None


def _first_supported(
    offered: Sequence[Subprotocol], supported: Sequence[Subprotocol]
) -> Subprotocol | None:
    """The first of the server's subprotocols that the client offered, if any."""
    for subprotocol in supported:
        if subprotocol in offered:
            return subprotocol
    return None
