"""Bursts of the same short line in the room page: in a hype moment "666" arrives from
everyone at once, and the page shows it as one line with a counter ("666 ×30") instead of
a screenful of it. The lines come from the server (stored by a process of their own, as
an operator's script would, heard through Redis), live, on a resume and in the history;
deletes and blocks take from the count; the host team's and the viewer's own lines, and
anything in between, are never folded in; the count is described in the page's language.

Screenshots go to CHATSITE_TEST_SCREENSHOTS (else the test's tmp_path), for a person to
look at. Each test writes its rows first and then starts the browser (see browser_helpers).
"""

from __future__ import annotations

import re

import pytest

from rooms.services import do_create_room, do_update_room
from tests.live.browser_helpers import Viewer, make_user
from tests.live.test_browser_room_page import LocaleViewer, shoot
from tests.live.test_multiprocess_standing import manage

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SLUG = "hype"
CHATTERS = [f"fan{i}" for i in range(6)]

SEND = (
    "from django.contrib.auth import get_user_model; from rooms.models import Room;"
    " from rooms.services import do_send_message; room = Room.objects.get(slug={slug!r});"
    " users = get_user_model().objects;"
    " [do_send_message(users.get(username=name), room_id=room.pk, body=body) for name, body in {lines!r}]"
)
DELETE = "from moderation.services import do_delete_message; do_delete_message(None, message_id={id})"


def say(server, lines: list[tuple[str, str]]) -> None:
    """Store `lines` ((username, body), in order) from a process of its own."""
    manage(server, "shell", "-c", SEND.format(slug=SLUG, lines=lines))


def hype(count: int, start: int = 0) -> list[tuple[str, str]]:
    """`count` "666" lines, the chatters taking turns."""
    return [(CHATTERS[i % len(CHATTERS)], "666") for i in range(start, start + count)]


@pytest.fixture
def room(transactional_db):
    host = make_user("hana_host")
    room = do_create_room(None, slug=SLUG, title="Hype room", host_username=host.username)
    do_update_room(None, room_id=room.pk, is_live=True)
    for name in CHATTERS:
        make_user(name)
    return room


