"""The runner of the pub/sub tests' ``async def`` tests (:mod:`async_runner`), and the
brokers they run against.

:func:`backend` is parametrized over ``memory`` and ``redis``, so every test that uses
:func:`new_broker` or :func:`broker` runs against both: the contract suite. A test that only
makes sense across nodes (a :class:`MemoryBroker` is one node and shares nothing) narrows it
with ``@pytest.mark.parametrize("backend", ["redis"])``. The Redis brokers use the
``redis_server`` fixture of ``tests/conftest.py``: a server of their own per test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from async_runner import call_async_test
from socketeer.client import Backoff
from socketeer.pubsub.brokers import Broker, MemoryBroker
from timing import MS

FAST_BACKOFF = Backoff(initial=10 * MS, factor=2.0, maximum=100 * MS)
"""Reconnect quickly in the tests."""


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    return call_async_test(pyfuncitem)


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    """Which broker the test runs against."""
    return str(request.param)


@pytest.fixture
def new_broker(backend: str, request: pytest.FixtureRequest) -> Callable[..., Broker]:
    """Make a node: a broker of :func:`backend`, not connected yet (``connect()`` is
    awaited in the test's event loop). Keyword arguments go to the broker."""
    if backend == "memory":
        return MemoryBroker
    url = request.getfixturevalue("redis_url")
    from socketeer.pubsub.brokers.redis import RedisBroker

    def new(**kwargs: Any) -> Broker:
        kwargs.setdefault("backoff", FAST_BACKOFF)
        kwargs.setdefault("timeout", 2_000 * MS)
        return RedisBroker(url, **kwargs)

    return new


@pytest.fixture
def broker(new_broker: Callable[..., Broker]) -> Broker:
    """A node of :func:`backend`, not connected yet."""
    return new_broker()
