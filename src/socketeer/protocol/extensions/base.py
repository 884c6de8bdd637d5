"""The interface of WebSocket extensions (RFC 6455 section 9).

An extension is negotiated in the opening handshake by a factory, then transforms frames:
:meth:`Extension.encode` on the way out, :meth:`Extension.decode` on the way in. A
:class:`ClientExtensionFactory` makes the offer and checks the server's answer; a
:class:`ServerExtensionFactory` reads the client's offer and answers it.

Extensions apply in the order of negotiation when sending and in reverse order when
receiving. An extension that uses an RSV bit clears it in :meth:`Extension.decode`; the
protocol fails the connection with 1002 on any RSV bit still set afterwards.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence

from ...typedefs import ExtensionName, ExtensionParameter
from ..frames import Frame

__all__ = ["Extension", "ClientExtensionFactory", "ServerExtensionFactory"]


class Extension(ABC):
    """A negotiated extension, bound to one connection."""

    name: ExtensionName
    """Extension identifier, as in ``Sec-WebSocket-Extensions``."""

    @abstractmethod
    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        """Decode a received frame.

        Args:
            frame: the frame as received, masking removed.
            max_size: the largest payload the decoded frame may have, in bytes; ``None`` for
                no limit. An extension that expands data (decompression) must stop as soon
                as it would go past it.

        Raises:
            ProtocolError: if the frame breaks the extension's rules.
            PayloadTooBig: if the decoded payload would exceed ``max_size``.
        """

    def encoding_key(self) -> Hashable | None:
        """A key equal for extensions that encode any message to the same bytes, whatever
        was sent before; ``None`` when encoding depends on this connection's history.

        Broadcasts encode a message once for all the connections that share a key.
        """
        return None

    @abstractmethod
    def encode(self, frame: Frame, *, compress: bool = True) -> Frame:
        """Encode a frame to send.

        Args:
            frame: the frame the application sends.
            compress: on the first frame of a message, ``False`` asks to leave this message
                as it is (an extension that does not compress ignores it).
        """


class ClientExtensionFactory(ABC):
    """Offers an extension in a client's request and accepts the server's answer."""

    name: ExtensionName
    """Extension identifier."""

    @abstractmethod
    def get_request_params(self) -> list[ExtensionParameter]:
        """The parameters to offer in the request."""

    @abstractmethod
    def process_response_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> Extension:
        """Accept the server's answer to the offer.

        Args:
            params: the parameters the server answered with.
            accepted_extensions: the extensions accepted before this one.

        Raises:
            NegotiationError: if the answer is not acceptable.
        """


class ServerExtensionFactory(ABC):
    """Reads an offer in a client's request and answers it."""

    name: ExtensionName
    """Extension identifier."""

    @abstractmethod
    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], Extension]:
        """Answer one offer of the client.

        Args:
            params: the parameters the client offered.
            accepted_extensions: the extensions accepted before this one.

        Returns:
            The parameters to answer with, and the extension to use.

        Raises:
            NegotiationError: if the offer is not acceptable; the server then tries the
                client's next offer, if any.
        """
