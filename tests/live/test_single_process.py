"""The embedded mode on a real daphne process: one server, no Redis.

Consumer tests drive the application in-process; these go through daphne's own HTTP and
WebSocket handling, the way a browser does, for what only the real stack shows: the
handshake's Origin check and cookie-based sign-in.
"""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from websockets.exceptions import InvalidStatus

from rooms.services import do_create_room

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def make_room(slug: str):
    users = get_user_model().objects
    host = users.create_user(username=f"{slug}-host")
    viewer = users.create_user(username=f"{slug}-viewer")
    do_create_room(None, slug=slug, title=f"Room {slug}", host_username=host.username)
    return host, viewer


async def test_embedded_server_is_healthy_without_redis(daphne_servers):
    (server,) = daphne_servers(1)
    status, body = server.get("/healthz")
    assert status == 200
    assert json.loads(body) == {"status": "ok", "database": "ok", "redis": "disabled"}


async def test_handshake_from_a_foreign_or_missing_origin_is_refused(daphne_servers, ws_connect):
    (server,) = daphne_servers(1)
    await make_room("guarded")
    for origin in ("http://evil.example", "http://127.0.0.1.evil.example", "null", ""):
        with pytest.raises(InvalidStatus) as refused:
            await ws_connect(server, "guarded", origin=origin)
        assert refused.value.response.status_code == 403, origin
    # The same handshake with the server's own origin is let in.
    await (await ws_connect(server, "guarded")).expect_welcome()


async def test_session_cookie_signs_the_viewer_in_and_messages_reach_anonymous_viewers(daphne_servers, ws_connect):
    (server,) = daphne_servers(1)
    _, viewer = await make_room("lobby")
    member = await ws_connect(server, "lobby", user=viewer)
    anonymous = await ws_connect(server, "lobby")

    you = (await member.expect_welcome())["you"]
    assert (you["id"], you["name"], you["role"]) == (viewer.pk, viewer.username, "member")
    assert (await anonymous.expect_welcome())["you"]["role"] == "guest"

    ack = await member.send_message("hello from a real socket", "first")
    message = await anonymous.room_event(ack["seq"])
    assert message["author"]["name"] == viewer.username
    assert message["body"] == "hello from a real socket"


async def test_unknown_room_is_accepted_then_closed_with_4404(daphne_servers, ws_connect):
    (server,) = daphne_servers(1)
    client = await ws_connect(server, "no-such-room")
    assert await client.wait_closed() == 4404
