"""The counter demo in headless Chromium: two tabs stay in sync through the server."""

from __future__ import annotations

from playwright.async_api import Page, async_playwright, expect

from socketeer.demo import demo_server

from .browser import CHROMIUM_ARGS
from .peers import TIMEOUT, run


async def open_tab(new_page: Page, url: str) -> Page:
    await new_page.goto(url)
    await expect(new_page.locator("#status")).to_have_text("connected")
    return new_page


def test_two_tabs_share_the_counter_and_reconnect(chromium: str) -> None:
    async def scenario() -> None:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=chromium, args=CHROMIUM_ARGS
            )
            try:
                context = await browser.new_context()
                context.set_default_timeout(TIMEOUT * 1000)
                async with demo_server("127.0.0.1", 0) as server:
                    port = server.sockets[0].getsockname()[1]
                    url = f"http://127.0.0.1:{port}/"
                    first = await open_tab(await context.new_page(), url)
                    second = await open_tab(await context.new_page(), url)
                    for tab in (first, second):
                        await expect(tab.locator("#value")).to_have_text("0")
                        await expect(tab.locator("#users")).to_have_text("2 users online")

                    await first.get_by_role("button", name="Increase").click()
                    await expect(second.locator("#value")).to_have_text("1")
                    await second.get_by_role("button", name="Decrease").click()
                    await second.get_by_role("button", name="Decrease").click()
                    await expect(first.locator("#value")).to_have_text("-1")

                    await second.close()
                    await expect(first.locator("#users")).to_have_text("1 user online")

                # The server went away (closing with 1001): the page says so and retries.
                await expect(first.locator("#status")).to_have_text("connecting…")
                await expect(first.get_by_role("button", name="Increase")).to_be_disabled()
                async with demo_server("127.0.0.1", port):
                    await expect(first.locator("#status")).to_have_text("connected")
                    await expect(first.locator("#users")).to_have_text("1 user online")
                    await expect(first.locator("#value")).to_have_text("0")  # a new counter
                    await context.close()
            finally:
                await browser.close()

    run(scenario())
