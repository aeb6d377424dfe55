"""The scale-out mode, end to end: real daphne processes sharing Redis and the database.

Each test starts its own servers and talks to them with real WebSocket clients, so what
passes here is what an operator running several processes behind a proxy gets: events
cross processes, presence agrees, and a client whose process dies loses nothing.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model

from rooms.models import Room, RoomEvent
from rooms.services import do_create_room, do_set_role
from tests.live.clients import LiveClient

if TYPE_CHECKING:
    from django.contrib.auth.models import User

pytestmark = [
    pytest.mark.multiprocess,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

PRESENCE_CONVERGENCE_SECONDS = 5.0
DELIVERY_SECONDS = 5.0


@dataclass
class Cast:
    room: Room
    host: User
    moderator: User
    alice: User
    bob: User


@sync_to_async
def make_cast(slug: str) -> Cast:
    # Users get unusable passwords: sessions are made directly, and hashing costs time.
    users = get_user_model().objects
    host, moderator, alice, bob = (users.create_user(username=f"{slug}-{n}") for n in ("host", "mod", "alice", "bob"))
    room = do_create_room(None, slug=slug, title=f"Room {slug}", host_username=host.username)
    # Moderators are exempt from the member rate limits (5 sends per 5 s).
    do_set_role(None, room_id=room.pk, username=moderator.username, role="moderator")
    return Cast(room=room, host=host, moderator=moderator, alice=alice, bob=bob)


@sync_to_async
def stored_seqs(room: Room) -> list[int]:
    return list(RoomEvent.objects.filter(room=room).order_by("seq").values_list("seq", flat=True))


@sync_to_async
def stored_message_seqs(room: Room, client_ids: set[str]) -> dict[str, int]:
    rows = RoomEvent.objects.filter(room=room, type="message").values_list("seq", "data")
    return {data["client_id"]: seq for seq, data in rows if data.get("client_id") in client_ids}


async def test_message_sent_through_one_process_reaches_a_viewer_on_the_other(daphne_servers, ws_connect):
    a, b = daphne_servers(2)
    cast = await make_cast("crossing")
    sender = await ws_connect(a, "crossing", user=cast.alice)
    viewer = await ws_connect(b, "crossing", user=cast.bob)
    await sender.expect_welcome()
    await viewer.expect_welcome()

    await sender.send({"type": "send", "body": "hi", "client_id": "c1"})
    ack = await sender.wait_for(lambda e: e.get("client_id") == "c1" and e["type"] in ("ack", "error"))
    assert ack["type"] == "ack", ack
    assert isinstance(ack["id"], int) and isinstance(ack["seq"], int)

    message = await viewer.room_event(ack["seq"], DELIVERY_SECONDS)
    assert message["type"] == "message"
    assert message["id"] == ack["id"]
    assert message["body"] == "hi"
    assert message["client_id"] == "c1"
    assert message["author"]["name"] == cast.alice.username
    # The sender's own tab shows the message from the same stream as everyone else's.
    assert (await sender.room_event(ack["seq"], DELIVERY_SECONDS)) == message

    assert await stored_seqs(cast.room) == [ack["seq"]]


async def test_presence_count_agrees_across_processes(daphne_servers, ws_connect):
    a, b = daphne_servers(2)
    cast = await make_cast("presence")
    alice_on_a = await ws_connect(a, "presence", user=cast.alice, label="alice@A")
    bob_on_b = await ws_connect(b, "presence", user=cast.bob, label="bob@B")
    # A second tab of alice's, so that process B still has a viewer once bob leaves; a
    # signed-in user counts once however many tabs, on whichever processes.
    alice_on_b = await ws_connect(b, "presence", user=cast.alice, label="alice@B")
    everyone = [alice_on_a, bob_on_b, alice_on_b]
    for client in everyone:
        await client.expect_welcome()

    for client in everyone:
        await client.wait_until(lambda c=client: c.roster_count == 2, PRESENCE_CONVERGENCE_SECONDS, "count == 2")
    assert await roster_count_on_request(alice_on_a) == 2
    assert await roster_count_on_request(alice_on_b) == 2

    await bob_on_b.close()

    for client in (alice_on_a, alice_on_b):
        await client.wait_until(lambda c=client: c.roster_count == 1, PRESENCE_CONVERGENCE_SECONDS, "count == 1")
    assert await roster_count_on_request(alice_on_a) == 1
    assert await roster_count_on_request(alice_on_b) == 1


async def test_count_is_corrected_when_a_viewer_leaves_before_its_join_was_announced(daphne_servers, ws_connect):
    # Each process batches join/leave deltas for a moment before announcing them. A viewer
    # who joins and leaves within one such batch cancels out in its process's deltas, but
    # the other process may meanwhile have announced a count that included them (it reads
    # the shared roster). The correction must still reach everyone. Process B batches for
    # 3 s here, so the join and the leave certainly fall in one batch.
    (a,) = daphne_servers(1, redis=True, env={"CHAT_PRESENCE_COALESCE_MS": "0"})
    (b,) = daphne_servers(1, redis=True, env={"CHAT_PRESENCE_COALESCE_MS": "3000"})
    cast = await make_cast("blink")
    alice_on_a = await ws_connect(a, "blink", user=cast.alice, label="alice@A")
    await alice_on_a.expect_welcome()
    await alice_on_a.wait_until(lambda: alice_on_a.roster_count == 1, PRESENCE_CONVERGENCE_SECONDS, "count == 1")

    bob_on_b = await ws_connect(b, "blink", user=cast.bob, label="bob@B")
    await bob_on_b.expect_welcome()
    # Someone joining through A makes A announce a count, which includes bob.
    host_on_a = await ws_connect(a, "blink", user=cast.host, label="host@A")
    await host_on_a.expect_welcome()
    await alice_on_a.wait_until(lambda: alice_on_a.roster_count == 3, PRESENCE_CONVERGENCE_SECONDS, "count == 3")
    await bob_on_b.close()

    for client in (alice_on_a, host_on_a):
        await client.wait_until(lambda c=client: c.roster_count == 2, 3 + PRESENCE_CONVERGENCE_SECONDS, "count == 2")
    assert await roster_count_on_request(alice_on_a) == 2


async def roster_count_on_request(client: LiveClient) -> int:
    """Ask the client's process directly, rather than trusting accumulated deltas."""
    client_id = f"roster-{time.monotonic_ns()}"
    await client.send({"type": "roster", "offset": 0, "limit": 50, "client_id": client_id})
    reply = await client.wait_for(lambda e: e.get("client_id") == client_id)
    assert reply["type"] == "roster", reply
    return reply["count"]


