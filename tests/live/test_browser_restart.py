"""The page when its server process shuts down (close 1012): back soon, with jitter,
resuming from the log, and not counted as a failure."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_1012_close_reconnects_after_a_random_moment_and_resumes_with_after(daphne_servers, launch_browser):
    (server,) = daphne_servers(1)
    page = launch_browser().new_page()
    page.goto(f"{server.http_url}/")
    result = page.evaluate(
        """async () => {
      const { closePolicy, RoomConnection, RESTART_JITTER_MS } = await import("/static/chat/connection.js");
      const policies = [0, 0.5, 0.999].map((r) => closePolicy(1012, 5, () => r));
      class FakeSocket {
        static all = [];
        constructor(url) {
          this.url = url; this.sent = [];
          FakeSocket.all.push(this);
          setTimeout(() => this.onopen?.(), 0);
        }
        send(text) { this.sent.push(JSON.parse(text)); }
        close() {}
        push(frame) { this.onmessage?.({ data: JSON.stringify(frame) }); }
        drop(code) { this.onclose?.({ code }); }
      }
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      const conn = new RoomConnection({ path: "/ws/rooms/x/", WebSocketImpl: FakeSocket, handlers: {} });
      conn.start();
      await sleep(10);
      FakeSocket.all[0].push({
        type: "welcome", room: { slug: "x", title: "X", is_live: true, slow_mode_seconds: 0, hosts: [] },
        you: { id: 1, name: "a", role: "member", muted_until: null, balance: 0, blocked: [] },
        roster: { count: 1, team: [], audience: [], offset: 0 },
        history: [{ type: "message", seq: 7, id: 7, body: "7" }], last_seq: 7, history_truncated: false, pinned: [],
      });
      FakeSocket.all[0].drop(1012);
      for (let i = 0; i < 100 && FakeSocket.all.length < 2; i++) await sleep(50);
      return { policies, jitter: RESTART_JITTER_MS, urls: FakeSocket.all.map((s) => s.url), attempt: conn.attempt };
    }"""
    )

    delays = [policy["delay"] for policy in result["policies"]]
    assert all(policy["reconnect"] and policy["reason"] == "restart" for policy in result["policies"])
    # A random moment within the jitter, whatever came before (attempt 5): no backoff.
    assert delays[0] == 0 and 0 < delays[1] < delays[2] < result["jitter"] <= 2_000
    assert not any(policy["countsAsFailure"] for policy in result["policies"])
    assert result["urls"][1].endswith("/ws/rooms/x/?after=7")
    assert result["attempt"] == 0
