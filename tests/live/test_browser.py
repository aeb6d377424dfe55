"""The web UI in a real browser: Chromium driven by Playwright against real daphne servers.

Two signed-in people in two browser contexts chat in one room; the page must render
every user text as text, show who is online, survive losing the network without losing
or doubling messages, and the sign-up form must lead into a working room. Each test
writes its database rows before it calls `launch_browser()` (see browser_helpers).
"""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth import get_user_model

from rooms.services import do_create_room, do_send_message
from tests.live.browser_helpers import PASSWORD, Viewer, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

XSS = "<img src=x onerror=alert(1)>"

# Records every frame the page sends, and lets a test swallow the next `send` and drop
# the connection, as if the network died between the click and the server.
WS_SPY = """
(() => {
  const Native = window.WebSocket;
  window.__sent = [];
  window.__swallowNextSend = false;
  class SpyWebSocket extends Native {
    send(data) {
      let frame = null;
      try { frame = JSON.parse(data); } catch {}
      window.__sent.push(frame);
      if (frame && frame.type === "send" && window.__swallowNextSend) {
        window.__swallowNextSend = false;
        this.close(4001);
        return;
      }
      super.send(data);
    }
  }
  window.WebSocket = SpyWebSocket;
})();
"""


@pytest.fixture
def chat_room(transactional_db):
    host = make_user("hana_host")
    return do_create_room(None, slug="browser-room", title="Browser room", host_username=host.username)


def test_two_viewers_chat_and_user_text_stays_text(
    daphne_servers, login_cookie, launch_browser, chat_room, screenshot_dir
):
    from playwright.sync_api import expect

    alice, bob = make_user("alice"), make_user("bob")
    cookies = login_cookie(alice), login_cookie(bob)
    (server,) = daphne_servers(1)
    browser = launch_browser()
    a = Viewer(browser, server, cookies[0])
    b = Viewer(browser, server, cookies[1])
    a.open_room(chat_room.slug)
    b.open_room(chat_room.slug)

    for viewer in (a, b):
        expect(viewer.page.locator("#online-count")).to_have_text("2 online")
    expect(a.page.locator("#audience-list")).to_contain_text("bob")
    expect(b.page.locator("#audience-list")).to_contain_text("alice")

    a.send("hello from A")
    expect(b.bodies("hello from A")).to_have_count(1)
    expect(b.page.locator("#messages li.msg", has_text="hello from A").locator(".author")).to_have_text("alice")
    # The sender's own line is confirmed by the room's echo, not left pending.
    expect(a.bodies("hello from A")).to_have_count(1)
    expect(a.page.locator("#messages li.pending")).to_have_count(0)

    a.send(XSS)
    expect(b.bodies(XSS)).to_have_count(1)
    expect(a.bodies(XSS)).to_have_count(1)
    for viewer in (a, b):
        assert viewer.page.locator("#messages img").count() == 0
        assert viewer.dialogs == []
        assert viewer.online_errors() == []

    b.page.screenshot(path=str(screenshot_dir / "room.png"))
    b.page.set_viewport_size({"width": 390, "height": 760})
    b.page.screenshot(path=str(screenshot_dir / "room-narrow.png"))


def test_signup_form_signs_in_and_opens_a_room(daphne_servers, launch_browser, chat_room, screenshot_dir):
    from playwright.sync_api import expect

    (server,) = daphne_servers(1)
    browser = launch_browser()
    viewer = Viewer(browser, server, None)
    page = viewer.page
    page.goto(f"{server.http_url}/accounts/signup/")
    page.fill("#id_username", "newcomer")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD + "-typo")
    page.click("form.auth-card button[type=submit]")
    expect(page.locator(".field-errors")).to_contain_text("didn’t match")
    page.screenshot(path=str(screenshot_dir / "signup-error.png"))

    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("form.auth-card button[type=submit]")
    expect(page).to_have_url(f"{server.http_url}/")
    expect(page.locator(".whoami")).to_have_text("newcomer")
    expect(page.locator(".room-card")).to_contain_text("Browser room")
    page.screenshot(path=str(screenshot_dir / "room-list.png"))

    page.click(f"a.room-card[href='/rooms/{chat_room.slug}/']")
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "live")
    expect(page.locator("#composer-send")).to_be_disabled()
    viewer.send("first words")
    expect(viewer.bodies("first words")).to_have_count(1)
    assert viewer.online_errors() == []


