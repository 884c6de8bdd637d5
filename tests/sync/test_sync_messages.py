from __future__ import annotations

import threading

import pytest
from sync_helpers import MS

from socketeer.exceptions import ConcurrencyError
from socketeer.protocol.frames import OP_BINARY, OP_CONT, OP_TEXT, Frame
from socketeer.sync.messages import Assembler


def test_get_whole_message_from_fragments() -> None:
    assembler = Assembler()
    assembler.put(Frame(OP_TEXT, b"ca", fin=False))
    with pytest.raises(TimeoutError):
        assembler.get(timeout=0)
    assembler.put(Frame(OP_CONT, "fé".encode()))
    assert assembler.get(timeout=0) == "café"
    assembler.put(Frame(OP_BINARY, b"\x01"))
    assert assembler.get(decode=False, timeout=0) == b"\x01"


def test_decode_options() -> None:
    assembler = Assembler()
    assembler.put(Frame(OP_TEXT, b"t"))
    assembler.put(Frame(OP_BINARY, b"b"))
    assert assembler.get(decode=False) == b"t"
    assert assembler.get(decode=True) == "b"


def test_get_frame() -> None:
    assembler = Assembler()
    assembler.put(Frame(OP_TEXT, b"a", fin=False))
    assert assembler.get_frame(timeout=0) == Frame(OP_TEXT, b"a", fin=False)
    with pytest.raises(TimeoutError):
        assembler.get_frame(timeout=0)


def test_get_waits_for_put_from_another_thread() -> None:
    assembler = Assembler()
    timer = threading.Timer(10 * MS, assembler.put, [Frame(OP_TEXT, b"late")])
    timer.start()
    try:
        assert assembler.get(timeout=1000 * MS) == "late"
    finally:
        timer.join()


def test_concurrent_readers() -> None:
    assembler = Assembler()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            assembler.get(timeout=500 * MS)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for _ in range(100):
            if assembler._waiting:
                break
            threading.Event().wait(MS)
        with pytest.raises(ConcurrencyError):
            assembler.get(timeout=0)
    finally:
        assembler.close()
        thread.join(1000 * MS)
    assert len(errors) == 1 and isinstance(errors[0], EOFError)


def test_close_then_eof_after_leftovers() -> None:
    assembler = Assembler()
    assembler.put(Frame(OP_TEXT, b"left"))
    assembler.close()
    assert assembler.get(timeout=0) == "left"
    with pytest.raises(EOFError):
        assembler.get(timeout=0)
    with pytest.raises(EOFError):
        assembler.get_frame()


def test_pause_and_resume() -> None:
    assembler = Assembler(high=4)
    for _ in range(4):
        assembler.put(Frame(OP_BINARY, b"x"))
    assert assembler.paused
    assert not assembler.wait_resumed(0)
    for _ in range(3):
        assembler.get(timeout=0)
    assert not assembler.paused and assembler.wait_resumed(0)


def test_stop_pausing_drops_beyond_high() -> None:
    assembler = Assembler(high=2)
    assembler.put(Frame(OP_BINARY, b"1"))
    assembler.put(Frame(OP_BINARY, b"2"))
    assembler.stop_pausing()
    assert not assembler.paused
    assembler.put(Frame(OP_BINARY, b"3"))
    assert assembler.messages == 2


# The read token: a taker reads from the socket itself when nobody does.


class ScriptedReads:
    """What the connection's ``read`` does, scripted: each call puts the next frames."""

    def __init__(self, assembler: Assembler, *reads: list[Frame]) -> None:
        self.assembler = assembler
        self.reads = list(reads)
        self.timeouts: list[float | None] = []
        self.threads: list[threading.Thread] = []
        assembler.read = self.read

    def read(self, timeout: float | None) -> None:
        assert self.assembler.reading  # with the token, without the lock
        assert self.assembler._lock.acquire(blocking=False)
        self.assembler._lock.release()
        self.timeouts.append(timeout)
        self.threads.append(threading.current_thread())
        for frame in self.reads.pop(0) if self.reads else []:
            self.assembler.put(frame)


def test_get_reads_in_the_calling_thread() -> None:
    assembler = Assembler()
    script = ScriptedReads(
        assembler, [], [Frame(OP_TEXT, b"a", fin=False)], [Frame(OP_CONT, b"b")]
    )
    assert assembler.get() == "ab"
    assert script.timeouts == [None, None, None]
    assert script.threads == [threading.current_thread()] * 3
    assert not assembler.reading


def test_get_frame_reads_too() -> None:
    assembler = Assembler()
    script = ScriptedReads(assembler, [Frame(OP_TEXT, b"a", fin=False)])
    assert assembler.get_frame(timeout=1000 * MS) == Frame(OP_TEXT, b"a", fin=False)
    assert len(script.timeouts) == 1
    timeout = script.timeouts[0]
    assert timeout is not None and 0 < timeout <= 1000 * MS


def test_get_with_timeout_zero_reads_without_waiting() -> None:
    assembler = Assembler()
    script = ScriptedReads(assembler)
    with pytest.raises(TimeoutError):
        assembler.get(timeout=0)
    assert script.timeouts == [0.0]
    script.reads.append([Frame(OP_BINARY, b"ready")])
    assert assembler.get(timeout=0) == b"ready"


