"""The room's welcome snapshot: read once per room and process, kept current by the
room's feed, and used only where it gives exactly what a read of the database would."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async

from rooms.delivery import welcome
from rooms.delivery.hub import RoomFeed
from rooms.delivery.stream import Delivery
from rooms.protocol import encode
from rooms.selectors import LatestEvents
from rooms.services import do_announce, do_send_message

pytestmark = pytest.mark.django_db(transaction=True)


def message(seq: int) -> str:
    return encode({"type": "message", "seq": seq, "body": f"line {seq}"})


def snapshot_of(seqs: range, *, pruned_through: int = 0) -> welcome.RoomSnapshot:
    events = [(seq, message(seq)) for seq in seqs]
    last_seq = seqs[-1] if seqs else pruned_through
    return welcome.RoomSnapshot(
        room='{"slug":"r"}',
        latest=LatestEvents(events=events, last_seq=last_seq, pruned_through=pruned_through),
        pinned=[],
    )


def seqs_of(parts: welcome.WelcomeParts) -> list[int]:
    return [json.loads(text)["seq"] for text in parts.history.events]


# The snapshot alone.


def test_a_first_visit_gets_the_latest_page(settings):
    settings.CHAT_HISTORY_FIRST_VISIT = 3
    parts = snapshot_of(range(1, 11)).parts(None)

    assert seqs_of(parts) == [8, 9, 10]
    assert (parts.history.last_seq, parts.history.truncated) == (10, False)


def test_a_resume_within_what_it_holds_gets_every_event_after(settings):
    parts = snapshot_of(range(1, 11)).parts(7)

    assert seqs_of(parts) == [8, 9, 10]
    assert not parts.history.truncated


def test_a_resume_past_the_page_is_truncated_as_from_the_database(settings):
    settings.CHAT_HISTORY_RESUME_MAX = 2
    parts = snapshot_of(range(1, 11)).parts(5)

    assert seqs_of(parts) == [6, 7]
    assert parts.history.truncated


def test_a_resume_from_before_what_it_holds_is_left_to_the_database(monkeypatch):
    monkeypatch.setattr(welcome, "SNAPSHOT_EVENTS", 5)
    snapshot = snapshot_of(range(6, 11), pruned_through=0)
    snapshot.complete = False

    assert snapshot.parts(3) is None
    assert snapshot.parts(5) is not None


def test_a_resume_from_before_the_retention_floor_is_told_history_was_pruned():
    parts = snapshot_of(range(6, 11), pruned_through=5).parts(2)

    assert seqs_of(parts) == [6, 7, 8, 9, 10]
    assert parts.history.pruned


def test_a_resume_ahead_of_the_head_is_left_to_the_database():
    assert snapshot_of(range(1, 4)).parts(9) is None


def test_it_follows_chat_lines_in_order_and_gives_up_on_anything_else():
    snapshot = snapshot_of(range(1, 4))

    assert snapshot.follow(2, message(2))  # already held
    assert snapshot.follow(4, message(4))
    assert snapshot.last_seq == 4
    assert not snapshot.follow(6, message(6))  # a hole
    assert not snapshot.follow(5, encode({"type": "notice", "seq": 5}))


# Kept by the room's feed.


class StubHub:
    def spawn(self, coro) -> None:
        asyncio.ensure_future(coro)


async def test_a_join_storm_reads_the_room_once(monkeypatch):
    reads = []

    def read_snapshot(room_id):
        reads.append(room_id)
        return snapshot_of(range(1, 4))

    monkeypatch.setattr(welcome, "read_snapshot", read_snapshot)
    feed = RoomFeed(StubHub(), 1)

    welcomes = await asyncio.gather(*(feed.welcome_parts(after=None, blocked=set(), head=0) for _ in range(50)))

    assert reads == [1]
    assert all(seqs_of(parts) == [1, 2, 3] for parts in welcomes)


async def test_the_feed_adds_live_lines_and_drops_it_for_other_events(monkeypatch):
    reads = []
    heads = iter([3, 5])

    def read_snapshot(room_id):
        reads.append(room_id)
        return snapshot_of(range(1, next(heads) + 1))

    monkeypatch.setattr(welcome, "read_snapshot", read_snapshot)
    feed = RoomFeed(StubHub(), 1)
    await feed.welcome_parts(after=None, blocked=set(), head=0)

    feed.push_event(Delivery(4, None, message(4)), None)
    assert seqs_of(await feed.welcome_parts(after=None, blocked=set(), head=0)) == [1, 2, 3, 4]
    assert reads == [1]

    feed.push_event(Delivery(5, None, encode({"type": "notice", "seq": 5})), None)
    assert feed.snapshot is None
    assert (await feed.welcome_parts(after=None, blocked=set(), head=0)).history.last_seq == 5
    assert reads == [1, 1]


async def test_events_taken_in_while_it_is_read_are_added(monkeypatch):
    feed = RoomFeed(StubHub(), 1)

    def read_snapshot(room_id):
        # The database's head was 3; event 4 reached the feed while this was read.
        feed.recent.append((4, message(4)))
        return snapshot_of(range(1, 4))

    monkeypatch.setattr(welcome, "read_snapshot", read_snapshot)

    parts = await feed.welcome_parts(after=None, blocked=set(), head=0)

    assert seqs_of(parts) == [1, 2, 3, 4]
    assert parts.history.last_seq == 4


# Over the socket: what a viewer gets is what the database holds.


async def test_welcomes_from_the_snapshot_match_the_log(connect, room, host, viewer, outsider):
    first = await connect(room, viewer)
    await database_sync_to_async(lambda: [do_send_message(host, room_id=room.pk, body=f"l{i}") for i in range(3)])()
    await first.room_events(3)

    second = await connect(room, outsider)
    resumed = await connect(room, viewer, after=1)
    await database_sync_to_async(do_announce)(host, room_id=room.pk, body="Stream starts now")
    await first.room_events(1)
    third = await connect(room, outsider)

    assert [e["body"] for e in second.welcome["history"]] == ["l0", "l1", "l2"]
    assert [e["body"] for e in resumed.welcome["history"]] == ["l1", "l2"]
    assert [e["type"] for e in third.welcome["history"]] == ["message", "message", "message", "notice"]
    assert [e["body"] for e in third.welcome["pinned"]] == ["Stream starts now"]
    assert third.welcome["last_seq"] == 4


async def test_a_snapshot_behind_the_head_a_viewer_saw_is_not_used(monkeypatch):
    # Events 4 and 5 are stored, and still on their way to this process (or lost with
    # the channel layer): the viewer's history comes from the database.
    monkeypatch.setattr(welcome, "read_snapshot", lambda room_id: snapshot_of(range(1, 4)))
    from_the_database = welcome.WelcomeParts(room="{}", history=snapshot_of(range(1, 6)).parts(None).history, pinned=[])
    monkeypatch.setattr(welcome, "read_parts", lambda room_id, **kwargs: from_the_database)
    feed = RoomFeed(StubHub(), 1)

    assert (await feed.welcome_parts(after=None, blocked=set(), head=5)) is from_the_database
    assert seqs_of(await feed.welcome_parts(after=None, blocked=set(), head=3)) == [1, 2, 3]