def test_anonymous_reader_sees_chat_and_a_sign_in_link(daphne_servers, launch_browser, chat_room):
    from playwright.sync_api import expect

    host = get_user_model().objects.get(username="hana_host")
    do_send_message(host, room_id=chat_room.pk, body="welcome, readers")
    (server,) = daphne_servers(1)
    viewer = Viewer(launch_browser(), server, None)
    viewer.open_room(chat_room.slug)
    expect(viewer.bodies("welcome, readers")).to_have_count(1)
    expect(viewer.page.locator("#composer-body")).to_have_count(0)
    link = viewer.page.get_by_role("link", name="Sign in to chat")
    expect(link).to_have_attribute("href", f"/accounts/login/?next=/rooms/{chat_room.slug}/")
    assert viewer.online_errors() == []


def test_messages_sent_while_offline_appear_once_after_reconnecting(
    daphne_servers, login_cookie, launch_browser, chat_room
):
    from playwright.sync_api import expect

    alice, bob = make_user("alice"), make_user("bob")
    cookies = login_cookie(alice), login_cookie(bob)
    (server,) = daphne_servers(1)
    browser = launch_browser()
    a = Viewer(browser, server, cookies[0])
    b = Viewer(browser, server, cookies[1])
    a.open_room(chat_room.slug)
    b.open_room(chat_room.slug)
    b.send("before the outage")
    expect(a.bodies("before the outage")).to_have_count(1)

    a.context.set_offline(True)
    expect(a.page.locator("#conn-status")).not_to_have_attribute("data-state", "live")
    expect(a.page.locator("#composer-send")).to_be_disabled()
    expect(b.page.locator("#online-count")).to_have_text("1 online")
    missed = ["while away 1", "while away 2", "while away 3"]
    for text in missed:
        b.send(text)
        expect(b.bodies(text)).to_have_count(1)

    a.context.set_offline(False)
    expect(a.page.locator("#conn-status")).to_have_attribute("data-state", "live")
    b.send("after the outage")
    expect(a.bodies("after the outage")).to_have_count(1)
    for text in ["before the outage", *missed]:
        expect(a.bodies(text)).to_have_count(1)
    # The reconnect resumed from the log rather than starting over.
    assert len(a.sockets) == 2, a.sockets
    assert "after=" not in a.sockets[0] and "after=" in a.sockets[1], a.sockets
    assert a.page.locator("#messages li.msg").count() == 5
    assert a.online_errors() == []


def test_send_lost_with_the_connection_is_resent_and_stored_once(
    daphne_servers, login_cookie, launch_browser, chat_room
):
    from playwright.sync_api import expect

    alice, bob = make_user("alice"), make_user("bob")
    cookies = login_cookie(alice), login_cookie(bob)
    (server,) = daphne_servers(1)
    browser = launch_browser()
    a = Viewer(browser, server, cookies[0], init_script=WS_SPY)
    b = Viewer(browser, server, cookies[1])
    a.open_room(chat_room.slug)
    b.open_room(chat_room.slug)

    a.page.evaluate("window.__swallowNextSend = true")
    a.send("survives a dropped connection")
    expect(a.page.locator("#messages li.pending")).to_have_count(1)
    expect(b.bodies("survives a dropped connection")).to_have_count(1)
    expect(a.bodies("survives a dropped connection")).to_have_count(1)
    expect(a.page.locator("#messages li.pending")).to_have_count(0)

    sends = [f for f in a.page.evaluate("window.__sent") if f and f["type"] == "send"]
    assert [f["body"] for f in sends] == ["survives a dropped connection"] * 2
    assert sends[0]["client_id"] == sends[1]["client_id"]
    b.page.wait_for_timeout(500)
    expect(b.bodies("survives a dropped connection")).to_have_count(1)


def test_rate_limited_send_shows_the_error_and_can_be_retried(
    daphne_servers, login_cookie, launch_browser, chat_room, screenshot_dir
):
    from playwright.sync_api import expect

    alice = make_user("alice")
    cookie = login_cookie(alice)
    (server,) = daphne_servers(1)
    a = Viewer(launch_browser(), server, cookie)
    a.open_room(chat_room.slug)
    # Members may send 5 messages per 5 s (PROTOCOL.md default limits).
    for n in range(1, 6):
        a.send(f"burst {n}")
        expect(a.bodies(f"burst {n}")).to_have_count(1)
    a.send("one too many")
    failed = a.page.locator("#messages li.pending.failed")
    expect(failed).to_have_count(1)
    expect(failed.locator(".msg-body")).to_have_text("one too many")
    expect(failed.locator(".pending-label")).to_contain_text("Retry in")
    expect(failed.get_by_role("button", name="Retry")).to_be_disabled()
    a.page.screenshot(path=str(screenshot_dir / "room-rate-limited.png"))

    retry = failed.get_by_role("button", name="Retry")
    expect(retry).to_be_enabled(timeout=15_000)
    retry.click()
    expect(a.bodies("one too many")).to_have_count(1)
    expect(a.page.locator("#messages li.pending")).to_have_count(0)


