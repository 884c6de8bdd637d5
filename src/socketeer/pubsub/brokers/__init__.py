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

    A Redis URL may set :class:`RedisBroker`'s options in its query:
    ``redis://127.0.0.1:6379/0?presence_ttl=10&timeout=2&idle_expiry=3600&prefix=app:``
    (``idle_expiry=none``: never); other query options are redis-py's.

    Args:
        url: the URL; ``None`` reads :data:`BROKER_ENV`, and ``memory://`` when unset.

    Raises:
        ValueError: if the URL's scheme is not one of those, or an option is invalid.
        ImportError: if it names Redis and the ``redis`` package is not installed.
    """
    if url is None:
        url = os.environ.get(BROKER_ENV) or "memory://"
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme == "memory":
        return MemoryBroker()
    if scheme in ("redis", "rediss", "unix"):
        from .redis import RedisBroker

        url, options = _broker_options(url)
        return RedisBroker(url, **options)
    raise ValueError(f"broker URL must start with memory:// or redis://, got {url!r}")


_FLOAT_OPTIONS = ("presence_ttl", "timeout", "idle_expiry")


def _broker_options(url: str) -> tuple[str, dict[str, Any]]:
    """Take :class:`RedisBroker`'s own options out of a URL's query (``presence_ttl``,
    ``timeout``, ``idle_expiry`` in seconds, ``none`` for no idle expiry; ``prefix``);
    the rest is redis-py's.

    Raises:
        ValueError: if one of them is given twice or is not a number.
    """
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    options: dict[str, Any] = {}
    rest = []
    for name, value in query:
        if name not in _FLOAT_OPTIONS and name != "prefix":
            rest.append((name, value))
            continue
        if name in options:
            raise ValueError(f"broker URL gives {name} twice")
        if name == "prefix":
            options[name] = value
        elif name == "idle_expiry" and value.lower() == "none":
            options[name] = None
        else:
            try:
                options[name] = float(value)
            except ValueError:
                raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None
    url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(rest)))
    return url, options


def __getattr__(name: str) -> Any:
    # redis is an optional dependency: import it only when asked for.
    if name == "RedisBroker":
        from .redis import RedisBroker

        return RedisBroker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
