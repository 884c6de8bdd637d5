"""One end of an RPC connection: :class:`Peer` calls the other end and answers it.

A peer drives the codec of :mod:`socketeer.rpc.messages` over one asyncio connection, with
the public connection API only (``recv``, ``send``, ``close``, ``wait_closed``). The server
makes one per connection (``serve(rpc, ...)``), the client one per :func:`connect`; both are
callers and callees, so the same class does both.

Theory of operation
-------------------

**Reading.** :meth:`Peer.run` is the only reader: it receives a message, parses it, and
handles each item (a batch's in order) without waiting:

- a response settles the outgoing call waiting for it (:class:`PendingCalls`);
- what can be answered at once is answered at once: ``$/ping``, ``rpc.discover``, a name
  the grammar refuses or that is not registered (-32601), params that do not fit the
  signature (-32602), an invalid message (-32600, -32700);
- ``$/cancel`` cancels the call it names;
- a call to run (a request or a notification for a registered method or listener, or a
  request for one of the reserved methods that the layers above gave the peer, such as
  ``$/room/join``) becomes a *job* and joins the *backlog*.

**Running.** A job runs in a task of its own, once one of ``max_concurrency`` slots is free;
the slot is taken until the job's answer is written (so that a peer that does not read its
answers stops its own calls). The reader does not read the next message while jobs wait in
the backlog or while every slot is taken: the connection's own flow control then leaves
further messages in its bounded queue and in the TCP buffers, and memory stays bounded.

There is one exception, without which jobs that call the other end back would deadlock
with every slot taken (the answers they wait for come after calls that wait for a slot):
while outgoing calls wait for their answers, the reader goes on reading. The backlog then
holds at most ``max(max_concurrency, max_batch)`` jobs, and a call that finds it full is
answered at once with -32603 ("too many calls"; a notification is dropped and logged)
instead of being kept. So at most ``max_concurrency`` jobs run and at most that many more
(or a batch) wait; and a batch read while nothing waits always fits.

**A job's life.** queued (in the backlog) → started (its task exists) → executing (the
method runs) → answering (its answer is being written) → done. ``$/cancel`` drops a queued
job, marks a started one so that it does not run, and cancels the task of an executing one;
a cancelled call is never answered. The execution timeout cancels an executing job's task
too, which answers -32001. The calls of a serial route take its lock while executing, one at
a time. Answers to a batch are collected and sent as one array once the last one is known.

**Outgoing calls** get an id from :class:`PendingCalls`, a future, and a timer for their
timeout. A response completes the future; a timeout or the caller's cancellation removes
the id and sends ``$/cancel`` (in a background task: a cancelled caller cannot wait for a
write), so that a late response finds nothing and is ignored.

**Closing.** When the connection closes (``recv`` raises), or :meth:`Peer.run` is
cancelled, the peer stops: queued jobs are dropped, outgoing calls fail with
:exc:`~socketeer.exceptions.ConnectionLost`, executing jobs are cancelled and awaited, then
the route instances' ``on_close`` run, in the order the instances were made. Nobody could
read the answers of the cancelled calls.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import dataclasses
import functools
import inspect
import re
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypedDict, TypeGuard, TypeVar

from ..asyncio.connection import Connection
from ..exceptions import CallTimeout, ConnectionClosed, ConnectionLost, InvalidState, RPCError
from ..protocol.frames import CloseCode
from ..typedefs import Data, JSONValue, LoggerLike, Subprotocol
from .access import Action, Authorize, Forbidden, RateLimit, RateLimited
from .messages import (
    CANCEL_METHOD,
    DISCOVER_METHOD,
    MAX_BATCH,
    PING_METHOD,
    RESERVED_METHODS,
    Batch,
    ErrorResponse,
    Invalid,
    Item,
    Notification,
    Params,
    PendingCalls,
    Request,
    RequestId,
    Response,
    application_error,
    call_cancelled,
    call_timeout,
    forbidden,
    internal_error,
    invalid_params,
    invalid_request,
    is_reserved_method_name,
    is_valid_method_name,
    method_not_found,
    parse,
    rate_limited,
    serialize,
)
from .routes import (
    DEFAULT,
    InvalidArguments,
    Method,
    Route,
    RouteClass,
    Routes,
    Timeout,
    check_method_name,
)

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "Peer",
    "PeerOptions",
    "PeerOptionsDict",
    "Proxy",
    "current_peer",
    "SUBPROTOCOL",
    "MAX_CONCURRENCY",
    "DEFAULT_EXECUTION_TIMEOUT",
    "DEFAULT_CALL_TIMEOUT",
]

SUBPROTOCOL = Subprotocol("socketeer.rpc.v1")
"""The subprotocol of socketeer's RPC: clients offer it, servers select it."""

