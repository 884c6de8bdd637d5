"""Type aliases and domain names shared by every layer."""

from __future__ import annotations

import http
import logging
from typing import NewType, TypeAlias

__all__ = [
    "Data",
    "BytesLike",
    "JSONValue",
    "Origin",
    "Subprotocol",
    "ExtensionName",
    "ExtensionParameter",
    "ExtensionHeader",
    "ConnectionOption",
    "UpgradeProtocol",
    "StatusLike",
    "LoggerLike",
]

BytesLike: TypeAlias = bytes | bytearray | memoryview
"""Anything that holds bytes: sent as a binary message."""

Data: TypeAlias = str | bytes
"""A message: :class:`str` for a text message, :class:`bytes` for a binary one."""

JSONValue: TypeAlias = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]
"""A value that JSON can represent."""

Origin = NewType("Origin", str)
"""Value of an ``Origin`` header, e.g. ``"https://example.com"``."""

Subprotocol = NewType("Subprotocol", str)
"""A subprotocol name, as in ``Sec-WebSocket-Protocol``."""

ExtensionName = NewType("ExtensionName", str)
"""An extension name, as in ``Sec-WebSocket-Extensions``."""

ExtensionParameter: TypeAlias = tuple[str, str | None]
"""An extension parameter: its name and its value, or ``None`` when it has none."""

ExtensionHeader: TypeAlias = tuple[ExtensionName, list[ExtensionParameter]]
"""One extension offer or answer: its name and its parameters, in order."""

ConnectionOption = NewType("ConnectionOption", str)
"""A token of the ``Connection`` header."""

UpgradeProtocol = NewType("UpgradeProtocol", str)
"""A protocol of the ``Upgrade`` header, e.g. ``"websocket"``."""

StatusLike: TypeAlias = http.HTTPStatus | int
"""An HTTP status code."""

LoggerLike: TypeAlias = logging.Logger | logging.LoggerAdapter  # type: ignore[type-arg]
"""A logger, or an adapter around one."""
