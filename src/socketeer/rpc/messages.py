"""JSON-RPC 2.0 messages and their wire format: a pure codec, without I/O.

The specification is https://www.jsonrpc.org/specification; socketeer's conventions on top of
it (method names, error codes, reserved methods, limits) are in ``docs/rpc-protocol.md``.

.. code-block:: text

    peer's text ─► parse() ─► Request ───────► run it ─► Response / ErrorResponse ─┐
                              Notification ──► run it (never answered)             │
                              Response, ErrorResponse ─► PendingCalls.pop(id)      │
                              Invalid ──────────────────► .response ───────────────┤
                              Batch (of the above)                                 │
    peer ◄─ serialize_answers(incoming, answers) ◄─────────────────────────────────┘

Receiving: :func:`parse` never raises on what a peer sends. Whatever breaks the specification
comes back as an :class:`Invalid` item that carries the error response to send, so one bad
element of a batch does not prevent answering the good ones. Sending: build messages and
:func:`serialize` them; :func:`serialize_answers` applies the batch rules to the answers of
what :func:`parse` returned. Calling: :class:`PendingCalls` allocates request ids and pairs
responses with the calls that wait for them. Both ends of a connection are callers and
callees, so :func:`parse` accepts requests and responses alike, even mixed in one batch.
"""

from __future__ import annotations

import enum
import json
import math
import re
import traceback
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeGuard, TypeVar

from ..exceptions import RemoteError
from ..typedefs import BytesLike, JSONValue

try:
    import orjson  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - orjson is an optional dependency
    _HAVE_ORJSON = False
else:
    _HAVE_ORJSON = True

__all__ = [
    "RequestId",
    "Params",
    "Error",
    "Request",
    "Notification",
    "Response",
    "ErrorResponse",
    "Invalid",
    "Batch",
    "Message",
    "Answer",
    "Item",
    "Incoming",
    "ErrorCode",
    "PARSE_ERROR",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "INVALID_PARAMS",
    "INTERNAL_ERROR",
    "APPLICATION_ERROR",
    "CALL_TIMEOUT",
    "CALL_CANCELLED",
    "FORBIDDEN",
    "RATE_LIMITED",
    "MAX_BATCH",
    "MAX_METHOD_NAME_LENGTH",
    "CANCEL_METHOD",
    "PING_METHOD",
    "DISCOVER_METHOD",
    "RESERVED_METHODS",
    "is_valid_method_name",
    "is_reserved_method_name",
    "parse",
    "serialize",
    "serialize_answers",
    "dump_json",
    "parse_error",
    "invalid_request",
    "method_not_found",
    "invalid_params",
    "internal_error",
    "application_error",
    "call_timeout",
    "call_cancelled",
    "forbidden",
    "rate_limited",
    "PendingCalls",
]


# Error codes


class ErrorCode(enum.IntEnum):
    """Error codes: JSON-RPC 2.0 section 5.1, then socketeer's, in the -32000 to -32099 range
    that the specification leaves to implementations."""

    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    APPLICATION_ERROR = -32000
    """The method raised an exception."""
    CALL_TIMEOUT = -32001
    """The call ran past the callee's execution timeout."""
    CALL_CANCELLED = -32002
    """The call was cancelled."""
    FORBIDDEN = -32003
    """The caller may not make this call (authorization)."""
    RATE_LIMITED = -32004
    """The caller made too many calls or publications (rate limit)."""


PARSE_ERROR = ErrorCode.PARSE_ERROR
INVALID_REQUEST = ErrorCode.INVALID_REQUEST
METHOD_NOT_FOUND = ErrorCode.METHOD_NOT_FOUND
INVALID_PARAMS = ErrorCode.INVALID_PARAMS
INTERNAL_ERROR = ErrorCode.INTERNAL_ERROR
APPLICATION_ERROR = ErrorCode.APPLICATION_ERROR
CALL_TIMEOUT = ErrorCode.CALL_TIMEOUT
CALL_CANCELLED = ErrorCode.CALL_CANCELLED
FORBIDDEN = ErrorCode.FORBIDDEN
RATE_LIMITED = ErrorCode.RATE_LIMITED

