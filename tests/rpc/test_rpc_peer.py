"""The peer, end to end over loopback: calls both ways, errors, notifications, batches,
cancellation and timeouts, concurrency and flow control, class routes' lifetimes.

Servers are ``socketeer.serve(rpc, ...)``; clients are ``socketeer.rpc.connect`` or, to send
any JSON at all, a plain WebSocket client (``raw``). A few tests look inside the server's
peer (``_busy``, ``_backlog``) or its connection's queue to check flow control without
timing; nothing asserts a duration.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from rpc_helpers import (
    MS,
    by_id,
    eventually,
    notification,
    raw,
    recv_json,
    request,
    send_json,
    serving,
    wait,
)

import socketeer
from socketeer.exceptions import (
    CallTimeout,
    ConnectionClosed,
    ConnectionLost,
    RemoteError,
    RPCError,
)
from socketeer.rpc import RPC, SUBPROTOCOL, Peer, Route, connect, current_peer


def math_app(**options: Any) -> RPC:
    rpc = RPC(**options)

    @rpc.method
    async def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @rpc.method
    def mul(a: int, b: int) -> int:
        return a * b

    @rpc.method
    def fail(message: str = "bad value") -> None:
        raise ValueError(message)

    return rpc


class Holder:
    """A method that waits until released, counting its starts and cancellations."""

    def __init__(self) -> None:
        self.started = 0
        self.cancelled = 0
        self.release = asyncio.Event()
        self.was_cancelled = asyncio.Event()
        self.peers: list[Peer] = []

    async def hold(self, value: Any = None) -> Any:
        self.started += 1
        self.peers.append(current_peer())
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            self.was_cancelled.set()
            raise
        return value

    def register(self, rpc: RPC) -> None:
        rpc.method("hold")(self.hold)


# Calls


async def test_call_with_positional_and_named_params() -> None:
    async with serving(math_app()) as url, connect(url) as peer:
        assert await peer.call("add", 1, 2) == 3
        assert await peer.call("add", a=1, b=5) == 6
        assert await peer.call("mul", 3, 4) == 12  # a plain def
        assert await peer.call_with("add", [2, 3]) == 5
        assert await peer.call_with("add", {"a": 2, "b": 4}) == 6
        assert await peer.proxy.add(b=1, a=1) == 2


async def test_bad_params_say_which() -> None:
    async with serving(math_app()) as url, connect(url) as peer:
        with pytest.raises(RemoteError) as info:
            await peer.call("add", 1)
        assert (info.value.code, info.value.data) == (-32602, "missing argument 'b'")
        assert str(info.value) == "Invalid params: missing argument 'b' (code -32602)"
        with pytest.raises(RemoteError) as info:
            await peer.call("add", a=1, b=2, c=3)
        assert info.value.data == "unexpected argument 'c'"
        with pytest.raises(RemoteError) as info:
            await peer.call("add", 1, 2, 3)
        assert info.value.data == "too many positional arguments"


async def test_unknown_method() -> None:
    async with serving(math_app()) as url, connect(url) as peer:
        with pytest.raises(RemoteError) as info:
            await peer.call("nope")
        assert (info.value.code, info.value.message, info.value.data) == (
            -32601,
            "Method not found",
            "nope",
        )
        assert info.value.type_name is None


async def test_application_error_carries_its_type() -> None:
    async with serving(math_app()) as url, connect(url) as peer:
        with pytest.raises(RemoteError) as info:
            await peer.call("fail", "negative amount")
    exc = info.value
    assert (exc.code, exc.message, exc.type_name) == (-32000, "negative amount", "ValueError")
    assert exc.data == {"type": "ValueError", "message": "negative amount"}
    assert exc.traceback is None
    assert str(exc) == "ValueError: negative amount"


async def test_debug_mode_adds_the_traceback() -> None:
    async with serving(math_app(debug=True)) as url, connect(url) as peer:
        with pytest.raises(RemoteError) as info:
            await peer.call("fail")
    traceback = info.value.traceback
    assert traceback is not None
    assert "raise ValueError(message)" in traceback
    assert traceback.rstrip().endswith("ValueError: bad value")


async def test_result_that_json_cannot_carry_is_an_internal_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rpc = RPC()
    rpc.method("nan")(lambda: float("nan"))
    rpc.method("set")(lambda: {1, 2})
    async with serving(rpc) as url, connect(url) as peer:
        for name in ["nan", "set"]:
            with pytest.raises(RemoteError) as info:
                await peer.call(name)
            assert info.value.code == -32603
            assert isinstance(info.value.data, str)
            assert info.value.data.startswith(f"result of {name} is not JSON")
    assert "result of set is not JSON" in caplog.text


async def test_ping_and_discover() -> None:
    rpc = math_app()

    @rpc.route("counter")
    class Counter(Route):
        def increment(self, by: int = 1) -> int:
            """Add to the counter.

            Details.
            """
            return by

    async with serving(rpc) as url, connect(url) as peer:
        assert await peer.call("$/ping") == "pong"
        methods = await peer.call("rpc.discover")
    assert [m["name"] for m in methods] == ["add", "mul", "fail", "counter.increment"]
    assert methods[0]["doc"] == "Add two numbers."
    assert methods[3] == {
        "name": "counter.increment",
        "params": [{"name": "by", "kind": "positional_or_keyword", "default": 1}],
        "doc": "Add to the counter.",
    }


def test_current_peer_outside_a_call() -> None:
    with pytest.raises(LookupError, match="no RPC call is running here"):
        current_peer()


async def test_local_mistakes_raise_at_once() -> None:
    async with serving(math_app()) as url, connect(url) as peer:
        with pytest.raises(TypeError, match="positional or named, not both"):
            await peer.call("add", 1, b=2)
        with pytest.raises(ValueError, match="invalid method name"):
            await peer.call("_private")
        with pytest.raises(TypeError, match="not JSON serializable"):
            await peer.call("add", {1, 2}, 3)
        with pytest.raises(ValueError, match="must be positive"):
            await peer.call_with("add", [1, 2], timeout=-1)
        with pytest.raises(TypeError, match="params must be a sequence or a mapping"):
            await peer.call_with("add", "ab")
        assert await peer.call("add", 1, 2) == 3  # nothing was left behind


# Raw messages: notifications, batches, invalid input


async def test_notification_runs_the_method_and_is_never_answered() -> None:
    rpc = RPC()
    seen: list[Any] = []
    rpc.method("record")(seen.append)
    async with serving(rpc) as url, raw(url) as ws:
        await send_json(ws, notification("record", ["a"]))
        await send_json(ws, notification("record", {"x": "b"}))  # bad params: logged
        await send_json(ws, notification("nope"))
        await send_json(ws, request("$/ping", id="p"))
        assert await recv_json(ws) == {"jsonrpc": "2.0", "result": "pong", "id": "p"}
    assert seen == ["a"]


async def test_batch() -> None:
    rpc = math_app()
    seen: list[Any] = []
    rpc.method("record")(seen.append)
    async with serving(rpc) as url, raw(url) as ws:
        await send_json(
            ws,
            [
                request("add", [1, 2], id=1),
                notification("record", ["n"]),
                request("nope", id=2),
                {"foo": 1},
                request("add", [1], id=3),
                request("$/ping", id=4),
                request("fail", id=5),
                {"jsonrpc": "2.0", "result": 1, "id": 99},  # an answer to nothing: ignored
            ],
        )
        answers = await recv_json(ws)
    assert isinstance(answers, list) and len(answers) == 6
    answers = by_id(answers)
    assert answers[1]["result"] == 3
    assert answers[2]["error"]["code"] == -32601
    assert answers[None]["error"] == {
        "code": -32600,
        "message": "Invalid Request",
        "data": 'missing "method" member',
    }
    assert answers[3]["error"]["data"] == "missing argument 'b'"
    assert answers[4]["result"] == "pong"
    assert answers[5]["error"]["data"]["type"] == "ValueError"
    assert seen == ["n"]


async def test_batch_of_notifications_is_not_answered() -> None:
    rpc = RPC()
    seen: list[Any] = []
    rpc.method("record")(seen.append)
    async with serving(rpc) as url, raw(url) as ws:
        await send_json(ws, [notification("record", [1]), notification("record", [2])])
        await send_json(ws, request("$/ping"))
        assert (await recv_json(ws))["result"] == "pong"
    assert sorted(seen) == [1, 2]


async def test_batch_over_the_limit_is_refused_whole() -> None:
    rpc = RPC(max_batch=3)
    seen: list[Any] = []
    rpc.method("record")(seen.append)
    async with serving(rpc) as url, raw(url) as ws:
        await send_json(ws, [request("record", [i], id=i) for i in range(4)])
        answer = await recv_json(ws)
        await send_json(ws, [])
        empty = await recv_json(ws)
    assert answer["id"] is None and answer["error"]["code"] == -32600
    assert answer["error"]["data"] == "batch with 4 messages exceeds limit of 3 messages"
    assert empty["error"] == {"code": -32600, "message": "Invalid Request", "data": "empty batch"}
    assert seen == []


@pytest.mark.parametrize(
    "message, code, data",
    [
        (b"{}", -32700, "binary message"),
        (
            "{",
            -32700,
            "invalid JSON: Expecting property name enclosed in double quotes at line 1 column 2",
        ),
        ("[1]", -32600, "expected an object, got a number"),
        (
            '{"jsonrpc": "2.0", "method": "add", "params": null, "id": 1}',
            -32600,
            '"params" member must be an array or an object',
        ),
    ],
)
async def test_invalid_messages(message: str | bytes, code: int, data: str) -> None:
    async with serving(math_app()) as url, raw(url) as ws:
        await ws.send(message)
        answer = await recv_json(ws)
        if isinstance(answer, list):
            (answer,) = answer
    assert (answer["error"]["code"], answer["error"]["data"]) == (code, data)


async def test_duplicate_id_of_a_running_call_is_refused() -> None:
    holder = Holder()
    rpc = RPC()
    holder.register(rpc)
    async with serving(rpc) as url, raw(url) as ws:
        await send_json(ws, request("hold", ["first"], id=5))
        await send_json(ws, request("hold", ["second"], id=5))
        answer = await recv_json(ws)
        assert answer["error"]["code"] == -32600
        assert answer["error"]["data"] == "id 5 is used by a call that has not finished"
        holder.release.set()
        assert await recv_json(ws) == {"jsonrpc": "2.0", "result": "first", "id": 5}
    assert holder.started == 1


# Both directions


async def test_server_calls_the_client_back() -> None:
    rpc = RPC()

    @rpc.method
    async def save(text: str) -> str:
        return await current_peer().call("ui.flash", f"saved {text}")

    @rpc.route("session")
    class Session(Route):
        async def greet(self) -> Any:
            return await self.peer.proxy.ui.name()

    async def name() -> str:
        return "ada"

    async with serving(rpc) as url, connect(url) as peer:
        peer.register("ui.flash", lambda text: text.upper())
        unregister = peer.register("ui.name", name)
        assert await peer.call("save", "doc") == "SAVED DOC"
        assert await peer.call("session.greet") == "ada"
        unregister()
        with pytest.raises(RemoteError) as info:
            await peer.call("session.greet")
    # The server's call failed with -32601, which its method let through: -32000 here.
    assert info.value.type_name == "RemoteError"
    assert "ui.name" in info.value.message


async def test_server_notifies_the_client() -> None:
    rpc = RPC()

    @rpc.method
    async def broadcast(text: str) -> None:
        await current_peer().notify("news", text)
        await current_peer().notify("news", text=text.upper())

    received: list[Any] = []
    got_both = asyncio.Event()

    async def listener(*args: Any, **kwargs: Any) -> None:
        received.append((args, kwargs))
        if len(received) == 2:
            got_both.set()

    async with serving(rpc) as url, connect(url) as peer:
        unsubscribe = peer.on("news", listener)
        await peer.call("broadcast", "hi")
        await wait(got_both)
        unsubscribe()
        unsubscribe()  # twice is harmless
        await peer.call("broadcast", "again")
        await peer.call("broadcast", "again")  # its notifications came before its answer
    assert received == [(("hi",), {}), ((), {"text": "HI"})]


async def test_failing_listener_is_logged_and_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rpc = RPC()

    @rpc.method
    async def ding() -> None:
        await current_peer().notify("ding")

    def broken() -> None:
        raise RuntimeError("listener broke")

    rang = asyncio.Event()
    async with serving(rpc) as url, connect(url) as peer:
        peer.on("ding", broken)
        peer.on("ding", rang.set)
        await peer.call("ding")
        await wait(rang)
    assert "listener of notification ding failed" in caplog.text
    assert "listener broke" in caplog.text


async def test_client_methods_and_listeners_are_checked() -> None:
    async with serving(RPC()) as url, connect(url) as peer:
        peer.register("a", lambda: 1)
        with pytest.raises(ValueError, match="registered already"):
            peer.register("a", lambda: 2)
        with pytest.raises(ValueError, match="invalid method name"):
            peer.on("bad name", print)
        with pytest.raises(ValueError, match="reserved"):
            peer.register("rpc.mine", print)
        with pytest.raises(TypeError, match="a callable is needed"):
            peer.on("news", None)  # type: ignore[arg-type]


async def test_client_with_routes() -> None:
    server = RPC()

    @server.method
    async def ask() -> Any:
        return await current_peer().call("client.answer")

    client = RPC()
    client.method("client.answer")(lambda: 42)
    async with serving(server) as url, connect(url, routes=client) as peer:
        assert await peer.call("ask") == 42
        with pytest.raises(ValueError, match="client.answer is registered already"):
            peer.register("client.answer", lambda: 0)


# Concurrency and flow control


async def test_the_65th_call_waits_for_a_free_slot() -> None:
    holder = Holder()
    rpc = RPC()
    holder.register(rpc)
    async with serving(rpc) as url, connect(url) as peer:
        calls = [asyncio.create_task(peer.call("hold", i)) for i in range(65)]
        await eventually(lambda: holder.started == 64)
        (server,) = set(holder.peers)
        # The 65th request arrived, and stays unread in the connection's queue.
        await eventually(lambda: server.connection.recv_messages.messages == 1)
        assert holder.started == 64
        assert not server._backlog
        holder.release.set()
        assert await asyncio.gather(*calls) == list(range(65))
    assert holder.started == 65


async def test_a_peer_that_floods_is_not_read_from_any_more() -> None:
    # Memory stays bounded: with every slot taken, the peer stops reading, the connection
    # queues max_queue messages, then stops reading from the socket.
    holder = Holder()
    rpc = RPC(max_concurrency=2)
    holder.register(rpc)
    async with serving(rpc, max_queue=4) as url, raw(url) as ws:
        for i in range(200):
            await send_json(ws, request("hold", [i], id=i))
        await eventually(lambda: holder.started == 2)
        (server,) = set(holder.peers)
        await eventually(lambda: server.connection.recv_messages.paused)
        transport = server.connection.transport
        assert transport is not None and not transport.is_reading()
        assert holder.started == 2 and server._busy == 2 and not server._backlog
        holder.release.set()
        answers = [await recv_json(ws) for _ in range(200)]
    assert sorted(answer["result"] for answer in answers) == list(range(200))


async def test_calls_back_to_the_caller_do_not_deadlock_with_every_slot_taken() -> None:
    # Each of 8 calls takes one of 2 slots and calls the client back: the peer must read
    # the answers although it reads no new calls.
    rpc = RPC(max_concurrency=2)

    @rpc.method
    async def ask(n: int) -> Any:
        return await current_peer().call("double", n)

    async with serving(rpc) as url, connect(url) as peer:
        peer.register("double", lambda n: 2 * n)
        results = await asyncio.gather(*(peer.call("ask", n) for n in range(8)))
    assert results == [2 * n for n in range(8)]


async def test_calls_beyond_the_backlog_are_refused_while_calling_back() -> None:
    # The server reads on while its call waits for the client's answer; the backlog holds
    # max(max_concurrency, max_batch) = 1 call, and the next one is refused at once.
    rpc = RPC(max_concurrency=1, max_batch=1)
    answer = asyncio.Event()

    @rpc.method
    async def ask(n: int) -> Any:
        return await current_peer().call("wait", n)

    called_back = asyncio.Event()

    async def wait_for_answer(n: int) -> int:
        called_back.set()
        await answer.wait()
        return n

    async with serving(rpc) as url, connect(url) as peer:
        peer.register("wait", wait_for_answer)
        first = asyncio.create_task(peer.call("ask", 1))
        await wait(called_back)
        second = asyncio.create_task(peer.call("ask", 2))  # queued
        await eventually(lambda: len(peer._calls) == 2)  # sent
        with pytest.raises(RemoteError) as info:
            await peer.call("ask", 3)
        assert info.value.code == -32603
        assert info.value.data == "too many calls: 1 wait for one of 1 to end"
        answer.set()
        assert await asyncio.gather(first, second) == [1, 2]


@pytest.mark.parametrize(
    "serial, expected",
    [
        (True, ["start 1", "end 1", "start 2", "end 2"]),
        (False, ["start 1", "start 2", "end 2", "end 1"]),
    ],
)
async def test_serial_route_runs_calls_one_at_a_time(serial: bool, expected: list[str]) -> None:
    log: list[str] = []
    release = asyncio.Event()
    peers: list[Peer] = []
    rpc = RPC()

    @rpc.route("editor", serial=serial)
    class Editor(Route):
        async def step(self, n: int) -> int:
            peers.append(self.peer)
            log.append(f"start {n}")
            if n == 1:
                await release.wait()
            log.append(f"end {n}")
            return n

    async with serving(rpc) as url, connect(url) as peer:
        first = asyncio.create_task(peer.call("editor.step", 1))
        await eventually(lambda: log == ["start 1"])
        second = asyncio.create_task(peer.call("editor.step", 2))
        await eventually(lambda: peers[0]._busy == 2)  # both run (or wait for the lock)
        if serial:
            assert log == ["start 1"]  # the second call waits for the first
        else:
            await eventually(lambda: "end 2" in log)
        release.set()
        assert await asyncio.gather(first, second) == [1, 2]
    assert log == expected


# Timeouts and cancellation


async def test_execution_timeout() -> None:
    holder = Holder()
    rpc = RPC(execution_timeout=20 * MS)
    holder.register(rpc)

    @rpc.method(timeout=None)
    async def unlimited() -> str:
        return "done"

    @rpc.method
    async def stubborn() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "ignored the cancellation"
        return "unreachable"

    async with serving(rpc) as url, connect(url) as peer:
        with pytest.raises(RemoteError) as info:
            await peer.call("hold")
        assert holder.cancelled == 1
        assert (info.value.code, info.value.data) == (-32001, None)
        assert info.value.message == f"call timed out after {20 * MS:g} s"
        with pytest.raises(RemoteError) as info:
            await peer.call("stubborn")
        assert info.value.code == -32001
        assert await peer.call("unlimited") == "done"


async def test_per_method_execution_timeout() -> None:
    rpc = RPC(execution_timeout=None)

    @rpc.method(timeout=20 * MS)
    async def slow() -> None:
        await asyncio.Event().wait()

    async with serving(rpc) as url, connect(url) as peer:
        with pytest.raises(RemoteError) as info:
            await peer.call("slow")
    assert info.value.code == -32001


async def test_method_that_is_cancelled_from_inside_answers_call_cancelled() -> None:
    rpc = RPC()

    @rpc.method
    async def gives_up() -> None:
        never = asyncio.get_running_loop().create_future()
        never.cancel()
        await never  # raises CancelledError, though nobody cancelled the call

    async with serving(rpc) as url, connect(url) as peer:
        with pytest.raises(RemoteError) as info:
            await peer.call("gives_up")
        assert (info.value.code, info.value.message) == (-32002, "call cancelled")
        assert await peer.call("$/ping") == "pong"


async def test_caller_timeout_cancels_the_call_on_the_callee() -> None:
    holder = Holder()
    rpc = RPC()
    holder.register(rpc)
    servers: list[Peer] = []
    rpc.method("whoami")(lambda: servers.append(current_peer()))
    async with serving(rpc) as url, connect(url, call_timeout=20 * MS) as peer:
        await peer.call("whoami")
        with pytest.raises(CallTimeout) as info:
            await peer.call("hold")
        assert isinstance(info.value, TimeoutError)
        assert str(info.value) == f"call hold timed out after {20 * MS:g} s"
        # $/cancel reached the server: the call was cancelled, or never ran if the server
        # had not started it yet; either way nothing of it is left.
        (server,) = servers
        await eventually(lambda: server._busy == 0 and not server._cancellable)
        assert holder.cancelled == holder.started
        holder.release.set()
        assert await peer.call_with("hold", ["again"], timeout=None) == "again"


async def test_cancelling_the_caller_cancels_the_call_on_the_callee() -> None:
    holder = Holder()
    rpc = RPC()
    holder.register(rpc)
    async with serving(rpc) as url, connect(url) as peer:
        call = asyncio.create_task(peer.call("hold"))
        await eventually(lambda: holder.started == 1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await wait(holder.was_cancelled)
        assert await peer.call("$/ping") == "pong"


async def test_cancel_notification_on_the_wire() -> None:
    holder = Holder()
    rpc = RPC()
    holder.register(rpc)
    async with serving(rpc) as url, raw(url) as ws:
        await send_json(ws, request("hold", id=7))
        await eventually(lambda: holder.started == 1)
        for params in [None, [7], {"id": [7]}, {"id": True}, {"id": 8}]:  # ignored
            await send_json(ws, notification("$/cancel", params))
        await send_json(ws, notification("$/cancel", {"id": 7}))
        await wait(holder.was_cancelled)
        await send_json(ws, request("$/ping", id="p"))
        # A cancelled call is never answered: the next message is the pong.
        assert (await recv_json(ws))["id"] == "p"


async def test_cancel_of_a_queued_call_in_a_batch() -> None:
    holder = Holder()
    rpc = RPC(max_concurrency=1)
    holder.register(rpc)
    async with serving(rpc) as url, raw(url) as ws:
        await send_json(
            ws,
            [
                request("hold", ["one"], id=1),
                request("hold", ["two"], id=2),
                notification("$/cancel", {"id": 2}),
            ],
        )
        await eventually(lambda: holder.started == 1)
        holder.release.set()
        assert await recv_json(ws) == [{"jsonrpc": "2.0", "result": "one", "id": 1}]
    assert holder.started == 1


async def test_late_answer_after_timeout_is_ignored() -> None:
    cancels: list[Any] = []

    async def server(ws: socketeer.ServerConnection) -> None:
        call = json.loads(await ws.recv())
        cancels.append(json.loads(await ws.recv()))
        await ws.send(json.dumps({"jsonrpc": "2.0", "result": "late", "id": call["id"]}))
        call = json.loads(await ws.recv())
        await ws.send(json.dumps({"jsonrpc": "2.0", "result": "ok", "id": call["id"]}))
        await ws.wait_closed()

    async with serving(server, subprotocols=[SUBPROTOCOL]) as url, connect(url) as peer:
        with pytest.raises(CallTimeout):
            await peer.call_with("slow", timeout=20 * MS)
        assert await peer.call("next") == "ok"
    assert cancels == [{"jsonrpc": "2.0", "method": "$/cancel", "params": {"id": 1}}]


async def test_invalid_answer_fails_the_call(caplog: pytest.LogCaptureFixture) -> None:
    replies: list[Any] = []

    async def server(ws: socketeer.ServerConnection) -> None:
        call = json.loads(await ws.recv())
        both = {"jsonrpc": "2.0", "result": 1, "error": {"code": 1, "message": "x"}}
        await ws.send(json.dumps({**both, "id": call["id"]}))
        replies.append(json.loads(await ws.recv()))
        await ws.send(
            json.dumps({"jsonrpc": "2.0", "error": {"code": -1, "message": "?"}, "id": None})
        )
        await ws.wait_closed()

    async with serving(server, subprotocols=[SUBPROTOCOL]) as url, connect(url) as peer:
        with pytest.raises(RPCError, match="invalid response to call x: response with both"):
            await peer.call("x")
        await eventually(lambda: "the other end reported an error" in caplog.text)
    # The client answered the broken response with id null.
    assert replies[0]["id"] is None and replies[0]["error"]["code"] == -32600


# Class routes: one instance per connection, until it closes


async def test_route_instances_live_per_connection() -> None:
    rpc = RPC()
    closed: list[int] = []
    closing = asyncio.Event()

    @rpc.route("counter")
    class Counter(Route):
        def __init__(self, peer: Peer) -> None:
            super().__init__(peer)
            self.value = 0

        def increment(self, by: int = 1) -> int:
            self.value += by
            return self.value

        def on_close(self) -> None:  # type: ignore[override]  # a plain def works too
            closed.append(self.value)
            closing.set()

    async with serving(rpc) as url:
        async with connect(url) as one, connect(url) as two:
            assert await one.proxy.counter.increment() == 1
            assert await one.proxy.counter.increment(by=2) == 3
            assert await two.proxy.counter.increment(by=10) == 10
            await one.close()
            await wait(closing)
            assert closed == [3]
            assert await two.proxy.counter.increment() == 11
        await eventually(lambda: len(closed) == 2)
    assert closed == [3, 11]


async def test_on_close_runs_after_running_calls_are_cancelled() -> None:
    rpc = RPC()
    log: list[str] = []
    done = asyncio.Event()

    @rpc.route("job")
    class Job(Route):
        async def run(self) -> None:
            log.append("running")
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                log.append("cancelled")
                raise

        async def on_close(self) -> None:
            log.append("on_close")
            done.set()

    async with serving(rpc) as url:
        async with connect(url) as peer:
            call = asyncio.create_task(peer.call("job.run"))
            await eventually(lambda: log == ["running"])
        with pytest.raises(ConnectionLost):
            await call
        await wait(done)
    assert log == ["running", "cancelled", "on_close"]


async def test_route_constructor_failure_is_an_error_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rpc = RPC()
    attempts: list[int] = []

    @rpc.route("fragile")
    class Fragile(Route):
        def __init__(self, peer: Peer) -> None:
            super().__init__(peer)
            attempts.append(1)
            if len(attempts) == 1:
                raise RuntimeError("not yet")

        def ping(self) -> str:
            return "ok"

        async def on_close(self) -> None:
            raise RuntimeError("on_close broke")

    async with serving(rpc) as url:
        async with connect(url) as peer:
            with pytest.raises(RemoteError) as info:
                await peer.call("fragile.ping")
            assert (info.value.type_name, info.value.message) == ("RuntimeError", "not yet")
            assert await peer.call("fragile.ping") == "ok"
        await eventually(lambda: "Fragile.on_close failed" in caplog.text)


# Lost connections


async def test_lost_connection_fails_calls_in_flight_and_later_ones() -> None:
    holder = Holder()
    rpc = RPC()
    holder.register(rpc)

    @rpc.method
    async def leave() -> None:
        await current_peer().connection.close(1001, "bye")

    async with serving(rpc) as url, connect(url) as peer:
        held = asyncio.create_task(peer.call("hold"))
        await eventually(lambda: holder.started == 1)
        with pytest.raises(ConnectionLost) as info:
            await peer.call("leave")
        assert (info.value.method, info.value.code, info.value.reason) == ("leave", 1001, "bye")
        assert (
            str(info.value) == "connection closed (code 1001, bye) before call leave was answered"
        )
        with pytest.raises(ConnectionLost) as info:
            await held
        assert info.value.method == "hold"
        await wait(holder.was_cancelled)  # the server cancelled what ran
        with pytest.raises(ConnectionLost):
            await peer.call("hold")
        with pytest.raises(ConnectionClosed):
            await peer.notify("hold")
        assert peer.closed


async def test_peer_runs_once() -> None:
    async with serving(RPC()) as url, connect(url) as peer:
        with pytest.raises(socketeer.InvalidState, match="peer runs already"):
            await peer.run()


async def test_notification_failures_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    rpc = RPC(execution_timeout=20 * MS)
    done = asyncio.Event()

    @rpc.method
    def broken() -> None:
        raise RuntimeError("broken notification")

    @rpc.method
    async def slow() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            done.set()

    caplog.set_level(logging.WARNING)
    async with serving(rpc) as url, raw(url) as ws:
        await send_json(ws, notification("broken"))
        await send_json(ws, notification("slow"))
        await wait(done)
        await eventually(lambda: "notification slow was timed out" in caplog.text)
    assert "notification broken failed" in caplog.text
