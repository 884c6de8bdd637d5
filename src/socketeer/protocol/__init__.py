"""The sans-I/O core: RFC 6455 and RFC 7692, bytes in, events and bytes out.

No sockets, no asyncio, no threads, no clock: drivers feed received bytes to
:meth:`Protocol.receive_data` and write what :meth:`Protocol.data_to_send` returns. See
:mod:`socketeer.protocol.base` for the theory of operation.
"""

from __future__ import annotations

from .base import CLIENT, MAX_SIZE, SERVER, Event, Protocol, Side, State
from .client import ClientProtocol
from .frames import Close, CloseCode, Frame, Opcode
from .http11 import Headers, Request, Response
from .server import ServerProtocol

__all__ = [
    "CLIENT",
    "SERVER",
    "MAX_SIZE",
    "Event",
    "Protocol",
    "Side",
    "State",
    "ClientProtocol",
    "ServerProtocol",
    "Close",
    "CloseCode",
    "Frame",
    "Opcode",
    "Headers",
    "Request",
    "Response",
]
