"""The browser RPC client (``socketeer.js``) in headless Chromium, against a Python server.

The pages are blank: each test imports ``/socketeer.js`` (served by the RPC app) and drives
the client with ``page.evaluate``. Backoff delays are small, so that reconnections are quick;
every wait is bounded and on a condition, except the one that checks that nothing happens.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import expect

from socketeer.asyncio.connection import Connection
from socketeer.asyncio.server import ServerConnection, serve
from socketeer.demo import demo_server
from socketeer.exceptions import CallTimeout, RemoteError
from socketeer.protocol.http11 import Request, Response
from socketeer.rpc import RPC, Peer, current_peer

from .browser import FAST, browser, evaluate, open_page
from .peers import MS, run, within

QUIET_PERIOD = 1000 * MS
"""How long a closed client must stay away: ten times its longest backoff delay."""


class App(RPC):
    """The test server's RPC app: it counts connections and keeps their peers."""

    def __init__(self) -> None:
        super().__init__()
        self.connections = 0
        self.peers: asyncio.Queue[Peer] = asyncio.Queue()
        self.cancelled = asyncio.Event()

        @self.method
        def add(a: int, b: int) -> int:
            return a + b

        @self.method
        async def hello() -> None:
            """Hand this connection's peer to the test."""
            self.peers.put_nowait(current_peer())

        @self.method
        def fail(message: str) -> None:
            raise ValueError(message)

        @self.method
        async def slow() -> None:
            try:
                await asyncio.Event().wait()  # until cancelled
            except asyncio.CancelledError:
                self.cancelled.set()
                raise

    async def __call__(self, connection: Connection) -> None:
        self.connections += 1
        await super().__call__(connection)


def blank_page(connection: ServerConnection, request: Request) -> Response | None:
    if request.path != "/":
        return None  # the app's: /socketeer.js, or the handshake
    body = b"<!doctype html><title>socketeer.js test</title>"
    return connection.respond(200, body, content_type="text/html; charset=utf-8")


def start(app: App, port: int = 0) -> serve:
    return serve(app, "127.0.0.1", port, process_request=blank_page)


def port_of(server: Any) -> int:
    return int(server.sockets[0].getsockname()[1])


def test_calls_made_before_connect_resolve_after_it(chromium: str) -> None:
    async def scenario() -> None:
        app = App()
        async with browser(chromium) as context, start(app) as server:
            page = await open_page(context, port_of(server))
            outcome = await evaluate(
                page,
                """async (options) => {
                    const rpc = new socketeer.RPC("/rpc", options);
                    const calls = [
                        rpc.call("add", 1, 2),
                        rpc.proxy.add(3, 4),
                        rpc.callWith("add", { params: { a: 5, b: 6 } }),
                    ];
                    const before = [rpc.state, rpc.queued];
                    await rpc.connect();
                    const results = await Promise.all(calls);
                    rpc.close();
                    return { before, results };
                }""",
                FAST,
            )
            assert outcome == {"before": ["idle", 3], "results": [3, 7, 11]}
            assert app.connections == 1

    run(scenario())


def test_server_restart_reconnects_and_sends_queued_calls(chromium: str) -> None:
    async def scenario() -> None:
        async with browser(chromium) as context:
            async with start(App()) as server:
                port = port_of(server)
                page = await open_page(context, port)
                assert (
                    await evaluate(
                        page,
                        """async (options) => {
                            window.events = [];
                            window.rpc = new socketeer.RPC("/rpc", options);
                            for (const type of ["connect", "disconnect"]) {
                                rpc.addEventListener(type, () => events.push(type));
                            }
                            await rpc.connect();
                            return await rpc.call("add", 1, 1);
                        }""",
                        FAST,
                    )
                    == 2
                )
            # The server closed every connection (1001) and stopped listening.
            await page.wait_for_function("() => rpc.state !== 'open'")
            queued = await evaluate(
                page,
                """() => {
                    window.queuedCalls = Promise.all([rpc.call("add", 2, 2), rpc.proxy.add(3, 3)]);
                    return rpc.queued;
                }""",
            )
            assert queued == 2
            app = App()
            async with start(app, port):
                assert await evaluate(page, "() => queuedCalls") == [4, 6]
                assert await evaluate(page, "() => [rpc.state, events]") == [
                    "open",
                    ["connect", "disconnect", "connect"],
                ]
                assert app.connections == 1

    run(scenario())


def test_server_calls_the_browser(chromium: str) -> None:
    async def scenario() -> None:
        app = App()
        async with browser(chromium) as context, start(app) as server:
            page = await open_page(context, port_of(server))
            await evaluate(
                page,
                """async (options) => {
                    window.rpc = new socketeer.RPC("/rpc", options);
                    rpc.register("ui.double", (x) => 2 * x);
                    rpc.register("ui.greet", ({ name }) => `hello, ${name}`);
                    rpc.register("ui.later", async (x) => x);
                    rpc.register("ui.nothing", () => undefined);
                    await rpc.connect();
                    await rpc.call("hello");
                }""",
                FAST,
            )
            peer = await within(app.peers.get())
            assert await peer.call("ui.double", 21) == 42
            assert await peer.call("ui.greet", name="Ann") == "hello, Ann"
            assert await peer.proxy.ui.later([1, {"a": None}]) == [1, {"a": None}]
            assert await peer.call("ui.nothing") is None
            with pytest.raises(RemoteError) as raised:
                await peer.call("ui.missing")
            assert raised.value.code == -32601

    run(scenario())


