"""The room WebSocket over the whole ASGI application, in the embedded mode (in-memory layer).

Each client goes through the origin check, the session cookie and the auth middleware,
as a browser does; every frame it receives is checked against the protocol schema.
"""

import json
import time
from unittest import mock

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from conftest import make_user
from moderation.models import Ban, Block
from moderation.services import do_delete_message
from rooms import selectors
from rooms.models import Message, RoomEvent
from rooms.protocol import encode
from rooms.realtime import room_group
from rooms.services import do_send_message, do_update_room
from tests.support.schema import is_room_event

pytestmark = pytest.mark.django_db(transaction=True)


def brief(user, role="member"):
    return {"id": user.pk, "name": user.get_username(), "role": role}


@database_sync_to_async
def send_messages(room, author, count, *, start=0):
    # The trusted core: setup that neither rate limits nor slow mode should refuse.
    return [do_send_message(author, room_id=room.pk, body=f"line {start + i}") for i in range(count)]


@database_sync_to_async
def logged_events(room, after=0):
    return list(RoomEvent.objects.filter(room=room, seq__gt=after).order_by("seq").values_list("data", flat=True))


@database_sync_to_async
def messages_in(room):
    return list(Message.objects.filter(room=room).order_by("seq").values_list("body", "seq"))


@database_sync_to_async
def block(blocker, blocked):
    Block.objects.create(blocker=blocker, blocked=blocked)


async def next_non_presence(client, count):
    events = []
    while len(events) < count:
        event = await client.receive()
        if event["type"] != "presence":
            events.append(event)
    return events


def of_type(events, kind):
    found = [e for e in events if e["type"] == kind]
    assert len(found) == 1, f"expected one {kind!r} among {events}"
    return found[0]


# The welcome.


async def test_welcome_describes_the_room_the_viewer_the_roster_and_empty_history(connect, room, host, viewer):
    client = await connect(room, viewer)

    welcome = client.welcome
    assert welcome["room"] == {
        "slug": "main-stage",
        "title": "Main stage",
        "is_live": False,
        "slow_mode_seconds": 0,
        "slow_mode_auto": False,
        "hosts": [brief(host, "host")],
    }
    assert welcome["you"] == {**brief(viewer), "muted_until": None, "balance": 0, "blocked": []}
    assert welcome["roster"] == {"count": 1, "team": [], "audience": [brief(viewer)], "offset": 0}
    assert welcome["history"] == welcome["pinned"] == []
    assert (welcome["last_seq"], welcome["history_truncated"]) == (0, False)


async def test_welcome_history_is_the_logged_events_oldest_first(connect, room, host, viewer):
    await send_messages(room, host, 3)
    await database_sync_to_async(do_update_room)(host, room_id=room.pk, is_live=True)

    client = await connect(room, viewer)

    assert client.welcome["history"] == await logged_events(room)
    assert [e["seq"] for e in client.welcome["history"]] == [1, 2, 3, 4]
    assert client.welcome["last_seq"] == 4
    assert client.welcome["room"]["is_live"] is True


async def test_first_visit_history_is_the_latest_events_only(connect, room, host, viewer, settings):
    settings.CHAT_HISTORY_FIRST_VISIT = 3
    await send_messages(room, host, 5)

    client = await connect(room, viewer)

    assert [e["seq"] for e in client.welcome["history"]] == [3, 4, 5]
    assert (client.welcome["last_seq"], client.welcome["history_truncated"]) == (5, False)


async def test_welcome_for_a_host_lists_them_on_the_team(connect, room, host):
    client = await connect(room, host)

    assert client.welcome["you"]["role"] == "host"
    assert client.welcome["roster"] == {"count": 1, "team": [brief(host, "host")], "audience": [], "offset": 0}


async def test_welcome_for_staff_marks_them_staff(connect, room, staff):
    client = await connect(room, staff)
    assert client.welcome["you"] == {
        **brief(staff),
        "staff": True,
        "muted_until": None,
        "balance": 0,
        "blocked": [],
    }


async def test_anonymous_welcome_you_is_a_guest_with_nothing(connect, room):
    client = await connect(room)

    assert client.welcome["you"] == {
        "id": None,
        "name": None,
        "role": "guest",
        "muted_until": None,
        "balance": 0,
        "blocked": [],
    }
    assert client.welcome["roster"]["count"] == 1
    assert client.welcome["roster"]["audience"] == []


