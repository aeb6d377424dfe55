"""The room page in a real browser, as viewers, a moderator and a host use it: the
states where sending is not possible (muted, slow mode, kicked, banned) say so before
a message fails, the page follows what the server restates about the viewer, toasts
keep clear of the composer, the page speaks Simplified Chinese to a Chinese browser,
and keyboard, screen-reader and small-screen use work.

Screenshots, at desktop size and at 390x844, in English and Chinese, are for a person to
look at, not checked: they go to CHATSITE_TEST_SCREENSHOTS (else the test's tmp_path).
Each test writes its rows first and then starts the browser (see browser_helpers).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from rooms.services import do_create_room, do_grant_coins, do_set_role, do_update_room
from tests.live.browser_helpers import PASSWORD, Viewer, make_user
from tests.live.test_browser import command

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SLUG = "page"
PHONE = {"width": 390, "height": 844}
MENTION_CASES = json.loads((Path(__file__).parents[2] / "rooms" / "tests" / "mention_cases.json").read_text("utf-8"))

# Lets a test hide some incoming events from the page (window.__drop(event) -> true),
# as if they were late, and hand the page a frame as if the server had sent it
# (window.__deliver(frame)): for what the server sends that a test cannot cause.
SOCKET_SPY = """
(() => {
  const Native = window.WebSocket;
  window.__drop = () => false;
  window.__sockets = [];
  class Spy extends Native {
    constructor(...args) {
      super(...args);
      window.__sockets.push(this);
    }
    set onmessage(handler) {
      this.__handler = handler;
      super.onmessage = handler && ((message) => {
        let frame;
        try { frame = JSON.parse(message.data); } catch { handler(message); return; }
        if (frame.type === "batch") frame = { ...frame, events: frame.events.filter((e) => !window.__drop(e)) };
        else if (window.__drop(frame)) return;
        handler({ data: JSON.stringify(frame) });
      });
    }
    get onmessage() {
      return super.onmessage;
    }
  }
  window.WebSocket = Spy;
  window.__deliver = (frame) => {
    const open = window.__sockets.filter((s) => s.readyState === 1 && s.__handler);
    open.at(-1).__handler({ data: JSON.stringify(frame) });
  };
})();
"""


class LocaleViewer(Viewer):
    """A Viewer whose browser speaks `locale` (Accept-Language, Intl) and prefers `color_scheme`."""

    def __init__(self, browser, server, cookie, *, locale="en-US", color_scheme="dark", **kwargs):
        original = browser.new_context

        def new_context(**options):
            return original(locale=locale, color_scheme=color_scheme, **options)

        browser.new_context = new_context
        try:
            super().__init__(browser, server, cookie, **kwargs)
        finally:
            browser.new_context = original


@pytest.fixture
def room(transactional_db):
    host = make_user("hana_host")
    room = do_create_room(None, slug=SLUG, title="Page room", host_username=host.username)
    do_update_room(None, room_id=room.pk, is_live=True)
    return room


def shoot(viewer: Viewer, folder: Path, name: str) -> None:
    page = viewer.page
    # Panels slide when the width changes; a still page is what a person would look at.
    page.emulate_media(reduced_motion="reduce")
    size = page.viewport_size
    page.screenshot(path=str(folder / f"{name}-desktop.png"))
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(folder / f"{name}-phone.png"))
    page.set_viewport_size(size)


def overlaps(a: dict, b: dict) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def test_mute_and_slow_mode_hold_the_draft_and_unmute_frees_the_retry(
    daphne_servers, login_cookie, launch_browser, room
):
    from playwright.sync_api import expect

    host = make_user("mia_mod")
    do_set_role(None, room_id=room.pk, username="mia_mod", role="moderator")
    bob = make_user("bob")
    cookies = login_cookie(host), login_cookie(bob)
    (server,) = daphne_servers(1)
    browser = launch_browser()
    m = Viewer(browser, server, cookies[0])
    b = Viewer(browser, server, cookies[1], init_script=SOCKET_SPY)
    m.open_room(SLUG)
    b.open_room(SLUG)

    # The mute reaches bob's page late: his send is refused by the server first.
    b.page.evaluate("() => { window.__drop = (e) => e.type === 'moderation' && e.action === 'mute'; }")
    assert command(m, SLUG, {"type": "mute", "user": "bob", "seconds": 600, "reason": "calm"})["type"] == "ack"
    b.send("did I miss something")
    failed = b.page.locator("#messages li.pending.failed")
    expect(failed.locator(".pending-label")).to_contain_text(re.compile(r"Retry in \d+:\d\d\."))
    expect(failed.get_by_role("button", name="Retry")).to_be_disabled()
    expect(b.page.locator("#composer-status")).to_contain_text("Muted for")

    # Now the page knows: Enter keeps the draft, and Send is off.
    b.send("this draft stays")
    expect(b.page.locator("#composer-send")).to_be_disabled()
    expect(b.page.locator("#composer-body")).to_have_value("this draft stays")
    expect(b.page.locator("#messages li.pending")).to_have_count(1)

    # Unmuted early: the failed line may go again at once.
    assert command(m, SLUG, {"type": "unmute", "user": "bob"})["type"] == "ack"
    expect(b.page.locator("#composer-status")).to_be_hidden()
    retry = failed.get_by_role("button", name="Retry")
    expect(retry).to_be_enabled()
    expect(failed.locator(".pending-label")).not_to_contain_text("Retry in")
    retry.click()
    expect(m.bodies("did I miss something")).to_have_count(1)
    expect(b.page.locator("#messages li.pending")).to_have_count(0)
    # Deleted, the line still counts toward slow mode on the server: the page knows.
    stored = int(m.line("did I miss something").get_attribute("data-message-id"))
    assert command(m, SLUG, {"type": "delete", "id": stored})["type"] == "ack"
    expect(b.bodies("did I miss something")).to_have_count(0)

    # Slow mode switched on right after bob's message counts from that message: the
    # page waits with him instead of letting the next send fail.
    expect(b.page.locator("#composer-send")).to_be_enabled()
    assert command(m, SLUG, {"type": "slow_mode", "seconds": 60})["type"] == "ack"
    expect(b.page.locator("#slow-mode")).to_be_visible()
    send = b.page.locator("#composer-send")
    expect(send).to_be_disabled()
    expect(send).to_have_text(re.compile(r"^\d+ s$"))
    b.page.press("#composer-body", "Enter")
    expect(b.page.locator("#composer-body")).to_have_value("this draft stays")
    assert b.page.locator("#messages li.pending").count() == 0
    # Coming back to the page, the deleted line in the history still holds him.
    b.page.reload()
    expect(b.page.locator("#conn-status")).to_have_attribute("data-state", "live")
    b.page.fill("#composer-body", "after the reload")
    expect(send).to_be_disabled()
    expect(send).to_have_text(re.compile(r"^\d+ s$"))
    # The moderator is not held by slow mode.
    m.send("team talk")
    expect(b.bodies("team talk")).to_have_count(1)
    for viewer in (m, b):
        assert viewer.online_errors() == []


def test_restated_balance_and_mute_update_the_page_and_toasts_keep_clear_of_the_composer(
    daphne_servers, login_cookie, launch_browser, room, screenshot_dir
):
    from playwright.sync_api import expect

    bob = make_user("bob")
    cookie = login_cookie(bob)
    (server,) = daphne_servers(1)
    b = Viewer(launch_browser(), server, cookie, init_script=SOCKET_SPY)
    b.open_room(SLUG)
    me = {"type": "you", "id": bob.pk, "name": "bob", "role": "member"}

    # Coins granted elsewhere (the admin): the server restates the balance.
    b.page.locator("#tip-open").click()
    balance = b.page.locator("#tip-form .tip-balance")
    expect(balance).to_have_text("Balance: 0 coins")
    b.page.evaluate("frame => window.__deliver(frame)", {**me, "balance": 2500})
    expect(balance).to_have_text("Balance: 2,500 coins")
    b.page.keyboard.press("Escape")
    expect(b.page.locator("#tip-form")).to_have_count(0)
    b.page.locator("#tip-open").click()
    expect(balance).to_have_text("Balance: 2,500 coins")
    b.page.keyboard.press("Escape")

    # Muted and unmuted from the admin: the same frame, with muted_until.
    b.page.fill("#composer-body", "typing along")
    b.page.evaluate("frame => window.__deliver(frame)", {**me, "muted_until": "2999-01-01T00:00:00Z"})
    expect(b.page.locator("#composer-status")).to_contain_text("Muted for")
    expect(b.page.locator("#composer-send")).to_be_disabled()
    b.page.evaluate("frame => window.__deliver(frame)", {**me, "muted_until": None})
    expect(b.page.locator("#composer-status")).to_be_hidden()
    expect(b.page.locator("#composer-send")).to_be_enabled()

    for text in ("Couldn't do that.", "Nor that.", "A third, longer toast to make the stack taller."):
        b.page.evaluate("frame => window.__deliver(frame)", {"type": "error", "code": "server_error", "detail": text})
    expect(b.page.locator("#toasts .toast")).to_have_count(3)
    for size in ({"width": 1200, "height": 800}, PHONE):
        b.page.set_viewport_size(size)
        controls = [b.page.locator(sel).bounding_box() for sel in ("#composer-body", "#composer-send", "#tip-open")]
        for toast in b.page.locator("#toasts .toast").all():
            box = toast.bounding_box()
            assert box and all(not overlaps(box, control) for control in controls), (size, box, controls)
    b.page.set_viewport_size({"width": 1200, "height": 800})
    shoot(b, screenshot_dir, "toasts")
    assert b.online_errors() == []


def test_a_ban_says_how_long_and_why_even_right_after_a_kick(
    daphne_servers, login_cookie, launch_browser, room, screenshot_dir
):
    from playwright.sync_api import expect

    host = get_user_model().objects.get(username="hana_host")
    bob = make_user("bob")
    cookies = login_cookie(host), login_cookie(bob)
    (server,) = daphne_servers(1)
    browser = launch_browser()
    h, b = Viewer(browser, server, cookies[0]), Viewer(browser, server, cookies[1])
    h.open_room(SLUG)
    b.open_room(SLUG)
    banner, status = b.page.locator("#room-banner"), b.page.locator("#conn-status")

    assert command(h, SLUG, {"type": "kick", "user": "bob"})["type"] == "ack"
    expect(banner).to_contain_text("You were removed from the room")
    assert command(h, SLUG, {"type": "ban", "user": "bob", "seconds": 3600, "reason": "spam"})["type"] == "ack"
    # Told before the rejoin is even tried, and it never is.
    expect(banner).to_contain_text(re.compile(r"You are banned from this room until .+ \(spam\)\."))
    assert len(b.sockets) == 1, b.sockets
    expect(status).to_have_attribute("data-state", "stopped")
    expect(status).to_have_text("You are banned from this room")

    # Coming back to the page later: the same, and nothing invites a message.
    b.page.reload()
    expect(banner).to_contain_text(re.compile(r"You are banned from this room until .+ \(spam\)\."))
    expect(b.page.locator("#composer-send")).to_be_disabled()
    expect(b.page.locator("#tip-open")).to_be_hidden()
    expect(b.page.locator("#composer-hint")).to_contain_text("You are banned from this room.")
    expect(b.page.locator("#composer-hint")).not_to_contain_text("will wait")
    b.page.fill("#composer-body", "let me in")
    b.page.press("#composer-body", "Enter")
    expect(b.page.locator("#composer-body")).to_have_value("let me in")
    shoot(b, screenshot_dir, "banned")
    # The refused socket is the browser's own report, not the page's.
    assert [e for e in b.online_errors() if "WebSocket" not in e] == []


def test_a_chinese_browser_gets_chinese_and_mentions_work_in_any_script(
    daphne_servers, login_cookie, launch_browser, room, screenshot_dir
):
    from playwright.sync_api import expect

    xiaoming = make_user("小明")
    cookie = login_cookie(xiaoming)
    host_cookie = login_cookie(get_user_model().objects.get(username="hana_host"))
    (server,) = daphne_servers(1)
    browser = launch_browser()

    guest = LocaleViewer(browser, server, None, locale="zh-CN")
    guest.page.goto(f"{server.http_url}/")
    expect(guest.page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(guest.page.get_by_role("link", name="登录")).to_be_visible()
    expect(guest.page.locator(".page-title")).to_have_text("房间")
    guest.context.close()

    x = LocaleViewer(browser, server, cookie, locale="zh-CN")
    h = Viewer(browser, server, host_cookie)
    x.open_room(SLUG)
    h.open_room(SLUG)
    expect(x.page.locator("#conn-status")).to_have_text("已连接")
    expect(x.page.locator("#composer-send")).to_have_text("发送")
    expect(x.page.locator("#online-count")).to_have_text("2 人在线")

    assert command(h, SLUG, {"type": "send", "body": "你好@小明今天来了 https://example.com/直播"})["type"] == "ack"
    line = x.line("你好@小明今天来了 https://example.com/直播")
    expect(line).to_have_class(re.compile("mentions-me"))
    expect(line.locator(".mention-token")).to_have_text("@小明")
    expect(line.locator("a.msg-link")).to_have_attribute("rel", "noopener nofollow ugc")
    expect(x.page.locator("#announcer")).to_have_text("hana_host 提到了你：你好@小明今天来了 https://example.com/直播")
    # Times on the page's clock: 24-hour in Chinese.
    shown = line.locator(".msg-time").text_content()
    assert re.fullmatch(r"\d{1,2}:\d{2}", shown), shown
    # The same line for the host: the server resolved the mention, the page sets it off.
    expect(h.line("你好@小明今天来了 https://example.com/直播").locator(".mention-token")).to_have_text("@小明")

    # The autocomplete offers names after `@` in running Chinese text.
    x.page.fill("#composer-body", "")
    x.page.type("#composer-body", "谢谢@han")
    expect(x.page.get_by_role("option", name="@hana_host")).to_be_visible()
    x.page.keyboard.press("Enter")
    expect(x.page.locator("#composer-body")).to_have_value("谢谢@hana_host ")

    # The page and the server agree on every case of the contract (rooms/tests/test_mentions.py).
    found = x.page.evaluate(
        """async (data) => {
      const { findMentions } = await import("/static/chat/richtext.js");
      const { mentionQuery } = await import("/static/chat/mentions.js");
      return {
        cases: data.cases.map((c) => [...new Set(findMentions(c.text, data.users).map((m) => m.name))]),
        queries: ["你好@小", "a@b", "@", "（@小红"].map((t) => mentionQuery(t, t.length)?.query ?? null),
      };
    }""",
        MENTION_CASES,
    )
    assert found["cases"] == [c["mentions"] for c in MENTION_CASES["cases"]]
    assert found["queries"] == ["小", None, "", "小红"]

    x.page.locator("#messages").click(position={"x": 5, "y": 5})
    shoot(x, screenshot_dir, "zh-hans")
    x.page.set_viewport_size(PHONE)
    expect(x.page.locator("#people-toggle")).to_have_text("2 人在线")
    x.page.locator("#people-toggle").click()
    expect(x.page.locator("#team-list")).to_contain_text("hana_host")
    x.page.screenshot(path=str(screenshot_dir / "zh-hans-roster-phone.png"))
    x.page.keyboard.press("Escape")
    x.page.set_viewport_size({"width": 1200, "height": 800})

    # The server's refusals come in Chinese too, in the tip form as in toasts.
    x.page.locator("#tip-open").click()
    form = x.page.locator("#tip-form")
    x.page.fill("#tip-amount", "500")
    x.page.locator("#tip-send").click()
    expect(form.locator(".form-error")).to_have_text("需要 500 金币；你只有 0 金币。 请选择更小的金额。")
    x.page.keyboard.press("Escape")

    # The switch in the header: English, kept for the next pages.
    x.page.get_by_role("button", name="English").click()
    expect(x.page.locator("html")).to_have_attribute("lang", "en")
    expect(x.page.locator("#conn-status")).to_have_text("Connected")
    expect(x.page.locator("#composer-send")).to_have_text("Send")
    # The switch's cookie outranks the browser's Chinese on the socket too.
    x.page.locator("#tip-open").click()
    x.page.fill("#tip-amount", "500")
    x.page.locator("#tip-send").click()
    expect(form.locator(".form-error")).to_have_text("You need 500 coins; you have 0. Pick a smaller amount.")
    for viewer in (x, h):
        assert viewer.online_errors() == []


CONTRAST = """(selectors) => {
  const parse = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const c = parse(getComputedStyle(node).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c.slice(0, 3);
    }
    return parse(getComputedStyle(document.body).backgroundColor).slice(0, 3);
  };
  const worst = [];
  for (const sel of selectors) {
    for (const el of document.querySelectorAll(sel)) {
      if (!el.getClientRects().length || !el.textContent.trim()) continue;
      const a = lum(parse(getComputedStyle(el).color)), b = lum(background(el));
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      if (ratio < 4.5) worst.push(`${sel}: ${ratio.toFixed(2)}`);
    }
  }
  return worst;
}"""

DIM_TEXT = [
    ".msg-time",
    ".muted",
    ".presence-heading",
    ".composer-count",
    ".composer-hint",
    ".msg-reply-excerpt",
    ".system-text",
    ".side-tab",
    ".room-card-online",
    ".room-card-owner",
    ".tool-title",
    "button.button:enabled",
    ".badge",
    ".author",
    ".conn-status",
]


def test_keyboard_screen_readers_small_screens_and_what_viewers_expect(
    daphne_servers, login_cookie, launch_browser, room, screenshot_dir
):
    from playwright.sync_api import expect

    host = get_user_model().objects.get(username="hana_host")
    bob = make_user("bob")
    cookies = login_cookie(host), login_cookie(bob)
    (server,) = daphne_servers(1)
    browser = launch_browser()
    h, b = Viewer(browser, server, cookies[0]), Viewer(browser, server, cookies[1])
    h.open_room(SLUG)
    b.open_room(SLUG)
    messages = b.page.locator("#messages")
    expect(messages).to_have_attribute("role", "log")
    expect(messages).to_have_attribute("aria-live", "polite")

    h.send("hello https://example.com/a?b=1. and javascript:alert(1)")
    b.send("hi host")
    line = b.line("hello https://example.com/a?b=1. and javascript:alert(1)")
    expect(b.bodies("hi host")).to_have_count(1)
    link = line.locator("a.msg-link")
    expect(link).to_have_count(1)
    expect(link).to_have_attribute("href", "https://example.com/a?b=1")
    expect(link).to_have_attribute("rel", "noopener nofollow ugc")

    # One tab stop for the list; the arrows move in it; the next Tab is the composer.
    b.page.focus("#messages")
    active = "document.activeElement"
    assert b.page.evaluate(f"{active}.matches('#messages > li')")
    assert b.page.evaluate(f"{active}.textContent").endswith("hi host")
    b.page.keyboard.press("ArrowUp")
    assert "hello" in b.page.evaluate(f"{active}.textContent")
    b.page.keyboard.press("ArrowRight")
    assert b.page.evaluate(f"{active}.classList.contains('author')")
    b.page.keyboard.press("Tab")
    assert b.page.evaluate(f"{active}.id") == "composer-body"
    b.page.keyboard.press("Shift+Tab")
    assert b.page.evaluate(f"{active}.closest('#messages') !== null")

    # The person card from a name: role, account age and recent lines; focus comes back.
    line.locator("button.author").click()
    card = b.page.locator(".person-card")
    expect(card.locator(".card-facts")).to_have_text("Host · joined today")
    expect(card.locator(".card-recent")).to_contain_text("hello")
    expect(card.get_by_role("menuitem", name="Mute…")).to_have_count(0)
    b.page.keyboard.press("Escape")
    expect(card).to_have_count(0)
    assert b.page.evaluate(f"{active}.classList.contains('author')")

    # The team's card says whether someone is muted, and offers only what applies.
    h.line("hi host").locator("button.author").click()
    card = h.page.locator(".person-card")
    expect(card.locator(".card-standing")).to_contain_text("Not muted")
    expect(card.get_by_role("menuitem", name="Unmute")).to_have_count(0)
    card.get_by_role("menuitem", name="Mute…").click()
    h.page.get_by_role("button", name="10 min", exact=True).click()
    expect(h.toast("Muted bob for 10 min.")).to_be_visible()
    h.line("hi host").locator("button.author").click()
    expect(card.locator(".card-standing")).to_contain_text("Muted until")
    expect(card.get_by_role("menuitem", name="Unmute")).to_be_visible()
    expect(card.get_by_role("menuitem", name="Mute…")).to_have_count(0)
    card.get_by_role("menuitem", name="Unmute").click()
    expect(h.toast("bob can chat again.")).to_be_visible()
    expect(b.page.locator("#composer-status")).to_be_hidden()

    # Emoji from the bundled picker, at the caret.
    b.page.fill("#composer-body", "nice ")
    b.page.locator("#emoji-open").click()
    b.page.locator("#emoji-picker .emoji-cell", has_text="🔥").click()
    expect(b.page.locator("#composer-body")).to_have_value("nice 🔥")
    b.page.keyboard.press("Escape")

    # Settings stay in this browser: timestamps off, a bigger text.
    b.page.locator("#settings-open").click()
    b.page.get_by_label("Show timestamps").uncheck()
    b.page.get_by_label("24-hour clock").check()
    b.page.locator("#settings-form label", has_text="Large").click()
    expect(line.locator(".msg-time")).to_be_hidden()
    b.page.reload()
    expect(b.page.locator("#conn-status")).to_have_attribute("data-state", "live")
    expect(b.line("hi host").locator(".msg-time")).to_be_hidden()
    expect(b.page.locator("html")).to_have_attribute("data-font-size", "large")
    b.page.locator("#settings-open").click()
    b.page.get_by_label("Show timestamps").check()
    shown = b.line("hi host").locator(".msg-time")
    expect(shown).to_have_text(re.compile(r"^\d{1,2}:\d{2}$"))
    b.page.get_by_label("24-hour clock").uncheck()
    expect(shown).to_have_text(re.compile(r"^\d{1,2}:\d{2}\s[AP]M$"))
    b.page.locator("#settings-form label", has_text="Medium").click()
    b.page.keyboard.press("Escape")

    # Every text at AA contrast, in the dark theme and the light one.
    for scheme in ("dark", "light"):
        b.page.emulate_media(color_scheme=scheme)
        assert b.page.evaluate(CONTRAST, DIM_TEXT) == [], scheme
    expect(b.page.locator("body")).to_have_css("background-color", "rgb(255, 255, 255)")
    shoot(b, screenshot_dir, "light")
    b.page.emulate_media(color_scheme="dark")

    # On a phone the people slide over the chat; the chat keeps its size.
    b.page.set_viewport_size(PHONE)
    side = b.page.locator("#side")
    expect(side).to_be_hidden()
    toggle = b.page.locator("#people-toggle")
    expect(toggle).to_have_text("2 online")
    expect(toggle).to_have_accessible_name("People: 2 online")
    before = b.page.locator("#scroller").bounding_box()
    b.page.locator("#people-toggle").click()
    expect(side).to_be_visible()
    expect(b.page.locator("#audience-list")).to_contain_text("bob")
    assert b.page.locator("#scroller").bounding_box() == before
    b.page.screenshot(path=str(screenshot_dir / "roster-phone.png"))
    b.page.locator("#side-close").click()
    expect(side).to_be_hidden()
    assert b.page.evaluate(f"{active}.id") == "people-toggle"
    assert b.online_errors() == []

    # A host's card says whether someone is banned, and offers Ban… or Unban, not both.
    h.line("hi host").locator("button.author").click()
    expect(card.locator(".card-standing")).to_contain_text("Not banned")
    expect(card.get_by_role("menuitem", name="Unban")).to_have_count(0)
    expect(card.get_by_role("menuitem", name="Ban…")).to_be_visible()
    h.page.keyboard.press("Escape")
    assert command(h, SLUG, {"type": "ban", "user": "bob", "seconds": 3600, "reason": "spam"})["type"] == "ack"
    h.line("hi host").locator("button.author").click()
    expect(card.locator(".card-standing")).to_contain_text("Banned until")
    expect(card.get_by_role("menuitem", name="Ban…")).to_have_count(0)
    # The card grew when its details came: it still fits on the screen.
    box, height = card.bounding_box(), h.page.viewport_size["height"]
    assert box["y"] >= 0 and box["y"] + box["height"] <= height, (box, height)
    card.get_by_role("menuitem", name="Unban").click()
    expect(h.toast("bob is no longer banned.")).to_be_visible()
    assert h.online_errors() == []


def test_coins_granted_in_the_admin_reach_the_open_page(daphne_servers, login_cookie, launch_browser, room):
    from playwright.sync_api import expect

    staff = get_user_model().objects.create_superuser("sam_staff", password=PASSWORD)
    bob = make_user("bob")
    do_grant_coins(None, user_id=bob.pk, amount=5)
    cookies = login_cookie(staff), login_cookie(bob)
    (server,) = daphne_servers(1)
    browser = launch_browser()
    s, b = Viewer(browser, server, cookies[0]), Viewer(browser, server, cookies[1])
    b.open_room(SLUG)
    b.page.locator("#tip-open").click()
    balance = b.page.locator("#tip-form .tip-balance")
    expect(balance).to_have_text("Balance: 5 coins")

    missing = []
    s.page.on("response", lambda response: response.status == 404 and missing.append(response.url))
    s.page.goto(f"{server.http_url}/admin/rooms/wallet/")
    s.page.locator("#result_list tr", has_text="bob").locator("input.action-select").check()
    s.page.select_option("select[name=action]", "grant_1000")
    s.page.locator("button[name=index]").click()
    expect(s.page.locator(".messagelist")).to_contain_text("Granted 1000 coins to 1 wallet(s).")

    # bob's page was told, and his tip form with it, without a reload.
    expect(balance).to_have_text("Balance: 1,005 coins")
    assert b.online_errors() == []
    # The admin's own pages have no icon, so Chromium asks for /favicon.ico.
    assert [url for url in missing if not url.endswith("/favicon.ico")] == []
