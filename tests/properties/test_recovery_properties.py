"""Recovery of room publications across disconnections, as a property (docs/pubsub.md,
"Delivery semantics" and "Wire format for RPC peers").

Any interleaving of publications, disconnections (by either end, clean or not),
reconnections (with publications racing the join) and joins cut short ends with the client
having every publication inside the history window exactly once and in order; where a
disconnection missed more than the window holds, the join says ``recovered: false`` (a
reset), and every publication after it arrives exactly once and in order.

Everything is real: :class:`~socketeer.pubsub.Rooms` on a :class:`MemoryBroker` with
``Retention(size=N)``, served by ``RPC(rooms=rooms)`` over loopback, and a client that
speaks JSON-RPC on a plain WebSocket connection with the RPC codec and follows the recovery
algorithm of the browser client (``socketeer.js``, class ``Rooms``): it remembers the last
position it delivered, joins with ``since`` on every connection, drops duplicates, holds
publications out of order and joins again on a gap, and resets (``onReset``) on a new epoch
or ``recovered: false``. Like the browser client, it handles each message in the order it
arrives (the Python :class:`~socketeer.rpc.Peer` runs notification listeners as concurrent
jobs, so it would not be a faithful model).

Checked, besides the end state: offsets strictly increase and never repeat, for the client
at all times and on the wire of every connection (the server sends each publication once, in
order, without gaps); each join's ``recovered`` is what the history window implies; data
arrive intact.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import socketeer
from socketeer.exceptions import ConnectionClosed
from socketeer.protocol.frames import CloseCode
from socketeer.pubsub import MemoryBroker, Position, Retention, Rooms
from socketeer.pubsub.rooms import SlowPolicy
from socketeer.rpc import RPC, SUBPROTOCOL
from socketeer.rpc.messages import Batch, Notification, Request, Response, parse, serialize
from timing import MS

ROOM = "news"
JOIN_METHOD = "$/room/join"
MESSAGE_METHOD = "$/room/message"
STEP = 5_000 * MS
"""Longest a single step may take (a connection, a join, catching up); steps take
milliseconds. Only catches hangs: no test depends on how long anything takes."""


# The operations, and the strategy that interleaves them.


@dataclasses.dataclass(frozen=True)
class Publish:
    """Publish ``count`` messages, letting the event loop run ``spacing`` turns after each."""

    count: int
    spacing: int = 0


@dataclasses.dataclass(frozen=True)
class Disconnect:
    """End the connection: ``client`` or ``server`` side, with a closing handshake
    (``close``) or without (``abort``, as when the network fails)."""

    side: str
    how: str


@dataclasses.dataclass(frozen=True)
class Reconnect:
    """Connect and join with the last position, while ``racing`` messages are published,
    ``spacing`` turns of the event loop apart (a join takes a few dozen turns)."""

    racing: int = 0
    spacing: int = 1


@dataclasses.dataclass(frozen=True)
class CutJoin:
    """Connect and send the join, then lose the connection after ``turns`` turns of the
    event loop, answered or not."""

    turns: int


@dataclasses.dataclass(frozen=True)
class Outage:
    """Lose the connection as :class:`Disconnect` does, publish ``missed`` messages, then
    reconnect as :class:`Reconnect` does."""

    side: str
    how: str
    missed: int
    racing: int
    spacing: int


@dataclasses.dataclass(frozen=True)
class Settle:
    """Wait until the client has caught up, if it is connected."""


@dataclasses.dataclass(frozen=True)
class Turns:
    """Let the event loop run ``count`` turns: deliveries land part way."""

    count: int


Operation = Publish | Disconnect | Reconnect | CutJoin | Outage | Settle | Turns


@dataclasses.dataclass(frozen=True)
class Case:
    """One example: how the rooms are set up, and what happens."""

    size: int
    """The history window: ``Retention(size=size)``, without ttl."""
    genesis: bool
    """Whether the room was published to before the client's first join. If not, a room
    left by every member is forgotten, and the next join sees a new epoch."""
    lag: int
    """Turns of the event loop each broker call takes."""
    slow: SlowPolicy | None
    """The slow policy, with ``max_backlog=0``: a member catching up with a publication
    held back is behind, and misses the next ones (``"drop"``: its client sees a gap and
    joins again) or is closed with 1013 (``"close"``: its client reconnects). ``None``: the
    default policy and backlog, which nothing here reaches."""
    ops: list[Operation]


def operations(size: int) -> st.SearchStrategy[list[Operation]]:
    counts = st.integers(1, size + 3)  # around the window: within it, at it, past it
    sides = st.sampled_from(["client", "server"])
    hows = st.sampled_from(["close", "abort"])
    within = st.integers(1, size)  # missed while disconnected: recoverable, unless racing
    beyond = st.integers(size + 1, size + 3)  # not recoverable
    racing = st.integers(0, size + 2)
    spacing = st.integers(0, 12)
    return st.lists(
        st.one_of(
            st.builds(Outage, sides, hows, within, racing, spacing),
            st.builds(Outage, sides, hows, beyond, racing, spacing),
            st.builds(Publish, counts, st.integers(0, 2)),
            st.builds(Disconnect, sides, hows),
            st.builds(Reconnect, racing, spacing),
            st.builds(CutJoin, st.integers(0, 6)),
            st.just(Settle()),
            st.builds(Turns, st.integers(1, 8)),
        ),
        min_size=1,
        max_size=12,
    )


# The server: a broker with latency, and an application that records its connections, so
# that tests can close them from its side.


class LaggyBroker(MemoryBroker):
    """A memory broker whose calls for a join take ``lag`` turns of the event loop before and
    after they act, as a remote broker's do: publications then land while a member joins,
    before and after its history is read (with ``lag=0``, they cannot). Publishing is left
    immediate, so that several publications can land within one such call."""

    def __init__(self, lag: int) -> None:
        super().__init__()
        self.lag = lag

    async def _turns(self) -> None:
        for _ in range(self.lag):
            await asyncio.sleep(0)

    async def subscribe(self, room: str) -> None:
        await self._turns()
        await super().subscribe(room)
        await self._turns()

    async def add_presence(self, room: str, member: str, info: Any) -> None:
        await self._turns()
        await super().add_presence(room, member, info)
        await self._turns()

    async def history(self, room: str, since: Position | None) -> Any:
        await self._turns()
        history = await super().history(room, since)
        await self._turns()
        return history


class RecordingRPC(RPC):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.connections: list[Any] = []

    async def __call__(self, connection: Any) -> None:
        self.connections.append(connection)
        await super().__call__(connection)


# The client: the recovery algorithm of socketeer.js, for one room.


@dataclasses.dataclass
class Join:
    """A ``$/room/join`` sent, and its answer once received."""

    connection: int
    since: Position | None
    answer: Position | None = None
    recovered: bool | None = None


@dataclasses.dataclass
class Reset:
    """``onReset``: publications after ``since`` up to ``to`` are lost to the client."""

    since: Position | None
    to: Position
    join: Join


class Client:
    """One subscription to :data:`ROOM`, over successive connections."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.position: Position | None = None
        """The last publication delivered, or where the first join began."""
        self.held: dict[Position, Any] = {}
        self.join: Join | None = None
        """The join in flight on the current connection."""
        self.joined = False
        self.ws: Any = None
        self.reader: asyncio.Task[None] | None = None
        self.answered: asyncio.Future[None] | None = None
        self.next_id = 0
        self.joins: dict[int, Join] = {}
        # What happened, for the checks.
        self.log: list[tuple[str, Any]] = []
        """("deliver", (position, data)) and ("reset", Reset), in order."""
        self.wire: list[list[Position]] = []
        """Per connection, the positions of the publications received, as received."""
        self.rejoined: set[int] = set()
        """Connections on which a second join was sent (docs/pubsub.md: a client that joins
        twice at once may get some publications twice)."""
        self.problems: list[str] = []

    @property
    def connected(self) -> bool:
        return self.ws is not None

    # Connections

    async def connect(self) -> asyncio.Future[None]:
        """Open a connection and send the join; return the future of its answer."""
        ws = await socketeer.connect(self.url, subprotocols=[SUBPROTOCOL])
        self.ws = ws
        self.wire.append([])
        self.reader = asyncio.create_task(self._read(ws, len(self.wire) - 1))
        return await self._send_join()

    async def close(self, how: str) -> None:
        """Lose the connection from this side."""
        ws = self.ws
        if how == "abort":
            ws.transport.abort()
        else:
            await ws.close()
        await self.wait_lost()

    async def wait_lost(self) -> None:
        """Wait until the connection is lost and noticed."""
        reader = self.reader
        assert reader is not None
        await asyncio.wait_for(asyncio.shield(reader), STEP)

    async def _read(self, ws: Any, connection: int) -> None:
        try:
            async for message in ws:
                incoming = parse(message)
                items = incoming.items if isinstance(incoming, Batch) else (incoming,)
                for item in items:
                    await self._receive_item(item, connection)
        except ConnectionClosed:
            pass
        finally:
            self._lost()

    def _lost(self) -> None:
        """The connection was lost: the join and the held publications go with it."""
        self.ws = None
        self.join = None
        self.joined = False
        self.held.clear()
        if self.answered is not None and not self.answered.done():
            self.answered.set_result(None)

    async def _receive_item(self, item: Any, connection: int) -> None:
        if isinstance(item, Notification) and item.method == MESSAGE_METHOD:
            await self._receive(item.params, connection)
        elif isinstance(item, Response) and isinstance(item.id, int) and item.id in self.joins:
            await self._join_answered(self.joins[item.id], item.result)
        else:
            self.problems.append(f"unexpected message on connection {connection}: {item!r}")

    # Joins

    async def _send_join(self) -> asyncio.Future[None]:
        self.next_id += 1
        connection = len(self.wire) - 1
        if self.join is not None or self.joined:
            self.rejoined.add(connection)
        join = self.joins[self.next_id] = Join(connection, self.position)
        self.join = join
        self.answered = asyncio.get_running_loop().create_future()
        params: dict[str, Any] = {"room": ROOM}
        if self.position is not None:
            params["since"] = {"epoch": self.position.epoch, "offset": self.position.offset}
        try:
            await self.ws.send(serialize(Request(JOIN_METHOD, params, self.next_id)))
        except ConnectionClosed:
            pass  # the reader notices
        return self.answered

    async def _join_answered(self, join: Join, result: Any) -> None:
        at = Position(result["epoch"], result["offset"])
        join.answer, join.recovered = at, result["recovered"]
        if self.join is not join:
            return  # lost with its connection
        if self.answered is not None and not self.answered.done():
            self.answered.set_result(None)
        self.join = None
        self.joined = True
        position = self.position
        lost = position is not None and (
            position.epoch != at.epoch or (not join.recovered and position.offset < at.offset)
        )
        if position is None or lost:
            self.position = at  # a first join starts at the answer; a loss resumes there
        if lost:
            self.log.append(("reset", Reset(position, at, join)))
        self._deliver_held()
        current = self.position
        assert current is not None
        if current.epoch == at.epoch and current.offset < at.offset:
            # The server sends everything up to the answer before it, yet some did not come.
            self.log.append(("reset", Reset(current, at, join)))
            self.position = at
            self._deliver_held()
        # Held publications of another epoch or at or below the position are stale; others
        # follow a gap: join again.
        current = self.position
        assert current is not None
        self.held = {
            held: data
            for held, data in self.held.items()
            if held.epoch == current.epoch and held.offset > current.offset
        }
        if self.held:
            await self._send_join()

    # Publications

    async def _receive(self, params: Any, connection: int) -> None:
        publication = Position(params["epoch"], params["offset"])
        self.wire[connection].append(publication)
        if params["room"] != ROOM:
            self.problems.append(f"publication of another room: {params!r}")
            return
        if self.join is None and not self.joined:
            return  # not joined: the next join recovers it
        position = self.position
        if position is not None and publication.epoch == position.epoch:
            if publication.offset <= position.offset:
                return  # a duplicate
            if publication.offset == position.offset + 1:
                self._deliver(publication, params["data"])
                self._deliver_held()
                return
        # Out of order: held until a join answers; on a joined room, a gap: join again.
        self.held[publication] = params["data"]
        if self.join is None:
            await self._send_join()

    def _deliver_held(self) -> None:
        while True:
            position = self.position
            assert position is not None
            following = Position(position.epoch, position.offset + 1)
            if following not in self.held:
                return
            self._deliver(following, self.held.pop(following))

    def _deliver(self, publication: Position, data: Any) -> None:
        self.position = publication
        self.log.append(("deliver", (publication, data)))


