"""Announcements (one room), site notices (every room) and the room's own status: who may
post them, what is validated, what lands in the log and what is published."""

from datetime import timedelta
from io import StringIO

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.core.management import CommandError, call_command
from django.test import TestCase

from rooms.errors import ChatError
from rooms.models import Notice, Room, RoomEvent
from rooms.protocol import iso
from rooms.selectors import pinned_events
from rooms.services import check_announce, check_update_room, do_announce, do_create_room, do_site_announce

pytestmark = pytest.mark.django_db


def run(action, *args, **kwargs):
    """Call a service the way a request does: its on-commit publishing runs as it returns."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return action(*args, **kwargs)


def refused(action, *args, **kwargs) -> ChatError:
    with pytest.raises(ChatError) as info:
        run(action, *args, **kwargs)
    return info.value


def brief(user, role="member", **extra):
    return {"id": user.pk, "name": user.get_username(), "role": role, **extra}


def without_ts(data):
    return {k: v for k, v in data.items() if k != "ts"}


@pytest.fixture
def side_room(outsider):
    return do_create_room(None, slug="side-stage", title="Side stage", host_username=outsider.username)


def logged(room, kind):
    return [e.data for e in RoomEvent.objects.filter(room=room, type=kind).order_by("seq")]


# Room announcements.


@pytest.mark.parametrize("who", ["moderator", "host", "staff"])
def test_team_and_staff_announce_to_the_room(request, room, who, broadcasts):
    actor = request.getfixturevalue(who)
    role = {"moderator": "moderator", "host": "host", "staff": "member"}[who]

    event = run(check_announce, actor, room_id=room.pk, body="  Giveaway at 9!  ", level="warning")

    notice = Notice.objects.get()
    expected = {
        "type": "notice",
        "seq": 1,
        "id": notice.pk,
        "scope": "room",
        "level": "warning",
        "body": "Giveaway at 9!",
        "by": brief(actor, role, **({"staff": True} if who == "staff" else {})),
        "pinned_until": iso(notice.pinned_until),
    }
    assert (event.type, event.seq, event.actor_id) == ("notice", 1, None)
    assert without_ts(event.data) == expected
    assert (notice.room, notice.level, notice.body, notice.by, notice.scope) == (
        room,
        "warning",
        "Giveaway at 9!",
        actor,
        "room",
    )
    # Two clock reads apart, so to the second.
    assert abs(notice.pinned_until - notice.created_at - timedelta(seconds=120)) < timedelta(seconds=1)
    assert [without_ts(e) for e in broadcasts] == [expected]


@pytest.mark.parametrize(("who", "code"), [("viewer", "forbidden"), ("anonymous", "unauthenticated")])
def test_members_and_guests_cannot_announce(request, room, who, code, broadcasts):
    actor = AnonymousUser() if who == "anonymous" else request.getfixturevalue(who)

    assert refused(check_announce, actor, room_id=room.pk, body="Free coins!", level="info").code == code
    assert not Notice.objects.exists()
    assert Room.objects.get(pk=room.pk).last_seq == 0
    assert broadcasts == []


def test_host_of_another_room_cannot_announce_here(room, side_room, outsider):
    assert refused(check_announce, outsider, room_id=room.pk, body="Come to my room", level="info").code == "forbidden"
    assert not Notice.objects.exists()


@pytest.mark.parametrize(
    ("body", "level"),
    [("", "info"), ("   ", "info"), ("x" * 501, "info"), (None, "info"), ("Hello", "urgent"), ("Hello", "")],
    ids=["empty", "blank", "too-long", "none", "unknown-level", "empty-level"],
)
def test_announcement_body_and_level_are_validated(room, moderator, body, level, broadcasts):
    error = refused(check_announce, moderator, room_id=room.pk, body=body, level=level)

    assert error.code == "bad_request"
    assert not Notice.objects.exists()
    assert Room.objects.get(pk=room.pk).last_seq == 0
    assert broadcasts == []


def test_announcement_of_500_characters_is_accepted(room, moderator):
    event = run(check_announce, moderator, room_id=room.pk, body="x" * 500, level="info")

    assert len(event.data["body"]) == 500


def test_announcement_to_an_unknown_room_is_not_found(moderator):
    assert refused(check_announce, moderator, room_id=424242, body="Hello", level="info").code == "not_found"


def test_announcement_stays_pinned_for_the_configured_time(room, moderator, settings):
    run(check_announce, moderator, room_id=room.pk, body="Pinned", level="info")
    settings.CHAT_NOTICE_PIN_SECONDS = 0
    run(check_announce, moderator, room_id=room.pk, body="Not pinned", level="info")

    assert [e["body"] for e in pinned_events(room.pk, blocked=set())] == ["Pinned"]
    assert Notice.objects.get(body="Not pinned").pinned_until is None


def test_blocking_the_announcer_never_hides_the_notice(room, moderator):
    run(check_announce, moderator, room_id=room.pk, body="House rules", level="info")

    assert [e["body"] for e in pinned_events(room.pk, blocked={moderator.pk})] == ["House rules"]


# Site notices.


def test_site_notice_is_appended_to_every_rooms_log(room, side_room, staff, broadcasts):
    notice = run(do_site_announce, staff, body="Maintenance at 02:00 UTC", level="warning")

    assert (notice.room, notice.scope, notice.by, notice.level) == (None, "site", staff, "warning")
    for each in (room, side_room):
        [event] = logged(each, "notice")
        assert (event["id"], event["scope"], event["level"], event["body"]) == (
            notice.pk,
            "site",
            "warning",
            "Maintenance at 02:00 UTC",
        )
        # The notice takes each room's next seq in that room's own numbering.
        assert event["seq"] == Room.objects.get(pk=each.pk).last_seq
    assert sorted((c.room_id, c.event["scope"]) for c in broadcasts.calls) == sorted(
        [(room.pk, "site"), (side_room.pk, "site")]
    )


def test_site_notice_by_staff_shows_them_in_each_rooms_role(room, side_room, staff, outsider):
    run(do_site_announce, staff, body="Hello everyone", level="info")

    for each in (room, side_room):
        assert logged(each, "notice")[0]["by"] == brief(staff, "member", staff=True)


def test_site_notice_validates_like_an_announcement(room, staff, broadcasts):
    with pytest.raises(ChatError) as info:
        run(do_site_announce, staff, body="  ", level="info")

    assert info.value.code == "bad_request"
    assert not Notice.objects.exists()
    assert broadcasts == []


def test_announce_site_command_posts_to_every_room_with_no_author(room, side_room, broadcasts):
    out = StringIO()

    with TestCase.captureOnCommitCallbacks(execute=True):
        call_command("announce", "--site", "--level", "warning", "Back in five", stdout=out)

    assert "every room" in out.getvalue()
    notice = Notice.objects.get()
    assert (notice.scope, notice.by, notice.level, notice.body) == ("site", None, "warning", "Back in five")
    for each in (room, side_room):
        [event] = logged(each, "notice")
        assert (event["scope"], event["by"], event["id"]) == ("site", None, notice.pk)
    assert len(broadcasts.of_type("notice")) == 2


def test_announce_room_command_posts_to_that_room_only(room, side_room, broadcasts):
    with TestCase.captureOnCommitCallbacks(execute=True):
        call_command("announce", "--room", room.slug, "Stream starts soon", stdout=StringIO())

    [event] = logged(room, "notice")
    assert (event["scope"], event["level"], event["body"], event["by"]) == ("room", "info", "Stream starts soon", None)
    assert logged(side_room, "notice") == []
    assert [e["type"] for e in broadcasts] == ["notice"]


@pytest.mark.parametrize(
    "args",
    [
        ["--room", "no-such-room", "Hello"],
        ["--room", "main-stage", "   "],
        ["--site", "x" * 501],
        ["Hello"],
        ["--room", "main-stage", "--site", "Hello"],
    ],
    ids=["unknown-room", "blank", "too-long", "neither-room-nor-site", "both"],
)
def test_announce_command_refuses_with_command_error_and_posts_nothing(room, args):
    with pytest.raises(CommandError):
        call_command("announce", *args, stdout=StringIO(), stderr=StringIO())

    assert not Notice.objects.exists()
    assert not RoomEvent.objects.exists()


def test_do_announce_without_an_author_is_a_system_notice(room, broadcasts):
    event = run(do_announce, None, room_id=room.pk, body="Automated notice", level="info")

    assert event.data["by"] is None
    assert broadcasts[0]["by"] is None


# Room status.


def test_host_going_live_sets_live_since_and_publishes_a_room_event(room, host, broadcasts):
    event = run(check_update_room, host, room_id=room.pk, is_live=True, title="  Speedrun night  ")

    assert without_ts(event.data) == {
        "type": "room",
        "seq": 1,
        "title": "Speedrun night",
        "is_live": True,
        "slow_mode_seconds": 0,
        "slow_mode_auto": False,
    }
    room.refresh_from_db()
    assert (room.title, room.is_live) == ("Speedrun night", True)
    assert room.live_since is not None
    assert [without_ts(e) for e in broadcasts] == [without_ts(event.data)]


def test_room_event_always_carries_the_current_slow_mode(room, host, moderator):
    from moderation.services import check_set_slow_mode

    run(check_set_slow_mode, moderator, room_id=room.pk, seconds=20)

    event = run(check_update_room, host, room_id=room.pk, title="Chill")

    assert (event.data["title"], event.data["is_live"], event.data["slow_mode_seconds"]) == ("Chill", False, 20)


def test_staying_live_keeps_live_since_and_ending_keeps_the_last_start(room, host):
    run(check_update_room, host, room_id=room.pk, is_live=True)
    started = Room.objects.get(pk=room.pk).live_since

    run(check_update_room, host, room_id=room.pk, is_live=True)
    assert Room.objects.get(pk=room.pk).live_since == started
    run(check_update_room, host, room_id=room.pk, is_live=False)

    room.refresh_from_db()
    assert (room.is_live, room.live_since) == (False, started)


def test_staff_may_change_any_room(room, staff):
    event = run(check_update_room, staff, room_id=room.pk, title="Renamed by staff")

    assert event.data["title"] == "Renamed by staff"


@pytest.mark.parametrize(
    ("who", "code"), [("viewer", "forbidden"), ("moderator", "forbidden"), ("anonymous", "unauthenticated")]
)
def test_only_hosts_and_staff_change_the_room(request, room, who, code, broadcasts):
    actor = AnonymousUser() if who == "anonymous" else request.getfixturevalue(who)

    assert refused(check_update_room, actor, room_id=room.pk, is_live=True).code == code
    room.refresh_from_db()
    assert (room.is_live, room.live_since, room.last_seq) == (False, None, 0)
    assert broadcasts == []


@pytest.mark.parametrize("title", ["", "   ", "x" * 201])
def test_room_title_must_be_1_to_200_characters(room, host, title):
    assert refused(check_update_room, host, room_id=room.pk, title=title).code == "bad_request"
    room.refresh_from_db()
    assert (room.title, room.last_seq) == ("Main stage", 0)


# Over the socket.


async def until(client, kind, **fields):
    def matches(event):
        return event["type"] == kind and all(event.get(k) == v for k, v in fields.items())

    for event in client.events:
        if matches(event):
            return event
    event, _ = await client.receive_until(matches, what=f"a {kind!r} event with {fields}")
    return event


@pytest.mark.django_db(transaction=True)
async def test_announce_and_room_status_over_the_socket(connect, room, host, moderator, viewer):
    hana = await connect(room, host)
    mod = await connect(room, moderator)
    vic = await connect(room, viewer)

    await mod.send({"type": "announce", "body": "Be nice", "level": "info", "client_id": "a-1"})
    await hana.send({"type": "room_status", "is_live": True, "title": "Live now", "client_id": "r-1"})
    await vic.send({"type": "announce", "body": "Me too", "client_id": "a-2"})
    await vic.send({"type": "room_status", "is_live": False, "client_id": "r-2"})

    announced = await until(mod, "ack", client_id="a-1")
    status = await until(hana, "ack", client_id="r-1")
    notice = await until(vic, "notice", seq=announced["seq"])
    assert (notice["scope"], notice["body"], notice["by"]) == ("room", "Be nice", brief(moderator, "moderator"))
    live = await until(vic, "room", seq=status["seq"])
    assert (live["title"], live["is_live"], live["slow_mode_seconds"]) == ("Live now", True, 0)
    assert (await until(vic, "error", client_id="a-2"))["code"] == "forbidden"
    assert (await until(vic, "error", client_id="r-2"))["code"] == "forbidden"
    fresh = await database_sync_to_async(Room.objects.get)(pk=room.pk)
    assert (fresh.is_live, fresh.title, fresh.last_seq) == (True, "Live now", 2)
    assert await database_sync_to_async(Notice.objects.count)() == 1