MAX_CONCURRENCY = 64
"""Calls from the other end that run at once on one connection, by default."""

DEFAULT_EXECUTION_TIMEOUT = 60.0
"""Seconds a call from the other end may run before it is cancelled and answered -32001."""

DEFAULT_CALL_TIMEOUT = 30.0
"""Seconds a call to the other end waits for its answer before raising CallTimeout."""


def _check_seconds(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, got {value!r}")
    if not value > 0:  # NaN too
        raise ValueError(f"{name} must be positive or None, got {value}")


def _check_count(name: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PeerOptions:
    """How a peer runs the calls it receives and makes its own.

    Raises:
        TypeError, ValueError: if an option has the wrong type or value.
    """

    debug: bool = False
    """Add the traceback to the data of application errors (-32000). Don't enable it where
    callers are not trusted: tracebacks show code and paths."""
    max_concurrency: int = MAX_CONCURRENCY
    """Calls (and notifications) from the other end that run at once; beyond, reading from
    the connection pauses."""
    execution_timeout: float | None = DEFAULT_EXECUTION_TIMEOUT
    """Seconds a call from the other end may run (a method may set its own); then it is
    cancelled and answered -32001. ``None`` for no limit."""
    call_timeout: float | None = DEFAULT_CALL_TIMEOUT
    """Seconds a call to the other end waits for its answer (a call may set its own); then
    it raises :exc:`~socketeer.exceptions.CallTimeout`. ``None`` for no limit."""
    max_batch: int | None = MAX_BATCH
    """The most messages in a received batch; a longer one is refused whole with -32600.
    ``None`` for no limit."""

    def __post_init__(self) -> None:
        if not isinstance(self.debug, bool):
            raise TypeError(f"debug must be a bool, got {self.debug!r}")
        _check_count("max_concurrency", self.max_concurrency, optional=False)
        _check_seconds("execution_timeout", self.execution_timeout)
        _check_seconds("call_timeout", self.call_timeout)
        _check_count("max_batch", self.max_batch, optional=True)

    @classmethod
    def split(cls, kwargs: Mapping[str, Any]) -> tuple[PeerOptions, dict[str, Any]]:
        """The options in ``kwargs``, and the other arguments."""
        names = {field.name for field in dataclasses.fields(cls)}
        options = {name: value for name, value in kwargs.items() if name in names}
        others = {name: value for name, value in kwargs.items() if name not in names}
        return cls(**options), others


class PeerOptionsDict(TypedDict, total=False):
    """The keyword arguments of :class:`~socketeer.rpc.RPC`: the fields of
    :class:`PeerOptions`, with the same names and types."""

    debug: bool
    max_concurrency: int
    execution_timeout: float | None
    call_timeout: float | None
    max_batch: int | None


_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
T_co = TypeVar("T_co", covariant=True)

_current_peer: contextvars.ContextVar[Peer] = contextvars.ContextVar("socketeer.rpc.peer")


def current_peer() -> Peer:
    """The peer whose call is running: for a method registered as a function, to call the
    other end back (a route has :attr:`Route.peer`)::

        @rpc.method
        async def save(document):
            ...
            await current_peer().notify("saved", document["id"])

    Raises:
        LookupError: outside of a call (and of what it started without a new context).
    """
    try:
        return _current_peer.get()
    except LookupError:
        raise LookupError("no RPC call is running here") from None


# Outgoing calls


@dataclasses.dataclass(eq=False)
class _Outgoing:
    method: str
    future: asyncio.Future[Any]


CallParams = Sequence[object] | Mapping[str, object] | None
"""The params of an outgoing call: positional (a sequence), named (a mapping), or none."""


def _params(params: CallParams) -> Params:
    if params is None or isinstance(params, Mapping):
        return params  # type: ignore[return-value]  # serialize() checks the values
    if isinstance(params, (str, bytes, bytearray)):
        raise TypeError(f"params must be a sequence or a mapping, not {type(params).__name__}")
    return tuple(params)  # type: ignore[arg-type]


def _check_call_name(method: str) -> None:
    if not isinstance(method, str):
        raise TypeError(f"method name must be a str, got {method!r}")
    if not (is_valid_method_name(method) or is_reserved_method_name(method)):
        raise ValueError(f"invalid method name {method!r}")


# Incoming calls: jobs and replies


class _Stop:
    """Why an executing job was stopped."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_CANCELLED = _Stop("cancelled")  # by $/cancel
_TIMED_OUT = _Stop("timed out")  # by the execution timeout


class _Reply:
    """The answer to one received message: a text, or a batch's array, sent once complete."""

    __slots__ = ("batch", "texts", "waiting", "sealed")

    def __init__(self, batch: bool) -> None:
        self.batch = batch
        self.texts: list[str] = []
        self.waiting = 0  # jobs that will answer
        self.sealed = False  # every item of the message was seen

    def add(self, text: str) -> None:
        """An answer known at once."""
        self.texts.append(text)

    def expect(self) -> None:
        """A job will answer (or not, if cancelled) with :meth:`done`."""
        self.waiting += 1

    def done(self, text: str | None) -> str | None:
        """A job's answer (``None``: it was cancelled); the text to send, if complete."""
        self.waiting -= 1
        if text is not None:
            self.texts.append(text)
        return self.complete()

    def seal(self) -> str | None:
        """Every item was seen; the text to send, if complete."""
        self.sealed = True
        return self.complete()

    def complete(self) -> str | None:
        if not self.sealed or self.waiting or not self.texts:
            return None
        texts, self.texts = self.texts, []
        return f"[{','.join(texts)}]" if self.batch else texts[0]


Listener = Callable[..., object]
"""A notification listener: ``fn(*args)`` or ``fn(**kwargs)``; a coroutine is awaited."""


@dataclasses.dataclass(eq=False)
class _Job:
    message: Request | Notification
    method: Method | None  # None: a notification for listeners only
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    reply: _Reply | None  # None for a notification
    listeners: list[Listener]
    task: asyncio.Task[None] | None = None
    started: bool = False
    executing: bool = False
    stop: _Stop | None = None

    @property
    def id(self) -> RequestId:
        return self.message.id if isinstance(self.message, Request) else None


if sys.version_info >= (3, 11):

    def _cancelling(task: asyncio.Task[Any]) -> bool:
        return task.cancelling() > 0

    def _uncancel(task: asyncio.Task[Any]) -> None:
        task.uncancel()

else:  # pragma: no cover - Python 3.10

    def _cancelling(task: asyncio.Task[Any]) -> bool:
        return False

    def _uncancel(task: asyncio.Task[Any]) -> None:
        pass


def _check_reserved(reserved: Mapping[str, Method] | None) -> dict[str, Method]:
    methods = dict(reserved or {})
    for name, method in methods.items():
        if not is_reserved_method_name(name) or name in RESERVED_METHODS:
            raise ValueError(f"{name!r} is not a reserved name free for the layers above")
        if method.name != name:
            raise ValueError(f"method {method.name} given as {name}")
    return methods


def _printable_name(name: str) -> str:
    """A name from the other end, for messages: at most 128 characters, no controls."""
    name = name if len(name) <= 128 else name[:128] + "…"
    return name if name.isprintable() else repr(name)


def _valid_id(value: object) -> TypeGuard[RequestId]:
    return value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool))


