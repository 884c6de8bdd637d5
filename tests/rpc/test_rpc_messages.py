"""The JSON-RPC 2.0 codec: every example of https://www.jsonrpc.org/specification section 7
from request text to response text, the rules of sections 4 to 6 item by item, the
conventions of docs/rpc-protocol.md, and, with Hypothesis, that no input makes ``parse`` raise
and that both JSON backends write the same bytes.

(The module has the ``rpc_`` prefix because tests/asyncio/test_messages.py exists and test
directories have no ``__init__.py``: basenames must be unique.)
"""

from __future__ import annotations

import enum
import inspect
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import datetime
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socketeer import exceptions
from socketeer.exceptions import RemoteError, RPCError, SocketeerError
from socketeer.rpc import messages
from socketeer.rpc.messages import (
    APPLICATION_ERROR,
    CALL_CANCELLED,
    CALL_TIMEOUT,
    CANCEL_METHOD,
    DISCOVER_METHOD,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    MAX_BATCH,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    PING_METHOD,
    RESERVED_METHODS,
    Answer,
    Batch,
    Error,
    ErrorCode,
    ErrorResponse,
    Incoming,
    Invalid,
    Item,
    Message,
    Notification,
    PendingCalls,
    Request,
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
    parse_error,
    rate_limited,
    serialize,
    serialize_answers,
)
from socketeer.typedefs import JSONValue

try:
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    # Under CI=true nothing optional may be skipped: orjson is in the "test" extra.
    if os.environ.get("CI") == "true":
        raise
    orjson = None  # type: ignore[assignment]

NO_ORJSON = pytest.mark.skipif(
    orjson is None, reason="orjson is not installed: pip install 'socketeer[test]'"
)

# The JSON backends of serialize(): json is the reference, orjson must write the same bytes.
DUMPS = [
    pytest.param(messages._dumps_json, id="json"),
    pytest.param(messages._dumps_orjson, id="orjson", marks=NO_ORJSON),
]


# A tiny callee for the examples of section 7, built on the codec's API only.


def subtract(minuend: float, subtrahend: float) -> float:
    return minuend - subtrahend


def sum_(*numbers: float) -> float:
    return sum(numbers)


def get_data() -> list[object]:
    return ["hello", 5]


def ignore(*args: object) -> None:
    return None


METHODS: dict[str, Callable[..., Any]] = {
    "subtract": subtract,
    "sum": sum_,
    "get_data": get_data,
    "update": ignore,
    "notify_hello": ignore,
    "notify_sum": ignore,
}


def run(item: Request | Notification) -> Answer:
    """Run a call: the answer a callee would send, if the call is a request."""
    function = METHODS.get(item.method) if is_valid_method_name(item.method) else None
    if function is None:
        return method_not_found(getattr(item, "id", None), item.method)
    id = getattr(item, "id", None)
    params = item.params
    args, kwargs = ((), params) if isinstance(params, dict) else (params or (), {})
    try:
        bound = inspect.signature(function).bind(*args, **kwargs)
    except TypeError as exc:
        return invalid_params(id, str(exc))
    try:
        result = function(*bound.args, **bound.kwargs)
    except Exception as exc:
        return application_error(id, exc)
    try:
        serialize(Response(id, result))
    except (TypeError, ValueError) as exc:
        return internal_error(id, f"result cannot be serialized: {exc}")
    return Response(id, result)


def answer(item: Item) -> Answer | None:
    """The answer to one received item, or None: what a peer does with each item."""
    if isinstance(item, Invalid):
        return item.response
    if isinstance(item, (Response, ErrorResponse)):
        return None  # a caller's business: see PendingCalls
    response = run(item)
    # Section 4.1: "The Server MUST NOT reply to a Notification, including those that are
    # within a batch request."
    return None if isinstance(item, Notification) else response


def exchange(sent: str | bytes) -> str | None:
    """From the bytes received to the bytes sent back, or None when nothing is sent."""
    incoming = parse(sent)
    items = incoming if isinstance(incoming, Batch) else (incoming,)
    return serialize_answers(incoming, [a for a in map(answer, items) if a is not None])


def without_data(value: Any) -> Any:
    """A response, or an array of responses, without the "data" of their errors: socketeer
    puts details there, which the specification allows ("This may be omitted") and its
    examples don't show."""
    if isinstance(value, list):
        return [without_data(item) for item in value]
    if isinstance(value, dict) and isinstance(value.get("error"), dict):
        error = {k: v for k, v in value["error"].items() if k != "data"}
        return {**value, "error": error}
    return value


def assert_exchange(sent: str, expected: str | None) -> None:
    """``sent`` is answered with ``expected`` (a JSON value, but for error details), or with
    nothing when ``expected`` is None."""
    received = exchange(sent)
    if expected is None:
        assert received is None
    else:
        assert received is not None
        assert without_data(json.loads(received)) == json.loads(expected)


