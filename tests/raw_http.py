"""One plain HTTP request to a test server on 127.0.0.1, without any client library."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from timing import MS

__all__ = ["http_get"]


async def http_get(
    port: int, path: str, *, method: str = "GET", headers: Iterable[tuple[str, str]] = ()
) -> tuple[int, dict[str, str], bytes]:
    """Send one HTTP request; return the status, the headers (lower-case names), the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = await asyncio.wait_for(reader.read(), 5_000 * MS)  # the server closes after it
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in fields.items()}, body
