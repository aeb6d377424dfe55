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


def test_the_page_falls_back_resumes_posts_and_returns_to_websockets(daphne_servers, launch_browser):
    """eventstream.js with RoomConnection against scripted sockets, streams and fetch:
    two sockets that never open bring the stream; commands are POSTed and their replies
    come back as frames; a broken stream resumes after the last seq; a probe socket that
    opens brings the room back to a WebSocket from the last seq."""
    (server,) = daphne_servers(1)
    page = launch_browser().new_page()
    page.goto(f"{server.http_url}/")
    result = page.evaluate(
        """async () => {
      const { RoomConnection } = await import("/static/chat/connection.js");
      const { TransportChooser } = await import("/static/chat/eventstream.js");
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      const until = async (test) => { for (let i = 0; i < 200 && !test(); i++) await sleep(25); };
      class FakeWS extends EventTarget {
        static all = []; static works = false;
        constructor(url) {
          super(); this.url = url; this.readyState = 0; FakeWS.all.push(this);
          setTimeout(() => {
            if (FakeWS.works) { this.readyState = 1; this.dispatchEvent(new Event("open")); this.onopen?.(); }
            else this.#closed(1006);
          }, 0);
        }
        #closed(code) {
          if (this.readyState === 3) return;
          this.readyState = 3; this.dispatchEvent(new Event("close")); this.onclose?.({ code });
        }
        send() {}
        close() { this.#closed(1000); }
      }
      class FakeES {
        static all = [];
        constructor(url) {
          this.url = url; this.listeners = {}; FakeES.all.push(this);
          setTimeout(() => this.onopen?.(), 0);
        }
        addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
        emit(frame) { for (const fn of this.listeners[frame.type] || []) fn({ data: JSON.stringify(frame) }); }
        close() { this.closed = true; }
      }
      const posts = [];
      const fakeFetch = async (url, init) => {
        const frames = JSON.parse(init.body);
        posts.push({ url, frames, csrf: init.headers["X-CSRFToken"] });
        const replies = frames.map((f) => ({ type: "ack", client_id: f.client_id, id: 1, seq: 9 }));
        return { ok: true, status: 200, json: async () => ({ replies }) };
      };
      const changes = [];
      const chooser = new TransportChooser({
        streamPath: "/rooms/x/stream", commandsPath: "/rooms/x/commands",
        onChange: (t) => changes.push(t), WebSocketImpl: FakeWS, EventSourceImpl: FakeES,
        fetchImpl: fakeFetch, probeFirstMs: 300, openTimeoutMs: 200,
      });
      const log = []; const frames = [];
      const conn = new RoomConnection({
        path: "/ws/rooms/x/", WebSocketImpl: chooser.Impl,
        handlers: { event: (e) => log.push(e.seq), frame: (f) => frames.push(f) },
      });
      const msg = (seq) => ({ type: "message", seq, id: seq, body: String(seq) });
      const welcome = (history, last_seq) => ({
        type: "welcome", room: { slug: "x", title: "X", is_live: true, slow_mode_seconds: 0, hosts: [] },
        you: { id: 1, name: "a", role: "member", muted_until: null, balance: 0, blocked: [] },
        roster: { count: 1, team: [], audience: [], offset: 0 },
        history, last_seq, history_truncated: false, pinned: [],
      });
      conn.start();
      await until(() => FakeES.all.length === 1);
      const es1 = FakeES.all[0];
      await sleep(10);
      es1.emit(welcome([msg(1)], 1));
      conn.send({ type: "ping", ts: 1 });
      conn.send({ type: "send", body: "hi", client_id: "c1" });
      await until(() => frames.some((f) => f.type === "ack"));
      es1.emit({ type: "batch", events: [msg(2)] });
      es1.onerror();
      await until(() => FakeES.all.length === 2);
      const es2 = FakeES.all[1];
      await sleep(10);
      es2.emit(welcome([msg(2), msg(3)], 3));
      const socketsBefore = FakeWS.all.length;
      FakeWS.works = true;
      await until(() => FakeWS.all.length >= socketsBefore + 2 && conn.status.state === "live" && changes.length === 2);
      return {
        changes, log, posts, urls: FakeES.all.map((e) => e.url), es1Closed: es1.closed, es2Closed: es2.closed,
        lastSocket: FakeWS.all.at(-1).url, acks: frames.filter((f) => f.type === "ack").map((f) => f.client_id),
      };
    }"""
    )
    assert result["changes"] == ["sse", "websocket"], result
    assert result["urls"][0].endswith("/rooms/x/stream")
    assert result["urls"][1].endswith("/rooms/x/stream?after=2"), "the stream resumes after the last seq"
    assert result["log"] == [2, 3], "each event once, in order"
    assert [p["frames"] for p in result["posts"]] == [[{"type": "send", "body": "hi", "client_id": "c1"}]]
    assert result["posts"][0]["url"] == "/rooms/x/commands"
    assert result["acks"] == ["c1"]
    assert result["es1Closed"] and result["es2Closed"]
    assert result["lastSocket"].endswith("/ws/rooms/x/?after=3"), "back on a socket, from the last seq"