class TestSection7Examples:
    def test_rpc_call_with_positional_parameters(self) -> None:
        assert_exchange(
            '{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}',
            '{"jsonrpc": "2.0", "result": 19, "id": 1}',
        )
        assert_exchange(
            '{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}',
            '{"jsonrpc": "2.0", "result": -19, "id": 2}',
        )

    def test_rpc_call_with_named_parameters(self) -> None:
        assert_exchange(
            '{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, '
            '"minuend": 42}, "id": 3}',
            '{"jsonrpc": "2.0", "result": 19, "id": 3}',
        )
        assert_exchange(
            '{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, '
            '"subtrahend": 23}, "id": 4}',
            '{"jsonrpc": "2.0", "result": 19, "id": 4}',
        )

    def test_a_notification(self) -> None:
        assert_exchange('{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}', None)
        assert_exchange('{"jsonrpc": "2.0", "method": "foobar"}', None)

    def test_rpc_call_of_non_existent_method(self) -> None:
        assert_exchange(
            '{"jsonrpc": "2.0", "method": "foobar", "id": "1"}',
            '{"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, '
            '"id": "1"}',
        )

    def test_rpc_call_with_invalid_json(self) -> None:
        assert_exchange(
            '{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]',
            '{"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}',
        )

    def test_rpc_call_with_invalid_request_object(self) -> None:
        assert_exchange(
            '{"jsonrpc": "2.0", "method": 1, "params": "bar"}',
            '{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, '
            '"id": null}',
        )

    def test_rpc_call_batch_invalid_json(self) -> None:
        assert_exchange(
            '[\n  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},\n'
            '  {"jsonrpc": "2.0", "method"\n]',
            '{"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}',
        )

    def test_rpc_call_with_an_empty_array(self) -> None:
        assert_exchange(
            "[]",
            '{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, '
            '"id": null}',
        )

    def test_rpc_call_with_an_invalid_batch_but_not_empty(self) -> None:
        assert_exchange(
            "[1]",
            '[{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, '
            '"id": null}]',
        )

    def test_rpc_call_with_invalid_batch(self) -> None:
        error = '{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, '
        error += '"id": null}'
        assert_exchange("[1,2,3]", f"[{error}, {error}, {error}]")

    def test_rpc_call_batch(self) -> None:
        assert_exchange(
            """[
                {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
                {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
                {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
                {"foo": "boo"},
                {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
                {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
            ]""",
            """[
                {"jsonrpc": "2.0", "result": 7, "id": "1"},
                {"jsonrpc": "2.0", "result": 19, "id": "2"},
                {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"},
                 "id": null},
                {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"},
                 "id": "5"},
                {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}
            ]""",
        )

    def test_rpc_call_batch_all_notifications(self) -> None:
        assert_exchange(
            """[
                {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
                {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
            ]""",
            None,
        )

    def test_answers_byte_for_byte(self) -> None:
        sent = '{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}'
        assert exchange(sent) == '{"jsonrpc":"2.0","result":19,"id":1}'
        assert exchange(sent.encode()) == '{"jsonrpc":"2.0","result":19,"id":1}'
        assert exchange('{"jsonrpc": "2.0", "method": "foobar", "id": "1"}') == (
            '{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found",'
            '"data":"foobar"},"id":"1"}'
        )
        assert exchange('[{"jsonrpc": "2.0", "method": "get_data", "id": 9}]') == (
            '[{"jsonrpc":"2.0","result":["hello",5],"id":9}]'
        )

    @pytest.mark.parametrize(
        ("sent", "data"),
        [
            ('{"jsonrpc": "2.0", "method": "foobar", "id": "1"}', "foobar"),
            (
                '{"jsonrpc": "2.0", "method": 1, "params": "bar"}',
                '"method" member must be a string',
            ),
            ("[]", "empty batch"),
            ("[1]", ["expected an object, got a number"]),
            (
                '{"jsonrpc": "2.0", "method"',
                "invalid JSON: Expecting ':' delimiter at line 1 column 28",
            ),
        ],
    )
    def test_details_in_data(self, sent: str, data: object) -> None:
        received = exchange(sent)
        assert received is not None
        value = json.loads(received)
        if isinstance(value, list):
            assert [item["error"]["data"] for item in value] == data
        else:
            assert value["error"]["data"] == data


# Section 4: requests and notifications.


def invalid(id: object, detail: str) -> Invalid:
    return Invalid(id, Error(INVALID_REQUEST, "Invalid Request", detail))  # type: ignore[arg-type]


class TestParseCalls:
    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ('{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}', Request("add", (1, 2), 1)),
            ('{"jsonrpc":"2.0","method":"add","params":{"a":1},"id":"x"}',
             Request("add", {"a": 1}, "x")),
            ('{"jsonrpc":"2.0","method":"add","id":1}', Request("add", None, 1)),
            ('{"jsonrpc":"2.0","method":"add","params":[],"id":1}', Request("add", (), 1)),
            ('{"jsonrpc":"2.0","method":"add","params":{},"id":1}', Request("add", {}, 1)),
            # Discouraged, but allowed by section 4: null and fractional ids.
            ('{"jsonrpc":"2.0","method":"add","id":null}', Request("add", None, None)),
            ('{"jsonrpc":"2.0","method":"add","id":1.5}', Request("add", None, 1.5)),
            ('{"jsonrpc":"2.0","method":"add","id":-7}', Request("add", None, -7)),
            ('{"jsonrpc":"2.0","method":"add","id":""}', Request("add", None, "")),
            ('{"jsonrpc":"2.0","method":"add","id":12345678901234567890123}',
             Request("add", None, 12345678901234567890123)),
            ('{"jsonrpc":"2.0","method":"add","id":"\\u00e9"}', Request("add", None, "é")),
            # Members in any order, with whitespace, and unknown members ignored.
            (' {"id":1, "params":[[1]], "method":"a.b", "jsonrpc":"2.0", "x":{}} \n',
             Request("a.b", ([1],), 1)),
            # The grammar of method names is the callee's business (-32601), not the parser's.
            ('{"jsonrpc":"2.0","method":"_private","id":1}', Request("_private", None, 1)),
            ('{"jsonrpc":"2.0","method":"","id":1}', Request("", None, 1)),
            # Duplicate members: the last one wins, as with json.
            ('{"jsonrpc":"2.0","method":"a","method":"b","id":1}', Request("b", None, 1)),
            ('{"jsonrpc":"2.0","method":"update","params":[1,2,3]}',
             Notification("update", (1, 2, 3))),
            ('{"jsonrpc":"2.0","method":"update","params":{"x":null}}',
             Notification("update", {"x": None})),
            ('{"jsonrpc":"2.0","method":"foobar"}', Notification("foobar")),
        ],
    )  # fmt: skip
    def test_valid(self, text: str, message: Message) -> None:
        assert parse(text) == message
        assert type(parse(text)) is type(message)

    @pytest.mark.parametrize(
        ("text", "id", "detail"),
        [
            # An id that is not a string, a number or null cannot be echoed: null.
            ('{"jsonrpc":"2.0","method":"a","id":true}', None, messages._BAD_ID),
            ('{"jsonrpc":"2.0","method":"a","id":false}', None, messages._BAD_ID),
            ('{"jsonrpc":"2.0","method":"a","id":[1]}', None, messages._BAD_ID),
            ('{"jsonrpc":"2.0","method":"a","id":{"a":1}}', None, messages._BAD_ID),
            ('{"jsonrpc":"2.0","method":"a","id":1e400}', None, messages._BAD_ID),
            ('{"jsonrpc":"2.0","method":"a","id":"\\ud800"}', None, messages._BAD_ID),
            # A valid id is echoed, so that the caller's call fails at once.
            ('{"jsonrpc":"1.0","method":"a","id":1}', 1, messages._BAD_VERSION),
            ('{"method":"a","params":[],"id":1}', 1, messages._BAD_VERSION),
            ('{"jsonrpc":2.0,"method":"a","id":"x"}', "x", messages._BAD_VERSION),
            ('{"jsonrpc":"2.0","method":1,"id":2}', 2, '"method" member must be a string'),
            ('{"jsonrpc":"2.0","method":null,"id":2}', 2, '"method" member must be a string'),
            ('{"jsonrpc":"2.0","method":["a"],"id":2}', 2, '"method" member must be a string'),
            ('{"jsonrpc":"2.0","method":"a","params":null,"id":3}', 3, messages._BAD_PARAMS),
            ('{"jsonrpc":"2.0","method":"a","params":"bar","id":3}', 3, messages._BAD_PARAMS),
            ('{"jsonrpc":"2.0","method":"a","params":1,"id":3}', 3, messages._BAD_PARAMS),
            ('{"jsonrpc":"2.0","method":"a","params":true,"id":3}', 3, messages._BAD_PARAMS),
            # Invalid notifications are answered too, as in section 7.
            ('{"jsonrpc":"2.0","method":"a","params":"bar"}', None, messages._BAD_PARAMS),
            ('{"jsonrpc":"2.0","method":1}', None, '"method" member must be a string'),
            ('{"method":"a"}', None, messages._BAD_VERSION),
            # Neither a call nor a response.
            ('{"foo":"boo"}', None, 'missing "method" member'),
            ("{}", None, 'missing "method" member'),
            ('{"jsonrpc":"2.0","id":1}', None, 'missing "method" member'),
            ("1", None, "expected an object, got a number"),
            ("-0.5", None, "expected an object, got a number"),
            ('"text"', None, "expected an object, got a string"),
            ("null", None, "expected an object, got null"),
            ("true", None, "expected an object, got a boolean"),
        ],
    )  # fmt: skip
    def test_invalid(self, text: str, id: object, detail: str) -> None:
        assert parse(text) == invalid(id, detail)


