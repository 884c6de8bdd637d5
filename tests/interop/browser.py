"""Headless Chromium for the browser tests, driven by Playwright.

The system's ``chromium`` (the ``chromium`` fixture finds it; no browser download), with the
flags that make it quiet and sandbox-free in containers; every wait is bounded by
:data:`~.peers.TIMEOUT`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from playwright.async_api import BrowserContext, Page, async_playwright, expect

from .peers import TIMEOUT, within

__all__ = ["CHROMIUM_ARGS", "FAST", "browser", "evaluate", "open_page"]

# Playwright counts in milliseconds; every wait of the tests is on a condition, never a delay.
expect.set_options(timeout=TIMEOUT * 1000)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Chromium's flags: no sandbox (containers), no GPU, no QUIC, no background traffic."""

FAST = {"initialDelay": 20, "maxDelay": 100, "jitter": 0, "connectTimeout": 2000}
"""Options of ``new RPC(url, options)``: reconnect within 100 ms."""


@asynccontextmanager
async def browser(chromium: str) -> AsyncIterator[BrowserContext]:
    """A browser context of a new headless Chromium, closed at the end."""
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            context = await instance.new_context()
            context.set_default_timeout(TIMEOUT * 1000)
            yield context
            await context.close()
        finally:
            await instance.close()


async def open_page(context: BrowserContext, port: int) -> Page:
    """A page of the server on ``port`` (its ``/``), with ``/socketeer.js`` imported as
    ``window.socketeer``."""
    page = await context.new_page()
    await page.goto(f"http://127.0.0.1:{port}/")
    await page.evaluate("async () => { window.socketeer = await import('/socketeer.js'); }")
    return page


async def evaluate(page: Page, script: str, arg: Any = None) -> Any:
    """``page.evaluate``, bounded: a promise that never settles fails the test."""
    return await within(page.evaluate(script, arg))