def test_reader_scrolled_up_gets_a_new_messages_button_and_can_load_older(
    daphne_servers, login_cookie, launch_browser, chat_room
):
    from playwright.sync_api import expect

    host = get_user_model().objects.get(username="hana_host")
    # More than the 50 events a first visit gets, so the oldest come from the events API.
    for n in range(60):
        do_send_message(host, room_id=chat_room.pk, body=f"backlog line {n}")
    bob = make_user("bob")
    cookies = login_cookie(host), login_cookie(bob)
    (server,) = daphne_servers(1)
    browser = launch_browser()
    h = Viewer(browser, server, cookies[0])
    b = Viewer(browser, server, cookies[1])
    h.open_room(chat_room.slug)
    b.open_room(chat_room.slug)
    expect(b.bodies("backlog line 59")).to_be_in_viewport()
    expect(b.page.locator("#messages li.msg").first.locator(".badge-host")).to_have_text("HOST")
    expect(b.page.locator("#messages li.msg")).to_have_count(50)

    b.page.locator("#scroller").evaluate("el => { el.scrollTop = 0; }")
    h.send("news 1")
    h.send("news 2")
    expect(b.bodies("news 2")).to_have_count(1)
    jump = b.page.locator("#jump")
    expect(jump).to_have_text("2 new messages ↓")
    expect(b.bodies("news 2")).not_to_be_in_viewport()
    jump.click()
    expect(b.bodies("news 2")).to_be_in_viewport()
    expect(jump).to_be_hidden()

    b.page.locator("#scroller").evaluate("el => { el.scrollTop = 0; }")
    b.page.get_by_role("button", name="Load earlier messages").click()
    expect(b.bodies("backlog line 0")).to_have_count(1)
    expect(b.page.locator("#messages li.msg")).to_have_count(62)
    expect(b.page.get_by_role("button", name="Load earlier messages")).to_be_hidden()
    bodies = b.page.locator("#messages li.msg .msg-body").all_text_contents()
    assert bodies == [f"backlog line {n}" for n in range(60)] + ["news 1", "news 2"]


def test_replies_mentions_and_deletions_show_for_everyone(daphne_servers, login_cookie, launch_browser, chat_room):
    from playwright.sync_api import expect

    host = get_user_model().objects.get(username="hana_host")
    alice, bob = make_user("alice"), make_user("bob")
    cookies = login_cookie(host), login_cookie(alice), login_cookie(bob)
    (server,) = daphne_servers(1)
    browser = launch_browser()
    h, a, b = (Viewer(browser, server, cookie) for cookie in cookies)
    for viewer in (h, a, b):
        viewer.open_room(chat_room.slug)
    expect(a.page.locator("#team-list")).to_contain_text("hana_host")

    a.send("is the stream on tonight?")
    question = b.line("is the stream on tonight?")
    question.hover()
    question.get_by_role("button", name="Reply").click()
    expect(b.page.locator("#reply-chip")).to_contain_text("Replying to alice")
    b.send("@alice yes, at nine")

    answer = a.line("@alice yes, at nine")
    expect(answer.locator(".msg-reply")).to_contain_text("alice is the stream on tonight?")
    expect(answer.locator(".mention-token")).to_have_text("@alice")
    expect(answer).to_have_class(re.compile(r"\bmentions-me\b"))
    # Members may not delete other people's messages, so they get no button for it.
    expect(b.line("is the stream on tonight?").locator("[data-action=delete]")).to_have_count(0)
    expect(b.line("@alice yes, at nine").locator("[data-action=delete]")).to_have_count(1)

    line = h.line("is the stream on tonight?")
    line.hover()
    line.get_by_role("button", name="Delete message").click()
    for viewer in (h, a, b):
        deleted = viewer.page.locator("#messages li.msg.deleted")
        expect(deleted).to_have_count(1)
        expect(deleted).to_have_attribute("data-author-id", str(alice.pk))
        expect(deleted.locator(".msg-body")).to_have_text("message deleted")
        expect(viewer.line("@alice yes, at nine").locator(".msg-reply-excerpt")).to_have_text("message deleted")
        assert viewer.online_errors() == []

    # A fresh page gets the redacted message from history, never the body.
    b.page.reload()
    expect(b.page.locator("#conn-status")).to_have_attribute("data-state", "live")
    expect(b.page.locator("#messages li.msg.deleted .msg-body")).to_have_text("message deleted")
    expect(b.line("@alice yes, at nine")).to_be_visible()
    expect(b.page.locator("#messages")).not_to_contain_text("is the stream on tonight?")


