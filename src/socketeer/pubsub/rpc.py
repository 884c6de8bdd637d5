"""The ``$/room/`` methods of the RPC protocol: what :class:`~socketeer.rpc.RPC` serves
for its rooms (``docs/pubsub.md``, "Wire format for RPC peers").

Their params are checked when the call is read, so that bad ones are answered -32602 at
once, and passed to the rooms as one named tuple.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from ..rpc.access import RateLimit, RateLimited, TokenBucket
from ..rpc.messages import Params
from ..rpc.peer import Peer, current_peer
from ..rpc.routes import InvalidArguments, Method
from ..typedefs import JSONValue
from .brokers.base import Position
from .rooms import JOIN_METHOD, LEAVE_METHOD, MAX_ROOM_NAME, PUBLISH_METHOD

if TYPE_CHECKING:
    from .rooms import Rooms

__all__ = ["room_methods"]


def room_methods(
    rooms: Rooms, *, client_publish: bool = False, publish_limit: RateLimit | None = None
) -> dict[str, Method]:
    """The reserved methods that serve ``rooms`` to RPC clients, by name; see
    :meth:`Rooms.rpc_methods <socketeer.pubsub.Rooms.rpc_methods>`."""
    # Each peer's bucket, while the peer lives.
    buckets: weakref.WeakKeyDictionary[Peer, TokenBucket] = weakref.WeakKeyDictionary()

    async def join(params: _JoinParams) -> JSONValue:
        peer = current_peer()
        await peer.check_access("join", params.room)
        result = await rooms.join(peer, params.room, since=params.since)
        epoch, offset = result.position
        return {"epoch": epoch, "offset": offset, "recovered": result.recovered}

    async def leave(params: _RoomParams) -> JSONValue:
        await rooms.leave(current_peer(), params.room)
        return None

    async def publish(params: _PublishParams) -> JSONValue:
        peer = current_peer()
        if publish_limit is not None:
            now = asyncio.get_running_loop().time()
            bucket = buckets.get(peer)
            if bucket is None:
                bucket = buckets[peer] = publish_limit.bucket(now)
            retry_after = bucket.take(now)
            if retry_after:
                raise RateLimited(retry_after)
        await peer.check_access("publish", params.room)
        epoch, offset = await rooms.publish(params.room, params.data)
        return {"epoch": epoch, "offset": offset}

    functions: dict[str, Callable[..., Any]] = {JOIN_METHOD: join, LEAVE_METHOD: leave}
    if client_publish:
        functions[PUBLISH_METHOD] = publish
    return {
        name: _RoomMethod(name, function, inspect.signature(function))
        for name, function in functions.items()
    }


# The params of the reserved methods: checked when the call is read, so that bad ones are
# answered -32602 at once.


class _RoomParams(NamedTuple):
    room: str


class _JoinParams(NamedTuple):
    room: str
    since: Position | None


class _PublishParams(NamedTuple):
    room: str
    data: JSONValue


def _object(params: Params, allowed: tuple[str, ...]) -> Mapping[str, JSONValue]:
    if not isinstance(params, Mapping):
        members = ", ".join(allowed)
        raise InvalidArguments(f"params must be an object with members {members}")
    for name in params:
        if name not in allowed:
            raise InvalidArguments(f"unexpected argument {name!r}")
    return params


def _room_param(params: Mapping[str, JSONValue]) -> str:
    if "room" not in params:
        raise InvalidArguments("missing argument 'room'")
    room = params["room"]
    if not isinstance(room, str) or not 0 < len(room) <= MAX_ROOM_NAME:
        raise InvalidArguments(
            f"room must be a string of 1 to {MAX_ROOM_NAME} characters, got {_json_repr(room)}"
        )
    return room


def _json_repr(value: JSONValue) -> str:
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    return type(value).__name__


def _since_param(since: JSONValue) -> Position | None:
    if since is None:
        return None
    if isinstance(since, dict) and set(since) == {"epoch", "offset"}:
        epoch, offset = since["epoch"], since["offset"]
        if (
            isinstance(epoch, str)
            and isinstance(offset, int)
            and not isinstance(offset, bool)
            and offset >= 0
        ):
            return Position(epoch, offset)
    raise InvalidArguments('since must be {"epoch": string, "offset": integer >= 0} or null')


def _parse_join(params: Params) -> _JoinParams:
    checked = _object(params, ("room", "since"))
    return _JoinParams(_room_param(checked), _since_param(checked.get("since")))


def _parse_leave(params: Params) -> _RoomParams:
    return _RoomParams(_room_param(_object(params, ("room",))))


def _parse_publish(params: Params) -> _PublishParams:
    checked = _object(params, ("room", "data"))
    room = _room_param(checked)
    if "data" not in checked:
        raise InvalidArguments("missing argument 'data'")
    return _PublishParams(room, checked["data"])


_PARSERS: dict[str, Callable[[Params], NamedTuple]] = {
    JOIN_METHOD: _parse_join,
    LEAVE_METHOD: _parse_leave,
    PUBLISH_METHOD: _parse_publish,
}


class _RoomMethod(Method):
    """A ``$/room/`` method: its params are checked as ``docs/pubsub.md`` specifies, and
    passed to the function as one named tuple."""

    def bind(self, params: Params) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (_PARSERS[self.name](params),), {}