# The scenario.


class Scenario:
    def __init__(
        self, rooms: Rooms, app: RecordingRPC, client: Client, slow: SlowPolicy | None
    ) -> None:
        self.rooms = rooms
        self.app = app
        self.client = client
        self.slow = slow
        self.published: list[tuple[Position, str]] = []

    async def publish(self, count: int, spacing: int = 0) -> None:
        for _ in range(count):
            data = f"m{len(self.published)}"
            position = await self.rooms.publish(ROOM, data)
            self.published.append((position, data))
            for _ in range(spacing):
                await asyncio.sleep(0)

    async def run(self, operation: Operation) -> None:
        client = self.client
        if isinstance(operation, Publish):
            await self.publish(operation.count, operation.spacing)
        elif isinstance(operation, Disconnect):
            await self.disconnect(operation.side, operation.how)
        elif isinstance(operation, Reconnect):
            await self.reconnect_racing(operation.racing, operation.spacing)
        elif isinstance(operation, Outage):
            await self.disconnect(operation.side, operation.how)
            await self.publish(operation.missed)
            await self.reconnect_racing(operation.racing, operation.spacing)
        elif isinstance(operation, CutJoin):
            if client.connected:
                return
            await client.connect()
            for _ in range(operation.turns):
                await asyncio.sleep(0)
            if client.ws is not None:  # not lost meanwhile
                await client.close("abort")
        elif isinstance(operation, Settle):
            if client.connected:
                await self.settle()
        else:
            for _ in range(operation.count):
                await asyncio.sleep(0)

    async def disconnect(self, side: str, how: str) -> None:
        client = self.client
        if not client.connected:
            return
        if side == "client":
            await client.close(how)
            return
        # The client's connection, as the server sees it: the latest from its address.
        connection = next(
            connection
            for connection in reversed(self.app.connections)
            if connection.remote_address == client.ws.local_address
        )
        if how == "abort":
            connection.transport.abort()
        else:  # as the slow policy does
            await connection.close(CloseCode.TRY_AGAIN_LATER, "too slow")
        await client.wait_lost()

    async def reconnect_racing(self, racing: int, spacing: int) -> None:
        """Reconnect; once the join is sent, publish while the server serves it."""
        if self.client.connected:
            return
        answered = await self.client.connect()
        await asyncio.gather(asyncio.wait_for(answered, STEP), self.publish(racing, spacing))

    async def reconnect(self) -> None:
        answered = await self.client.connect()
        await asyncio.wait_for(answered, STEP)

    async def settle(self) -> None:
        """Wait until the client delivered the last publication (or a reset skipped it), or
        lost its connection (to the ``"close"`` policy)."""
        client = self.client
        if self.slow == "drop" and client.connected:
            # A publication dropped last shows no gap until the next one: publish one more,
            # once the client is live (it is when its join is answered).
            await self.wait(lambda: client.join is None or not client.connected, "joined")
            if client.connected:
                await self.publish(1)
        if self.published:
            last = self.published[-1][0]
            await self.wait(lambda: client.position == last or not client.connected, f"at {last}")

    async def wait(self, condition: Callable[[], bool], what: str) -> None:
        async def poll() -> None:
            turns = 0
            while not condition():
                turns += 1
                await asyncio.sleep(MS if turns % 16 == 0 else 0)

        try:
            await asyncio.wait_for(poll(), STEP)
        except TimeoutError:
            raise AssertionError(
                f"client stuck at {self.client.position}, not {what}; "
                f"last publication at {self.published[-1][0] if self.published else None}"
            ) from None