# Sending.


async def test_send_is_acked_with_id_and_seq_and_the_message_reaches_every_viewer(
    connect, room, viewer, outsider, broadcasts
):
    sender = await connect(room, viewer)
    other = await connect(room, outsider)

    await sender.send({"type": "send", "client_id": "c-1", "body": "  hello room  "})
    replies = await next_non_presence(sender, 2)

    ack = of_type(replies, "ack")
    message = await database_sync_to_async(Message.objects.get)(room=room)
    assert ack == {"type": "ack", "client_id": "c-1", "id": message.pk, "seq": 1}
    assert (message.body, message.seq, message.author_id) == ("hello room", 1, viewer.pk)
    event = of_type(replies, "message")
    assert event == {
        "type": "message",
        "seq": 1,
        "ts": event["ts"],
        "id": message.pk,
        "author": brief(viewer),
        "body": "hello room",
        "reply_to": None,
        "mentions": [],
        "client_id": "c-1",
        "emotes": [],
    }
    assert await other.expect("message") == event
    assert broadcasts == [event]


async def test_resending_a_client_id_gets_the_same_ack_and_no_second_message(
    connect, room, viewer, outsider, broadcasts
):
    sender = await connect(room, viewer)
    other = await connect(room, outsider)
    await sender.send({"type": "send", "client_id": "once", "body": "only once"})
    first = of_type(await next_non_presence(sender, 2), "ack")
    await other.expect("message")

    await sender.send({"type": "send", "client_id": "once", "body": "only once"})

    assert await sender.expect("ack") == first
    await sender.expect_nothing()
    await other.expect_nothing()
    assert await messages_in(room) == [("only once", 1)]
    assert broadcasts.seqs == [1]


async def test_reply_and_mentions_travel_with_the_message(connect, room, host, viewer, outsider):
    [original] = await send_messages(room, host, 1)
    client = await connect(room, viewer)

    await client.send(
        {"type": "send", "client_id": "r", "body": f"@{outsider.username} see this", "reply_to": original.pk}
    )
    event = of_type(await next_non_presence(client, 2), "message")

    assert event["reply_to"] == {
        "id": original.pk,
        "author": brief(host, "host"),
        "excerpt": "line 0",
        "deleted": False,
    }
    assert event["mentions"] == [brief(outsider)]


async def test_reply_to_a_missing_message_gets_not_found_with_client_id(connect, room, viewer, broadcasts):
    client = await connect(room, viewer)

    await client.send({"type": "send", "client_id": "r", "body": "re", "reply_to": 999_999})

    error = await client.expect("error")
    assert (error["code"], error["client_id"]) == ("not_found", "r")
    await client.expect_nothing()
    assert await messages_in(room) == []
    assert broadcasts == []


async def test_empty_body_gets_bad_request_and_the_client_id_can_be_used_again(connect, room, viewer):
    client = await connect(room, viewer)

    await client.send({"type": "send", "client_id": "c", "body": "   "})
    error = await client.expect("error")
    await client.send({"type": "send", "client_id": "c", "body": "with words"})
    replies = await next_non_presence(client, 2)

    assert (error["code"], error["client_id"]) == ("bad_request", "c")
    assert of_type(replies, "ack")["seq"] == 1
    assert await messages_in(room) == [("with words", 1)]


async def test_a_member_sending_too_fast_gets_rate_limited_with_retry_after(connect, room, viewer, broadcasts):
    client = await connect(room, viewer)

    for i in range(6):
        await client.send({"type": "send", "client_id": f"c{i}", "body": f"line {i}"})
    replies = [e for e in await next_non_presence(client, 11) if e["type"] in ("ack", "error")]

    assert [e["type"] for e in replies] == ["ack"] * 5 + ["error"]
    assert (replies[-1]["code"], replies[-1]["client_id"]) == ("rate_limited", "c5")
    assert 0 < replies[-1]["retry_after"] <= 5
    assert len(await messages_in(room)) == 5
    assert broadcasts.seqs == [1, 2, 3, 4, 5]


async def test_anonymous_send_gets_unauthenticated_with_its_client_id(connect, room, broadcasts):
    client = await connect(room)

    await client.send({"type": "send", "client_id": "anon-1", "body": "hi"})

    error = await client.expect("error")
    assert (error["code"], error["client_id"]) == ("unauthenticated", "anon-1")
    assert await messages_in(room) == []
    assert broadcasts == []


