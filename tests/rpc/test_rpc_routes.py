"""The table of methods: registration, the exposure rules of class routes (tried every way
around, in the table and over a real connection), argument checks, and ``rpc.discover``."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from rpc_helpers import raw, recv_json, request, send_json, serving

from socketeer.rpc import RPC, InvalidArguments, Method, Peer, Route, Routes

# Registering functions


def test_method_registers_function_under_its_name() -> None:
    routes = Routes()

    @routes.method
    def add(a: int, b: int) -> int:
        return a + b

    method = routes.get("add")
    assert method is not None and method.function is add
    assert "add" in routes and len(routes) == 1
    assert add(1, 2) == 3  # returned unchanged


def test_method_with_name_and_timeout() -> None:
    routes = Routes()

    @routes.method("math.add", timeout=5)
    async def add(a: int, b: int) -> int:
        return a + b

    method = routes.get("math.add")
    assert method is not None and method.timeout == 5
    assert routes.get("add") is None


def test_method_with_timeout_only() -> None:
    routes = Routes()

    @routes.method(timeout=None)
    def forever() -> None:
        pass

    method = routes.get("forever")
    assert method is not None and method.timeout is None


@pytest.mark.parametrize(
    "name",
    [
        "",
        "_private",
        "__init__",
        "a..b",
        "a.",
        ".a",
        "a.b.",
        "1abc",
        "a-b",
        "a b",
        "café",
        "a.\u0661",  # ARABIC-INDIC DIGIT ONE
        "x" * 129,
        "a._b",
        "a.__class__",
    ],
)
def test_method_refuses_names_outside_the_grammar(name: str) -> None:
    with pytest.raises(ValueError, match="invalid method name"):
        Routes().method(name)(lambda: None)


@pytest.mark.parametrize("name", ["rpc.discover", "rpc.mine", "$/ping", "$/mine"])
def test_method_refuses_reserved_names(name: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        Routes().method(name)(lambda: None)


def test_method_refuses_a_taken_name() -> None:
    routes = Routes()
    routes.method("a")(lambda: 1)
    with pytest.raises(ValueError, match="method a is registered already"):
        routes.method("a")(lambda: 2)


def test_method_refuses_bad_timeout() -> None:
    with pytest.raises(ValueError, match="timeout must be positive"):
        Routes().method("a", timeout=0)
    with pytest.raises(TypeError, match="timeout must be a number"):
        Routes().method("a", timeout="1")  # type: ignore[call-overload]


def test_method_takes_callables_with_a_signature() -> None:
    class Adder:
        def __call__(self, a: int, b: int) -> int:
            return a + b

    routes = Routes()
    routes.method("adder")(Adder())
    method = routes.get("adder")
    assert method is not None and list(method.signature.parameters) == ["a", "b"]
    with pytest.raises(TypeError, match="has no __name__"):
        routes.method(Adder())
    with pytest.raises(TypeError, match="a callable is needed"):
        Method.from_function("x", 42)  # type: ignore[arg-type]


def test_remove() -> None:
    routes = Routes()
    routes.method("a")(lambda: 1)
    routes.remove("a")
    routes.remove("a")
    assert "a" not in routes


# Class routes: the exposure rules


class Base(Route):
    def shared(self) -> str:
        return "shared"

    def hidden_later(self) -> str:
        return "hidden"


class Counter(Base):
    limit = 10
    """A class attribute that is not a function."""
    hidden_later = None  # hides Base.hidden_later: what attribute lookup finds decides

    def __init__(self, peer: Peer) -> None:
        super().__init__(peer)
        self.value = 0
        self._state = {"secret": 42}

    def increment(self, by: int = 1) -> int:
        self.value += by
        return self.value

    async def get(self) -> int:
        return self.value

    def _private(self) -> str:
        return "private"

    def __secret__(self) -> str:
        return "secret"

    @staticmethod
    def static() -> str:
        return "static"

    @classmethod
    def klass(cls) -> str:
        return "class"

    @property
    def prop(self) -> int:
        return self.value

    async def on_close(self) -> None:
        CLOSED.append(self)

    class Nested:
        def method(self) -> str:
            return "nested"


class Mixin:
    def mixed(self) -> str:
        return "mixed"


class Mixed(Mixin, Route):
    def own(self) -> str:
        return "own"


CLOSED: list[Route] = []

EXPOSED = ["counter.increment", "counter.get", "counter.shared"]


def counter_routes() -> RPC:
    rpc = RPC()
    rpc.route("counter")(Counter)
    return rpc


def test_route_exposes_only_plain_functions_of_route_classes() -> None:
    assert [method.name for method in counter_routes()] == EXPOSED


def test_route_methods_know_their_route_and_drop_self() -> None:
    method = counter_routes().get("counter.increment")
    assert method is not None and method.route is not None
    assert method.route.cls is Counter and method.route.name == "counter"
    assert not method.route.serial
    assert list(method.signature.parameters) == ["by"]
    assert method.self_name == "self"


def test_route_ignores_classes_that_do_not_subclass_route() -> None:
    rpc = RPC()
    rpc.route("mixed")(Mixed)
    assert [method.name for method in rpc] == ["mixed.own"]


NOT_EXPOSED = [
    # Attributes that are not plain functions of a route class
    "counter.limit",
    "counter.hidden_later",
    "counter.static",
    "counter.klass",
    "counter.prop",
    "counter.Nested",
    "counter.Nested.method",
    "counter.value",
    # Members of Route and object, even overridden
    "counter.on_close",
    "counter.peer",
    "counter.peer.close",
    "counter.peer.call",
    "counter.peer.connection.close",
    "counter.peer.routes",
    "counter.__init__",
    "counter.__class__",
    "counter.__class__.__init__",
    "counter.__dict__",
    "counter.__reduce__",
    "counter.__getattribute__",
    "counter.mro",
    "counter.__subclasses__",
    # Private names
    "counter._private",
    "counter._state",
    "counter.__secret__",
    "counter.__secret",
    "counter._Counter__secret",
    # Names the grammar refuses
    "counter",
    "counter.",
    ".counter.increment",
    "counter..increment",
    "counter.increment.",
    "counter.increment.__call__",
    "counter.increment.__globals__",
    "counter.increment\n",
    "counter.increment ",
    " counter.increment",
    "counter.increment\x00",
    "counter/increment",
    "counter.increment()",
    "counter[increment]",
    "counter.increment\u0661",  # ARABIC-INDIC DIGIT ONE: a digit to str.isdigit()
    "counter.increment\uff11",  # FULLWIDTH DIGIT ONE
    "counter.incr\u0435ment",  # CYRILLIC SMALL LETTER IE, which looks like "e"
    "c\u043eunter.increment",  # CYRILLIC SMALL LETTER O
    "counter.\uff49ncrement",  # FULLWIDTH LATIN SMALL LETTER I
    "counter.increment\u200b",  # ZERO WIDTH SPACE
    "counter.\u212aincrement",  # KELVIN SIGN, which case-folds to k
    "Counter.increment",
    "COUNTER.INCREMENT",
    "counter.Increment",
    "counter." + "x" * 200,
    "counter.increment" + "." + "x" * 120,
    "x" * 10_000,
    "",
    "$/counter.increment",
    "rpc.counter.increment",
]


@pytest.mark.parametrize("name", NOT_EXPOSED)
def test_name_is_not_reachable(name: str) -> None:
    assert counter_routes().get(name) is None
    assert name not in counter_routes()


def test_route_with_unicode_method_name_is_refused_at_registration() -> None:
    class Cafe(Route):
        def café(self) -> None:
            pass

    with pytest.raises(ValueError, match=r"Cafe\.café: method names are ASCII identifiers"):
        RPC().route("cafe")(Cafe)


def test_route_with_too_long_method_name_is_refused() -> None:
    class Long(Route):
        def method(self) -> None:
            pass

    with pytest.raises(ValueError, match="longer than 128 characters"):
        RPC().route("x" * 125)(Long)


def test_route_without_self_is_refused() -> None:
    class NoSelf(Route):
        def method() -> None:  # type: ignore[misc]
            pass

    with pytest.raises(TypeError, match="takes no self parameter"):
        RPC().route("noself")(NoSelf)


def test_route_without_methods_is_refused() -> None:
    class Empty(Route):
        value = 1

    with pytest.raises(ValueError, match="exposes no method"):
        RPC().route("empty")(Empty)


def test_route_must_subclass_route() -> None:
    class NotARoute:
        def method(self) -> None:
            pass

    with pytest.raises(TypeError, match="a subclass of Route is needed"):
        RPC().route("x")(NotARoute)  # type: ignore[type-var]


@pytest.mark.parametrize("name", ["rpc", "$/x", "_x", "a..b", ""])
def test_route_refuses_bad_names(name: str) -> None:
    with pytest.raises(ValueError):
        RPC().route(name)


def test_route_refuses_taken_names_and_registers_nothing() -> None:
    rpc = RPC()
    rpc.method("counter.get")(lambda: 0)
    with pytest.raises(ValueError, match="counter.get is registered already"):
        rpc.route("counter")(Counter)
    assert [method.name for method in rpc] == ["counter.get"]


def test_dotted_route_names() -> None:
    rpc = RPC()
    rpc.route("game.board")(Counter)
    assert rpc.get("game.board.increment") is not None


# Over a connection: what a hostile client may try


async def test_unreachable_names_answer_method_not_found() -> None:
    CLOSED.clear()
    async with serving(counter_routes()) as url, raw(url) as ws:
        for id, name in enumerate(NOT_EXPOSED):
            await send_json(ws, request(name, id=id))
            answer = await recv_json(ws)
            assert answer["id"] == id
            assert answer["error"]["code"] == -32601, name
            expected = name if len(name) <= 128 else name[:128] + "…"
            assert answer["error"]["data"] == expected
        # Nothing ran: the instance was never even made.
        await send_json(ws, request("counter.get", id="last"))
        assert await recv_json(ws) == {"jsonrpc": "2.0", "result": 0, "id": "last"}
    assert len(CLOSED) == 1  # on_close ran once, when the connection closed


async def test_exposed_names_answer() -> None:
    async with serving(counter_routes()) as url, raw(url) as ws:
        for name, result in [
            ("counter.increment", 1),
            ("counter.get", 1),
            ("counter.shared", "shared"),
        ]:
            await send_json(ws, request(name))
            assert (await recv_json(ws))["result"] == result


async def test_self_cannot_be_passed_by_name() -> None:
    async with serving(counter_routes()) as url, raw(url) as ws:
        await send_json(ws, request("counter.increment", {"self": None, "by": 2}))
        error = (await recv_json(ws))["error"]
        assert (error["code"], error["data"]) == (-32602, "unexpected argument 'self'")


# Arguments


def bind(function: Any, params: Any) -> tuple[tuple[Any, ...], dict[str, Any]] | str:
    method = Method.from_function("m", function)
    try:
        return method.bind(params)
    except InvalidArguments as exc:
        return str(exc)


def f_ab(a: Any, b: Any = 2) -> None: ...
def f_posonly(a: Any, /, b: Any) -> None: ...
def f_kwonly(a: Any, *, k: Any) -> None: ...
def f_varargs(a: Any, *args: Any) -> None: ...
def f_kwargs(a: Any, **kwargs: Any) -> None: ...
def f_posonly_kwargs(a: Any, /, **kwargs: Any) -> None: ...
def f_none() -> None: ...


@pytest.mark.parametrize(
    "function, params, expected",
    [
        (f_ab, (1,), ((1,), {})),
        (f_ab, (1, 3), ((1, 3), {})),
        (f_ab, None, "missing argument 'a'"),
        (f_ab, (), "missing argument 'a'"),
        (f_ab, (1, 2, 3), "too many positional arguments"),
        (f_ab, {"a": 1}, ((), {"a": 1})),
        (f_ab, {"b": 1}, "missing argument 'a'"),
        (f_ab, {"a": 1, "c": 3}, "unexpected argument 'c'"),
        (f_posonly, (1, 2), ((1, 2), {})),
        (f_posonly, {"a": 1, "b": 2}, "unexpected argument 'a'"),
        (f_kwonly, (1,), "missing argument 'k'"),
        (f_kwonly, {"a": 1, "k": 2}, ((), {"a": 1, "k": 2})),
        (f_varargs, (1, 2, 3), ((1, 2, 3), {})),
        (f_varargs, {"a": 1, "args": [2]}, "unexpected argument 'args'"),
        (f_kwargs, {"a": 1, "z": 2, "kwargs": 3}, ((), {"a": 1, "z": 2, "kwargs": 3})),
        (f_kwargs, (1, 2), "too many positional arguments"),
        (f_posonly_kwargs, {"a": 1}, "missing argument 'a'"),
        (f_posonly_kwargs, (1,), ((1,), {})),
        (f_none, None, ((), {})),
        (f_none, (), ((), {})),
        (f_none, {}, ((), {})),
        (f_none, (1,), "too many positional arguments"),
        (f_none, {"x" * 100: 1}, "unexpected argument '" + "x" * 64 + "…'"),
    ],
)
def test_bind(function: Any, params: Any, expected: Any) -> None:
    assert bind(function, params) == expected


def test_bind_matches_python() -> None:
    # Whatever bind() accepts, Python accepts too.
    for function in [f_ab, f_posonly, f_kwonly, f_varargs, f_kwargs, f_posonly_kwargs, f_none]:
        for params in [(), (1,), (1, 2), (1, 2, 3), {"a": 1}, {"a": 1, "b": 2}, {"k": 1}]:
            result = bind(function, params)
            if isinstance(result, tuple):
                args, kwargs = result
                inspect.signature(function).bind(*args, **kwargs)


# Discover


def test_describe() -> None:
    def documented(
        a: int, b: float = 1.5, *rest: int, flag: object = object(), **extra: Any
    ) -> None:
        """Do something.

        More text that discover leaves out.
        """

    entry = Method.from_function("documented", documented).describe()
    assert entry == {
        "name": "documented",
        "params": [
            {"name": "a", "kind": "positional_or_keyword"},
            {"name": "b", "kind": "positional_or_keyword", "default": 1.5},
            {"name": "rest", "kind": "var_positional"},
            {"name": "flag", "kind": "keyword_only"},  # a default JSON cannot carry: left out
            {"name": "extra", "kind": "var_keyword"},
        ],
        "doc": "Do something.",
    }


def test_describe_without_docstring() -> None:
    assert Method.from_function("f", f_none).describe()["doc"] is None
