"""The blocking RPC client: :func:`connect`, for threads rather than asyncio.

::

    with socketeer.rpc.sync.connect("ws://localhost:8000/rpc") as peer:
        peer.register("ui.flash", flash)           # the server may call it
        peer.on("news", print)                     # the server's notifications
        print(peer.call("add", 1, 2))
        print(peer.proxy.counter.increment(by=2))

Theory of operation
-------------------

It does not reimplement the protocol: a private event loop runs in one background thread
(``socketeer-rpc-sync``) and the asyncio client, :func:`socketeer.rpc.connect`, runs there,
with its :class:`~socketeer.rpc.Peer`. The methods of :class:`Peer` here submit coroutines
to that loop (:func:`asyncio.run_coroutine_threadsafe`) and wait for their outcome, so
timeouts, ``$/cancel``, flow control and the exceptions (:exc:`~socketeer.rpc.RemoteError`,
:exc:`~socketeer.rpc.CallTimeout`, :exc:`~socketeer.rpc.ConnectionLost`) are the asyncio
client's. Any thread may call at once.

Functions given to :meth:`Peer.register` and :meth:`Peer.on` are plain functions: each call
runs in a thread of a pool of ``max_concurrency`` threads (``socketeer-rpc-call``), so that
the loop goes on reading while they run; they may call the server back. ``$/cancel`` or the
execution timeout stops waiting for a function (nothing is answered, or -32001), but Python
cannot stop the thread: the function runs to its end and its result is dropped.
(An ``async def`` function runs in the loop instead, as with the asyncio client; it must not
call this blocking peer, which would wait for the loop it blocks: that raises
:exc:`RuntimeError`.)

A call interrupted in the calling thread (``KeyboardInterrupt``, i.e. Ctrl-C) is cancelled
as an asyncio call is: ``$/cancel`` is sent, and :meth:`Peer.close` sends it before the
connection closes. :meth:`Peer.close` (or leaving the ``with`` block) closes the connection,
waits for the functions still running, then stops the loop and its thread. When the server
goes away, calls raise :exc:`~socketeer.rpc.ConnectionLost`; the thread remains until
:meth:`~Peer.close`. Like the asyncio client, it does not reconnect.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ..exceptions import ConnectionLost
from ..protocol.frames import CloseCode
from .client import RPCConnectOptions
from .client import connect as connect_async
from .peer import CallParams, PeerOptions, Proxy
from .peer import Peer as AsyncPeer
from .routes import DEFAULT, Timeout

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

__all__ = ["connect", "Peer", "Proxy"]

T = TypeVar("T")

_worker = threading.local()  # .peer: the Peer whose function this pool thread runs


def connect(uri: str, **options: Unpack[RPCConnectOptions]) -> Peer:
    """Connect to an RPC server; return a blocking :class:`Peer`.

    ``with connect(url) as peer:`` closes it on exit; else call :meth:`Peer.close`, which
    stops its thread.

    Args:
        uri: the ``ws://`` or ``wss://`` URI.
        options: those of :func:`socketeer.rpc.connect`: the fields of
            :class:`~socketeer.rpc.PeerOptions` (e.g. ``call_timeout``) and the options of
            :func:`socketeer.connect` (e.g. ``open_timeout``, ``ssl``), except
            ``subprotocols``.

    Raises:
        The exceptions of :func:`socketeer.rpc.connect` and of opening a connection.
    """
    return Peer(uri, options)


class Peer:
    """The blocking end of an RPC connection, made by :func:`connect`: see the module's
    theory of operation. Its methods may be called from any thread but the loop's."""

    def __init__(self, uri: str, options: RPCConnectOptions) -> None:
        self._lock = threading.Lock()
        self._closing = False
        self._tasks: dict[object, asyncio.Task[Any]] = {}  # by ticket: the calls running
        self._interrupted: set[asyncio.Task[Any]] = set()  # calls to let cancel before close
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._proxy: Proxy[Any] = Proxy(self, "")
        self.loop = asyncio.new_event_loop()
        """The private event loop, which runs in :attr:`thread`."""
        self.thread = threading.Thread(
            target=self._run_loop, name="socketeer-rpc-sync", daemon=True
        )
        """The thread that runs the loop, from :func:`connect` to :meth:`close`."""
        self.thread.start()
        opening = asyncio.run_coroutine_threadsafe(self._open(uri, options), self.loop)
        try:
            self.peer: AsyncPeer = opening.result()
            """The asyncio peer that does the work; use it in the loop's thread only."""
        except BaseException:
            opening.cancel()
            self._stop_loop()
            raise
        self.options: PeerOptions = self.peer.options
        """The options of the peer."""
        self._executor = concurrent.futures.ThreadPoolExecutor(
            self.options.max_concurrency, thread_name_prefix="socketeer-rpc-call"
        )

    async def _open(self, uri: str, options: RPCConnectOptions) -> AsyncPeer:
        return await connect_async(uri, **options)

    def _run_loop(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            try:
                tasks = asyncio.all_tasks(loop)
                for task in tasks:
                    task.cancel()
                if tasks:
                    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())  # getaddrinfo's
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    def _stop_loop(self) -> None:
        if self.thread.is_alive():
            try:
                self.loop.call_soon_threadsafe(self.loop.stop)
            except RuntimeError:  # pragma: no cover - closed already
                pass
            self.thread.join()

    # Running in the loop

    def _check_thread(self) -> None:
        if threading.current_thread() is self.thread:
            raise RuntimeError(
                "a blocking RPC peer cannot be used in its own event loop: it would wait for "
                "itself; use .peer there"
            )

    def _run(self, coroutine: Coroutine[Any, Any, T], method: str) -> T:
        """Run ``coroutine`` in the loop and wait for it; cancel it if the wait is
        interrupted (``KeyboardInterrupt``)."""
        try:
            self._check_thread()
        except BaseException:
            coroutine.close()
            raise
        ticket = object()
        with self._lock:
            if self._closing:
                coroutine.close()
                raise self._lost(method)
            future = asyncio.run_coroutine_threadsafe(self._track(ticket, coroutine), self.loop)
        try:
            return future.result()
        except BaseException:
            if not future.done():
                future.cancel()
                try:
                    self.loop.call_soon_threadsafe(self._interrupt, ticket)
                except RuntimeError:  # pragma: no cover - the loop closed meanwhile
                    pass
            raise

    async def _track(self, ticket: object, coroutine: Coroutine[Any, Any, T]) -> T:
        task = asyncio.current_task()
        assert task is not None
        self._tasks[ticket] = task
        try:
            return await coroutine
        finally:
            del self._tasks[ticket]

    def _interrupt(self, ticket: object) -> None:
        """In the loop: cancel an interrupted call, and let :meth:`close` wait for it, so
        that its ``$/cancel`` goes out before the connection closes."""
        task = self._tasks.get(ticket)
        if task is not None and not task.done():
            task.cancel()
            self._interrupted.add(task)
            task.add_done_callback(self._interrupted.discard)

    def _lost(self, method: str) -> ConnectionLost:
        connection = self.peer.connection
        code = connection.close_code
        if code is None:
            return ConnectionLost(method, CloseCode.ABNORMAL_CLOSURE, "")
        return ConnectionLost(method, code, connection.close_reason or "")

    # Calling the other end

    def call(self, method: str, /, *args: object, **kwargs: object) -> Any:
        """Call ``method`` with positional or named arguments (not both), and the default
        timeout (:attr:`~socketeer.rpc.PeerOptions.call_timeout`); return its result.

        Raises:
            The exceptions of :meth:`socketeer.rpc.Peer.call`: :exc:`RemoteError`,
            :exc:`CallTimeout`, :exc:`ConnectionLost`, :exc:`TypeError`, :exc:`ValueError`.
            An interrupted call (``KeyboardInterrupt``) is cancelled: ``$/cancel`` is sent.
        """
        return self._run(self.peer.call(method, *args, **kwargs), method)

    def call_with(
        self, method: str, params: CallParams = None, *, timeout: Timeout = DEFAULT
    ) -> Any:
        """Call ``method`` with explicit ``params`` and, if given, a timeout of its own: see
        :meth:`socketeer.rpc.Peer.call_with`."""
        return self._run(self.peer.call_with(method, params, timeout=timeout), method)

    def notify(self, method: str, /, *args: object, **kwargs: object) -> None:
        """Send a notification: see :meth:`socketeer.rpc.Peer.notify`."""
        self._run(self.peer.notify(method, *args, **kwargs), method)

    @property
    def proxy(self) -> Proxy[Any]:
        """Calls by attribute: ``peer.proxy.counter.increment(by=2)`` is
        ``peer.call("counter.increment", by=2)``."""
        return self._proxy

    # Being called

    def register(self, name: str, function: Callable[..., Any]) -> Callable[[], None]:
        """Let the other end call ``function`` as ``name``: see
        :meth:`socketeer.rpc.Peer.register`. A plain function runs in a thread of the pool.

        Returns:
            A function that unregisters it.
        """
        wrapped = self._threaded(function)
        unregister = self._run(self._in_loop(self.peer.register, name, wrapped), name)
        return functools.partial(self._call_in_loop, unregister)

    def on(self, method: str, listener: Callable[..., object]) -> Callable[[], None]:
        """Run ``listener`` for each notification ``method``: see
        :meth:`socketeer.rpc.Peer.on`. A plain function runs in a thread of the pool.

        Returns:
            A function that removes it.
        """
        if not callable(listener):
            raise TypeError(f"{method}: a callable is needed, got {listener!r}")
        wrapped = self._threaded(listener)
        remove = self._run(self._in_loop(self.peer.on, method, wrapped), method)
        return functools.partial(self._call_in_loop, remove)

    def _threaded(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function``, made to run in a thread of the pool; its signature and docstring
        are kept (for argument checks and ``rpc.discover``)."""
        if not callable(function) or inspect.iscoroutinefunction(function):
            return function  # Method.from_function refuses what is not callable
        loop, executor = self.loop, self._executor

        def run(*args: Any, **kwargs: Any) -> Any:
            _worker.peer = self
            try:
                return function(*args, **kwargs)
            finally:
                _worker.peer = None

        @functools.wraps(function)
        def threaded(*args: Any, **kwargs: Any) -> asyncio.Future[Any]:
            context = contextvars.copy_context()
            call = functools.partial(context.run, run, *args, **kwargs)
            return loop.run_in_executor(executor, call)

        return threaded

    @staticmethod
    async def _in_loop(function: Callable[..., T], *args: Any) -> T:
        return function(*args)

    def _call_in_loop(self, function: Callable[[], None]) -> None:
        with self._lock:
            if self._closing:
                return  # nothing will call it any more
            future = asyncio.run_coroutine_threadsafe(self._in_loop(function), self.loop)
        future.result()

    # Closing

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the connection, wait for the functions still running, and stop the loop's
        thread. Calls waiting for answers raise :exc:`ConnectionLost`. Closing again does
        nothing.

        Called from one of the peer's own functions, it does not wait for them (nor for
        itself).
        """
        self._check_thread()
        with self._lock:
            if self._closing:
                return
            self._closing = True
        try:
            future = asyncio.run_coroutine_threadsafe(self._close(code, reason), self.loop)
            future.result()
        finally:
            self._stop_loop()
            if self._executor is not None:
                self._executor.shutdown(wait=getattr(_worker, "peer", None) is not self)

    async def _close(self, code: int, reason: str) -> None:
        if self._interrupted:
            await asyncio.wait(self._interrupted)
        await asyncio.sleep(0)  # the $/cancel of interrupted calls: sent in tasks of their own
        await self.peer.close(code, reason)

    @property
    def closed(self) -> bool:
        """Whether the peer stopped (the connection closed) or :meth:`close` was called."""
        return self._closing or self.peer.closed

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closing else "open"
        return f"<socketeer.rpc.sync.Peer {state}>"