# Section 5: responses, which a caller receives.


NO_ID = 'response without "id" member'
BOTH = 'response with both "result" and "error" members'
NOT_AN_OBJECT = '"error" member must be an object'
NO_CODE = '"error" member must have an integer "code"'
NO_MESSAGE = '"error" member must have a string "message"'


class TestParseResponses:
    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ('{"jsonrpc":"2.0","result":19,"id":1}', Response(1, 19)),
            ('{"jsonrpc":"2.0","result":null,"id":"a"}', Response("a", None)),
            ('{"id":1,"result":{"a":[1,"b"]},"jsonrpc":"2.0","x":0}',
             Response(1, {"a": [1, "b"]})),
            ('{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":1}',
             ErrorResponse(1, Error(-32601, "Method not found"))),
            ('{"jsonrpc":"2.0","error":{"code":-32000,"message":"x","data":{"type":"E"}},"id":2}',
             ErrorResponse(2, Error(-32000, "x", {"type": "E"}))),
            ('{"jsonrpc":"2.0","error":{"code":5,"message":"","data":null},"id":null}',
             ErrorResponse(None, Error(5, ""))),
            ('{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}',
             ErrorResponse(None, Error(PARSE_ERROR, "Parse error"))),
        ],
    )  # fmt: skip
    def test_valid(self, text: str, message: Message) -> None:
        assert parse(text) == message

    @pytest.mark.parametrize(
        ("text", "in_reply_to", "detail"),
        [
            ('{"jsonrpc":"2.0","result":1}', None, NO_ID),
            ('{"jsonrpc":"2.0","error":{"code":1,"message":""}}', None, NO_ID),
            ('{"jsonrpc":"2.0","result":1,"id":true}', None, messages._BAD_ID),
            ('{"jsonrpc":"2.0","result":1,"id":{}}', None, messages._BAD_ID),
            ('{"result":1,"id":3}', 3, messages._BAD_VERSION),
            ('{"result":1,"id":null}', None, messages._BAD_VERSION),
            ('{"jsonrpc":"2.0","result":1,"error":null,"id":"c"}', "c", BOTH),
            ('{"jsonrpc":"2.0","error":null,"id":4}', 4, NOT_AN_OBJECT),
            ('{"jsonrpc":"2.0","error":"boom","id":4}', 4, NOT_AN_OBJECT),
            ('{"jsonrpc":"2.0","error":{"message":"x"},"id":4}', 4, NO_CODE),
            ('{"jsonrpc":"2.0","error":{"code":"1","message":"x"},"id":4}', 4, NO_CODE),
            ('{"jsonrpc":"2.0","error":{"code":1.0,"message":"x"},"id":4}', 4, NO_CODE),
            ('{"jsonrpc":"2.0","error":{"code":true,"message":"x"},"id":4}', 4, NO_CODE),
            ('{"jsonrpc":"2.0","error":{"code":1},"id":4.5}', 4.5, NO_MESSAGE),
            ('{"jsonrpc":"2.0","error":{"code":1,"message":null},"id":4}', 4, NO_MESSAGE),
        ],
    )  # fmt: skip
    def test_invalid(self, text: str, in_reply_to: object, detail: str) -> None:
        # Answered with "id": null whatever the id, which belongs to the peer's namespace.
        error = Error(INVALID_REQUEST, "Invalid Request", detail)
        assert parse(text) == Invalid(None, error, in_reply_to)  # type: ignore[arg-type]


# Whole messages that are not JSON text: -32700, with "id": null.