# The "message" of the errors predefined by section 5.1, word for word. What went wrong in
# particular goes in "data", as a string, so that these stay what other implementations expect.
_MESSAGES = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
}


# Limits and names

MAX_BATCH = 100
"""Default limit on the number of messages in a received batch."""

MAX_METHOD_NAME_LENGTH = 128
"""Limit on the length of a method name, in characters."""

CANCEL_METHOD = "$/cancel"
"""Notification: the caller gave up on the request whose id is in its params."""
PING_METHOD = "$/ping"
"""Request without params, answered with ``"pong"``: the browser client's heartbeat."""
DISCOVER_METHOD = "rpc.discover"
"""Request without params, answered with the list of the methods the callee exposes."""
RESERVED_METHODS = frozenset({CANCEL_METHOD, PING_METHOD, DISCOVER_METHOD})
"""The methods of the protocol itself."""

_METHOD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*")


def is_valid_method_name(name: str) -> bool:
    """Whether ``name`` follows the grammar of method names.

    One or more identifiers joined by dots, each matching ``[A-Za-z][A-Za-z0-9_]*`` (ASCII
    only, so no identifier starts with ``_``), at most :data:`MAX_METHOD_NAME_LENGTH`
    characters in all. The protocol's own ``$/`` names do not follow it: see
    :func:`is_reserved_method_name`.
    """
    return len(name) <= MAX_METHOD_NAME_LENGTH and _METHOD_NAME.fullmatch(name) is not None


def is_reserved_method_name(name: str) -> bool:
    """Whether ``name`` is reserved for the protocol, so that no application may define it.

    Section 4: "Method names that begin with the word rpc followed by a period character
    (U+002E or ASCII 46) are reserved for rpc-internal methods and extensions and MUST NOT be
    used for anything else"; socketeer reserves the names beginning with ``$/`` as well.
    """
    return name.startswith(("$/", "rpc."))


# Messages

RequestId: TypeAlias = str | int | float | None
"""The id of a request: a string or a number; null is allowed by the specification but
discouraged, as are fractional numbers. Callers use increasing integers."""

Params: TypeAlias = tuple[JSONValue, ...] | Mapping[str, JSONValue] | None
"""Parameters: by position (a tuple), by name (a mapping), or none (the member is absent)."""


@dataclass(frozen=True)
class Error:
    """The error object of an error response (section 5.1)."""

    code: int
    """Error code: an :class:`ErrorCode`, or any integer when received."""
    message: str
    """Short description: the specification's for its predefined codes."""
    data: JSONValue = None
    """Details, or ``None`` when the member is absent: a string for the predefined codes,
    ``{"type", "message", "traceback"?}`` for application errors."""

    def to_exception(self) -> RemoteError:
        """The exception a caller raises for this error."""
        return RemoteError(self.code, self.message, self.data)


@dataclass(frozen=True)
class Request:
    """A call that expects an answer (section 4)."""

    method: str
    """Name of the method to call."""
    params: Params
    """Arguments: a tuple, a mapping, or ``None`` to send none."""
    id: RequestId
    """Id that the answer carries back."""


@dataclass(frozen=True)
class Notification:
    """A call that is never answered: a request without an id (section 4.1)."""

    method: str
    """Name of the method to call."""
    params: Params = None
    """Arguments: a tuple, a mapping, or ``None`` to send none."""


@dataclass(frozen=True)
class Response:
    """The answer to a request that succeeded (section 5)."""

    id: RequestId
    """Id of the request."""
    result: JSONValue
    """What the method returned."""


@dataclass(frozen=True)
class ErrorResponse:
    """The answer to a request that failed (section 5)."""

    id: RequestId
    """Id of the request, or ``None`` when it could not be read from the request."""
    error: Error
    """What went wrong."""