async def test_viewer_of_a_killed_process_resumes_on_the_survivor_without_loss_or_duplicates(
    daphne_servers, ws_connect
):
    doomed, survivor = daphne_servers(2)
    cast = await make_cast("crash")
    # A busy room: 50 messages a second from several connections of the team (exempt from
    # the member send limits; each connection stays within the per-connection command
    # budget, 10 a second).
    streamers = [
        await ws_connect(survivor, "crash", user=cast.moderator, label=f"streamer{i}@survivor") for i in range(5)
    ]
    victim = await ws_connect(doomed, "crash", user=cast.alice, label="victim@doomed")
    for client in [*streamers, victim]:
        await client.expect_welcome()

    per_streamer, interval = 30, 0.1
    client_ids = {streamer: [f"s{n}-m{i}" for i in range(per_streamer)] for n, streamer in enumerate(streamers)}

    async def stream(streamer: LiveClient, offset: float) -> None:
        # Not waiting for acks: a busy room does not pause for anyone.
        await asyncio.sleep(offset)
        for i, client_id in enumerate(client_ids[streamer]):
            await streamer.send({"type": "send", "body": f"{streamer.label} {i}", "client_id": client_id})
            await asyncio.sleep(interval)

    streaming = asyncio.gather(*(stream(s, n * interval / len(streamers)) for n, s in enumerate(streamers)))
    # Let a good part of the stream reach the victim live first, so that resuming has a
    # real position to resume from and the room is still moving when it does.
    await victim.wait_until(lambda: len(victim.seqs) >= 40, 10, "40 live messages")
    doomed.kill()
    assert await victim.wait_closed() == 1006
    seen_before = list(victim.seqs)

    # What a client does when its connection drops: reconnect (the proxy sends it to a
    # live process) and resume after the last seq it saw, while the room keeps going.
    resumed = await ws_connect(survivor, "crash", user=cast.alice, after=seen_before[-1], label="victim@survivor")
    await resumed.expect_welcome()
    await asyncio.wait_for(streaming, 30)

    acks: dict[str, dict] = {}
    for streamer in streamers:
        # Generous: the sends queue up at the server, whose pace on a busy machine is its own.
        acks.update(await gather_replies(streamer, set(client_ids[streamer]), timeout=30))
    errors = {cid: e for cid, e in acks.items() if e["type"] != "ack"}
    assert not errors, f"sends failed: {errors}"
    last_seq = max(e["seq"] for e in acks.values())
    assert len({e["seq"] for e in acks.values()}) == len(acks) == len(streamers) * per_streamer

    await resumed.wait_for_seq(last_seq, DELIVERY_SECONDS)
    for streamer in streamers:
        await streamer.wait_for_seq(last_seq, DELIVERY_SECONDS)

    stored = await stored_seqs(cast.room)
    assert stored == list(range(1, last_seq + 1)), "the room's log has gaps"
    assert await stored_message_seqs(cast.room, set(acks)) == {cid: e["seq"] for cid, e in acks.items()}
    # Every seq exactly once and in order, across the two connections.
    assert len(seen_before) < len(stored), "the victim saw everything before the kill; nothing was resumed"
    assert_exactly_once_in_order(seen_before + resumed.seqs, stored)
    for streamer in streamers:
        assert_exactly_once_in_order(streamer.seqs, stored)


