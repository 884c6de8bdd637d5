"""Properties of the JSON-RPC 2.0 codec (``socketeer.rpc.messages``), checked against the
specification (https://www.jsonrpc.org/specification), RFC 8259 and ``docs/rpc-protocol.md``
rather than against the code:

- round trips: whatever :func:`serialize` writes, :func:`parse` reads back as the same
  message (and :func:`serialize` writes the same text again), for requests, notifications,
  responses, error responses and batches, ids of every kind, params by position and by name,
  and any JSON value (unicode, integers up to the interpreter's 4300 digits, nesting);
- any input: :func:`parse` never raises for text or bytes (its only documented exception is
  ``TypeError`` for anything else), and returns what an independent oracle says: -32700 with
  ``"id": null`` exactly for what is not JSON text (an RFC 8259 recognizer written here, not
  the json module), else each element classified by the rules of sections 4 to 6;
- batches, end to end: a real RPC server over loopback answers a batch with one response
  per request and per invalid element (with their ids), and nothing when there is none.

The inputs are arbitrary text and bytes, token soups close to JSON, arbitrary JSON values,
and near-misses: valid messages with members removed, retyped, added or duplicated, then
edited character by character.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import socketeer
import socketeer.sync
from socketeer.rpc import RPC, SUBPROTOCOL
from socketeer.rpc.messages import (
    INVALID_REQUEST,
    MAX_BATCH,
    PARSE_ERROR,
    Batch,
    Error,
    ErrorResponse,
    Incoming,
    Invalid,
    Item,
    Message,
    Notification,
    Request,
    Response,
    parse,
    serialize,
)
from timing import MS

STEP = 5_000 * MS
"""Longest a single exchange with the server may take; only catches hangs."""

# Examples per property: drawing a nested JSON value costs Hypothesis about 10 ms; the whole
# module stays within about 20 s on a busy machine.
SETTINGS = settings(max_examples=80, deadline=None)
FEWER = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# The "message" of the errors of section 5.1, word for word.
SPEC_MESSAGES: dict[int, str] = {PARSE_ERROR: "Parse error", INVALID_REQUEST: "Invalid Request"}

INT_MAX_STR_DIGITS = 4300
"""The interpreter's default limit on the digits of an integer converted from or to text."""


# Strategies: JSON values and valid messages.

# Any Unicode scalar value (no lone surrogates, which UTF-8 cannot carry), with the
# characters that matter to JSON writers and readers drawn more often.
unicode_text = st.text(
    st.characters(codec="utf-8")
    | st.sampled_from(['"', "\\", "/", "\x00", "\x1f", "\x7f", "\u2028", "\ufeff", "😀", "é"]),
    max_size=12,
)
big_ints = (
    st.integers(0, INT_MAX_STR_DIGITS - 1).map(lambda n: 10 ** (n + 1) - 1)
    | st.sampled_from([2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1])
).flatmap(lambda n: st.sampled_from([n, -n]))
json_ints = st.integers() | big_ints
json_floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [-0.0, 5e-324, 1e-7, 1e16, 1.7976931348623157e308, 0.1]
)
json_scalars = st.none() | st.booleans() | json_ints | json_floats | unicode_text
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(unicode_text, children, max_size=4)
    ),
    max_leaves=15,
)
ids = st.none() | json_ints | json_floats | unicode_text
params = (
    st.none()
    | st.lists(json_values, max_size=4).map(tuple)
    | st.dictionaries(unicode_text, json_values, max_size=4)
)
method_names = unicode_text | st.sampled_from(
    ["add", "counter.increment", "rpc.discover", "$/ping", "$/room/join", "", "a" * 200]
)
errors = st.builds(
    Error,
    st.integers() | big_ints | st.sampled_from([-32700, -32600, -32601, -32602, -32603]),
    unicode_text,
    json_values,
)
requests = st.builds(Request, method_names, params, ids)
notifications = st.builds(Notification, method_names, params)
responses = st.builds(Response, ids, json_values)
error_responses = st.builds(ErrorResponse, ids, errors)
messages: st.SearchStrategy[Message] = requests | notifications | responses | error_responses


def deeply_nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


# An independent oracle: RFC 8259, then JSON-RPC 2.0 sections 4 to 6 and docs/rpc-protocol.md.

_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"')
_LITERALS = ("true", "false", "null")


class _Scan:
    """What the recognizer learned of a JSON text besides its validity."""

    def __init__(self) -> None:
        self.depth = 0
        self.max_depth = 0
        self.longest_int = 0  # digits of the longest number without fraction nor exponent


