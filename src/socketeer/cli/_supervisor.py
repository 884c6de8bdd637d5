"""The supervisor of ``socketeer serve --workers N``: it starts the workers, restarts those
that die, and stops them all on SIGINT or SIGTERM.

Theory of operation
-------------------

Workers are processes of ``python -m socketeer serve MODULE:ATTR ... --worker-sockets FDS
--worker-control FD`` (:mod:`.serve`): each imports the application itself and serves on
the listening sockets it inherits (:mod:`._listen`). Each worker has a *control* socket,
one end of a socket pair whose other end the supervisor holds: the worker writes the line
``ready`` once it serves, or ``error MESSAGE`` if it cannot start; and it stops, as on
SIGTERM, when its control socket reaches the end of the stream: whichever way the
supervisor dies, its workers do not outlive it. Workers run in sessions of their own, so
that Ctrl-C in a terminal reaches the supervisor only, which forwards it once.

The supervisor is one thread, waiting in a selector for the signals (through
:func:`signal.set_wakeup_fd`: SIGINT, SIGTERM, and SIGCHLD when a worker exits), the
control sockets, and the next deadline. Its states:

- *booting*: the first worker starts alone, so that an application that cannot be
  imported is one error, from one worker; then the others. Once the worker of every slot
  was ready, ``on_ready`` is called (``serve`` prints the URL). A worker that exits before
  it is ready fails the command: the others are stopped, and :meth:`Supervisor.run` raises
  the worker's error. (One that exits after it was ready is restarted, as below.)
- *serving*: a worker that exits is logged and restarted, after a delay that doubles with
  each crash of its slot, from :data:`RESTART_DELAY` up to :data:`MAX_RESTART_DELAY` (the
  count starts again once a worker served :data:`STABLE_AFTER` seconds): a crash loop
  restarts a slot at most every :data:`MAX_RESTART_DELAY` seconds. Its slot's own sockets,
  if it has some, are closed meanwhile.
- *stopping*, from the first SIGINT or SIGTERM: the signal goes to every worker, pending
  restarts are dropped, workers still running after :data:`STOP_TIMEOUT` are killed, and a
  second signal kills them at once. The exit status is 0 if every worker exited with 0.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator

from . import CommandError
from ._listen import Listeners

__all__ = [
    "Supervisor",
    "WorkerCommand",
    "RESTART_DELAY",
    "MAX_RESTART_DELAY",
    "STABLE_AFTER",
    "BOOT_TIMEOUT",
    "STOP_TIMEOUT",
    "describe_exit",
    "restart_delay",
]

logger = logging.getLogger("socketeer.server")

RESTART_DELAY = 0.5
"""Seconds before restarting a worker that died, the first time."""
MAX_RESTART_DELAY = 30.0
"""The longest delay before restarting a worker, in seconds, reached in a crash loop."""
STABLE_AFTER = 30.0
"""Seconds after which a worker that dies counts as a first crash again."""
BOOT_TIMEOUT = 60.0
"""Seconds a worker has to import the application and serve; then it is killed."""
STOP_TIMEOUT = 30.0
"""Seconds workers have to close their connections and exit; then they are killed."""
_TICK = 1.0  # longest wait in the selector, should a SIGCHLD go unnoticed
_MAX_LINE = 65_536  # bytes of a control line, past which the rest is dropped
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

WorkerCommand = Callable[[list[int], int], list[str]]
"""Makes a worker's command line from the descriptors of its listening sockets and of its
control socket."""


def describe_exit(returncode: int) -> str:
    """How a process ended, from its :attr:`~subprocess.Popen.returncode`."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


class _Worker:
    """A worker process, and what it said on its control socket."""

    def __init__(self, slot: int, process: subprocess.Popen[bytes], control: socket.socket):
        self.slot = slot
        self.process = process
        self.control: socket.socket | None = control
        self.started = time.monotonic()
        self.ready = False
        self.error: str | None = None
        self.killed = False
        self.buffer = b""

    def __str__(self) -> str:
        return f"worker {self.slot + 1} (pid {self.process.pid})"

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signum)

    def kill(self) -> None:
        self.killed = True
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()


