"""Tests for socketeer.protocol.headers: the header grammars of the opening handshake."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from socketeer.exceptions import InvalidHeader, InvalidHeaderFormat, InvalidHeaderValue
from socketeer.protocol.headers import (
    _parse_list,
    _parse_token,
    _parse_upgrade_protocol,
    accept_key,
    build_authorization_basic,
    build_extension,
    build_host,
    build_subprotocol,
    build_www_authenticate_basic,
    generate_key,
    parse_authorization_basic,
    parse_connection,
    parse_extension,
    parse_subprotocol,
    parse_upgrade,
    validate_key,
    validate_subprotocols,
)
from socketeer.typedefs import ExtensionHeader, ExtensionName, Subprotocol

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

tokens = st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=12)
# Strings made of the characters the grammars care about reach deeper than random text.
header_like = st.text(alphabet=st.sampled_from(list('ab1-/=;,"\\ \t\x00\x7f\xe9é')), max_size=40)
any_header = st.one_of(st.text(), header_like)

PARSERS: list[Callable[[str], object]] = [
    parse_connection,
    parse_upgrade,
    parse_extension,
    parse_subprotocol,
]


def ext(name: str, *params: tuple[str, str | None]) -> ExtensionHeader:
    return ExtensionName(name), list(params)


class TestListRule:
    """RFC 7230 section 7: the ``1#element`` list rule, shared by every list header."""

    @pytest.mark.parametrize("parse", PARSERS)
    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            ("a", ["a"]),
            ("a,b", ["a", "b"]),
            ("a, b", ["a", "b"]),
            ("a ,b", ["a", "b"]),
            ("a \t,\t b", ["a", "b"]),
            (" a ", ["a"]),
            (", ,a", ["a"]),
            (",a", ["a"]),
            ("a,", ["a"]),
            ("a, ,", ["a"]),
            ("a,,b", ["a", "b"]),
            ("a , , , b ,", ["a", "b"]),
            ("a,a", ["a", "a"]),
        ],
    )
    def test_valid(
        self, parse: Callable[[str], list[object]], header: str, expected: list[str]
    ) -> None:
        result = parse(header)
        if parse is parse_extension:
            assert result == [ext(name) for name in expected]
        else:
            assert result == expected

    @pytest.mark.parametrize("parse", PARSERS)
    @pytest.mark.parametrize(
        ("header", "pos"),
        [
            ("", 0),
            (" ", 1),
            (",", 1),
            (", ,", 3),
            ("a b", 2),
            ("a,=", 2),
            ("é", 0),
            ("a,\x00", 2),
            ("a\r\n", 1),
        ],
    )
    def test_invalid(self, parse: Callable[[str], object], header: str, pos: int) -> None:
        with pytest.raises(InvalidHeaderFormat) as exc_info:
            parse(header)
        assert f" at {pos} in {header}" in str(exc_info.value)

    def test_error_names_the_header(self) -> None:
        names = ["Connection", "Upgrade", "Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol"]
        for parse, name in zip(PARSERS, names, strict=True):
            with pytest.raises(InvalidHeaderFormat) as exc_info:
                parse("")
            assert exc_info.value.name == name
            assert str(exc_info.value) == f"invalid {name} header: expected token at 0 in "

    def test_expected_comma_message(self) -> None:
        with pytest.raises(InvalidHeaderFormat) as exc_info:
            parse_connection("keep-alive Upgrade")
        assert str(exc_info.value) == (
            "invalid Connection header: expected comma at 11 in keep-alive Upgrade"
        )

    @pytest.mark.parametrize("parse", PARSERS)
    def test_long_inputs_parse_in_linear_time(self, parse: Callable[[str], object]) -> None:
        # Each of these would take hours with a backtracking grammar.
        for header in [
            "a," * 50_000,
            ", " * 50_000 + "a",
            "a" * 100_000 + " ",
            "a; b" * 20_000,
            'a; b="' + "\\a" * 50_000,
            'a; b="' + "a" * 100_000,
        ]:
            try:
                parse(header)
            except InvalidHeaderFormat:
                pass

    @pytest.mark.parametrize("parse", PARSERS)
    @given(header=any_header)
    def test_any_str_parses_or_raises_invalid_header_format(
        self, parse: Callable[[str], object], header: str
    ) -> None:
        try:
            parse(header)
        except InvalidHeaderFormat:
            pass


