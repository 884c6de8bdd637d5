"""The runner of the command line tests' ``async def`` tests (:mod:`async_runner`), and
``serve`` in a subprocess (:mod:`cli_helpers`)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_helpers import ServeProcess

from async_runner import call_async_test


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    return call_async_test(pyfuncitem)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """The directory ``serve`` runs in, with the application's modules (a directory of
    its own: teardown kills every process running there)."""
    directory = tmp_path / "app"
    directory.mkdir()
    return directory


@pytest.fixture
def serve_app(app_dir: Path) -> Iterator[Callable[..., ServeProcess]]:
    """Start ``serve``: ``serve_app(source, *args, env=None)`` writes ``source`` to
    ``app.py`` in :func:`app_dir` and runs ``python -m socketeer serve *args`` there.
    Teardown kills it and its workers."""
    started: list[ServeProcess] = []

    def start(source: str, *args: str, env: dict[str, str] | None = None) -> ServeProcess:
        (app_dir / "app.py").write_text(textwrap.dedent(source))
        process = ServeProcess(app_dir, *args, env=env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