def test_a_burst_of_666_is_one_counted_line_that_deletes_blocks_and_the_history_keep_right(
    daphne_servers, login_cookie, launch_browser, room, screenshot_dir
):
    from playwright.sync_api import expect

    cookies = login_cookie(make_user("vera")), login_cookie(make_user("lin"))
    (server,) = daphne_servers(1, redis=True)
    browser = launch_browser()
    v = LocaleViewer(browser, server, cookies[0], color_scheme="dark")
    v.open_room(SLUG)
    lines = v.page.locator("#messages li.msg")
    burst = lines.nth(0)
    badge = burst.locator(".msg-burst")

    say(server, hype(10))
    expect(badge).to_have_text("×10")
    expect(lines).to_have_count(1)

    # Gone for a while: the resume from the log counts each line once, into the same line.
    v.context.set_offline(True)
    expect(v.page.locator("#conn-status")).not_to_have_attribute("data-state", "live")
    say(server, hype(20, start=10))
    v.context.set_offline(False)
    expect(v.page.locator("#conn-status")).to_have_attribute("data-state", "live")
    expect(badge).to_have_text("×30")
    expect(lines).to_have_count(1)
    assert "after=" in v.sockets[-1], v.sockets

    # Something else in between ends the burst: the next "666" is a line of its own.
    say(server, [("fan0", "what a play"), ("fan1", "666")])
    expect(lines).to_have_count(3)
    expect(lines.nth(1).locator(".msg-body")).to_have_text("what a play")
    expect(lines.nth(2).locator(".msg-body")).to_have_text("666")
    expect(lines.nth(2).locator(".msg-burst")).to_have_count(0)
    expect(badge).to_have_text("×30")
    # Seen once: the live region was not handed the counter to read out.
    expect(badge).to_have_attribute("aria-hidden", "true")

    # The host's line always shows in full, and ends the burst it follows.
    say(server, [("hana_host", "666"), ("fan2", "666"), ("fan3", "666")])
    expect(lines).to_have_count(5)
    expect(lines.nth(3)).to_have_class(re.compile(r"\bby-team\b"))
    expect(lines.nth(3).locator(".msg-burst")).to_have_count(0)
    expect(lines.nth(4).locator(".msg-burst")).to_have_text("×2")

    # So does the viewer's own.
    v.send("666")
    expect(lines).to_have_count(6)
    expect(lines.nth(5)).to_have_class(re.compile(r"\bmine\b"))
    expect(v.page.locator("#messages li.pending")).to_have_count(0)
    say(server, [("fan4", "666")])
    expect(lines).to_have_count(7)
    expect(lines.nth(5).locator(".msg-burst")).to_have_count(0)
    expect(lines.nth(6).locator(".msg-burst")).to_have_count(0)

    # Who sent them, on hover and to a screen reader on focus.
    expect(burst).to_have_attribute("title", "6 people sent “666” 30 times: fan0, fan1, fan2, fan3, fan4, and fan5")
    expect(burst).to_have_attribute("aria-description", burst.get_attribute("title"))

    # A moderator deletes one of the 30, then the one the line shows: it stays, counting less.
    ids = [int(i) for i in burst.get_attribute("data-burst-ids").split()]
    assert len(ids) == 30 and ids == sorted(ids)
    manage(server, "shell", "-c", DELETE.format(id=ids[4]))
    expect(badge).to_have_text("×29")
    manage(server, "shell", "-c", DELETE.format(id=ids[0]))
    expect(badge).to_have_text("×28")
    expect(burst.locator(".author")).to_have_text("fan1")
    expect(burst).to_have_attribute("data-message-id", str(ids[1]))
    expect(v.page.locator("#messages li.deleted")).to_have_count(0)
    shoot(v, screenshot_dir, "burst-dark")

    # Blocking fan0 takes their four left out of it, and "what a play" with them: the
    # burst and fan1's "666" after it now stand together, and are one line.
    v.open_menu(v.line("what a play")).get_by_role("menuitem", name="Block fan0").click()
    expect(v.toast("Blocked fan0")).to_be_visible()
    expect(badge).to_have_text("×25")
    expect(burst.locator(".author")).to_have_text("fan1")
    expect(lines).to_have_count(5)

    # The history reads the same after a reload.
    v.page.reload()
    expect(v.page.locator("#conn-status")).to_have_attribute("data-state", "live")
    expect(lines).to_have_count(5)
    expect(v.page.locator("#messages li.burst .msg-burst")).to_have_text(["×25", "×2"])
    expect(v.page.locator("#messages li.deleted")).to_have_count(0)

    # In Chinese, on the light theme, for someone who blocked nobody: fan0's deleted first
    # line is one the history cannot place in the burst (the log keeps no body for it).
    z = LocaleViewer(browser, server, cookies[1], locale="zh-CN", color_scheme="light")
    z.open_room(SLUG)
    expect(z.page.locator("#messages li.deleted")).to_have_count(1)
    first = z.page.locator("#messages li.burst").first
    expect(first.locator(".msg-burst")).to_have_text("×28")
    expect(first).to_have_attribute("aria-description", re.compile(r"^6 人共发送了 28 次“666”："))
    shoot(z, screenshot_dir, "burst-zh-light")
    for viewer in (v, z):
        assert viewer.online_errors() == []


def test_skipped_lines_shown_later_join_the_burst_they_were_part_of(
    daphne_servers, login_cookie, launch_browser, room, screenshot_dir
):
    from playwright.sync_api import expect

    cookie = login_cookie(make_user("rita"))
    (server,) = daphne_servers(1, redis=True, env={"CHAT_READABLE_MESSAGES_PER_SECOND": "1"})
    v = Viewer(launch_browser(), server, cookie)
    v.open_room(SLUG)

    say(server, hype(12))
    skipped = v.page.locator("#messages li.skipped")
    expect(skipped).to_contain_text("messages skipped")
    lines = v.page.locator("#messages li.msg")
    shoot(v, screenshot_dir, "burst-skipped")

    skipped.get_by_role("button", name="Show them").click()
    expect(skipped).to_have_count(0)
    expect(lines).to_have_count(1)
    expect(lines.locator(".msg-burst")).to_have_text("×12")
    shoot(v, screenshot_dir, "burst-skipped-shown")
    assert v.online_errors() == []