class Peer:
    """One end of an RPC connection: it calls the other end and answers its calls.

    Servers make one per connection and clients get one from :func:`~socketeer.rpc.connect`;
    methods reach theirs with :func:`current_peer` or :attr:`Route.peer`. See the module's
    theory of operation.

    Args:
        connection: an open connection.
        routes: the methods the other end may call; none if ``None``.
        options: how calls run; ``PeerOptions()`` if ``None``.
        reserved: methods served under reserved names, for the layers above: the
            :class:`~socketeer.rpc.RPC` application gives its peers the ``$/room/`` methods
            of its rooms. Of the reserved names, only these (and the protocol's own,
            ``$/ping``, ``$/cancel``, ``rpc.discover``) are reachable; they run as jobs, as
            the methods of ``routes`` do, but only when requested (a notification for one is
            ignored), and ``rpc.discover`` does not list them.
        user: who the other end is: what :class:`~socketeer.rpc.RPC`'s ``authenticate``
            hook answered (:mod:`socketeer.rpc.access`).
        authorize: asked before each call the other end makes (``"call"`` and the
            method's name) and by :meth:`check_access`; see :mod:`socketeer.rpc.access`.
        call_limit: the rate limit of the calls and notifications the other end makes.

    Raises:
        ValueError: if a name of ``reserved`` is not reserved, is the protocol's own, or is
            not its method's name.
    """

    def __init__(
        self,
        connection: Connection,
        routes: Routes | None = None,
        options: PeerOptions | None = None,
        *,
        reserved: Mapping[str, Method] | None = None,
        user: object = None,
        authorize: Authorize | None = None,
        call_limit: RateLimit | None = None,
    ) -> None:
        self.connection = connection
        """The WebSocket connection."""
        self.routes = Routes() if routes is None else routes
        """The methods the other end may call, shared by every peer of a server."""
        self.options = PeerOptions() if options is None else options
        """The options."""
        self._reserved = _check_reserved(reserved)
        self.user = user
        """Who the other end is: what the application's ``authenticate`` hook answered,
        ``None`` without one (:mod:`socketeer.rpc.access`)."""
        self._authorize = authorize
        self.logger: LoggerLike = connection.logger
        self._loop = asyncio.get_running_loop()
        self._registered = Routes()  # this peer's own methods: register()
        self._listeners: dict[str, list[Listener]] = {}
        self._calls: PendingCalls[_Outgoing] = PendingCalls()
        self._backlog: collections.deque[_Job] = collections.deque()
        self._cancellable: dict[RequestId, _Job] = {}  # by id: queued, started, executing
        self._tasks: dict[asyncio.Task[None], _Job] = {}
        self._busy = 0
        self._wakeup = asyncio.Event()
        self._instances: dict[RouteClass, Route] = {}
        self._locks: dict[RouteClass, asyncio.Lock] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._started = False
        self._stopping = False
        self._connection_closed = False
        self._close_watcher: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._proxy: Proxy[Awaitable[Any]] = Proxy(self, "")
        self._calls_bucket = None if call_limit is None else call_limit.bucket(self._loop.time())

    # Calling the other end

    async def call(self, method: str, /, *args: object, **kwargs: object) -> Any:
        """Call ``method`` with positional or named arguments (not both), and the default
        timeout (:attr:`PeerOptions.call_timeout`); return its result.

        ``await peer.call("add", 1, 2)``, ``await peer.call("counter.increment", by=2)``.
        The result is what JSON decoding gives: :class:`dict`, :class:`list`, :class:`str`,
        :class:`int`, :class:`float`, :class:`bool` or ``None``.

        Raises:
            RemoteError: if the other end answered with an error; ``.code``, ``.type_name``
                and ``.data`` say which.
            CallTimeout: if no answer came in time; ``$/cancel`` was sent.
            ConnectionLost: if the connection closed before the answer came (the call may
                have run) or was closed already.
            TypeError: if the arguments are both positional and named, or are not JSON.
            ValueError: if ``method`` is not a valid method name, or an argument is a value
                JSON cannot carry.
        """
        if args and kwargs:
            raise TypeError("JSON-RPC params are positional or named, not both")
        return await self.call_with(method, kwargs or args or None)

    async def call_with(
        self, method: str, params: CallParams = None, *, timeout: Timeout = DEFAULT
    ) -> Any:
        """Call ``method`` with explicit ``params`` and, if given, a timeout of its own.

        Args:
            method: the method name.
            params: a sequence (positional), a mapping (named), or ``None`` (none).
            timeout: seconds to wait for the answer, ``None`` for no limit; by default
                :attr:`PeerOptions.call_timeout`.

        Raises:
            The exceptions of :meth:`call`. Cancelling the waiting task sends ``$/cancel``.
        """
        _check_call_name(method)
        if timeout is DEFAULT:
            timeout = self.options.call_timeout
        else:
            _check_seconds("timeout", timeout)
        if self._stopping:
            raise self._lost(method)
        future: asyncio.Future[Any] = self._loop.create_future()
        id = self._calls.add(_Outgoing(method, future))
        try:
            text = serialize(Request(method, _params(params), id))
        except BaseException:
            self._calls.pop(id)
            raise
        self._wakeup.set()  # the reader may have to read on, for the answer
        timer = None
        if timeout is not None:
            timer = self._loop.call_later(timeout, self._expire, id, timeout)
        try:
            try:
                await self.connection.send(text)
            except ConnectionClosed as exc:
                self._calls.pop(id)
                raise self._lost(method) from exc
            return await future
        except asyncio.CancelledError:
            if self._calls.pop(id) is not None:
                self._cancel_remote(id)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    async def notify(self, method: str, /, *args: object, **kwargs: object) -> None:
        """Send a notification: a call that is never answered.

        Raises:
            ConnectionClosed: if the connection is closed.
            TypeError, ValueError: as :meth:`call`.
        """
        if args and kwargs:
            raise TypeError("JSON-RPC params are positional or named, not both")
        _check_call_name(method)
        params: CallParams = kwargs or args or None
        await self.connection.send(serialize(Notification(method, _params(params))))

    @property
    def proxy(self) -> Proxy[Awaitable[Any]]:
        """Calls by attribute: ``await peer.proxy.counter.increment(by=2)`` is
        ``await peer.call("counter.increment", by=2)``."""
        return self._proxy

    def _expire(self, id: int, timeout: float) -> None:
        call = self._calls.pop(id)
        if call is not None and not call.future.done():
            # The task that sends $/cancel runs first: before the caller, which may call
            # again at once, learns of the timeout.
            self._cancel_remote(id)
            call.future.set_exception(CallTimeout(call.method, timeout))

    def _cancel_remote(self, id: RequestId) -> None:
        """Tell the other end that the call ``id`` was given up."""
        if self._stopping:
            return
        text = serialize(Notification(CANCEL_METHOD, {"id": id}))
        task = self._loop.create_task(self._send(text))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _lost(self, method: str) -> ConnectionLost:
        code = self.connection.close_code
        reason = self.connection.close_reason
        if code is None:
            return ConnectionLost(method, CloseCode.ABNORMAL_CLOSURE, "")
        return ConnectionLost(method, code, reason or "")

    # Being called

    def register(self, name: str, function: Callable[..., Any]) -> Callable[[], None]:
        """Let the other end call ``function`` as ``name`` on this connection only.

        Clients use it for the calls servers make; see :meth:`Routes.method` for how
        functions run and how their arguments are checked.

        Returns:
            A function that unregisters it.

        Raises:
            ValueError: if ``name`` is not a valid method name, is reserved, or is taken
                (here or in :attr:`routes`).
            TypeError: if ``function`` has no signature :mod:`inspect` can read.
        """
        method = Method.from_function(name, function)
        if name in self.routes:
            raise ValueError(f"method {name} is registered already")
        self._registered.add(method)

        def unregister() -> None:
            if self._registered.get(name) is method:
                self._registered.remove(name)

        return unregister

    def on(self, method: str, listener: Listener) -> Callable[[], None]:
        """Run ``listener`` for each notification ``method`` from the other end.

        It gets positional params as arguments and named params as keyword arguments; a
        coroutine is awaited. Listeners of one notification run one after the other, in
        the order they were added, then a method registered under that name, if any. What
        they raise is logged.

        Returns:
            A function that removes it.

        Raises:
            ValueError: if ``method`` is not a valid method name, or is reserved.
        """
        check_method_name(method)
        return self._listen(method, listener)

    def _listen(self, method: str, listener: Listener) -> Callable[[], None]:
        """:meth:`on` without checking the name: for the layers above (``$/room/...``)."""
        if not callable(listener):
            raise TypeError(f"{method}: a callable is needed, got {listener!r}")
        listeners = self._listeners.setdefault(method, [])
        # Wrapped, so that the same function may listen twice and be removed once.
        entry: Listener = functools.partial(listener)
        listeners.append(entry)

        def remove() -> None:
            if entry in listeners:
                listeners.remove(entry)
            if not listeners and self._listeners.get(method) is listeners:
                del self._listeners[method]

        return remove

    def discover(self) -> list[JSONValue]:
        """The answer to ``rpc.discover``: the methods the other end may call."""
        methods = [*self._registered, *self.routes]
        return [method.describe() for method in methods]

    def _lookup(self, name: str) -> Method | None:
        # Routes.get() finds no reserved name, self._reserved nothing else.
        return self._registered.get(name) or self.routes.get(name) or self._reserved.get(name)

    # Running

    async def run(self) -> None:
        """Read and answer messages until the connection closes, then clean up.

        The server's handler and :func:`~socketeer.rpc.connect` run it; a peer made by hand
        needs it too. See the module's theory of operation.

        Raises:
            InvalidState: if it runs already, or ran.
        """
        if self._started:
            raise InvalidState("peer runs already")
        self._started = True
        await self._run()

    async def _run(self) -> None:
        _current_peer.set(self)  # for on_close
        try:
            while True:
                if not self._can_read():
                    await self._wait_readable()
                try:
                    message = await self.connection.recv()
                except ConnectionClosed:
                    break
                for text in self._receive(message):
                    await self._send(text)
        finally:
            await self._stop()

    def start(self) -> None:
        """Run :meth:`run` in a task; :meth:`close` waits for it.

        Raises:
            InvalidState: if it runs already, or ran.
        """
        if self._started:
            raise InvalidState("peer runs already")
        self._started = True
        self._reader = self._loop.create_task(self._run())
        self._reader.add_done_callback(self._reader_done)

    def _reader_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.logger.error("RPC peer failed", exc_info=task.exception())

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the connection and wait until the peer stopped (see :meth:`wait_closed`)."""
        await self.connection.close(code, reason)
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the peer stopped: its calls failed or were cancelled, and the routes'
        ``on_close`` ran. Returns at once if it never ran."""
        if self._started:
            await self._closed.wait()

    @property
    def closed(self) -> bool:
        """Whether the peer stopped."""
        return self._closed.is_set()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _can_read(self) -> bool:
        if self._connection_closed:
            return True  # read what is left, until recv() raises
        if self._calls:
            return True  # the answers to our own calls may be next
        return not self._backlog and self._busy < self.options.max_concurrency

    @property
    def _backlog_limit(self) -> int:
        # A batch read when the backlog is empty always fits (max_batch permitting).
        return max(self.options.max_concurrency, self.options.max_batch or 0)

    async def _wait_readable(self) -> None:
        if self._close_watcher is None:
            self._close_watcher = self._loop.create_task(self._watch_close())
        while not self._can_read():
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _watch_close(self) -> None:
        await self.connection.wait_closed()
        self._connection_closed = True
        self._wakeup.set()

    async def _send(self, text: str) -> None:
        try:
            await self.connection.send(text)
        except ConnectionClosed:
            pass  # nobody to tell any more

    async def _stop(self) -> None:
        self._stopping = True
        self._backlog.clear()
        self._cancellable.clear()
        for call in self._calls.pop_all():
            if not call.future.done():
                call.future.set_exception(self._lost(call.method))
        tasks = [*self._tasks, *self._background]
        if self._close_watcher is not None:
            tasks.append(self._close_watcher)
        for task in tasks:
            task.cancel()
        try:
            if tasks:
                await asyncio.wait(tasks)
            instances = list(self._instances.values())
            self._instances.clear()
            for instance in instances:
                await self._close_route(instance)
        finally:
            self._closed.set()

    async def _close_route(self, instance: Route) -> None:
        try:
            result = instance.on_close()
            if inspect.isawaitable(result):
                await result
        except Exception:
            self.logger.error("%s.on_close failed", type(instance).__qualname__, exc_info=True)

    # Access

    async def check_access(self, action: Action, name: str) -> None:
        """Ask the application's ``authorize`` hook whether the other end may do
        ``action`` on ``name`` (a method, a room); nothing to do without a hook.

        Raises:
            Forbidden: if it may not; raised from a method, it answers the call -32003.
        """
        if self._authorize is None:
            return
        allowed = self._authorize(self, action, name)
        if inspect.isawaitable(allowed):
            allowed = await allowed
        if allowed is not True:
            if allowed is not False:
                raise TypeError(
                    f"authorize must return True or False, got {type(allowed).__name__}"
                )
            raise Forbidden(f"{action} {_printable_name(name)} not allowed")

    def _over_limit(self) -> float:
        """Take a call from the other end's rate limit: 0.0 if it may go on, else the seconds
        until it may."""
        bucket = self._calls_bucket
        return 0.0 if bucket is None else bucket.take(self._loop.time())

    # Receiving

    def _receive(self, message: Data) -> list[str]:
        """Handle a message; return the texts to send now."""
        incoming = parse(
            message, binary=isinstance(message, bytes), max_batch=self.options.max_batch
        )
        batch = isinstance(incoming, Batch)
        items = incoming.items if isinstance(incoming, Batch) else (incoming,)
        reply = _Reply(batch)
        outbox: list[str] = []
        for item in items:
            self._receive_item(item, reply, outbox)
            self._pump()
        text = reply.seal()
        if text is not None:
            outbox.append(text)
        return outbox

    def _receive_item(self, item: Item, reply: _Reply, outbox: list[str]) -> None:
        if isinstance(item, Request):
            self._on_request(item, reply)
        elif isinstance(item, Notification):
            self._on_notification(item, outbox)
        elif isinstance(item, (Response, ErrorResponse)):
            self._on_response(item)
        else:
            self._on_invalid(item, reply)

    def _on_response(self, response: Response | ErrorResponse) -> None:
        call = self._calls.pop(response.id)
        if call is None:
            if isinstance(response, ErrorResponse) and response.id is None:
                error = response.error
                self.logger.warning(
                    "the other end reported an error: %s",
                    error.to_exception(),
                )
            return  # a late answer to a call that timed out or was cancelled
        if call.future.done():
            return
        if isinstance(response, Response):
            call.future.set_result(response.result)
        else:
            call.future.set_exception(response.error.to_exception())

    def _on_invalid(self, item: Invalid, reply: _Reply) -> None:
        reply.add(serialize(item.response))
        if item.in_reply_to is None:
            return
        call = self._calls.pop(item.in_reply_to)
        if call is not None and not call.future.done():
            call.future.set_exception(
                RPCError(f"invalid response to call {call.method}: {item.error.data}")
            )

    def _on_request(self, request: Request, reply: _Reply) -> None:
        id, name = request.id, request.method
        if self._calls_bucket is not None:
            retry_after = self._over_limit()
            if retry_after:
                reply.add(serialize(rate_limited(id, retry_after)))
                return
        if name == PING_METHOD:
            reply.add(serialize(Response(id, "pong")))
            return
        if name == DISCOVER_METHOD:
            reply.add(serialize(Response(id, self.discover())))
            return
        method = self._lookup(name)
        if method is None:
            reply.add(serialize(method_not_found(id, name)))
            return
        if id in self._cancellable:
            detail = f"id {id!r} is used by a call that has not finished"
            reply.add(serialize(invalid_request(id, detail)))
            return
        try:
            args, kwargs = method.bind(request.params)
        except InvalidArguments as exc:
            reply.add(serialize(invalid_params(id, str(exc))))
            return
        if len(self._backlog) >= self._backlog_limit:
            detail = f"too many calls: {len(self._backlog)} wait for one of {self._busy} to end"
            reply.add(serialize(internal_error(id, detail)))
            return
        reply.expect()
        job = _Job(request, method, args, kwargs, reply, [])
        self._cancellable[id] = job
        self._backlog.append(job)

    def _on_notification(self, notification: Notification, outbox: list[str]) -> None:
        name = notification.method
        if name == CANCEL_METHOD:
            self._on_cancel(notification.params, outbox)
            return
        if self._calls_bucket is not None and self._over_limit():
            self._dropped("over the rate limit", name)
            return
        listeners = list(self._listeners.get(name, ()))
        method = None if is_reserved_method_name(name) else self._lookup(name)
        args: tuple[Any, ...] = ()
        kwargs: dict[str, Any] = {}
        if method is not None:
            try:
                args, kwargs = method.bind(notification.params)
            except InvalidArguments as exc:
                self.logger.warning("notification %s ignored: %s", name, exc)
                method = None
        if method is None and listeners:
            params = notification.params
            if isinstance(params, tuple):
                args = params
            elif params is not None:
                kwargs = dict(params)
        if method is None and not listeners:
            return  # nobody listens: notifications are never answered
        if len(self._backlog) >= self._backlog_limit:
            self.logger.warning("notification %s dropped: too many calls wait", name)
            return
        self._backlog.append(_Job(notification, method, args, kwargs, None, listeners))

    def _on_cancel(self, params: Params, outbox: list[str]) -> None:
        id = params.get("id") if isinstance(params, Mapping) else None
        if not _valid_id(id):
            return
        job = self._cancellable.pop(id, None)
        if job is None or job.stop is not None:
            return  # finished already, or never came
        job.stop = _CANCELLED
        if job.task is None:
            self._backlog.remove(job)
            assert job.reply is not None  # requests only are cancellable
            text = job.reply.done(None)
            if text is not None:
                outbox.append(text)
        elif job.executing:
            job.task.cancel()
        # else: started, not yet executing; the job sees .stop and does not run

    # Running jobs

    def _pump(self) -> None:
        """Start queued jobs while slots are free."""
        backlog = self._backlog
        while backlog and self._busy < self.options.max_concurrency and not self._stopping:
            job = backlog.popleft()
            self._busy += 1
            task = self._loop.create_task(self._run_job(job))
            job.task = task
            self._tasks[task] = job
            task.add_done_callback(self._job_done)

    def _job_done(self, task: asyncio.Task[None]) -> None:
        job = self._tasks.pop(task)
        self._busy -= 1
        if self._cancellable.get(job.id) is job:
            del self._cancellable[job.id]
        if not task.cancelled() and task.exception() is not None:
            self.logger.error("RPC job failed", exc_info=task.exception())
        self._pump()
        self._wakeup.set()

    async def _run_job(self, job: _Job) -> None:
        _current_peer.set(self)
        job.started = True
        text = None if job.stop is not None else await self._execute(job)
        if self._cancellable.get(job.id) is job:
            del self._cancellable[job.id]  # too late to cancel: the answer is known
        if job.reply is not None:
            reply = job.reply.done(text)
            if reply is not None:
                await self._send(reply)

    async def _execute(self, job: _Job) -> str | None:
        """Run the job's listeners and method; return its answer, if any."""
        timeout = self.options.execution_timeout
        if job.method is not None and job.method.timeout is not DEFAULT:
            timeout = job.method.timeout
        timer = None
        if timeout is not None:
            timer = self._loop.call_later(timeout, self._time_out, job)
        job.executing = True
        task = asyncio.current_task()
        assert task is not None
        try:
            if (
                self._authorize is not None
                and job.method is not None
                and job.message.method not in self._reserved
            ):
                await self.check_access("call", job.message.method)
            result = await self._invoke(job)
        except asyncio.CancelledError:
            if self._stopping or (job.stop is None and _cancelling(task)):
                raise
            if job.stop is not None:
                _uncancel(task)
            return self._stopped(job, timeout)
        except Exception as exc:
            if job.stop is not None:
                return self._stopped(job, timeout)
            return self._failed(job, exc)
        finally:
            job.executing = False
            if timer is not None:
                timer.cancel()
        if job.stop is not None:  # the method caught the cancellation and returned
            _uncancel(task)
            return self._stopped(job, timeout)
        return self._result(job, result)

    def _time_out(self, job: _Job) -> None:
        if job.executing and job.stop is None and job.task is not None:
            job.stop = _TIMED_OUT
            job.task.cancel()

    async def _invoke(self, job: _Job) -> Any:
        for listener in job.listeners:
            try:
                result = listener(*job.args, **job.kwargs)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self.logger.error(
                    "listener of notification %s failed", job.message.method, exc_info=True
                )
        method = job.method
        if method is None:
            return None
        route = method.route
        if route is None:
            return await _call(method.function, job.args, job.kwargs)
        if not route.serial:
            return await _call(method.function, (self._instance(route), *job.args), job.kwargs)
        lock = self._locks.setdefault(route, asyncio.Lock())
        async with lock:
            return await _call(method.function, (self._instance(route), *job.args), job.kwargs)

    def _instance(self, route: RouteClass) -> Route:
        """The connection's instance of a class route: made on its first call."""
        instance = self._instances.get(route)
        if instance is None:
            instance = self._instances[route] = route.cls(self)
        return instance

    def _stopped(self, job: _Job, timeout: float | None) -> str | None:
        """The answer of a job that was cancelled (None) or timed out, or that cancelled
        itself."""
        if job.stop is _CANCELLED:
            return None
        if job.reply is None:
            self.logger.warning(
                "notification %s was %s", job.message.method, job.stop or "cancelled"
            )
            return None
        if job.stop is _TIMED_OUT:
            assert timeout is not None
            return serialize(call_timeout(job.id, timeout))
        return serialize(call_cancelled(job.id))

    def _failed(self, job: _Job, exc: Exception) -> str | None:
        if isinstance(exc, (Forbidden, RateLimited)):
            if job.reply is None:
                self._dropped(str(exc), job.message.method)
                return None
            if isinstance(exc, Forbidden):
                return serialize(forbidden(job.id, str(exc)))
            return serialize(rate_limited(job.id, exc.retry_after))
        if job.reply is None:
            self.logger.error("notification %s failed", job.message.method, exc_info=exc)
            return None
        return serialize(application_error(job.id, exc, debug=self.options.debug))

    def _dropped(self, why: str, name: str) -> None:
        # INFO, not WARNING: the other end decides how often this happens.
        self.logger.info("notification %s dropped: %s", _printable_name(name), why)

    def _result(self, job: _Job, result: Any) -> str | None:
        if job.reply is None:
            return None
        try:
            return serialize(Response(job.id, result))
        except (TypeError, ValueError) as exc:
            detail = f"result of {job.message.method} is not JSON: {exc}"
            self.logger.error("%s", detail)
            return serialize(internal_error(job.id, detail))


