"""Rooms in headless Chromium: ``socketeer.js`` subscribers against a Python server, and the
rooms demo page.

The test server serves a blank page and an RPC app with rooms; each test imports
``/socketeer.js`` there and drives the client with ``page.evaluate``, as
``test_rpc_chromium.py`` does. To make sure that publications are missed, not delivered
late, the server refuses handshakes (503) while its door is shut: the page keeps trying,
with small backoff delays, until it opens. Every wait is bounded and on a condition.

"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, expect

from socketeer.asyncio.connection import Connection
from socketeer.asyncio.server import ServerConnection, serve
from socketeer.demo import demo_server
from socketeer.protocol.frames import CloseCode
from socketeer.protocol.http11 import Request, Response
from socketeer.pubsub import Retention, Rooms
from socketeer.rpc import RPC, Peer

from .browser import FAST, browser, evaluate, open_page
from .peers import run, within

ROOM = "chat"

SUBSCRIBE = """async (options) => {
    // What the subscription gets: [offset, data] per publication, the offsets of resets.
    window.received = [];
    window.resets = [];
    window.rpc = new socketeer.RPC("/rpc", options);
    window.subscription = rpc.subscribe(
        "chat",
        (data, meta) => received.push([meta.offset, data]),
        { onReset: (position) => resets.push(position.offset) },
    );
    rpc.connect();
    const { epoch, offset } = await subscription.ready;
    return { epoch, offset };
}"""
"""Subscribe a blank page to the room; return the position of its join."""


class App(RPC):
    """The test server's RPC app: rooms that clients may publish to; it counts connections."""

    def __init__(self, rooms: Rooms) -> None:
        super().__init__(rooms=rooms, client_publish=True)
        self.connections = 0

    async def __call__(self, connection: Connection) -> None:
        self.connections += 1
        await super().__call__(connection)


class Door:
    """The test server's ``process_request``: a blank page, and handshakes refused while
    the door is shut."""

    def __init__(self) -> None:
        self.shut = False
        self.knocked = asyncio.Event()
        """Set when a handshake is refused."""

    def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/":
            body = b"<!doctype html><title>socketeer.js rooms test</title>"
            return connection.respond(200, body, content_type="text/html; charset=utf-8")
        upgrade = any("websocket" in v.lower() for v in request.headers.get_all("Upgrade"))
        if self.shut and upgrade:
            self.knocked.set()
            return connection.respond(503, "door shut for the test\n")
        return None  # the app's: /socketeer.js, or the handshake

    async def open(self) -> None:
        """Open the door once someone knocked: the page tried while it was shut."""
        await within(self.knocked.wait())
        self.shut = False


@asynccontextmanager
async def server(rooms: Rooms, door: Door) -> AsyncIterator[tuple[App, int]]:
    """Serve a new :class:`App` on ``rooms``; yield it and its port. Closes the rooms."""
    app = App(rooms)
    async with rooms, serve(app, "127.0.0.1", 0, process_request=door) as running:
        yield app, running.sockets[0].getsockname()[1]


async def received(page: Page, count: int) -> list[list[Any]]:
    """What the page's subscription got, once it got ``count`` publications."""
    await page.wait_for_function("(count) => received.length >= count", arg=count)
    result: list[list[Any]] = await evaluate(page, "() => received")
    return result


def only_peer(rooms: Rooms) -> Peer:
    """The one member of the room: an RPC peer."""
    (member,) = rooms.members(ROOM)
    assert isinstance(member, Peer)
    return member


async def cut_off(page: Page, rooms: Rooms, door: Door, how: str) -> None:
    """Shut the door, drop the page's connection ``how``, wait until the page noticed."""
    door.shut = True
    connection = only_peer(rooms).connection
    if how == "close":
        await within(connection.close(CloseCode.SERVICE_RESTART, "restarting"))
    else:
        assert connection.transport is not None
        connection.transport.abort()
    await page.wait_for_function("() => rpc.state !== 'open'")
    await within(connection.wait_closed())


def test_publications_from_python_and_from_a_page_reach_every_page(chromium: str) -> None:
    async def scenario() -> None:
        rooms = Rooms()
        async with browser(chromium) as context, server(rooms, Door()) as (_, port):
            first, second = await open_page(context, port), await open_page(context, port)
            epoch = (await evaluate(first, SUBSCRIBE, FAST))["epoch"]
            assert await evaluate(second, SUBSCRIBE, FAST) == {"epoch": epoch, "offset": 0}

            await rooms.publish(ROOM, {"from": "python"})
            published = await evaluate(
                second, "() => rpc.publish('chat', { from: 'page', text: 'héllo 𝄞' })"
            )
            assert published == {"epoch": epoch, "offset": 2}
            await rooms.publish(ROOM, "plain text")

            expected = [
                [1, {"from": "python"}],
                [2, {"from": "page", "text": "héllo 𝄞"}],
                [3, "plain text"],
            ]
            for page in (first, second):
                assert await received(page, 3) == expected
                assert await evaluate(page, "() => resets") == []

    run(scenario())


