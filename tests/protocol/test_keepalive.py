"""Keepalive policy and ping tracking, with the clock passed in (protocol/keepalive.py)."""

from __future__ import annotations

import pytest

from socketeer.protocol.keepalive import Keepalive, KeepaliveAction, Pings

PING = KeepaliveAction.PING
WAIT = KeepaliveAction.WAIT
FAIL = KeepaliveAction.FAIL


class TestPings:
    def test_pong_acknowledges_earlier_pings(self) -> None:
        pings: Pings[str] = Pings()
        pings.sent(b"a", 1.0, "first")
        pings.sent(b"b", 2.0, "second")
        pings.sent(b"c", 3.0, "third")
        assert pings.pong(b"b", 4.5) == [("first", 3.5), ("second", 2.5)]
        assert pings.latency == 2.5
        assert len(pings) == 1
        assert b"c" in pings

    def test_unsolicited_pong(self) -> None:
        pings: Pings[str] = Pings()
        assert pings.pong(b"x", 1.0) == []
        assert pings.latency == 0.0

    def test_duplicate_payload(self) -> None:
        pings: Pings[str] = Pings()
        pings.sent(b"a", 1.0, "first")
        with pytest.raises(ValueError, match="same data"):
            pings.sent(b"a", 2.0, "again")

    def test_overdue_and_clear(self) -> None:
        pings: Pings[str] = Pings()
        assert not pings.overdue(100.0, 1.0)
        pings.sent(b"a", 1.0, "first")
        assert not pings.overdue(2.0, 1.0)
        assert pings.overdue(2.5, 1.0)
        assert pings.clear() == ["first"]
        assert len(pings) == 0

    def test_new_payloads_are_unique(self) -> None:
        pings: Pings[None] = Pings()
        for now in range(200):
            pings.sent(pings.new_payload(), float(now), None)
        assert len(pings) == 200


class TestKeepalive:
    def test_off(self) -> None:
        assert Keepalive(None, 10.0).start(0.0) is None

    def test_ping_every_interval(self) -> None:
        keepalive = Keepalive(20.0, 20.0)
        pings: Pings[None] = Pings()
        assert keepalive.start(0.0) == 20.0
        assert keepalive.due(20.0, pings) == (PING, 40.0)
        pings.sent(b"1", 20.0, None)
        pings.pong(b"1", 20.1)
        assert keepalive.due(40.0, pings) == (PING, 60.0)

    def test_short_timeout_checks_the_pong_before_the_next_ping(self) -> None:
        keepalive = Keepalive(20.0, 5.0)
        pings: Pings[None] = Pings()
        action, deadline = keepalive.due(20.0, pings)
        assert action is PING and deadline == pytest.approx(25.001)
        pings.sent(b"1", 20.0, None)
        pings.pong(b"1", 20.5)
        # Answered in time: the next ping is still due 20 s after the last one.
        assert keepalive.due(25.001, pings) == (WAIT, 40.0)
        assert keepalive.due(40.0, pings)[0] is PING

    def test_overdue_pong_fails(self) -> None:
        keepalive = Keepalive(20.0, 5.0)
        pings: Pings[None] = Pings()
        keepalive.due(20.0, pings)
        pings.sent(b"1", 20.0, None)
        assert keepalive.due(25.001, pings) == (FAIL, None)

    def test_no_timeout_never_fails(self) -> None:
        keepalive = Keepalive(1.0, None)
        pings: Pings[None] = Pings()
        pings.sent(b"1", 0.0, None)
        assert keepalive.due(1000.0, pings) == (PING, 1001.0)