class TestParseErrors:
    @pytest.mark.parametrize(
        "text",
        [
            "",
            " ",
            "{",
            "[1,]",
            '{"a":1,}',
            "{'jsonrpc': '2.0'}",
            '{"a" 1}',
            "{} {}",
            "[] x",
            '"\\x"',
            '"unterminated',
            '"tab\tinside"',
            "\ufeff{}",
            "01",
            "1.",
            ".5",
            "+1",
            "0x10",
            "undefined",
        ],
    )
    def test_invalid_json(self, text: str) -> None:
        result = parse(text)
        assert isinstance(result, Invalid)
        assert result.id is None
        assert result.error.code == PARSE_ERROR
        assert result.error.message == "Parse error"
        assert isinstance(result.error.data, str)
        assert result.error.data.startswith("invalid JSON: ")

    @pytest.mark.parametrize(
        ("text", "name"),
        [
            ("NaN", "NaN"),
            ("Infinity", "Infinity"),
            ("-Infinity", "-Infinity"),
            ('[{"id":NaN}]', "NaN"),
        ],
    )
    def test_nan_and_infinities_are_not_json(self, text: str, name: str) -> None:
        detail = f"invalid JSON: {name} is not a JSON value"
        assert parse(text) == Invalid(None, Error(PARSE_ERROR, "Parse error", detail))

    @pytest.mark.parametrize(
        ("data", "detail"),
        [
            (b"\xff", "invalid UTF-8 at byte 0"),
            (b'{"a":"\xc3"}', "invalid UTF-8 at byte 6"),
            (b'"\xed\xa0\x80"', "invalid UTF-8 at byte 1"),  # an encoded surrogate
            (b"\xff\xfe{\x00}\x00", "invalid UTF-8 at byte 0"),  # UTF-16 is not guessed
            (b"\xc0\xaf", "invalid UTF-8 at byte 0"),  # overlong
        ],
    )
    def test_invalid_utf8(self, data: bytes, detail: str) -> None:
        assert parse(data) == Invalid(None, Error(PARSE_ERROR, "Parse error", detail))

    @pytest.mark.parametrize("kind", [str, bytes, bytearray, memoryview])
    def test_binary_message(self, kind: Callable[[bytes], Any]) -> None:
        # Refused whatever it holds, even a valid request (docs/rpc-protocol.md, Transport).
        data = b'{"jsonrpc":"2.0","method":"a","id":1}'
        sent = kind(data.decode()) if kind is str else kind(data)
        error = Error(PARSE_ERROR, "Parse error", "binary message")
        assert parse(sent, binary=True) == Invalid(None, error)
        assert exchange_binary(sent) == (
            '{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error",'
            '"data":"binary message"},"id":null}'
        )

    @pytest.mark.parametrize(
        "text",
        [
            "[" * 100_000,
            "[" * 100_000 + "]" * 100_000,
            '{"a":' * 100_000,
            '{"a":' * 100_000 + "1" + "}" * 100_000,
            '[{"jsonrpc":"2.0","method":"a","params":' + "[" * 50_000 + "]" * 50_000 + "}]",
        ],
    )
    def test_nesting_too_deep(self, text: str) -> None:
        error = Error(PARSE_ERROR, "Parse error", "JSON nested too deeply")
        assert parse(text) == Invalid(None, error)
        assert parse(text.encode()) == Invalid(None, error)

    def test_nesting_that_json_accepts(self) -> None:
        depth = 100
        text = '{"jsonrpc":"2.0","method":"a","params":' + "[" * depth + "]" * depth + ',"id":1}'
        params = parse(text).params  # type: ignore[union-attr]
        assert isinstance(params, tuple)

    @pytest.mark.skipif(
        sys.get_int_max_str_digits() == 0 if hasattr(sys, "get_int_max_str_digits") else True,
        reason="this interpreter has no limit on the digits of integers",
    )
    def test_number_too_large(self) -> None:
        text = '{"jsonrpc":"2.0","method":"a","params":[' + "9" * 5000 + '],"id":1}'
        error = Error(PARSE_ERROR, "Parse error", "JSON number too large")
        assert parse(text) == Invalid(None, error)

    def test_large_numbers_are_accepted(self) -> None:
        big = 10**300
        text = f'{{"jsonrpc":"2.0","method":"a","params":[{big}, 1e308, 1e400],"id":1}}'
        # 1e400 is a JSON number; Python reads it as infinity, which serialize() refuses.
        assert parse(text) == Request("a", (big, 1e308, float("inf")), 1)

    @pytest.mark.parametrize("data", [None, 1, ["{}"], {"jsonrpc": "2.0"}])
    def test_not_text(self, data: Any) -> None:
        with pytest.raises(TypeError, match="data must be str or bytes"):
            parse(data)

    @pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
    def test_bytes_like(self, kind: Callable[[bytes], Any]) -> None:
        data = '{"jsonrpc":"2.0","method":"é","params":["ü"],"id":1}'.encode()
        assert parse(kind(data)) == Request("é", ("ü",), 1)


def exchange_binary(sent: str | bytes) -> str | None:
    incoming = parse(sent, binary=True)
    assert isinstance(incoming, Invalid)
    return serialize_answers(incoming, [incoming.response])


# Section 6: batches.


class TestBatches:
    def test_mixed(self) -> None:
        # Both ends are callers and callees: a batch may mix calls and responses.
        text = json.dumps(
            [
                {"jsonrpc": "2.0", "method": "a", "params": [1], "id": 1},
                {"jsonrpc": "2.0", "method": "b"},
                {"jsonrpc": "2.0", "result": 2, "id": 7},
                {"jsonrpc": "2.0", "error": {"code": -32000, "message": "no"}, "id": 8},
                {"foo": "boo"},
                [],
            ]
        )
        assert parse(text) == Batch(
            (
                Request("a", (1,), 1),
                Notification("b"),
                Response(7, 2),
                ErrorResponse(8, Error(-32000, "no")),
                invalid(None, 'missing "method" member'),
                invalid(None, "expected an object, got an array"),
            )
        )

    def test_iteration(self) -> None:
        batch = parse('[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"b"}]')
        assert isinstance(batch, Batch)
        assert len(batch) == 2
        assert list(batch) == [Notification("a"), Notification("b")]

    def test_responses_only_are_not_answered(self) -> None:
        assert exchange('[{"jsonrpc":"2.0","result":1,"id":1}]') is None

    def test_a_batch_of_one_is_answered_with_an_array(self) -> None:
        assert exchange('[{"jsonrpc":"2.0","method":"get_data","id":1}]') == (
            '[{"jsonrpc":"2.0","result":["hello",5],"id":1}]'
        )

    def test_default_limit(self) -> None:
        notification = '{"jsonrpc":"2.0","method":"a"}'
        assert len(parse(f"[{','.join([notification] * MAX_BATCH)}]")) == MAX_BATCH  # type: ignore[arg-type]
        detail = f"batch with {MAX_BATCH + 1} messages exceeds limit of {MAX_BATCH} messages"
        error = Error(INVALID_REQUEST, "Invalid Request", detail)
        assert parse(f"[{','.join([notification] * (MAX_BATCH + 1))}]") == Invalid(None, error)

    def test_limit_is_an_argument(self) -> None:
        detail = "batch with 3 messages exceeds limit of 2 messages"
        assert parse("[1,2,3]", max_batch=2) == invalid(None, detail)
        assert len(parse("[1,2]", max_batch=2)) == 2  # type: ignore[arg-type]
        text = "[" + ",".join(["1"] * 1000) + "]"
        assert len(parse(text, max_batch=None)) == 1000  # type: ignore[arg-type]

    def test_limit_refuses_the_whole_batch(self) -> None:
        # One error with "id": null: nothing in the batch runs.
        text = json.dumps([{"jsonrpc": "2.0", "method": "get_data", "id": i} for i in range(3)])
        assert json.loads(exchange_limited(text, 2)) == {
            "jsonrpc": "2.0",
            "error": {
                "code": -32600,
                "message": "Invalid Request",
                "data": "batch with 3 messages exceeds limit of 2 messages",
            },
            "id": None,
        }


