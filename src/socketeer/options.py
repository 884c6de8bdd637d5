"""Connection options shared by the asyncio and the threaded drivers, with their defaults.

Every size, count and wait has a limit with a safe default; ``None`` turns a limit off.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ConnectionOptions",
    "OPEN_TIMEOUT",
    "PING_INTERVAL",
    "PING_TIMEOUT",
    "CLOSE_TIMEOUT",
    "MAX_QUEUE",
    "WRITE_LIMIT",
]

OPEN_TIMEOUT = 10.0
"""Seconds for the opening handshake, TCP and TLS included."""
PING_INTERVAL = 20.0
"""Seconds between keepalive pings."""
PING_TIMEOUT = 20.0
"""Seconds to wait for the pong of a keepalive ping before failing with 1011."""
CLOSE_TIMEOUT = 10.0
"""Seconds to wait for the closing handshake and the end of the TCP connection."""
MAX_QUEUE = 16
"""Whole messages waiting unread before reading from the network pauses."""
WRITE_LIMIT = 32768
"""Bytes in the write buffer above which ``send()`` waits for it to drain."""


@dataclass(frozen=True)
class ConnectionOptions:
    """How a connection behaves once it is open, on either side and with either driver.

    Attributes:
        ping_interval: seconds between keepalive pings; ``None`` sends none.
        ping_timeout: seconds to wait for a keepalive pong; ``None`` waits forever.
        close_timeout: seconds to wait for the closing handshake; ``None`` waits forever.
        max_queue: whole messages waiting unread before reading pauses; ``None`` for no
            limit.
        write_limit: bytes buffered for writing above which sending waits.
    """

    ping_interval: float | None = PING_INTERVAL
    ping_timeout: float | None = PING_TIMEOUT
    close_timeout: float | None = CLOSE_TIMEOUT
    max_queue: int | None = MAX_QUEUE
    write_limit: int = WRITE_LIMIT

    def __post_init__(self) -> None:
        for name in ("ping_interval", "ping_timeout", "close_timeout"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be positive or None, got {value}")
        if self.max_queue is not None and self.max_queue < 1:
            raise ValueError(f"max_queue must be at least 1 or None, got {self.max_queue}")
        if self.write_limit < 0:
            raise ValueError(f"write_limit must be positive, got {self.write_limit}")
