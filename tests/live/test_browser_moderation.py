"""The room page's tools for the host team and for every viewer, in a real browser.

A moderator mutes from a message's menu and the viewer's composer counts the mute down;
tips pin with a countdown and reach the leaderboard; mentions light up for the person
named; a block hides someone for the blocker only; ending the stream reaches everyone.
Each test writes its rows first and then starts the browser (see browser_helpers).
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model

from moderation.services import do_delete_message
from rooms.services import do_create_room, do_grant_coins, do_send_message, do_send_tip, do_set_role, do_update_room
from tests.live.browser_helpers import Viewer, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SLUG = "stage"


@pytest.fixture
def stage(transactional_db):
    """A live room hosted by hana_host."""
    host = make_user("hana_host")
    room = do_create_room(None, slug=SLUG, title="Main stage", host_username=host.username)
    do_update_room(None, room_id=room.pk, is_live=True)
    return room


def test_moderator_mutes_a_viewer_from_the_message_menu(daphne_servers, login_cookie, launch_browser, stage):
    from playwright.sync_api import expect

    host = get_user_model().objects.get(username="hana_host")
    mia, bob = make_user("mia_mod"), make_user("bob")
    do_set_role(None, room_id=stage.pk, username="mia_mod", role="moderator")
    do_send_message(host, room_id=stage.pk, body="welcome to the stage")
    do_send_message(bob, room_id=stage.pk, body="first!!!")
    cookies = login_cookie(mia), login_cookie(bob)
    (server,) = daphne_servers(1)
    browser = launch_browser()
    m, b = (Viewer(browser, server, cookie) for cookie in cookies)
    m.open_room(SLUG)
    b.open_room(SLUG)
    # Lines sit at the bottom, so each new one moves the rest: let the join line land first.
    expect(m.page.locator("#messages li.system-presence")).to_have_text(re.compile("bob joined"))
    expect(b.page.locator("#tools-toggle")).to_be_hidden()
    expect(m.page.locator("#tools-toggle")).to_be_visible()

    # A moderator is never offered moderation of a host.
    menu = m.open_menu(m.line("welcome to the stage"))
    expect(menu.get_by_role("menuitem", name="Block hana_host")).to_be_visible()
    expect(menu.get_by_role("menuitem", name="Mute…")).to_have_count(0)
    expect(menu.get_by_role("menuitem", name="Ban…")).to_have_count(0)
    m.page.keyboard.press("Escape")
    expect(menu).to_be_hidden()

    b.page.fill("#composer-body", "a draft in progress")
    menu = m.open_menu(m.line("first!!!"))
    # Banning is for hosts and staff.
    expect(menu.get_by_role("menuitem", name="Ban…")).to_have_count(0)
    menu.get_by_role("menuitem", name="Mute…").click()
    m.page.fill("#mute-reason", "spam")
    m.page.get_by_role("button", name="1 min", exact=True).click()
    expect(m.toast("Muted bob for 1 min.")).to_be_visible()
    expect(m.page.locator("#messages")).to_contain_text("bob was muted for 1 min by mia_mod (spam)")

    status = b.page.locator("#composer-status")
    expect(status).to_have_text(re.compile(r"^Muted for (1:00|0:[0-5]\d) \(spam\)$"))
    shown = status.text_content()
    expect(status).not_to_have_text(shown, timeout=2_500)
    expect(b.page.locator("#composer-body")).to_have_value("a draft in progress")
    expect(b.page.locator("#composer-hint")).to_contain_text("You are muted until")

    # Enter while muted keeps the draft where it is rather than failing it.
    b.page.press("#composer-body", "Enter")
    expect(b.page.locator("#composer-send")).to_be_disabled()
    expect(b.page.locator("#composer-body")).to_have_value("a draft in progress")
    assert b.page.locator("#messages li.pending").count() == 0

    m.page.locator("#tab-log").click()
    expect(m.page.locator("#modlog li").first).to_contain_text("mia_mod muted bob for 1 min")
    expect(m.page.locator("#modlog li").first).to_contain_text("spam")

    # Unmuting from the roster clears the viewer's countdown.
    m.page.locator("#tab-people").click()
    m.page.locator("#audience-list").get_by_role("button", name="bob").click()
    m.page.get_by_role("menuitem", name="Unmute").click()
    expect(status).to_be_hidden()
    expect(b.page.locator("#composer-hint")).not_to_contain_text("muted")
    m.page.locator("#tab-log").click()
    expect(m.page.locator("#modlog li").first).to_contain_text("mia_mod unmuted bob")
    for viewer in (m, b):
        assert viewer.online_errors() == []

    # The host team's comings and goings are always worth a line.
    m.context.close()
    expect(b.page.locator("#messages li.system-presence")).to_have_text(re.compile("MODmia_mod left"))


def test_a_big_tip_is_pinned_with_a_countdown_and_tops_the_leaderboard(
    daphne_servers, login_cookie, launch_browser, stage, screenshot_dir
):
    from playwright.sync_api import expect

    alice, bob = make_user("alice"), make_user("bob")
    do_grant_coins(None, user_id=alice.pk, amount=1000)
    cookies = login_cookie(alice), login_cookie(bob)
    (server,) = daphne_servers(1)
    browser = launch_browser()
    a, b = (Viewer(browser, server, cookie) for cookie in cookies)
    a.open_room(SLUG)
    b.open_room(SLUG)

    a.page.locator("#tip-open").click()
    form = a.page.locator("#tip-form")
    expect(form.locator(".tip-balance")).to_have_text("Balance: 1,000 coins")
    form.get_by_role("button", name="500", exact=True).click()
    a.page.fill("#tip-note", "great run")
    expect(a.page.locator("#tip-send")).to_have_text("Send 500 coins")
    a.page.locator("#tip-send").click()
    expect(a.toast("You tipped 500 coins")).to_be_visible()
    expect(form).to_be_hidden()

    pinned = b.page.locator("#pinned .pinned-tip")
    expect(pinned).to_contain_text("alice")
    expect(pinned).to_contain_text("500")
    expect(pinned).to_contain_text("great run")
    # 500 coins pin for ten minutes (settings.CHAT_TIP_PIN_TIERS).
    expect(pinned.locator(".countdown")).to_have_text(re.compile(r"^(10:00|9:[0-5]\d)$"))
    tip = b.page.locator("#messages li.tip")
    expect(tip).to_have_class(re.compile(r"\btip-highlight\b"))
    expect(tip).to_contain_text("500 coins")

    b.page.locator("#tab-top").click()
    leader = b.page.locator("#leaderboard li").first
    expect(leader).to_contain_text("alice")
    expect(leader.locator(".leader-total")).to_have_text("500")
    b.page.screenshot(path=str(screenshot_dir / "room-tip-pinned.png"))

    # Refusals come back in the form, with the server's words.
    a.page.locator("#tip-open").click()
    expect(form.locator(".tip-balance")).to_have_text("Balance: 500 coins")
    form.get_by_role("button", name="1,000", exact=True).click()
    a.page.locator("#tip-send").click()
    expect(form.locator(".form-error")).to_contain_text("You need 1000 coins; you have 500.")
    a.page.fill("#tip-amount", "0")
    a.page.locator("#tip-send").click()
    expect(form.locator(".form-error")).to_contain_text("at least 1")

    b.page.reload()
    expect(b.page.locator("#conn-status")).to_have_attribute("data-state", "live")
    expect(b.page.locator("#pinned .pinned-tip")).to_contain_text("great run")
    for viewer in (a, b):
        assert viewer.online_errors() == []


def test_mentions_and_quotes_lead_to_what_they_point_at(daphne_servers, login_cookie, launch_browser, stage):
    from playwright.sync_api import expect

    host = get_user_model().objects.get(username="hana_host")
    alice, bob = make_user("alice"), make_user("bob")
    first = do_send_message(alice, room_id=stage.pk, body="the very first question")
    gone = do_send_message(alice, room_id=stage.pk, body="regrettable words")
    for n in range(60):
        do_send_message(host, room_id=stage.pk, body=f"backlog {n}")
    do_send_message(host, room_id=stage.pk, body="answering an old one", reply_to_id=first.pk)
    do_send_message(host, room_id=stage.pk, body="answering the gone one", reply_to_id=gone.pk)
    do_delete_message(host, message_id=gone.pk)
    cookies = login_cookie(alice), login_cookie(bob)
    (server,) = daphne_servers(1)
    browser = launch_browser()
    a, b = (Viewer(browser, server, cookie) for cookie in cookies)
    a.open_room(SLUG)
    b.open_room(SLUG)
    # A small room says who came in.
    expect(a.page.locator("#messages li.system-presence")).to_contain_text("bob joined")

    a.page.fill("#composer-body", "hey @bo")
    suggestions = a.page.locator("#mention-suggestions [role=option]")
    expect(suggestions.first).to_have_text("@bob")
    a.page.press("#composer-body", "Escape")
    expect(suggestions.first).to_be_hidden()
    a.page.press("#composer-body", "b")
    expect(suggestions.first).to_have_text("@bob")
    a.page.press("#composer-body", "Enter")
    expect(a.page.locator("#composer-body")).to_have_value("hey @bob ")
    a.page.keyboard.type("look at this")
    a.page.press("#composer-body", "Enter")

    line = b.line("hey @bob look at this")
    expect(line).to_have_class(re.compile(r"\bmentions-me\b"))
    expect(line.locator(".mention-token")).to_have_text("@bob")
    expect(a.line("hey @bob look at this")).not_to_have_class(re.compile(r"\bmentions-me\b"))

    b.page.locator("#scroller").evaluate("el => { el.scrollTop = 0; }")
    a.send("@bob are you there?")
    badge = b.page.locator("#jump-mention")
    expect(badge).to_have_text("1 mention ↓")
    badge.click()
    expect(b.line("@bob are you there?")).to_be_in_viewport()
    expect(badge).to_be_hidden()

    # A quote leads to its original, paging back through the log when it is not loaded.
    expect(b.line("answering the gone one").locator(".msg-reply-excerpt")).to_have_text("message deleted")
    expect(b.bodies("the very first question")).to_have_count(0)
    b.line("answering an old one").locator(".msg-reply").click()
    original = b.line("the very first question")
    expect(original).to_be_in_viewport()
    expect(original).to_have_class(re.compile(r"\bflash\b"))
    for viewer in (a, b):
        assert viewer.online_errors() == []


def test_blocking_hides_someone_for_the_blocker_only(daphne_servers, login_cookie, launch_browser, stage):
    from playwright.sync_api import expect

    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    do_send_message(bob, room_id=stage.pk, body="bob was here")
    do_grant_coins(None, user_id=bob.pk, amount=100)
    do_send_tip(bob, room_id=stage.pk, amount=50, body="from bob", client_id="tip-1")
    cookies = login_cookie(alice), login_cookie(bob), login_cookie(carol)
    (server,) = daphne_servers(1)
    browser = launch_browser()
    a, b, c = (Viewer(browser, server, cookie) for cookie in cookies)
    for viewer in (a, b, c):
        viewer.open_room(SLUG)
    expect(a.page.locator("#messages li.system-presence")).to_have_count(2)
    expect(a.page.locator("#pinned .pinned-tip")).to_contain_text("from bob")

    a.open_menu(a.line("bob was here")).get_by_role("menuitem", name="Block bob").click()
    expect(a.toast("Blocked bob")).to_be_visible()
    expect(a.bodies("bob was here")).to_have_count(0)
    expect(a.page.locator("#messages li.tip")).to_have_count(0)
    expect(a.page.locator("#pinned .pinned-tip")).to_have_count(0)
    expect(c.bodies("bob was here")).to_have_count(1)

    b.send("still here")
    expect(c.bodies("still here")).to_have_count(1)
    c.send("carol after")
    expect(a.bodies("carol after")).to_have_count(1)
    expect(a.bodies("still here")).to_have_count(0)

    a.page.locator("#blocked-details summary").click()
    blocked = a.page.locator("#blocked-list li")
    expect(blocked).to_have_count(1)
    expect(blocked).to_contain_text("bob")
    blocked.get_by_role("button", name="Unblock").click()
    expect(a.page.locator("#blocked-note")).to_have_text("Unblocked bob: their messages show again.")
    expect(blocked).to_have_count(0)
    # What bob wrote before and while blocked comes back at once, in its place in the log.
    expect(a.bodies("bob was here")).to_have_count(1)
    expect(a.bodies("still here")).to_have_count(1)
    bodies = a.page.locator("#messages li.msg .msg-body").all_text_contents()
    assert bodies.index("bob was here") < bodies.index("still here") < bodies.index("carol after"), bodies
    b.send("back again")
    expect(a.bodies("back again")).to_have_count(1)
    for viewer in (a, b, c):
        assert viewer.online_errors() == []


def test_host_ends_the_stream_and_runs_the_room_for_everyone(
    daphne_servers, login_cookie, launch_browser, stage, screenshot_dir
):
    from playwright.sync_api import expect

    host = get_user_model().objects.get(username="hana_host")
    bob = make_user("bob")
    do_send_message(host, room_id=stage.pk, body="we start in five")
    cookies = login_cookie(host), login_cookie(bob)
    # A room this "big" gets no line per viewer; the host team still gets theirs.
    (server,) = daphne_servers(1, env={"CHAT_JOIN_LINES_MAX_VIEWERS": "1"})
    browser = launch_browser()
    h, b = (Viewer(browser, server, cookie) for cookie in cookies)
    b.open_room(SLUG)
    h.open_room(SLUG)
    expect(b.page.locator("#room-live")).to_be_visible()
    expect(b.page.locator("#messages li.system-presence")).to_have_text(re.compile("HOSThana_host joined"))
    b.page.reload()
    expect(b.page.locator("#conn-status")).to_have_attribute("data-state", "live")

    h.page.locator("#tools-toggle").click()
    expect(h.page.locator("#team-panel")).to_be_visible()
    h.page.screenshot(path=str(screenshot_dir / "room-host-tools.png"))

    h.page.fill("#title-input", "After party")
    h.page.locator("#title-save").click()
    expect(b.page.locator("#room-title")).to_have_text("After party")

    h.page.locator("#slow-control [data-seconds='10']").click()
    expect(b.page.locator("#slow-mode")).to_have_text("Slow mode 10 s")
    b.send("slow hello")
    send = b.page.locator("#composer-send")
    expect(send).to_have_text(re.compile(r"^(10|9) s$"))
    expect(send).to_be_disabled()
    # The team is exempt.
    h.send("team is exempt")
    expect(h.bodies("team is exempt")).to_have_count(1)
    expect(h.page.locator("#composer-send")).to_have_text("Send")

    h.page.fill("#announce-body", "Heads up: raid incoming")
    h.page.locator("#announce-level").get_by_text("Warning").click()
    h.page.locator("#announce-send").click()
    expect(b.page.locator("#messages li.notice.notice-warning")).to_contain_text("Heads up: raid incoming")
    expect(b.page.locator("#pinned .pinned-notice.notice-warning")).to_contain_text("Heads up: raid incoming")

    live = h.page.locator("#live-toggle")
    live.click()
    expect(live).to_have_text("Click again to end")
    live.click()
    expect(b.page.locator("#room-live")).to_be_hidden()
    expect(b.page.locator("#messages")).to_contain_text("The stream has ended")
    expect(h.page.locator("#live-state")).to_have_text("Offline")
    expect(live).to_have_text("Go live")
    assert h.page.locator("#messages li.system-presence").count() == 0, "bob came back to a room over the limit"
    for viewer in (h, b):
        assert viewer.online_errors() == []
