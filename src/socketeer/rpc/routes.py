"""What a peer may call: the table of methods, its exposure rules, and argument checks.

:class:`Routes` maps method names to Python callables. Register functions with
:meth:`Routes.method` and classes with :meth:`Routes.route`; a :class:`~socketeer.rpc.Peer`
looks names up with :meth:`Routes.get`. (:class:`~socketeer.rpc.RPC`, the application that
``serve()`` runs, is a :class:`Routes`.) ::

    rpc = socketeer.rpc.RPC()

    @rpc.method
    async def add(a: int, b: int) -> int:
        return a + b

    @rpc.route("counter")
    class Counter(Route):
        def __init__(self, peer):
            super().__init__(peer)
            self.value = 0

        def increment(self, by=1):
            self.value += by
            return self.value

Exposure rules
--------------

Only what is registered is reachable. The table is built once, when something is registered:
each name maps to one function object, chosen then. A call checks its name against the
grammar of ``docs/rpc-protocol.md`` (ASCII identifiers joined by dots, none starting with
``_``, at most 128 characters), then finds it in that table or answers -32601. Nothing is
looked up with ``getattr`` when a call comes, so no dotted name walks to an attribute.

A class route registered as ``counter`` exposes ``counter.<name>`` for each plain function
(``def`` or ``async def``) that the class body of the route class defines, or that the class
body of one of its bases defines if that base subclasses :class:`Route` (a shared base of
routes); the class that Python's attribute lookup would find decides. Never exposed:

- names that the grammar refuses, so every name starting with ``_``;
- the members of :class:`Route` and :class:`object` (``peer``, ``on_close``, ``__init__``,
  ...), even when the class overrides them;
- what is not a plain function in the class body: static methods, class methods (they
  reach no per-connection state, and a class method reaches state every connection shares),
  properties and other descriptors, attributes, nested classes;
- instance attributes, and whatever they lead to (``counter.peer.close``).

A public function whose name the grammar refuses (``def café(self)``) raises
:exc:`ValueError` at registration, rather than being silently left out.

Arguments
---------

Positional params are passed positionally, named params by keyword, and checked against the
function's signature first: a call that does not fit answers -32602 with ``data`` saying
which parameter (``missing argument 'x'``, ``unexpected argument 'y'``, ``too many
positional arguments``), and the function does not run. Annotations are not checked.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar, overload

from ..typedefs import JSONValue
from .messages import (
    MAX_METHOD_NAME_LENGTH,
    Params,
    is_reserved_method_name,
    is_valid_method_name,
)

if TYPE_CHECKING:
    from .peer import Peer

__all__ = [
    "Route",
    "Routes",
    "Method",
    "RouteClass",
    "DEFAULT",
    "Timeout",
    "InvalidArguments",
    "check_method_name",
]

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R", bound="type[Route]")


class _Default(enum.Enum):
    DEFAULT = "default"


DEFAULT = _Default.DEFAULT
"""The timeout of a method that sets none of its own: the peer's ``execution_timeout``."""

Timeout: TypeAlias = float | None | Literal[_Default.DEFAULT]
"""An execution timeout in seconds, ``None`` for none, or :data:`DEFAULT`."""

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


class InvalidArguments(ValueError):
    """The params of a call do not fit the method's signature: answered with -32602.

    ``str(exc)`` says which parameter, as ``docs/rpc-protocol.md`` words it.
    """


class Route:
    """The base class of class routes: each connection gets its own instance.

    The instance is made on the connection's first call to one of the route's methods, with
    ``cls(peer)``, and kept until the connection closes; then :meth:`on_close` runs. Subclass
    it, define methods, and register the class with :meth:`Routes.route`; see the module's
    exposure rules. A subclass that defines ``__init__`` takes ``peer`` and passes it on::

        def __init__(self, peer: Peer) -> None:
            super().__init__(peer)
            self.value = 0

    Args:
        peer: the connection's :class:`~socketeer.rpc.Peer`.
    """

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        """The connection's :class:`~socketeer.rpc.Peer`: ``await self.peer.call(...)``
        calls the other end back, ``await self.peer.notify(...)`` sends it a notification."""

    async def on_close(self) -> None:
        """The connection closed (calls still running were cancelled first).

        Override it to release what the instance holds. A plain ``def`` works too. What it
        raises is logged.
        """


