"""The supervisor of ``socketeer serve --workers``, with fake workers: restarts and their
rate, workers that fail to start or to stop.

A driver script runs :class:`~socketeer.cli._supervisor.Supervisor` in a subprocess (it
takes over SIGINT, SIGTERM and SIGCHLD), with short delays; each fake worker is a script
that gets its control socket's descriptor and a file to count its starts in.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import STARTUP, kill_processes_in

from socketeer.cli._supervisor import MAX_RESTART_DELAY, RESTART_DELAY, restart_delay
from timing import MS

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX workers")

DRIVER = """
import itertools
import json
import logging
import sys

from socketeer.cli import CommandError, _supervisor
from socketeer.cli._listen import Listeners

settings, worker, starts = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
workers = settings.pop("workers", 2)
for name, value in settings.items():
    setattr(_supervisor, name, value)
logging.basicConfig(level="INFO", format="%(message)s")


def command(sockets, control):
    return [sys.executable, worker, str(control), starts]


listeners = Listeners.tcp("127.0.0.1", 0, workers)
ready = lambda: print("ready", flush=True)  # noqa: E731
supervisor = _supervisor.Supervisor(command, listeners, workers, ready)
try:
    status = supervisor.run()
except CommandError as exc:
    print(f"failed: {exc}", flush=True)
    status = exc.status
finally:
    listeners.close()
sys.exit(status)
"""

WORKER_HEADER = """
import os
import signal
import socket
import sys
import time

control = socket.socket(fileno=int(sys.argv[1]))
with open(sys.argv[2], "a") as starts:
    starts.write("x")
with open(sys.argv[2]) as starts:
    start = len(starts.read())  # 1 for the first worker started, 2 for the next...


def ready():
    control.sendall(b"ready\\n")

"""


def supervise(tmp_path: Path, worker: str, **settings: Any) -> tuple[int, str, str]:
    """Run the supervisor with ``worker`` (its code after :data:`WORKER_HEADER`) and the
    module constants ``settings``; return its exit status, stdout and stderr."""
    (tmp_path / "driver.py").write_text(textwrap.dedent(DRIVER))
    (tmp_path / "worker.py").write_text(WORKER_HEADER + textwrap.dedent(worker))
    command = [
        sys.executable,
        str(tmp_path / "driver.py"),
        json.dumps(settings),
        str(tmp_path / "worker.py"),
        str(tmp_path / "starts"),
    ]
    directory = tmp_path / "run"  # where the driver and its workers run
    directory.mkdir()
    try:
        done = subprocess.run(
            command, cwd=directory, capture_output=True, text=True, timeout=STARTUP
        )
    except subprocess.TimeoutExpired as exc:  # pragma: no cover - a hang
        raise AssertionError(f"the supervisor did not stop: {exc.stderr!r}") from None
    finally:
        kill_processes_in(directory)  # workers left by a failure
    return done.returncode, done.stdout, done.stderr


def test_restart_delay_doubles_up_to_a_limit() -> None:
    delays = [restart_delay(crashes) for crashes in range(1, 12)]
    assert delays[0] == RESTART_DELAY
    assert all(b == min(2 * a, MAX_RESTART_DELAY) for a, b in itertools.pairwise(delays))
    assert delays[-1] == MAX_RESTART_DELAY
    assert restart_delay(10**9) == MAX_RESTART_DELAY


def test_crash_loop_is_slowed_down(tmp_path: Path) -> None:
    worker = """
    ready()
    if start <= 6:
        sys.exit(3)  # crash, once serving: the supervisor restarts it
    # The next one stops everything, as Ctrl-C would.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    os.kill(os.getppid(), signal.SIGTERM)
    time.sleep(60)
    """
    delay = 10 * MS
    status, stdout, stderr = supervise(
        tmp_path, worker, workers=1, RESTART_DELAY=delay, MAX_RESTART_DELAY=4 * delay
    )
    assert stdout == "ready\n"
    assert status == 0
    assert "SIGTERM: stopping 1 workers" in stderr
    # The delays double, up to the maximum: 10 ms, 20 ms, 40 ms, 40 ms...
    delays = [
        float(line.split(" in ")[1].removesuffix(" s"))
        for line in stderr.splitlines()
        if "exited with status 3; restarting it in " in line
    ]
    assert delays == [float(f"{min(delay * 2**n, 4 * delay):.3g}") for n in range(6)]


def test_worker_dies_without_a_word_before_serving(tmp_path: Path) -> None:
    status, stdout, _ = supervise(tmp_path, "sys.exit(3)\n")
    assert status == 1
    assert stdout == "failed: worker 1 exited with status 3 before serving\n"
    assert (tmp_path / "starts").read_text() == "x"  # the others never started


def test_worker_says_why_it_cannot_start(tmp_path: Path) -> None:
    worker = """
    control.sendall(b"error cannot import app: no module named 'app'\\n")
    sys.exit(1)
    """
    status, stdout, _ = supervise(tmp_path, worker)
    assert status == 1
    assert stdout == "failed: cannot import app: no module named 'app'\n"


def test_second_worker_fails_to_start(tmp_path: Path) -> None:
    worker = """
    if start == 2:
        sys.exit(3)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ready()
    time.sleep(60)
    """
    status, stdout, _ = supervise(tmp_path, worker)
    assert status == 1
    assert stdout == "failed: worker 2 exited with status 3 before serving\n"


def test_worker_not_serving_in_time_is_killed(tmp_path: Path) -> None:
    status, stdout, stderr = supervise(tmp_path, "time.sleep(60)\n", BOOT_TIMEOUT=100 * MS)
    assert status == 1
    assert stdout.startswith("failed: not serving after ")
    assert "killing it" in stderr


def test_worker_that_does_not_stop_is_killed(tmp_path: Path) -> None:
    worker = """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ready()
    if start == 2:
        os.kill(os.getppid(), signal.SIGTERM)
    time.sleep(60)
    """
    status, stdout, stderr = supervise(tmp_path, worker, STOP_TIMEOUT=100 * MS)
    assert stdout == "ready\n"
    assert status == 1
    assert "2 workers still running" in stderr
