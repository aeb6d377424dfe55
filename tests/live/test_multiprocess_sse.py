"""The server-sent-events fallback in the scale-out mode: two daphne processes sharing
Redis and the database. A stream on one process is a viewer like a socket on the other:
it hears what is sent anywhere, counts in the roster, and is ended by a kick, a ban or
signing out done through the other process."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from tests.live.clients import session_cookie_for, ws_connect
from tests.live.sse_clients import CSRF_SECRET, insecure_context, open_stream, post_commands
from tests.live.test_multiprocess import make_cast

pytestmark = [
    pytest.mark.multiprocess,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]


async def test_a_post_on_one_process_reaches_a_stream_on_the_other_once_and_the_stream_is_in_the_roster(
    daphne_servers,
):
    a, b = daphne_servers(2)
    cast = await make_cast("ssecross")
    alice_cookie = await sync_to_async(session_cookie_for)(cast.alice)
    stream = await open_stream(b.http_url, "ssecross", cookie=alice_cookie)
    bob = await ws_connect(a, "ssecross", user=cast.bob)
    try:
        await stream.expect_welcome()
        await bob.expect_welcome()
        await bob.wait_for(lambda e: e["type"] == "presence" and e["count"] == 2, timeout=6)

        status, body = await sync_to_async(post_commands)(
            a.http_url, "ssecross", [{"type": "send", "body": "across", "client_id": "x1"}], cookie=alice_cookie
        )
        assert status == 200, body
        [ack] = body["replies"]
        assert ack["type"] == "ack"
        heard = await stream.wait_for(lambda e: e.get("seq") == ack["seq"])
        seen_by_bob = await bob.room_event(ack["seq"])

        assert heard["body"] == "across" and seen_by_bob["client_id"] == "x1"
        assert stream.room_seqs.count(ack["seq"]) == 1
        assert stream.frames[0][0] == "welcome"
    finally:
        await stream.close()
        await bob.close()


async def test_a_kick_and_a_ban_through_one_process_end_a_stream_on_the_other(daphne_servers):
    a, b = daphne_servers(2)
    cast = await make_cast("ssemod")
    host = await ws_connect(a, "ssemod", user=cast.host)
    alice_cookie = await sync_to_async(session_cookie_for)(cast.alice)
    stream = await open_stream(b.http_url, "ssemod", cookie=alice_cookie)
    try:
        await host.expect_welcome()
        await stream.expect_welcome()

        await host.send({"type": "kick", "user": cast.alice.pk, "client_id": "k1"})
        await stream.wait_ended()
        kind, _, ending = stream.frames[-1]
        assert kind == "error" and ending["close"] == 4000
        assert any(e.get("action") == "kick" for e in stream.events)

        again = await open_stream(b.http_url, "ssemod", cookie=alice_cookie)
        await again.expect_welcome()
        await host.send({"type": "ban", "user": cast.alice.pk, "client_id": "b1"})
        await again.wait_ended()
        assert again.frames[-1][2]["close"] == 4403
        await again.close()

        refused = await open_stream(b.http_url, "ssemod", cookie=alice_cookie)
        await refused.wait_ended()
        assert refused.status == 403
        await refused.close()
    finally:
        await stream.close()
        await host.close()


async def test_signing_out_through_one_process_ends_that_sessions_stream_on_the_other(daphne_servers):
    import urllib.request

    a, b = daphne_servers(2)
    cast = await make_cast("sseout")
    cookie = await sync_to_async(session_cookie_for)(cast.alice)
    other_session = await sync_to_async(session_cookie_for)(cast.alice)
    stream = await open_stream(b.http_url, "sseout", cookie=cookie)
    stays = await open_stream(b.http_url, "sseout", cookie=other_session)
    try:
        await stream.expect_welcome()
        await stays.expect_welcome()

        def sign_out() -> int:
            request = urllib.request.Request(
                f"{a.http_url}/accounts/logout/",
                data=f"csrfmiddlewaretoken={CSRF_SECRET}".encode(),
                method="POST",
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Origin": a.http_url,
                    "Cookie": f"{cookie['name']}={cookie['value']}; csrftoken={CSRF_SECRET}",
                },
            )
            opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=insecure_context()))
            opener.addheaders = []
            try:
                return opener.open(request, timeout=10).status
            except urllib.error.HTTPError as exc:
                return exc.code

        assert await sync_to_async(sign_out)() in (200, 302)
        await stream.wait_ended()

        assert stream.frames[-1][2]["close"] == 4403
        assert not stays.ended.done()
    finally:
        await stream.close()
        await stays.close()
