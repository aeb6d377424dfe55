"""What the browser tests share: starting Chromium, people in their own browser
contexts, and reading the room page the way a person would.

Playwright's sync API keeps an asyncio loop running on the test's thread, and Django
refuses ORM calls from such a thread. So each test writes its database rows first and
only then starts the browser.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator

from django.contrib.auth import get_user_model

from tests.live.conftest import skip_or_fail

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct-horse-battery-staple"


@contextlib.contextmanager
def browser_launcher() -> Iterator[Callable[[], object]]:
    """Yields `launch()`, which starts headless Chromium once and returns the Browser.

    A test module wraps this in a `launch_browser` fixture that depends on
    `daphne_servers`, so that the browser is torn down first: the servers' teardown
    runs asyncio.run, which cannot start while Playwright's loop is still running.
    """
    if not os.path.exists(CHROMIUM):
        skip_or_fail(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=10_000)
    started: dict[str, object] = {}

    def launch():
        if "browser" not in started:
            started["playwright"] = sync_playwright().start()
            started["browser"] = started["playwright"].chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
        return started["browser"]

    try:
        yield launch
    finally:
        if "browser" in started:
            started["browser"].close()
            started["playwright"].stop()


def make_user(name: str):
    return get_user_model().objects.create_user(username=name, password=PASSWORD)


class Viewer:
    """One person in their own browser context, with what their page complained about."""

    def __init__(self, browser, server, cookie: dict | None, *, init_script: str | None = None, viewport=None):
        self.context = browser.new_context(viewport=viewport or {"width": 1200, "height": 800})
        if cookie is not None:
            self.context.add_cookies([cookie])
        if init_script:
            self.context.add_init_script(init_script)
        self.page = self.context.new_page()
        self.server = server
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.sockets: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.on("console", self._console)
        self.page.on("dialog", self._dialog)
        self.page.on("websocket", lambda ws: self.sockets.append(ws.url))

    def _console(self, message) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open_room(self, slug: str) -> None:
        from playwright.sync_api import expect

        self.page.goto(f"{self.server.http_url}/rooms/{slug}/")
        expect(self.page.locator("#conn-status")).to_have_attribute("data-state", "live")

    def send(self, text: str) -> None:
        self.page.fill("#composer-body", text)
        self.page.press("#composer-body", "Enter")

    def _exact_body(self, text: str):
        return self.page.locator(".msg-body").filter(has_text=re.compile(rf"^{re.escape(text)}$"))

    def bodies(self, text: str):
        """Bodies of confirmed (not pending) messages that are exactly `text`."""
        return self.page.locator("#messages li.msg:not(.pending)").locator(self._exact_body(text))

    def line(self, text: str):
        """The confirmed message line whose own body (not a quote of it) is exactly `text`."""
        return self.page.locator("#messages li.msg:not(.pending)").filter(has=self._exact_body(text))

    def open_menu(self, line):
        """Open the actions menu on a message line; returns the menu."""
        line.hover()
        line.get_by_role("button", name="More actions").click()
        return self.page.get_by_role("menu")

    def toast(self, text: str):
        return self.page.locator("#toasts .toast", has_text=text)

    def online_errors(self) -> list[str]:
        # Going offline makes Chromium report the socket it had to drop; that is expected.
        return [e for e in self.errors if "ERR_INTERNET_DISCONNECTED" not in e]