@dataclass(frozen=True)
class Invalid:
    """Something received that breaks the specification, with the error to answer it with.

    Send :attr:`response`, even when the item had no id: the specification answers invalid
    requests with ``"id": null``.
    """

    id: RequestId
    """Id to answer with: the item's id when it is a request with a valid id, else ``None``."""
    error: Error
    """Error to answer with: -32700 or -32600, with details in ``data``."""
    in_reply_to: RequestId = None
    """When the item looks like a response (it has ``result`` or ``error``) with a valid,
    non-null id, that id: the caller may fail the pending call at once instead of waiting for
    its timeout. The answer still carries ``"id": null`` since request ids of the two
    directions are different namespaces."""

    @property
    def response(self) -> ErrorResponse:
        """The error response to send."""
        return ErrorResponse(self.id, self.error)


Message: TypeAlias = Request | Notification | Response | ErrorResponse
"""A valid JSON-RPC 2.0 message: what :func:`serialize` accepts."""

Answer: TypeAlias = Response | ErrorResponse
"""What answers a request."""

Item: TypeAlias = Request | Notification | Response | ErrorResponse | Invalid
"""One received message."""


@dataclass(frozen=True)
class Batch:
    """Several messages received in one JSON array (section 6); iterate to get them."""

    items: tuple[Item, ...]
    """The messages, in order; there is at least one."""

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


Incoming: TypeAlias = Item | Batch
"""What :func:`parse` returns."""


# Standard error responses


def _printable(text: str, limit: int | None = None) -> str:
    """``text`` clipped to ``limit`` characters and without lone surrogates, which JSON text
    in UTF-8 cannot carry."""
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode()
    return text


def _error(code: ErrorCode, detail: str) -> Error:
    return Error(code, _MESSAGES[code], detail)


def parse_error(detail: str) -> ErrorResponse:
    """Answer to a message that is not JSON text: -32700, always with ``"id": null``."""
    return ErrorResponse(None, _error(PARSE_ERROR, detail))


def invalid_request(id: RequestId, detail: str) -> ErrorResponse:
    """Answer to JSON that is not a valid JSON-RPC 2.0 message: -32600."""
    return ErrorResponse(id, _error(INVALID_REQUEST, detail))


def method_not_found(id: RequestId, name: str) -> ErrorResponse:
    """Answer to a call to a method that does not exist or that the grammar refuses: -32601.

    ``data`` is the name, clipped to :data:`MAX_METHOD_NAME_LENGTH` characters.
    """
    return ErrorResponse(id, _error(METHOD_NOT_FOUND, _printable(name, MAX_METHOD_NAME_LENGTH)))


def invalid_params(id: RequestId, detail: str) -> ErrorResponse:
    """Answer to a call with arguments that the method does not take: -32602.

    ``detail`` says which: ``missing argument 'x'``, ``unexpected argument 'y'``, ``too many
    positional arguments``.
    """
    return ErrorResponse(id, _error(INVALID_PARAMS, _printable(detail)))


def internal_error(id: RequestId, detail: str) -> ErrorResponse:
    """Answer to a call that failed in the callee but not in the method: -32603.

    For example a result that :func:`serialize` refuses.
    """
    return ErrorResponse(id, _error(INTERNAL_ERROR, _printable(detail)))


def application_error(id: RequestId, exc: BaseException, *, debug: bool = False) -> ErrorResponse:
    """Answer to a call whose method raised ``exc``: -32000.

    ``message`` is ``str(exc)``, or the exception's class name when that is empty; ``data`` is
    ``{"type": class name, "message": str(exc)}``, plus ``"traceback"`` when ``debug`` is true.
    Don't set ``debug`` where callers are not trusted: tracebacks show code and paths.
    """
    type_name = type(exc).__name__
    try:
        text = _printable(str(exc))
    except Exception:  # a broken __str__ must not prevent answering
        text = f"<unprintable {type_name} object>"
    data: dict[str, JSONValue] = {"type": type_name, "message": text}
    if debug:
        data["traceback"] = _printable("".join(traceback.format_exception(exc)))
    return ErrorResponse(id, Error(APPLICATION_ERROR, text or type_name, data))


def call_timeout(id: RequestId, timeout: float) -> ErrorResponse:
    """Answer to a call that ran past the callee's execution timeout, in seconds: -32001."""
    return ErrorResponse(id, Error(CALL_TIMEOUT, f"call timed out after {timeout:g} s"))