# Malformed frames.


@pytest.mark.parametrize(
    ("frame", "code", "client_id"),
    [
        ("not json at all", "bad_request", None),
        ("[1, 2]", "bad_request", None),
        ('"ping"', "bad_request", None),
        ('{"type": "dance", "client_id": "d1"}', "unknown_type", "d1"),
        ('{"client_id": "t1"}', "bad_request", "t1"),
        ('{"type": "send", "client_id": "s1", "body": 5}', "bad_request", "s1"),
        ('{"type": "send", "body": "no client id"}', "bad_request", None),
        ('{"type": "sync", "after": true, "client_id": "y1"}', "bad_request", "y1"),
        ('{"type": "ping", "client_id": 7}', "bad_request", None),
        ('{"type": "send", "client_id": "big", "body": "' + "é" * 4100 + '"}', "too_large", None),
    ],
)
async def test_a_malformed_frame_gets_an_error_and_the_connection_stays_open(
    connect, room, viewer, frame, code, client_id
):
    client = await connect(room, viewer)

    await client.send_text(frame)
    error = await client.expect("error")
    await client.send({"type": "ping", "ts": 1})

    assert error["code"] == code
    assert error.get("client_id") == client_id
    assert (await client.expect("pong"))["ts"] == 1


async def test_a_binary_frame_gets_bad_request_and_the_connection_stays_open(connect, room, viewer):
    client = await connect(room, viewer)

    await client.send_bytes(b'{"type": "ping"}')
    error = await client.expect("error")
    await client.send({"type": "ping", "ts": 2})

    assert error["code"] == "bad_request"
    assert "client_id" not in error
    assert (await client.expect("pong"))["ts"] == 2


# Ping, sync and resume.


async def test_ping_gets_pong_with_ts_echoed_and_the_room_last_seq(connect, room, host, viewer):
    client = await connect(room, viewer)
    await send_messages(room, host, 2)
    await client.room_events(2)

    await client.send({"type": "ping", "ts": {"sent": 1712345678901, "n": [1]}})

    assert await client.expect("pong") == {"type": "pong", "ts": {"sent": 1712345678901, "n": [1]}, "last_seq": 2}


async def test_pong_synced_and_roster_carry_the_commands_client_id(connect, room, viewer):
    client = await connect(room, viewer)

    await client.send({"type": "ping", "ts": 5, "client_id": "p"})
    pong = await client.expect("pong")
    await client.send({"type": "sync", "after": 0, "client_id": "s"})
    synced = await client.expect("synced")
    await client.send({"type": "roster", "client_id": "r"})
    roster = await client.expect("roster")

    assert (pong["client_id"], synced["client_id"], roster["client_id"]) == ("p", "s", "r")


async def test_sync_replays_the_events_after_n_as_a_batch_then_says_synced(connect, room, host, viewer):
    await send_messages(room, host, 4)
    client = await connect(room, viewer)

    await client.send({"type": "sync", "after": 1, "client_id": "s1"})
    replayed = await client.room_events(3)
    synced = await client.expect("synced")

    assert replayed == await logged_events(room, after=1)
    batches = [json.loads(f) for f in client.frames if json.loads(f)["type"] == "batch"]
    assert [[e["seq"] for e in b["events"]] for b in batches] == [[2, 3, 4]]
    assert synced == {"type": "synced", "last_seq": 4, "client_id": "s1"}
    await client.expect_nothing()


async def test_sync_with_nothing_new_only_says_synced(connect, room, host, viewer):
    await send_messages(room, host, 2)
    client = await connect(room, viewer)

    await client.send({"type": "sync", "after": 2})

    assert await client.expect("synced") == {"type": "synced", "last_seq": 2}


async def test_events_published_during_a_sync_reach_the_client_exactly_once(connect, room, host, viewer, monkeypatch):
    await send_messages(room, host, 2)
    client = await connect(room, viewer)
    real_replay = selectors.room_replay

    def replay_while_the_room_moves(room_id, **kwargs):
        # Three events commit and go out live while the replay is being read; the
        # pause lets the hub offer them to the (holding) viewer before the read.
        do_send_message(host, room_id=room.pk, body="during 1")
        do_send_message(host, room_id=room.pk, body="during 2")
        time.sleep(0.2)
        do_send_message(host, room_id=room.pk, body="during 3")
        return real_replay(room_id, **kwargs)

    monkeypatch.setattr(selectors, "room_replay", replay_while_the_room_moves)
    await client.send({"type": "sync", "after": 1})
    synced, before = await client.receive_until(lambda e: e["type"] == "synced", what="synced")
    await client.expect_nothing(timeout=0.5)

    assert [e["seq"] for e in before if is_room_event(e)] == [2, 3, 4, 5]
    assert synced["last_seq"] == 5
    assert [e["seq"] for e in client.events if is_room_event(e)] == [2, 3, 4, 5]


