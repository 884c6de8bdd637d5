"""TypeScript declarations of an RPC application's methods, for ``socketeer rpc types``.

:func:`declaration` writes an interface for the browser client's proxy
(``rpc.proxy.counter.increment(1)`` calls ``counter.increment``): one member per method,
nested by the dots of its name, each returning a ``Promise`` of its result.

What the proxy can call
-----------------------

The proxy passes positional arguments only, so each method is typed from its positional
parameters: optional if they have a default, ``...name: T[]`` for ``*args``. Keyword-only
parameters with a default and ``**kwargs`` are left out (the proxy cannot pass them), and a
method with a keyword-only parameter that has no default is left out, as are the names the
proxy never builds (``then``, ``toJSON``, ``toString``, ``valueOf``): a comment lists them,
for ``rpc.callWith()`` and ``rpc.call()``.

Types
-----

From the annotations, as JSON carries the values (``docs/rpc-protocol.md``):

- ``int``, ``float`` → ``number``; ``str``, ``uuid.UUID`` → ``string``; ``bool`` →
  ``boolean``; ``None`` → ``null``;
- ``list[T]``, ``Sequence[T]``, ``tuple[T, ...]`` → ``T[]``; ``tuple[A, B]`` → ``[A, B]``;
- ``dict[str, T]``, ``Mapping[str, T]`` → ``Record<string, T>``;
- ``Optional[T]``, ``Union[...]``, ``A | B`` → ``T | null``, ``A | B``;
- ``Literal[...]`` → its values; an :class:`enum.Enum` → the values of its members (what
  the RPC layer sends for them);
- a ``TypedDict`` → an object type, ``{ name: T; other?: U }``;
- ``NewType`` → its base type; ``Annotated[T, ...]`` → ``T``;
- a sync function's ``Awaitable[T]`` result → ``T`` (the peer awaits it);
- anything else → ``unknown``: ``Any``, ``object``, ``bytes``, dataclasses (the RPC layer
  neither sends them nor makes them from params: they are not JSON), a type that refers to
  itself (from its second level), an annotation that cannot be evaluated; a missing
  annotation too.
"""

from __future__ import annotations

import collections.abc
import enum
import inspect
import json
import math
import types
import typing
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from ..rpc.routes import Method, Routes

__all__ = ["IMPLICIT_NAMES", "RESERVED_WORDS", "declaration", "typescript_type"]

IMPLICIT_NAMES = frozenset({"then", "toJSON", "toString", "valueOf"})
"""Names the proxy never turns into calls: JavaScript looks them up on any object."""

RESERVED_WORDS = frozenset(
    """arguments await break case catch class const continue debugger default delete do else
    enum eval export extends false finally for function if implements import in instanceof
    interface let new null package private protected public return static super switch this
    throw true try typeof var void while with yield""".split()
)
"""Reserved words of JavaScript: a parameter so named gets a ``_`` after its name (they
cannot name one), a method or namespace is quoted (``"new"(): ...`` is a method, ``new():``
would declare a constructor)."""

_SEQUENCES = {
    list,
    collections.abc.Sequence,
    collections.abc.MutableSequence,
}
_MAPPINGS = {dict, collections.abc.Mapping, collections.abc.MutableMapping}
_AWAITABLES = {collections.abc.Awaitable, collections.abc.Coroutine}
_UNKNOWN = "unknown"


# The declaration


def declaration(routes: Routes, name: str = "API", source: str = "") -> str:
    """The TypeScript declaration of the methods of ``routes``: an interface ``name``.

    Args:
        routes: an RPC application (:class:`~socketeer.rpc.RPC`) or other routes.
        name: the name of the interface.
        source: where ``routes`` comes from, such as ``app:rpc``, for the header comment.
    """
    tree: _Node = _Node()
    left_out: list[str] = []
    for method in routes:
        reason = _unreachable(method)
        if reason is None:
            tree.add(method.name.split("."), method)
        else:
            left_out.append(f"{method.name}: {reason}")
    lines = [f"// Made by `socketeer rpc types {source}`." if source else "// Made by socketeer."]
    lines += [
        "// The methods of an RPC application, for the proxy of socketeer.js:",
        "//",
        f"//   const api = rpc.proxy as unknown as {name};",
    ]
    if left_out:
        lines += ["//", "// Not reachable through rpc.proxy (use rpc.callWith() or rpc.call()):"]
        lines += [f"//   {line}" for line in left_out]
    lines += ["", f"export interface {name} {{", *tree.members("  "), "}", ""]
    return "\n".join(lines)