def call_cancelled(id: RequestId) -> ErrorResponse:
    """Answer to a call that was cancelled in the callee: -32002."""
    return ErrorResponse(id, Error(CALL_CANCELLED, "call cancelled"))


def forbidden(id: RequestId, detail: str) -> ErrorResponse:
    """Answer to a call that the caller may not make: -32003, ``data`` saying which, e.g.
    ``call admin.reset not allowed``."""
    return ErrorResponse(id, Error(FORBIDDEN, "forbidden", _printable(detail)))


def rate_limited(id: RequestId, retry_after: float) -> ErrorResponse:
    """Answer to a call over the caller's rate limit: -32004, ``data``
    ``{"retry_after": seconds}``, when the next one would be let through."""
    data: dict[str, JSONValue] = {"retry_after": round(retry_after, 3)}
    return ErrorResponse(id, Error(RATE_LIMITED, "rate limit exceeded", data))


# Parsing


class _NotJSON(ValueError):
    """A NaN or an infinity written as a name, which Python's json accepts and JSON doesn't."""


def _reject_constant(name: str) -> object:
    raise _NotJSON(f"{name} is not a JSON value")


_decode_json = json.JSONDecoder(parse_constant=_reject_constant).decode


def parse(
    data: str | BytesLike, *, binary: bool = False, max_batch: int | None = MAX_BATCH
) -> Incoming:
    """Parse a received WebSocket message.

    Never raises for what a peer may send: anything that breaks the specification becomes an
    :class:`Invalid`, alone or inside a :class:`Batch`. Next, for each item: run requests and
    answer them; run notifications; give responses to :meth:`PendingCalls.pop`; answer
    :class:`Invalid` items with their :attr:`~Invalid.response`. Then send what
    :func:`serialize_answers` returns, if anything.

    Args:
        data: the message: text, or text encoded in UTF-8.
        binary: whether it arrived in a binary message, which is refused like unparsable
            JSON whatever it holds (see ``docs/rpc-protocol.md``).
        max_batch: limit on the number of messages in a batch, or ``None`` for no limit. A
            longer batch is refused whole with one -32600 error, and nothing in it runs.

    Raises:
        TypeError: if ``data`` is neither text nor bytes (a local mistake, not the peer's).
    """
    if not isinstance(data, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"data must be str or bytes, not {type(data).__name__}")
    if binary:
        return Invalid(None, _error(PARSE_ERROR, "binary message"))
    if isinstance(data, str):
        text = data
    else:
        try:
            # json.loads() would also guess UTF-16 and UTF-32 from bytes: WebSocket text and
            # JSON on the network are UTF-8 only (RFC 6455 section 5.6, RFC 8259 section 8.1).
            text = str(data, "utf-8")
        except UnicodeDecodeError as exc:
            return Invalid(None, _error(PARSE_ERROR, f"invalid UTF-8 at byte {exc.start}"))
    try:
        value = _decode_json(text)
    except json.JSONDecodeError as exc:
        detail = f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        return Invalid(None, _error(PARSE_ERROR, detail))
    except _NotJSON as exc:
        return Invalid(None, _error(PARSE_ERROR, f"invalid JSON: {exc}"))
    except RecursionError:
        return Invalid(None, _error(PARSE_ERROR, "JSON nested too deeply"))
    except ValueError:
        # The interpreter's limit on the digits of an integer (sys.set_int_max_str_digits):
        # it keeps the conversion, which is quadratic, from stalling the connection.
        return Invalid(None, _error(PARSE_ERROR, "JSON number too large"))
    if isinstance(value, list):
        # Section 6: "If the batch rpc call itself fails to be recognized as an valid JSON or
        # as an Array with at least one value, the response from the Server MUST be a single
        # Response object."
        if not value:
            return Invalid(None, _error(INVALID_REQUEST, "empty batch"))
        if max_batch is not None and len(value) > max_batch:
            detail = f"batch with {len(value)} messages exceeds limit of {max_batch} messages"
            return Invalid(None, _error(INVALID_REQUEST, detail))
        return Batch(tuple(map(_parse_item, value)))
    return _parse_item(value)