def test_errors_carry_their_type_names_both_ways(chromium: str) -> None:
    async def scenario() -> None:
        app = App()
        async with browser(chromium) as context, start(app) as server:
            page = await open_page(context, port_of(server))
            error = await evaluate(
                page,
                """async (options) => {
                    window.rpc = new socketeer.RPC("/rpc", options);
                    rpc.register("ui.fail", () => { throw new TypeError("not a number"); });
                    await rpc.connect();
                    await rpc.call("hello");
                    try {
                        await rpc.call("fail", "bad value");
                    } catch (e) {
                        const { name, typeName, code, message, method } = e;
                        return { name, typeName, code, message, method,
                                 remote: e instanceof socketeer.RemoteError };
                    }
                }""",
                FAST,
            )
            assert error == {
                "name": "RemoteError",
                "typeName": "ValueError",
                "code": -32000,
                "message": "bad value",
                "method": "fail",
                "remote": True,
            }

            peer = await within(app.peers.get())
            with pytest.raises(RemoteError) as raised:
                await peer.call("ui.fail")
            assert raised.value.code == -32000
            assert raised.value.type_name == "TypeError"
            assert raised.value.message == "not a number"
            assert str(raised.value) == "TypeError: not a number"

    run(scenario())


def test_timeouts_cancel_the_call_on_the_other_side(chromium: str) -> None:
    async def scenario() -> None:
        app = App()
        async with browser(chromium) as context, start(app) as server:
            page = await open_page(context, port_of(server))
            error = await evaluate(
                page,
                """async (options) => {
                    window.rpc = new socketeer.RPC("/rpc", options);
                    window.aborted = null;
                    rpc.register("ui.hang", function () {
                        return new Promise((resolve) => {
                            this.signal.addEventListener("abort", () => {
                                aborted = this.signal.reason.name;
                                resolve("too late");
                            });
                        });
                    });
                    await rpc.connect();
                    await rpc.call("hello");
                    try {
                        await rpc.callWith("slow", { timeout: 500 });
                    } catch (e) {
                        return { name: e.name, method: e.method,
                                 timeout: e instanceof socketeer.CallTimeout };
                    }
                }""",
                FAST,
            )
            assert error == {"name": "TimeoutError", "method": "slow", "timeout": True}
            await within(app.cancelled.wait())  # $/cancel reached the server: task cancelled
            assert await evaluate(page, "() => rpc.call('add', 1, 2)") == 3  # still open

            # The other way: the Python caller times out, the page's call is aborted.
            peer = await within(app.peers.get())
            with pytest.raises(CallTimeout):
                await peer.call_with("ui.hang", timeout=0.2)
            await page.wait_for_function("() => aborted === 'AbortError'")

    run(scenario())


def test_close_stops_reconnecting(chromium: str) -> None:
    async def scenario() -> None:
        async with browser(chromium) as context:
            first = App()
            async with start(first) as server:
                port = port_of(server)
                page = await open_page(context, port)
                outcome = await evaluate(
                    page,
                    """async (options) => {
                        // Two clients: `stopped` is closed, `control` shows that the
                        // server is reachable again.
                        window.stopped = new socketeer.RPC("/rpc", options);
                        window.control = new socketeer.RPC("/rpc", options);
                        await Promise.all([stopped.connect(), control.connect()]);
                        stopped.close();
                        const later = await stopped.call("add", 1, 2).catch((e) => e.name);
                        return [stopped.state, later];
                    }""",
                    FAST,
                )
                assert outcome == ["closed", "ClientClosed"]
                assert first.connections == 2

            second = App()
            async with start(second, port):
                await page.wait_for_function("() => control.state === 'open'")
                assert second.connections == 1
                await asyncio.sleep(QUIET_PERIOD)  # many reconnection delays
                assert second.connections == 1
                assert await evaluate(page, "() => stopped.state") == "closed"

    run(scenario())


# The demo pages


def test_demo_rpc_pages(chromium: str) -> None:
    async def scenario() -> None:
        async with browser(chromium) as context, demo_server("127.0.0.1", 0) as server:
            url = f"http://127.0.0.1:{port_of(server)}"
            first, second = await context.new_page(), await context.new_page()
            for tab in (first, second):
                await tab.goto(f"{url}/rpc-counter")
                await expect(tab.locator("#status")).to_have_text("connected")
            await expect(first.locator("#total")).to_have_text("total 0 · 2 tabs")
            await first.get_by_role("button", name="Increase").click()
            await first.get_by_role("button", name="Increase").click()
            await second.get_by_role("button", name="Decrease").click()
            await expect(first.locator("#mine")).to_have_text("2")
            await expect(second.locator("#mine")).to_have_text("-1")
            for tab in (first, second):
                await expect(tab.locator("#total")).to_have_text("total 1 · 2 tabs")
            await second.close()
            await expect(first.locator("#total")).to_have_text("total 2 · 1 tab")

            await first.get_by_role("link", name="server calls").click()
            await expect(first.locator("#status")).to_have_text("connected")
            await first.get_by_role("button", name="Let the server greet me").click()
            await expect(first.locator("#question")).to_have_text("What's your name?")
            await first.locator("#answer").fill("Ann")
            await first.get_by_role("button", name="Answer").click()
            await expect(first.locator("#flash")).to_have_text("Hello, Ann! (said the server)")
            await expect(first.locator("#log li").last).to_have_text('greet() returned "Ann"')

    run(scenario())