def json_text_scan(text: str) -> _Scan | None:
    """RFC 8259 section 2: ``JSON-text = ws value ws``; a scan if ``text`` is one, else
    ``None``. Written from the grammar, independently of the json module."""
    scan = _Scan()
    try:
        end = _value(text, _WS.match(text, 0).end(), scan)  # type: ignore[union-attr]
    except _NotJSONText:
        return None
    return scan if _WS.match(text, end).end() == len(text) else None  # type: ignore[union-attr]


class _NotJSONText(Exception):
    pass


def _value(text: str, pos: int, scan: _Scan) -> int:
    """Recognize one value at ``pos``; return the position after it."""
    char = text[pos : pos + 1]
    if char in ("{", "["):
        return _container(text, pos, scan)
    if char == '"':
        match = _STRING.match(text, pos)
    else:
        for literal in _LITERALS:
            if text.startswith(literal, pos):
                return pos + len(literal)
        match = _NUMBER.match(text, pos)
        if match is not None and match.group(1) is None and match.group(2) is None:
            scan.longest_int = max(scan.longest_int, len(match.group().lstrip("-")))
    if match is None:
        raise _NotJSONText
    return match.end()


def _container(text: str, pos: int, scan: _Scan) -> int:
    closing = "}" if text[pos] == "{" else "]"
    scan.depth += 1
    scan.max_depth = max(scan.max_depth, scan.depth)
    pos = _skip_ws(text, pos + 1)
    if text.startswith(closing, pos):
        scan.depth -= 1
        return pos + 1
    while True:
        if closing == "}":
            match = _STRING.match(text, pos)
            if match is None:
                raise _NotJSONText
            pos = _skip_ws(text, match.end())
            if not text.startswith(":", pos):
                raise _NotJSONText
            pos = _skip_ws(text, pos + 1)
        pos = _skip_ws(text, _value(text, pos, scan))
        if text.startswith(",", pos):
            pos = _skip_ws(text, pos + 1)
        elif text.startswith(closing, pos):
            scan.depth -= 1
            return pos + 1
        else:
            raise _NotJSONText


