"""The rooms demo (page ``/rooms``): a small live chat in the room ``chat``, served by an
RPC app of its own on ``/rpc/rooms``.

- Each tab subscribes to the room (``rpc.subscribe("chat", ...)`` in the page): it gets
  every message once, in order. After a reconnection the client recovers by itself what it
  missed, from the room's history (the last 50 messages, each for 10 minutes: ``HISTORY``).
- Tabs never publish: the app does not let clients publish (``client_publish`` is off), since
  anyone may open a public demo. A tab calls ``chat.say(name, text)``, which cleans and
  checks both (:func:`clean_text`), limits the tab's rate (:class:`RateLimit`), and
  publishes ``{"name": NAME, "text": TEXT, "time": MILLISECONDS}``.
- A new tab shows the recent messages: once subscribed, it calls ``chat.recent()``, which
  returns them with their positions (``[{"epoch", "offset", "data"}]``), and shows those of
  its epoch that it does not show yet (they come before its join). The join itself cannot
  do it: the client's first join has no position to recover from, and one from offset 0
  recovers only while the history still holds the room's whole life (its first 50
  messages, for 10 minutes); later it recovers nothing (``recovered: false``). So the chat
  keeps its own copy of the recent messages, over the same window as the history: the
  "fresh snapshot from the application" that ``docs/pubsub.md`` suggests for
  resynchronising, which the page also fetches when its ``onReset`` is called.
- ``chat.enter()`` answers how many people are here (the room's presence: the tabs
  subscribed, on every node) and tells the tabs that entered on this server with a
  ``chat.people`` notification (params: the count); so does a tab that closes.
"""

from __future__ import annotations

import asyncio
import collections
import time
import unicodedata
from collections.abc import Callable

from ..pubsub import MemoryBroker, Position, Retention, Rooms
from ..rpc import RPC, Peer, Route
from ..typedefs import JSONValue

__all__ = [
    "CHAT_ROOM",
    "HISTORY",
    "MAX_TEXT",
    "MAX_NAME",
    "ANONYMOUS",
    "MAX_BURST",
    "BURST_PERIOD",
    "PEOPLE",
    "RateLimit",
    "Chat",
    "clean_text",
    "chat_rooms",
    "rooms_app",
]

CHAT_ROOM = "chat"
"""The room of the chat."""

HISTORY = Retention(size=50, ttl=600.0)
"""What the chat keeps: the last 50 messages, each for at most 10 minutes; recovery after a
reconnection and ``chat.recent()`` reach that far back."""

MAX_TEXT = 200
"""The longest message, in characters, once cleaned. (With a name, the call fits in the
demo server's ``MAX_SIZE`` of 1024 bytes even in 4-byte characters.)"""

MAX_NAME = 24
"""The longest name, in characters, once cleaned."""

ANONYMOUS = "anonymous"
"""The name of those who give none."""

MAX_BURST = 5
"""The most messages a tab may say within :data:`BURST_PERIOD` seconds."""

BURST_PERIOD = 10.0
"""Seconds of the window of :data:`MAX_BURST`."""

PEOPLE = "chat.people"
"""The notification that tells the tabs how many people are here."""

# Explicit bidirectional formatting: a name or message could reverse the text after it.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _is_control(char: str) -> bool:
    if char.isspace():
        return False  # turned into a space, then collapsed
    return unicodedata.category(char) in ("Cc", "Cs") or char in _BIDI_CONTROLS


