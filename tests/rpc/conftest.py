"""The runner of the RPC layer's ``async def`` tests; helpers are in :mod:`rpc_helpers`.

As in tests/asyncio/conftest.py (which this directory cannot import: test directories are not
packages): each ``async def`` test runs in a new event loop in debug mode, under a generous
timeout that only catches hangs. It fails when the loop reports an error through its
exception handler (a task destroyed while pending, an exception never retrieved, a callback
that raised) or when a task is still running at the end; a garbage collection at the end
turns unclosed transports and sockets into ``ResourceWarning``, which the project's
``filterwarnings = error`` makes fatal.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from rpc_helpers import TEST_TIMEOUT


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    run_strictly(lambda: pyfuncitem.obj(**kwargs))
    return True


def run_strictly(test: Callable[[], Awaitable[Any]]) -> None:
    """Run ``test()`` in a new event loop in debug mode; fail on any error the loop reports."""
    errors: list[dict[str, Any]] = []

    def exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        loop.default_exception_handler(context)
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