def test_an_error_with_a_close_code_ends_the_stream_and_a_sync_resumes_it(daphne_servers, launch_browser):
    (server,) = daphne_servers(1)
    page = launch_browser().new_page()
    page.goto(f"{server.http_url}/")
    result = page.evaluate(
        """async () => {
      const { EventStreamSocket } = await import("/static/chat/eventstream.js");
      const { learn } = await import("/static/chat/limits.js");
      learn({ close_codes: { normal: 1000, too_far_behind: 4409, forbidden: 4403 } });
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      class FakeES {
        constructor(url) { this.url = url; this.listeners = {}; setTimeout(() => this.onopen?.(), 0); }
        addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
        emit(frame) { for (const fn of this.listeners[frame.type] || []) fn({ data: JSON.stringify(frame) }); }
        close() { this.closed = true; }
      }
      const open = async () => {
        const closes = []; const seen = [];
        const s = new EventStreamSocket("ws://h/ws/rooms/x/?after=5", {
          streamPath: "/rooms/x/stream", commandsPath: "/rooms/x/commands", EventSourceImpl: FakeES,
          fetchImpl: async () => { throw new Error("no network"); },
        });
        s.onclose = (e) => closes.push(e.code);
        s.onmessage = (m) => seen.push(JSON.parse(m.data).type);
        await sleep(10);
        return { s, closes, seen };
      };
      const banned = await open();
      banned.s.source.emit({ type: "error", code: "forbidden", detail: "x", close: 4403 });
      banned.s.source.emit({ type: "message", seq: 6 });
      const gap = await open();
      gap.s.send(JSON.stringify({ type: "sync", after: 5 }));
      const lost = await open();
      lost.s.send(JSON.stringify({ type: "send", body: "x", client_id: "c" }));
      await sleep(20);
      return {
        url: banned.s.source.url, banned: banned.closes, bannedSeen: banned.seen, bannedClosed: banned.s.source.closed,
        gap: gap.closes, lost: lost.closes,
      };
    }"""
    )
    assert result["url"].endswith("/rooms/x/stream?after=5")
    assert result["banned"] == [4403] and result["bannedClosed"]
    assert result["bannedSeen"] == ["error"], "nothing is applied after the ending"
    assert result["gap"] == [4409], "a gap resumes the stream from the last seq"
    assert result["lost"] == [1006], "an unanswered post resumes, and the outbox sends again"


def test_a_chinese_guest_on_the_fallback_reads_the_room_and_is_told_so_in_chinese(
    daphne_servers, launch_browser, transactional_db
):
    from playwright.sync_api import expect

    from rooms.services import do_send_message
    from tests.live.test_browser_room_page import LocaleViewer

    host = make_user("hana_host")
    room = do_create_room(None, slug="sse-guest", title="Fallback room", host_username=host.username)
    do_send_message(host, room_id=room.pk, body="欢迎")
    (server,) = daphne_servers(1)
    guest = LocaleViewer(launch_browser(), server, None, locale="zh-CN", init_script=BLOCK_WEBSOCKETS)

    guest.open_room(room.slug)

    expect(guest.page.locator("#conn-transport")).to_have_text("备用连接：事件流")
    expect(guest.bodies("欢迎")).to_have_count(1)