def _json_type(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _parse_item(value: JSONValue) -> Item:
    """Classify one JSON value: a request or a notification if it has a "method" member, a
    response if it has "result" or "error", else an invalid request."""
    if not isinstance(value, dict):
        return Invalid(
            None, _error(INVALID_REQUEST, f"expected an object, got {_json_type(value)}")
        )
    if "method" in value:
        return _parse_call(value)
    if "result" in value or "error" in value:
        return _parse_response(value)
    return Invalid(None, _error(INVALID_REQUEST, 'missing "method" member'))


_BAD_ID = '"id" member must be a string, a finite number or null'
_BAD_VERSION = '"jsonrpc" member must be "2.0"'
_BAD_PARAMS = '"params" member must be an array or an object'


def _is_valid_id(value: object) -> TypeGuard[RequestId]:
    # Section 4: the id "MUST contain a String, Number, or NULL value if included". JSON's
    # true and false are not numbers, though Python's bool is an int. An id that could not
    # be sent back (an infinity, a lone surrogate) is refused too.
    if isinstance(value, str):
        return _is_utf8(value)
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, bool):
        return False
    return value is None or isinstance(value, int)


def _is_utf8(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _parse_call(value: dict[str, JSONValue]) -> Item:
    has_id = "id" in value
    id = value.get("id")
    if not _is_valid_id(id):
        return Invalid(None, _error(INVALID_REQUEST, _BAD_ID))
    # Section 4: "jsonrpc: A String specifying the version of the JSON-RPC protocol. MUST be
    # exactly "2.0"."
    if value.get("jsonrpc") != "2.0":
        return Invalid(id, _error(INVALID_REQUEST, _BAD_VERSION))
    method = value["method"]
    if not isinstance(method, str):
        return Invalid(id, _error(INVALID_REQUEST, '"method" member must be a string'))
    # Section 4.2: "If present, parameters for the rpc call MUST be provided as a Structured
    # value." So "params": null is invalid too.
    params: Params = None
    if "params" in value:
        raw = value["params"]
        if isinstance(raw, list):
            params = tuple(raw)
        elif isinstance(raw, dict):
            params = raw
        else:
            return Invalid(id, _error(INVALID_REQUEST, _BAD_PARAMS))
    if has_id:
        return Request(method, params, id)
    return Notification(method, params)


def _parse_response(value: dict[str, JSONValue]) -> Item:
    # Ids of requests received and of requests sent are separate namespaces: never answer a
    # broken response with its id, which would reach one of the peer's own pending calls.
    if "id" not in value:
        return Invalid(None, _error(INVALID_REQUEST, 'response without "id" member'))
    id = value["id"]
    if not _is_valid_id(id):
        return Invalid(None, _error(INVALID_REQUEST, _BAD_ID))
    if value.get("jsonrpc") != "2.0":
        return Invalid(None, _error(INVALID_REQUEST, _BAD_VERSION), id)
    # Section 5: "Either the result member or error member MUST be included, but both
    # members MUST NOT be included."
    if "result" in value:
        if "error" in value:
            detail = 'response with both "result" and "error" members'
            return Invalid(None, _error(INVALID_REQUEST, detail), id)
        return Response(id, value["result"])
    error = value["error"]
    if not isinstance(error, dict):
        return Invalid(None, _error(INVALID_REQUEST, '"error" member must be an object'), id)
    # Section 5.1: code "MUST be an integer"; message is "A String".
    code = error.get("code")
    if not isinstance(code, int) or isinstance(code, bool):
        detail = '"error" member must have an integer "code"'
        return Invalid(None, _error(INVALID_REQUEST, detail), id)
    message = error.get("message")
    if not isinstance(message, str):
        detail = '"error" member must have a string "message"'
        return Invalid(None, _error(INVALID_REQUEST, detail), id)
    return ErrorResponse(id, Error(code, message, error.get("data")))


# Serializing


def _to_object(message: object) -> dict[str, object]:
    """The JSON object of a message, with its members in the order of the specification's
    examples."""
    if isinstance(message, Request):
        obj: dict[str, object] = {"jsonrpc": "2.0", "method": message.method}
        if message.params is not None:
            obj["params"] = _params(message.params)
        obj["id"] = message.id
        return obj
    if isinstance(message, Notification):
        obj = {"jsonrpc": "2.0", "method": message.method}
        if message.params is not None:
            obj["params"] = _params(message.params)
        return obj
    if isinstance(message, Response):
        return {"jsonrpc": "2.0", "result": message.result, "id": message.id}
    if isinstance(message, ErrorResponse):
        error = message.error
        error_obj: dict[str, object] = {"code": int(error.code), "message": error.message}
        if error.data is not None:
            error_obj["data"] = error.data
        return {"jsonrpc": "2.0", "error": error_obj, "id": message.id}
    raise _not_a_message(message)


def _not_a_message(value: object) -> TypeError:
    hint = ": send its .response" if isinstance(value, Invalid) else ""
    return TypeError(f"cannot serialize {type(value).__name__}{hint}")


def _params(params: tuple[JSONValue, ...] | Mapping[str, JSONValue]) -> object:
    if isinstance(params, (tuple, list, dict)):
        return params
    return dict(params)


def serialize(message: Message | Sequence[Message]) -> str:
    """The JSON text of a message, or of a batch when given a sequence of messages.

    The text is compact (no whitespace), keeps non-ASCII characters as they are
    (``ensure_ascii=False``), and lists members in the specification's order. It uses orjson
    when it is installed and, checked at import, agrees with json; the text is the same
    either way, byte for byte.

    Besides JSON's own types (:class:`dict` with :class:`str` keys, :class:`list`,
    :class:`tuple`, :class:`str`, :class:`int`, :class:`float`, :class:`bool`, ``None``, and
    their subclasses), enum members are written as their value and :class:`~uuid.UUID` as its
    string; mapping keys that are :class:`int`, :class:`float`, :class:`bool` or ``None``
    become strings, as json does.

    A callee that fails to serialize a result answers with :func:`internal_error` instead.

    Raises:
        TypeError: if a value has a type that JSON cannot carry (:class:`set`, :class:`bytes`,
            :class:`~datetime.datetime`, ...), or if ``message`` is not a message.
        ValueError: if a value is one that JSON cannot carry: NaN or an infinity, a string
            with a lone surrogate, a circular or too deeply nested structure, an integer with
            more digits than the interpreter converts; or if the batch is empty (section 6:
            the server "MUST NOT return an empty Array").
    """
    if isinstance(message, (Request, Notification, Response, ErrorResponse)):
        return _dumps(_to_object(message))
    value: object = message
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes, bytearray)):
        raise _not_a_message(value)
    if not value:
        raise ValueError("empty batch")
    return _dumps([_to_object(item) for item in value])


