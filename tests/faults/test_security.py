"""Abuse from outside: cross-site socket hijacking, revoked sessions, script in user text.

Cross-site WebSocket hijacking: a page on another site opens a socket to the chat with the
victim's cookie attached; only the Origin header tells the server, so anything but an
allowed origin (including none) must be refused before the socket opens.

Revocation: a socket outlives the HTTP request that made it, so signing out and changing
the password must reach sockets already open, on every process.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from rooms.services import (
    do_announce,
    do_create_room,
    do_grant_coins,
    do_send_message,
    do_send_tip,
    do_update_room,
)
from tests.faults.harness import make_cast
from tests.faults.rawws import open_raw
from tests.faults.resilient import ResilientClient
from tests.live.clients import session_cookie_for

pytestmark = [pytest.mark.faults]

FOREIGN_ORIGINS = [
    "http://evil.example",
    "https://evil.example",
    "null",
    # Suffix and prefix tricks on the allowed host names.
    "http://127.0.0.1.evil.example",
    "http://localhost.evil.example",
    "http://evil-localhost",
]


@pytest.mark.django_db(transaction=True)
async def test_socket_handshake_from_a_foreign_or_missing_origin_is_refused_403(daphne_servers):
    (server,) = daphne_servers(1)
    await make_cast("origin", moderators=0, members=1)
    url = f"{server.ws_url}/ws/rooms/origin/"
    for origin in FOREIGN_ORIGINS:
        with pytest.raises(InvalidStatus) as refused:
            await connect(url, origin=origin, open_timeout=5, proxy=None)
        assert refused.value.response.status_code == 403, origin
    # No Origin header at all: what a non-browser script sends.
    with pytest.raises(ConnectionError, match="403"):
        await open_raw(server, "/ws/rooms/origin/", origin=None)
    # The server's own origin is accepted.
    async with connect(url, origin=server.origin, open_timeout=5, proxy=None) as ws:
        assert json.loads(await ws.recv())["type"] == "welcome"


def post_logout(server, cookie: dict[str, str]) -> int:
    """Sign out through the site's own form, as the browser would (CSRF token and all)."""
    opener = urllib.request.build_opener()
    with opener.open(server.http_url + "/accounts/login/", timeout=10) as page:
        set_cookies = page.headers.get_all("Set-Cookie") or []
    token = next(c.split(";")[0].split("=", 1)[1] for c in set_cookies if c.startswith("csrftoken="))
    request = urllib.request.Request(
        server.http_url + "/accounts/logout/",
        data=urllib.parse.urlencode({"csrfmiddlewaretoken": token}).encode(),
        headers={"Cookie": f"{cookie['name']}={cookie['value']}; csrftoken={token}"},
        method="POST",
    )
    with opener.open(request, timeout=10) as response:
        return response.status


async def still_open(client: ResilientClient) -> bool:
    reply = await client.request({"type": "ping", "ts": 1, "client_id": "still-there"}, timeout=5)
    return reply["type"] == "pong"


@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
async def test_logout_closes_that_sessions_sockets_on_every_process_and_only_those(private_redis, servers_on):
    a, b = servers_on(private_redis, 2)
    cast = await make_cast("logout", moderators=0, members=2)
    alice, bob = cast.members
    signed_out = await sync_to_async(session_cookie_for)(alice)
    other_tab = await sync_to_async(session_cookie_for)(alice)

    def client(server, user, cookie, label):
        c = ResilientClient([server], "logout", user=user, label=label, reconnect=False, ping_every=60)
        c.cookie = cookie
        return c

    doomed = [client(a, alice, signed_out, "alice@A"), client(b, alice, signed_out, "alice@B")]
    spared = [client(a, alice, other_tab, "alice-tab2@A"), client(b, bob, None, "bob@B")]
    everyone = [*doomed, *spared]
    for c in everyone:
        await c.start()
    try:
        # Signed out through process B; the socket on A must close too.
        assert await sync_to_async(post_logout)(b, signed_out) == 200
        for c in doomed:
            await c.wait_until(lambda c=c: c.final_close is not None, 5, "closed")
            assert c.final_close == 4403, c.stats.close_codes
        for c in spared:
            assert await still_open(c), c.label
    finally:
        for c in everyone:
            await c.stop()