def _skip_ws(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()  # type: ignore[union-attr]


def is_valid_id(value: object) -> bool:
    """Section 4: an id "MUST contain a String, Number, or NULL value if included"; JSON's
    true and false are not numbers. Ids that cannot be sent back (an infinity from a number
    too large for a float, a string with a lone surrogate from a ``\\ud800`` escape) are
    refused too (docs/rpc-protocol.md: such values are never sent)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return value not in (float("inf"), float("-inf")) and value == value
    if isinstance(value, str):
        return not any(0xD800 <= ord(char) <= 0xDFFF for char in value)
    return value is None or isinstance(value, int)


class Expected:
    """What parsing one element must give: a message, or an invalid request answered with
    ``id`` (and, for a broken response, naming the call it answers in ``in_reply_to``)."""

    def __init__(
        self, message: Message | None = None, *, id: object = None, in_reply_to: object = None
    ) -> None:
        self.message = message
        self.id = id
        self.in_reply_to = in_reply_to

    def check(self, item: Item) -> None:
        if self.message is not None:
            assert item == self.message
            assert type(item) is type(self.message)
            return
        assert isinstance(item, Invalid), f"expected an invalid request, got {item!r}"
        assert_spec_error(item.error, INVALID_REQUEST)
        assert_same_json(item.id, self.id)
        assert_same_json(item.in_reply_to, self.in_reply_to)


def expected_element(value: Any) -> Expected:
    """Sections 4 and 5, and the classification of docs/rpc-protocol.md: an object with
    "method" is a call, one with "result" or "error" a response, anything else invalid."""
    if not isinstance(value, dict):
        return Expected()  # section 7: "rpc call with invalid Batch", [1,2,3]
    if "method" in value:
        return _expected_call(value)
    if "result" in value or "error" in value:
        return _expected_response(value)
    # Neither a call nor a response: its id, if any, may be one of the peer's request ids or
    # one of ours (a response without "result"), so the answer carries null, as for broken
    # responses. (tests/rpc/test_rpc_messages.py pins this; docs/rpc-protocol.md's "with its
    # id when that is a valid id" reads as if it covered this case too.)
    return Expected()


def _expected_call(value: dict[str, Any]) -> Expected:
    has_id = "id" in value
    id = value.get("id")
    if not is_valid_id(id):
        return Expected()  # section 5: an id that cannot be detected is answered with null
    answer_id = id if has_id else None
    if value.get("jsonrpc") != "2.0":
        return Expected(id=answer_id)
    if not isinstance(value["method"], str):
        return Expected(id=answer_id)
    call_params = value.get("params")
    if "params" in value and not isinstance(call_params, (list, dict)):
        return Expected(id=answer_id)  # section 4.2: "MUST be provided as a Structured value"
    if isinstance(call_params, list):
        call_params = tuple(call_params)
    if has_id:
        return Expected(Request(value["method"], call_params, id))
    return Expected(Notification(value["method"], call_params))


def _expected_response(value: dict[str, Any]) -> Expected:
    # Always answered with null: the ids of the two directions are separate namespaces.
    if "id" not in value or not is_valid_id(value["id"]):
        return Expected()
    id = value["id"]
    invalid = Expected(in_reply_to=id)
    if value.get("jsonrpc") != "2.0" or ("result" in value and "error" in value):
        return invalid
    if "result" in value:
        return Expected(Response(id, value["result"]))
    error = value["error"]
    if not isinstance(error, dict):
        return invalid
    code, message = error.get("code"), error.get("message")
    if isinstance(code, bool) or not isinstance(code, int) or not isinstance(message, str):
        return invalid  # section 5.1: code "MUST be an integer", message "A String"
    return Expected(ErrorResponse(id, Error(code, message, error.get("data"))))


def assert_spec_error(error: Error, code: int) -> None:
    assert error.code == code
    assert error.message == SPEC_MESSAGES[code]
    assert isinstance(error.data, str) and error.data


def assert_same_json(actual: object, expected: object) -> None:
    """Equal, and of the same JSON type (Python's ``1 == 1.0 == True`` would hide one)."""
    assert actual == expected
    assert type(actual) is type(expected)


def assert_parse_error(incoming: Incoming) -> None:
    """Section 5.1: -32700, "Invalid JSON was received"; section 5: with ``"id": null``;
    section 6: a single response, even for what might have been a batch."""
    assert isinstance(incoming, Invalid), f"expected a parse error, got {incoming!r}"
    assert_spec_error(incoming.error, PARSE_ERROR)
    assert incoming.id is None
    assert incoming.in_reply_to is None


def check_text(text: str, *, max_batch: int | None = MAX_BATCH) -> Incoming:
    """Parse ``text``, and check the result against the oracle."""
    incoming = parse(text, max_batch=max_batch)
    scan = json_text_scan(text)
    if scan is None:
        assert_parse_error(incoming)
        return incoming
    # Limits that docs/rpc-protocol.md allows: nesting, and the interpreter's integer digits.
    if scan.longest_int > INT_MAX_STR_DIGITS or scan.max_depth > 500:
        if isinstance(incoming, Invalid) and incoming.error.code == PARSE_ERROR:
            assert_parse_error(incoming)
            return incoming
    value = json.loads(text)  # valid JSON text, per the recognizer: its value
    if isinstance(value, list):
        if not value or (max_batch is not None and len(value) > max_batch):
            # Section 6: an empty array is answered with a single Invalid Request; so is a
            # batch over the documented limit.
            Expected().check(_single(incoming))
            return incoming
        assert isinstance(incoming, Batch), f"expected a batch, got {incoming!r}"
        assert len(incoming.items) == len(value)
        for item, element in zip(incoming.items, value, strict=True):
            expected_element(element).check(item)
        return incoming
    expected_element(value).check(_single(incoming))
    return incoming


def _single(incoming: Incoming) -> Item:
    assert not isinstance(incoming, Batch), f"expected a single item, got {incoming!r}"
    return incoming


def check_bytes(data: bytes) -> None:
    """Bytes are JSON text in UTF-8 (RFC 8259 section 8.1), without a byte order mark."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        assert_parse_error(parse(data))
        return
    expected = check_text(text)
    for form in (data, bytearray(data), memoryview(data)):
        assert parse(form) == expected


# Strategies: near-misses.

MEMBERS = ["jsonrpc", "method", "params", "id", "result", "error"]
wrong_values = (
    st.sampled_from(
        ["2.0", "1.0", "2", 2.0, 2, None, True, False, [], {}, "", " 2.0", "2.0\x00"]
        + [-32600, 1.5, 1e400, "\ud800", {"code": 1}, {"message": "x"}, [1, 2]]
    )
    | json_values
)
broken_errors = st.fixed_dictionaries(
    {},
    optional={
        "code": st.sampled_from([1, -32000, 1.0, "1", True, None, 2**70, 1e400]),
        "message": st.sampled_from(["boom", "", None, 1, ["x"]]),
        "data": json_values,
    },
)


@st.composite
def near_misses(draw: st.DrawFn) -> Any:
    """A valid message's object, with a few members removed, retyped or added."""
    obj = json.loads(serialize(draw(messages)))
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["remove", "retype", "add", "error"]))
        if action == "remove" and obj:
            del obj[draw(st.sampled_from(sorted(obj)))]
        elif action in ("retype", "add"):
            obj[draw(st.sampled_from([*MEMBERS, "extra"]))] = draw(wrong_values)
        elif action == "error":
            obj["error"] = draw(broken_errors)
    return obj