def _unreachable(method: Method) -> str | None:
    """Why the proxy cannot call ``method``, or ``None`` if it can."""
    implicit = IMPLICIT_NAMES.intersection(method.name.split("."))
    if implicit:
        return f"the proxy never builds the name {min(implicit)!r}"
    for parameter in method.signature.parameters.values():
        if (
            parameter.kind is inspect.Parameter.KEYWORD_ONLY
            and parameter.default is parameter.empty
        ):
            return (
                f"keyword-only parameter {parameter.name!r}: "
                "the proxy passes positional arguments only"
            )
    return None


class _Node:
    """A name in the tree of dotted names: maybe a method, maybe a prefix of others."""

    def __init__(self) -> None:
        self.method: Method | None = None
        self.children: dict[str, _Node] = {}

    def add(self, path: list[str], method: Method) -> None:
        node = self
        for part in path:
            node = node.children.setdefault(part, _Node())
        node.method = method

    def members(self, indent: str) -> Iterator[str]:
        """The lines of the members of an object type for the children of this node."""
        for part, child in self.children.items():
            name = _member_name(part)
            if not child.children:
                assert child.method is not None
                yield from _signature(child.method, indent, name)
                continue
            yield f"{indent}readonly {name}: {{"
            if child.method is not None:
                yield from _signature(child.method, indent + "  ", "")  # a call signature
            yield from child.members(indent + "  ")
            yield f"{indent}}};"


def _member_name(name: str) -> str:
    """A method or namespace name as a member name: quoted if it is a reserved word (so that
    ``new`` names a method, not a construct signature)."""
    return json.dumps(name) if name in RESERVED_WORDS else name


def _signature(method: Method, indent: str, name: str) -> Iterator[str]:
    """The lines of the member for ``method``: its doc comment and its signature."""
    doc = method.describe().get("doc")
    if isinstance(doc, str):
        yield indent + "/** " + doc.replace("*/", "*\\/") + " */"
    hints = _hints(method.function)
    params = []
    names = set(method.signature.parameters)
    for parameter in method.signature.parameters.values():
        hint = hints.get(parameter.name, parameter.annotation)
        param_name = _parameter_name(parameter.name, names)
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            params.append(f"...{param_name}: {_array(hint, ())}")
        elif parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            optional = "?" if parameter.default is not parameter.empty else ""
            params.append(f"{param_name}{optional}: {typescript_type(hint)}")
    result = hints.get("return", method.signature.return_annotation)
    if not inspect.iscoroutinefunction(method.function):
        result = _awaited(result)
    yield f"{indent}{name}({', '.join(params)}): Promise<{typescript_type(result)}>;"


def _parameter_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name_`` (``name__``...) if it is a reserved word."""
    if name not in RESERVED_WORDS:
        return name
    while name in RESERVED_WORDS or name in taken:
        name += "_"
    taken.add(name)
    return name


def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    """The evaluated annotations of ``function``; those that cannot be evaluated are left
    as they are (strings: ``unknown``)."""
    try:
        return typing.get_type_hints(function)
    except Exception:
        pass
    target = inspect.unwrap(getattr(function, "__func__", function))
    namespace = getattr(target, "__globals__", {})
    hints = {}
    for key, annotation in getattr(target, "__annotations__", {}).items():
        try:
            hints[key] = eval(annotation, namespace) if isinstance(annotation, str) else annotation
        except Exception:
            hints[key] = annotation
    return hints


def _awaited(annotation: object) -> object:
    """``T`` for ``Awaitable[T]`` or ``Coroutine[..., ..., T]``."""
    if typing.get_origin(annotation) in _AWAITABLES:
        args = typing.get_args(annotation)
        return args[-1] if args else Any
    return annotation


# Types


def typescript_type(annotation: object) -> str:
    """The TypeScript type of values that have Python type ``annotation`` in JSON; see the
    module's description."""
    return " | ".join(_alternatives(annotation, ()))