async def gather_replies(client: LiveClient, client_ids: set[str], timeout: float = 10.0) -> dict[str, dict]:
    """The ack or error for each of `client_ids`, from everything the client received."""

    def replies() -> dict[str, dict]:
        return {
            e["client_id"]: e
            for e in client.events
            if e["type"] in ("ack", "error") and e.get("client_id") in client_ids
        }

    try:
        await client.wait_until(lambda: len(replies()) == len(client_ids), timeout, "a reply to every send")
    except AssertionError as exc:
        missing = sorted(client_ids - set(replies()))
        uncorrelated = [e for e in client.events if e["type"] == "error" and "client_id" not in e]
        raise AssertionError(f"{exc}\nno reply for {missing}\nerrors without client_id: {uncorrelated[:5]}") from None
    return replies()


def assert_exactly_once_in_order(received: list[int], stored: list[int]) -> None:
    duplicates = sorted({s for s in received if received.count(s) > 1})
    missing = sorted(set(stored) - set(received))
    assert not duplicates, f"seqs received twice: {duplicates}"
    assert not missing, f"seqs never received: {missing}"
    assert received == stored, f"seqs out of order: {received}"


@pytest.mark.slow
async def test_idle_viewers_on_redis_backed_servers_still_receive_after_11_seconds(daphne_servers, ws_connect):
    # redis-py 8.1 gives sockets a 5 s timeout by default: a channel-layer read that
    # blocks through a silent stretch longer than that fails, and whatever is published
    # while the process reconnects never reaches its viewers. Both processes stay silent
    # for 11 s here.
    a, b = daphne_servers(2)
    cast = await make_cast("idle")
    idle_on_a = await ws_connect(a, "idle", user=cast.alice, label="idle@A")
    idle_on_b = await ws_connect(b, "idle", user=cast.bob, label="idle@B")
    await idle_on_a.expect_welcome()
    await idle_on_b.expect_welcome()

    await asyncio.sleep(11)

    # A fresh connection joins a room its process already follows, so it reuses the
    # subscription that has been idle all this time.
    sender = await ws_connect(b, "idle", user=cast.moderator, label="sender@B")
    await sender.expect_welcome()
    ack = await sender.send_message("still there?", "after-idle")

    for client in (idle_on_a, idle_on_b):
        message = await client.room_event(ack["seq"], DELIVERY_SECONDS)
        assert message["body"] == "still there?"
    # The hub retries a failed read, so delivery alone would hide the pitfall: the
    # processes must also have stayed quiet (no timed-out reads, no reconnects).
    for server in (a, b):
        assert server.alive(), server.output()
        assert "Traceback" not in server.output(), server.output()
