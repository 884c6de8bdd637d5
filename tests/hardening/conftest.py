"""Abuse and fault tests: misbehaving raw clients against real servers on 127.0.0.1.

``async def`` tests run with :mod:`async_runner` (a new event loop in debug mode each,
failing on any error the loop reports). Helpers are in :mod:`abuse_helpers`.
"""

from __future__ import annotations

import pytest

from async_runner import call_async_test


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    return call_async_test(pyfuncitem)
