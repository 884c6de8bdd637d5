"""The client side of the sans-I/O protocol: the opening handshake of RFC 6455 section 4.1.

Usage: build the request with :meth:`ClientProtocol.connect`, change it if you like, queue it
with :meth:`ClientProtocol.send_request`, then feed what the server sends to
:meth:`~socketeer.protocol.base.Protocol.receive_data`. The first event is the server's
:class:`~socketeer.protocol.http11.Response`; after it the state is ``OPEN`` if the server
accepted, else :attr:`~socketeer.protocol.base.Protocol.handshake_exc` says why not.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence

from ..exceptions import (
    HandshakeError,
    InvalidHeader,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidState,
    InvalidStatus,
    InvalidUpgrade,
    MultipleValuesError,
    NegotiationError,
    SecurityError,
)
from ..typedefs import LoggerLike, Origin, Subprotocol
from ..uri import WebSocketURI
from ..version import __version__
from .base import CLIENT, CONNECTING, MAX_SIZE, OPEN, Protocol, State
from .extensions.base import ClientExtensionFactory, Extension
from .headers import (
    accept_key,
    build_authorization_basic,
    build_extension,
    build_host,
    build_subprotocol,
    generate_key,
    parse_connection,
    parse_extension,
    parse_subprotocol,
    parse_upgrade,
    parse_values,
    validate_subprotocols,
)
from .http11 import Headers, Request, Response, ResponseParser

__all__ = ["ClientProtocol", "USER_AGENT"]

USER_AGENT = f"Python/{sys.version_info.major}.{sys.version_info.minor} socketeer/{__version__}"
"""Default ``User-Agent`` header."""

HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]]


class ClientProtocol(Protocol):
    """The sans-I/O protocol of a WebSocket client.

    Args:
        uri: where to connect, from :func:`~socketeer.uri.parse_uri`.
        origin: the ``Origin`` header to send, if any.
        extensions: the extensions to offer, in order of preference.
        subprotocols: the subprotocols to offer, in order of preference.
        state: the initial state; ``OPEN`` skips the handshake.
        max_size: the largest message accepted, in bytes; ``None`` for no limit.
        logger: where to log; ``socketeer.client`` by default.

    Raises:
        ValueError: if a subprotocol is not a valid token.
    """

    # Slots too: an idle connection keeps its protocol; a dict would cost ~350 bytes.
    __slots__ = (
        "wsuri",
        "origin",
        "key",
        "available_extensions",
        "available_subprotocols",
        "subprotocol",
        "request",
        "response",
        "_parser",
    )

    def __init__(
        self,
        uri: WebSocketURI,
        *,
        origin: Origin | None = None,
        extensions: Sequence[ClientExtensionFactory] | None = None,
        subprotocols: Sequence[Subprotocol] | None = None,
        state: State = CONNECTING,
        max_size: int | None = MAX_SIZE,
        logger: LoggerLike | None = None,
    ) -> None:
        super().__init__(CLIENT, state=state, max_size=max_size, logger=logger)
        self.wsuri = uri
        """The URI this client connects to."""
        self.origin = origin
        """The ``Origin`` header sent, if any."""
        self.available_extensions = list(extensions or ())
        """The extensions offered."""
        self.available_subprotocols = list(subprotocols or ())
        """The subprotocols offered."""
        validate_subprotocols(self.available_subprotocols)
        self.key = generate_key()
        """The ``Sec-WebSocket-Key`` of this handshake."""
        self.subprotocol: Subprotocol | None = None
        """The subprotocol the server chose, once the handshake succeeded."""
        self.request: Request | None = None
        """The request sent, once sent."""
        self.response: Response | None = None
        """The server's response, once received."""
        self._parser = ResponseParser()

    def connect(
        self,
        *,
        additional_headers: HeadersLike | None = None,
        user_agent: str | None = USER_AGENT,
    ) -> Request:
        """Build the opening handshake request (RFC 6455 section 4.1).

        Args:
            additional_headers: headers to add, e.g. cookies or a token.
            user_agent: the ``User-Agent`` header; ``None`` to send none.

        Returns:
            The request; pass it to :meth:`send_request`, changed or not.
        """
        uri = self.wsuri
        headers = Headers()
        headers["Host"] = build_host(uri.host, uri.port, uri.secure)
        if uri.user_info is not None:
            headers["Authorization"] = build_authorization_basic(*uri.user_info)
        if self.origin is not None:
            headers["Origin"] = self.origin
        headers["Upgrade"] = "websocket"
        headers["Connection"] = "Upgrade"
        headers["Sec-WebSocket-Key"] = self.key
        headers["Sec-WebSocket-Version"] = "13"
        if self.available_extensions:
            offers = [(f.name, f.get_request_params()) for f in self.available_extensions]
            headers["Sec-WebSocket-Extensions"] = build_extension(offers)
        if self.available_subprotocols:
            headers["Sec-WebSocket-Protocol"] = build_subprotocol(self.available_subprotocols)
        if additional_headers is not None:
            headers.update(additional_headers)
        if user_agent is not None and "User-Agent" not in headers:
            headers["User-Agent"] = user_agent
        return Request(uri.resource_name, headers)

    def send_request(self, request: Request) -> None:
        """Queue the handshake request; then read the response with ``receive_data``.

        Raises:
            InvalidState: if the handshake already started or the connection is not
                ``CONNECTING``.
        """
        if self.state is not CONNECTING or self.request is not None:
            raise InvalidState("the handshake request can be sent once, while connecting")
        self.request = request
        if self.debug:
            self.logger.debug("> GET %s HTTP/1.1", request.path)
            for name, value in request.headers.raw_items():
                self.logger.debug("> %s: %s", name, value)
        self._writes.append(request.serialize())

    def _receive_handshake(self) -> None:
        if self.request is None:
            self._fail_handshake(InvalidState("received data before sending the request"))
            return
        try:
            response = self._parser.feed(self._buffer)
        except (InvalidMessage, SecurityError) as exc:
            self._fail_handshake(exc)
            return
        if response is not None:
            self._receive_response(response)

    def _receive_handshake_eof(self) -> None:
        if self.request is None or self.handshake_exc is not None:
            return
        try:
            response = self._parser.feed(self._buffer, eof=True)
        except (InvalidMessage, SecurityError) as exc:
            self.handshake_exc = exc
            return
        if response is not None:
            self._receive_response(response)

    def _receive_response(self, response: Response) -> None:
        del self._buffer[: self._parser.consumed]
        self.response = response
        if self.debug:
            self.logger.debug("< HTTP/1.1 %d %s", response.status_code, response.reason_phrase)
            for name, value in response.headers.raw_items():
                self.logger.debug("< %s: %s", name, value)
        try:
            extensions, subprotocol = self.process_response(response)
        except HandshakeError as exc:
            self._events.append(response)
            self._fail_handshake(exc)
            return
        self.extensions = extensions
        self.subprotocol = subprotocol
        # Kept for the application; their lookup indexes are made again if it looks.
        response.headers.shrink()
        if self.request is not None:
            self.request.headers.shrink()
        self._set_state(OPEN)
        self._events.append(response)

    def _fail_handshake(self, exc: Exception) -> None:
        # RFC 6455 section 4.1: "If the server's response is not valid [...], the client MUST
        # _Fail the WebSocket Connection_": before the handshake completes, that is only
        # closing the TCP connection, with no close frame.
        self.handshake_exc = exc
        self._discard = True
        self._buffer.clear()
        if not self.eof_sent:
            self._send_eof()

    def process_response(self, response: Response) -> tuple[list[Extension], Subprotocol | None]:
        """Check the server's answer, as RFC 6455 section 4.1 lists it.

        Returns:
            The extensions in use and the subprotocol chosen, if any.

        Raises:
            InvalidStatus: if the status is not 101.
            InvalidHeader: if a required header is missing or wrong.
            NegotiationError: if the server chose an extension or a subprotocol not offered.
        """
        # "If the status code received from the server is not 101, the client handles the
        # response per HTTP [RFC2616] procedures."
        if response.status_code != 101:
            raise InvalidStatus(response)
        headers = response.headers
        # "If the response lacks an |Upgrade| header field or the |Upgrade| header field
        # contains a value that is not an ASCII case-insensitive match for the value
        # "websocket", the client MUST _Fail the WebSocket Connection_."
        upgrade = parse_values(headers.get_all("Upgrade"), parse_upgrade)
        if len(upgrade) != 1 or upgrade[0].lower() != "websocket":
            raise InvalidUpgrade("Upgrade", ", ".join(upgrade) or None)
        # "If the response lacks a |Connection| header field or the |Connection| header field
        # doesn't contain a token that is an ASCII case-insensitive match for the value
        # "Upgrade", the client MUST _Fail the WebSocket Connection_."
        connection = parse_values(headers.get_all("Connection"), parse_connection)
        if not any(option.lower() == "upgrade" for option in connection):
            raise InvalidUpgrade("Connection", ", ".join(connection) or None)
        # "If the response lacks a |Sec-WebSocket-Accept| header field or the
        # |Sec-WebSocket-Accept| contains a value other than the base64-encoded SHA-1 of the
        # concatenation of the |Sec-WebSocket-Key| (as a string, not base64-decoded) with the
        # string "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" [...] the client MUST _Fail_".
        try:
            accept = headers["Sec-WebSocket-Accept"]
        except KeyError:
            raise InvalidHeader("Sec-WebSocket-Accept") from None
        except MultipleValuesError:
            raise InvalidHeader("Sec-WebSocket-Accept", "multiple values") from None
        if accept != accept_key(self.key):
            raise InvalidHeaderValue("Sec-WebSocket-Accept", accept)
        return self._process_extensions(headers), self._process_subprotocol(headers)

    def _process_extensions(self, headers: Headers) -> list[Extension]:
        # "If the response includes a |Sec-WebSocket-Extensions| header field and this header
        # field indicates the use of an extension that was not present in the client's
        # handshake [...], the client MUST _Fail the WebSocket Connection_."
        accepted: list[Extension] = []
        for name, params in parse_values(
            headers.get_all("Sec-WebSocket-Extensions"), parse_extension
        ):
            for factory in self.available_extensions:
                if factory.name != name:
                    continue
                try:
                    extension = factory.process_response_params(params, accepted)
                except NegotiationError:
                    continue
                accepted.append(extension)
                break
            else:
                raise NegotiationError(f"unsupported extension: {name}")
        return accepted

    def _process_subprotocol(self, headers: Headers) -> Subprotocol | None:
        # "If the response includes a |Sec-WebSocket-Protocol| header field and this header
        # field indicates the use of a subprotocol that was not present in the client's
        # handshake [...], the client MUST _Fail the WebSocket Connection_."
        values = headers.get_all("Sec-WebSocket-Protocol")
        if not values:
            return None
        chosen = parse_values(values, parse_subprotocol)
        if len(chosen) != 1:
            raise InvalidHeader("Sec-WebSocket-Protocol", f"multiple values: {', '.join(chosen)}")
        if chosen[0] not in self.available_subprotocols:
            raise NegotiationError(f"unsupported subprotocol: {chosen[0]}")
        return chosen[0]