def _alternatives(annotation: object, seen: tuple[object, ...]) -> list[str]:
    """The members of the union of TypeScript types for ``annotation``, one if not a
    union. ``seen``: the types being expanded, to stop at one that refers to itself."""
    if annotation in seen:
        return [_UNKNOWN]
    try:
        simple = _SIMPLE.get(annotation)
    except TypeError:  # not hashable: not a type
        return [_UNKNOWN]
    if simple is not None:
        return [simple]
    supertype = getattr(annotation, "__supertype__", None)  # NewType
    if supertype is not None:
        return _alternatives(supertype, seen)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return _union([_alternatives(arg, seen) for arg in args])
    if origin is typing.Literal:
        return _union([[_literal(value)] for value in args])
    if origin is typing.Annotated:
        return _alternatives(args[0], seen)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _union([[_literal(member.value)] for member in annotation])
    if _is_typeddict(annotation):
        return [_object_type(annotation, (*seen, annotation))]
    return [_container(annotation, origin, args, seen)]


_SIMPLE: dict[object, str] = {
    None: "null",
    type(None): "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    uuid.UUID: "string",
    tuple: "unknown[]",
}


def _container(
    annotation: object, origin: object, args: tuple[Any, ...], seen: tuple[object, ...]
) -> str:
    """An array, a tuple or a record type, or ``unknown``."""
    if origin in _SEQUENCES or annotation in _SEQUENCES:
        return _array(args[0] if len(args) == 1 else Any, seen)
    if origin is tuple:
        if not args:  # typing.Tuple, or tuple[()] since Python 3.11
            return "unknown[]" if annotation is typing.Tuple else "[]"  # noqa: UP006
        if len(args) == 2 and args[1] is Ellipsis:
            return _array(args[0], seen)
        if args == ((),):  # tuple[()] before Python 3.11
            return "[]"
        return f"[{', '.join(' | '.join(_alternatives(arg, seen)) for arg in args)}]"
    if origin in _MAPPINGS or annotation in _MAPPINGS:
        key, value = args if len(args) == 2 else (str, Any)
        if _alternatives(key, ()) == ["string"]:
            return f"Record<string, {' | '.join(_alternatives(value, seen))}>"
    return _UNKNOWN


def _array(annotation: object, seen: tuple[object, ...]) -> str:
    """``T[]`` for a ``T``."""
    element = _alternatives(annotation, seen)
    return f"({' | '.join(element)})[]" if len(element) > 1 else f"{element[0]}[]"


def _union(members: list[list[str]]) -> list[str]:
    """The union of unions: without repeats, and only ``unknown`` if one is."""
    union: list[str] = []
    for alternatives in members:
        for alternative in alternatives:
            if alternative not in union:
                union.append(alternative)
    return [_UNKNOWN] if _UNKNOWN in union else union


def _literal(value: object) -> str:
    """A literal type, or ``unknown`` for a value that JSON cannot carry."""
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None or isinstance(value, (bool, int, str)):
        return json.dumps(value)  # a JSON string is a TypeScript string literal
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return _UNKNOWN


def _is_typeddict(annotation: object) -> bool:
    # typing.is_typeddict() misses typing_extensions' TypedDicts on older Pythons.
    return (
        isinstance(annotation, type)
        and issubclass(annotation, dict)
        and hasattr(annotation, "__required_keys__")
    )


def _object_type(typeddict: Any, seen: tuple[object, ...]) -> str:
    """``{ key: T; other?: U }`` for a TypedDict."""
    try:
        hints = typing.get_type_hints(typeddict)
    except Exception:
        hints = dict(typeddict.__annotations__)
    if not hints:
        return "Record<string, never>"
    required = typeddict.__required_keys__
    members = []
    for key, hint in hints.items():
        name = key if key.isidentifier() and key.isascii() else json.dumps(key)
        optional = "" if key in required else "?"
        members.append(f"{name}{optional}: {' | '.join(_alternatives(hint, seen))}")
    return f"{{ {'; '.join(members)} }}"
