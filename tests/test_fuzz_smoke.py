"""Smoke pass of the fuzz targets in fuzz/ (docs/fuzzing.md), quick and deterministic.

1. Every target's ``TestOneInput`` runs as plain Python calls, without atheris, over every seed
   of its corpus and a fixed number of inputs mutated from the seeds with a fixed random
   seed: the contract of each target is checked in CI whether atheris installs or not.
2. When atheris is installed, every target fuzzes for a few hundred runs under atheris, on a
   copy of its corpus. atheris is in the test extra on Linux x86_64, its only wheels: there,
   under ``CI=true``, a missing atheris fails instead of skipping.
3. Bugs the fuzzers found: one test each, replaying the input kept in ``fuzz/findings/``; a
   bug not fixed yet is a strict xfail test, whose marker goes when the fix makes it pass.
"""

from __future__ import annotations

import importlib
import os
import platform
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from socketeer.exceptions import InvalidURI
from socketeer.uri import parse_uri

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
TARGETS = ["frames", "frames_deflate", "handshake", "uri", "rpc"]

# Mutated inputs per target; each target takes a few milliseconds at most per input.
MUTATIONS = {"frames": 2000, "frames_deflate": 2000, "handshake": 1000, "uri": 2000, "rpc": 2000}
ATHERIS_RUNS = 200

ATHERIS_WHEELS = sys.platform == "linux" and platform.machine() == "x86_64"


def load(target: str) -> ModuleType:
    if str(FUZZ) not in sys.path:
        sys.path.insert(0, str(FUZZ))
    return importlib.import_module(f"fuzz_{target}")


def seeds(target: str) -> list[bytes]:
    return [path.read_bytes() for path in sorted((FUZZ / "corpus" / target).iterdir())]


# Bytes that matter to the parsers: frame header boundaries, UTF-8 and HTTP delimiters.
INTERESTING = b'\x00\x01\x7e\x7f\x80\x81\x88\x89\xc0\xed\xff\r\n:;,="%/[]{}'


def mutate(data: bytes, corpus: list[bytes], rng: random.Random) -> bytes:
    """A few random edits of ``data``, as a fuzzer's mutator does, without its guidance."""
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        pos = rng.randint(0, len(buffer))
        kind = rng.randrange(7)
        if kind == 0 and pos < len(buffer):
            buffer[pos] ^= 1 << rng.randrange(8)
        elif kind == 1 and pos < len(buffer):
            buffer[pos] = rng.choice(INTERESTING)
        elif kind == 2:
            buffer[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif kind == 3:
            del buffer[pos : pos + rng.randint(1, 16)]
        elif kind == 4:
            start = rng.randint(0, len(buffer))
            buffer[pos:pos] = buffer[start : start + rng.randint(1, 32)]
        elif kind == 5:
            other = rng.choice(corpus)
            start = rng.randint(0, len(other))
            buffer[pos:] = other[start:]
        elif kind == 6 and pos < 3:
            buffer[pos : pos + 1] = bytes([rng.randrange(256)])  # configuration bytes
    return bytes(buffer)


def inputs(target: str) -> list[bytes]:
    corpus = seeds(target)
    rng = random.Random(f"socketeer-fuzz-{target}")
    generated = []
    for index in range(MUTATIONS[target]):
        if index % 10 == 0:
            generated.append(rng.randbytes(rng.randint(0, 64)))
        else:
            generated.append(mutate(rng.choice(corpus), corpus, rng))
    return corpus + generated


def check(test_one_input: Callable[[bytes], None], data: bytes) -> None:
    try:
        test_one_input(data)
    except Exception as exc:
        pytest.fail(f"{type(exc).__name__}: {exc}\ninput: {data!r}")


# 1. The contract, without atheris.


@pytest.mark.parametrize("target", TARGETS)
def test_corpus_exists(target: str) -> None:
    corpus = seeds(target)
    assert 10 <= len(corpus) <= 40
    assert all(len(seed) <= 9000 for seed in corpus)


@pytest.mark.parametrize("target", TARGETS)
def test_contract(target: str) -> None:
    """Every seed and mutated input is accepted or rejected as the target documents."""
    test_one_input = load(target).TestOneInput
    for data in inputs(target):
        check(test_one_input, data)


# 2. A short run under atheris.


def test_atheris(tmp_path: Path) -> None:
    """Each target fuzzes a few hundred inputs under atheris and finds nothing."""
    try:
        import atheris  # type: ignore[import-untyped, unused-ignore]  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true" and ATHERIS_WHEELS:
            pytest.fail("atheris is in the test extra on Linux x86_64 and must be installed")
        pytest.skip("atheris is not installed (pip install atheris: Linux x86_64 wheels)")
    processes = {}
    for target in TARGETS:
        work = tmp_path / target
        shutil.copytree(FUZZ / "corpus" / target, work / "corpus")
        command = [
            sys.executable,
            str(FUZZ / f"fuzz_{target}.py"),
            str(work / "corpus"),
            f"-runs={ATHERIS_RUNS}",
            "-seed=1",
            "-rss_limit_mb=1024",
            "-timeout=60",
            f"-artifact_prefix={work}/",
        ]
        processes[target] = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    failures = []
    for target, process in processes.items():
        output, _ = process.communicate()
        artifacts = [p.name for p in (tmp_path / target).iterdir() if p.name != "corpus"]
        if process.returncode != 0 or artifacts or "Done" not in output:
            failures.append(f"{target}: exit {process.returncode}, {artifacts}\n{output[-3000:]}")
    assert not failures, "\n\n".join(failures)


# 3. Findings: bugs found by fuzzing.


def test_findings_are_replayed() -> None:
    """Every input kept in fuzz/findings/ belongs to a target and has a test below."""
    findings = sorted((FUZZ / "findings").glob("*/*"))
    assert {path.parent.name for path in findings} <= set(TARGETS)
    assert {f"{path.parent.name}/{path.name}" for path in findings} == set(FINDINGS)


def replay(finding: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the input of ``finding`` through its target with known bugs not stepped over."""
    target = finding.partition("/")[0]
    module = load(target)
    monkeypatch.setattr(sys.modules["_harness"], "STRICT", True)
    module.TestOneInput((FUZZ / "findings" / finding).read_bytes())


FINDINGS = {
    "uri/idna-two-dot-leader": "finding 1, fixed in 7e0f44d",
}


def test_finding_uri_idna_empty_label(monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 1: str.encode("idna") splits labels on dots, then NFKC maps U+2025 TWO DOT
    LEADER to "..", so parse_uri("ws://a\u2025b/") returned the host "a..b", which it
    refuses written in ASCII and connect() cannot resolve (UnicodeError from getaddrinfo).
    Fixed in 7e0f44d: such a host is refused with InvalidURI."""
    with pytest.raises(InvalidURI):
        parse_uri("ws://a\u2025b/")
    replay("uri/idna-two-dot-leader", monkeypatch)
