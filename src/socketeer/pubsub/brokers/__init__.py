"""Brokers: what carries the publications of rooms between processes.

:class:`MemoryBroker` (``memory://``, the default) serves one process;
:class:`RedisBroker` (``redis://host:port/db``, ``rediss://`` for TLS) serves many processes
on many machines. :func:`broker_from_url` picks one by URL.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import TYPE_CHECKING, Any

from .base import Broker, History, Position, PresenceEntry, Publication, Retention
from .memory import MemoryBroker

if TYPE_CHECKING:
    from .redis import RedisBroker

__all__ = [
    "Broker",
    "History",
    "Position",
    "PresenceEntry",
    "Publication",
    "Retention",
    "MemoryBroker",
    "RedisBroker",
    "broker_from_url",
    "BROKER_ENV",
]

BROKER_ENV = "SOCKETEER_BROKER"
"""The environment variable :func:`broker_from_url` reads when given no URL (``socketeer
serve --broker`` sets it for its workers)."""


def broker_from_url(url: str | None = None) -> Broker:
    """The broker a URL names: ``memory://`` or ``redis://host:port/db`` (``rediss://``).

    Args:
        url: the URL; ``None`` reads :data:`BROKER_ENV`, and ``memory://`` when unset.

    Raises:
        ValueError: if the URL's scheme is not one of those.
        ImportError: if it names Redis and the ``redis`` package is not installed.
    """
    if url is None:
        url = os.environ.get(BROKER_ENV) or "memory://"
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme == "memory":
        return MemoryBroker()
    if scheme in ("redis", "rediss", "unix"):
        from .redis import RedisBroker

        return RedisBroker(url)
    raise ValueError(f"broker URL must start with memory:// or redis://, got {url!r}")


def __getattr__(name: str) -> Any:
    # redis is an optional dependency: import it only when asked for.
    if name == "RedisBroker":
        from .redis import RedisBroker

        return RedisBroker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