def exchange_limited(text: str, max_batch: int) -> str:
    incoming = parse(text, max_batch=max_batch)
    assert isinstance(incoming, Invalid)
    result = serialize_answers(incoming, [incoming.response])
    assert result is not None
    return result


# Serializing.


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class TestSerialize:
    @pytest.mark.parametrize(
        ("message", "text"),
        [
            (Request("subtract", (42, 23), 1),
             '{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1}'),
            (Request("subtract", {"minuend": 42}, "a"),
             '{"jsonrpc":"2.0","method":"subtract","params":{"minuend":42},"id":"a"}'),
            (Request("get_data", None, 9), '{"jsonrpc":"2.0","method":"get_data","id":9}'),
            (Request("get_data", (), None),
             '{"jsonrpc":"2.0","method":"get_data","params":[],"id":null}'),
            (Request("a", None, 1.5), '{"jsonrpc":"2.0","method":"a","id":1.5}'),
            (Notification("update", (1, 2)), '{"jsonrpc":"2.0","method":"update","params":[1,2]}'),
            (Notification("foobar"), '{"jsonrpc":"2.0","method":"foobar"}'),
            (Response(1, 19), '{"jsonrpc":"2.0","result":19,"id":1}'),
            (Response("x", None), '{"jsonrpc":"2.0","result":null,"id":"x"}'),
            (Response(1, {"é": "ü\u2028😀"}),
             '{"jsonrpc":"2.0","result":{"é":"ü\u2028😀"},"id":1}'),
            (Response(1, "\x00\x1f\x7f\"\\/"),
             '{"jsonrpc":"2.0","result":"\\u0000\\u001f\x7f\\"\\\\/","id":1}'),
            (Response(1, [0.1, -0.0, 1e16, 1e-5, 1e-7, 5e-324, 2**64]),
             '{"jsonrpc":"2.0","result":[0.1,-0.0,1e+16,1e-05,1e-07,5e-324,'
             '18446744073709551616],"id":1}'),
            (ErrorResponse(1, Error(-32601, "Method not found")),
             '{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":1}'),
            (ErrorResponse(None, Error(PARSE_ERROR, "Parse error", "binary message")),
             '{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error",'
             '"data":"binary message"},"id":null}'),
        ],
    )  # fmt: skip
    def test_byte_for_byte(self, message: Message, text: str) -> None:
        assert serialize(message) == text
        # Two-way: the text parses back to the message.
        assert parse(text) == message

    def test_batch(self) -> None:
        batch: list[Message] = [Request("a", (1,), 1), Notification("b"), Response(2, True)]
        text = (
            '[{"jsonrpc":"2.0","method":"a","params":[1],"id":1},'
            '{"jsonrpc":"2.0","method":"b"},{"jsonrpc":"2.0","result":true,"id":2}]'
        )
        assert serialize(batch) == text
        assert serialize(tuple(batch)) == text
        assert parse(text) == Batch(tuple(batch))

    def test_empty_batch(self) -> None:
        # Section 6: the server "MUST NOT return an empty Array".
        with pytest.raises(ValueError, match="empty batch"):
            serialize([])

    @pytest.mark.parametrize("message", [Invalid(None, Error(-32600, "x")), "text", None, 1])
    def test_not_a_message(self, message: Any) -> None:
        with pytest.raises(TypeError, match="cannot serialize"):
            serialize(message)

    def test_invalid_hint(self) -> None:
        with pytest.raises(TypeError, match=r"send its \.response"):
            serialize([Invalid(None, Error(-32600, "x"))])  # type: ignore[list-item]

    def test_mapping_params(self) -> None:
        params = MappingProxyType({"a": 1})
        text = '{"jsonrpc":"2.0","method":"m","params":{"a":1}}'
        assert serialize(Notification("m", params)) == text

    def test_list_params(self) -> None:
        request = Request("m", [1, 2], 1)  # type: ignore[arg-type]
        assert serialize(request) == '{"jsonrpc":"2.0","method":"m","params":[1,2],"id":1}'

    def test_error_codes_are_integers(self) -> None:
        response = ErrorResponse(1, Error(ErrorCode.CALL_TIMEOUT, "call timed out after 1 s"))
        assert serialize(response) == (
            '{"jsonrpc":"2.0","error":{"code":-32001,"message":"call timed out after 1 s"},"id":1}'
        )


# Values that serialize() takes or refuses, with either backend.

ACCEPTED = [
    pytest.param(Color.RED, '"red"', id="enum"),
    pytest.param(Level.HIGH, "3", id="int-enum"),
    pytest.param({"k": Color.RED}, '{"k":"red"}', id="enum-in-dict"),
    pytest.param(uuid.UUID(int=1), '"00000000-0000-0000-0000-000000000001"', id="uuid"),
    pytest.param(
        {1: "a", 2.5: "b", False: "c", None: "d"},
        '{"1":"a","2.5":"b","false":"c","null":"d"}',
        id="keys",
    ),  # fmt: skip
    pytest.param((1, (2,)), "[1,[2]]", id="tuple"),
    pytest.param(2**100, str(2**100), id="big-int"),
    pytest.param([None, 1e-6, 3e-5], "[null,1e-06,3e-05]", id="suspect"),
    pytest.param("null 0.00001 1e-5", '"null 0.00001 1e-5"', id="suspect-string"),
    pytest.param(type("S", (str,), {})("s"), '"s"', id="str-subclass"),
    pytest.param(type("D", (dict,), {})(a=1), '{"a":1}', id="dict-subclass"),
    pytest.param([[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]], "[" * 16 + "1" + "]" * 16, id="nested"),
]


