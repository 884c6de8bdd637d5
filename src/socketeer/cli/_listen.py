"""The listening sockets of ``socketeer serve``, bound before the application runs.

The process that runs ``serve`` binds them, whether it serves itself or supervises workers,
so that a port in use is one error, reported once, before any worker starts, and port 0
means one port for every worker. Workers inherit them.

With workers, on Linux (and on FreeBSD, with ``SO_REUSEPORT_LB``), each worker gets sockets
of its own, bound to the same address with ``SO_REUSEPORT``: the kernel spreads the
connections evenly among them. When a worker dies, its sockets are closed, so that new
connections go to the others until it is back, with new sockets. Elsewhere, and for a
Unix socket, every worker accepts on the same sockets (the kernel gives each connection to
whichever worker accepts it first).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import sys
from typing import Any

from . import CommandError

__all__ = ["BACKLOG", "SHARE_PORT", "Listeners"]

BACKLOG = 100
"""Connections the kernel queues for each listening socket (asyncio's default)."""

SHARE_PORT: int | None = getattr(socket, "SO_REUSEPORT_LB", None) or (
    getattr(socket, "SO_REUSEPORT", None) if sys.platform.startswith("linux") else None
)
"""The socket option that spreads connections among sockets bound to one address, where
the kernel balances them; ``None`` elsewhere (macOS's ``SO_REUSEPORT`` does not balance)."""

Address = tuple[int, Any]  # (family, sockaddr)


class Listeners:
    """The sockets a server listens on: one set per worker slot, or one set for all.

    Use :meth:`tcp` or :meth:`unix`; :meth:`close` when done.
    """

    def __init__(self, addresses: list[Address], per_slot: bool, unix: str | None) -> None:
        self.addresses = addresses
        """Where the sockets are bound: (family, sockaddr), with the port bound."""
        self.per_slot = per_slot
        """Whether each worker slot has sockets of its own (``SO_REUSEPORT``)."""
        self.unix_path = unix
        """The path of the Unix socket, if it is one."""
        self._slots: dict[int, list[socket.socket]] = {}
        self._unix_inode: int | None = None

    @classmethod
    def tcp(cls, host: str | None, port: int, slots: int = 1) -> Listeners:
        """Bind to ``host`` (every address it resolves to) and ``port``.

        Args:
            host: a host name or address; ``None`` or ``""``: every interface.
            port: the port; 0 picks a free one, the same for every address and slot.
            slots: how many workers will accept; more than one, where :data:`SHARE_PORT`
                exists, binds a set of sockets for each.

        Raises:
            CommandError: if the host does not resolve, or an address cannot be bound.
        """
        where = f"{host or '*'}:{port}"
        try:
            infos = socket.getaddrinfo(
                host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        except OSError as exc:
            raise CommandError(f"cannot listen on {where}: {exc.strerror or exc}") from exc
        addresses: list[Address] = []
        for info in infos:
            address = (int(info[0]), info[4])
            if address not in addresses:
                addresses.append(address)
        listeners = cls([], slots > 1 and SHARE_PORT is not None, None)
        try:
            for family, sockaddr in addresses:
                if port == 0 and listeners.addresses:  # the port the first address got
                    sockaddr = (sockaddr[0], listeners.port, *sockaddr[2:])
                listeners._add(family, sockaddr, slots)
        except OSError as exc:
            listeners.close()
            raise CommandError(f"cannot listen on {where}: {exc.strerror or exc}") from exc
        return listeners

    @classmethod
    def unix(cls, path: str) -> Listeners:
        """Bind a Unix socket at ``path``, replacing a socket file that nobody listens on.

        Raises:
            CommandError: if another server listens there, or the path cannot be bound.
        """
        listeners = cls([(socket.AF_UNIX, path)], False, path)
        try:
            _remove_stale(path)
            sock = _bind(socket.AF_UNIX, path, share=False)
        except OSError as exc:
            raise CommandError(
                f"cannot listen on unix socket {path}: {exc.strerror or exc}"
            ) from exc
        listeners._slots[0] = [sock]
        listeners._unix_inode = os.stat(path).st_ino
        return listeners

    def _add(self, family: int, sockaddr: Any, slots: int) -> None:
        if self.per_slot:
            # Only sockets that set SHARE_PORT may share the port: bind once without it,
            # so that a port another server listens on is an error, as without workers.
            with _bind(family, sockaddr, share=False, listen=False) as probe:
                sockaddr = probe.getsockname()
        for slot in range(slots if self.per_slot else 1):
            sock = _bind(family, sockaddr, share=self.per_slot)
            self._slots.setdefault(slot, []).append(sock)
            sockaddr = sock.getsockname()
        self.addresses.append((family, sockaddr))

    @property
    def port(self) -> int:
        """The TCP port bound (0 for a Unix socket)."""
        sockaddr = self.addresses[0][1]
        return int(sockaddr[1]) if isinstance(sockaddr, tuple) else 0

    def sockets(self, slot: int = 0) -> list[socket.socket]:
        """The sockets the worker in ``slot`` accepts on (the same for all, unless
        :attr:`per_slot`); bound again if :meth:`release` closed them.

        Raises:
            OSError: if they cannot be bound again.
        """
        key = slot if self.per_slot else 0
        sockets = self._slots.get(key)
        if sockets is None:
            sockets = []
            try:
                for family, sockaddr in self.addresses:
                    sockets.append(_bind(family, sockaddr, share=True))
            except OSError:
                for sock in sockets:
                    sock.close()
                raise
            self._slots[key] = sockets
        return sockets

    def release(self, slot: int) -> None:
        """Close the sockets of a slot whose worker died, if it has its own, so that new
        connections go to the other workers; :meth:`sockets` binds new ones."""
        if self.per_slot:
            for sock in self._slots.pop(slot, ()):
                sock.close()

    def url(self, tls: bool) -> str:
        """The ``ws://`` (``wss://``) URL of the first address, for people to read."""
        scheme = "wss" if tls else "ws"
        if self.unix_path is not None:
            return f"{scheme}://localhost/ (unix socket {self.unix_path})"
        host = str(self.addresses[0][1][0])
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self.port}/"

    def close(self) -> None:
        """Close every socket, and remove the Unix socket file if it is still ours."""
        for sockets in self._slots.values():
            for sock in sockets:
                sock.close()
        self._slots.clear()
        if self.unix_path is not None and self._unix_inode is not None:
            with contextlib.suppress(OSError):
                status = os.stat(self.unix_path)
                if stat.S_ISSOCK(status.st_mode) and status.st_ino == self._unix_inode:
                    os.unlink(self.unix_path)
            self._unix_inode = None


def _bind(family: int, sockaddr: Any, *, share: bool, listen: bool = True) -> socket.socket:
    """A socket bound to ``sockaddr``, listening unless told otherwise."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family != getattr(socket, "AF_UNIX", None):
            if os.name == "posix":  # reuse a port left in TIME_WAIT, as asyncio does
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if share and SHARE_PORT is not None:
                sock.setsockopt(socket.SOL_SOCKET, SHARE_PORT, 1)
            if family == socket.AF_INET6:  # as asyncio: IPv4 gets sockets of its own
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        if listen:
            sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def _remove_stale(path: str) -> None:
    """Remove the socket file at ``path`` if no server listens on it.

    Raises:
        OSError: ``EADDRINUSE`` if a server listens on it.
    """
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return  # binding fails with a clear error
    except FileNotFoundError:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)
            return
        except OSError:
            return
    raise OSError(errno.EADDRINUSE, "another server listens on it")