def command(viewer: Viewer, slug: str, frame: dict) -> dict:
    """Send one command as `viewer` on a socket of its own; returns the ack or error."""
    return viewer.page.evaluate(
        """async ([slug, frame]) => {
      const ws = new WebSocket(`ws://${location.host}/ws/rooms/${slug}/`);
      const clientId = `test-${Math.random()}`;
      const reply = await new Promise((resolve, reject) => {
        ws.onerror = () => reject(new Error("socket failed"));
        ws.onmessage = (message) => {
          const data = JSON.parse(message.data);
          const frames = data.type === "batch" ? data.events : [data];
          for (const f of frames) {
            if (f.type === "welcome") ws.send(JSON.stringify({ ...frame, client_id: clientId }));
            if ((f.type === "ack" || f.type === "error") && f.client_id === clientId) resolve(f);
          }
        };
      });
      ws.close();
      return reply;
    }""",
        [slug, frame],
    )


def test_muted_kicked_and_banned_viewer_is_told_why(daphne_servers, login_cookie, launch_browser, chat_room):
    from playwright.sync_api import expect

    host = get_user_model().objects.get(username="hana_host")
    bob = make_user("bob")
    cookies = login_cookie(host), login_cookie(bob)
    (server,) = daphne_servers(1)
    browser = launch_browser()
    h, b = (Viewer(browser, server, cookie) for cookie in cookies)
    h.open_room(chat_room.slug)
    b.open_room(chat_room.slug)
    status, banner = b.page.locator("#conn-status"), b.page.locator("#room-banner")

    mute = {"type": "mute", "user": "bob", "seconds": 600, "reason": "calm down"}
    assert command(h, chat_room.slug, mute)["type"] == "ack"
    expect(b.page.locator("#messages")).to_contain_text("bob was muted for 10 min by hana_host (calm down)")
    expect(b.page.locator("#composer-hint")).to_contain_text("You are muted until")
    # A muted viewer's Enter sends nothing: the draft stays in the box.
    b.send("can I talk?")
    expect(b.page.locator("#composer-send")).to_be_disabled()
    expect(b.page.locator("#composer-body")).to_have_value("can I talk?")
    assert b.page.locator("#messages li.pending").count() == 0

    assert command(h, chat_room.slug, {"type": "kick", "user": "bob"})["type"] == "ack"
    expect(banner).to_contain_text("You were removed from the room")
    expect(status).to_have_attribute("data-state", "reconnecting")
    expect(status).to_have_attribute("data-state", "live", timeout=20_000)
    expect(banner).to_be_hidden()
    # Still muted after rejoining: the welcome says so.
    expect(b.page.locator("#composer-hint")).to_contain_text("You are muted until")

    assert command(h, chat_room.slug, {"type": "ban", "user": "bob", "reason": "enough"})["type"] == "ack"
    expect(banner).to_contain_text("banned")
    expect(status).to_have_attribute("data-state", "stopped")
    expect(b.page.locator("#composer-send")).to_be_disabled()
    sockets = len(b.sockets)
    b.page.wait_for_timeout(2_000)
    assert len(b.sockets) == sockets, "a banned viewer's page must not knock again"
    assert b.online_errors() == []