def circular() -> list[object]:
    value: list[object] = []
    value.append(value)
    return value


REFUSED = [
    pytest.param(float("nan"), ValueError, id="nan"),
    pytest.param(float("inf"), ValueError, id="infinity"),
    pytest.param([1, float("-inf")], ValueError, id="negative-infinity-in-list"),
    pytest.param("\ud800", ValueError, id="lone-surrogate"),
    pytest.param({"\udfff": 1}, ValueError, id="lone-surrogate-key"),
    pytest.param(circular(), ValueError, id="circular"),
    pytest.param(10**5000, ValueError, id="too-many-digits"),
    pytest.param({1, 2}, TypeError, id="set"),
    pytest.param(b"bytes", TypeError, id="bytes"),
    pytest.param(datetime(2020, 1, 1), TypeError, id="datetime"),
    pytest.param(Error(1, "x"), TypeError, id="dataclass"),
    pytest.param(object(), TypeError, id="object"),
    pytest.param({(1, 2): 1}, TypeError, id="tuple-key"),
]


def nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("dumps", DUMPS)
class TestBackends:
    @pytest.mark.parametrize(("value", "text"), ACCEPTED)
    def test_accepted(self, dumps: Callable[[object], str], value: object, text: str) -> None:
        assert dumps(value) == text

    @pytest.mark.parametrize(("value", "exc_type"), REFUSED)
    def test_refused(
        self, dumps: Callable[[object], str], value: object, exc_type: type[Exception]
    ) -> None:
        with pytest.raises(exc_type) as exc_info:
            dumps(value)
        assert type(exc_info.value) is exc_type

    def test_too_deep(self, dumps: Callable[[object], str]) -> None:
        with pytest.raises(ValueError, match="nested too deeply"):
            dumps(nested(100_000))

    def test_deep_enough(self, dumps: Callable[[object], str]) -> None:
        # Deeper than orjson goes (254 levels): json takes over.
        assert dumps(nested(300)) == "[" * 301 + "]" * 301


@NO_ORJSON
def test_orjson_is_used_when_installed() -> None:
    assert messages._orjson_agrees()
    assert messages._dumps is messages._dumps_orjson


