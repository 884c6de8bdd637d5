"""Tests for socketeer.uri: WebSocket URIs."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from socketeer.exceptions import InvalidURI
from socketeer.uri import WebSocketURI, parse_uri

VALID_URIS = [
    ("ws://localhost", WebSocketURI(False, "localhost", 80, "/", "")),
    ("wss://localhost", WebSocketURI(True, "localhost", 443, "/", "")),
    ("ws://localhost/", WebSocketURI(False, "localhost", 80, "/", "")),
    ("ws://localhost:8765", WebSocketURI(False, "localhost", 8765, "/", "")),
    ("wss://localhost:8765/", WebSocketURI(True, "localhost", 8765, "/", "")),
    ("ws://localhost:80", WebSocketURI(False, "localhost", 80, "/", "")),
    ("ws://localhost:443", WebSocketURI(False, "localhost", 443, "/", "")),
    ("wss://localhost:80", WebSocketURI(True, "localhost", 80, "/", "")),
    ("ws://localhost:1", WebSocketURI(False, "localhost", 1, "/", "")),
    ("ws://localhost:65535", WebSocketURI(False, "localhost", 65535, "/", "")),
    ("ws://localhost:008765", WebSocketURI(False, "localhost", 8765, "/", "")),
    # RFC 3986 section 3.2.3: an empty port means the default one.
    ("ws://localhost:/", WebSocketURI(False, "localhost", 80, "/", "")),
    ("ws://localhost/path", WebSocketURI(False, "localhost", 80, "/path", "")),
    ("ws://localhost/a/b/", WebSocketURI(False, "localhost", 80, "/a/b/", "")),
    ("ws://localhost/path?", WebSocketURI(False, "localhost", 80, "/path", "")),
    ("ws://localhost/path?q", WebSocketURI(False, "localhost", 80, "/path", "q")),
    ("ws://localhost?q=1", WebSocketURI(False, "localhost", 80, "/", "q=1")),
    ("ws://localhost/p?a=1&b=2", WebSocketURI(False, "localhost", 80, "/p", "a=1&b=2")),
    ("ws://localhost/p?a=/?@:", WebSocketURI(False, "localhost", 80, "/p", "a=/?@:")),
    ("ws://localhost/p;x=1,y@z", WebSocketURI(False, "localhost", 80, "/p;x=1,y@z", "")),
    # Schemes and host names are case-insensitive; paths and queries are not.
    ("WS://LocalHost/Path?Q", WebSocketURI(False, "localhost", 80, "/Path", "Q")),
    ("WsS://EXAMPLE.com", WebSocketURI(True, "example.com", 443, "/", "")),
    ("ws://example.com./", WebSocketURI(False, "example.com.", 80, "/", "")),
    ("ws://my_service:8000", WebSocketURI(False, "my_service", 8000, "/", "")),
    ("ws://127.0.0.1:8765/", WebSocketURI(False, "127.0.0.1", 8765, "/", "")),
    # IPv6 literals lose their brackets and are compressed.
    ("ws://[::1]:8765/path", WebSocketURI(False, "::1", 8765, "/path", "")),
    ("wss://[::1]", WebSocketURI(True, "::1", 443, "/", "")),
    ("ws://[2001:DB8:0:0:0:0:0:1]/", WebSocketURI(False, "2001:db8::1", 80, "/", "")),
    ("ws://[::ffff:192.0.2.1]:81", WebSocketURI(False, "::ffff:c000:201", 81, "/", "")),
    # Internationalised names become IDNA.
    ("wss://bücher.example/", WebSocketURI(True, "xn--bcher-kva.example", 443, "/", "")),
    ("wss://BÜCHER.example/", WebSocketURI(True, "xn--bcher-kva.example", 443, "/", "")),
    ("ws://例え.テスト", WebSocketURI(False, "xn--r8jz45g.xn--zckzah", 80, "/", "")),
    ("ws://xn--bcher-kva.example", WebSocketURI(False, "xn--bcher-kva.example", 80, "/", "")),
    ("ws://ex%61mple.com", WebSocketURI(False, "example.com", 80, "/", "")),
    # Non-ASCII characters are percent-encoded as UTF-8; percent-encodings are kept.
    ("ws://h/café?q=thé", WebSocketURI(False, "h", 80, "/caf%C3%A9", "q=th%C3%A9")),
    ("ws://h/%F0%9F%98%80", WebSocketURI(False, "h", 80, "/%F0%9F%98%80", "")),
    ("ws://h/😀", WebSocketURI(False, "h", 80, "/%F0%9F%98%80", "")),
    ("ws://h/a%2fb?c%26d", WebSocketURI(False, "h", 80, "/a%2fb", "c%26d")),
    ("ws://h/%23", WebSocketURI(False, "h", 80, "/%23", "")),
    ("ws://h/a%20b", WebSocketURI(False, "h", 80, "/a%20b", "")),
    # ASCII characters that a request target cannot hold are percent-encoded too.
    (
        'ws://h/<a>"{b}"|^`\\',
        WebSocketURI(False, "h", 80, "/%3Ca%3E%22%7Bb%7D%22%7C%5E%60%5C", ""),
    ),
    ("ws://h/[x]", WebSocketURI(False, "h", 80, "/%5Bx%5D", "")),
    # User info is percent-decoded.
    ("ws://user:pass@h", WebSocketURI(False, "h", 80, "/", "", "user", "pass")),
    ("ws://user@h", WebSocketURI(False, "h", 80, "/", "", "user", None)),
    ("ws://user:@h", WebSocketURI(False, "h", 80, "/", "", "user", "")),
    ("ws://:pass@h", WebSocketURI(False, "h", 80, "/", "", "", "pass")),
    ("ws://@h", WebSocketURI(False, "h", 80, "/", "", "", None)),
    ("ws://us%40er:p%3As:s@h", WebSocketURI(False, "h", 80, "/", "", "us@er", "p:s:s")),
    ("ws://jos%C3%A9:%E2%82%AC@h", WebSocketURI(False, "h", 80, "/", "", "josé", "€")),
    ("ws://josé:€@h", WebSocketURI(False, "h", 80, "/", "", "josé", "€")),
    ("wss://u:p@[::1]:9/x", WebSocketURI(True, "::1", 9, "/x", "", "u", "p")),
]

INVALID_URIS = [
    # RFC 6455 section 3: only the ws and wss schemes.
    ("http://localhost/", "scheme must be ws or wss"),
    ("https://localhost/", "scheme must be ws or wss"),
    ("ftp://localhost/", "scheme must be ws or wss"),
    ("wsx://localhost/", "scheme must be ws or wss"),
    ("ws+unix://localhost/", "scheme must be ws or wss"),
    ("localhost:8765", "scheme must be ws or wss"),
    ("//localhost/", "scheme must be ws or wss"),
    ("", "scheme must be ws or wss"),
    # RFC 6455 section 3: no fragments.
    ("ws://localhost/#", "fragments are not allowed"),
    ("ws://localhost/path#frag", "fragments are not allowed"),
    ("ws://localhost/?q#frag", "fragments are not allowed"),
    ("ws://local#host/", "fragments are not allowed"),
    # Hosts.
    ("ws://", "missing host"),
    ("ws:///path", "missing host"),
    ("ws:localhost", "missing host"),
    ("ws:/localhost", "missing host"),
    ("ws://:8765/", "missing host"),
    ("ws://user:pass@/", "missing host"),
    ("ws://a..b/", "invalid host: a..b"),
    # IDNA maps U+2025 TWO DOT LEADER to "..": an empty label (found by fuzz/fuzz_uri.py).
    ("ws://a\u2025b/", "invalid host: a\u2025b"),
    ("ws://a\uff0e\uff0eb/", "invalid host: a\uff0e\uff0eb"),
    ("ws://.", "invalid host: ."),
    ("ws://" + "a" * 64 + ".com", "invalid host: " + "a" * 64 + ".com"),
    ("ws://a<b/", "invalid host: a<b"),
    ("ws://a%2Fb/", "invalid host: a%2Fb"),
    ("ws://a%zzb/", "invalid host: a%zzb"),
    ("ws://a%FFb/", "invalid host: a%FFb"),
    ("ws://a\\b/", "invalid host: a\\b"),
    ("ws://::1/", "IPv6 addresses must be enclosed in brackets"),
    ("ws://2001:db8::1:8765/", "IPv6 addresses must be enclosed in brackets"),
    ("ws://h]/", "invalid host: h]"),
    ("ws://h[/", "invalid host: h["),
    ("ws://[::1/", "unclosed bracket in host"),
    ("ws://::1]/", "missing host"),
    ("ws://[::1]x/", "unexpected characters after IPv6 address"),
    ("ws://[::g]/", "invalid IPv6 address: ::g"),
    ("ws://[127.0.0.1]/", "invalid IPv6 address: 127.0.0.1"),
    ("ws://[]/", "invalid IPv6 address: "),
    ("ws://[v1.fe]/", "invalid IPv6 address: v1.fe"),
    ("ws://[fe80::1%25eth0]/", "IPv6 zone identifiers are not supported"),
    # Ports.
    ("ws://localhost:0/", "port out of range: 0"),
    ("ws://localhost:000/", "port out of range: 000"),
    ("ws://localhost:65536/", "port out of range: 65536"),
    ("ws://localhost:99999999999/", "port out of range: 99999999999"),
    ("ws://localhost:" + "9" * 5000, "port out of range: " + "9" * 5000),
    ("ws://localhost:-1/", "invalid port: -1"),
    ("ws://localhost:+80/", "invalid port: +80"),
    ("ws://localhost:http/", "invalid port: http"),
    ("ws://localhost:8o/", "invalid port: 8o"),
    ("ws://localhost:٨٠/", "invalid port: ٨٠"),
    ("ws://localhost:²/", "invalid port: ²"),
    ("ws://localhost:80:80/", "invalid port: 80:80"),
    ("ws://[::1]:x/", "invalid port: x"),
    # User info.
    ("ws://a@b@h/", "invalid user info"),
    ("ws://u\\@evil.example/", "invalid user info"),
    ("ws://u:p%zz@h/", "invalid user info"),
    ("ws://u:p%FF@h/", "user info is not UTF-8"),
    ("ws://u%3Ax:p@h/", "username contains a colon"),
    # Percent-encodings in paths and queries.
    ("ws://h/100%", "invalid percent-encoding: %"),
    ("ws://h/%zz", "invalid percent-encoding: %zz"),
    ("ws://h/?q=%4", "invalid percent-encoding: %4"),
    # Whitespace and control characters, which urllib.parse would remove silently.
    ("ws://h/a b", "invalid character ' ' at 8"),
    (" ws://h/", "invalid character ' ' at 0"),
    ("ws://h/\n", "invalid character '\\n' at 7"),
    ("ws://h/\r\nX-Injected: 1", "invalid character '\\r' at 7"),
    ("ws://h\t/", "invalid character '\\t' at 6"),
    ("ws://h/\x00", "invalid character '\\x00' at 7"),
    ("ws://h/\x7f", "invalid character '\\x7f' at 7"),
    ("ws://h/\x85", "invalid character '\\x85' at 7"),
    ("ws://h/\u00a0", "invalid character '\\xa0' at 7"),
    ("ws://h/\u2028", "invalid character '\\u2028' at 7"),
    ("ws://h/\u3000", "invalid character '\\u3000' at 7"),
    ("ws://h/\ud800", "invalid character '\\ud800' at 7"),
]


class TestWebSocketURIs:
    """RFC 6455 section 3: WebSocket URIs."""

    @pytest.mark.parametrize(("uri", "expected"), VALID_URIS)
    def test_valid(self, uri: str, expected: WebSocketURI) -> None:
        assert parse_uri(uri) == expected

    @pytest.mark.parametrize(("uri", "msg"), INVALID_URIS)
    def test_invalid(self, uri: str, msg: str) -> None:
        with pytest.raises(InvalidURI) as exc_info:
            parse_uri(uri)
        assert exc_info.value.uri == uri
        assert exc_info.value.msg == msg
        assert str(exc_info.value) == f"{uri!r} isn't a valid WebSocket URI: {msg}"

    def test_invalid_uri_is_a_value_error(self) -> None:
        with pytest.raises(ValueError):
            parse_uri("http://localhost/")

    @pytest.mark.parametrize("uri", [None, b"ws://localhost/", 42, ["ws://localhost/"]])
    def test_not_a_str(self, uri: object) -> None:
        with pytest.raises(InvalidURI) as exc_info:
            parse_uri(uri)  # type: ignore[arg-type]
        assert exc_info.value.uri == repr(uri)
        assert exc_info.value.msg == f"expected str, got {type(uri).__name__}"

    def test_is_frozen(self) -> None:
        uri = parse_uri("ws://localhost/")
        with pytest.raises(dataclasses.FrozenInstanceError):
            uri.host = "example.com"  # type: ignore[misc]

    def test_defaults(self) -> None:
        uri = WebSocketURI(secure=False, host="localhost", port=80)
        assert (uri.path, uri.query, uri.username, uri.password) == ("/", "", None, None)


class TestResourceName:
    """RFC 6455 section 3: resource-name = path [ "?" query ]."""

    @pytest.mark.parametrize(
        ("uri", "resource_name"),
        [
            ("ws://h", "/"),
            ("ws://h/", "/"),
            ("ws://h/chat", "/chat"),
            ("ws://h?", "/"),
            ("ws://h?room=1", "/?room=1"),
            ("ws://h/chat?room=1&x=%20", "/chat?room=1&x=%20"),
            ("ws://h/é?é", "/%C3%A9?%C3%A9"),
        ],
    )
    def test_resource_name(self, uri: str, resource_name: str) -> None:
        assert parse_uri(uri).resource_name == resource_name


class TestUserInfo:
    """RFC 3986 section 3.2.1: user info, used for HTTP Basic authentication."""

    @pytest.mark.parametrize(
        ("uri", "user_info"),
        [
            ("ws://h/", None),
            ("ws://u:p@h/", ("u", "p")),
            ("ws://u@h/", ("u", "")),
            ("ws://u:@h/", ("u", "")),
            ("ws://u%40x:p%3Ay@h/", ("u@x", "p:y")),
        ],
    )
    def test_user_info(self, uri: str, user_info: tuple[str, str] | None) -> None:
        assert parse_uri(uri).user_info == user_info


# Hypothesis strategies for the round trip: URIs built from valid parts.
labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
reg_names = st.lists(labels, min_size=1, max_size=4).map(".".join)
ipv6_hosts = st.ip_addresses(v=6).map(lambda addr: addr.compressed)
path_chars = "abcXYZ019-._~!$&'()*+,;=:@/"
paths = st.text(alphabet=path_chars, max_size=20).map(lambda p: "/" + p)
queries = st.text(alphabet=path_chars + "?", max_size=20)
userinfo_parts = st.text(alphabet="abcXYZ019-._~!$&'()*+,;=", max_size=10)


class TestProperties:
    """Every input parses or raises InvalidURI; valid parts survive a round trip."""

    @given(uri=st.text())
    def test_any_str_parses_or_raises_invalid_uri(self, uri: str) -> None:
        try:
            parse_uri(uri)
        except InvalidURI:
            pass

    @given(
        scheme=st.sampled_from(["ws://", "wss://", "WS://"]),
        rest=st.text(alphabet=st.sampled_from(list("ab1:@[]/?#%.é\\ \x00FZ")) | st.characters()),
    )
    def test_any_uri_like_str_parses_or_raises_invalid_uri(self, scheme: str, rest: str) -> None:
        try:
            uri = parse_uri(scheme + rest)
        except InvalidURI:
            return
        # What parses is ready for the request line and the Host header.
        assert uri.host and uri.host.isascii()
        assert 1 <= uri.port <= 65535
        assert uri.resource_name.startswith("/")
        assert uri.resource_name.isascii()
        assert not any(c.isspace() or c == "#" for c in uri.resource_name)

    @given(
        secure=st.booleans(),
        host=st.one_of(reg_names, ipv6_hosts),
        port=st.none() | st.integers(min_value=1, max_value=65535),
        path=paths,
        query=queries,
        user_info=st.none() | st.tuples(userinfo_parts, userinfo_parts),
    )
    def test_round_trip(
        self,
        secure: bool,
        host: str,
        port: int | None,
        path: str,
        query: str,
        user_info: tuple[str, str] | None,
    ) -> None:
        scheme = "wss" if secure else "ws"
        authority = f"[{host}]" if ":" in host else host
        if port is not None:
            authority += f":{port}"
        if user_info is not None:
            authority = f"{user_info[0]}:{user_info[1]}@{authority}"
        uri = f"{scheme}://{authority}{path}" + (f"?{query}" if query else "")
        expected = WebSocketURI(
            secure=secure,
            host=host,
            port=port or (443 if secure else 80),
            path=path,
            query=query,
            username=None if user_info is None else user_info[0],
            password=None if user_info is None else user_info[1],
        )
        assert parse_uri(uri) == expected
