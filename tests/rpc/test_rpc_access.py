"""Who may do what over RPC (``socketeer.rpc.access``): the ``authenticate`` hook and
``Peer.user``, the ``authorize`` hook for methods and rooms, ``Forbidden`` and
``RateLimited`` raised by methods, and the per-connection rate limits of calls and
publications. Every test runs a real server over loopback; the rate limits refill so slowly
(one call per 1,000 s) that no test depends on timing."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from rpc_helpers import (
    by_id,
    notification,
    raw,
    recv_json,
    request,
    send_json,
    serving,
)

import socketeer
from socketeer.exceptions import InvalidStatus, RemoteError
from socketeer.protocol.http11 import Request
from socketeer.pubsub import MESSAGE_METHOD, Rooms
from socketeer.rpc import (
    FORBIDDEN,
    RATE_LIMITED,
    RPC,
    Action,
    Forbidden,
    Peer,
    RateLimit,
    RateLimited,
    Route,
    Router,
    connect,
    current_peer,
)
from socketeer.rpc.access import TokenBucket

SLOW = 0.001
"""A rate that refills one token per 1,000 s: none during a test."""


def token_user(request: Request) -> str | None:
    """Users by token, from the query: ``?token=alice-token`` is ``alice``."""
    _, _, query = request.path.partition("?")
    tokens = {"token=alice-token": "alice", "token=bob-token": "bob"}
    return tokens.get(query)


def whoami_app(**options: Any) -> RPC:
    rpc = RPC(**options)

    @rpc.method
    def whoami() -> Any:
        return current_peer().user

    @rpc.route("profile")
    class Profile(Route):
        def name(self) -> Any:
            return self.peer.user

    return rpc


# authenticate


async def test_authenticated_user_reaches_methods_and_routes() -> None:
    async with serving(whoami_app(authenticate=token_user)) as url:
        async with connect(url + "?token=alice-token") as peer:
            assert await peer.call("whoami") == "alice"
            assert await peer.call("profile.name") == "alice"
        async with connect(url + "?token=bob-token") as peer:
            assert await peer.call("whoami") == "bob"


@pytest.mark.parametrize("query", ["", "?token=wrong", "?token=alice-token&x=1"])
async def test_unauthenticated_handshake_is_refused(query: str) -> None:
    async with serving(whoami_app(authenticate=token_user)) as url:
        with pytest.raises(InvalidStatus) as info:
            await connect(url + query)
        response = info.value.response
        assert response.status_code == 403
        assert b"authentication failed" in response.body


async def test_async_authenticate_and_any_user_object() -> None:
    user = {"name": "carol", "roles": ["admin"]}
    seen: list[str] = []

    async def authenticate(request: Request) -> object:
        await asyncio.sleep(0)
        seen.append(request.headers.get("Authorization", ""))
        return user if request.headers.get("Authorization") == "Bearer secret" else None

    async with serving(whoami_app(authenticate=authenticate)) as url:
        headers = {"Authorization": "Bearer secret"}
        async with connect(url, additional_headers=headers) as peer:
            assert await peer.call("whoami") == user
        with pytest.raises(InvalidStatus) as info:
            await connect(url, additional_headers={"Authorization": "Bearer guess"})
        assert info.value.response.status_code == 403
    assert seen == ["Bearer secret", "Bearer guess"]


async def test_authenticate_runs_for_handshakes_only() -> None:
    calls: list[str] = []

    def authenticate(request: Request) -> None:
        calls.append(request.path)
        return None

    async with serving(whoami_app(authenticate=authenticate)) as url:
        port = int(url.rsplit(":", 1)[1].strip("/"))
        from raw_http import http_get

        status, _, _ = await http_get(port, "/socketeer.js")
        assert status == 200  # the browser client is public
        with pytest.raises(InvalidStatus):
            await connect(url + "rpc")
    assert calls == ["/rpc"]


async def test_authenticate_that_fails_answers_500(caplog: pytest.LogCaptureFixture) -> None:
    def authenticate(request: Request) -> object:
        raise RuntimeError("the user database is down")

    async with serving(whoami_app(authenticate=authenticate)) as url:
        with caplog.at_level(logging.ERROR, logger="socketeer.server"):
            with pytest.raises(InvalidStatus) as info:
                await connect(url)
    assert info.value.response.status_code == 500
    assert b"the user database is down" not in info.value.response.body
    assert "the user database is down" in caplog.text


async def test_without_authenticate_user_is_none() -> None:
    async with serving(whoami_app()) as url:
        async with connect(url) as peer:
            assert await peer.call("whoami") is None


async def test_authenticate_behind_a_router() -> None:
    rpc = whoami_app(authenticate=token_user)
    async with serving(Router({"/rpc": rpc})) as url:
        async with connect(url + "rpc?token=bob-token") as peer:
            assert await peer.call("whoami") == "bob"
        with pytest.raises(InvalidStatus) as info:
            await connect(url + "rpc?token=nope")
        assert info.value.response.status_code == 403


async def test_app_served_without_its_process_request_refuses_the_connection() -> None:
    # A handler that calls the app directly skips authenticate(): the app closes the
    # connection rather than run calls for nobody.
    rpc = whoami_app(authenticate=token_user)

    async def handler(connection: socketeer.ServerConnection) -> None:
        await rpc(connection)

    async with serving(handler, subprotocols=["socketeer.rpc.v1"]) as url:
        async with raw(url) as ws:
            await ws.wait_closed()
            assert (ws.close_code, ws.close_reason) == (1008, "not authenticated")


# authorize: methods


def admin_app(**options: Any) -> tuple[RPC, list[Any]]:
    log: list[Any] = []
    rpc = whoami_app(**options)

    @rpc.method("admin.reset")
    def reset() -> str:
        log.append("reset")
        return "done"

    @rpc.method
    def hello(name: str) -> str:
        log.append(("hello", name))
        return f"hello {name}"

    return rpc, log


def admins_only(peer: Peer, action: Action, name: str) -> bool:
    return not name.startswith("admin.") or peer.user == "alice"


async def test_authorize_refuses_a_method_with_forbidden() -> None:
    rpc, log = admin_app(authenticate=token_user, authorize=admins_only)
    async with serving(rpc) as url:
        async with connect(url + "?token=bob-token") as peer:
            assert await peer.call("hello", "bob") == "hello bob"
            with pytest.raises(RemoteError) as info:
                await peer.call("admin.reset")
            assert info.value.code == FORBIDDEN == -32003
            assert info.value.message == "forbidden"
            assert info.value.data == "call admin.reset not allowed"
        async with connect(url + "?token=alice-token") as peer:
            assert await peer.call("admin.reset") == "done"
    assert log == [("hello", "bob"), "reset"]


async def test_refused_notification_is_dropped() -> None:
    rpc, log = admin_app(authenticate=token_user, authorize=admins_only)
    async with serving(rpc) as url:
        async with raw(url + "?token=bob-token") as ws:
            await send_json(ws, notification("admin.reset"))
            await send_json(ws, request("hello", ["bob"]))
            assert (await recv_json(ws))["result"] == "hello bob"
    assert log == [("hello", "bob")]


async def test_async_authorize_sees_the_action_and_name() -> None:
    asked: list[tuple[Any, str, str]] = []

    async def authorize(peer: Peer, action: Action, name: str) -> bool:
        await asyncio.sleep(0)
        asked.append((peer.user, action, name))
        return name != "admin.reset"

    rpc, _ = admin_app(authenticate=token_user, authorize=authorize)
    async with serving(rpc) as url:
        async with connect(url + "?token=alice-token") as peer:
            assert await peer.call("hello", "x") == "hello x"
            with pytest.raises(RemoteError) as info:
                await peer.call("admin.reset")
            assert info.value.code == FORBIDDEN
            # The protocol's own methods are not asked about.
            assert isinstance(await peer.call("rpc.discover"), list)
            assert await peer.call("$/ping") == "pong"
    assert asked == [("alice", "call", "hello"), ("alice", "call", "admin.reset")]


async def test_authorize_must_answer_a_bool() -> None:
    def sloppy(peer: Peer, action: Action, name: str) -> bool:
        return "yes"  # type: ignore[return-value]

    rpc, log = admin_app(authorize=sloppy)
    async with serving(rpc) as url:
        async with connect(url) as peer:
            with pytest.raises(RemoteError) as info:
                await peer.call("hello", "x")
            assert info.value.type_name == "TypeError"
            assert "authorize must return True or False, got str" in info.value.message
    assert log == []


async def test_unknown_methods_are_not_found_before_authorize() -> None:
    asked: list[str] = []

    def authorize(peer: Peer, action: Action, name: str) -> bool:
        asked.append(name)
        return False

    rpc, _ = admin_app(authorize=authorize)
    async with serving(rpc) as url:
        async with connect(url) as peer:
            with pytest.raises(RemoteError) as info:
                await peer.call("nothing.here")
            assert info.value.code == -32601
    assert asked == []


# Methods refusing by themselves


async def test_methods_raise_forbidden_and_rate_limited() -> None:
    rpc = RPC()

    @rpc.method
    def secret() -> None:
        raise Forbidden("admins only")

    @rpc.method
    def busy() -> None:
        raise RateLimited(2.5)

    async with serving(rpc) as url:
        async with connect(url) as peer:
            with pytest.raises(RemoteError) as info:
                await peer.call("secret")
            assert (info.value.code, info.value.data) == (FORBIDDEN, "admins only")
            with pytest.raises(RemoteError) as info:
                await peer.call("busy")
            assert info.value.code == RATE_LIMITED == -32004
            assert info.value.message == "rate limit exceeded"
            assert info.value.data == {"retry_after": 2.5}


# Rate limit of calls


async def test_calls_over_the_limit_are_refused_at_once() -> None:
    rpc, log = admin_app(call_limit=RateLimit(SLOW, burst=3))
    async with serving(rpc) as url:
        async with raw(url) as ws:
            for id in range(1, 6):
                await send_json(ws, request("hello", [str(id)], id=id))
            answers = by_id([await recv_json(ws) for _ in range(5)])
        async with connect(url) as peer:  # another connection has its own bucket
            assert await peer.call("hello", "again") == "hello again"
    assert [answers[id]["result"] for id in (1, 2, 3)] == ["hello 1", "hello 2", "hello 3"]
    for id in (4, 5):
        error = answers[id]["error"]
        assert (error["code"], error["message"]) == (RATE_LIMITED, "rate limit exceeded")
        assert 0 < error["data"]["retry_after"] <= 1 / SLOW
    assert log == [("hello", "1"), ("hello", "2"), ("hello", "3"), ("hello", "again")]


async def test_rate_limit_counts_notifications_pings_and_batches_but_not_cancels() -> None:
    rpc, log = admin_app(call_limit=RateLimit(SLOW, burst=4))
    async with serving(rpc) as url:
        async with raw(url) as ws:
            await send_json(ws, notification("$/cancel", {"id": 99}))  # free
            await send_json(ws, notification("hello", ["n1"]))  # 1
            await send_json(ws, request("$/ping", id="p"))  # 2
            batch = [request("hello", ["b1"], id="b1"), request("hello", ["b2"], id="b2")]
            await send_json(ws, batch)  # 3, 4
            await send_json(ws, notification("hello", ["n2"]))  # over: dropped
            await send_json(ws, request("hello", ["r"], id="r"))  # over: refused
            received = [await recv_json(ws) for _ in range(3)]  # in any order
    answers = by_id(next(r for r in received if isinstance(r, list)))
    ping, refused = sorted((r for r in received if isinstance(r, dict)), key=lambda r: r["id"])
    assert ping["result"] == "pong"
    assert [answers[id]["result"] for id in ("b1", "b2")] == ["hello b1", "hello b2"]
    assert (refused["id"], refused["error"]["code"]) == ("r", RATE_LIMITED)
    assert sorted(log) == [("hello", "b1"), ("hello", "b2"), ("hello", "n1")]


# Rooms: authorize and the rate limit of publications


def room_rules(peer: Peer, action: Action, name: str) -> bool:
    if action == "join":
        return not name.startswith("staff/") or peer.user == "alice"
    if action == "publish":
        return name == "lobby"
    return True


async def test_authorize_rooms() -> None:
    async with Rooms() as rooms:
        rpc = RPC(rooms=rooms, client_publish=True, authenticate=token_user, authorize=room_rules)
        async with serving(rpc) as url:
            async with connect(url + "?token=bob-token") as bob:
                with pytest.raises(RemoteError) as info:
                    await bob.call("$/room/join", room="staff/ops")
                assert (info.value.code, info.value.data) == (
                    FORBIDDEN,
                    "join staff/ops not allowed",
                )
                assert rooms.members("staff/ops") == []
                with pytest.raises(RemoteError) as info:
                    await bob.call("$/room/publish", room="news", data="x")
                assert info.value.data == "publish news not allowed"
            async with raw(url + "?token=bob-token") as ws:
                await send_json(ws, request("$/room/join", {"room": "lobby"}, id=1))
                assert (await recv_json(ws))["result"]["offset"] == 0
                await send_json(
                    ws, request("$/room/publish", {"room": "lobby", "data": "hi"}, id=2)
                )
                answers = [await recv_json(ws), await recv_json(ws)]
                message = next(a for a in answers if "method" in a)
                assert message["method"] == MESSAGE_METHOD
                assert message["params"]["data"] == "hi"
                await send_json(ws, request("$/room/leave", {"room": "lobby"}, id=3))
                assert (await recv_json(ws))["result"] is None  # leaving is always allowed
            async with connect(url + "?token=alice-token") as alice:
                await alice.call("$/room/join", room="staff/ops")
                assert len(rooms.members("staff/ops")) == 1


async def test_publications_over_the_limit_are_refused() -> None:
    async with Rooms() as rooms:
        rpc = RPC(rooms=rooms, client_publish=True, publish_limit=RateLimit(SLOW, burst=2))
        async with serving(rpc) as url:
            async with connect(url) as peer:
                await peer.call("$/room/publish", room="r", data=1)
                await peer.call("$/room/publish", room="r", data=2)
                with pytest.raises(RemoteError) as info:
                    await peer.call("$/room/publish", room="r", data=3)
                assert info.value.code == RATE_LIMITED
                assert 0 < info.value.data["retry_after"] <= 1 / SLOW  # type: ignore[index]
                # Other calls are not limited by it.
                await peer.call("$/room/join", room="r")
            async with connect(url) as other:  # its own bucket
                position = await other.call("$/room/publish", room="r", data=4)
            assert position["offset"] == 3  # the refused one was not published


# Options


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"authenticate": 42}, TypeError, "authenticate must be callable"),
        ({"authorize": "yes"}, TypeError, "authorize must be callable"),
        ({"call_limit": 10}, TypeError, "call_limit must be a RateLimit"),
        ({"publish_limit": RateLimit(1)}, ValueError, "publish_limit needs client_publish"),
    ],
)
def test_options_are_checked(options: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        RPC(**options)


@pytest.mark.parametrize(
    ("rate", "burst", "error", "message"),
    [
        (0, None, ValueError, "rate must be positive"),
        (float("nan"), None, ValueError, "rate must be positive"),
        (float("inf"), None, ValueError, "rate must be positive"),
        ("1", None, TypeError, "rate must be a number"),
        (True, None, TypeError, "rate must be a number"),
        (1, 0, ValueError, "burst must be at least 1"),
        (1, 1.5, TypeError, "burst must be an integer"),
    ],
)
def test_rate_limit_is_checked(
    rate: Any, burst: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        RateLimit(rate, burst)


def test_token_bucket() -> None:
    assert RateLimit(2.5).capacity == 3
    assert RateLimit(0.1).capacity == 1
    bucket = RateLimit(10, burst=2).bucket(now=100.0)
    assert isinstance(bucket, TokenBucket)
    assert bucket.take(100.0) == 0.0
    assert bucket.take(100.0) == 0.0
    assert bucket.take(100.0) == pytest.approx(0.1)  # empty: one token in 0.1 s
    assert bucket.take(100.05) == pytest.approx(0.05)  # half a token so far
    assert bucket.take(100.11) == 0.0
    assert bucket.take(200.0) == 0.0  # refilled, but never past the burst
    assert bucket.take(200.0) == 0.0
    assert bucket.take(200.0) > 0.0
