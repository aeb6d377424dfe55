"""`sync` is cheap to ask for and dear to serve: each connection has a budget of syncs,
guests get smaller pages, and replays forward the log's stored JSON text as it is."""

import json

import pytest
from channels.db import database_sync_to_async
from django.db.models import TextField
from django.db.models.functions import Cast

from rooms.models import RoomEvent
from rooms.tests.test_consumer import send_messages

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def stored_texts(room, after=0):
    return list(
        RoomEvent.objects.filter(room=room, seq__gt=after)
        .order_by("seq")
        .annotate(text=Cast("data", TextField()))
        .values_list("text", flat=True)
    )


async def test_a_replay_is_the_stored_json_text_as_it_is(connect, room, host, viewer):
    await send_messages(room, host, 3)
    client = await connect(room, viewer)
    frames_before = len(client.frames)

    await client.send({"type": "sync", "after": 0})
    await client.receive_until(lambda e: e["type"] == "synced", what="synced")

    # The replay is the one batch among what came (a presence delta may come too).
    [replay] = [f for f in client.frames[frames_before:] if f.startswith('{"type":"batch"')]
    assert replay == '{"type":"batch","events":[' + ",".join(await stored_texts(room)) + "]}"
    assert [e["seq"] for e in json.loads(replay)["events"]] == [1, 2, 3]


async def test_syncs_past_the_budget_get_rate_limited_with_retry_after(connect, room, host, viewer, settings):
    settings.CHAT_SYNC_BURST = 3
    settings.CHAT_SYNC_PER_SECOND = 1
    await send_messages(room, host, 2)
    client = await connect(room, viewer)

    for i in range(5):
        await client.send({"type": "sync", "after": 0, "client_id": f"s{i}"})
    answers = []
    for _ in range(5):
        answer, _skipped = await client.receive_until(lambda e: e["type"] in ("synced", "error"), what="an answer")
        answers.append(answer)

    assert [a["type"] for a in answers] == ["synced"] * 3 + ["error"] * 2
    assert {a["code"] for a in answers[3:]} == {"rate_limited"}
    assert all(0 < a["retry_after"] <= 1 for a in answers[3:])
    assert [a["client_id"] for a in answers] == [f"s{i}" for i in range(5)]
    # Refused syncs replay nothing, and the connection stays open for the live room.
    assert sum(1 for e in client.events if e.get("type") == "message") == 3 * 2
    await send_messages(room, host, 1, start=2)
    assert (await client.expect("message"))["seq"] == 3


async def test_a_guest_pages_a_long_log_in_smaller_pages(connect, room, host, settings):
    settings.CHAT_SYNC_PAGE_GUEST = 2
    settings.CHAT_HISTORY_RESUME_MAX = 4
    await send_messages(room, host, 5)
    guest = await connect(room)

    await guest.send({"type": "sync", "after": 0})
    page = await guest.room_events(2)
    synced = await guest.expect("synced")

    assert [e["seq"] for e in page] == [1, 2]
    assert synced == {"type": "synced", "last_seq": 2, "truncated": True}


async def test_a_signed_in_viewer_gets_the_full_resume_page(connect, room, host, viewer, settings):
    settings.CHAT_SYNC_PAGE_GUEST = 2
    settings.CHAT_HISTORY_RESUME_MAX = 4
    await send_messages(room, host, 5)
    client = await connect(room, viewer)

    await client.send({"type": "sync", "after": 0})
    page = await client.room_events(4)

    assert [e["seq"] for e in page] == [1, 2, 3, 4]
    assert await client.expect("synced") == {"type": "synced", "last_seq": 4, "truncated": True}


async def test_catch_ups_take_turns_on_a_process(connect, room, host, viewer, outsider, monkeypatch):
    import threading

    from rooms import selectors

    await send_messages(room, host, 3)
    clients = [await connect(room, viewer), await connect(room, outsider)]
    replay = selectors.room_replay
    running, most = [], []
    lock = threading.Lock()

    def counted_replay(*args, **kwargs):
        with lock:
            running.append(1)
            most.append(len(running))
        try:
            # Long enough for the other sync to arrive while this one reads.
            threading.Event().wait(0.2)
            return replay(*args, **kwargs)
        finally:
            with lock:
                running.pop()

    monkeypatch.setattr(selectors, "room_replay", counted_replay)
    for client in clients:
        await client.send({"type": "sync", "after": 0})
    for client in clients:
        assert [e["seq"] for e in await client.room_events(3)] == [1, 2, 3]
        await client.expect("synced")

    assert max(most) == 1 and len(most) == 2
