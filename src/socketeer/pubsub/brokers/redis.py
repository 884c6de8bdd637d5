"""The Redis broker: many processes on many machines share rooms through one Redis.

Requires the ``redis`` package (``pip install socketeer[redis]``) and Redis 6.2 or later.

Theory of operation
-------------------

**What lives in Redis.** Under ``prefix`` (``socketeer:`` by default), per room:

- ``room:<room>``, a hash: ``epoch`` (a random string) and ``offset`` (the latest offset);
- ``history:<room>``, a stream of the kept publications, with the explicit IDs
  ``0-<offset>`` and the fields ``data``, ``time`` (Redis ``TIME`` at publication, in
  milliseconds) and ``expires`` (the deadline given by the retention's ``ttl``, 0 for none);
- ``presence:<room>``, a sorted set: each member present, scored by the time its entry
  expires (milliseconds, Redis ``TIME``), and ``presence-info:<room>``, a hash: each member's
  ``[node, info]`` in JSON;
- the pub/sub channel ``room:<room>``, on which each publication travels as
  ``<epoch>:<offset>:<data>``.

The type comes first in each name, so no room name can make one key look like another.

**Publishing** is one Lua script, atomic: increment the offset, create the epoch if the
room has none (and then drop any history left from a forgotten epoch), append to the
history and trim it exactly (``MAXLEN`` for ``size``, then from the oldest end every entry
whose deadline passed), set the keys' expiry, and ``PUBLISH``. The room's hash and history
expire together, ``max(ttl, idle_expiry)`` after the latest publication: by then every
kept publication had expired anyway, and a room that is forgotten gets a new epoch when it
is next used, so an offset is never given twice within an epoch. A history kept without
``ttl`` never expires (neither does its room's hash); ``idle_expiry=None`` expires nothing.
Reading a history is a script too, so that the position and the publications it returns
agree; it starts the epoch of a room that has none.

**Subscriptions** share one connection, dedicated to pub/sub, read by one task: it
hands publications to :attr:`on_publication` in the order Redis sent them, which is
offset order per room, as the script publishes in the order it gives offsets. Commands
(scripts, presence) go through a pool of other connections. :meth:`subscribe` returns
once Redis confirmed the subscription; :meth:`unsubscribe` stops delivery at once (what
arrives for a room no longer subscribed is dropped).

**Presence** entries are refreshed by this node every ``presence_ttl / 3`` seconds (Redis
7.0 has no expiry per hash field, hence the sorted set of deadlines); every read and
refresh deletes the expired ones, and the keys expire with their latest entry. The entries
of a node that died disappear within ``presence_ttl``. The node keeps its own entries in
memory, to refresh them and to write them again after an outage; one lock orders its
writes, so that a removal is never overtaken by a refresh that still had the member.

**Sessions and outages.** A *session* is: a pub/sub connection, subscribed to every room
of :attr:`_rooms`, with this node's presence written, then served by two tasks, the reader
and the refresher (which also sends ``PING`` on the pub/sub connection, and ends the
session when the previous one got no answer: a silent network fails within two periods).
:meth:`connect` opens the first session, or raises. The supervisor task serves it; when it
fails (any connection error), the broker is *down*: it logs a warning once,
:meth:`publish`, :meth:`history` and :meth:`presence` raise
:exc:`~socketeer.exceptions.BrokerUnavailable` at once (nothing is queued), subscriptions
and presence changes are only recorded, and the supervisor opens a new session after
:class:`~socketeer.client.Backoff` delays, until one succeeds: then it logs that Redis is
back, and the broker is *up* again. Opening a session repeats until a pass saw no change
of subscriptions or presence, and the broker is up from the synchronous step that checks
it: nothing recorded meanwhile is missed. Publications made while a node was down are not
delivered to it later (at most once); its members recover them from the history.

**Lifetime.** new → up (:meth:`connect`) ⇄ down → closed (:meth:`close`, which cancels the
supervisor, removes this node's presence entries if Redis answers within ``timeout``, and
closes every connection). :meth:`connect` and :meth:`close` are idempotent; other calls
before :meth:`connect` or after :meth:`close` raise :exc:`~socketeer.exceptions.InvalidState`.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import math
import secrets
import urllib.parse
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

try:
    import redis.asyncio as aioredis
    from redis.asyncio.connection import AbstractConnection
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - tested by hiding the package
    raise ImportError(
        "RedisBroker requires the redis package: pip install socketeer[redis]"
    ) from exc

from ...client import Backoff
from ...exceptions import BrokerError, BrokerUnavailable, InvalidState
from ...typedefs import JSONValue
from .base import Broker, History, Position, PresenceEntry, Publication, Retention

__all__ = ["RedisBroker", "DEFAULT_BACKOFF"]

logger = logging.getLogger("socketeer.pubsub")

DEFAULT_BACKOFF = Backoff(initial=0.5, maximum=10.0)
"""Delays between attempts to reach Redis again: up to 0.5 s at first, 10 s at most."""

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)
"""What says that Redis cannot be reached (``asyncio.TimeoutError``: our own waits)."""


# Lua: helpers shared by the scripts.
_LUA_HELPERS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function int(n)
  return string.format('%.0f', n)
end

local function field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
end

-- Drop the oldest entries of a history, up to the last one whose deadline passed, so that
-- what is kept stays a contiguous run of offsets.
local function trim(key, now)
  local start, count = '-', 1
  while true do
    local batch = redis.call('XRANGE', key, start, '+', 'COUNT', count)
    if #batch == 0 then
      redis.call('DEL', key)
      return
    end
    for _, entry in ipairs(batch) do
      local expires = tonumber(field(entry[2], 'expires'))
      if expires == 0 or expires > now then
        redis.call('XTRIM', key, 'MINID', entry[1])
        return
      end
    end
    start, count = '(' .. batch[#batch][1], math.min(count * 4, 1024)
  end
end

-- Delete the expired presence entries; the keys expire with the latest one left.
local function clean(members, infos, now)
  local gone = redis.call('ZRANGEBYSCORE', members, '-inf', now)
  for _, member in ipairs(gone) do
    redis.call('HDEL', infos, member)
  end
  if #gone > 0 then
    redis.call('ZREMRANGEBYSCORE', members, '-inf', now)
  end
  local last = redis.call('ZRANGE', members, -1, -1, 'WITHSCORES')
  if #last > 0 then
    redis.call('PEXPIREAT', members, last[2])
    redis.call('PEXPIREAT', infos, last[2])
  else
    redis.call('DEL', infos)
  end
end
"""