class TestOneToken:
    """A header that is one token, as most are, is read at once: as the list rule reads it."""

    @given(header=st.one_of(tokens, any_header))
    def test_same_as_list_rule(self, header: str) -> None:
        for parse, parse_item in [
            (parse_connection, _parse_token),
            (parse_upgrade, _parse_upgrade_protocol),
            (parse_subprotocol, _parse_token),
        ]:
            try:
                expected = _parse_list(parse_item, header, 0, "X")
            except InvalidHeaderFormat:
                with pytest.raises(InvalidHeaderFormat):
                    parse(header)
            else:
                assert parse(header) == expected


class TestConnection:
    """RFC 7230 section 6.1: ``Connection = 1#connection-option``."""

    def test_keep_alive_upgrade(self) -> None:
        assert parse_connection("keep-alive, Upgrade") == ["keep-alive", "Upgrade"]

    def test_case_is_preserved(self) -> None:
        assert parse_connection("UPGRADE") == ["UPGRADE"]

    @pytest.mark.parametrize("header", ["Upgrade/1", '"Upgrade"', "keep alive", "Upgrade;a"])
    def test_invalid(self, header: str) -> None:
        with pytest.raises(InvalidHeaderFormat):
            parse_connection(header)


class TestUpgrade:
    """RFC 7230 section 6.7: ``Upgrade = 1#protocol``, ``protocol = name ["/" version]``."""

    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            ("websocket", ["websocket"]),
            ("WebSocket", ["WebSocket"]),
            ("HTTP/2.0", ["HTTP/2.0"]),
            (
                "HTTP/2.0, SHTTP/1.3, IRC/6.9, RTA/x11",
                ["HTTP/2.0", "SHTTP/1.3", "IRC/6.9", "RTA/x11"],
            ),
            ("h2c,websocket", ["h2c", "websocket"]),
        ],
    )
    def test_valid(self, header: str, expected: list[str]) -> None:
        assert parse_upgrade(header) == expected

    @pytest.mark.parametrize(
        ("header", "pos"),
        [("HTTP/", 5), ("/2.0", 0), ("HTTP/2.0/1", 8), ("HTTP /2.0", 5), ("HTTP/ 2.0", 5)],
    )
    def test_invalid(self, header: str, pos: int) -> None:
        with pytest.raises(InvalidHeaderFormat, match=f" at {pos} in "):
            parse_upgrade(header)