def test_json_is_used_without_orjson() -> None:
    code = (
        "import sys; sys.modules['orjson'] = None\n"  # makes "import orjson" fail
        "from socketeer.rpc import messages\n"
        "assert not messages._HAVE_ORJSON\n"
        "assert messages._dumps is messages._dumps_json\n"
        "assert messages.serialize(messages.Response(1, 1e-05)) == "
        '\'{"jsonrpc":"2.0","result":1e-05,"id":1}\'\n'
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_serialize_uses_the_chosen_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []

    def dumps(value: object) -> str:
        calls.append(value)
        return "{}"

    monkeypatch.setattr(messages, "_dumps", dumps)
    assert serialize(Response(1, 2)) == "{}"
    assert calls == [{"jsonrpc": "2.0", "result": 2, "id": 1}]


class TestSerializeAnswers:
    def test_nothing_to_send(self) -> None:
        assert serialize_answers(Notification("a"), []) is None
        assert serialize_answers(Batch((Notification("a"),)), iter([])) is None

    def test_single(self) -> None:
        text = serialize_answers(Request("a", None, 1), [Response(1, 2)])
        assert text == '{"jsonrpc":"2.0","result":2,"id":1}'

    def test_batch(self) -> None:
        text = serialize_answers(Batch((Request("a", None, 1),)), (a for a in [Response(1, 2)]))
        assert text == '[{"jsonrpc":"2.0","result":2,"id":1}]'

    def test_several_answers_to_one_message(self) -> None:
        with pytest.raises(ValueError, match="2 answers to a single message"):
            serialize_answers(Request("a", None, 1), [Response(1, 2), Response(1, 3)])


# Error codes and the standard error responses (docs/rpc-protocol.md, Errors).


class TestErrors:
    def test_codes(self) -> None:
        assert [int(code) for code in ErrorCode] == [
            -32700, -32600, -32601, -32602, -32603, -32000, -32001, -32002,
            -32003, -32004,
        ]  # fmt: skip
        assert (PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS) == (
            -32700,
            -32600,
            -32601,
            -32602,
        )
        assert (INTERNAL_ERROR, APPLICATION_ERROR, CALL_TIMEOUT, CALL_CANCELLED) == (
            -32603,
            -32000,
            -32001,
            -32002,
        )

    @pytest.mark.parametrize(
        ("response", "text"),
        [
            (parse_error("binary message"),
             '{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error",'
             '"data":"binary message"},"id":null}'),
            (invalid_request(3, "empty batch"),
             '{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request",'
             '"data":"empty batch"},"id":3}'),
            (method_not_found("a", "foo.get"),
             '{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found",'
             '"data":"foo.get"},"id":"a"}'),
            (invalid_params(1, "missing argument 'x'"),
             '{"jsonrpc":"2.0","error":{"code":-32602,"message":"Invalid params",'
             '"data":"missing argument \'x\'"},"id":1}'),
            (internal_error(1, "result of type set is not JSON serializable"),
             '{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error",'
             '"data":"result of type set is not JSON serializable"},"id":1}'),
            (application_error(1, ValueError("bad value")),
             '{"jsonrpc":"2.0","error":{"code":-32000,"message":"bad value",'
             '"data":{"type":"ValueError","message":"bad value"}},"id":1}'),
            (application_error(1, KeyError("k")),
             '{"jsonrpc":"2.0","error":{"code":-32000,"message":"\'k\'",'
             '"data":{"type":"KeyError","message":"\'k\'"}},"id":1}'),
            (application_error(1, ValueError()),
             '{"jsonrpc":"2.0","error":{"code":-32000,"message":"ValueError",'
             '"data":{"type":"ValueError","message":""}},"id":1}'),
            (call_timeout(1, 5),
             '{"jsonrpc":"2.0","error":{"code":-32001,"message":"call timed out after 5 s"},'
             '"id":1}'),
            (call_timeout(1, 0.25),
             '{"jsonrpc":"2.0","error":{"code":-32001,"message":"call timed out after 0.25 s"},'
             '"id":1}'),
            (call_cancelled(1),
             '{"jsonrpc":"2.0","error":{"code":-32002,"message":"call cancelled"},"id":1}'),
            (forbidden(1, "call admin.reset not allowed"),
             '{"jsonrpc":"2.0","error":{"code":-32003,"message":"forbidden",'
             '"data":"call admin.reset not allowed"},"id":1}'),
            (rate_limited(1, 0.12345),
             '{"jsonrpc":"2.0","error":{"code":-32004,"message":"rate limit exceeded",'
             '"data":{"retry_after":0.123}},"id":1}'),
        ],
    )  # fmt: skip
    def test_byte_for_byte(self, response: ErrorResponse, text: str) -> None:
        assert serialize(response) == text
        assert parse(text) == response

    def test_application_error_debug(self) -> None:
        def fail() -> None:
            raise ValueError("bad value")

        try:
            fail()
        except ValueError as exc:
            response = application_error(1, exc, debug=True)
        data = response.error.data
        assert isinstance(data, dict)
        assert data["type"] == "ValueError"
        assert data["message"] == "bad value"
        traceback = data["traceback"]
        assert isinstance(traceback, str)
        assert traceback.startswith("Traceback (most recent call last):\n")
        assert "in fail\n" in traceback
        assert traceback.endswith("ValueError: bad value\n")
        assert "traceback" not in application_error(1, ValueError("bad value")).error.data  # type: ignore[operator]

    def test_application_error_with_a_broken_str(self) -> None:
        class Broken(Exception):
            def __str__(self) -> str:
                raise RuntimeError("no")

        response = application_error(1, Broken(), debug=True)
        assert response.error.message == "<unprintable Broken object>"
        serialize(response)

    def test_values_json_cannot_carry_are_replaced(self) -> None:
        # A lone surrogate in a message or a method name must not prevent answering.
        for response in [
            application_error(1, ValueError("\ud800"), debug=True),
            method_not_found(1, "a\udfffb"),
            invalid_params(1, "unexpected argument '\ud800'"),
            internal_error(1, "\ud800"),
        ]:
            assert "\\ud" not in serialize(response)
        assert method_not_found(1, "a\udfffb").error.data == "a?b"

    def test_method_not_found_clips_long_names(self) -> None:
        response = method_not_found(1, "x" * 10_000)
        assert response.error.data == "x" * 128 + "…"

    def test_to_exception(self) -> None:
        exc = Error(
            -32000, "bad value", {"type": "ValueError", "message": "bad value"}
        ).to_exception()
        assert isinstance(exc, RemoteError)
        assert (exc.code, exc.message, exc.data) == (-32000, "bad value", exc.data)
        assert (exc.type_name, exc.traceback) == ("ValueError", None)


class TestRemoteError:
    def test_tree(self) -> None:
        assert issubclass(RemoteError, RPCError)
        assert issubclass(RPCError, SocketeerError)
        assert "RemoteError" in exceptions.__all__
        assert exceptions.__doc__ is not None
        assert "│   ├── RemoteError" in exceptions.__doc__

    def test_application_error(self) -> None:
        data: dict[str, JSONValue] = {"type": "ValueError", "message": "bad", "traceback": "..."}
        exc = RemoteError(-32000, "bad", data)
        assert (exc.code, exc.message, exc.data) == (-32000, "bad", data)
        assert exc.type_name == "ValueError"
        assert exc.traceback == "..."
        assert str(exc) == "ValueError: bad"

    def test_application_error_without_message(self) -> None:
        exc = RemoteError(-32000, "ValueError", {"type": "ValueError", "message": ""})
        assert str(exc) == "ValueError"

    def test_protocol_error(self) -> None:
        exc = RemoteError(-32601, "Method not found", "foo.get")
        assert (exc.type_name, exc.traceback) == (None, None)
        assert str(exc) == "Method not found: foo.get (code -32601)"
        assert str(RemoteError(-32002, "call cancelled")) == "call cancelled (code -32002)"

    @pytest.mark.parametrize("data", [None, 1, "", [], {"type": 1, "traceback": []}])
    def test_odd_data(self, data: Any) -> None:
        exc = RemoteError(5, "x", data)
        assert (exc.type_name, exc.traceback) == (None, None)
        assert str(exc) == "x (code 5)"

    def test_pickle(self) -> None:
        import pickle

        exc = pickle.loads(pickle.dumps(RemoteError(-32000, "bad", {"type": "E"})))
        assert (exc.code, exc.message, exc.data) == (-32000, "bad", {"type": "E"})
        assert exc.type_name == "E"


# Method names (docs/rpc-protocol.md, Method names).


class TestMethodNames:
    @pytest.mark.parametrize(
        "name",
        [
            "add", "counter.increment", "ui.flash", "a", "A9_", "a.b.c", "get_data",
            "rpc.discover", "x" * 128,
        ],
    )  # fmt: skip
    def test_valid(self, name: str) -> None:
        assert is_valid_method_name(name)

    @pytest.mark.parametrize(
        "name",
        [
            "", "_private", "a._b", "a.", ".a", "a..b", "1a", "a.1", "a-b", "a b", "a/b",
            "é", "a\n", "\na", "$/cancel", "$/ping", "__class__", "a.__init__", "x" * 129,
            "a" + ".b" * 64,
        ],
    )  # fmt: skip
    def test_invalid(self, name: str) -> None:
        assert not is_valid_method_name(name)

    def test_reserved(self) -> None:
        assert RESERVED_METHODS == {CANCEL_METHOD, PING_METHOD, DISCOVER_METHOD}
        assert CANCEL_METHOD == "$/cancel"
        assert PING_METHOD == "$/ping"
        assert DISCOVER_METHOD == "rpc.discover"
        for name in [*RESERVED_METHODS, "$/room/lobby", "rpc.other", "$/"]:
            assert is_reserved_method_name(name)
        for name in ["rpc", "rpcx.a", "RPC.discover", "a.rpc.b", "$", "$x"]:
            assert not is_reserved_method_name(name)


# Pairing responses with the caller's pending requests.


class TestPendingCalls:
    def test_ids_increase_from_1(self) -> None:
        calls: PendingCalls[str] = PendingCalls()
        assert [calls.add("a"), calls.add("b"), calls.add("c")] == [1, 2, 3]
        assert len(calls) == 3
        assert 2 in calls

    def test_pop(self) -> None:
        calls: PendingCalls[str] = PendingCalls()
        id = calls.add("a")
        response = parse(serialize(Response(id, 5)))
        assert isinstance(response, Response)
        assert calls.pop(response.id) == "a"
        # A late answer (after a timeout or a cancel) finds nothing.
        assert calls.pop(response.id) is None
        assert len(calls) == 0

    def test_ids_are_not_reused(self) -> None:
        calls: PendingCalls[str] = PendingCalls()
        calls.pop(calls.add("a"))
        assert calls.add("b") == 2

    def test_string_ids_do_not_match(self) -> None:
        calls: PendingCalls[str] = PendingCalls()
        calls.add("a")
        assert calls.pop("1") is None
        assert calls.pop(None) is None
        assert calls.pop(1) == "a"

    def test_invalid_response_names_its_call(self) -> None:
        calls: PendingCalls[str] = PendingCalls()
        id = calls.add("a")
        invalid = parse(f'{{"jsonrpc":"2.0","result":1,"error":{{}},"id":{id}}}')
        assert isinstance(invalid, Invalid)
        assert invalid.id is None
        assert calls.pop(invalid.in_reply_to) == "a"

    def test_pop_all(self) -> None:
        calls: PendingCalls[str] = PendingCalls()
        calls.add("a")
        calls.add("b")
        assert calls.pop_all() == ["a", "b"]
        assert len(calls) == 0
        assert calls.add("c") == 3


def test_exports() -> None:
    from socketeer import rpc
    from socketeer.rpc import access, client, peer, routes, server

    modules = [messages, routes, peer, server, client, access]
    exported = {name for module in modules for name in module.__all__}
    exceptions = {"RPCError", "RemoteError", "CallTimeout", "ConnectionLost"}
    assert set(rpc.__all__) == exported - {"check_method_name"} | exceptions
    assert len(rpc.__all__) == len(set(rpc.__all__))
    for name in rpc.__all__:
        assert getattr(rpc, name) is not None


# Properties (Hypothesis).

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
ids = st.none() | st.integers() | st.text() | st.floats(allow_nan=False, allow_infinity=False)
params = (
    st.none()
    | st.lists(json_values, max_size=4).map(tuple)
    | st.dictionaries(st.text(max_size=8), json_values, max_size=4)
)
methods = st.text() | st.sampled_from([*METHODS, "foobar", "foo.get", *RESERVED_METHODS])
errors = st.builds(Error, st.integers(), st.text(), json_values)
valid_messages: st.SearchStrategy[Message] = (
    st.builds(Request, methods, params, ids)
    | st.builds(Notification, methods, params)
    | st.builds(Response, ids, json_values)
    | st.builds(ErrorResponse, ids, errors)
)

# Objects that look like messages, with members drawn from the ones that matter.
members = st.sampled_from(["jsonrpc", "method", "params", "id", "result", "error", "extra"])
member_values = (
    json_values
    | st.just("2.0")
    | methods
    | st.fixed_dictionaries({"code": st.integers(), "message": st.text()})
    | st.dictionaries(st.sampled_from(["code", "message", "data"]), json_values)
)
message_like = st.dictionaries(members, member_values)
documents = message_like | json_values | st.lists(message_like | json_values, max_size=5)

# Python values that serialize() may be given, JSON or not.
any_scalars = (
    json_scalars
    | st.floats()
    | st.text(st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010))  # lone surrogates
    | st.integers(min_value=2**62, max_value=2**70)
    | st.sampled_from([Color.RED, Level.HIGH, uuid.UUID(int=7), b"x", frozenset(), 1e-5, 1e-9])
)
any_values = st.recursive(
    any_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=4) | st.integers() | st.none(), children, max_size=4)
    ),
    max_leaves=20,
)