def clean_text(value: object, *, limit: int, what: str = "message") -> str:
    """``value`` on one line, without control characters, checked against ``limit``.

    Control characters (C0, DEL, C1), lone surrogates (which JSON from a browser can carry)
    and bidirectional formatting characters are removed; every run of whitespace (line
    breaks included) becomes one space, and the text is stripped.

    Args:
        value: what the client sent.
        limit: the most characters (code points) the cleaned text may have.
        what: what the text is, for the error messages.

    Raises:
        TypeError: if ``value`` is not a string.
        ValueError: if the cleaned text is longer than ``limit``.
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}")
    kept = "".join(" " if char.isspace() else char for char in value if not _is_control(char))
    text = " ".join(kept.split())
    if len(text) > limit:
        raise ValueError(f"{what} of {len(text)} characters exceeds limit of {limit} characters")
    return text


class RateLimit:
    """At most ``count`` events within any ``period`` seconds (a sliding window).

    Args:
        count: the most events in a window.
        period: the window, in seconds.
        clock: the time in seconds; :func:`time.monotonic` by default.
    """

    def __init__(
        self, count: int, period: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.count = count
        self.period = period
        self._clock = clock
        self._times: collections.deque[float] = collections.deque(maxlen=count)

    def check(self) -> None:
        """Count one event now.

        Raises:
            ValueError: if ``count`` events happened within the last ``period`` seconds;
                this one is not counted.
        """
        now = self._clock()
        if len(self._times) == self.count and now - self._times[0] < self.period:
            raise ValueError(f"more than {self.count} messages in {self.period:g} seconds")
        self._times.append(now)


class _Said:
    """A message of the chat, as ``chat.recent()`` returns it."""

    __slots__ = ("position", "data", "expires")

    def __init__(self, position: Position, data: JSONValue, expires: float) -> None:
        self.position = position
        self.data = data
        self.expires = expires

    def describe(self) -> dict[str, JSONValue]:
        epoch, offset = self.position
        return {"epoch": epoch, "offset": offset, "data": self.data}


class Chat:
    """The chat's state, which every tab shares: its rooms and its recent messages.

    Args:
        rooms: where the chat publishes.
        clock: the time in seconds, for the expiry of recent messages (``time.monotonic``).
        wall_clock: the time in seconds since the Unix epoch, for the messages' ``time``.
    """

    def __init__(
        self,
        rooms: Rooms,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.rooms = rooms
        """Where the chat publishes, in the room :data:`CHAT_ROOM`."""
        self._clock = clock
        self._wall_clock = wall_clock
        self._recent: list[_Said] = []  # in offset order, one epoch, at most HISTORY.size

    def message(self, name: object, text: object) -> dict[str, JSONValue]:
        """A message to publish: ``name`` and ``text`` cleaned and checked, and the time.

        Raises:
            TypeError, ValueError: if ``name`` or ``text`` is not a string or is too long,
                or if ``text`` is empty once cleaned (an empty name is :data:`ANONYMOUS`).
        """
        name = clean_text(name, limit=MAX_NAME, what="name") or ANONYMOUS
        text = clean_text(text, limit=MAX_TEXT)
        if not text:
            raise ValueError("message is empty")
        return {"name": name, "text": text, "time": round(self._wall_clock() * 1000)}

    async def say(self, message: dict[str, JSONValue]) -> Position:
        """Publish a :meth:`message` to the chat, and keep it among the recent ones.

        Raises:
            BrokerUnavailable: if the broker cannot be reached.
        """
        position = await self.rooms.publish(CHAT_ROOM, message)
        self._remember(position, message)
        return position

    def _remember(self, position: Position, data: JSONValue) -> None:
        recent = self._recent
        if recent and recent[-1].position.epoch != position.epoch:
            recent.clear()  # the room was forgotten: so are its offsets
        assert HISTORY.ttl is not None
        recent.append(_Said(position, data, self._clock() + HISTORY.ttl))
        # Concurrent calls may return out of order from a remote broker: keep offset order.
        recent.sort(key=lambda said: said.position.offset)
        del recent[: -HISTORY.size]

    def recent(self) -> list[dict[str, JSONValue]]:
        """The recent messages, oldest first: ``[{"epoch", "offset", "data"}]``."""
        now = self._clock()
        self._recent = [said for said in self._recent if said.expires > now]
        return [said.describe() for said in self._recent]

    async def people(self, *, joining: Peer | None = None, leaving: Peer | None = None) -> int:
        """How many members the room has, on every node.

        Args:
            joining: a peer to count even if its join is not done.
            leaving: a peer not to count even if its presence is not removed yet.

        Raises:
            BrokerUnavailable: if the broker cannot be reached.
        """
        members = {entry.member for entry in await self.rooms.presence(CHAT_ROOM)}
        if joining is not None:
            members.add(str(joining.connection.id))  # presence ids are connection ids
        if leaving is not None:
            members.discard(str(leaving.connection.id))
        return len(members)


def chat_rooms() -> Rooms:
    """New rooms for the chat: on a memory broker (one process), keeping :data:`HISTORY`."""
    return Rooms(MemoryBroker(), retention=HISTORY)


def rooms_app(rooms: Rooms, *, clock: Callable[[], float] = time.monotonic) -> RPC:
    """A new RPC app for the rooms demo, with a fresh :class:`Chat` on ``rooms``.

    Args:
        rooms: where the chat publishes; they should keep :data:`HISTORY`.
        clock: the time in seconds, for the rate limits and the recent messages' expiry.
    """
    rpc = RPC(rooms=rooms)  # clients join and leave rooms; only the app publishes
    chat = Chat(rooms, clock=clock)
    tabs: set[ChatTab] = set()  # those that entered: told how many people are here

    async def tell(count: int) -> None:
        # Concurrently; a tab that is closing just misses it.
        notifications = [tab.peer.notify(PEOPLE, count) for tab in tabs]
        await asyncio.gather(*notifications, return_exceptions=True)

    @rpc.route("chat")
    class ChatTab(Route):
        """One tab: its rate limit, made on its first call."""

        def __init__(self, peer: Peer) -> None:
            super().__init__(peer)
            self.rate = RateLimit(MAX_BURST, BURST_PERIOD, clock)

        async def enter(self) -> int:
            """How many people are here; the other tabs learn it too. Call it once
            subscribed, on each connection."""
            tabs.add(self)
            count = await chat.people(joining=self.peer)
            await tell(count)
            return count

        async def say(self, name: str, text: str) -> dict[str, JSONValue]:
            """Publish a message to the chat; return its position. Only valid messages
            count toward the rate limit."""
            message = chat.message(name, text)
            self.rate.check()
            epoch, offset = await chat.say(message)
            return {"epoch": epoch, "offset": offset}

        def recent(self) -> list[dict[str, JSONValue]]:
            """The recent messages with their positions, oldest first."""
            return chat.recent()

        async def on_close(self) -> None:
            if self in tabs:
                tabs.discard(self)
                await tell(await chat.people(leaving=self.peer))

    return rpc