def test_get_takes_queued_messages_without_reading() -> None:
    assembler = Assembler()
    script = ScriptedReads(assembler)
    assembler.put(Frame(OP_BINARY, b"queued"))
    assert assembler.get() == b"queued"
    assert script.timeouts == []


def test_get_waits_while_the_reading_thread_holds_the_token() -> None:
    assembler = Assembler()
    script = ScriptedReads(assembler)
    assembler.hurry()
    assert assembler.take_token(grace=1, timeout=0)
    received: list[object] = []
    thread = threading.Thread(target=lambda: received.append(assembler.get(timeout=1)))
    thread.start()
    try:
        for _ in range(1000):
            if assembler.token_wanted:
                break
            threading.Event().wait(MS)
        assert assembler.token_wanted
        assembler.put(Frame(OP_TEXT, b"from the reading thread"))
        assembler.give_token()
    finally:
        thread.join(1000 * MS)
    assert received == ["from the reading thread"]
    assert script.timeouts == []
    assert not assembler.token_wanted and not assembler.reading


def test_get_reads_once_the_reading_thread_gives_the_token_back() -> None:
    assembler = Assembler()
    script = ScriptedReads(assembler, [Frame(OP_TEXT, b"read here")])
    assembler.hurry()
    assert assembler.take_token(grace=1, timeout=0)
    thread = threading.Timer(10 * MS, assembler.give_token)
    thread.start()
    try:
        assert assembler.get(timeout=1000 * MS) == "read here"
    finally:
        thread.join()
    assert len(script.timeouts) == 1


def test_take_token_after_a_grace_period() -> None:
    assembler = Assembler()
    ScriptedReads(assembler, [Frame(OP_BINARY, b"1")])
    assert assembler.get() == b"1"  # a taker read
    assert not assembler.take_token(grace=0, timeout=None)  # give it time to come back
    assert assembler.take_token(grace=0, timeout=None)  # it did not
    assert assembler.reading
    assembler.give_token()
    assert not assembler.take_token(grace=0, timeout=None)  # time again after giving it back
    assert assembler.take_token(grace=0, timeout=None)


def test_take_token_at_once_when_hurried_or_woken() -> None:
    assembler = Assembler()
    ScriptedReads(assembler, [Frame(OP_BINARY, b"1")], [Frame(OP_BINARY, b"2")])
    assert assembler.get() == b"1"
    assembler.wake_reader()  # a ping was sent
    assert assembler.take_token(grace=1000, timeout=None)
    assembler.give_token()
    assert assembler.get() == b"2"
    assert not assembler.take_token(grace=0, timeout=None)
    assembler.hurry()  # closing
    assert assembler.take_token(grace=1000, timeout=None)


def test_take_token_waits_for_a_taker_that_reads_long() -> None:
    assembler = Assembler()
    reading = threading.Event()
    release = threading.Event()

    def read(timeout: float | None) -> None:
        reading.set()
        release.wait(1000 * MS)
        assembler.put(Frame(OP_BINARY, b"late"))

    assembler.read = read
    thread = threading.Thread(target=assembler.get, kwargs={"timeout": 1000 * MS})
    thread.start()
    timer = threading.Timer(10 * MS, release.set)
    try:
        assert reading.wait(1000 * MS)
        timer.start()
        # Held by a taker that reads long: wait until it gives the token back, which wakes
        # this up (a timeout would leave _watched set).
        assert not assembler.take_token(grace=0, timeout=10.0)
        assert not assembler._watched
    finally:
        release.set()
        timer.join()
        thread.join(1000 * MS)
    assert not assembler.take_token(grace=0, timeout=10.0)  # time for it to come back
    assert assembler.take_token(grace=0, timeout=10.0)


def test_take_token_waits_at_most_timeout() -> None:
    assembler = Assembler()
    ScriptedReads(assembler, [Frame(OP_BINARY, b"1")])
    assert assembler.get() == b"1"
    assert not assembler.take_token(grace=1000, timeout=0)


def test_stop_reads_then_takers_wait_for_the_end() -> None:
    assembler = Assembler()
    script = ScriptedReads(assembler)
    assembler.stop_reads()
    assert assembler.read is None and assembler.urgent
    with pytest.raises(TimeoutError):
        assembler.get(timeout=10 * MS)
    assert script.timeouts == []
    timer = threading.Timer(10 * MS, assembler.close)
    timer.start()
    try:
        with pytest.raises(EOFError):
            assembler.get(timeout=1000 * MS)
    finally:
        timer.join()


def test_close_wakes_the_paused_reader() -> None:
    assembler = Assembler(high=1)
    assembler.put(Frame(OP_BINARY, b"x"))
    assert assembler.paused
    timer = threading.Timer(10 * MS, assembler.close)
    timer.start()
    try:
        assert assembler.wait_resumed(1000 * MS)
    finally:
        timer.join()


def test_read_error_gives_the_token_back() -> None:
    assembler = Assembler()

    def read(timeout: float | None) -> None:
        raise KeyboardInterrupt

    assembler.read = read
    with pytest.raises(KeyboardInterrupt):
        assembler.get()
    assert not assembler.reading and not assembler._waiting
