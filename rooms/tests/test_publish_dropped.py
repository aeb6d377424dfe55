"""A stored event reaches this process's viewers as it is published, without the round
trip through the channel layer: even when the layer cannot take it (its backlog is
full, or it fails)."""

import asyncio

import pytest
from channels.db import database_sync_to_async

from rooms import realtime
from rooms.services import do_send_message

pytestmark = pytest.mark.django_db(transaction=True)


def refuse_everything(monkeypatch) -> None:
    """The channel layer's publisher cannot take anything: its backlog is full."""
    monkeypatch.setattr(realtime, "MAX_PENDING_PUBLISHES", 0)


def fail_every_publish(monkeypatch) -> None:
    """The channel layer takes nothing: every publish fails."""

    async def failing_group_send(group, message):
        raise ConnectionError("the channel layer is away")

    monkeypatch.setattr(realtime.get_channel_layer(), "group_send", failing_group_send)


@pytest.mark.parametrize("layer_fault", [refuse_everything, fail_every_publish])
async def test_viewers_here_get_an_event_the_layer_cannot_take(connect, room, host, viewer, monkeypatch, layer_fault):
    client = await connect(room, viewer)
    layer_fault(monkeypatch)

    message = await database_sync_to_async(do_send_message)(host, room_id=room.pk, body="kept here")
    (live,) = await client.room_events(1)

    assert (live["seq"], live["body"]) == (message.seq, "kept here")


async def test_viewers_here_get_an_event_before_the_layer_has_it(connect, room, host, viewer, monkeypatch):
    client = await connect(room, viewer)
    layer = realtime.get_channel_layer()
    group_send = layer.group_send
    release = asyncio.Event()

    async def slow_group_send(group, message):
        await release.wait()
        await group_send(group, message)

    monkeypatch.setattr(layer, "group_send", slow_group_send)
    first = await database_sync_to_async(do_send_message)(host, room_id=room.pk, body="one")
    (live,) = await client.room_events(1)
    # Now the layer takes it, and its echo comes back to this process's hub.
    release.set()
    second = await database_sync_to_async(do_send_message)(host, room_id=room.pk, body="two")
    (after,) = await client.room_events(1)

    assert live["seq"] == first.seq
    assert after["seq"] == second.seq