def serialize_answers(incoming: Incoming, answers: Iterable[Answer]) -> str | None:
    """The text that answers what :func:`parse` returned, or ``None`` when nothing is sent.

    Section 6: a batch is answered with an array of the answers (in any order), or nothing at
    all when it held only notifications and responses; a single message with its answer.

    Args:
        incoming: what :func:`parse` returned.
        answers: the answers to its requests and to its :class:`Invalid` items.

    Raises:
        ValueError: if there are several answers to a single message.
        TypeError, ValueError: as :func:`serialize`.
    """
    answers = list(answers)
    if not answers:
        return None
    if isinstance(incoming, Batch):
        return serialize(answers)
    if len(answers) > 1:
        raise ValueError(f"{len(answers)} answers to a single message")
    return serialize(answers[0])


# json is the reference; orjson, when installed, is used where it writes the same bytes.


def _default(value: object) -> object:
    # orjson writes these natively; json is told to do the same.
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"value of type {type(value).__name__} is not JSON serializable")


_encode_json = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_default
).encode


def _dumps_json(value: object) -> str:
    """Serialize with json: the reference."""
    try:
        text = _encode_json(value)
    except RecursionError as exc:
        raise ValueError("value nested too deeply to serialize") from exc
    # With ensure_ascii=False, json copies lone surrogates, which no UTF-8 text can carry.
    if not _is_utf8(text):
        raise ValueError("string with a lone surrogate is not valid Unicode")
    return text


