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