async def _call(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    result = function(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


class _Caller(Protocol[T_co]):
    def call(self, method: str, /, *args: object, **kwargs: object) -> T_co: ...


class Proxy(Generic[T_co]):
    """Method names from attribute paths: see :attr:`Peer.proxy`; calling one calls the
    peer's ``call`` (this peer's, or a blocking :class:`socketeer.rpc.sync.Peer`'s).

    Only identifiers build names (``[A-Za-z][A-Za-z0-9_]*``): other attributes, such as
    those starting with ``_``, raise :exc:`AttributeError`. Use :meth:`Peer.call` for a name
    that is also an attribute of this class.
    """

    __slots__ = ("_peer", "_path")

    def __init__(self, peer: _Caller[T_co], path: str) -> None:
        self._peer = peer
        self._path = path

    def __getattr__(self, name: str) -> Proxy[T_co]:
        if not _IDENTIFIER.fullmatch(name):
            raise AttributeError(name)
        return Proxy(self._peer, f"{self._path}.{name}" if self._path else name)

    def __call__(self, *args: object, **kwargs: object) -> T_co:
        if not self._path:
            raise TypeError("peer.proxy is not a method: call peer.proxy.name(...)")
        return self._peer.call(self._path, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<Proxy {self._path or '(root)'}>"