async def test_sync_past_the_resume_limit_is_paged(connect, room, host, viewer, settings):
    settings.CHAT_HISTORY_RESUME_MAX = 3
    await send_messages(room, host, 5)
    client = await connect(room, viewer)

    await client.send({"type": "sync", "after": 0})
    first_page = await client.room_events(3)
    first_synced = await client.expect("synced")
    await client.send({"type": "sync", "after": 3})
    second_page = await client.room_events(2)
    second_synced = await client.expect("synced")

    assert [e["seq"] for e in first_page] == [1, 2, 3]
    assert first_synced == {"type": "synced", "last_seq": 3, "truncated": True}
    assert [e["seq"] for e in second_page] == [4, 5]
    assert second_synced == {"type": "synced", "last_seq": 5}


async def test_resume_with_after_n_holds_exactly_the_later_events(connect, room, host, viewer):
    await send_messages(room, host, 5)

    client = await connect(room, viewer, after=2)

    assert client.welcome["history"] == await logged_events(room, after=2)
    assert [e["seq"] for e in client.welcome["history"]] == [3, 4, 5]
    assert (client.welcome["last_seq"], client.welcome["history_truncated"]) == (5, False)
    await client.expect_nothing()


async def test_resume_then_live_events_continue_without_a_gap(connect, room, host, viewer):
    await send_messages(room, host, 3)
    client = await connect(room, viewer, after=3)
    await send_messages(room, host, 2, start=3)

    live = await client.room_events(2)

    assert client.welcome["history"] == []
    assert [e["seq"] for e in live] == [4, 5]


async def test_resume_past_the_limit_is_truncated_and_live_events_wait_until_paged(
    connect, room, host, viewer, settings
):
    settings.CHAT_HISTORY_RESUME_MAX = 3
    await send_messages(room, host, 5)
    client = await connect(room, viewer, after=0)
    await send_messages(room, host, 1, start=5)
    await client.expect_nothing()

    await client.send({"type": "sync", "after": 3})
    rest = await client.room_events(3)
    synced = await client.expect("synced")
    await client.expect_nothing()

    assert [e["seq"] for e in client.welcome["history"]] == [1, 2, 3]
    assert client.welcome["history_truncated"] is True
    assert [e["seq"] for e in rest] == [4, 5, 6]
    assert synced["last_seq"] == 6
    assert client.room_seqs == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("query", ["after=garbage", "after=-1", "after=1.5", f"after={2**63}"])
async def test_resume_with_a_bad_after_gets_the_latest_history_and_bad_request(connect, room, host, viewer, query):
    await send_messages(room, host, 2)

    client = await connect(room, viewer, query=query)
    error = await client.expect("error")

    assert [e["seq"] for e in client.welcome["history"]] == [1, 2]
    assert error["code"] == "bad_request"
    assert "client_id" not in error


# The handshake.


async def test_unknown_room_is_accepted_then_closed_4404(connect, viewer):
    client = await connect("no-such-room", viewer, welcome=False)

    assert client.accepted
    assert await client.expect_close() == 4404
    assert not [e for e in client.events if e["type"] == "welcome"]


async def test_a_room_deleted_since_the_process_read_it_is_closed_4404(connect, room, viewer):
    first = await connect(room, viewer)
    await first.disconnect()
    await database_sync_to_async(room.delete)()

    # The process read the room a moment ago; its head tells it the room is gone.
    client = await connect(room.slug, viewer, welcome=False)

    assert await client.expect_close() == 4404
    assert not [e for e in client.events if e["type"] == "welcome"]


async def test_foreign_origin_is_refused_at_the_handshake(connect, room, viewer):
    client = await connect(room, viewer, origin="http://evil.example", welcome=False)
    assert client.accepted is False