class TestExtensionsHeader:
    """RFC 6455 section 9.1: ``Sec-WebSocket-Extensions``, with RFC 7692 offers."""

    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            ("permessage-deflate", [ext("permessage-deflate")]),
            (
                "permessage-deflate; client_max_window_bits",
                [ext("permessage-deflate", ("client_max_window_bits", None))],
            ),
            (
                "permessage-deflate; client_max_window_bits=10",
                [ext("permessage-deflate", ("client_max_window_bits", "10"))],
            ),
            (
                "permessage-deflate; client_max_window_bits, permessage-deflate; "
                'server_no_context_takeover; client_max_window_bits="10"',
                [
                    ext("permessage-deflate", ("client_max_window_bits", None)),
                    ext(
                        "permessage-deflate",
                        ("server_no_context_takeover", None),
                        ("client_max_window_bits", "10"),
                    ),
                ],
            ),
            (
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                "server_max_window_bits=12; client_max_window_bits=15",
                [
                    ext(
                        "permessage-deflate",
                        ("server_no_context_takeover", None),
                        ("client_no_context_takeover", None),
                        ("server_max_window_bits", "12"),
                        ("client_max_window_bits", "15"),
                    )
                ],
            ),
            ("x-foo, y-bar", [ext("x-foo"), ext("y-bar")]),
            ("foo;bar=1;baz", [ext("foo", ("bar", "1"), ("baz", None))]),
            ("foo ; bar = 1 ; baz", [ext("foo", ("bar", "1"), ("baz", None))]),
            ("foo\t;\tbar\t=\t1\t,\tqux", [ext("foo", ("bar", "1")), ext("qux")]),
            ('foo; bar = "1"', [ext("foo", ("bar", "1"))]),
            ('foo; bar="\\1\\0"', [ext("foo", ("bar", "10"))]),
            ('foo; bar="a\\-b"', [ext("foo", ("bar", "a-b"))]),
            ('foo; bar="x"; baz="y", qux', [ext("foo", ("bar", "x"), ("baz", "y")), ext("qux")]),
            ("foo; bar=1, foo; bar=2", [ext("foo", ("bar", "1")), ext("foo", ("bar", "2"))]),
            (", , foo; a, , bar,", [ext("foo", ("a", None)), ext("bar")]),
        ],
    )
    def test_valid(self, header: str, expected: list[ExtensionHeader]) -> None:
        assert parse_extension(header) == expected

    @pytest.mark.parametrize(
        ("header", "error", "pos"),
        [
            ("foo;", "expected token", 4),
            ("foo; ", "expected token", 5),
            ("foo;;bar", "expected token", 4),
            ("foo; =1", "expected token", 5),
            ("foo; bar=", "expected token", 9),
            ("foo; bar==1", "expected token", 9),
            ("foo; bar=1 2", "expected comma", 11),
            ("foo; bar=1=2", "expected comma", 10),
            ("foo bar", "expected comma", 4),
            ("; bar", "expected token", 0),
            # Quoted values whose unescaped content is not a token.
            ('foo; bar=""', "quoted value is not a token", 9),
            ('foo; bar="1 0"', "quoted value is not a token", 9),
            ('foo; bar="a,b"', "quoted value is not a token", 9),
            ('foo; bar="\\""', "quoted value is not a token", 9),
            ('foo; bar="é"', "quoted value is not a token", 9),
            # Unterminated or malformed quoted strings.
            ('foo; bar="10', "expected quoted string", 9),
            ('foo; bar="', "expected quoted string", 9),
            ('foo; bar="10\\"', "expected quoted string", 9),
            ('foo; bar="1\x000"', "expected quoted string", 9),
            ('foo; bar="1\\\n"', "expected quoted string", 9),
            ('foo; bar="1"0', "expected comma", 12),
            ('foo; "bar"=1', "expected token", 5),
            ('"foo"', "expected token", 0),
        ],
    )
    def test_invalid(self, header: str, error: str, pos: int) -> None:
        with pytest.raises(InvalidHeaderFormat) as exc_info:
            parse_extension(header)
        assert str(exc_info.value) == (
            f"invalid Sec-WebSocket-Extensions header: {error} at {pos} in {header}"
        )

    @pytest.mark.parametrize(
        ("extensions", "header"),
        [
            ([ext("x-foo")], "x-foo"),
            (
                [ext("permessage-deflate", ("client_max_window_bits", "10")), ext("x-foo")],
                "permessage-deflate; client_max_window_bits=10, x-foo",
            ),
            (
                [ext("permessage-deflate", ("a", None), ("b", "1")), ext("permessage-deflate")],
                "permessage-deflate; a; b=1, permessage-deflate",
            ),
            ([], ""),
        ],
    )
    def test_build(self, extensions: list[ExtensionHeader], header: str) -> None:
        assert build_extension(extensions) == header

    @pytest.mark.parametrize(
        "extensions",
        [
            [ext("")],
            [ext("x foo")],
            [ext("x-foo", ("a b", None))],
            [ext("x-foo", ("a", ""))],
            [ext("x-foo", ("a", "1, evil"))],
            [ext("x-foo", ("a", "1\r\nX-Injected: 1"))],
        ],
    )
    def test_build_rejects_what_the_grammar_cannot_carry(
        self, extensions: list[ExtensionHeader]
    ) -> None:
        with pytest.raises(ValueError):
            build_extension(extensions)

    @given(
        extensions=st.lists(
            st.tuples(
                tokens.map(ExtensionName),
                st.lists(st.tuples(tokens, st.none() | tokens), max_size=4),
            ),
            min_size=1,
            max_size=4,
        )
    )
    def test_build_parse_round_trip(self, extensions: list[ExtensionHeader]) -> None:
        assert parse_extension(build_extension(extensions)) == extensions

    @given(value=tokens, data=st.data())
    def test_quoted_values_are_unescaped(self, value: str, data: st.DataObject) -> None:
        escapes = data.draw(st.lists(st.booleans(), min_size=len(value), max_size=len(value)))
        quoted = "".join("\\" + c if e else c for c, e in zip(value, escapes, strict=True))
        assert parse_extension(f'x; p="{quoted}"') == [ext("x", ("p", value))]