def dumps_any_way(draw: st.DrawFn, value: Any) -> str:
    """JSON text of ``value`` in one of the ways JSON allows: whitespace, escapes."""
    return json.dumps(
        value,
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.sampled_from([None, 0, 2, "\t"])),
        separators=draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\r\n", " :\t")])),
    )


@st.composite
def near_miss_texts(draw: st.DrawFn) -> str:
    """The text of a near-miss or of a batch of them, maybe with a member written twice
    (docs/rpc-protocol.md: the last one counts), maybe edited character by character."""
    if draw(st.booleans()):
        text = dumps_any_way(draw, draw(near_misses()))
        if draw(st.booleans()) and text.endswith("}") and len(text) > 2:
            member = draw(st.sampled_from(MEMBERS))
            text = f"{text[:-1]}, {json.dumps(member)}: {json.dumps(draw(wrong_values))}}}"
    else:
        batch = draw(st.lists(near_misses() | json_values, max_size=5))
        text = dumps_any_way(draw, batch)
    for _ in range(draw(st.integers(0, 2))):
        text = draw(edits(text))
    return text


@st.composite
def edits(draw: st.DrawFn, text: str) -> str:
    """One edit of the kind a fuzzer makes: delete, insert, replace, cut."""
    pos = draw(st.integers(0, len(text)))
    action = draw(st.sampled_from(["delete", "insert", "replace", "cut"]))
    char = draw(st.sampled_from(list('{}[],:"\\ 0-.eE+tnu\x00\x1f') + ["\ufeff", "\u00a0"]))
    if action == "delete":
        return text[:pos] + text[pos + 1 :]
    if action == "insert":
        return text[:pos] + char + text[pos:]
    if action == "replace":
        return text[:pos] + char + text[pos + 1 :]
    return text[:pos]


# Token soups: sequences of JSON's tokens and of almost-tokens, to probe the line between
# JSON text and the rest.
TOKENS = [
    "{", "}", "[", "]", ",", ":", " ", "\t", "\n", "\r", "\x0c", "\u00a0", "\ufeff",
    '"jsonrpc"', '"2.0"', '"method"', '"a"', '"id"', '"params"', '"result"', '"error"',
    '"code"', '"message"', "0", "1", "-0", "-1", "1.5", "1e5", "1E+5", "2e-3", "01", "1.",
    ".5", "+1", "-", "1e", "0x1", "١", "true", "false", "null", "True", "None", "NaN",
    "Infinity", "-Infinity", "'a'", '"\\ud800"', '"\\u00e9"', '"\\x41"', '"\\/"', '"\t"',
    '"', "\\", "1" + "0" * INT_MAX_STR_DIGITS, "1" + "0" * 400 + ".5", "1e400",
]  # fmt: skip
token_soups = st.lists(st.sampled_from(TOKENS), max_size=16).map("".join)


# Properties of the codec.


def batch_of(incoming: Incoming) -> tuple[Item, ...]:
    return incoming.items if isinstance(incoming, Batch) else (incoming,)


