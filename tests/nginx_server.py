"""A real ``nginx`` for the tests, in front of a socketeer server, on a free loopback port.

:class:`Nginx` runs ``nginx`` in the foreground, as one process (``daemon off``,
``master_process off``), with its pid file, logs and temporary files inside a directory of
the test's, so that it runs as any user and touches nothing outside (``/var`` included).
The site's configuration comes from ``docs/deployment.md`` (:func:`documented`): the tests
run exactly what the page tells users to write, with the test's ports and paths.

A missing ``nginx`` skips the tests that need it, with a hint to install it, except under
``CI=true``, where it fails them (:func:`redis_server.missing`). Every wait is bounded, in
:data:`MS`, which ``SOCKETEER_TEST_TIMEOUT_FACTOR`` scales.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from redis_server import free_port, missing
from timing import MS

__all__ = ["DEPLOYMENT", "Nginx", "documented", "require_nginx", "substitute"]

DEPLOYMENT = Path(__file__).parent.parent / "docs" / "deployment.md"
"""The page whose configurations the tests run."""

START_TIMEOUT = 5_000 * MS
"""Longest nginx may take to accept connections once started."""

# Debian and others install nginx in /usr/sbin, which is not on every user's PATH.
SBIN = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")

MAIN = """\
daemon off;
master_process off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log info;

events {{
    worker_connections 256;
}}

http {{
    access_log {directory}/access.log;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;

{site}
}}
"""
"""The main configuration the tests wrap a site in: a foreground process whose files are
all in ``directory``."""

_BLOCK = re.compile(r"<!-- nginx: (?P<name>[\w-]+) -->\n```nginx\n(?P<text>.*?)```", re.DOTALL)


def require_nginx() -> str:
    """The path of ``nginx``; skip or fail (see :func:`redis_server.missing`) without it."""
    executable = shutil.which("nginx")
    if executable is None:
        executable = next((path for path in SBIN if os.access(path, os.X_OK)), None)
    if executable is None:
        missing("executable 'nginx'", "apt-get install nginx")
    return executable


def documented(name: str) -> str:
    """The nginx configuration block of ``docs/deployment.md`` that the comment
    ``<!-- nginx: NAME -->`` announces.

    Raises:
        LookupError: if there is no such block.
    """
    for match in _BLOCK.finditer(DEPLOYMENT.read_text()):
        if match["name"] == name:
            return match["text"]
    raise LookupError(f"no block <!-- nginx: {name} --> in {DEPLOYMENT}")


def substitute(text: str, old: str, new: str) -> str:
    """``text`` with ``old`` replaced by ``new``, which must be there exactly once (so
    that a change of the page fails the tests loudly, rather than tests what it no longer
    says)."""
    count = text.count(old)
    if count != 1:
        raise LookupError(f"{old!r} found {count} times in the configuration:\n{text}")
    return text.replace(old, new)


class Nginx:
    """An ``nginx`` process serving ``site`` (the text of ``server`` blocks and what goes
    with them, inside ``http``) on 127.0.0.1.

    ``site`` holds ``{port}`` where nginx listens: :meth:`start` picks a free port.
    Call :meth:`stop` in every case.
    """

    def __init__(self, executable: str, directory: Path, site: str) -> None:
        self.executable = executable
        self.directory = directory
        self.site = site
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def error_log(self) -> str:
        """What nginx logged so far."""
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        """Start nginx and wait until it accepts connections.

        Raises:
            RuntimeError: if it exits or does not accept within :data:`START_TIMEOUT`.
        """
        assert self.process is None, "nginx already running"
        for attempt in range(3):  # a free port may be taken before nginx binds it
            self.port = free_port()
            try:
                self._spawn()
                return
            except RuntimeError:
                if attempt == 2:
                    raise

    def _spawn(self) -> None:
        directory = str(self.directory)
        site = self.site.replace("{port}", str(self.port))
        config = MAIN.format(directory=directory, site=site)
        (self.directory / "nginx.conf").write_text(config)
        command = [self.executable, "-p", directory, "-c", "nginx.conf", "-e", "error.log"]
        self.process = subprocess.Popen(
            command,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._accepts():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"nginx did not start on port {self.port}:\n{config}\n{self.error_log}"
                )
            time.sleep(MS)

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=100 * MS):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """Stop nginx: SIGTERM (fast shutdown), then SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=START_TIMEOUT)