async def test_missing_origin_is_refused_at_the_handshake(connect, room, viewer):
    client = await connect(room, viewer, origin=None, welcome=False)
    assert client.accepted is False


async def test_a_lookalike_origin_is_refused(connect, room):
    client = await connect(room, origin="http://127.0.0.1.evil.example", welcome=False)
    assert client.accepted is False


async def test_a_banned_user_is_accepted_then_closed_4403_before_any_welcome(connect, room, host, viewer):
    await database_sync_to_async(Ban.objects.create)(room=room, user=viewer, by=host, created_at=timezone.now())

    client = await connect(room, viewer, welcome=False)

    assert client.accepted
    assert await client.expect_close() == 4403
    assert client.events == []


# Presence and the roster.


async def test_a_second_viewer_joining_gives_the_first_a_presence_delta(connect, room, viewer, outsider):
    first = await connect(room, viewer)
    await connect(room, outsider)

    delta = await first.wait_for(
        lambda e: e["type"] == "presence" and brief(outsider) in e["joined"], what="a presence delta with the join"
    )

    assert delta["count"] == 2
    assert delta["left"] == []
    assert delta["team"] == []


async def test_a_viewer_leaving_gives_the_others_a_presence_delta(connect, room, viewer, outsider):
    first = await connect(room, viewer)
    second = await connect(room, outsider)
    await first.wait_for(lambda e: e["type"] == "presence" and e["count"] == 2, what="both present")

    await second.disconnect()
    delta = await first.wait_for(
        lambda e: e["type"] == "presence" and brief(outsider) in e["left"], what="a presence delta with the leave"
    )

    assert delta["count"] == 1
    assert brief(outsider) not in delta["joined"]


async def test_presence_team_lists_online_moderators_and_hosts(connect, room, host, moderator, viewer):
    audience = await connect(room, viewer)
    await connect(room, moderator)
    delta = await audience.wait_for(
        lambda e: e["type"] == "presence" and brief(moderator, "moderator") in e["joined"], what="the moderator"
    )
    await connect(room, host)
    later = await audience.wait_for(
        lambda e: e["type"] == "presence" and brief(host, "host") in e["joined"], what="the host"
    )

    assert delta["team"] == [brief(moderator, "moderator")]
    assert later["team"] == [brief(host, "host"), brief(moderator, "moderator")]
    assert later["count"] == 3


async def test_roster_counts_a_signed_in_user_with_two_connections_once(connect, room, viewer, outsider):
    first_tab = await connect(room, viewer)
    await connect(room, viewer)
    await connect(room, outsider)

    await first_tab.send({"type": "roster"})
    roster = await first_tab.expect("roster")

    assert roster == {
        "type": "roster",
        "count": 2,
        "team": [],
        "audience": [brief(outsider), brief(viewer)],
        "offset": 0,
    }


async def test_a_second_tab_is_not_announced_as_a_join(connect, room, viewer, outsider):
    other = await connect(room, outsider)
    await connect(room, viewer)
    await other.wait_for(lambda e: e["type"] == "presence" and brief(viewer) in e["joined"], what="the join")

    await connect(room, viewer)

    await other.expect_nothing(ignore=())


async def test_roster_counts_each_anonymous_connection_once(connect, room, viewer):
    client = await connect(room, viewer)
    await connect(room)
    await connect(room)

    await client.send({"type": "roster"})
    roster = await client.expect("roster")

    assert roster["count"] == 3
    assert roster["audience"] == [brief(viewer)]


async def test_an_anonymous_viewer_joining_changes_the_count_but_names_nobody(connect, room, viewer):
    first = await connect(room, viewer)
    await first.wait_for(lambda e: e["type"] == "presence" and e["count"] == 1, what="itself present")

    await connect(room)
    delta = await first.wait_for(lambda e: e["type"] == "presence" and e["count"] == 2, what="the anonymous join")

    assert (delta["joined"], delta["left"], delta["team"]) == ([], [], [])


async def test_roster_pages_the_audience_with_offset_and_limit(connect, room, host, viewer, outsider):
    extra = await database_sync_to_async(lambda: [make_user("amy_a"), make_user("zed_z")])()
    client = await connect(room, viewer)
    for user in [outsider, host, *extra]:
        await connect(room, user)

    await client.send({"type": "roster", "offset": 1, "limit": 2, "client_id": "page-2"})
    roster = await client.expect("roster")

    # The audience is sorted by name: amy_a, otto_outsider, vic_viewer, zed_z.
    assert roster == {
        "type": "roster",
        "count": 5,
        "team": [brief(host, "host")],
        "audience": [brief(outsider), brief(viewer)],
        "offset": 1,
        "client_id": "page-2",
    }


