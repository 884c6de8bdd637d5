"""The runner of the RPC layer's ``async def`` tests (:mod:`async_runner`); helpers are in
:mod:`rpc_helpers`."""

from __future__ import annotations

import pytest

from async_runner import call_async_test


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    return call_async_test(pyfuncitem)