def test_connection_applies_room_events_once_in_order(daphne_servers, launch_browser):
    """connection.js against a scripted socket: duplicates, gaps, sync, resume, 4404."""
    (server,) = daphne_servers(1)
    page = launch_browser().new_page()
    page.goto(f"{server.http_url}/")
    result = page.evaluate(
        """async () => {
      const { RoomConnection } = await import("/static/chat/connection.js");
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      class FakeSocket {
        static all = [];
        constructor(url) {
          this.url = url; this.readyState = 0; this.sent = [];
          FakeSocket.all.push(this);
          setTimeout(() => { this.readyState = 1; this.onopen?.(); }, 0);
        }
        send(text) { this.sent.push(JSON.parse(text)); }
        close() { this.readyState = 3; }
        push(frame) { this.onmessage?.({ data: JSON.stringify(frame) }); }
        drop(code) { this.readyState = 3; this.onclose?.({ code }); }
      }
      const log = [];
      const frames = [];
      const states = [];
      const conn = new RoomConnection({
        path: "/ws/rooms/x/",
        WebSocketImpl: FakeSocket,
        handlers: {
          welcome: (w, { resumed }) => log.push(resumed ? "resume" : `first:${w.history.length}`),
          event: (e) => log.push(e.seq),
          status: (s) => states.push(s.state),
          frame: (f) => frames.push(f.type),
        },
      });
      conn.start();
      await sleep(10);
      const msg = (seq) => ({ type: "message", seq, id: seq, body: String(seq) });
      const welcome = (history, last_seq) => ({
        type: "welcome", room: { slug: "x", title: "X", is_live: true, slow_mode_seconds: 0, hosts: [] },
        you: { id: 1, name: "a", role: "member", muted_until: null, balance: 0, blocked: [] },
        roster: { count: 1, team: [], audience: [], offset: 0 },
        history, last_seq, history_truncated: false, pinned: [],
      });
      const s1 = FakeSocket.all[0];
      s1.push(welcome([msg(1), msg(2)], 2));
      s1.push({ type: "batch", events: [msg(2), msg(3), msg(3)] });
      s1.push(msg(5));
      const beforeWait = s1.sent.filter((f) => f.type === "sync").length;
      await sleep(450);
      const sync = s1.sent.find((f) => f.type === "sync");
      s1.push({ type: "batch", events: [msg(4), msg(5)] });
      s1.push({ type: "synced", last_seq: 5, client_id: sync.client_id });
      // A pong reporting a higher seq than we hold means we missed something.
      s1.push({ type: "pong", ts: 1, last_seq: 7 });
      const pongSync = s1.sent.filter((f) => f.type === "sync").at(-1);
      s1.push({ type: "batch", events: [msg(6), msg(7)] });
      s1.push({ type: "synced", last_seq: 7, client_id: pongSync.client_id });
      s1.drop(1006);
      for (let i = 0; i < 50 && FakeSocket.all.length < 2; i++) await sleep(50);
      const s2 = FakeSocket.all[1];
      await sleep(10);
      s2.push(welcome([msg(7), msg(8)], 9));
      s2.push({ type: "batch", events: [msg(10), { type: "presence", count: 2, joined: [], left: [], team: [] }] });
      // Too far behind: the server hangs up and the client resumes at once.
      s2.drop(4409);
      await sleep(20);
      const s3 = FakeSocket.all[2];
      await sleep(10);
      s3.push(welcome([msg(11)], 11));
      s3.drop(4404);
      await sleep(700);
      return {
        log, frames, beforeWait, syncAfter: sync.after, pongSyncAfter: pongSync.after,
        urls: FakeSocket.all.map((s) => s.url), states, lastSeq: conn.lastSeq,
      };
    }"""
    )
    assert result["beforeWait"] == 0, "a gap waits a moment for the missing event before syncing"
    assert result["syncAfter"] == 3
    assert result["pongSyncAfter"] == 5
    # welcome 2 said the log is complete to 9 (seq 9 was withheld from this viewer).
    assert result["log"] == ["first:2", 3, 4, 5, 6, 7, "resume", 8, 10, "resume", 11], json.dumps(result)
    assert result["lastSeq"] == 11
    assert "presence" in result["frames"]
    assert result["urls"][0].endswith("/ws/rooms/x/")
    assert result["urls"][1].endswith("/ws/rooms/x/?after=7")
    assert result["urls"][2].endswith("/ws/rooms/x/?after=10")
    assert len(result["urls"]) == 3, "4404 means the room is gone: no reconnect"
    assert result["states"][-1] == "stopped"

    # Seqs withheld from this viewer (a blocked author) leave gaps that `synced` or a
    # resuming `welcome` vouch for: what arrived past the gap is applied, not dropped.
    withheld = page.evaluate(
        """async () => {
      const { Sequencer } = await import("/static/chat/sequencer.js");
      const seq = new Sequencer(3);
      const applied = [];
      const take = (events) => applied.push(...events.map((e) => e.seq));
      take(seq.push({ seq: 5 }));
      take(seq.push({ seq: 6 }));
      take(seq.advanceTo(6));
      take(seq.push({ seq: 8 }));
      take(seq.push({ seq: 10 }));
      take(seq.advanceTo(9));
      take(seq.push({ seq: 10 }));
      return { applied, last: seq.last, held: seq.held.size };
    }"""
    )
    assert withheld == {"applied": [5, 6, 8, 10], "last": 10, "held": 0}