_PUBLISH = (
    _LUA_HELPERS
    + """
-- KEYS: room hash, history stream
-- ARGV: channel, data, an epoch for a room that has none, size, ttl in ms (0: none),
--       idle expiry in ms (0: never)
local now = now_ms()
local size, ttl, idle = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[3]) == 1 then
  -- a new epoch: offsets start again, and any history left belongs to a forgotten one
  offset = 1
  redis.call('HSET', KEYS[1], 'offset', 1)
  redis.call('DEL', KEYS[2])
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if size > 0 then
  local expires = 0
  if ttl > 0 then expires = now + ttl end
  redis.call('XADD', KEYS[2], 'MAXLEN', size, '0-' .. int(offset),
    'data', ARGV[2], 'time', int(now), 'expires', int(expires))
  trim(KEYS[2], now)
else
  redis.call('DEL', KEYS[2])
end
if idle == 0 or (size > 0 and ttl == 0) then
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
else
  local keep = math.max(ttl, idle)
  redis.call('PEXPIRE', KEYS[1], keep)
  redis.call('PEXPIRE', KEYS[2], keep)
end
redis.call('PUBLISH', ARGV[1], epoch .. ':' .. int(offset) .. ':' .. ARGV[2])
return {epoch, offset}
"""
)

_HISTORY = (
    _LUA_HELPERS
    + """
-- KEYS: room hash, history stream
-- ARGV: an epoch for a room that has none, the epoch and offset asked for ('' and '': none),
--       idle expiry in ms (0: never)
-- Returns: epoch, offset, complete (0 or 1), then the data of each publication after it.
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
  redis.call('DEL', KEYS[2])
  if tonumber(ARGV[4]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
end
local offset = tonumber(redis.call('HGET', KEYS[1], 'offset') or 0)
if ARGV[3] == '' then return {epoch, offset, 1} end
local since = tonumber(ARGV[3])
if ARGV[2] ~= epoch or since > offset or since < 0 then return {epoch, offset, 0} end
if since == offset then return {epoch, offset, 1} end
trim(KEYS[2], now_ms())
local first = '0-' .. int(since + 1)
local entries = redis.call('XRANGE', KEYS[2], first, '+')
if #entries ~= offset - since or entries[1][1] ~= first then return {epoch, offset, 0} end
local reply = {epoch, offset, 1}
for i, entry in ipairs(entries) do reply[i + 3] = field(entry[2], 'data') end
return reply
"""
)

