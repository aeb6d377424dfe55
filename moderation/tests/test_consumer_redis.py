"""Kick and ban in the scale-out mode: the close travels with the event over the Redis
pub/sub layer, not through any in-process shortcut. Skipped without Redis; the version
with separate server processes is in tests/live."""

import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from moderation.models import Ban

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


async def until(client, kind, **fields):
    def matches(event):
        return event["type"] == kind and all(event.get(k) == v for k, v in fields.items())

    for event in client.events:
        if matches(event):
            return event
    event, _ = await client.receive_until(matches, what=f"a {kind!r} event with {fields}")
    return event


async def still_open(client):
    await client.send({"type": "ping", "ts": 1, "client_id": "still-there"})
    await until(client, "pong", client_id="still-there")
    assert client.close_code is None


async def test_kick_over_redis_closes_the_target_with_4000(redis_layer, connect, room, moderator, viewer, outsider):
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"].endswith("RedisPubSubChannelLayer")
    mod = await connect(room, moderator)
    vic = await connect(room, viewer)
    out = await connect(room, outsider)

    await mod.send({"type": "kick", "user": viewer.pk, "client_id": "k-1"})

    ack = await until(mod, "ack", client_id="k-1")
    assert (await until(vic, "moderation", action="kick"))["seq"] == ack["seq"]
    assert await vic.expect_close(4000) == 4000
    assert (await until(out, "moderation", action="kick"))["seq"] == ack["seq"]
    await still_open(out)
    await still_open(mod)


async def test_ban_over_redis_closes_the_target_with_4403_and_refuses_it_again(
    redis_layer, connect, room, host, viewer, outsider
):
    hana = await connect(room, host)
    tabs = [await connect(room, viewer, label=f"vic-{i}") for i in range(2)]
    out = await connect(room, outsider)

    await hana.send({"type": "ban", "user": viewer.pk, "seconds": 600, "client_id": "b-1"})

    ack = await until(hana, "ack", client_id="b-1")
    for tab in tabs:
        assert (await until(tab, "moderation", action="ban"))["seq"] == ack["seq"]
        assert await tab.expect_close(4403) == 4403
    assert await database_sync_to_async(Ban.objects.filter(user=viewer, ended_at__isnull=True).count)() == 1
    await until(out, "moderation", action="ban")
    await still_open(out)

    retry = await connect(room, viewer, welcome=False)

    assert retry.accepted
    assert await retry.expect_close(4403) == 4403
    assert retry.events == []
