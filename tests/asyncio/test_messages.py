"""The queue of received frames: reassembly, readers, backpressure (asyncio/messages.py).

No sockets: frames are put in by hand, as the connection does, and pauses are recorded.
"""

from __future__ import annotations

import asyncio

import pytest

from socketeer.asyncio.messages import Assembler
from socketeer.exceptions import ConcurrencyError
from socketeer.protocol.frames import OP_BINARY, OP_CONT, OP_TEXT, Frame


class FlowControl:
    """Records the assembler's calls to pause and resume reading."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")


def make_assembler(high: int | None = 16, low: int | None = None) -> tuple[Assembler, FlowControl]:
    flow = FlowControl()
    return Assembler(flow.pause, flow.resume, high, low), flow


def text(data: str, fin: bool = True) -> Frame:
    return Frame(OP_TEXT, data.encode(), fin)


def binary(data: bytes, fin: bool = True) -> Frame:
    return Frame(OP_BINARY, data, fin)


def cont(data: bytes, fin: bool = True) -> Frame:
    return Frame(OP_CONT, data, fin)


async def running(coro_task: asyncio.Task[object]) -> None:
    """Let ``coro_task`` run until it waits."""
    for _ in range(3):
        await asyncio.sleep(0)
    assert not coro_task.done()


class TestGet:
    async def test_whole_messages_in_order(self) -> None:
        assembler, _ = make_assembler()
        assembler.put(text("café"))
        assembler.put(binary(b"\x00\xff"))
        assert await assembler.get() == "café"
        assert await assembler.get() == b"\x00\xff"

    async def test_fragmented_message_joined(self) -> None:
        assembler, _ = make_assembler()
        assembler.put(text("ca", fin=False))
        assembler.put(cont(b"f", fin=False))
        assembler.put(cont("é".encode()))
        assert await assembler.get() == "café"
        assert assembler.messages == 0
        assert not assembler.frames

    async def test_waits_for_the_final_fragment(self) -> None:
        assembler, _ = make_assembler()
        task = asyncio.create_task(assembler.get())
        assembler.put(binary(b"a", fin=False))
        await running(task)
        assembler.put(cont(b"b"))
        assert await task == b"ab"

    @pytest.mark.parametrize(
        ("frame", "decode", "expected"),
        [
            (Frame(OP_TEXT, b"caf\xc3\xa9"), None, "café"),
            (Frame(OP_TEXT, b"caf\xc3\xa9"), False, b"caf\xc3\xa9"),
            (Frame(OP_TEXT, b"caf\xc3\xa9"), True, "café"),
            (Frame(OP_BINARY, b"caf\xc3\xa9"), None, b"caf\xc3\xa9"),
            (Frame(OP_BINARY, b"caf\xc3\xa9"), False, b"caf\xc3\xa9"),
            (Frame(OP_BINARY, b"caf\xc3\xa9"), True, "café"),
        ],
    )
    async def test_decode(self, frame: Frame, decode: bool | None, expected: object) -> None:
        assembler, _ = make_assembler()
        assembler.put(frame)
        assert await assembler.get(decode) == expected

    async def test_decode_invalid_utf8(self) -> None:
        assembler, _ = make_assembler()
        assembler.put(binary(b"\xff"))
        with pytest.raises(UnicodeDecodeError):
            await assembler.get(True)

    async def test_concurrent_readers(self) -> None:
        assembler, _ = make_assembler()
        first = asyncio.create_task(assembler.get())
        await running(first)
        with pytest.raises(ConcurrencyError):
            await assembler.get()
        with pytest.raises(ConcurrencyError):
            await assembler.get_frame()
        assembler.put(text("first"))
        assert await first == "first"

    async def test_cancelled_reader_loses_nothing(self) -> None:
        assembler, _ = make_assembler()
        task = asyncio.create_task(assembler.get())
        await running(task)
        assembler.put(text("kept"))
        task.cancel()  # after the message arrived, before the reader took it
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await assembler.get() == "kept"


class TestGetFrame:
    async def test_fragments_one_by_one(self) -> None:
        assembler, _ = make_assembler()
        frames = [text("ca", fin=False), cont(b"f", fin=False), cont("é".encode())]
        for frame in frames:
            assembler.put(frame)
        assert [await assembler.get_frame() for _ in frames] == frames
        assert assembler.messages == 0

    async def test_woken_by_a_fragment(self) -> None:
        assembler, _ = make_assembler()
        task = asyncio.create_task(assembler.get_frame())
        await running(task)
        assembler.put(binary(b"a", fin=False))
        assert await task == binary(b"a", fin=False)

    async def test_then_get_the_rest_as_bytes(self) -> None:
        assembler, _ = make_assembler()
        assembler.put(text("ca", fin=False))
        assembler.put(cont(b"fe"))
        assert await assembler.get_frame() == text("ca", fin=False)
        # The rest of a message whose first frame was taken counts as binary.
        assert await assembler.get() == b"fe"


class TestClose:
    async def test_messages_left_then_eof(self) -> None:
        assembler, _ = make_assembler()
        assembler.put(text("last"))
        assembler.close()
        assert await assembler.get() == "last"
        with pytest.raises(EOFError):
            await assembler.get()
        with pytest.raises(EOFError):
            await assembler.get_frame()

    async def test_wakes_the_reader(self) -> None:
        assembler, _ = make_assembler()
        task = asyncio.create_task(assembler.get())
        await running(task)
        assembler.close()
        with pytest.raises(EOFError):
            await task

    async def test_incomplete_message_is_never_returned(self) -> None:
        assembler, _ = make_assembler()
        assembler.put(text("never", fin=False))
        assembler.close()
        with pytest.raises(EOFError):
            await assembler.get()


class TestBackpressure:
    async def test_pause_at_high_resume_at_low(self) -> None:
        assembler, flow = make_assembler(high=4)
        for index in range(3):
            assembler.put(text(str(index)))
        assert flow.calls == []
        assembler.put(text("3"))
        assert flow.calls == ["pause"]
        assert assembler.paused
        for index in range(2):
            assert await assembler.get() == str(index)
        assert flow.calls == ["pause"]  # 2 left; low is 4 // 4 == 1
        assert await assembler.get() == "2"
        assert flow.calls == ["pause", "resume"]
        assert not assembler.paused

    async def test_fragments_do_not_count(self) -> None:
        assembler, flow = make_assembler(high=1)
        assembler.put(binary(b"a", fin=False))
        assembler.put(cont(b"b", fin=False))
        assert flow.calls == []  # the reading that completes the message must go on
        assembler.put(cont(b"c"))
        assert flow.calls == ["pause"]

    async def test_explicit_low(self) -> None:
        assembler, flow = make_assembler(high=4, low=3)
        for index in range(4):
            assembler.put(text(str(index)))
        await assembler.get()
        assert flow.calls == ["pause", "resume"]

    async def test_high_none_never_pauses(self) -> None:
        assembler, flow = make_assembler(high=None)
        for index in range(1000):
            assembler.put(text(str(index)))
        assert flow.calls == []

    async def test_close_forgets_the_pause(self) -> None:
        assembler, flow = make_assembler(high=1)
        assembler.put(text("a"))
        assembler.close()
        assert not assembler.paused
        assert await assembler.get() == "a"
        assert flow.calls == ["pause"]  # nothing to resume: the transport is gone

    async def test_stop_pausing_resumes_and_drops_the_overflow(self) -> None:
        assembler, flow = make_assembler(high=2)
        assembler.put(text("a"))
        assembler.put(text("b"))
        assert flow.calls == ["pause"]
        assembler.stop_pausing()
        assert flow.calls == ["pause", "resume"]
        assembler.put(text("dropped"))
        assert await assembler.get() == "a"
        assembler.put(text("dropped too"))  # dropping never stops in mid-message
        assert await assembler.get() == "b"
        assembler.close()
        with pytest.raises(EOFError):
            await assembler.get()
        assert flow.calls == ["pause", "resume"]

    async def test_stop_pausing_keeps_what_fits(self) -> None:
        assembler, flow = make_assembler(high=2)
        assembler.stop_pausing()
        for data in "abc":
            assembler.put(text(data))
        assert [await assembler.get(), await assembler.get()] == ["a", "b"]
        assert assembler.messages == 0
        assert flow.calls == []
