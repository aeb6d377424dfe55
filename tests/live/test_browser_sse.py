"""The server-sent-events fallback in a real browser: where WebSockets cannot open, the
page falls back to the event stream by itself, says so, and two people still chat,
each line exactly once, across a reconnect of the stream."""

from __future__ import annotations

import pytest

from rooms.services import do_create_room
from tests.live.browser_helpers import Viewer, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# A network that blocks the WebSocket upgrade: every socket the page opens goes nowhere
# and closes without ever opening.
BLOCK_WEBSOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__socketsTried = 0;
  window.WebSocket = class BlockedWebSocket extends Native {
    constructor(url, protocols) {
      window.__socketsTried += 1;
      super("ws://127.0.0.1:9/blocked", protocols);
    }
  };
})();
"""


def test_with_websockets_blocked_two_people_chat_exactly_once_over_the_event_stream(
    daphne_servers, login_cookie, launch_browser, transactional_db
):
    from playwright.sync_api import expect

    host = make_user("hana_host")
    room = do_create_room(None, slug="sse-room", title="Fallback room", host_username=host.username)
    alice, bob = make_user("alice"), make_user("bob")
    cookies = login_cookie(alice), login_cookie(bob)
    (server,) = daphne_servers(1)
    browser = launch_browser()
    a = Viewer(browser, server, cookies[0], init_script=BLOCK_WEBSOCKETS)
    b = Viewer(browser, server, cookies[1], init_script=BLOCK_WEBSOCKETS)
    a.open_room(room.slug)
    b.open_room(room.slug)

    for viewer in (a, b):
        expect(viewer.page.locator("#conn-transport")).to_have_attribute("data-transport", "sse")
        expect(viewer.page.locator("#conn-transport")).to_have_text("Fallback: event stream")
        expect(viewer.page.locator("#online-count")).to_have_text("2 online")
        assert viewer.page.evaluate("window.__socketsTried") >= 2

    a.send("hello over the stream")
    expect(b.bodies("hello over the stream")).to_have_count(1)
    expect(a.bodies("hello over the stream")).to_have_count(1)
    expect(a.page.locator("#messages li.pending")).to_have_count(0)

    # A's stream breaks; B talks meanwhile; A's stream resumes from the last seq it had.
    a.context.set_offline(True)
    expect(a.page.locator("#conn-status")).not_to_have_attribute("data-state", "live")
    b.send("while you were away")
    expect(b.bodies("while you were away")).to_have_count(1)
    a.context.set_offline(False)
    expect(a.page.locator("#conn-status")).to_have_attribute("data-state", "live", timeout=20_000)
    expect(a.bodies("while you were away")).to_have_count(1)

    a.send("back again")
    expect(b.bodies("back again")).to_have_count(1)
    expect(a.bodies("back again")).to_have_count(1)
    for viewer in (a, b):
        for text in ("hello over the stream", "while you were away", "back again"):
            expect(viewer.bodies(text)).to_have_count(1)
    # Chromium reports the blocked sockets and the dropped stream; nothing else went wrong.
    for viewer in (a, b):
        assert [e for e in viewer.errors if "WebSocket" not in e and "ERR_INTERNET_DISCONNECTED" not in e] == []
