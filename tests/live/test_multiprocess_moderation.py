"""Moderation in the scale-out mode: an action taken through one daphne process is
enforced on viewers connected to another, through Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from asgiref.sync import sync_to_async

from rooms.models import Message
from tests.live.test_multiprocess import make_cast

pytestmark = [
    pytest.mark.multiprocess,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]


async def command(client, payload: dict, client_id: str) -> dict:
    await client.send({**payload, "client_id": client_id})
    return await client.wait_for(lambda e: e.get("client_id") == client_id and e["type"] in ("ack", "error"))


async def test_actions_taken_on_one_process_are_enforced_on_the_other(daphne_servers, ws_connect):
    a, b = daphne_servers(2)
    cast = await make_cast("crossmod")
    moderator = await ws_connect(a, "crossmod", user=cast.moderator)
    alice = await ws_connect(b, "crossmod", user=cast.alice)
    await moderator.expect_welcome()
    await alice.expect_welcome()

    # Mute on A: Alice's send on B is refused with retry_after, and nothing is stored.
    muted = await command(moderator, {"type": "mute", "user": cast.alice.username, "seconds": 60}, "m1")
    assert muted["type"] == "ack", muted
    event = await alice.room_event(muted["seq"])
    assert event["action"] == "mute" and event["target"]["id"] == cast.alice.pk
    refused = await command(alice, {"type": "send", "body": "hello?"}, "s1")
    assert refused["code"] == "muted" and refused["retry_after"] > 0
    assert not await sync_to_async(Message.objects.filter(author=cast.alice).exists)()
    assert (await command(moderator, {"type": "unmute", "user": cast.alice.pk}, "m2"))["type"] == "ack"

    # Delete on A: B sees the message vanish.
    sent = await command(alice, {"type": "send", "body": "oops"}, "s2")
    assert sent["type"] == "ack", sent
    deleted = await command(moderator, {"type": "delete", "id": sent["id"]}, "d1")
    assert deleted["type"] == "ack", deleted
    gone = await alice.room_event(deleted["seq"])
    assert gone["type"] == "message_deleted" and gone["id"] == sent["id"]

    # Slow mode on A: Alice sent "oops" moments ago, so her next message on B waits.
    slowed = await command(moderator, {"type": "slow_mode", "seconds": 30}, "sm1")
    assert (await alice.room_event(slowed["seq"]))["seconds"] == 30
    again = await command(alice, {"type": "send", "body": "two"}, "s4")
    assert again["code"] == "slow_mode" and 0 < again["retry_after"] <= 30

    # Kick on A: Alice's socket on B gets the event and closes with 4000.
    kicked = await command(moderator, {"type": "kick", "user": cast.alice.pk}, "k1")
    assert kicked["type"] == "ack", kicked
    assert await alice.wait_closed() == 4000


async def test_a_ban_on_one_process_closes_the_target_on_the_other_within_a_second(daphne_servers, ws_connect):
    a, b = daphne_servers(2)
    cast = await make_cast("crossban")
    host = await ws_connect(a, "crossban", user=cast.host)
    bob = await ws_connect(b, "crossban", user=cast.bob)
    await host.expect_welcome()
    await bob.expect_welcome()

    began = time.monotonic()
    banned = await command(host, {"type": "ban", "user": cast.bob.username, "reason": "spam"}, "b1")
    assert banned["type"] == "ack", banned
    assert await bob.wait_closed(timeout=1.0) == 4403
    closed_after = time.monotonic() - began
    # A new connection through either process is accepted and closed before any welcome.
    for server in (a, b):
        retry = await ws_connect(server, "crossban", user=cast.bob)
        assert await retry.wait_closed() == 4403
        assert not any(e["type"] == "welcome" for e in retry.events)
    print(f"ban closed the socket on the other process after {closed_after:.3f} s")


async def test_a_site_notice_reaches_every_room_on_every_process(daphne_servers, ws_connect):
    a, b = daphne_servers(2)
    first = await make_cast("site-one")
    second = await make_cast("site-two")
    on_a = await ws_connect(a, "site-one", user=first.alice)
    on_b = await ws_connect(b, "site-two", user=second.bob)
    await on_a.expect_welcome()
    await on_b.expect_welcome()

    # The operator's command runs in a process of its own, like on a real deployment.
    done = subprocess.run(
        [sys.executable, "manage.py", "announce", "--site", "--level", "warning", "Maintenance at 03:00 UTC"],
        env={**os.environ, **a.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr

    for client in (on_a, on_b):
        notice = await client.wait_for(lambda e: e["type"] == "notice")
        assert notice["scope"] == "site" and notice["level"] == "warning"
        assert notice["body"] == "Maintenance at 03:00 UTC"
        assert isinstance(notice["seq"], int)