# Names a route never exposes, even when the class overrides them: computed when a route is
# registered, so that members added to Route later are covered too.
def _route_members() -> frozenset[str]:
    return frozenset(dir(Route)) | {"peer"}


@dataclasses.dataclass(frozen=True, eq=False)
class RouteClass:
    """A registered class route."""

    name: str
    """Its name: the prefix of its methods' names."""
    cls: type[Route]
    """The :class:`Route` subclass; ``cls(peer)`` makes the instance of a connection."""
    serial: bool
    """Whether the calls of one connection run one at a time, in the order they came."""


@dataclasses.dataclass(frozen=True, eq=False)
class Method:
    """A registered callable and its signature.

    Use :meth:`from_function` for a function and :meth:`Routes.route` for a class route.
    """

    name: str
    """The method name callers use."""
    function: Callable[..., Any]
    """What runs: ``function(*args, **kwargs)``, or ``function(instance, *args, **kwargs)``
    for the method of a class route."""
    signature: inspect.Signature
    """The parameters callers pass (without ``self`` for the method of a class route)."""
    route: RouteClass | None = None
    """The class route the method belongs to, if any."""
    timeout: Timeout = DEFAULT
    """Execution timeout in seconds; ``None`` for none; :data:`DEFAULT` for the peer's."""
    self_name: str | None = None
    """The name of the ``self`` parameter of the method of a class route."""

    @classmethod
    def from_function(
        cls, name: str, function: Callable[..., Any], *, timeout: Timeout = DEFAULT
    ) -> Method:
        """Describe ``function``, to be called as ``name``.

        Raises:
            ValueError: if ``name`` does not follow the grammar or is reserved.
            TypeError: if ``function`` is not callable or has no signature.
        """
        check_method_name(name)
        if not callable(function):
            raise TypeError(f"{name}: a callable is needed, got {function!r}")
        return cls(name, function, _signature(name, function), timeout=_check_timeout(timeout))

    def bind(self, params: Params) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The positional and keyword arguments for ``params``.

        Raises:
            InvalidArguments: if they do not fit the signature.
        """
        if params is None:
            args: tuple[Any, ...] = ()
            kwargs: dict[str, Any] = {}
        elif isinstance(params, tuple):
            args, kwargs = params, {}
        else:
            args, kwargs = (), dict(params)
        _check_arguments(self.signature, args, kwargs, self.self_name)
        return args, kwargs

    def describe(self) -> dict[str, JSONValue]:
        """Its entry in the answer to ``rpc.discover``."""
        params: list[JSONValue] = []
        for parameter in self.signature.parameters.values():
            entry: dict[str, JSONValue] = {
                "name": parameter.name,
                "kind": parameter.kind.name.lower(),
            }
            if parameter.default is not parameter.empty and _is_json(parameter.default):
                entry["default"] = parameter.default
            params.append(entry)
        doc = inspect.getdoc(self.function)
        first_line = doc.strip().splitlines()[0] if doc and doc.strip() else None
        return {"name": self.name, "params": params, "doc": first_line}


class Routes:
    """A table of methods; see the module's exposure rules.

    Names are unique: registering one twice raises :exc:`ValueError`.
    """

    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}

    # Registering

    @overload
    def method(self, function: F, /) -> F: ...

    @overload
    def method(
        self, name: str | None = None, /, *, timeout: Timeout = DEFAULT
    ) -> Callable[[F], F]: ...

    def method(
        self, name_or_function: str | F | None = None, /, *, timeout: Timeout = DEFAULT
    ) -> F | Callable[[F], F]:
        """Register a function (sync or async), under its own name or the name given.

        ``@rpc.method``, ``@rpc.method("math.add")``, ``@rpc.method(timeout=5)``. The
        function is returned unchanged.

        A plain ``def`` runs in the event loop, as a callback would: keep it quick, or make it
        ``async def`` and move blocking work to a thread (:func:`asyncio.to_thread`). The
        execution timeout cancels only what awaits.

        Args:
            name_or_function: the function; or the name to call it by (its ``__name__`` if
                ``None``), then the decorator is returned.
            timeout: execution timeout in seconds for this method, ``None`` for none;
                the peer's ``execution_timeout`` by default.

        Raises:
            ValueError: if the name does not follow the grammar, is reserved (``rpc.``,
                ``$/``), or is taken.
            TypeError: if the function has no signature that :mod:`inspect` can read.
        """
        _check_timeout(timeout)
        if name_or_function is not None and not isinstance(name_or_function, str):
            return self._add_function(name_or_function, None, timeout)
        name = name_or_function
        if name is not None:
            check_method_name(name)

        def decorator(function: F) -> F:
            return self._add_function(function, name, timeout)

        return decorator

    def _add_function(self, function: F, name: str | None, timeout: Timeout) -> F:
        if name is None:
            name = getattr(function, "__name__", None)
            if not isinstance(name, str):
                raise TypeError(f"{function!r} has no __name__: give a name")
        self.add(Method.from_function(name, function, timeout=timeout))
        return function

    def route(
        self, name: str, /, *, serial: bool = False, timeout: Timeout = DEFAULT
    ) -> Callable[[R], R]:
        """Register a class route under ``name``: a class decorator.

        Its methods are reached as ``name.method``; see the module's exposure rules. The class
        is returned unchanged.

        Args:
            name: the prefix of its methods' names, e.g. ``counter`` or ``game.board``.
            serial: run the calls of one connection one at a time, in the order they came
                (each waits for the previous one to finish, and the wait counts toward its
                execution timeout), instead of concurrently. A serial route's method that
                calls the other end must not wait for it to call the same route back: that
                call would wait for the first one.
            timeout: execution timeout of its methods in seconds, ``None`` for none; the
                peer's ``execution_timeout`` by default.

        Raises:
            ValueError: if ``name`` does not follow the grammar or is reserved, if a method's
                name does not follow it or is taken, or if the class exposes no method.
            TypeError: if the class does not subclass :class:`Route`, or a method takes no
                ``self``.
        """
        check_method_name(name)
        if is_reserved_method_name(f"{name}."):
            raise ValueError(f"route name {name!r} is reserved: its methods would start with rpc.")
        _check_timeout(timeout)

        def decorator(cls: R) -> R:
            if not (isinstance(cls, type) and issubclass(cls, Route)):
                raise TypeError(f"{name}: a subclass of Route is needed, got {cls!r}")
            route = RouteClass(name, cls, serial)
            methods = [_route_method(route, n, f, timeout) for n, f in _exposed(cls)]
            if not methods:
                raise ValueError(f"{cls.__qualname__} exposes no method")
            for method in methods:
                self._check_free(method.name)
            for method in methods:
                self._methods[method.name] = method
            return cls

        return decorator

    def add(self, method: Method) -> None:
        """Register a :class:`Method`.

        Raises:
            ValueError: if its name is taken.
        """
        self._check_free(method.name)
        self._methods[method.name] = method

    def remove(self, name: str) -> None:
        """Unregister the method ``name``; nothing happens if there is none."""
        self._methods.pop(name, None)

    def _check_free(self, name: str) -> None:
        if name in self._methods:
            raise ValueError(f"method {name} is registered already")

    # Looking up

    def get(self, name: str) -> Method | None:
        """The method called ``name``, or ``None``: for every name the grammar refuses, and
        every name that was not registered."""
        if not is_valid_method_name(name):
            return None
        return self._methods.get(name)

    def __iter__(self) -> Iterator[Method]:
        """The methods, in the order they were registered."""
        return iter(list(self._methods.values()))

    def __len__(self) -> int:
        return len(self._methods)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None


def check_method_name(name: object) -> None:
    """Check a name to register.

    Raises:
        TypeError: if ``name`` is not a :class:`str`.
        ValueError: if ``name`` does not follow the grammar of method names, or is reserved.
    """
    if not isinstance(name, str):
        raise TypeError(f"method name must be a str, got {name!r}")
    if is_reserved_method_name(name):
        raise ValueError(f"method name {name!r} is reserved: names starting with rpc. or $/")
    if not is_valid_method_name(name):
        raise ValueError(
            f"invalid method name {name!r}: ASCII identifiers joined by dots, each "
            f"[A-Za-z][A-Za-z0-9_]*, at most {MAX_METHOD_NAME_LENGTH} characters"
        )


def _check_timeout(timeout: Timeout) -> Timeout:
    if timeout is DEFAULT or timeout is None:
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, got {timeout!r}")
    if not timeout > 0:  # NaN too
        raise ValueError(f"timeout must be positive or None, got {timeout}")
    return timeout


def _signature(name: str, function: Callable[..., Any]) -> inspect.Signature:
    try:
        return inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: cannot read the signature of {function!r}") from exc


def _exposed(cls: type[Route]) -> Iterator[tuple[str, Callable[..., Any]]]:
    """The public functions of a route class, as the module's exposure rules say."""
    hidden = _route_members()
    seen: set[str] = set()
    for klass in cls.__mro__:
        # The class Python's attribute lookup finds a name in decides whether it is exposed.
        owner_exposes = klass is not Route and issubclass(klass, Route)
        for name, value in vars(klass).items():
            if name in seen:
                continue
            seen.add(name)
            if not owner_exposes or not inspect.isfunction(value):
                continue
            if name.startswith("_") or name in hidden:
                continue
            if not _IDENTIFIER.fullmatch(name):
                raise ValueError(
                    f"{klass.__qualname__}.{name}: method names are ASCII identifiers, "
                    "[A-Za-z][A-Za-z0-9_]*; rename it, or start it with _ to keep it private"
                )
            yield name, value