@pytest.mark.parametrize("how", ["close", "abort"])
def test_page_recovers_what_it_missed_after_reconnecting(chromium: str, how: str) -> None:
    async def scenario() -> None:
        rooms, door = Rooms(), Door()
        async with browser(chromium) as context, server(rooms, door) as (app, port):
            page = await open_page(context, port)
            await evaluate(page, SUBSCRIBE, FAST)
            for n in range(1, 3):
                await rooms.publish(ROOM, f"before {n}")
            assert await received(page, 2) == [[1, "before 1"], [2, "before 2"]]

            await cut_off(page, rooms, door, how)
            for n in range(1, 6):
                await rooms.publish(ROOM, f"missed {n}")  # offsets 3 to 7
            await door.open()
            # Back by itself: it joins again from offset 2, and gets 3 to 7 from the history.
            await page.wait_for_function("() => received.length >= 7")
            for n in range(1, 3):
                await rooms.publish(ROOM, f"live {n}")

            assert await received(page, 9) == [
                [1, "before 1"],
                [2, "before 2"],
                *([2 + n, f"missed {n}"] for n in range(1, 6)),
                [8, "live 1"],
                [9, "live 2"],
            ]
            assert await evaluate(page, "() => resets") == []
            assert app.connections == 2

    run(scenario())


def test_page_is_reset_when_the_history_lost_what_it_missed(chromium: str) -> None:
    async def scenario() -> None:
        rooms, door = Rooms(retention=Retention(size=2)), Door()
        async with browser(chromium) as context, server(rooms, door) as (app, port):
            page = await open_page(context, port)
            await evaluate(page, SUBSCRIBE, FAST)
            await rooms.publish(ROOM, "seen")
            assert await received(page, 1) == [[1, "seen"]]

            await cut_off(page, rooms, door, "close")
            for n in range(1, 6):
                await rooms.publish(ROOM, f"missed {n}")  # offsets 2 to 6; 5 and 6 kept
            await door.open()
            await page.wait_for_function("() => resets.length >= 1")
            assert await evaluate(page, "() => resets") == [6]  # delivery resumes after it
            await rooms.publish(ROOM, "live")

            assert await received(page, 2) == [[1, "seen"], [7, "live"]]
            assert await evaluate(page, "() => resets") == [6]
            assert app.connections == 2

    run(scenario())


# The demo page


async def open_tab(context: BrowserContext, url: str) -> Page:
    tab = await context.new_page()
    await tab.goto(url)
    await expect(tab.locator("#status")).to_have_text("connected")
    return tab


async def say(tab: Page, name: str, text: str) -> None:
    await tab.get_by_label("Name").fill(name)
    await tab.get_by_label("Message").fill(text)
    await tab.get_by_role("button", name="Send").click()
    await expect(tab.get_by_label("Message")).to_have_value("")  # said


def test_demo_chat_in_two_tabs(chromium: str) -> None:
    async def scenario() -> None:
        async with browser(chromium) as context, demo_server("127.0.0.1", 0) as running:
            url = f"http://127.0.0.1:{running.sockets[0].getsockname()[1]}/rooms"
            first, second = await open_tab(context, url), await open_tab(context, url)
            for tab in (first, second):
                await expect(tab.locator("#people")).to_have_text("2 people here")

            await say(first, "Ann", "hello from the first tab")
            await say(second, "Bob", "  hi\tAnn\u0007 ")  # cleaned by the server
            for tab in (first, second):
                messages = tab.locator("#messages li")
                await expect(messages).to_have_count(2)
                await expect(messages.nth(0)).to_contain_text("Ann hello from the first tab")
                await expect(messages.nth(1)).to_contain_text("Bob hi Ann")

            # Too long for the server: refused, and said so.
            await first.get_by_label("Message").evaluate("(input) => input.maxLength = 1000")
            await first.get_by_label("Message").fill("x" * 201)
            await first.get_by_role("button", name="Send").click()
            await expect(first.locator("#error")).to_have_text(
                "message of 201 characters exceeds limit of 200 characters"
            )

            # A new tab shows the recent messages.
            third = await open_tab(context, url)
            await expect(third.locator("#messages li")).to_have_count(2)
            await expect(third.locator("#messages li").nth(1)).to_contain_text("Bob hi Ann")
            await expect(first.locator("#people")).to_have_text("3 people here")
            await third.close()
            await expect(first.locator("#people")).to_have_text("2 people here")

            # A tab that was offline gets what it missed once back.
            await first.get_by_role("button", name="Simulate a 3-second outage").click()
            await expect(first.locator("#status")).to_have_text("reconnecting…")
            await expect(second.locator("#people")).to_have_text("1 person here")
            await say(second, "Bob", "while you were away")
            await expect(first.locator("#status")).to_have_text("connected")
            await expect(first.locator("#messages li")).to_have_count(3)
            await expect(first.locator("#messages li").nth(2)).to_contain_text(
                "Bob while you were away"
            )
            await expect(second.locator("#people")).to_have_text("2 people here")

    run(scenario())
