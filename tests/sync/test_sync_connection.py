from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sync_helpers import MS, echo, run_server, uri

from socketeer.exceptions import ConnectionClosedError, ConnectionClosedOK
from socketeer.protocol import State
from socketeer.protocol.base import Protocol
from socketeer.protocol.frames import OP_BINARY, OP_CONT, OP_TEXT, CloseCode, Frame
from socketeer.protocol.http11 import Request
from socketeer.protocol.server import ServerProtocol
from socketeer.sync import ServerConnection, connect


@pytest.mark.parametrize("compression", ["deflate", None])
def test_echo_text_and_binary(compression: str | None) -> None:
    with run_server(echo, compression=compression) as server:
        with connect(uri(server), compression=compression, open_timeout=1) as ws:
            ws.send("héllo")
            assert ws.recv(timeout=1) == "héllo"
            ws.send(b"\x00\xff" * 1000)
            assert ws.recv(timeout=1) == b"\x00\xff" * 1000
            ws.send(bytearray(b"ba"))
            assert ws.recv(timeout=1, decode=True) == "ba"
            assert bool(ws.response and ws.response.headers.get("Sec-WebSocket-Extensions")) is (
                compression is not None
            )
        assert ws.close_code == CloseCode.NORMAL_CLOSURE
        assert ws.state is State.CLOSED


def test_large_message_read_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    receive_into = Protocol.receive_into

    def counting(self: Protocol, nbytes: int) -> None:
        calls.append(nbytes)
        receive_into(self, nbytes)

    monkeypatch.setattr(Protocol, "receive_into", counting)
    message = bytes(range(256)) * 4096  # 1 MiB: more than one read
    options: dict[str, Any] = {"compression": None, "max_size": 2**21}
    with run_server(echo, **options) as server, connect(uri(server), **options) as ws:
        ws.send(message)
        assert ws.recv(timeout=5) == message
    assert calls


def test_server_sends_first() -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send("welcome")
        ws.recv(timeout=1)

    with run_server(handler) as server, connect(uri(server)) as ws:
        assert ws.recv(timeout=1) == "welcome"
        assert ws.remote_address == server.socket.getsockname()
        ws.send("bye")


def test_fragments_both_ways() -> None:
    def handler(ws: ServerConnection) -> None:
        frames = [ws.recv_frame(timeout=1) for _ in range(3)]
        assert [f.opcode for f in frames] == [OP_TEXT, OP_CONT, OP_CONT]
        ws.send([b"ab", b"cd"])
        ws.recv(timeout=1)

    with run_server(handler, compression=None) as server:
        with connect(uri(server), compression=None) as ws:
            ws.send(["fr", "ag"])
            assert ws.recv(timeout=1) == b"abcd"
            ws.send("done")


def test_mixed_fragments_fail_with_1011() -> None:
    with run_server(echo) as server, connect(uri(server)) as ws:
        with pytest.raises(TypeError):
            ws.send(["text", b"bytes"])
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=1)
        assert ws.protocol.close_sent is not None
        assert ws.protocol.close_sent.code == CloseCode.INTERNAL_ERROR


def test_send_frame_and_bad_message() -> None:
    with run_server(echo) as server, connect(uri(server)) as ws:
        ws.send_frame(Frame(OP_BINARY, b"raw"))
        assert ws.recv(timeout=1) == b"raw"
        with pytest.raises(TypeError):
            ws.send({"not": "a message"})  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            ws.send(42)  # type: ignore[arg-type]


def test_recv_timeout() -> None:
    with run_server(echo) as server, connect(uri(server)) as ws:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            ws.recv(timeout=20 * MS)
        assert time.monotonic() - started < 1
        ws.send("still works")
        assert ws.recv(timeout=1) == "still works"


def test_ping_latency_and_pong() -> None:
    with run_server(echo) as server, connect(uri(server)) as ws:
        waiter = ws.ping()
        assert waiter.wait(1)
        assert waiter.latency is not None and waiter.latency > 0
        assert ws.latency == waiter.latency
        assert ws.ping(b"custom").wait(1)
        ws.pong(b"unsolicited")


def test_ping_waiter_fails_on_close() -> None:
    with run_server(lambda ws: ws.recv(timeout=1)) as server:
        # The server's reading thread stops when the handler returns: close now.
        with connect(uri(server)) as ws:
            ws.send("go")
            with pytest.raises(ConnectionClosedOK):
                ws.recv(timeout=1)
        with pytest.raises(ConnectionClosedOK):
            ws.ping()


@pytest.mark.parametrize("code", [CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY, 4000])
def test_client_closes_with_code(code: int) -> None:
    seen: list[tuple[int | None, str | None]] = []

    def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosedOK, ConnectionClosedError):
            ws.recv(timeout=1)
        seen.append((ws.close_code, ws.close_reason))

    with run_server(handler) as server:
        ws = connect(uri(server))
        ws.close(code, "reason")
        assert ws.wait_closed(1)
    assert seen == [(code, "reason")]


