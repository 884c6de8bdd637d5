"""The RPC demos: one :class:`~socketeer.rpc.RPC` app, served on ``/rpc``.

- The RPC counter (page ``/rpc-counter``): each tab has a counter of its own, the instance
  of the ``counter`` route made for its connection, and every tab sees the total of the
  counters of all open tabs, which the server pushes to each of them with a ``total``
  notification (params: the total, the number of tabs) whenever it changes.
- Server calls (page ``/server-calls``): the page registers ``ui.ask(question)``, which
  returns what the user types, and ``ui.flash(text)``; its button calls ``greet``, which
  calls the page back with both.
"""

from __future__ import annotations

import asyncio

from ..rpc import RPC, Peer, Route, current_peer

__all__ = ["ASK_TIMEOUT", "rpc_app"]

ASK_TIMEOUT = 20.0
"""Seconds the server waits for the user to answer ``ui.ask`` before it gives up."""


def rpc_app() -> RPC:
    """A new RPC app, with fresh demo state."""
    rpc = RPC()
    tabs: set[TabCounter] = set()  # the counters of the open tabs

    async def publish_total() -> None:
        total = sum(tab.value for tab in tabs)
        # Concurrently; a tab that is closing just misses it.
        notifications = [tab.peer.notify("total", total, len(tabs)) for tab in tabs]
        await asyncio.gather(*notifications, return_exceptions=True)

    @rpc.route("counter")
    class TabCounter(Route):
        """One tab's counter: its connection's own instance, made on its first call."""

        def __init__(self, peer: Peer) -> None:
            super().__init__(peer)
            self.value = 0
            tabs.add(self)

        async def join(self) -> int:
            """The tab's value; every tab learns the new number of tabs."""
            await publish_total()
            return self.value

        async def increment(self) -> int:
            self.value += 1
            await publish_total()
            return self.value

        async def decrement(self) -> int:
            self.value -= 1
            await publish_total()
            return self.value

        async def on_close(self) -> None:
            tabs.discard(self)
            await publish_total()

    @rpc.method(timeout=ASK_TIMEOUT + 5)
    async def greet() -> str:
        """Ask the page for a name, greet it there, and return the name."""
        page = current_peer()
        name = await page.call_with("ui.ask", ["What's your name?"], timeout=ASK_TIMEOUT)
        await page.call("ui.flash", f"Hello, {name}! (said the server)")
        return str(name)

    return rpc