class TestRoundTrip:
    """Whatever the codec writes, it reads back as the same message."""

    @SETTINGS
    @given(messages)
    def test_message(self, message: Message) -> None:
        text = serialize(message)
        assert parse(text) == message
        assert type(parse(text)) is type(message)
        assert parse(text.encode()) == message
        # The same text again: no value changed its JSON type on the way (True and 1, 1 and
        # 1.0 are equal in Python, not in JSON).
        assert serialize(parse(text)) == text  # type: ignore[arg-type]

    @FEWER
    @given(st.lists(messages, min_size=1, max_size=5))
    def test_batch(self, batch: list[Message]) -> None:
        text = serialize(batch)
        incoming = parse(text)
        assert incoming == Batch(tuple(batch))
        assert serialize(list(batch_of(incoming))) == text  # type: ignore[arg-type]

    @FEWER
    @given(st.lists(messages, min_size=1, max_size=2), st.integers(1, MAX_BATCH + 20))
    def test_batch_limit(self, some: list[Message], length: int) -> None:
        batch = [some[i % len(some)] for i in range(length)]
        incoming = parse(serialize(batch))
        if length <= MAX_BATCH:
            assert incoming == Batch(tuple(batch))
        else:  # docs/rpc-protocol.md: one -32600 error response with "id": null
            assert isinstance(incoming, Invalid)
            assert_spec_error(incoming.error, INVALID_REQUEST)
            assert incoming.id is None
        assert parse(serialize(batch), max_batch=None) == Batch(tuple(batch))

    @SETTINGS
    @given(json_values, ids)
    def test_any_json_value(self, value: Any, id: Any) -> None:
        for message in (
            Request("m", (value,), id),
            Request("m", {"v": value}, id),
            Notification("m", (value,)),
            Response(id, value),
            ErrorResponse(id, Error(-32000, "x", value)),
        ):
            text = serialize(message)
            assert parse(text) == message
            assert serialize(parse(text)) == text  # type: ignore[arg-type]

    @FEWER
    @given(st.integers(1, 150))
    def test_nesting(self, depth: int) -> None:
        message = Response(1, deeply_nested(depth))
        assert parse(serialize(message)) == message

    def test_deepest_value_written(self) -> None:
        """The deepest value serialize() writes, it reads back: no message the codec sends
        is one it refuses."""
        low, high = 1, 10_000  # serialize() writes depth low, refuses depth high
        while high - low > 1:
            middle = (low + high) // 2
            try:
                serialize(Response(1, deeply_nested(middle)))
            except ValueError:
                high = middle
            else:
                low = middle
        depth = low
        message = Response(1, deeply_nested(depth))
        assert parse(serialize(message)) == message

    def test_largest_integer_written(self) -> None:
        for value in (10**INT_MAX_STR_DIGITS - 1, -(10**INT_MAX_STR_DIGITS - 1)):
            for message in (Response(value, value), Request("m", (value,), value)):
                assert parse(serialize(message)) == message


class TestAnyInput:
    """Whatever a peer sends, parse() does not raise, and says what the oracle says."""

    @SETTINGS
    @given(st.text())
    def test_text(self, text: str) -> None:
        check_text(text)

    @SETTINGS
    @given(st.binary())
    def test_bytes(self, data: bytes) -> None:
        check_bytes(data)

    @SETTINGS
    @given(token_soups)
    def test_token_soups(self, text: str) -> None:
        check_text(text)
        check_bytes(text.encode("utf-8", "surrogatepass"))

    @SETTINGS
    @given(json_values | st.lists(json_values, max_size=4))
    def test_json_values(self, value: Any) -> None:
        check_text(json.dumps(value))
        check_text(json.dumps(value, ensure_ascii=False))

    @SETTINGS
    @given(near_miss_texts())
    def test_near_misses(self, text: str) -> None:
        check_text(text)
        check_bytes(text.encode("utf-8", "surrogatepass"))

    @FEWER
    @given(st.lists(near_misses(), max_size=8), st.integers(1, 6) | st.none())
    def test_batch_limits(self, batch: list[Any], max_batch: int | None) -> None:
        check_text(json.dumps(batch), max_batch=max_batch)

    @SETTINGS
    @given(st.binary() | st.text().map(str.encode))
    def test_binary_messages(self, data: bytes) -> None:
        """docs/rpc-protocol.md: a binary message is answered like unparsable JSON."""
        assert_parse_error(parse(data, binary=True))

    @pytest.mark.parametrize("value", [None, 1, 1.5, ["[]"], {"a": 1}, object()])
    def test_not_text(self, value: object) -> None:
        """The one documented exception: TypeError, for what is neither text nor bytes."""
        with pytest.raises(TypeError):
            parse(value)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "text",
        [
            # Section 7, "rpc call with invalid JSON" and "rpc call Batch, invalid JSON".
            '{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]',
            '[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},'
            '{"jsonrpc": "2.0", "method"]',
            # Section 7, "rpc call with invalid Request object", "an empty Array", "an
            # invalid Batch (but not empty)", "invalid Batch".
            '{"jsonrpc": "2.0", "method": 1, "params": "bar"}',
            "[]",
            "[1]",
            "[1,2,3]",
            # Section 7, "rpc call Batch".
            '[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},'
            '{"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},'
            '{"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},'
            '{"foo": "boo"},'
            '{"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},'
            '{"jsonrpc": "2.0", "method": "get_data", "id": "9"}]',
            # RFC 8259: not JSON text.
            "NaN",
            '{"a": Infinity}',
            "\ufeff{}",
            "\x0c{}",
            "[1,]",
            "{'a': 1}",
            "01",
        ],
    )
    def test_specification_examples(self, text: str) -> None:
        check_text(text)


