"""A client resuming across a pruning: told its history was truncated, then paged on
from what is left, with live events after it and nothing twice."""

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from rooms.models import RoomEvent
from rooms.services import do_send_message
from rooms.services.retention import do_prune_events

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def chat_then_prune(room, author, *, count: int, old: int) -> None:
    for i in range(count):
        do_send_message(author, room_id=room.pk, body=f"line {i}")
    RoomEvent.objects.filter(room=room, seq__lte=old).update(created_at=timezone.now() - timedelta(days=40))
    do_prune_events(None, older_than_days=30)


async def test_resume_from_before_the_pruned_point_is_truncated_and_pages_on_from_what_is_left(
    connect, room, host, viewer
):
    await chat_then_prune(room, host, count=5, old=3)

    client = await connect(room, viewer, after=1)
    # As the web client does on a truncated welcome: sync from the last seq it has.
    await client.send({"type": "sync", "after": 1, "client_id": "s1"})
    replayed = await client.room_events(2)
    synced = await client.expect("synced")
    await database_sync_to_async(do_send_message)(host, room_id=room.pk, body="after the pruning")
    [live] = await client.room_events(1)

    assert client.welcome["history_truncated"] is True
    assert [e["seq"] for e in client.welcome["history"]] == [4, 5]
    assert client.welcome["last_seq"] == 5
    assert [e["seq"] for e in replayed] == [4, 5]
    assert (synced["last_seq"], synced.get("truncated", False)) == (5, False)
    assert live["seq"] == 6


async def test_resume_from_the_pruned_point_on_is_complete(connect, room, host, viewer):
    await chat_then_prune(room, host, count=5, old=3)

    client = await connect(room, viewer, after=3)

    assert client.welcome["history_truncated"] is False
    assert [e["seq"] for e in client.welcome["history"]] == [4, 5]
