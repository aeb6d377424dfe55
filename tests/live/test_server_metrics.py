"""GET /metrics on a real daphne process: served to loopback, refused through a proxy, and
counting what went over daphne's fast socket path."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from asgiref.sync import sync_to_async
from prometheus_client.parser import text_string_to_metric_families

from tests.live.test_single_process import make_room

pytestmark = pytest.mark.django_db(transaction=True)


def get(server, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(server.http_url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def scrape(server) -> dict[tuple[str, tuple], float]:
    status, body = server.get("/metrics")
    assert status == 200, body[:300]
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


async def test_a_real_process_serves_its_metrics_to_loopback_only(daphne_servers, ws_connect):
    # As deployed: behind nginx, believing X-Forwarded-For.
    (server,) = daphne_servers(1, args=["--proxy-headers"])
    _, viewer = await make_room("counted")
    member = await ws_connect(server, "counted", user=viewer)
    reader = await ws_connect(server, "counted")
    await member.expect_welcome()
    await reader.expect_welcome()

    ack = await member.send_message("one for the counters", "c-1")
    await reader.room_event(ack["seq"])
    found = await sync_to_async(scrape)(server)

    assert found[("chatsite_connections", (("transport", "websocket"),))] == 2
    assert found[("chatsite_events_stored_total", ())] >= 1
    assert found[("chatsite_commands_total", (("outcome", "ok"), ("type", "send")))] == 1
    assert found[("chatsite_send_ack_seconds_count", ())] == 1
    assert found[("chatsite_deliveries_total", ())] >= 2
    # Under daphne the live frames take the fast path, none the ASGI fallback.
    assert found[("chatsite_socket_writes_total", (("path", "fast"),))] >= 2
    assert found[("chatsite_socket_writes_total", (("path", "asgi"),))] == 0
    assert ("chatsite_event_loop_lag_seconds", ()) in found

    # Relayed by a proxy, or claiming to be loopback: the site's ordinary 404.
    for headers in ({"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "127.0.0.1"}):
        status, body = await sync_to_async(get)(server, "/metrics", headers)
        assert status == 404 and b"chatsite_" not in body, headers


async def test_an_allow_list_without_loopback_refuses_loopback(daphne_servers):
    (server,) = daphne_servers(1, env={"CHAT_METRICS_ALLOW": "10.0.0.0/8"})

    status, body = server.get("/metrics")

    assert status == 404 and b"chatsite_" not in body