def check_answerable(incoming: Incoming) -> None:
    """A callee can answer whatever parse() returns, with valid responses only, one for each
    request and each invalid item, carrying their ids."""
    items = list(incoming) if isinstance(incoming, Batch) else [incoming]
    answers = [a for a in map(answer, items) if a is not None]
    expected_ids = [item.id for item in items if isinstance(item, (Request, Invalid))]
    assert [a.id for a in answers] == expected_ids
    text = serialize_answers(incoming, answers)
    if text is None:
        assert not expected_ids
        return
    back = parse(text)
    back_items = list(back) if isinstance(back, Batch) else [back]
    assert isinstance(back, Batch) == isinstance(incoming, Batch)
    assert all(isinstance(item, (Response, ErrorResponse)) for item in back_items)
    assert [item.id for item in back_items] == expected_ids  # type: ignore[union-attr]


class TestProperties:
    @given(st.text())
    def test_any_text(self, text: str) -> None:
        check_answerable(parse(text))

    @given(st.binary(), st.booleans())
    def test_any_bytes(self, data: bytes, binary: bool) -> None:
        check_answerable(parse(data, binary=binary))

    @given(documents)
    def test_any_json(self, document: object) -> None:
        check_answerable(parse(json.dumps(document)))

    @given(documents, st.data())
    def test_cut_json(self, document: object, data: st.DataObject) -> None:
        text = json.dumps(document)
        cut = data.draw(st.integers(0, len(text)))
        check_answerable(parse(text[:cut]))
        check_answerable(parse(text[:cut].encode()[: cut + 1]))

    @given(st.lists(documents, max_size=10), st.integers(1, 5))
    def test_batches(self, documents: list[object], max_batch: int) -> None:
        check_answerable(parse(json.dumps(documents), max_batch=max_batch))

    @given(valid_messages)
    def test_round_trip(self, message: Message) -> None:
        text = serialize(message)
        assert parse(text) == message
        assert parse(text.encode()) == message

    @given(st.lists(valid_messages, min_size=1, max_size=5))
    def test_batch_round_trip(self, batch: list[Message]) -> None:
        assert parse(serialize(batch), max_batch=None) == Batch(tuple(batch))

    @given(json_values)
    def test_json_values_round_trip(self, value: Any) -> None:
        assert json.loads(serialize(Response(1, value)))["result"] == value

    @NO_ORJSON
    @settings(max_examples=500)
    @given(any_values)
    def test_backends_agree(self, value: object) -> None:
        assert outcome(messages._dumps_orjson, value) == outcome(messages._dumps_json, value)


def outcome(dumps: Callable[[object], str], value: object) -> tuple[str, object]:
    try:
        return ("text", dumps(value))
    except (TypeError, ValueError) as exc:
        return ("error", type(exc))
