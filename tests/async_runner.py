"""How ``async def`` tests run: shared by the conftest of every directory that has them.

Each test runs in a new event loop in debug mode, under a generous timeout that only catches
hangs. It fails when the loop reports an error through its exception handler (a task
destroyed while pending, an exception never retrieved, a callback that raised) or when a
task is still running at the end; a garbage collection at the end turns unclosed transports
and sockets into ``ResourceWarning``, which the project's ``filterwarnings = error`` makes
fatal.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from timing import MS

__all__ = ["TEST_TIMEOUT", "call_async_test", "run_strictly"]

TEST_TIMEOUT = 10_000 * MS
"""Longest an async test may run before it counts as hung."""

Expected = Callable[[dict[str, Any]], bool]


def call_async_test(pyfuncitem: pytest.Function, expected: Expected | None = None) -> bool | None:
    """For ``pytest_pyfunc_call``: run an ``async def`` test with :func:`run_strictly`."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    run_strictly(lambda: pyfuncitem.obj(**kwargs), expected)
    return True


def run_strictly(test: Callable[[], Awaitable[Any]], expected: Expected | None = None) -> None:
    """Run ``test()`` in a new event loop in debug mode; fail on any error the loop reports,
    except those ``expected`` accepts."""
    errors: list[dict[str, Any]] = []

    def exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        loop.default_exception_handler(context)
        if expected is None or not expected(context):
            errors.append(context)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(exception_handler)
        await asyncio.wait_for(test(), TEST_TIMEOUT)
        # Let callbacks scheduled by the last steps run (connection_lost, for example).
        await asyncio.sleep(0)
        leftover = asyncio.all_tasks() - {asyncio.current_task()}
        assert not leftover, f"tasks still running at the end of the test: {leftover}"

    asyncio.run(main(), debug=True)
    gc.collect()
    reports = [f"{error['message']} ({error.get('exception')!r})" for error in errors]
    assert not reports, f"the event loop reported errors: {reports}"