def test_server_closes_with_code() -> None:
    with run_server(lambda ws: ws.close(4001, "server reason")) as server:
        with connect(uri(server)) as ws:
            with pytest.raises(ConnectionClosedError) as info:
                ws.recv(timeout=1)
        assert ws.close_code == 4001 and ws.close_reason == "server reason"
        assert info.value.rcvd is not None and info.value.rcvd.code == 4001


def test_iteration_ends_quietly_on_normal_close() -> None:
    def handler(ws: ServerConnection) -> None:
        for i in range(3):
            ws.send(str(i))

    with run_server(handler) as server, connect(uri(server)) as ws:
        assert list(ws) == ["0", "1", "2"]


def test_iteration_raises_on_abnormal_close() -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send("x")
        raise RuntimeError("handler fails")

    with run_server(handler) as server, connect(uri(server)) as ws:
        with pytest.raises(ConnectionClosedError):
            for _ in ws:
                pass
        assert ws.close_code == CloseCode.INTERNAL_ERROR


def test_backpressure_blocks_reading_thread() -> None:
    sent = threading.Event()
    release = threading.Event()

    def handler(ws: ServerConnection) -> None:
        for _ in range(1000):
            ws.send(b"x" * 32768)  # 32 MB: more than the kernel buffers
        sent.set()
        release.wait(2)

    with run_server(handler, compression=None) as server:
        # A small receive buffer, so that the kernel cannot hold what the server sends.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.connect(server.socket.getsockname())
        with connect(uri(server), sock=sock, max_queue=4, compression=None) as ws:
            time.sleep(100 * MS)
            # The reader stopped reading: the queue holds max_queue messages, not 1000.
            assert ws.recv_messages.paused
            assert 4 <= ws.recv_messages.messages <= 8
            assert len(ws.protocol._buffer) <= 65536 + 32768
            assert not sent.is_set()
            received = sum(1 for _ in range(1000) if ws.recv(timeout=1))
            assert received == 1000
            assert sent.wait(1)
            release.set()


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A TCP server that answers the opening handshake, then never reads nor writes."""
    listener = socket.create_server(("127.0.0.1", 0))
    peers: list[socket.socket] = []

    def accept() -> None:
        peer, _ = listener.accept()
        peers.append(peer)
        protocol = ServerProtocol()
        protocol.receive_data(peer.recv(65536))
        (request,) = protocol.events_received()
        assert isinstance(request, Request)
        protocol.send_response(protocol.accept(request))
        peer.sendall(b"".join(protocol.data_to_send()))

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(1)
        for peer in peers:
            peer.close()
        listener.close()


def test_keepalive_timeout_against_silent_peer() -> None:
    with silent_server() as port:
        ws = connect(
            f"ws://127.0.0.1:{port}/",
            compression=None,
            ping_interval=20 * MS,
            ping_timeout=20 * MS,
            close_timeout=1,
        )
        assert ws.wait_closed(1)
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=0)
        assert ws.protocol.close_sent is not None
        assert ws.protocol.close_sent.code == CloseCode.INTERNAL_ERROR
        ws.close()


def test_keepalive_keeps_a_live_connection() -> None:
    options: dict[str, Any] = {"ping_interval": 10 * MS, "ping_timeout": 50 * MS}
    with run_server(echo, **options) as server, connect(uri(server), **options) as ws:
        time.sleep(100 * MS)
        assert ws.state is State.OPEN and ws.latency > 0
        ws.send("alive")
        assert ws.recv(timeout=1) == "alive"


def test_close_timeout_against_silent_peer() -> None:
    with silent_server() as port:
        ws = connect(f"ws://127.0.0.1:{port}/", ping_interval=None, close_timeout=50 * MS)
        started = time.monotonic()
        ws.close()
        assert time.monotonic() - started < 1
        assert ws.state is State.CLOSED and ws.close_code == CloseCode.ABNORMAL_CLOSURE


# Who reads: recv() in the calling thread when nobody else does; the reading thread otherwise.


def record_readers(ws: Any) -> list[threading.Thread]:
    """The threads that feed bytes to the protocol of ``ws``, in order."""
    readers: list[threading.Thread] = []

    class Recording(type(ws.protocol)):  # type: ignore[misc]
        __slots__ = ()  # the layout of the protocol's class: its instance may become one

        def receive_data(self, data: Any) -> None:
            readers.append(threading.current_thread())
            super().receive_data(data)

    ws.protocol.__class__ = Recording
    return readers


def test_recv_reads_in_the_calling_thread() -> None:
    with run_server(echo) as server, connect(uri(server), ping_interval=None) as ws:
        readers = record_readers(ws)
        for i in range(10):
            ws.send(str(i))
            assert ws.recv(timeout=1) == str(i)
        # All of them, unless the machine stalled for longer than the grace period.
        assert threading.current_thread() in readers


def test_recv_timeout_zero_reads_what_came() -> None:
    with run_server(echo) as server, connect(uri(server)) as ws:
        ws.send("there")
        for _ in range(1000):  # until the echo came (read by the reading thread or not)
            with contextlib.suppress(TimeoutError):
                assert ws.recv(timeout=0) == "there"
                break
            time.sleep(MS)
        else:
            pytest.fail("no echo")


def test_reading_thread_reads_while_no_recv() -> None:
    pinged: list[bool] = []

    def handler(ws: ServerConnection) -> None:
        for i in range(3):
            ws.send(str(i))
        # The client does not call recv(): its reading thread answers this ping.
        pinged.append(ws.ping().wait(1000 * MS))
        ws.recv(timeout=1)

    with run_server(handler) as server, connect(uri(server)) as ws:
        readers = record_readers(ws)
        for _ in range(2000):
            if pinged:
                break
            time.sleep(MS)
        assert pinged == [True]
        assert threading.current_thread() not in readers
        assert [ws.recv(timeout=1) for _ in range(3)] == ["0", "1", "2"]
        ws.send("done")


def wait_for_reading_thread(ws: Any) -> None:
    """Make the reading thread take the read token now, and wait until it has it."""
    ws.recv_messages.wake_reader()
    for _ in range(1000):
        if ws.recv_messages.reading:
            return
        time.sleep(MS)
    pytest.fail("the reading thread did not take the token")


def test_recv_while_the_reading_thread_reads() -> None:
    release = threading.Event()

    def handler(ws: ServerConnection) -> None:
        release.wait(1000 * MS)
        for i in range(3):
            ws.send(str(i))
        for message in ws:
            ws.send(message)

    with run_server(handler) as server, connect(uri(server), ping_interval=None) as ws:
        readers = record_readers(ws)
        wait_for_reading_thread(ws)
        timer = threading.Timer(20 * MS, release.set)
        timer.start()
        try:
            # Nothing queued, the reading thread holds the token: recv() waits for what it
            # reads, then takes the token back.
            assert ws.recv(timeout=1) == "0"
            assert [ws.recv(timeout=1) for _ in range(2)] == ["1", "2"]
            for i in range(5):
                ws.send(str(i))
                assert ws.recv(timeout=1) == str(i)
        finally:
            timer.join()
        assert readers[0] is ws.recv_events_thread
        assert threading.current_thread() in readers


def test_recv_frame_while_the_reading_thread_reads() -> None:
    def handler(ws: ServerConnection) -> None:
        ws.recv(timeout=1)
        ws.send(["a", "b"])
        ws.recv(timeout=1)

    with run_server(handler) as server, connect(uri(server), ping_interval=None) as ws:
        wait_for_reading_thread(ws)
        ws.send("go")
        assert ws.recv_frame(timeout=1) == Frame(OP_TEXT, b"a", fin=False)
        assert ws.recv_frame(timeout=1) == Frame(OP_CONT, b"b", fin=False)
        assert ws.recv_frame(timeout=1) == Frame(OP_CONT, b"", fin=True)
        ws.send("done")


def test_ping_from_the_application_while_no_recv() -> None:
    with run_server(echo) as server, connect(uri(server), ping_interval=None) as ws:
        ws.send("x")
        assert ws.recv(timeout=1) == "x"
        # recv() read last; now the reading thread reads the pong without waiting.
        assert ws.ping().wait(1000 * MS)


def test_peer_closes_while_no_recv() -> None:
    with run_server(lambda ws: ws.close(4002)) as server:
        ws = connect(uri(server))
        assert ws.wait_closed(1)
        assert ws.close_code == 4002
        ws.close()


def test_keepalive_fails_while_recv_blocks() -> None:
    with silent_server() as port:
        ws = connect(
            f"ws://127.0.0.1:{port}/",
            compression=None,
            ping_interval=20 * MS,
            ping_timeout=20 * MS,
            close_timeout=1,
        )
        safety = threading.Timer(2000 * MS, ws._abort)  # ends the test if this fails
        safety.start()
        try:
            # recv() reads, blocking in the socket without a timeout: the reading thread
            # keeps the deadlines meanwhile, and ends the read.
            with pytest.raises(ConnectionClosedError):
                ws.recv()
        finally:
            safety.cancel()
            safety.join()
        assert ws.protocol.close_sent is not None
        assert ws.protocol.close_sent.code == CloseCode.INTERNAL_ERROR
        assert ws.wait_closed(1)
        ws.close()


def receive_in_thread(ws: Any) -> tuple[threading.Thread, list[Exception]]:
    """Call ``ws.recv()`` without a timeout in a new thread; what it raises goes in a list."""
    errors: list[Exception] = []

    def receive() -> None:
        try:
            ws.recv()
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=receive)
    thread.start()
    for _ in range(1000):  # until it reads
        if ws.recv_messages.reading:
            break
        time.sleep(MS)
    return thread, errors


def test_close_timeout_while_recv_blocks() -> None:
    with silent_server() as port:
        ws = connect(f"ws://127.0.0.1:{port}/", ping_interval=None, close_timeout=50 * MS)
        thread, errors = receive_in_thread(ws)
        try:
            ws.close()
        finally:
            thread.join(1000 * MS)
        assert ws.state is State.CLOSED and ws.close_code == CloseCode.ABNORMAL_CLOSURE
        assert len(errors) == 1 and isinstance(errors[0], ConnectionClosedError)


def test_close_from_another_thread_while_recv_blocks() -> None:
    with run_server(echo) as server:
        ws = connect(uri(server))
        thread, errors = receive_in_thread(ws)
        try:
            ws.close()
        finally:
            thread.join(1000 * MS)
        assert ws.close_code == CloseCode.NORMAL_CLOSURE
        assert len(errors) == 1 and isinstance(errors[0], ConnectionClosedOK)


def test_unexpected_error_while_reading(caplog: pytest.LogCaptureFixture) -> None:
    with run_server(echo) as server, connect(uri(server)) as ws:

        class Broken(type(ws.protocol)):  # type: ignore[misc]
            __slots__ = ()  # the layout of the protocol's class: its instance may become one

            def receive_data(self, data: Any) -> None:
                raise RuntimeError("bug")

        ws.protocol.__class__ = Broken
        ws.send("x")
        with caplog.at_level(logging.ERROR, "socketeer.client"):
            with pytest.raises(ConnectionClosedError):
                ws.recv(timeout=1)
        # "while reading" in recv(), unless the machine stalled and the reading thread read.
        assert "unexpected error" in caplog.text
        assert ws.wait_closed(1)


def test_send_after_close() -> None:
    with run_server(echo) as server, connect(uri(server)) as ws:
        ws.close()
        with pytest.raises(ConnectionClosedOK):
            ws.send("late")
        with pytest.raises(ConnectionClosedOK):
            ws.send(b"late")


def test_send_while_closing_waits_for_the_end() -> None:
    # The close frame went out and the peer never answers: send() waits for the closing
    # handshake, which close_timeout ends, rather than failing at once while it runs.
    with silent_server() as port:
        ws = connect(f"ws://127.0.0.1:{port}/", ping_interval=None, close_timeout=50 * MS)
        closer = threading.Thread(target=ws.close, args=(1001,))
        closer.start()
        deadline = time.monotonic() + 1
        while ws.state is State.OPEN and time.monotonic() < deadline:
            time.sleep(MS)
        with pytest.raises(ConnectionClosedError) as info:
            while True:  # the state may still be OPEN for a moment
                ws.send("during the closing handshake")
        assert ws.state is State.CLOSED
        assert info.value.sent is not None and info.value.sent.code == 1001
        closer.join(1)


def test_send_when_writing_fails() -> None:
    with run_server(echo) as server, connect(uri(server)) as ws:
        ws.socket.shutdown(socket.SHUT_WR)  # the next write fails with EPIPE
        with pytest.raises(ConnectionClosedError) as info:
            ws.send("lost")
        assert isinstance(info.value.__cause__, OSError)
        assert ws.wait_closed(1)


def test_peer_closes_in_the_opening_handshake_read() -> None:
    """The response and a close frame come in one read: reading starts closing."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        peer, _ = listener.accept()
        with peer:
            protocol = ServerProtocol()
            protocol.receive_data(peer.recv(65536))
            (request,) = protocol.events_received()
            assert isinstance(request, Request)
            protocol.send_response(protocol.accept(request))
            protocol.send_close(4003, "at once")
            peer.sendall(b"".join(protocol.data_to_send()))
            while data := peer.recv(65536):  # the client's close frame
                protocol.receive_data(data)
                for output in protocol.data_to_send():
                    if output:
                        peer.sendall(output)
                    else:
                        peer.shutdown(socket.SHUT_WR)  # then the client's EOF

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        ws = connect(f"ws://127.0.0.1:{listener.getsockname()[1]}/", compression=None)
        assert ws.state is not State.OPEN
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=1)
        assert ws.wait_closed(1)
        assert ws.close_code == 4003
        ws.close()
    finally:
        thread.join(1000 * MS)
        listener.close()