async def test_roster_with_a_limit_over_200_is_bad_request(connect, room, viewer):
    client = await connect(room, viewer)

    await client.send({"type": "roster", "limit": 201, "client_id": "big"})

    error = await client.expect("error")
    assert (error["code"], error["client_id"]) == ("bad_request", "big")


# Personal blocks.


async def test_a_blocked_authors_messages_are_hidden_live_for_the_blocker_only(connect, room, host, viewer, outsider):
    await block(viewer, outsider)
    blocker = await connect(room, viewer)
    bystander = await connect(room, host)

    await send_messages(room, outsider, 1)
    seen_by_bystander = await bystander.room_events(1)
    await blocker.expect_nothing()
    await send_messages(room, host, 1, start=1)

    assert blocker.welcome["you"]["blocked"] == [outsider.pk]
    assert [e["author"]["id"] for e in seen_by_bystander] == [outsider.pk]
    assert [(e["seq"], e["author"]["id"]) for e in await blocker.room_events(1)] == [(2, host.pk)]
    assert [e["seq"] for e in await bystander.room_events(1)] == [2]


async def test_a_frame_after_a_withheld_event_says_the_blocker_is_complete_up_to_it(
    connect, room, host, viewer, outsider
):
    # Without it the blocker's client would see seq 2 after 0, take the hole at 1 for
    # loss and go back to the log for an event it must never get.
    await block(viewer, outsider)
    blocker = await connect(room, viewer)

    await send_messages(room, outsider, 1)
    await blocker.expect_nothing()
    await send_messages(room, host, 1, start=1)
    (event,) = await blocker.room_events(1)

    frames = [json.loads(text) for text in blocker.frames[1:]]
    carrying_seq_2 = next(i for i, f in enumerate(frames) if 2 in [e.get("seq") for e in f.get("events", [f])])
    vouched = [f["last_seq"] for f in frames[: carrying_seq_2 + 1] if f["type"] == "batch" and "last_seq" in f]
    assert event["seq"] == 2
    # Said with the next frame the blocker gets, whatever it carries (here maybe a roster delta).
    assert vouched and vouched[0] >= 1


async def test_a_blocked_authors_messages_are_left_out_of_history_for_the_blocker_only(
    connect, room, host, viewer, outsider
):
    await send_messages(room, outsider, 1)
    await send_messages(room, host, 1, start=1)
    await send_messages(room, outsider, 1, start=2)
    await block(viewer, outsider)

    blocker = await connect(room, viewer)
    bystander = await connect(room, host)
    await blocker.send({"type": "sync", "after": 0})
    synced, _ = await blocker.receive_until(lambda e: e["type"] == "synced", what="synced")

    assert [e["seq"] for e in blocker.welcome["history"]] == [2]
    assert blocker.welcome["last_seq"] == 3
    assert [e["seq"] for e in bystander.welcome["history"]] == [1, 2, 3]
    assert [e["seq"] for e in blocker.events if is_room_event(e)] == [2]
    assert synced["last_seq"] == 3


# Fan-out.


async def test_events_published_quickly_arrive_in_seq_order_exactly_once(connect, room, host, viewer, outsider):
    watchers = [await connect(room, viewer), await connect(room, outsider)]

    await send_messages(room, host, 30)

    for watcher in watchers:
        events = await watcher.room_events(30)
        await watcher.expect_nothing()
        assert [e["seq"] for e in events] == list(range(1, 31))
        assert [e["body"] for e in events] == [f"line {i}" for i in range(30)]


async def publish_by_hand(room, seqs):
    """Publish stored events in the given order, as two server processes may."""
    layer = get_channel_layer()
    logged = {data["seq"]: data for data in await logged_events(room)}
    for seq in seqs:
        await layer.group_send(
            room_group(room.pk),
            {"type": "room.event", "room": room.pk, "seq": seq, "actor": None, "text": encode(logged[seq])},
        )


@database_sync_to_async
def send_messages_unpublished(room, author, count):
    # Stored, with the publication that follows the commit left out.
    with mock.patch("rooms.realtime.publish_room_event"):
        return [do_send_message(author, room_id=room.pk, body=f"late {i}") for i in range(count)]