class TestSubprotocolHeader:
    """RFC 6455 sections 4.1 and 11.3.4: ``Sec-WebSocket-Protocol = 1#token``."""

    def test_parse(self) -> None:
        assert parse_subprotocol("chat, superchat") == ["chat", "superchat"]

    def test_parse_single(self) -> None:
        assert parse_subprotocol("v1.json.api") == ["v1.json.api"]

    @pytest.mark.parametrize("header", ["chat/1", "chat superchat", '"chat"', "chat;v=1"])
    def test_parse_invalid(self, header: str) -> None:
        with pytest.raises(InvalidHeaderFormat):
            parse_subprotocol(header)

    def test_build(self) -> None:
        assert build_subprotocol([Subprotocol("chat"), Subprotocol("superchat")]) == (
            "chat, superchat"
        )

    def test_validate_valid(self) -> None:
        validate_subprotocols([Subprotocol("chat"), Subprotocol("v2.chat+json")])
        validate_subprotocols([])

    @pytest.mark.parametrize(
        "subprotocols",
        [
            [""],
            ["chat room"],
            ["chat,room"],
            ["chat/1"],
            ["chät"],
            ["chat\r\nX-Injected: 1"],
            ["chat", "chat"],
            "chat",
        ],
    )
    def test_validate_invalid(self, subprotocols: list[Subprotocol]) -> None:
        with pytest.raises(ValueError):
            validate_subprotocols(subprotocols)
        with pytest.raises(ValueError):
            build_subprotocol(subprotocols)

    @given(subprotocols=st.lists(tokens.map(Subprotocol), min_size=1, max_size=5, unique=True))
    def test_build_parse_round_trip(self, subprotocols: list[Subprotocol]) -> None:
        assert parse_subprotocol(build_subprotocol(subprotocols)) == subprotocols


class TestKeys:
    """RFC 6455 sections 1.3, 4.1 and 4.2.2: ``Sec-WebSocket-Key`` and ``-Accept``."""

    def test_accept_key_rfc_example(self) -> None:
        # RFC 6455 section 1.3.
        assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

    def test_accept_key_definition(self) -> None:
        key = generate_key()
        guid = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        digest = hashlib.sha1(key.encode() + guid).digest()
        assert accept_key(key) == base64.b64encode(digest).decode()

    def test_accept_key_rejects_non_ascii(self) -> None:
        with pytest.raises(ValueError):
            accept_key("dGhlIHNhbXBsZSBub25jZQ=é")

    def test_generate_key(self) -> None:
        key = generate_key()
        assert len(key) == 24
        assert len(base64.b64decode(key, validate=True)) == 16
        assert validate_key(key)

    def test_generate_key_is_random(self) -> None:
        assert len({generate_key() for _ in range(100)}) == 100

    @pytest.mark.parametrize(
        "key",
        ["dGhlIHNhbXBsZSBub25jZQ==", "AAAAAAAAAAAAAAAAAAAAAA==", "+/+/+/+/+/+/+/+/+/+/+w=="],
    )
    def test_validate_key_valid(self, key: str) -> None:
        assert validate_key(key)

    @pytest.mark.parametrize(
        "key",
        [
            "",
            "dGhlIHNhbXBsZSBub25jZQ",  # no padding
            "dGhlIHNhbXBsZSBub25jZQ=",  # short padding
            "dGhlIHNhbXBsZSBub25jZQ===",  # long padding
            "dGhlIHNhbXBsZSBub25jZQ==\n",
            " dGhlIHNhbXBsZSBub25jZQ==",
            "dGhlIHNhbXBsZSBub25j",  # 15 bytes
            "dGhlIHNhbXBsZSBub25jZQAA",  # 18 bytes
            "dGhlIHNhbXBsZSBub25jZQ=A",
            "dGhlIHNhbXBsZSBub25jZ===",
            "dGhlIHNhbXBsZSBub25jZ-_==",  # URL-safe alphabet
            "dGhlIHNhbXBsZSBub25jZé==",
            "dGhlIHNhbXBsZSBub25j ZQ==",
        ],
    )
    def test_validate_key_invalid(self, key: str) -> None:
        assert not validate_key(key)

    @given(key=st.text())
    def test_valid_keys_decode_to_16_bytes(self, key: str) -> None:
        if validate_key(key):
            assert len(base64.b64decode(key, validate=True)) == 16

    @given(nonce=st.binary(min_size=16, max_size=16))
    def test_any_16_byte_nonce_is_a_valid_key(self, nonce: bytes) -> None:
        assert validate_key(base64.b64encode(nonce).decode())