async def play(case: Case) -> Scenario:
    broker, retention = LaggyBroker(case.lag), Retention(size=case.size)
    if case.slow is None:
        rooms = Rooms(broker, retention=retention)
    else:
        rooms = Rooms(broker, retention=retention, slow=case.slow, max_backlog=0)
    app = RecordingRPC(rooms=rooms)
    async with rooms, socketeer.serve(app, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        client = Client(url)
        scenario = Scenario(rooms, app, client, case.slow)
        if case.genesis:
            await scenario.publish(1)
        await scenario.reconnect()
        for operation in case.ops:
            await scenario.run(operation)
        for _ in range(3):  # the "close" policy may close the client while it catches up
            if not client.connected:
                await scenario.reconnect()
            await scenario.settle()
            if client.connected:
                break
        assert client.connected, "closed on every attempt to catch up"
        await client.close("close")
    return scenario


# The invariants.


def check(scenario: Scenario, case: Case) -> None:
    size = case.size
    client = scenario.client
    published = dict(scenario.published)
    assert not client.problems, client.problems

    # All publications in one epoch, offsets from 1: a room that keeps a history without
    # ttl is never forgotten once published to.
    epochs = {position.epoch for position, _ in scenario.published}
    assert len(epochs) <= 1, f"publications in several epochs: {epochs}"
    assert [p.offset for p, _ in scenario.published] == list(range(1, len(published) + 1))
    epoch = epochs.pop() if epochs else None

    def index(position: Position | None) -> int:
        """Where a position falls among the publications: -1 before any."""
        if position is None or position.epoch != epoch:
            assert position is None or position.offset == 0, f"unknown position {position}"
            return -1
        return position.offset - 1

    # Each join: recovered exactly when the history window held everything after since.
    joins = [join for join in client.joins.values() if join.answer is not None]
    for join in joins:
        since, at = join.since, join.answer
        assert at is not None
        if since is None:
            assert join.recovered is True, join
        elif since.epoch == at.epoch:
            assert at.offset >= since.offset, join
            assert join.recovered is (at.offset - since.offset <= size), (
                f"{join}: {at.offset - since.offset} missed, window of {size}"
            )
        else:
            # Another epoch: only a room never published to may be forgotten meanwhile.
            assert join.recovered is False, join
            assert index(since) == -1, join

    # Offsets strictly increase and never repeat on the wire of each connection: the server
    # sends each publication once, in order, without gaps, from the join's position on.
    for connection, received in enumerate(client.wire):
        if connection in client.rejoined or not received:
            continue
        indexes = [index(position) for position in received]
        if case.slow is not None:  # publications are dropped: in order, each once
            assert indexes == sorted(set(indexes)), f"connection {connection}: {received}"
            continue
        start = indexes[0]
        join = next(join for join in client.joins.values() if join.connection == connection)
        if join.answer is not None:
            start = index(join.since if join.since and join.recovered else join.answer) + 1
        assert indexes == list(range(start, start + len(indexes))), (
            f"connection {connection}, joined with {join}, received {received}"
        )

    # The client: resets only when a join said recovered: false; deliveries strictly in
    # order, each once, intact; every publication after the first join's position delivered
    # but those a reset skipped.
    first = next(join for join in joins if join.since is None)
    skipped: set[int] = set()
    last = index(first.answer)
    delivered: list[int] = []
    for kind, event in client.log:
        if kind == "reset":
            assert event.join.recovered is False, (
                f"reset after a join that recovered: {event.join}, missing after {event.since}"
            )
            skipped.update(range(index(event.since) + 1, index(event.to) + 1))
            last = index(event.to)
        else:
            position, data = event
            assert index(position) > last, f"{position} delivered after {last + 1}"
            assert published[position] == data
            last = index(position)
            delivered.append(last)
    expected = [
        i for i in range(index(first.answer) + 1, len(scenario.published)) if i not in skipped
    ]
    assert delivered == expected


# The property.


@st.composite
def cases(draw: st.DrawFn) -> Case:
    size = draw(st.sampled_from([3, 1, 5, 2, 8]))  # uniform, unlike small integers
    genesis = draw(st.booleans())
    lag = draw(st.sampled_from([0, 1, 4, 10]))
    slow: SlowPolicy | None = draw(st.sampled_from([None, None, "drop", "close"]))
    return Case(size, genesis, lag, slow, draw(operations(size)))


@st.composite
def slow_cases(draw: st.DrawFn) -> Case:
    """Members behind (``max_backlog=0``) while publications race their joins, through a
    broker slow enough for several to land meanwhile: under ``"drop"``, clients see gaps
    while connected and join again on the same connection; under ``"close"``, they are
    closed while catching up."""
    size = draw(st.sampled_from([2, 4, 8, 20]))
    sides = st.sampled_from(["client", "server"])
    hows = st.sampled_from(["close", "abort"])
    outages = st.builds(
        Outage, sides, hows, st.integers(0, size), st.integers(2, 10), st.integers(1, 6)
    )
    ops: st.SearchStrategy[list[Operation]] = st.lists(
        outages | st.builds(Publish, st.integers(1, 5), st.integers(0, 3)) | st.just(Settle()),
        min_size=1,
        max_size=8,
    )
    slow: SlowPolicy = draw(st.sampled_from(["drop", "close"]))
    return Case(size, draw(st.booleans()), draw(st.sampled_from([2, 4, 10])), slow, draw(ops))


def run(case: Case) -> None:
    scenario = asyncio.run(play(case))
    note(f"published={scenario.published}")
    note(f"joins={list(scenario.client.joins.values())}")
    note(f"log={scenario.client.log}")
    check(scenario, case)


HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]


@settings(max_examples=100, deadline=None, suppress_health_check=HEALTH)
@given(cases())
def test_recovery(case: Case) -> None:
    run(case)


@settings(max_examples=40, deadline=None, suppress_health_check=HEALTH)
@given(slow_cases())
def test_recovery_with_slow_members(case: Case) -> None:
    run(case)