async def test_events_that_reach_the_hub_out_of_order_go_out_in_seq_order(connect, room, host, viewer):
    client = await connect(room, viewer)
    await send_messages(room, host, 3)
    await client.room_events(3)
    await send_messages_unpublished(room, host, 2)

    await publish_by_hand(room, [5, 4])

    assert [e["seq"] for e in await client.room_events(2)] == [4, 5]
    await client.expect_nothing()


async def test_a_seq_that_never_arrives_is_waited_for_briefly_then_filled_by_sync(connect, room, host, viewer):
    client = await connect(room, viewer)
    await send_messages(room, host, 1)
    await client.room_events(1)
    await send_messages_unpublished(room, host, 2)

    await publish_by_hand(room, [3])
    [late] = await client.room_events(1)
    await client.send({"type": "ping", "ts": 0})
    pong = await client.expect("pong")
    await client.send({"type": "sync", "after": 1})
    filled = await client.room_events(2)

    assert late["seq"] == 3
    assert pong["last_seq"] == 3
    assert [e["seq"] for e in filled] == [2, 3]
    assert (await client.expect("synced"))["last_seq"] == 3


# Deleted messages.


async def test_history_and_replay_never_contain_a_deleted_body(connect, room, host, viewer):
    [message] = await send_messages(room, viewer, 1)
    await database_sync_to_async(do_delete_message)(host, message_id=message.pk)

    client = await connect(room, viewer)
    await client.send({"type": "sync", "after": 0})
    replayed = await client.room_events(2)

    for events in (client.welcome["history"], replayed):
        original, deletion = events
        assert (original["id"], original["body"], original["deleted"]) == (message.pk, "", True)
        assert (deletion["type"], deletion["id"], deletion["by"]) == (
            "message_deleted",
            message.pk,
            brief(host, "host"),
        )
    assert "line 0" not in "".join(client.frames)


async def test_a_deletion_reaches_live_viewers_as_a_message_deleted_event(connect, room, host, viewer, outsider):
    [message] = await send_messages(room, outsider, 1)
    client = await connect(room, viewer)

    await database_sync_to_async(do_delete_message)(host, message_id=message.pk)

    [event] = await client.room_events(1)
    assert (event["type"], event["seq"], event["id"], event["by"]) == (
        "message_deleted",
        2,
        message.pk,
        brief(host, "host"),
    )


# A viewer that falls behind.


async def test_a_viewer_that_never_pages_a_truncated_resume_is_closed_4409(connect, room, host, viewer, settings):
    settings.CHAT_HISTORY_RESUME_MAX = 2
    settings.CHAT_VIEWER_QUEUE_MAX = 3
    await send_messages(room, host, 3)
    client = await connect(room, viewer, after=0)

    await send_messages(room, host, 4, start=3)

    assert client.welcome["history_truncated"] is True
    assert await client.expect_close() == 4409
    assert [e for e in client.events if is_room_event(e)] == []


async def test_a_viewer_held_mid_sync_past_the_queue_bound_is_closed_4409(
    connect, room, host, viewer, settings, monkeypatch
):
    settings.CHAT_VIEWER_QUEUE_MAX = 3
    client = await connect(room, viewer)
    real_replay = selectors.room_replay

    def slow_replay(room_id, **kwargs):
        # The room moves faster than this replay is read: the viewer's outbox overflows.
        for i in range(5):
            do_send_message(host, room_id=room.pk, body=f"burst {i}")
        time.sleep(0.3)
        return real_replay(room_id, **kwargs)

    monkeypatch.setattr(selectors, "room_replay", slow_replay)
    await client.send({"type": "sync", "after": 0})

    assert await client.expect_close() == 4409


# Guarding the socket.


async def test_a_client_over_its_command_budget_gets_rate_limited_then_closed_4429_if_it_keeps_on(
    connect, room, viewer, settings
):
    settings.CHAT_COMMANDS_BURST = 3
    settings.CHAT_COMMANDS_PER_SECOND = 1
    settings.CHAT_FLOOD_STRIKES = 4
    client = await connect(room, viewer)

    for i in range(7):
        await client.send({"type": "ping", "ts": i})
    code = await client.expect_close()

    replies = [e for e in client.events if e["type"] != "presence"]
    assert [e["type"] for e in replies] == ["pong"] * 3 + ["error"] * 3
    assert {e["code"] for e in replies[3:]} == {"rate_limited"}
    assert all(0 < e["retry_after"] <= 1 for e in replies[3:])
    assert code == 4429