class TestHost:
    """RFC 6455 section 4.1: the ``Host`` header, without the default port."""

    @pytest.mark.parametrize(
        ("host", "port", "secure", "expected"),
        [
            ("example.com", 80, False, "example.com"),
            ("example.com", 443, True, "example.com"),
            ("example.com", 443, False, "example.com:443"),
            ("example.com", 80, True, "example.com:80"),
            ("example.com", 8765, False, "example.com:8765"),
            ("127.0.0.1", 8765, True, "127.0.0.1:8765"),
            ("::1", 80, False, "[::1]"),
            ("::1", 8765, False, "[::1]:8765"),
            ("2001:db8::1", 443, True, "[2001:db8::1]"),
        ],
    )
    def test_build_host(self, host: str, port: int, secure: bool, expected: str) -> None:
        assert build_host(host, port, secure) == expected


class TestBasicAuthentication:
    """RFC 7617: HTTP Basic authentication."""

    def test_build_authorization(self) -> None:
        # RFC 7617 section 2.
        assert build_authorization_basic("Aladdin", "open sesame") == (
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        )

    def test_build_authorization_utf8(self) -> None:
        # RFC 7617 section 2.1.
        assert build_authorization_basic("test", "123£") == "Basic dGVzdDoxMjPCow=="

    def test_build_authorization_rejects_colon_in_username(self) -> None:
        with pytest.raises(ValueError):
            build_authorization_basic("a:b", "c")

    def test_password_may_contain_colons(self) -> None:
        header = build_authorization_basic("user", "a:b:c")
        assert parse_authorization_basic(header) == ("user", "a:b:c")

    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            ("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", ("Aladdin", "open sesame")),
            ("basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", ("Aladdin", "open sesame")),
            ("BASIC   QWxhZGRpbjpvcGVuIHNlc2FtZQ== ", ("Aladdin", "open sesame")),
            ("Basic dGVzdDoxMjPCow==", ("test", "123£")),
            ("Basic Og==", ("", "")),
        ],
    )
    def test_parse_authorization(self, header: str, expected: tuple[str, str]) -> None:
        assert parse_authorization_basic(header) == expected

    @pytest.mark.parametrize(
        ("header", "error", "pos"),
        [
            ("", "expected token", 0),
            ("Basic", "expected space after scheme", 5),
            ("Basic ", "expected token68", 6),
            ("Basic=QWxh", "expected space after scheme", 5),
            ("Basic QWxh ZGRp", "unexpected data after credentials", 11),
            ("Basic realm=x, y=z", "unexpected data after credentials", 12),
            ("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ", "expected base64 of UTF-8", 6),
            ("Basic QWxh-ZGRp", "expected base64 of UTF-8", 6),
            ("Basic /w==", "expected base64 of UTF-8", 6),
            ("Basic dXNlcg==", "expected username:password", 6),
        ],
    )
    def test_parse_authorization_invalid(self, header: str, error: str, pos: int) -> None:
        with pytest.raises(InvalidHeaderFormat) as exc_info:
            parse_authorization_basic(header)
        assert str(exc_info.value) == f"invalid Authorization header: {error} at {pos} in {header}"

    def test_parse_authorization_other_scheme(self) -> None:
        with pytest.raises(InvalidHeaderValue) as exc_info:
            parse_authorization_basic("Bearer abc.def")
        assert str(exc_info.value) == "invalid Authorization header: unsupported scheme: Bearer"

    @given(
        username=st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters=":")),
        password=st.text(st.characters(blacklist_categories=["Cs"])),
    )
    def test_build_parse_round_trip(self, username: str, password: str) -> None:
        header = build_authorization_basic(username, password)
        assert parse_authorization_basic(header) == (username, password)

    @given(header=st.one_of(st.text(), st.text().map(lambda s: "Basic " + s)))
    def test_any_str_parses_or_raises_invalid_header(self, header: str) -> None:
        try:
            parse_authorization_basic(header)
        except InvalidHeader:
            pass

    @pytest.mark.parametrize(
        ("realm", "expected"),
        [
            ("chat", 'Basic realm="chat", charset="UTF-8"'),
            ("", 'Basic realm="", charset="UTF-8"'),
            ('say "hi"', 'Basic realm="say \\"hi\\"", charset="UTF-8"'),
            ("a\\b", 'Basic realm="a\\\\b", charset="UTF-8"'),
            ("café", 'Basic realm="café", charset="UTF-8"'),
        ],
    )
    def test_build_www_authenticate(self, realm: str, expected: str) -> None:
        assert build_www_authenticate_basic(realm) == expected

    @pytest.mark.parametrize("realm", ["a\r\nX-Injected: 1", "a\x00", "a\x7f", "€"])
    def test_build_www_authenticate_invalid(self, realm: str) -> None:
        with pytest.raises(ValueError):
            build_www_authenticate_basic(realm)
