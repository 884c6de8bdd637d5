"""What the asyncio and the threaded clients share: the policies of connecting, without I/O.

Both ``socketeer.asyncio.client`` and ``socketeer.sync.client`` follow HTTP redirects with
:class:`Redirects` and reconnect with :func:`is_transient` and :class:`Backoff`; they only
add the waiting (``await asyncio.sleep`` or :func:`time.sleep`) and the sockets.
"""

from __future__ import annotations

import dataclasses
import random
import ssl
import urllib.parse

from .exceptions import InvalidMessage, InvalidStatus, InvalidURI, SecurityError
from .protocol.http11 import Response
from .uri import WebSocketURI, parse_uri

__all__ = [
    "MAX_REDIRECTS",
    "Backoff",
    "Redirects",
    "is_transient",
    "redirect_location",
    "redirect_uri",
]

MAX_REDIRECTS = 10
"""Most HTTP redirects followed while connecting."""

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Delays between reconnection attempts: exponential, capped, with full jitter.

    Attempt ``n`` (from 0) waits a random time between 0 and
    ``min(initial * factor ** n, maximum)`` seconds, so that many clients that lost the same
    server do not come back all at once.
    """

    initial: float = 1.0
    factor: float = 1.618
    maximum: float = 60.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt`` (0 for the first retry)."""
        ceiling = min(self.initial * self.factor**attempt, self.maximum)
        return random.uniform(0, ceiling)


def is_transient(exc: BaseException) -> bool:
    """Whether connecting again may succeed after ``exc``.

    Refused or lost TCP connections, timeouts, a server that went away during the handshake,
    5xx and 429 answers may heal; invalid URIs and handshakes, other 4xx answers, too many
    redirects and certificates that fail verification will not. (The asyncio client turns
    :exc:`asyncio.TimeoutError` into :exc:`TimeoutError`, distinct before Python 3.11.)
    """
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        return status >= 500 or status == 429
    if isinstance(exc, (InvalidURI, SecurityError, ssl.SSLCertVerificationError)):
        return False
    if isinstance(exc, InvalidMessage):
        return True  # e.g. the server went away in the middle of the handshake
    return isinstance(exc, (OSError, TimeoutError))


def redirect_location(response: Response) -> str | None:
    """The ``Location`` of a redirect response, or ``None`` if it is no redirect to follow."""
    if response.status_code in REDIRECT_STATUSES:
        locations = response.headers.get_all("Location")
        if len(locations) == 1:
            return locations[0]
    return None


def redirect_uri(uri: WebSocketURI, location: str) -> WebSocketURI:
    """The URI to follow a redirect to: relative locations resolved, http(s) mapped to ws(s).

    Raises:
        InvalidURI: if the location is no WebSocket URI once resolved.
        SecurityError: if it leads from ``wss://`` to ``ws://``.
    """
    scheme = "https" if uri.secure else "http"
    host = f"[{uri.host}]" if ":" in uri.host else uri.host
    target = urllib.parse.urljoin(f"{scheme}://{host}:{uri.port}{uri.resource_name}", location)
    scheme, _, rest = target.partition(":")
    scheme = {"http": "ws", "https": "wss"}.get(scheme.lower(), scheme.lower())
    new_uri = parse_uri(f"{scheme}:{rest}")
    if uri.secure and not new_uri.secure:
        raise SecurityError(f"redirect from wss:// to ws:// refused: {location}")
    return new_uri


class Redirects:
    """Where to connect, redirect after redirect: the sans-I/O half of following redirects.

    A driver connects to :attr:`uri`; when the server refuses with
    :exc:`~socketeer.exceptions.InvalidStatus`, :meth:`follow` says whether to try again, and
    where::

        redirects = Redirects(uri, max_redirects)
        while True:
            try:
                return connect_once(redirects.uri)
            except InvalidStatus as exc:
                if redirects.follow(exc.response) is None:
                    raise

    Args:
        uri: the URI to connect to first.
        max_redirects: most redirects to follow.
        enabled: ``False`` follows none (a Unix socket path or a given socket leads to one
            server: a redirect has nowhere else to go).
    """

    def __init__(self, uri: WebSocketURI, max_redirects: int, *, enabled: bool = True) -> None:
        self.uri = uri
        """Where to connect next."""
        self.max_redirects = max_redirects
        self.enabled = enabled
        self.count = 0
        """How many redirects were followed."""

    def follow(self, response: Response) -> str | None:
        """After a refusal: move :attr:`uri` to the redirect's target and return the location.

        Returns ``None``, and :attr:`uri` stays, when the response is no redirect to follow.

        Raises:
            InvalidURI: if the location is no WebSocket URI.
            SecurityError: if it leads from ``wss://`` to ``ws://``, or after more than
                ``max_redirects`` redirects.
        """
        location = redirect_location(response)
        if location is None or not self.enabled:
            return None
        uri = redirect_uri(self.uri, location)
        self.count += 1
        if self.count > self.max_redirects:
            raise SecurityError(f"more than {self.max_redirects} redirects")
        self.uri = uri
        return location
