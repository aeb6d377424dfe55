"""A member's send limits hold across server processes: each process has its own writer
for a room, so both check sends at the same moment, and neither may let through what the
other has already counted."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model

from moderation.services import do_set_slow_mode
from rooms.models import Message
from rooms.services import do_create_room

pytestmark = [
    pytest.mark.multiprocess,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

# CHAT_SEND_RATE_BURST's default: 5 messages in 5 s.
BURST = 5
# One member at a time, each in a round of its own: the two processes race on a member's
# counters only while their checks of that member overlap, which one round may miss.
MEMBERS = 12


@sync_to_async
def make_room(slug: str, *, members: int, slow_mode_seconds: int = 0) -> list:
    # Users get unusable passwords: sessions are made directly, and hashing costs time.
    users = get_user_model().objects
    host = users.create_user(username=f"{slug}-host")
    room = do_create_room(None, slug=slug, title=f"Room {slug}", host_username=host.username)
    if slow_mode_seconds:
        do_set_slow_mode(host, room_id=room.pk, seconds=slow_mode_seconds)
    return [users.create_user(username=f"{slug}-member{n}") for n in range(members)]


@sync_to_async
def stored_client_ids(user) -> set[str]:
    return set(Message.objects.filter(author=user).values_list("client_id", flat=True))


def reply_to(client, cid: str) -> dict | None:
    return next((e for e in client.events if e.get("client_id") == cid and e["type"] in ("ack", "error")), None)


async def send_at_once(sends: list[tuple[object, str]]) -> dict[str, dict]:
    """Send every (client, client_id) at the same moment; each one's ack or error."""
    await asyncio.gather(*(client.send({"type": "send", "body": cid, "client_id": cid}) for client, cid in sends))
    for client, cid in sends:
        # Not wait_for: several waiters on one client would consume each other's replies.
        await client.wait_until(lambda client=client, cid=cid: reply_to(client, cid) is not None, what=cid)
    return {cid: reply_to(client, cid) for client, cid in sends}


async def test_a_members_burst_split_over_two_processes_stores_exactly_the_limit(daphne_servers, ws_connect):
    a, b = daphne_servers(2)
    members = await make_room("burst-split", members=MEMBERS)

    for n, member in enumerate(members):
        on_a = await ws_connect(a, "burst-split", user=member)
        on_b = await ws_connect(b, "burst-split", user=member)
        await on_a.expect_welcome()
        await on_b.expect_welcome()

        replies = await send_at_once([(on_a if i % 2 else on_b, f"m{n}-c{i}") for i in range(2 * BURST)])

        acked = {cid for cid, reply in replies.items() if reply["type"] == "ack"}
        refused = [reply for reply in replies.values() if reply["type"] == "error"]
        assert len(acked) == BURST, (member.username, replies)
        assert {reply["code"] for reply in refused} == {"rate_limited"}, refused
        assert all(0 < reply["retry_after"] <= 5 for reply in refused), refused
        assert await stored_client_ids(member) == acked


async def test_slow_mode_lets_one_of_two_simultaneous_sends_through_two_processes(daphne_servers, ws_connect):
    a, b = daphne_servers(2)
    members = await make_room("slow-split", members=MEMBERS, slow_mode_seconds=30)

    for n, member in enumerate(members):
        on_a = await ws_connect(a, "slow-split", user=member)
        on_b = await ws_connect(b, "slow-split", user=member)
        await on_a.expect_welcome()
        await on_b.expect_welcome()

        replies = await send_at_once([(on_a, f"m{n}-a"), (on_b, f"m{n}-b")])

        acked = {cid for cid, reply in replies.items() if reply["type"] == "ack"}
        refused = [reply for reply in replies.values() if reply["type"] == "error"]
        assert len(acked) == 1, (member.username, replies)
        assert [reply["code"] for reply in refused] == ["slow_mode"], refused
        assert 0 < refused[0]["retry_after"] <= 30, refused
        assert await stored_client_ids(member) == acked
