"""Run the browser client's tests (``tests/js/*.test.mjs``) with Node's built-in test runner.

They drive ``socketeer.js`` against a fake WebSocket and a fake clock (``fakes.mjs``), so they
need nothing but ``node`` (18+), and no npm package. Without ``node`` the test is skipped with
a hint to install Node.js, except under ``CI=true``, where it fails (:mod:`interop.peers`).

The files are passed one by one rather than as ``node --test tests/js``: Node 21 and later take
a directory argument for a module to run, not a folder to search.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from interop.peers import TEST_TIMEOUT, require_executable, typescript_compiler

ROOT = Path(__file__).parents[2]
JS_TESTS = Path(__file__).parent

NODE_HINT = (
    "install Node.js 18+ to run the browser client's tests "
    "(Debian: apt-get install nodejs; or https://nodejs.org/)"
)


def run_checked(command: list[str], what: str) -> None:
    """Run ``command`` in the repository; fail the test with its output if it fails."""
    try:
        completed = subprocess.run(
            command,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=TEST_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"").decode(errors="replace")
        pytest.fail(f"{what} timed out after {TEST_TIMEOUT} s:\n{output}", pytrace=False)
    if completed.returncode != 0:
        output = completed.stdout.decode(errors="replace")
        pytest.fail(
            f"{what} failed with exit code {completed.returncode}:\n{output}", pytrace=False
        )


def test_node_test_runner() -> None:
    node = require_executable("node", NODE_HINT)
    files = sorted(str(path.relative_to(ROOT)) for path in JS_TESTS.glob("*.test.mjs"))
    assert files, f"no *.test.mjs in {JS_TESTS}"
    run_checked([node, "--test", *files], "node --test tests/js")


def test_types_check() -> None:
    # socketeer.js is checked against its JSDoc and socketeer.d.ts against itself, strictly,
    # by TypeScript's compiler (from the packages of tests/interop/node).
    static = ROOT / "src" / "socketeer" / "static"
    options = ["--noEmit", "--strict", "--allowJs", "--checkJs", "--target", "es2022"]
    options += ["--module", "esnext", "--moduleResolution", "bundler", "--lib", "es2022,dom"]
    files = [str(static / "socketeer.js"), str(static / "socketeer.d.ts")]
    run_checked(typescript_compiler() + options + files, "tsc --checkJs")