@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
async def test_password_change_closes_all_the_users_sockets_on_every_process(private_redis, servers_on, settings):
    a, b = servers_on(private_redis, 2)
    # The change is made here, so this process publishes the revocation: on the servers' layer.
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": private_redis.url}], "prefix": a.redis_prefix},
        }
    }
    cast = await make_cast("password", moderators=0, members=2)
    alice, bob = cast.members
    tabs = [
        ResilientClient([server], "password", user=alice, label=f"alice{n}", reconnect=False, ping_every=60)
        for n, server in enumerate([a, b, a, b])
    ]
    bystander = ResilientClient([a], "password", user=bob, label="bob", reconnect=False, ping_every=60)
    for c in [*tabs, bystander]:
        await c.start()
    try:

        @sync_to_async
        def change_password() -> None:
            user = get_user_model().objects.get(pk=alice.pk)
            user.set_password("a-new-password-8c2e")
            user.save()

        await change_password()
        for c in tabs:
            await c.wait_until(lambda c=c: c.final_close is not None, 5, "closed")
            assert c.final_close == 4403, c.stats.close_codes
        assert await still_open(bystander)
        # The old cookie no longer signs anyone in.
        stale = ResilientClient([b], "password", label="stale-cookie", reconnect=False, ping_every=60)
        stale.cookie = tabs[0].cookie
        await stale.start()
        try:
            assert stale.welcomes[0]["you"]["role"] == "guest"
        finally:
            await stale.stop()
    finally:
        for c in [*tabs, bystander]:
            await c.stop()


XSS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "</script><script>alert(document.cookie)</script>",
    "javascript:alert(1)",
    "<svg/onload=alert(1)>",
    "{{7*7}} ${7*7} <%= 7*7 %>",
    "&lt;b&gt;already escaped&lt;/b&gt; &amp;",
    "\u2028\u2029 line separators </",
    "<!--",
    "\\u003cscript\\u003e",
]


@pytest.mark.django_db(transaction=True)
def test_script_in_bodies_names_titles_notices_and_tip_notes_stays_json_data_in_the_events_api():
    users = get_user_model().objects
    # The sign-up form would refuse such names; the admin and scripts can still make them.
    host = users.create_user(username="<b>host</b>")
    evil = users.create_user(username='"><img src=x onerror=alert(1)>')
    room = do_create_room(None, slug="xss", title=XSS[0], host_username=host.username)
    do_grant_coins(None, user_id=evil.pk, amount=10_000)
    planted = []
    for n, text in enumerate(XSS):
        do_send_message(evil, room_id=room.pk, body=text)
        do_announce(host, room_id=room.pk, body=text)
        do_send_tip(evil, room_id=room.pk, amount=1, body=text[:200], client_id=f"t{n}")
        do_update_room(host, room_id=room.pk, title=text.strip() or "x")
        planted.append(text)

    response = Client().get("/api/rooms/xss/events?after=0&limit=1000")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["X-Content-Type-Options"] == "nosniff"
    raw = response.content.decode()
    data = json.loads(raw)
    events = data["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    # Every string comes back exactly as stored: data, neither stripped nor HTML-escaped.
    strings = {
        "message": [e["body"] for e in events if e["type"] == "message"],
        "notice": [e["body"] for e in events if e["type"] == "notice"],
        "tip": [e["body"] for e in events if e["type"] == "tip"],
        "room": [e["title"] for e in events if e["type"] == "room"],
    }
    # (do_send_message is the trusted path: it stores the body as given, unstripped.)
    assert strings["message"] == planted
    assert strings["notice"] == [t.strip() for t in planted]
    assert strings["tip"] == [t[:200] for t in planted]
    assert strings["room"] == [t.strip() for t in planted]
    assert {e["author"]["name"] for e in events if e["type"] == "message"} == {evil.username}
    # Defence in depth for whatever page might render these strings.
    assert "script-src 'self'" in response["Content-Security-Policy"]
