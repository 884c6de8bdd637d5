"""The listening sockets of ``socketeer serve`` (``socketeer.cli._listen``): one set per
worker where ``SO_REUSEPORT`` balances, one shared set elsewhere; a port in use, whoever
holds it; Unix socket files."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from socketeer.cli import CommandError, _listen
from socketeer.cli._listen import Listeners

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX sockets")

needs_share_port = pytest.mark.skipif(
    _listen.SHARE_PORT is None, reason="no load-balancing SO_REUSEPORT here"
)


@pytest.fixture
def listeners() -> Iterator[list[Listeners]]:
    """Closes the listeners a test appends."""
    made: list[Listeners] = []
    yield made
    for listener in made:
        listener.close()


def accept_one(sockets: list[socket.socket], port: int) -> socket.socket:
    """Connect to ``port``; the socket among ``sockets`` that got the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        for sock in sockets:
            sock.settimeout(0.05)
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            conn.close()
            return sock
    raise AssertionError("no socket got the connection")


@needs_share_port
def test_a_set_per_worker(listeners: list[Listeners]) -> None:
    listening = Listeners.tcp("127.0.0.1", 0, slots=3)
    listeners.append(listening)
    assert listening.per_slot
    sockets = [listening.sockets(slot) for slot in range(3)]
    assert len({id(sock) for group in sockets for sock in group}) == 3
    assert {group[0].getsockname() for group in sockets} == {("127.0.0.1", listening.port)}
    assert listening.url(tls=False) == f"ws://127.0.0.1:{listening.port}/"

    # A dead worker's sockets are closed, and bound again for the next one.
    (old,) = sockets[1]
    listening.release(1)
    assert old.fileno() == -1
    (new,) = listening.sockets(1)
    assert new is not old and new.getsockname() == ("127.0.0.1", listening.port)


def test_one_set_for_all(listeners: list[Listeners], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_listen, "SHARE_PORT", None)  # as on macOS
    listening = Listeners.tcp("127.0.0.1", 0, slots=3)
    listeners.append(listening)
    assert not listening.per_slot
    (sock,) = listening.sockets(0)
    assert listening.sockets(2) == [sock]
    listening.release(2)  # nothing to release: the others accept on it
    assert listening.sockets(2) == [sock]
    assert accept_one([sock], listening.port) is sock


def test_one_worker(listeners: list[Listeners]) -> None:
    listening = Listeners.tcp("127.0.0.1", 0)
    listeners.append(listening)
    assert not listening.per_slot
    (sock,) = listening.sockets()
    assert accept_one([sock], listening.port) is sock


@pytest.mark.parametrize("slots", [1, 2])
def test_port_in_use(slots: int) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(CommandError) as raised:
            Listeners.tcp("127.0.0.1", port, slots)
    assert str(raised.value) == f"cannot listen on 127.0.0.1:{port}: Address already in use"


@needs_share_port
def test_port_shared_by_another_server_is_in_use(listeners: list[Listeners]) -> None:
    # Another socketeer serve --workers: its sockets set SO_REUSEPORT, and so would ours.
    other = Listeners.tcp("127.0.0.1", 0, slots=2)
    listeners.append(other)
    with pytest.raises(CommandError, match="Address already in use"):
        Listeners.tcp("127.0.0.1", other.port, slots=2)


def test_host_that_does_not_resolve() -> None:
    with pytest.raises(CommandError, match=r"^cannot listen on nowhere\.invalid:8000: "):
        Listeners.tcp("nowhere.invalid", 8000)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
class TestUnix:
    def test_listen_then_remove(self, unix_path: str) -> None:
        listening = Listeners.unix(unix_path)
        try:
            assert listening.url(tls=True) == f"wss://localhost/ (unix socket {unix_path})"
            (sock,) = listening.sockets(1)  # every worker shares it
            with socket.socket(socket.AF_UNIX) as client:
                client.connect(unix_path)
        finally:
            listening.close()
        assert sock.fileno() == -1
        assert not os.path.exists(unix_path)

    def test_stale_socket_file_is_replaced(self, unix_path: str) -> None:
        with socket.socket(socket.AF_UNIX) as stale:
            stale.bind(unix_path)  # closed without removing the file: nobody listens
        Listeners.unix(unix_path).close()

    def test_socket_in_use(self, unix_path: str) -> None:
        with socket.socket(socket.AF_UNIX) as other:
            other.bind(unix_path)
            other.listen()
            with pytest.raises(CommandError) as raised:
                Listeners.unix(unix_path)
        assert str(raised.value) == (
            f"cannot listen on unix socket {unix_path}: another server listens on it"
        )

    def test_not_a_socket(self, unix_path: str) -> None:
        Path(unix_path).write_text("")
        with pytest.raises(CommandError, match="Address already in use"):
            Listeners.unix(unix_path)

    def test_file_replaced_meanwhile_is_left(self, unix_path: str) -> None:
        listening = Listeners.unix(unix_path)
        os.unlink(unix_path)
        Path(unix_path).write_text("someone else's")
        listening.close()
        assert Path(unix_path).read_text() == "someone else's"