_PRESENCE_WRITE = (
    _LUA_HELPERS
    + """
-- KEYS: presence sorted set, presence info hash
-- ARGV: ttl in ms, then member and [node, info] in JSON, for each member
local now = now_ms()
local expires = int(now + tonumber(ARGV[1]))
for i = 2, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], expires, ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
clean(KEYS[1], KEYS[2], now)
"""
)

_PRESENCE_READ = (
    _LUA_HELPERS
    + """
-- KEYS: presence sorted set, presence info hash
-- Returns: member and [node, info] in JSON, for each member present.
clean(KEYS[1], KEYS[2], now_ms())
local reply = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local info = redis.call('HGET', KEYS[2], member)
  if info then
    reply[#reply + 1] = member
    reply[#reply + 1] = info
  end
end
return reply
"""
)


def _milliseconds(seconds: float | None) -> int:
    """Seconds as whole milliseconds, rounded up (0 stands for ``None``)."""
    return 0 if seconds is None else max(math.ceil(seconds * 1000), 1)


def _describe(url: str) -> str:
    """Where a Redis URL leads, without its credentials, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path}"


class RedisBroker(Broker):
    """The broker of many processes, through Redis; see the module's theory of operation.

    Args:
        url: where Redis is: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://``
            for TLS, ``unix:///path/to/socket[?db=N]``; query options are redis-py's.
        presence_ttl: how long a node's presence entries outlive it, in seconds; they are
            refreshed every third of it.
        prefix: what the names of every key and channel start with.
        node: this node's id; a random one by default.
        idle_expiry: seconds after its latest publication that Redis forgets a room (at
            least its history's ``ttl``; never while it keeps a history without ``ttl``);
            ``None``: never.
        timeout: the longest any one exchange with Redis may take, in seconds: a command,
            connecting, confirming a subscription, waiting for a connection of the pool.
        backoff: the delays between attempts to reconnect.
        max_connections: most connections for commands (the pub/sub one aside).

    Raises:
        ValueError: if a value is out of range or the URL is not one of those.
    """

    def __init__(
        self,
        url: str,
        *,
        presence_ttl: float = 30.0,
        prefix: str = "socketeer:",
        node: str | None = None,
        idle_expiry: float | None = 86_400.0,
        timeout: float = 5.0,
        backoff: Backoff = DEFAULT_BACKOFF,
        max_connections: int = 50,
    ) -> None:
        if not presence_ttl > 0:
            raise ValueError(f"presence_ttl must be > 0, got {presence_ttl}")
        if idle_expiry is not None and not idle_expiry > 0:
            raise ValueError(f"idle_expiry must be > 0 or None, got {idle_expiry}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        self.node = secrets.token_hex(8) if node is None else node
        self.presence_ttl = presence_ttl
        """Seconds this node's presence entries outlive it."""
        self.prefix = prefix
        """What every key and channel name starts with."""
        self.idle_expiry = idle_expiry
        self.timeout = timeout
        self.backoff = backoff
        self._where = _describe(url)
        self._prefix = prefix.encode()
        # The reader needs RESP2 replies in bytes, and reconnecting is ours to do: redis-py
        # must not retry behind our back. Our settings win over the URL's query options.
        options: dict[str, Any] = {
            "decode_responses": False,
            "retry": Retry(NoBackoff(), 0),
            "health_check_interval": 0,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
        }
        self._pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout, protocol=2, **options
        )
        protocol = self._pool.connection_kwargs.get("protocol")
        if str(protocol) != "2":
            raise ValueError(f"RedisBroker speaks RESP2: remove protocol={protocol} from the URL")
        self._pool.connection_kwargs.update(options)
        self._redis = aioredis.Redis(connection_pool=self._pool)
        self._publish = self._redis.register_script(_PUBLISH)
        self._history = self._redis.register_script(_HISTORY)
        self._presence_write = self._redis.register_script(_PRESENCE_WRITE)
        self._presence_read = self._redis.register_script(_PRESENCE_READ)

        self._state = "new"  # "new", "open", "closed"
        self._up = False
        self._lost_logged = False
        self._rooms: dict[bytes, str] = {}  # channel → room, for every subscribed room
        self._entries: dict[str, dict[str, bytes]] = {}  # room → member → [node, info]
        self._changes = 0  # counts changes of _rooms and _entries (see _open_session)
        self._sub: AbstractConnection | None = None  # the session's pub/sub connection
        self._sub_lock = asyncio.Lock()  # orders writes on it
        self._presence_lock = asyncio.Lock()  # orders this node's presence writes
        self._confirmations: dict[bytes, collections.deque[asyncio.Future[None]]] = {}
        self._pong_pending = False
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = {"new": "new", "closed": "closed"}.get(self._state, "up" if self._up else "down")
        return f"<RedisBroker node={self.node} redis={self._where} {state}>"

    # Names

    def _channel(self, room: str) -> bytes:
        return self._prefix + b"room:" + room.encode()

    def _room_keys(self, room: str) -> list[bytes]:
        name = room.encode()
        return [self._prefix + b"room:" + name, self._prefix + b"history:" + name]

    def _presence_keys(self, room: str) -> list[bytes]:
        name = room.encode()
        return [self._prefix + b"presence:" + name, self._prefix + b"presence-info:" + name]

    # Errors

    def _check(self) -> None:
        if self._state == "closed":
            raise InvalidState("broker is closed")
        if self._state == "new":
            raise InvalidState("broker is not connected: call connect() first")

    def _check_up(self) -> None:
        self._check()
        if not self._up:
            raise BrokerUnavailable(f"redis at {self._where} is unreachable; reconnecting")

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        """Turn redis-py's errors into :exc:`BrokerError` (``raise ... from``)."""
        try:
            yield
        except _UNREACHABLE as exc:
            raise BrokerUnavailable(
                f"redis at {self._where} is unreachable: {exc or type(exc).__name__}"
            ) from exc
        except RedisError as exc:
            raise BrokerError(f"redis at {self._where} failed to {action}: {exc}") from exc

    # Lifetime

    async def connect(self) -> None:
        """Connect to Redis, before any other call.

        Raises:
            BrokerUnavailable: if Redis cannot be reached now (it is not retried).
            InvalidState: if the broker was closed.
        """
        if self._state == "closed":
            raise InvalidState("broker is closed: make a new one")
        if self._state == "open":
            return
        try:
            with self._translate("connect"):
                conn = await asyncio.wait_for(self._open_session(), self.timeout)
        except BaseException:
            await self._pool.disconnect()
            raise
        self._state = "open"
        self._task = asyncio.get_running_loop().create_task(
            self._supervise(conn), name=f"socketeer redis broker {self.node}"
        )

    async def close(self) -> None:
        """Stop reconnecting, remove this node's presence entries, close the connections.

        Removing the presence entries waits at most ``timeout`` seconds; when Redis cannot
        be reached, they expire after ``presence_ttl``.
        """
        if self._state == "closed":
            return
        was_open, self._state = self._state == "open", "closed"
        task, self._task = self._task, None
        while task is not None and not task.done():
            # Again if needed: before Python 3.12, wait_for() may swallow a cancellation.
            task.cancel()
            await asyncio.wait([task], timeout=self.timeout)
        if task is not None and not task.cancelled() and task.exception() is not None:
            logger.error("redis broker had failed", exc_info=task.exception())
        if was_open and self._entries:
            try:
                await asyncio.wait_for(self._remove_entries(self._entries), self.timeout)
            except (RedisError, *_UNREACHABLE) as exc:
                logger.info("presence of node %s not removed from redis: %s", self.node, exc)
        # The supervisor closes its connection, unless it was cancelled before it started.
        conn, self._sub, self._up = self._sub, None, False
        if conn is not None:
            await conn.disconnect(nowait=True)
        self._resolve_confirmations()
        self._entries.clear()
        self._rooms.clear()
        await self._redis.aclose()
        await self._pool.aclose()

    # Sessions

    async def _open_session(self) -> AbstractConnection:
        """Connect the pub/sub connection, subscribe, write the presence entries."""
        options = {**self._pool.connection_kwargs, "socket_timeout": None}
        conn: AbstractConnection = self._pool.connection_class(**options)
        try:
            await conn.connect()  # type: ignore[no-untyped-call]
            await self._redis.ping()
            subscribed: set[bytes] = set()
            while True:
                changes = self._changes
                await self._sync_subscriptions(conn, subscribed)
                async with self._presence_lock:
                    await self._write_entries(self._entries)
                if changes == self._changes:
                    break
        except BaseException:
            await conn.disconnect(nowait=True)
            self._resolve_confirmations()
            raise
        # From here on, subscribe() and add_presence() write themselves.
        self._sub, self._up, self._pong_pending = conn, True, False
        return conn

    async def _sync_subscriptions(self, conn: AbstractConnection, subscribed: set[bytes]) -> None:
        """Subscribe ``conn`` to the rooms it misses and wait for Redis to confirm."""
        missing = [channel for channel in self._rooms if channel not in subscribed]
        extra = [channel for channel in subscribed if channel not in self._rooms]
        if extra:
            await conn.send_command("UNSUBSCRIBE", *extra, check_health=False)
            subscribed.difference_update(extra)
        if missing:
            waiters = [self._expect_confirmation(channel) for channel in missing]
            await conn.send_command("SUBSCRIBE", *missing, check_health=False)
            while not all(waiter.done() for waiter in waiters):
                self._handle(await conn.read_response())
            subscribed.update(missing)

    async def _supervise(self, conn: AbstractConnection) -> None:
        """Serve sessions, reconnecting with backoff after each one fails."""
        while True:
            try:
                await self._serve(conn)
            except Exception as exc:
                self._lose(exc)
            finally:
                self._sub, self._up = None, False
                self._resolve_confirmations()
                await conn.disconnect(nowait=True)
            conn = await self._reconnect()

    async def _serve(self, conn: AbstractConnection) -> None:
        """Read and refresh until either fails; raise what failed."""
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._read(conn)), loop.create_task(self._refresh(conn))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            errors = [task.exception() for task in tasks if not task.cancelled()]
        raise next((error for error in errors if error is not None), RuntimeError("no error"))

    def _lose(self, exc: Exception) -> None:
        if self._lost_logged:
            return
        self._lost_logged = True
        if isinstance(exc, (RedisError, *_UNREACHABLE)):
            logger.warning("redis at %s is unreachable, reconnecting: %s", self._where, exc)
        else:
            logger.error("redis broker failed, reconnecting", exc_info=exc)

    async def _reconnect(self) -> AbstractConnection:
        attempt = 0
        while True:
            await asyncio.sleep(self.backoff.delay(attempt))
            attempt += 1
            try:
                conn = await asyncio.wait_for(self._open_session(), self.timeout)
            except (RedisError, *_UNREACHABLE) as exc:
                logger.debug("redis at %s still unreachable: %s", self._where, exc)
                continue
            except Exception:
                logger.exception("redis broker failed to reconnect")
                continue
            self._lost_logged = False
            logger.info("redis at %s is reachable again", self._where)
            return conn

    async def _read(self, conn: AbstractConnection) -> None:
        while True:
            self._handle(await conn.read_response())

    async def _refresh(self, conn: AbstractConnection) -> None:
        while True:
            await asyncio.sleep(self.presence_ttl / 3)
            if self._pong_pending:
                raise RedisTimeoutError("no answer to ping on the pub/sub connection")
            self._pong_pending = True
            await self._send(conn, "PING")
            async with self._presence_lock:
                await self._write_entries(self._entries)

    async def _send(self, conn: AbstractConnection, *command: bytes | str) -> None:
        """Write a command on the pub/sub connection, if it is still the session's."""
        async with self._sub_lock:
            # send_command() would connect again a connection that was lost: check first.
            if self._sub is conn and conn.is_connected:
                await asyncio.wait_for(
                    conn.send_command(*command, check_health=False), self.timeout
                )

    # What the pub/sub connection receives

    def _handle(self, response: Any) -> None:
        if not isinstance(response, list):
            if response == b"PONG":  # to a PING while subscribed to nothing
                self._pong_pending = False
            return
        kind = response[0]
        if kind == b"message":
            room = self._rooms.get(response[1])
            if room is not None:
                self._deliver(room, response[2])
        elif kind == b"subscribe":
            waiters = self._confirmations.get(response[1])
            if waiters:
                waiter = waiters.popleft()
                if not waiters:
                    del self._confirmations[response[1]]
                if not waiter.done():
                    waiter.set_result(None)
        elif kind == b"pong":
            self._pong_pending = False

    def _deliver(self, room: str, payload: bytes) -> None:
        try:
            epoch, offset, data = payload.split(b":", 2)
            publication = Publication(room, epoch.decode("ascii"), int(offset), data)
        except ValueError:
            logger.warning("ignored a malformed publication in room %s: %r", room, payload[:80])
            return
        callback = self.on_publication
        if callback is not None:
            try:
                callback(publication)
            except Exception:
                logger.exception("on_publication failed for room %s", room)

    def _expect_confirmation(self, channel: bytes) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(channel, collections.deque()).append(waiter)
        return waiter

    def _resolve_confirmations(self) -> None:
        """Release the subscribers waiting: the next session subscribes again."""
        for waiters in self._confirmations.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        self._confirmations.clear()

    # Subscriptions

    async def subscribe(self, room: str) -> None:
        """Deliver the room's publications to :attr:`on_publication` from now on.

        Returns once Redis confirmed the subscription. While Redis cannot be reached, it
        is recorded, and takes effect when Redis is back.

        Raises:
            InvalidState: before :meth:`connect` or after :meth:`close`.
        """
        self._check()
        channel = self._channel(room)
        if channel in self._rooms:
            waiters = self._confirmations.get(channel)
            if waiters:  # subscribed a moment ago: wait for the same confirmation
                await self._confirmed(room, waiters[-1])
            return
        self._rooms[channel] = room
        self._changes += 1
        conn = self._sub
        if conn is None:
            return
        waiter = self._expect_confirmation(channel)
        try:
            await self._send(conn, "SUBSCRIBE", channel)
        except (RedisError, *_UNREACHABLE) as exc:
            # The session is failing: the next one subscribes again.
            logger.debug("subscription to room %s waits for redis: %s", room, exc)
        else:
            await self._confirmed(room, waiter)

    async def _confirmed(self, room: str, waiter: asyncio.Future[None]) -> None:
        """Wait until Redis confirmed a subscription, or the session ended, or ``timeout``."""
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.timeout)
        except asyncio.TimeoutError:
            # The session is failing: the next one subscribes again.
            logger.debug("subscription to room %s not confirmed by redis yet", room)

    async def unsubscribe(self, room: str) -> None:
        """Stop delivering the room's publications, at once.

        Raises:
            InvalidState: before :meth:`connect` or after :meth:`close`.
        """
        self._check()
        channel = self._channel(room)
        if self._rooms.pop(channel, None) is None:
            return
        self._changes += 1
        conn = self._sub
        if conn is None:
            return
        try:
            await self._send(conn, "UNSUBSCRIBE", channel)
        except (RedisError, *_UNREACHABLE) as exc:
            logger.debug("unsubscription from room %s waits for redis: %s", room, exc)

    # Publications

    async def publish(self, room: str, data: bytes, retention: Retention) -> Position:
        """Publish ``data`` to ``room``; see :meth:`.Broker.publish`.

        A timeout (no answer within ``timeout`` seconds) raises
        :exc:`~socketeer.exceptions.BrokerUnavailable` too, although Redis may have
        published.

        Raises:
            BrokerUnavailable: if Redis cannot be reached.
            BrokerError: if Redis answers with an error.
            InvalidState: before :meth:`connect` or after :meth:`close`.
        """
        self._check_up()
        args: list[bytes | str | int] = [
            self._channel(room),
            bytes(data),
            secrets.token_hex(8),
            retention.size,
            _milliseconds(retention.ttl),
            _milliseconds(self.idle_expiry),
        ]
        with self._translate("publish"):
            epoch, offset = await self._publish(keys=self._room_keys(room), args=args)
        return Position(epoch.decode(), offset)

    async def history(self, room: str, since: Position | None) -> History:
        """The room's publications after ``since``; see :meth:`.Broker.history`.

        Reading the history of a room that Redis does not know starts its epoch.

        Raises:
            BrokerUnavailable: if Redis cannot be reached.
            BrokerError: if Redis answers with an error.
            InvalidState: before :meth:`connect` or after :meth:`close`.
        """
        self._check_up()
        args: list[bytes | str | int] = [
            secrets.token_hex(8),
            "" if since is None else since.epoch,
            "" if since is None else since.offset,
            _milliseconds(self.idle_expiry),
        ]
        with self._translate("read a history"):
            reply = await self._history(keys=self._room_keys(room), args=args)
        epoch, offset, complete, *datas = reply
        position = Position(epoch.decode(), offset)
        publications = [
            Publication(room, position.epoch, since.offset + index, data)
            for index, data in enumerate(datas, 1)
            if since is not None
        ]
        return History(publications, position, bool(complete))

    # Presence

    async def add_presence(self, room: str, member: str, info: JSONValue) -> None:
        """Record that ``member`` of this node is in ``room``, with ``info``.

        While Redis cannot be reached, the entry is recorded, and written when Redis is back.

        Raises:
            InvalidState: before :meth:`connect` or after :meth:`close`.
            TypeError: if ``info`` cannot be serialized to JSON.
        """
        self._check()
        value = json.dumps([self.node, info], separators=(",", ":")).encode()
        self._entries.setdefault(room, {})[member] = value
        self._changes += 1
        if self._up:
            async with self._presence_lock:
                await self._write_quietly({room: {member: value}})

    async def remove_presence(self, room: str, member: str) -> None:
        """Forget that ``member`` of this node is in ``room``.

        While Redis cannot be reached, the entry is forgotten here; in Redis, it expires.

        Raises:
            InvalidState: before :meth:`connect` or after :meth:`close`.
        """
        self._check()
        members = self._entries.get(room)
        if members is None or members.pop(member, None) is None:
            return
        if not members:
            del self._entries[room]
        self._changes += 1
        if self._up:
            async with self._presence_lock:
                try:
                    await asyncio.wait_for(self._remove_entries({room: [member]}), self.timeout)
                except (RedisError, *_UNREACHABLE) as exc:
                    logger.debug("presence in room %s left to expire: %s", room, exc)

    async def presence(self, room: str) -> list[PresenceEntry]:
        """The members in ``room`` on every node whose entries did not expire.

        Raises:
            BrokerUnavailable: if Redis cannot be reached.
            BrokerError: if Redis answers with an error.
            InvalidState: before :meth:`connect` or after :meth:`close`.
        """
        self._check_up()
        with self._translate("read presence"):
            reply = await self._presence_read(keys=self._presence_keys(room))
        entries = []
        for member, value in zip(reply[::2], reply[1::2], strict=True):
            try:
                node, info = json.loads(value)
                entries.append(PresenceEntry(member.decode(), node, info))
            except (ValueError, TypeError):
                logger.warning("ignored a malformed presence entry in room %s", room)
        return entries

    async def _write_quietly(self, entries: dict[str, dict[str, bytes]]) -> None:
        try:
            await self._write_entries(entries)
        except (RedisError, *_UNREACHABLE) as exc:
            # The session is failing: the next one writes every entry again.
            logger.debug("presence waits for redis: %s", exc)

    async def _write_entries(self, entries: dict[str, dict[str, bytes]]) -> None:
        """Write (or refresh) presence entries, in one round trip."""
        if not entries:
            return
        ttl = _milliseconds(self.presence_ttl)
        async with self._redis.pipeline(transaction=False) as pipe:
            for room, members in list(entries.items()):
                args: list[bytes | int | str] = [ttl]
                for member, value in list(members.items()):
                    args += [member, value]
                await self._presence_write(keys=self._presence_keys(room), args=args, client=pipe)
            await pipe.execute()

    async def _remove_entries(self, entries: Mapping[str, Collection[str]]) -> None:
        """Delete presence entries, in one round trip."""
        async with self._redis.pipeline(transaction=True) as pipe:
            for room, members in entries.items():
                if members:
                    names = list(members)
                    presence, infos = self._presence_keys(room)
                    pipe.zrem(presence, *names)
                    pipe.hdel(infos, *names)
            await pipe.execute()