async def test_a_rate_limited_command_gets_an_error_carrying_its_client_id(connect, room, viewer, settings):
    settings.CHAT_COMMANDS_BURST = 1
    settings.CHAT_COMMANDS_PER_SECOND = 1
    client = await connect(room, viewer)

    await client.send({"type": "ping", "ts": 1, "client_id": "first"})
    await client.send({"type": "ping", "ts": 2, "client_id": "second"})
    pong = await client.expect("pong")
    error = await client.expect("error")

    assert pong["client_id"] == "first"
    assert (error["code"], error.get("client_id")) == ("rate_limited", "second")


async def test_a_user_past_the_connection_limit_is_accepted_then_closed_4429(connect, room, viewer, settings):
    settings.CHAT_MAX_CONNECTIONS_PER_USER = 2
    first = await connect(room, viewer)
    await connect(room, viewer)

    refused = await connect(room, viewer, welcome=False)
    code = await refused.expect_close()
    await first.disconnect()
    again = await connect(room, viewer)

    assert code == 4429
    assert not [e for e in refused.events if e["type"] == "welcome"]
    assert again.welcome["you"]["id"] == viewer.pk


async def test_logging_out_closes_that_sessions_sockets_only(connect, room, viewer):
    signed_out = await connect(room, viewer)
    other_session = await connect(room, viewer)

    def log_out(session_key):
        from django.conf import settings
        from django.test import Client

        browser = Client()
        browser.cookies[settings.SESSION_COOKIE_NAME] = session_key
        return browser.post("/accounts/logout/")

    response = await database_sync_to_async(log_out)(signed_out.session_key)

    assert response.status_code == 302
    assert await signed_out.expect_close() == 4403
    await other_session.send({"type": "ping", "ts": 1})
    assert (await other_session.expect("pong"))["ts"] == 1


async def test_a_password_change_closes_all_of_the_users_sockets(connect, room, viewer, outsider):
    tabs = [await connect(room, viewer), await connect(room, viewer)]
    bystander = await connect(room, outsider)

    def change_password():
        viewer.set_password("a-new-pass-phrase")
        viewer.save()

    await database_sync_to_async(change_password)()

    assert [await tab.expect_close() for tab in tabs] == [4403, 4403]
    await bystander.send({"type": "ping", "ts": 1})
    assert (await bystander.expect("pong"))["ts"] == 1


async def test_blocking_from_one_tab_hides_the_author_in_every_tab(connect, room, host, viewer, outsider):
    tab = await connect(room, viewer)
    other_tab = await connect(room, viewer)
    bystander = await connect(room, host)

    await tab.send({"type": "block", "user": outsider.username, "client_id": "b1"})
    ack = await tab.expect("ack")
    await send_messages(room, outsider, 1)
    await send_messages(room, host, 1, start=1)

    assert ack == {"type": "ack", "client_id": "b1", "blocked": [outsider.pk]}
    assert await database_sync_to_async(Block.objects.filter(blocker=viewer, blocked=outsider).exists)()
    assert [e["seq"] for e in await bystander.room_events(2)] == [1, 2]
    for viewer_tab in (tab, other_tab):
        assert [e["seq"] for e in await viewer_tab.room_events(1)] == [2]


def test_connection_ids_are_unique_and_carry_the_process_random_prefix():
    from rooms import connection

    ids = [connection.new_conn_id() for _ in range(1000)]

    assert len(set(ids)) == 1000
    # 128 random bits per process: two processes' ids do not meet in the shared store.
    assert all(i.startswith(connection._PROCESS_PREFIX) for i in ids)
    assert len(connection._PROCESS_PREFIX) == 32


def test_a_forked_server_process_names_its_connections_afresh(monkeypatch):
    from rooms import connection

    monkeypatch.setattr(connection, "_PROCESS_PREFIX", connection._PROCESS_PREFIX)
    monkeypatch.setattr(connection, "_connections", connection._connections)
    before = connection.new_conn_id()

    connection._new_process()  # what os.register_at_fork runs in the child

    after = connection.new_conn_id()
    assert after[:32] != before[:32] and after.endswith("0")
