"""The page in a room busier than it can store or anyone can read: a send refused as
busy goes again by itself, skipped lines are counted and can be shown, and the server's
automatic slow mode says it is automatic."""

from __future__ import annotations

import pytest

from rooms.services import do_create_room
from tests.live.browser_helpers import Viewer, make_user
from tests.live.test_multiprocess_standing import manage

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The page's first send never reaches the server, which answers busy instead, as it does
# when the room cannot take it (nothing is stored; the page is to send it again).
FIRST_SEND_BUSY = """
(() => {
  const Native = window.WebSocket;
  window.__sends = [];
  class BusyOnceWebSocket extends Native {
    send(data) {
      let frame = null;
      try { frame = JSON.parse(data); } catch {}
      if (frame && frame.type === "send") {
        window.__sends.push(frame.client_id);
        if (window.__sends.length === 1) {
          const busy = {type: "error", code: "busy", detail: "The room is too busy.", client_id: frame.client_id,
                        retry_after: 1};
          setTimeout(() => this.__handler({data: JSON.stringify(busy)}), 10);
          return;
        }
      }
      super.send(data);
    }
    set onmessage(handler) {
      this.__handler = handler;
      super.onmessage = handler;
    }
    get onmessage() {
      return this.__handler;
    }
  }
  window.WebSocket = BusyOnceWebSocket;
})();
"""


@pytest.fixture
def busy_room(transactional_db):
    host = make_user("hana_host")
    return do_create_room(None, slug="busy-room", title="Busy room", host_username=host.username)


def test_a_send_refused_as_busy_goes_again_by_itself_and_shows_once(
    daphne_servers, login_cookie, launch_browser, busy_room
):
    from playwright.sync_api import expect

    alice = make_user("alice")
    (server,) = daphne_servers(1)
    cookie = login_cookie(alice)
    viewer = Viewer(launch_browser(), server, cookie, init_script=FIRST_SEND_BUSY)
    viewer.open_room(busy_room.slug)

    viewer.send("first try")

    expect(viewer.bodies("first try")).to_have_count(1)
    expect(viewer.page.locator("#messages li.pending")).to_have_count(0)
    sends = viewer.page.evaluate("window.__sends")
    assert len(sends) == 2 and sends[0] == sends[1]  # the same client_id: stored once
    assert viewer.online_errors() == []


def test_skipped_lines_are_counted_and_can_be_shown(daphne_servers, login_cookie, launch_browser, busy_room):
    from playwright.sync_api import expect

    reader = make_user("rita")
    chatters = [make_user(f"chatter{i}") for i in range(8)]
    (server,) = daphne_servers(1, redis=True, env={"CHAT_READABLE_MESSAGES_PER_SECOND": "1"})
    cookie = login_cookie(reader)
    viewer = Viewer(launch_browser(), server, cookie)
    viewer.open_room(busy_room.slug)

    # From a process of its own, as an operator's script would: the servers hear it through Redis.
    names = [c.username for c in chatters]
    manage(
        server,
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; from rooms.models import Room;"
        " from rooms.services import do_send_message; room = Room.objects.get(slug='busy-room');"
        f" [do_send_message(get_user_model().objects.get(username=n), room_id=room.pk, body=f'hype {{i}}')"
        f" for i, n in enumerate({names!r})]",
    )

    skipped = viewer.page.locator("#messages li.skipped")
    expect(skipped).to_have_count(1)
    expect(skipped).to_contain_text("messages skipped")
    shown_before = viewer.page.locator("#messages li.msg").count()
    assert shown_before < 8
    skipped.get_by_role("button", name="Show them").click()

    for i in range(8):
        expect(viewer.bodies(f"hype {i}")).to_have_count(1)
    expect(skipped).to_have_count(0)
    assert viewer.online_errors() == []


def test_the_automatic_slow_mode_says_so(daphne_servers, login_cookie, launch_browser, busy_room):
    from playwright.sync_api import expect

    reader = make_user("rita")
    (server,) = daphne_servers(1, redis=True)
    cookie = login_cookie(reader)
    viewer = Viewer(launch_browser(), server, cookie)
    viewer.open_room(busy_room.slug)

    auto = "from rooms.services import do_auto_slow_mode; do_auto_slow_mode(None, room_id={}, seconds={})"
    manage(server, "shell", "-c", auto.format(busy_room.pk, 10))

    expect(viewer.page.locator("#slow-mode")).to_contain_text("automatic")
    manage(server, "shell", "-c", auto.format(busy_room.pk, 0))
    expect(viewer.page.locator("#slow-mode")).to_be_hidden()
