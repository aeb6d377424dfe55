"""The room WebSocket in the scale-out mode: channels-redis pub/sub and Redis presence.

Skipped without a Redis server (REDIS_URL or CHATSITE_TEST_REDIS_URL).
"""

import asyncio

import pytest
import redis.asyncio as aioredis
from channels.db import database_sync_to_async
from django.conf import settings

from rooms import presence
from rooms.models import Message
from rooms.services import do_send_message

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def brief(user, role="member"):
    return {"id": user.pk, "name": user.get_username(), "role": role}


async def next_non_presence(client, count):
    events = []
    while len(events) < count:
        event = await client.receive()
        if event["type"] != "presence":
            events.append(event)
    return events


async def test_send_is_acked_and_reaches_another_viewer_through_redis(redis_layer, connect, room, viewer, outsider):
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"].endswith("RedisPubSubChannelLayer")
    sender = await connect(room, viewer)
    other = await connect(room, outsider)

    await sender.send({"type": "send", "client_id": "r-1", "body": "over redis"})
    replies = await next_non_presence(sender, 2)

    message = await database_sync_to_async(Message.objects.get)(room=room)
    assert {"type": "ack", "client_id": "r-1", "id": message.pk, "seq": 1} in replies
    event = await other.expect("message")
    assert (event["seq"], event["id"], event["body"], event["author"]) == (1, message.pk, "over redis", brief(viewer))
    assert event in replies


async def test_presence_counts_come_from_redis(redis_layer, connect, room, host, viewer, outsider):
    first = await connect(room, viewer)
    await connect(room, viewer)
    await connect(room, outsider)
    await connect(room, host)

    await first.send({"type": "roster", "client_id": "r"})
    roster = await first.expect("roster")
    delta = await first.wait_for(lambda e: e["type"] == "presence" and e["count"] == 3, what="count 3")

    assert roster == {
        "type": "roster",
        "count": 3,
        "team": [brief(host, "host")],
        "audience": [brief(outsider), brief(viewer)],
        "offset": 0,
        "client_id": "r",
    }
    assert delta["team"] == [brief(host, "host")]
    client = aioredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    try:
        refs = await client.hgetall(f"{redis_layer}:presence:{room.pk}:refs")
    finally:
        await client.aclose()
    assert refs == {f"u{viewer.pk}": "2", f"u{outsider.pk}": "1", f"u{host.pk}": "1"}
    # The room list reads the same counts from synchronous code.
    assert await asyncio.to_thread(presence.online_counts, [room.pk]) == {room.pk: 3}


async def test_leaving_updates_the_redis_roster(redis_layer, connect, room, viewer, outsider):
    first = await connect(room, viewer)
    second = await connect(room, outsider)
    await first.wait_for(lambda e: e["type"] == "presence" and e["count"] == 2, what="both present")

    await second.disconnect()
    delta = await first.wait_for(lambda e: e["type"] == "presence" and brief(outsider) in e["left"], what="the leave")

    assert delta["count"] == 1
    await first.send({"type": "roster"})
    assert (await first.expect("roster"))["count"] == 1


async def test_resume_and_sync_work_the_same_over_redis(redis_layer, connect, room, host, viewer):
    await database_sync_to_async(lambda: [do_send_message(host, room_id=room.pk, body=f"l{i}") for i in range(4)])()

    client = await connect(room, viewer, after=2)
    await client.send({"type": "sync", "after": 0})
    replayed = await client.room_events(4)
    synced = await client.expect("synced")

    assert [e["seq"] for e in client.welcome["history"]] == [3, 4]
    assert [e["seq"] for e in replayed] == [1, 2, 3, 4]
    assert synced["last_seq"] == 4


@pytest.mark.slow
async def test_a_viewer_idle_past_the_redis_socket_timeout_still_receives_messages(
    redis_layer, connect, room, host, viewer
):
    # redis-py 8.1 gives sockets a 5 s timeout by default; with channels-redis 4.3 that
    # kills an idle subscriber's blocking read unless the layer turns it off.
    idle = await connect(room, viewer)
    await asyncio.sleep(11)

    await database_sync_to_async(do_send_message)(host, room_id=room.pk, body="still there?")

    [event] = await idle.room_events(1, timeout=5)
    assert (event["seq"], event["body"]) == (1, "still there?")


async def test_a_beat_refreshes_known_connections_and_adds_back_what_redis_lost(redis_layer, room):
    store = presence.get_presence()
    entries = [
        presence.Entry(
            conn_id=f"c{n}", user_key=f"u{n}", user={"id": n, "name": f"n{n}", "role": "member"}, is_team=False
        )
        for n in range(3)
    ]
    for entry in entries:
        await store.join(room.pk, entry)
    conns = store._keys(room.pk)[0]
    before = dict(await store.client.zrange(conns, 0, -1, withscores=True))
    # Redis lost one connection (a restart without persistence); one left.
    await store.client.zrem(conns, "c0")
    await store.client.hdel(store._keys(room.pk)[2], "u0")
    await store.leave(room.pk, "c2")

    await store.beat(room.pk, entries[:2])

    after = dict(await store.client.zrange(conns, 0, -1, withscores=True))
    assert set(after) == {"c0", "c1"}
    assert after["c1"] > before["c1"]
    assert await store.count(room.pk) == 2
    assert [u["id"] for u in await store.audience(room.pk, offset=0, limit=10)] == [0, 1]

    # All known: one command, and nothing counted twice.
    await store.beat(room.pk, entries[:2])
    assert await store.count(room.pk) == 2


async def test_a_beat_that_failed_is_tried_again_the_next_second(monkeypatch, settings):
    # After a Redis restart the first call on a pooled connection may fail: the beat that
    # puts this process's viewers back must not then wait a whole beat period.
    from rooms.presence import tracker as tracker_module

    settings.REDIS_URL = ""  # the memory store: the beat itself is stood in for
    settings.CHAT_PRESENCE_BEAT_SECONDS = 60
    monkeypatch.setattr(tracker_module, "_jitter", lambda: -0.5)  # the first beat at once
    outcomes = [False, True]
    beats = []

    async def beat():
        beats.append(outcomes[len(beats)] if len(beats) < len(outcomes) else True)
        return beats[-1]

    presence_tracker = tracker_module.PresenceTracker(dict)
    monkeypatch.setattr(presence_tracker, "_beat", beat)
    presence_tracker.start()
    try:
        for _ in range(100):
            if len(beats) >= 2:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)
    finally:
        for task in presence_tracker.tasks():
            task.cancel()
    # Failed, retried a second later, then not again for 60 s.
    assert beats == [False, True]


async def test_batched_script_calls_load_a_script_redis_does_not_know_and_answer_every_call(redis_layer):
    from rooms.presence.store import _Batched

    client = aioredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    # A script no Redis has seen (as after a restart): the first batch is refused NOSCRIPT.
    script = client.register_script(f"return ARGV[1] .. ':' .. KEYS[1] -- {redis_layer}")
    batched = _Batched(client, script)
    try:
        answers = await asyncio.gather(*(batched(keys=[f"{redis_layer}:k{i}"], args=[str(i)]) for i in range(5)))
        assert answers == [f"{i}:{redis_layer}:k{i}" for i in range(5)]
        assert await batched(keys=[f"{redis_layer}:k"], args=["again"]) == f"again:{redis_layer}:k"
    finally:
        await client.aclose()