class Supervisor:
    """Runs ``workers`` worker processes until SIGINT or SIGTERM; see the module.

    Args:
        command: makes each worker's command line.
        listeners: the listening sockets the workers inherit.
        workers: how many workers to run.
        on_ready: called once every worker serves, the first time.
    """

    def __init__(
        self,
        command: WorkerCommand,
        listeners: Listeners,
        workers: int,
        on_ready: Callable[[], None],
    ) -> None:
        self.command = command
        self.listeners = listeners
        self.size = workers
        self.on_ready = on_ready
        self._selector = selectors.DefaultSelector()
        self._workers: dict[int, _Worker] = {}  # slot → its running worker
        self._crashes = [0] * workers  # slot → crashes in a row
        self._restarts: dict[int, float] = {}  # slot → when to start it again
        self._booting = True
        self._served: set[int] = set()  # slots whose worker was ready, while booting
        self._stopping = False
        self._stop_deadline = float("inf")
        self._failure: str | None = None
        self._status = 0

    def run(self) -> int:
        """Start the workers and supervise them until they all stopped.

        Returns:
            The exit status: 0 if the workers stopped when told to, and exited with 0.

        Raises:
            CommandError: if a worker could not start: its error, or how it ended.
        """
        with self._signals():
            try:
                self._start(0)
                while not (self._stopping and not self._workers):
                    self._step()
            finally:
                for worker in list(self._workers.values()):  # only after an error
                    worker.kill()
                    worker.process.wait()
                    self._forget(worker)
                self._selector.close()
        if self._failure is not None:
            raise CommandError(self._failure)
        return self._status

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """Have the signals wake the selector up, with their numbers to read."""
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        previous = {
            signum: signal.signal(signum, _noted) for signum in (*_STOP_SIGNALS, signal.SIGCHLD)
        }
        self._selector.register(reader, selectors.EVENT_READ)
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            signal.set_wakeup_fd(previous_fd)
            reader.close()
            writer.close()

    def _step(self) -> None:
        """Wait for something to happen, and handle it."""
        for key, _ in self._selector.select(self._timeout()):
            if key.data is None:
                self._read_signals(key.fileobj)  # type: ignore[arg-type]
            else:
                self._read_control(key.data)
        self._reap()
        self._check_times()

    def _timeout(self) -> float:
        now = time.monotonic()
        deadlines = [now + _TICK, self._stop_deadline, *self._restarts.values()]
        deadlines += [w.started + BOOT_TIMEOUT for w in self._workers.values() if not w.ready]
        return max(0.0, min(deadlines) - now)

    # Signals

    def _read_signals(self, reader: socket.socket) -> None:
        try:
            signums = reader.recv(256)
        except BlockingIOError:
            return
        for signum in signums:
            if signum in _STOP_SIGNALS:
                self._stop_signal(signal.Signals(signum))

    def _stop_signal(self, signum: signal.Signals) -> None:
        if not self._stopping:
            logger.info("%s: stopping %d workers", signum.name, len(self._workers))
            self._stop(signum)
        else:
            logger.warning("%s again: killing the workers", signum.name)
            self._status = 1
            for worker in self._workers.values():
                worker.kill()

    def _stop(self, signum: int) -> None:
        self._stopping = True
        self._restarts.clear()
        self._stop_deadline = time.monotonic() + STOP_TIMEOUT
        for worker in self._workers.values():
            worker.signal(signum)

    # Starting

    def _start(self, slot: int) -> None:
        try:
            sockets = self.listeners.sockets(slot)
            parent, child = socket.socketpair()
        except OSError as exc:
            self._cannot_start(slot, f"cannot listen: {exc.strerror or exc}")
            return
        try:
            fds = [sock.fileno() for sock in sockets]
            process = subprocess.Popen(
                self.command(fds, child.fileno()),
                pass_fds=[*fds, child.fileno()],
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in a terminal is for the supervisor
            )
        except OSError as exc:
            parent.close()
            self._cannot_start(slot, f"cannot start a worker: {exc.strerror or exc}")
            return
        finally:
            child.close()  # the worker's end: the worker holds it now
        parent.setblocking(False)
        worker = self._workers[slot] = _Worker(slot, process, parent)
        self._selector.register(parent, selectors.EVENT_READ, worker)
        logger.debug("%s started", worker)

    def _cannot_start(self, slot: int, reason: str) -> None:
        if self._booting:
            self._fail(reason)
        else:
            self._restart_later(slot, f"worker {slot + 1} {reason}")

    def _fail(self, reason: str) -> None:
        if self._failure is None:
            self._failure = reason
            self._status = 1
        if not self._stopping:
            self._stop(signal.SIGTERM)

    def _restart_later(self, slot: int, what: str) -> None:
        self._crashes[slot] += 1
        delay = restart_delay(self._crashes[slot])
        logger.error("%s; restarting it in %.3g s", what, delay)
        self.listeners.release(slot)
        self._restarts[slot] = time.monotonic() + delay

    # Control sockets

    def _read_control(self, worker: _Worker) -> None:
        control = worker.control
        assert control is not None
        try:
            data = control.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._forget(worker)
            return
        *lines, rest = (worker.buffer + data).split(b"\n")
        worker.buffer = rest[:_MAX_LINE]
        for line in lines:
            self._message(worker, line.decode(errors="replace"))

    def _message(self, worker: _Worker, line: str) -> None:
        if line == "ready" and not worker.ready:
            worker.ready = True
            logger.info("%s serving", worker)
            if self._booting:
                self._booted(worker)
        elif line.startswith("error "):
            worker.error = line.removeprefix("error ")

    def _booted(self, worker: _Worker) -> None:
        if worker.slot == 0:  # the first worker imported the application: start the others
            for slot in range(1, self.size):
                if slot not in self._workers and slot not in self._restarts:
                    self._start(slot)
                if self._stopping:
                    return
        self._served.add(worker.slot)
        if len(self._served) == self.size:
            self._booting = False
            self.on_ready()

    def _forget(self, worker: _Worker) -> None:
        """Stop reading the control socket of a worker, and close it."""
        control, worker.control = worker.control, None
        if control is not None:
            self._selector.unregister(control)
            control.close()

    # Exits and times

    def _reap(self) -> None:
        for slot, worker in list(self._workers.items()):
            returncode = worker.process.poll()
            if returncode is None:
                continue
            while worker.control is not None:  # read what it said last
                self._read_control(worker)
                if worker.control is not None and not _readable(worker.control):
                    self._forget(worker)
            del self._workers[slot]
            self._exited(worker, returncode)

    def _exited(self, worker: _Worker, returncode: int) -> None:
        how = describe_exit(returncode)
        if self._stopping:
            if returncode != 0 and not worker.killed:
                logger.warning("%s %s while stopping", worker, how)
            if returncode != 0:
                self._status = 1
            return
        if self._booting and not worker.ready:
            self._fail(worker.error or f"worker {worker.slot + 1} {how} before serving")
            return
        if time.monotonic() - worker.started >= STABLE_AFTER:
            self._crashes[worker.slot] = 0
        error = f": {worker.error}" if worker.error else ""
        self._restart_later(worker.slot, f"{worker} {how}{error}")

    def _check_times(self) -> None:
        now = time.monotonic()
        for slot, when in list(self._restarts.items()):
            if when <= now:
                del self._restarts[slot]
                self._start(slot)
        for worker in self._workers.values():
            if not worker.ready and not worker.killed and now - worker.started > BOOT_TIMEOUT:
                worker.error = worker.error or f"not serving after {BOOT_TIMEOUT:.0f} s"
                logger.error("%s %s: killing it", worker, worker.error)
                worker.kill()
        if now > self._stop_deadline:
            self._stop_deadline = float("inf")
            if self._workers:
                logger.error(
                    "%d workers still running %.0f s after being told to stop: killing them",
                    len(self._workers),
                    STOP_TIMEOUT,
                )
                self._status = 1
                for worker in self._workers.values():
                    worker.kill()


def restart_delay(crashes: int) -> float:
    """Seconds before restarting a worker after ``crashes`` crashes in a row (1 or more)."""
    doublings = min(max(crashes, 1), 32) - 1
    return min(MAX_RESTART_DELAY, RESTART_DELAY * float(2**doublings))


def _noted(signum: int, frame: object) -> None:
    """A signal handler that does nothing: the wakeup descriptor tells the selector."""


def _readable(sock: socket.socket) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        return bool(selector.select(0))
