"""A real daphne process whose Redis is unreachable (REDIS_URL at a closed port): it
starts, serves pages and the events API, and stays in the proxy's pool (/readyz 200)
while /healthz reports the outage with 503, as PROTOCOL.md fixes."""

from __future__ import annotations

import json
import time

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model

from rooms.services import do_create_room, do_send_message
from tests.live.conftest import listening_socket

pytestmark = pytest.mark.django_db(transaction=True)

START_TIMEOUT_SECONDS = 20.0


def closed_port() -> int:
    """A loopback port nothing listens on: bound, then closed again."""
    sock = listening_socket()
    port = sock.getsockname()[1]
    sock.close()
    return port


def wait_until_answering(server, path: str) -> tuple[int, bytes]:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        assert server.alive(), server.output()
        try:
            return server.get(path, timeout=5)
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{server.name} did not answer {path} within {START_TIMEOUT_SECONDS} s:\n{server.output()}")


@sync_to_async
def room_with_a_message() -> None:
    host = get_user_model().objects.create_user(username="outage-host")
    room = do_create_room(None, slug="outage", title="Outage", host_username=host.username)
    do_send_message(host, room_id=room.pk, body="still readable")


async def test_with_redis_unreachable_readyz_stays_200_and_healthz_says_503(daphne_servers):
    await room_with_a_message()
    # The fixture waits for /healthz 200, which this server must not give: start it
    # through the fixture's own parts, so that it is stopped and reported the same way.
    env = daphne_servers._base_env(use_redis=False)
    env["REDIS_URL"] = f"redis://127.0.0.1:{closed_port()}/0"
    server = daphne_servers._spawn(env, "chatsite.asgi:application")

    live_status, live_body = await sync_to_async(wait_until_answering)(server, "/livez")
    ready_status, ready_body = server.get("/readyz")
    health_status, health_body = server.get("/healthz")
    events_status, events_body = server.get("/api/rooms/outage/events")
    page_status, _ = server.get("/rooms/outage/")

    assert (live_status, json.loads(live_body)) == (200, {"status": "ok"})
    assert (ready_status, json.loads(ready_body)) == (200, {"status": "degraded", "database": "ok", "redis": "error"})
    assert (health_status, json.loads(health_body)) == (
        503,
        {"status": "degraded", "database": "ok", "redis": "error"},
    )
    assert events_status == 200
    assert [e["body"] for e in json.loads(events_body)["events"]] == ["still readable"]
    assert page_status == 200
    assert server.alive()