# orjson (3.11.7 and later) writes what json writes, except NaN and infinities, as null where
# json refuses them, and exponents -5 to -9, as 0.0000… and e-6 … e-9 where json writes e-05
# … e-09. Outputs that contain null, 0.0000 or a one-digit negative exponent, even by chance
# inside a string, are redone with json. Values that orjson does not take (integers beyond 64
# bits, keys that are not str, subclasses, dataclasses, datetimes, lone surrogates, deep
# nesting) make it raise, and are redone with json too. An orjson that differs in other ways
# (before 3.11.7, positive exponents lacked their "+") fails _orjson_agrees() and is not
# used. orjson.Fragment, which only callers of orjson can make, is the one object that the
# two treat differently.
_ORJSON_EXPONENT = re.compile(rb"e-[0-9](?![0-9])")


def _orjson_suspect(output: bytes) -> bool:
    # Substring tests run at memchr speed, a regex with alternatives about 20 times slower.
    return b"null" in output or b"0.0000" in output or _ORJSON_EXPONENT.search(output) is not None


if _HAVE_ORJSON:
    _ORJSON_OPTIONS = (
        orjson.OPT_PASSTHROUGH_DATACLASS
        | orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_SUBCLASS
    )


def _dumps_orjson(value: object) -> str:
    """Serialize with orjson, or with json where orjson might write something else."""
    try:
        output: bytes = orjson.dumps(value, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return _dumps_json(value)
    if _orjson_suspect(output):
        return _dumps_json(value)
    return output.decode()


def _orjson_agrees() -> bool:
    """Whether the installed orjson writes what json writes on values near the boundaries
    of their number formats, and on every ASCII character; if not, it is not used."""
    values: list[object] = [float(f"1.2345678901234567e{e}") for e in range(-25, 25)]
    values += [1e16, 1e-5, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -0.0]
    values += [2**63 - 1, -(2**63), "".join(map(chr, range(128))) + "\u2028\ufeff\U0001f600"]
    values += [{"a": [True, False, 1.5, (1, "é")]}]
    return all(_dumps_orjson(value) == _dumps_json(value) for value in values)


_dumps = _dumps_orjson if _HAVE_ORJSON and _orjson_agrees() else _dumps_json


def dump_json(value: object) -> str:
    """The JSON text of ``value`` as the codec writes it: :mod:`json`'s compact output
    (UTF-8, no NaN), written by orjson when it is installed and writes the same.

    Raises:
        TypeError: if JSON cannot carry a value of its type.
        ValueError: if it holds NaN or an infinity, a lone surrogate, or is nested too
            deeply.
    """
    return _dumps(value)


# Calling

_T = TypeVar("_T")


class PendingCalls(Generic[_T]):
    """The requests sent on one connection that still wait for their answer.

    It allocates their ids, increasing integers from 1, and keeps a value for each (the
    future a driver completes), so that a received :class:`Response` or
    :class:`ErrorResponse` finds the call it answers::

        request = Request("add", (1, 2), calls.add(future))
        ...
        future = calls.pop(response.id)  # None: late (cancelled, timed out) or unknown

    An :class:`Invalid` with an :attr:`~Invalid.in_reply_to` id fails that call too.
    """

    def __init__(self) -> None:
        self._last_id = 0
        self._pending: dict[RequestId, _T] = {}

    def add(self, value: _T) -> int:
        """Store ``value`` under a new id, and return the id for the request."""
        self._last_id += 1
        self._pending[self._last_id] = value
        return self._last_id

    def pop(self, id: RequestId) -> _T | None:
        """Remove and return the value stored under ``id``, or ``None`` if there is none."""
        return self._pending.pop(id, None)

    def pop_all(self) -> list[_T]:
        """Remove and return every value, oldest first: when the connection is lost."""
        values = list(self._pending.values())
        self._pending.clear()
        return values

    def __contains__(self, id: object) -> bool:
        return id in self._pending

    def __len__(self) -> int:
        return len(self._pending)
