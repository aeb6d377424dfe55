"""The readable feed: past a rate people can read, member lines are left out of live
feeds with a count, and everything that matters to a viewer still reaches it."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async

from conftest import make_user
from rooms.delivery.hub import RoomFeed
from rooms.delivery.stream import Delivery, ViewerStream
from rooms.protocol import encode
from rooms.services import do_announce, do_send_message


class StubHub:
    def spawn(self, coro) -> None:
        asyncio.ensure_future(coro)


def line(seq: int, author: int, *, concerns=(), skippable=True) -> Delivery:
    text = encode({"type": "message", "seq": seq, "author": {"id": author}})
    return Delivery(seq, author, text, skippable, tuple(concerns) or (author,))


def notice(seq: int) -> Delivery:
    return Delivery(seq, None, encode({"type": "notice", "seq": seq}))


def thin(deliveries, rate, settings):
    settings.CHAT_READABLE_MESSAGES_PER_SECOND = rate
    feed = RoomFeed(StubHub(), 1)
    # As the feed takes them in.
    return feed._thin([feed._decide(d) for d in deliveries], deliveries[-1].seq)


def seqs(frame) -> list[int]:
    doc = json.loads(frame.text)
    return [e["seq"] for e in doc.get("events", [doc])]


def test_a_room_within_the_readable_rate_is_not_thinned(settings):
    assert thin([line(1, 10), line(2, 11), notice(3)], 5, settings) is None


def test_past_the_rate_member_lines_are_left_out_and_priority_events_kept(settings):
    deliveries = [line(1, 10), line(2, 11), notice(3), line(4, 12), line(5, 13, skippable=False), line(6, 14)]

    thinned = thin(deliveries, 2, settings)

    assert [d.seq for d in thinned.kept] == [1, 2, 3, 5]
    assert thinned.skipped == 2
    doc = json.loads(thinned.frame.text)
    assert (doc["last_seq"], doc["skipped"]) == (6, 2)
    assert [e["seq"] for e in doc["events"]] == [1, 2, 3, 5]
    assert {user: [d.seq for d in ds] for user, ds in thinned.for_user.items()} == {12: [4], 14: [6]}


def test_turned_off_nothing_is_left_out(settings):
    assert thin([line(n, 10) for n in range(1, 50)], 0, settings) is None


def test_a_viewer_gets_the_shared_thinned_frame_vouching_for_the_whole_flush(settings):
    deliveries = [line(1, 10), line(2, 11), line(3, 12)]
    thinned = thin(deliveries, 1, settings)
    stream = ViewerStream(blocked=set(), queue_max=100, user_id=99)
    stream.release(0)

    frame = stream.offer(deliveries, None, {10, 11, 12}, 1, 3, True, thinned)

    assert frame is thinned.frame
    assert (stream.last_seq, stream.complete_seq) == (3, 3)


def test_the_author_and_the_people_a_skipped_line_concerns_still_get_it(settings):
    deliveries = [line(1, 10), line(2, 11, concerns=(11, 42)), line(3, 12)]
    thinned = thin(deliveries, 1, settings)
    mentioned = ViewerStream(blocked=set(), queue_max=100, user_id=42)
    mentioned.release(0)

    frame = mentioned.offer(deliveries, None, {10, 11, 12}, 1, 3, True, thinned)

    doc = json.loads(frame.text)
    assert [e["seq"] for e in doc["events"]] == [1, 2]
    assert (doc["last_seq"], doc["skipped"]) == (3, 1)


def test_a_viewer_with_a_hole_before_is_not_vouched_for_past_it(settings):
    deliveries = [line(5, 10), line(6, 11), line(7, 12)]
    thinned = thin(deliveries, 1, settings)
    stream = ViewerStream(blocked=set(), queue_max=100, user_id=99)
    stream.release(3)  # it has 1..3; seq 4 never reached it

    frame = stream.offer(deliveries, None, {10, 11, 12}, 5, 7, True, thinned)

    doc = json.loads(frame.text)
    assert [e["seq"] for e in doc["events"]] == [5]
    assert doc["last_seq"] == 3  # complete only up to before the hole: the client fills it from the log


def test_a_flush_of_skipped_lines_only_still_tells_the_viewer_what_it_missed(settings):
    stream = ViewerStream(blocked=set(), queue_max=100, user_id=99)
    stream.release(0)
    first = [line(1, 10), line(2, 11)]
    settings.CHAT_READABLE_MESSAGES_PER_SECOND = 1
    feed = RoomFeed(StubHub(), 1)
    feed.readable = 0
    thinned = feed._thin([feed._decide(d) for d in first], 2)

    frame = stream.offer(first, None, {10, 11}, 1, 2, True, thinned)

    assert json.loads(frame.text) == {"type": "batch", "events": [], "last_seq": 2, "skipped": 2}
    assert (stream.last_seq, stream.complete_seq) == (2, 2)


# Over the socket.


@pytest.mark.django_db(transaction=True)
async def test_a_viewer_of_a_room_too_fast_to_read_is_told_how_many_lines_it_missed(connect, room, host, settings):
    settings.CHAT_READABLE_MESSAGES_PER_SECOND = 2
    viewer_user = await database_sync_to_async(make_user)("rita_reader")
    chatters = [await database_sync_to_async(make_user)(f"chatter{i}") for i in range(6)]
    reader = await connect(room, viewer_user)

    @database_sync_to_async
    def burst():
        for i, author in enumerate(chatters):
            do_send_message(author, room_id=room.pk, body=f"line {i}")
        do_send_message(chatters[0], room_id=room.pk, body="hey @rita_reader")
        do_announce(host, room_id=room.pk, body="Stream starts now")
        do_send_message(host, room_id=room.pk, body="host speaking")

    await burst()
    last = 9
    events = []
    while not events or max(e.get("seq", 0) for e in events) < last:
        events.append(await reader.receive())
    skipped_frames = [json.loads(f) for f in reader.frames if '"skipped"' in f]

    kinds = [(e["type"], e.get("body")) for e in events if e.get("seq")]
    assert ("notice", "Stream starts now") in kinds
    assert ("message", "host speaking") in kinds
    assert ("message", "hey @rita_reader") in kinds
    member_lines = [body for kind, body in kinds if kind == "message" and body.startswith("line")]
    assert len(member_lines) < 6
    assert skipped_frames and sum(f["skipped"] for f in skipped_frames) == 6 - len(member_lines)
    assert skipped_frames[-1]["last_seq"] <= last