def _route_method(
    route: RouteClass, name: str, function: Callable[..., Any], timeout: Timeout
) -> Method:
    full_name = f"{route.name}.{name}"
    if not is_valid_method_name(full_name):
        raise ValueError(
            f"method name {full_name} is longer than {MAX_METHOD_NAME_LENGTH} characters"
        )
    signature = _signature(full_name, function)
    parameters = list(signature.parameters.values())
    if not parameters or parameters[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise TypeError(f"{route.cls.__qualname__}.{name} takes no self parameter")
    return Method(
        full_name,
        function,
        signature.replace(parameters=parameters[1:]),
        route=route,
        timeout=timeout,
        self_name=parameters[0].name,
    )


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _quoted(name: str) -> str:
    """A parameter name for an error message, clipped: it may come from the peer."""
    return repr(name if len(name) <= 64 else name[:64] + "…")


def _check_arguments(
    signature: inspect.Signature,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    self_name: str | None,
) -> None:
    """Check arguments as Python would bind them, with the messages of the contract.

    JSON-RPC params are positional or named, never both, so that no argument can be given
    twice, except ``self`` by name: that is refused here.
    """
    parameters = signature.parameters
    positional = [p for p in parameters.values() if p.kind in _POSITIONAL]
    var_positional = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters.values())
    var_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if len(args) > len(positional) and not var_positional:
        raise InvalidArguments("too many positional arguments")
    for name in kwargs:
        parameter = parameters.get(name)
        if name == self_name:
            raise InvalidArguments(f"unexpected argument {_quoted(name)}")
        if parameter is None or parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            if var_keyword:
                continue  # Python puts it in **kwargs
            raise InvalidArguments(f"unexpected argument {_quoted(name)}")
        if parameter.kind in _VARIADIC:
            if var_keyword:
                continue
            raise InvalidArguments(f"unexpected argument {_quoted(name)}")
    given = {p.name for p in positional[: len(args)]}
    for parameter in parameters.values():
        if parameter.kind in _VARIADIC or parameter.default is not parameter.empty:
            continue
        if parameter.name in given:
            continue
        if parameter.kind is not inspect.Parameter.POSITIONAL_ONLY and parameter.name in kwargs:
            continue
        raise InvalidArguments(f"missing argument {_quoted(parameter.name)}")


def _is_json(value: object) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return True
