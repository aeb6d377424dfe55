"""A stored event that cannot be published: this process's viewers learn the head at
once, and fetch the event from the log."""

import pytest
from channels.db import database_sync_to_async

from rooms import realtime
from rooms.services import do_send_message

pytestmark = pytest.mark.django_db(transaction=True)


async def test_viewers_are_told_the_head_when_the_backlog_is_full(connect, room, host, viewer, monkeypatch):
    client = await connect(room, viewer)
    monkeypatch.setattr(realtime, "MAX_PENDING_PUBLISHES", 0)

    message = await database_sync_to_async(do_send_message)(host, room_id=room.pk, body="lost on the way")
    head = await client.expect("pong")

    assert head == {"type": "pong", "last_seq": message.seq}
    await client.send({"type": "sync", "after": 0})
    (replayed,) = await client.room_events(1)
    assert replayed["body"] == "lost on the way"


async def test_viewers_are_told_the_head_when_a_publish_fails(connect, room, host, viewer, monkeypatch):
    client = await connect(room, viewer)
    layer = realtime.get_channel_layer()

    async def failing_group_send(group, message):
        raise ConnectionError("the channel layer is away")

    monkeypatch.setattr(layer, "group_send", failing_group_send)
    message = await database_sync_to_async(do_send_message)(host, room_id=room.pk, body="lost on the way")

    assert await client.expect("pong") == {"type": "pong", "last_seq": message.seq}
