"""Fuzz target: the JSON-RPC 2.0 codec, ``socketeer.rpc.messages``.

Input layout (``_harness.Input``)::

    byte 0   bit 0     binary: the message arrived in a binary WebSocket message
             bits 1-2  max_batch: MAX_BATCHES[n]
             bit 3     pass the rest as str (decoded from UTF-8, invalid bytes as lone
                       surrogates) rather than bytes
    rest     the message

Checks: parse() never raises; it returns a Request, Notification, Response, ErrorResponse,
Invalid or a Batch of them (1 to max_batch items); Invalid items carry -32700 or -32600 with
the specification's message, valid ids, and a response that serializes; serialize_answers()
answers them; bytes and the str they decode to parse the same; every valid message either
serializes or is refused with ValueError (a lone surrogate, a number JSON cannot carry), and
parses back to itself; and dump_json() writes exactly what the json module writes, whether
or not orjson is installed, refusing with ValueError what json refuses.
"""

from __future__ import annotations

import json
import math

from _harness import Input, main

from socketeer.rpc.messages import (
    INVALID_REQUEST,
    MAX_BATCH,
    PARSE_ERROR,
    Batch,
    Error,
    ErrorResponse,
    Invalid,
    Notification,
    Request,
    Response,
    dump_json,
    parse,
    serialize,
    serialize_answers,
)

MAX_BATCHES = (MAX_BATCH, None, 1, 3)
STANDARD_MESSAGES: dict[int, str] = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
}
MESSAGES = (Request, Notification, Response, ErrorResponse)


def valid_id(value: object) -> bool:
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def check_item(item: object) -> None:
    assert isinstance(item, (*MESSAGES, Invalid)), f"parse() returned {item!r}"
    if isinstance(item, Invalid):
        assert item.error.code in STANDARD_MESSAGES, item
        assert item.error.message == STANDARD_MESSAGES[item.error.code], item
        assert isinstance(item.error.data, str), item
        assert valid_id(item.id) and valid_id(item.in_reply_to), item
        text = serialize(item.response)  # an Invalid is always answerable
        assert parse(text) == item.response, text
        return
    if isinstance(item, (Request, Notification)):
        assert isinstance(item.method, str)
        assert item.params is None or isinstance(item.params, (tuple, dict)), item
    if isinstance(item, (Request, Response, ErrorResponse)):
        assert valid_id(item.id), item
    if isinstance(item, ErrorResponse):
        assert type(item.error) is Error and isinstance(item.error.message, str)
        assert isinstance(item.error.code, int) and not isinstance(item.error.code, bool)
    check_round_trip(item)


def check_round_trip(message: object) -> None:
    """A valid message serializes, or is refused with ValueError, and parses back."""
    try:
        text = serialize(message)  # type: ignore[arg-type]
    except ValueError:
        return  # documented: a lone surrogate, a number JSON cannot write, deep nesting
    assert parse(text, max_batch=None) == message, f"{message!r} came back from {text!r}"


def reference_dumps(value: object) -> str | None:
    """What the json module writes for a parsed value; None when it refuses it."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (ValueError, RecursionError):
        return None
    try:
        text.encode()
    except UnicodeEncodeError:
        return None  # lone surrogates: no UTF-8 text carries them
    return text


def check_dump_json(text: str) -> None:
    """dump_json (orjson when installed) agrees with json on any value JSON text parses to."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return
    expected = reference_dumps(value)
    try:
        actual = dump_json(value)
    except ValueError:
        assert expected is None, f"dump_json refused {value!r}, json wrote {expected!r}"
        return
    assert actual == expected, f"dump_json wrote {actual!r}, json {expected!r}"


def TestOneInput(data: bytes) -> None:
    source = Input(data)
    flags = source.byte()
    binary = bool(flags & 1)
    max_batch = MAX_BATCHES[flags >> 1 & 3]
    raw = source.rest()
    payload: str | bytes = raw.decode("utf-8", "surrogateescape") if flags & 8 else raw
    incoming = parse(payload, binary=binary, max_batch=max_batch)
    if binary:
        assert isinstance(incoming, Invalid) and incoming.error.code == PARSE_ERROR
    if not flags & 8:
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            pass
        else:
            assert parse(text, binary=binary, max_batch=max_batch) == incoming
    if isinstance(incoming, Batch):
        assert 1 <= len(incoming) <= (max_batch or len(incoming)), len(incoming)
        items = list(incoming)
    else:
        items = [incoming]
    for item in items:
        check_item(item)
    answers = [item.response for item in items if isinstance(item, Invalid)]
    answer = serialize_answers(incoming, answers)
    assert (answer is None) is (not answers)
    if not binary:
        check_dump_json(payload if isinstance(payload, str) else raw.decode("utf-8", "replace"))


if __name__ == "__main__":
    main(TestOneInput, ("json.decoder", "json.encoder"))