# Batches answered by a real server, over loopback.


class _Server:
    """An RPC server in a thread of its own, shared by the examples of a test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: Any = None
        self.url = self._run(self._start())

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(STEP)

    async def _start(self) -> str:
        rpc = RPC()

        @rpc.method
        def echo(value: Any = None) -> Any:
            return value

        @rpc.method
        def fail() -> None:
            raise ValueError("failed on purpose")

        self.server = await socketeer.serve(rpc, "127.0.0.1", 0)
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"

    async def _stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    def close(self) -> None:
        try:
            self._run(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()
            self.loop.close()


@pytest.fixture(scope="module")
def rpc_client() -> Iterator[Any]:
    """A raw client (any JSON) of a real RPC server, shared by the examples."""
    server = _Server()
    try:
        with socketeer.sync.connect(server.url, subprotocols=[SUBPROTOCOL]) as ws:
            yield ws
    finally:
        server.close()


# Calls whose answers are predictable in number: $/cancel is left out, since a call it
# cancels is never answered (docs/rpc-protocol.md).
served_methods = st.sampled_from(["echo", "fail", "nope", "$/ping", "rpc.discover", "rpc.x"])
served_messages = (
    st.builds(Request, served_methods, st.none() | st.just(()) | params, ids)
    | st.builds(Notification, served_methods, st.none() | params)
    | responses
    | error_responses
)
served_elements = (
    served_messages.map(lambda message: json.loads(serialize(message)))
    | near_misses().filter(lambda obj: obj.get("method") != "$/cancel")
    | json_values
)
SENTINEL = "sentinel-answered-after-the-batch"


def exchange(ws: Any, text: str) -> list[Any]:
    """Send ``text``, then a ``$/ping``, and return what came before the ``$/ping``'s answer.

    The server reads messages in order and sends at once what needs no method to run
    (answers to notifications-only batches: none; to invalid elements, unknown methods,
    bad params: all of them), so whatever it sends for ``text`` without running a method
    comes before the answer to the ``$/ping``."""
    ws.send(text)
    ws.send(serialize(Request("$/ping", None, SENTINEL)))
    answers: list[Any] = []
    while True:
        answer = json.loads(ws.recv(timeout=STEP))
        if isinstance(answer, dict) and answer.get("id") == SENTINEL:
            return answers
        answers.append(answer)


def expected_answer_ids(incoming: Incoming) -> list[Any]:
    """Section 6: one response per request and per invalid element; none for notifications
    (and, both ends being callers, none for responses)."""
    return [item.id for item in batch_of(incoming) if isinstance(item, (Request, Invalid))]


def id_key(value: Any) -> str:
    return json.dumps(value)


class TestServerAnswers:
    @FEWER
    @given(st.lists(served_elements, min_size=0, max_size=12) | served_elements)
    def test_one_answer_per_request(self, rpc_client: Any, document: Any) -> None:
        text = json.dumps(document)
        incoming = parse(text)
        wanted = expected_answer_ids(incoming)
        answers = exchange(rpc_client, text)
        if not wanted:
            # Section 6: "If there are no Response objects contained within the Response
            # array as it is to be sent to the client, the server MUST NOT return an empty
            # Array and should return nothing at all."
            assert answers == []
            return
        # Answers to calls that run come after the sentinel's: wait for them.
        while not answers:
            answers.append(json.loads(rpc_client.recv(timeout=STEP)))
        (answer,) = answers
        if isinstance(incoming, Batch):
            assert isinstance(answer, list), "a batch is answered with an array"
        else:
            assert isinstance(answer, dict), "a single message is answered with an object"
        back = parse(json.dumps(answer))
        assert isinstance(back, Batch) == isinstance(incoming, Batch)
        for item in batch_of(back):
            # Each one a valid response object (section 5), which parse() takes as such.
            assert isinstance(item, (Response, ErrorResponse)), item
        got = collections.Counter(id_key(item.id) for item in batch_of(back))  # type: ignore[union-attr]
        assert got == collections.Counter(map(id_key, wanted))
