"""Moderation services: what each action returns, stores, audits and publishes, and how
a sanction changes what the target may do."""

import json
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db.models import F
from django.test import Client, TestCase
from django.utils import timezone

from moderation import limits, selectors
from moderation import services as moderation
from moderation.models import AuditEntry, Ban, Block, Mute
from rooms import realtime
from rooms.errors import BadRequest, ChatError, NotFound, Unauthenticated
from rooms.models import Message, Room, RoomEvent
from rooms.protocol import iso
from rooms.selectors import room_history, viewer_blocks
from rooms.services import check_send_message

pytestmark = pytest.mark.django_db

TWO_WEEKS = 1_209_600


def brief(user, role="member", **extra):
    return {"id": user.pk, "name": user.get_username(), "role": role, **extra}


def without_ts(data):
    return {k: v for k, v in data.items() if k != "ts"}


def logged(room, seq):
    return RoomEvent.objects.get(room=room, seq=seq).data


def snapshot(room):
    """Everything a refused action must leave as it was."""
    room.refresh_from_db()
    return (
        room.last_seq,
        room.slow_mode_seconds,
        list(Mute.objects.order_by("pk").values_list("pk", "until", "ended_at")),
        list(Ban.objects.order_by("pk").values_list("pk", "until", "ended_at")),
        list(Message.objects.order_by("pk").values_list("pk", "deleted_at")),
        AuditEntry.objects.count(),
        Block.objects.count(),
    )


def run(action, *args, **kwargs):
    """Call a service the way a request does: its on-commit publishing runs as it returns."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return action(*args, **kwargs)


def refused(action, *args, **kwargs) -> ChatError:
    with pytest.raises(ChatError) as info:
        run(action, *args, **kwargs)
    return info.value


def send(user, room, body="hello", client_id=None):
    return run(check_send_message, user, room_id=room.pk, body=body, client_id=client_id)


# Mute.


def test_mute_stores_an_expiring_mute_audits_it_and_publishes_the_next_seq(room, moderator, viewer, broadcasts):
    send(viewer, room, "first")

    event = run(moderation.check_mute, moderator, room_id=room.pk, user=viewer.pk, seconds=600, reason=" spam ")

    mute = Mute.objects.get()
    expected = {
        "type": "moderation",
        "seq": 2,
        "action": "mute",
        "target": brief(viewer),
        "by": brief(moderator, "moderator"),
        "until": iso(mute.until),
        "seconds": 600,
        "reason": "spam",
    }
    assert (event.type, event.seq, event.actor_id) == ("moderation", 2, None)
    assert without_ts(event.data) == expected
    assert (mute.room, mute.user, mute.by, mute.reason, mute.ended_at) == (room, viewer, moderator, "spam", None)
    assert mute.until - mute.created_at == timedelta(seconds=600)
    room.refresh_from_db()
    assert room.last_seq == 2
    audit = AuditEntry.objects.get()
    assert (audit.room, audit.actor, audit.action, audit.target) == (room, moderator, "mute", viewer)
    assert (audit.reason, audit.seconds, audit.until) == ("spam", 600, mute.until)
    assert [without_ts(e) for e in broadcasts.of_type("moderation")] == [expected]
    assert broadcasts.calls[-1].close_user is None


def test_muting_again_ends_the_previous_mute_and_starts_a_new_one(room, moderator, viewer):
    run(moderation.check_mute, moderator, room_id=room.pk, user=viewer.pk, seconds=600)
    run(moderation.check_mute, moderator, room_id=room.pk, user=viewer.pk, seconds=60, reason="shorter")

    first, second = Mute.objects.order_by("pk")
    assert first.ended_at is not None and first.ended_by == moderator
    assert second.ended_at is None and second.reason == "shorter"
    assert selectors.active_mute(room.pk, viewer.pk) == second
    assert AuditEntry.objects.filter(action="mute").count() == 2


def test_mute_accepts_a_user_name_and_the_two_week_maximum(room, moderator, viewer):
    event = run(moderation.check_mute, moderator, room_id=room.pk, user=viewer.username, seconds=TWO_WEEKS)

    assert event.data["seconds"] == TWO_WEEKS
    assert Mute.objects.get().user == viewer


def test_muted_viewer_gets_muted_error_with_retry_after_and_nothing_is_stored(room, moderator, viewer, broadcasts):
    run(moderation.check_mute, moderator, room_id=room.pk, user=viewer.pk, seconds=300)
    before = snapshot(room)

    error = refused(send, viewer, room, "can you hear me", "c-1")

    assert error.code == "muted"
    assert 290 < error.retry_after <= 300
    assert snapshot(room) == before
    assert not Message.objects.exists()
    assert broadcasts.of_type("message") == []


def test_muted_user_may_send_again_once_the_mute_expires(room, moderator, viewer):
    run(moderation.check_mute, moderator, room_id=room.pk, user=viewer.pk, seconds=300)
    # Time travel: the mute ran out a second ago.
    Mute.objects.update(until=timezone.now() - timedelta(seconds=1))

    message = send(viewer, room, "back again")

    assert message.body == "back again"
    assert selectors.active_mute(room.pk, viewer.pk) is None
    assert selectors.active_mute(room.pk, viewer.pk) is None


def test_a_mute_in_one_room_does_not_silence_another(room, moderator, viewer, outsider):
    from rooms.services import do_create_room

    other = do_create_room(None, slug="side-stage", title="Side stage", host_username=outsider.username)
    run(moderation.check_mute, moderator, room_id=room.pk, user=viewer.pk, seconds=300)

    assert refused(send, viewer, room).code == "muted"
    assert send(viewer, other, "fine over here").room == other


def test_unmute_ends_the_mute_early_and_publishes_it(room, moderator, viewer, broadcasts):
    run(moderation.check_mute, moderator, room_id=room.pk, user=viewer.pk, seconds=300)

    event = run(moderation.check_unmute, moderator, room_id=room.pk, user=viewer.pk)

    assert without_ts(event.data) == {
        "type": "moderation",
        "seq": 2,
        "action": "unmute",
        "target": brief(viewer),
        "by": brief(moderator, "moderator"),
        "until": None,
        "seconds": None,
        "reason": "",
    }
    mute = Mute.objects.get()
    assert mute.ended_at is not None and mute.ended_by == moderator
    assert list(AuditEntry.objects.order_by("pk").values_list("action", flat=True)) == ["mute", "unmute"]
    assert [e["action"] for e in broadcasts.of_type("moderation")] == ["mute", "unmute"]
    assert send(viewer, room, "thanks").pk


def test_unmute_of_someone_not_muted_is_not_found_and_changes_nothing(room, moderator, viewer, broadcasts):
    before = snapshot(room)

    error = refused(moderation.check_unmute, moderator, room_id=room.pk, user=viewer.pk)

    assert error.code == "not_found"
    assert snapshot(room) == before
    assert broadcasts == []


def test_unmute_after_the_mute_ran_out_is_not_found(room, moderator, viewer):
    run(moderation.check_mute, moderator, room_id=room.pk, user=viewer.pk, seconds=60)
    Mute.objects.update(until=timezone.now() - timedelta(seconds=1))

    assert refused(moderation.check_unmute, moderator, room_id=room.pk, user=viewer.pk).code == "not_found"


@pytest.mark.parametrize("user_ref", [987654, "nobody_here"], ids=["id", "name"])
def test_mute_of_an_unknown_user_is_not_found_and_changes_nothing(room, moderator, user_ref, broadcasts):
    before = snapshot(room)

    error = refused(moderation.check_mute, moderator, room_id=room.pk, user=user_ref, seconds=60)

    assert isinstance(error, NotFound)
    assert snapshot(room) == before
    assert broadcasts == []


@pytest.mark.parametrize(
    "seconds",
    [0, -1, TWO_WEEKS + 1, 1.5, "60", True, None],
    ids=["zero", "negative", "over-2-weeks", "float", "str", "bool", "none"],
)
def test_mute_with_bad_seconds_is_bad_request_and_changes_nothing(room, moderator, viewer, seconds, broadcasts):
    before = snapshot(room)

    error = refused(moderation.check_mute, moderator, room_id=room.pk, user=viewer.pk, seconds=seconds)

    assert isinstance(error, BadRequest)
    assert snapshot(room) == before
    assert broadcasts == []


def test_refused_remute_leaves_the_running_mute_in_place(room, moderator, viewer):
    run(moderation.check_mute, moderator, room_id=room.pk, user=viewer.pk, seconds=600)
    before = snapshot(room)

    error = refused(moderation.check_mute, moderator, room_id=room.pk, user=viewer.pk, seconds=60, reason="x" * 201)

    assert isinstance(error, BadRequest)
    assert snapshot(room) == before
    assert selectors.active_mute(room.pk, viewer.pk) is not None


def test_anonymous_cannot_mute(room, viewer):
    error = refused(moderation.check_mute, AnonymousUser(), room_id=room.pk, user=viewer.pk, seconds=60)

    assert isinstance(error, Unauthenticated)
    assert not Mute.objects.exists()


def test_moderation_in_an_unknown_room_is_not_found(moderator, viewer):
    assert refused(moderation.check_mute, moderator, room_id=424242, user=viewer.pk, seconds=60).code == "not_found"
    assert refused(moderation.check_set_slow_mode, moderator, room_id=424242, seconds=5).code == "not_found"


# Kick.


def test_kick_publishes_an_event_that_closes_the_target_with_4000(room, moderator, viewer, broadcasts):
    event = run(moderation.check_kick, moderator, room_id=room.pk, user=viewer.pk, reason="cool off")

    assert without_ts(event.data) == {
        "type": "moderation",
        "seq": 1,
        "action": "kick",
        "target": brief(viewer),
        "by": brief(moderator, "moderator"),
        "until": None,
        "seconds": None,
        "reason": "cool off",
    }
    audit = AuditEntry.objects.get()
    assert (audit.action, audit.actor, audit.target, audit.reason) == ("kick", moderator, viewer, "cool off")
    assert not Mute.objects.exists() and not Ban.objects.exists()
    assert broadcasts.calls[-1].close_user == (viewer.pk, 4000)
    # A kick is not a sanction: the viewer may come back and chat.
    assert send(viewer, room, "I'm back").pk


# Ban.


def test_timed_ban_stores_the_ban_closes_the_target_with_4403_and_blocks_sending(room, host, viewer, broadcasts):
    event = run(moderation.check_ban, host, room_id=room.pk, user=viewer.pk, seconds=3600, reason="abuse")

    ban = Ban.objects.get()
    assert without_ts(event.data) == {
        "type": "moderation",
        "seq": 1,
        "action": "ban",
        "target": brief(viewer),
        "by": brief(host, "host"),
        "until": iso(ban.until),
        "seconds": 3600,
        "reason": "abuse",
    }
    assert ban.until - ban.created_at == timedelta(seconds=3600)
    assert (ban.user, ban.by, ban.ended_at) == (viewer, host, None)
    audit = AuditEntry.objects.get()
    assert (audit.action, audit.seconds, audit.until) == ("ban", 3600, ban.until)
    assert broadcasts.calls[-1].close_user == (viewer.pk, 4403)
    error = refused(send, viewer, room, "let me in")
    assert error.code == "banned"
    assert not Message.objects.exists()


def test_permanent_ban_has_no_end(room, host, viewer, broadcasts):
    event = run(moderation.check_ban, host, room_id=room.pk, user=viewer.pk)

    ban = Ban.objects.get()
    assert ban.until is None and ban.is_permanent
    assert (event.data["until"], event.data["seconds"]) == (None, None)
    assert selectors.active_ban(room.pk, viewer.pk, now=timezone.now() + timedelta(days=3650)) == ban
    assert refused(send, viewer, room).code == "banned"
    assert broadcasts.calls[-1].close_user == (viewer.pk, 4403)


def test_banned_user_may_send_again_once_a_timed_ban_expires(room, host, viewer):
    run(moderation.check_ban, host, room_id=room.pk, user=viewer.pk, seconds=60)
    Ban.objects.update(until=timezone.now() - timedelta(seconds=1))

    assert send(viewer, room, "served my time").pk


def test_unban_ends_the_ban_audits_and_publishes_it(room, host, viewer, broadcasts):
    run(moderation.check_ban, host, room_id=room.pk, user=viewer.pk)

    event = run(moderation.check_unban, host, room_id=room.pk, user=viewer.username)

    assert (event.data["action"], event.data["target"], event.data["by"]) == (
        "unban",
        brief(viewer),
        brief(host, "host"),
    )
    ban = Ban.objects.get()
    assert ban.ended_at is not None and ban.ended_by == host
    assert list(AuditEntry.objects.order_by("pk").values_list("action", flat=True)) == ["ban", "unban"]
    assert [e["action"] for e in broadcasts.of_type("moderation")] == ["ban", "unban"]
    # Lifting a ban closes nobody.
    assert broadcasts.calls[-1].close_user is None
    assert send(viewer, room, "thank you").pk


def test_unban_of_someone_not_banned_is_not_found(room, host, viewer, broadcasts):
    before = snapshot(room)

    assert refused(moderation.check_unban, host, room_id=room.pk, user=viewer.pk).code == "not_found"
    assert snapshot(room) == before
    assert broadcasts == []


@pytest.mark.parametrize(
    "seconds",
    [0, -5, 1.5, "3600", True, 10 * 365 * 24 * 3600 + 1],
    ids=["zero", "negative", "float", "str", "bool", "over-10-years"],
)
def test_ban_with_bad_seconds_is_bad_request_and_changes_nothing(room, host, viewer, seconds, broadcasts):
    before = snapshot(room)

    error = refused(moderation.check_ban, host, room_id=room.pk, user=viewer.pk, seconds=seconds)

    assert isinstance(error, BadRequest)
    assert snapshot(room) == before
    assert broadcasts == []


def test_ban_of_an_unknown_user_is_not_found(room, host, broadcasts):
    before = snapshot(room)

    assert refused(moderation.check_ban, host, room_id=room.pk, user="ghost").code == "not_found"
    assert snapshot(room) == before


def test_a_ban_in_one_room_does_not_reach_another(room, host, viewer, outsider):
    from rooms.services import do_create_room

    other = do_create_room(None, slug="side-stage", title="Side stage", host_username=outsider.username)
    run(moderation.check_ban, host, room_id=room.pk, user=viewer.pk)

    assert refused(send, viewer, room).code == "banned"
    assert send(viewer, other, "still welcome here").room == other


# Deleting messages.


def test_author_deletes_their_own_message(room, viewer, broadcasts):
    message = send(viewer, room, "oops, wrong room", "c-1")

    event = run(moderation.check_delete_message, viewer, room_id=room.pk, message_id=message.pk)

    assert without_ts(event.data) == {"type": "message_deleted", "seq": 2, "id": message.pk, "by": brief(viewer)}
    message.refresh_from_db()
    assert message.deleted_at is not None and message.deleted_by == viewer
    # Deleting your own words is not moderation.
    assert not AuditEntry.objects.exists()
    assert [e["type"] for e in broadcasts] == ["message", "message_deleted"]
    assert broadcasts[-1]["seq"] == 2


def test_moderator_deletes_a_members_message_and_it_is_audited(room, moderator, viewer, broadcasts):
    message = send(viewer, room, "something rude")

    event = run(moderation.check_delete_message, moderator, room_id=room.pk, message_id=message.pk)

    assert event.data["by"] == brief(moderator, "moderator")
    audit = AuditEntry.objects.get()
    assert (audit.action, audit.actor, audit.target, audit.details) == (
        "delete",
        moderator,
        viewer,
        {"message_id": message.pk},
    )
    assert broadcasts.of_type("message_deleted")[0]["id"] == message.pk


def test_moderator_cannot_delete_the_hosts_message(room, host, moderator, broadcasts):
    message = send(host, room, "welcome everyone")
    before = snapshot(room)

    error = refused(moderation.check_delete_message, moderator, room_id=room.pk, message_id=message.pk)

    assert error.code == "forbidden"
    assert snapshot(room) == before
    assert logged(room, message.seq)["body"] == "welcome everyone"
    assert broadcasts.of_type("message_deleted") == []


def test_deleted_message_is_redacted_in_the_log_with_its_mentions(room, moderator, viewer, outsider):
    message = send(viewer, room, "@otto_outsider the secret plan")
    assert logged(room, message.seq)["mentions"] == [brief(outsider)]

    run(moderation.check_delete_message, moderator, room_id=room.pk, message_id=message.pk)

    data = logged(room, message.seq)
    assert (data["type"], data["id"], data["body"], data["deleted"], data["mentions"]) == (
        "message",
        message.pk,
        "",
        True,
        [],
    )
    message.refresh_from_db()
    # The row keeps the body for staff; only what viewers can read is redacted.
    assert message.body == "@otto_outsider the secret plan"


def test_deleting_a_message_redacts_every_quote_of_it(room, moderator, viewer, outsider):
    original = send(viewer, room, "the secret plan")
    reply = run(check_send_message, outsider, room_id=room.pk, body="what plan?", reply_to_id=original.pk)
    assert logged(room, reply.seq)["reply_to"]["excerpt"] == "the secret plan"

    event = run(moderation.check_delete_message, moderator, room_id=room.pk, message_id=original.pk)

    quoted = logged(room, reply.seq)
    assert quoted["body"] == "what plan?"
    assert quoted["reply_to"] == {"id": original.pk, "author": brief(viewer), "excerpt": "", "deleted": True}
    assert event.seq == reply.seq + 1


def test_no_history_replay_or_api_response_contains_a_deleted_body(room, moderator, viewer, outsider):
    original = send(viewer, room, "the secret plan")
    run(check_send_message, outsider, room_id=room.pk, body="what plan?", reply_to_id=original.pk)
    run(moderation.check_delete_message, moderator, room_id=room.pk, message_id=original.pk)

    first_visit = room_history(room.pk, after=None, blocked=set())
    resumed = room_history(room.pk, after=0, blocked=set())
    api = Client().get(f"/api/rooms/{room.slug}/events?after=0")

    assert [e["type"] for e in resumed.events] == ["message", "message", "message_deleted"]
    assert first_visit.events == resumed.events
    assert api.status_code == 200
    assert api.json()["events"] == resumed.events
    for text in (json.dumps(first_visit.events), json.dumps(resumed.events), api.content.decode()):
        assert "secret" not in text


def test_reply_to_a_deleted_message_never_quotes_it(room, viewer, outsider):
    original = send(viewer, room, "the secret plan")
    run(moderation.check_delete_message, viewer, room_id=room.pk, message_id=original.pk)

    try:
        reply = run(check_send_message, outsider, room_id=room.pk, body="what was that?", reply_to_id=original.pk)
    except NotFound:
        return
    assert logged(room, reply.seq)["reply_to"]["excerpt"] == ""
    assert "secret" not in json.dumps(logged(room, reply.seq))


def test_deleting_twice_or_elsewhere_or_a_missing_message_is_not_found(room, viewer, outsider):
    from rooms.services import do_create_room

    other = do_create_room(None, slug="side-stage", title="Side stage", host_username=outsider.username)
    message = send(viewer, room, "short lived")
    run(moderation.check_delete_message, viewer, room_id=room.pk, message_id=message.pk)
    before = snapshot(room)

    assert refused(moderation.check_delete_message, viewer, room_id=room.pk, message_id=message.pk).code == "not_found"
    assert refused(moderation.check_delete_message, viewer, room_id=room.pk, message_id=10**9).code == "not_found"
    fresh = send(viewer, room, "in the main room")
    before = snapshot(room)
    assert refused(moderation.check_delete_message, viewer, room_id=other.pk, message_id=fresh.pk).code == "not_found"
    assert snapshot(room) == before


def test_anonymous_cannot_delete(room, viewer):
    message = send(viewer, room, "mine")

    assert refused(moderation.check_delete_message, AnonymousUser(), room_id=room.pk, message_id=message.pk).code == (
        "unauthenticated"
    )
    message.refresh_from_db()
    assert message.deleted_at is None


# Slow mode.


@pytest.mark.parametrize("seconds", [0, 1, 30, 120])
def test_slow_mode_accepts_zero_to_120_seconds(room, moderator, seconds, broadcasts):
    event = run(moderation.check_set_slow_mode, moderator, room_id=room.pk, seconds=seconds)

    assert without_ts(event.data) == {
        "type": "moderation",
        "seq": 1,
        "action": "slow_mode",
        "target": None,
        "by": brief(moderator, "moderator"),
        "until": None,
        "seconds": seconds,
        "reason": "",
    }
    room.refresh_from_db()
    assert room.slow_mode_seconds == seconds
    audit = AuditEntry.objects.get()
    assert (audit.action, audit.seconds, audit.target) == ("slow_mode", seconds, None)
    assert [without_ts(e) for e in broadcasts] == [without_ts(event.data)]


@pytest.mark.parametrize("seconds", [121, -1, 2.5, "10", True, None])
def test_slow_mode_out_of_range_is_bad_request_and_changes_nothing(room, moderator, seconds, broadcasts):
    run(moderation.check_set_slow_mode, moderator, room_id=room.pk, seconds=15)
    before = snapshot(room)

    error = refused(moderation.check_set_slow_mode, moderator, room_id=room.pk, seconds=seconds)

    assert isinstance(error, BadRequest)
    assert snapshot(room) == before
    assert len(broadcasts) == 1


def test_slow_mode_holds_a_member_to_one_message_per_interval(room, moderator, viewer, frozen_limiter_clock):
    run(moderation.check_set_slow_mode, moderator, room_id=room.pk, seconds=30)
    send(viewer, room, "one")

    error = refused(send, viewer, room, "two")

    assert error.code == "slow_mode"
    assert 29 < error.retry_after <= 30
    assert Message.objects.filter(author=viewer).count() == 1
    # Time travel: the first message was sent 31 seconds ago.
    Message.objects.filter(author=viewer).update(created_at=F("created_at") - timedelta(seconds=31))
    frozen_limiter_clock.now += 31
    assert send(viewer, room, "two, later").pk


def test_slow_mode_off_lets_members_send_freely(room, moderator, viewer):
    run(moderation.check_set_slow_mode, moderator, room_id=room.pk, seconds=30)
    send(viewer, room, "one")
    run(moderation.check_set_slow_mode, moderator, room_id=room.pk, seconds=0)

    assert send(viewer, room, "two").pk


def test_slow_mode_does_not_apply_to_the_team_or_staff(room, host, moderator, staff):
    run(moderation.check_set_slow_mode, moderator, room_id=room.pk, seconds=120)

    for user in (host, moderator, staff):
        send(user, room, "one")
        send(user, room, "two")

    assert Message.objects.count() == 6


# Rate limits.

# Mid-window, so the counters cannot roll over while a test sends its burst.
FROZEN_CLOCK = 1_700_000_001.0


@pytest.fixture
def frozen_limiter_clock(monkeypatch):
    clock = SimpleNamespace(now=FROZEN_CLOCK)
    monkeypatch.setattr(limits._memory, "clock", lambda: clock.now)
    return clock


def test_sixth_message_in_five_seconds_is_rate_limited_with_retry_after(room, viewer, frozen_limiter_clock, broadcasts):
    for i in range(5):
        send(viewer, room, f"line {i}")
    before = snapshot(room)

    error = refused(send, viewer, room, "line 5", "c-6")

    assert error.code == "rate_limited"
    # All five went out at the same instant: the first leaves the 5 s window 5 s later.
    assert error.retry_after == pytest.approx(5.0)
    assert snapshot(room) == before
    assert len(broadcasts) == 5
    frozen_limiter_clock.now += error.retry_after
    assert send(viewer, room, "line 5").pk


def test_sustained_limit_applies_across_bursts(room, viewer, settings, frozen_limiter_clock):
    settings.CHAT_SEND_RATE_BURST = (100, 5)
    settings.CHAT_SEND_RATE_SUSTAINED = (3, 30)
    for i in range(3):
        send(viewer, room, f"line {i}")

    error = refused(send, viewer, room, "line 3")

    assert error.code == "rate_limited"
    assert 0 < error.retry_after <= 30
    assert Message.objects.count() == 3


def test_rate_limit_is_per_user(room, viewer, outsider, frozen_limiter_clock):
    for i in range(5):
        send(viewer, room, f"line {i}")

    assert refused(send, viewer, room, "more").code == "rate_limited"
    assert send(outsider, room, "my first").pk


def test_team_and_staff_are_not_rate_limited(room, host, moderator, staff, frozen_limiter_clock):
    for user in (host, moderator, staff):
        for i in range(8):
            send(user, room, f"{user.username} {i}")

    assert Message.objects.count() == 24


# Personal blocks.


@pytest.fixture
def user_controls(monkeypatch):
    calls = []
    original = realtime.publish_user_control

    def capture(user_id, kind, **payload):
        calls.append((user_id, kind, payload))
        original(user_id, kind, **payload)

    monkeypatch.setattr(realtime, "publish_user_control", capture)
    return calls


def test_block_stores_a_block_and_tells_the_blockers_connections(viewer, outsider, user_controls):
    blocked = run(moderation.check_block, viewer, user=outsider.pk)

    assert blocked == {outsider.pk}
    block = Block.objects.get()
    assert (block.blocker, block.blocked) == (viewer, outsider)
    assert user_controls == [(viewer.pk, "blocks", {"blocked": [outsider.pk]})]


def test_blocking_twice_is_harmless(viewer, outsider, user_controls):
    run(moderation.check_block, viewer, user=outsider.pk)

    assert run(moderation.check_block, viewer, user=outsider.username) == {outsider.pk}
    assert Block.objects.count() == 1
    assert user_controls[-1] == (viewer.pk, "blocks", {"blocked": [outsider.pk]})


def test_block_returns_the_whole_new_set(viewer, outsider, host):
    run(moderation.check_block, viewer, user=outsider.pk)

    assert run(moderation.check_block, viewer, user=host.pk) == {outsider.pk, host.pk}


def test_blocking_yourself_is_bad_request(viewer, user_controls):
    assert refused(moderation.check_block, viewer, user=viewer.pk).code == "bad_request"
    assert not Block.objects.exists()
    assert user_controls == []


def test_blocking_an_unknown_user_is_not_found(viewer):
    assert refused(moderation.check_block, viewer, user="nobody_here").code == "not_found"
    assert refused(moderation.check_block, viewer, user=987654).code == "not_found"
    assert not Block.objects.exists()


def test_anonymous_cannot_block(viewer):
    assert refused(moderation.check_block, AnonymousUser(), user=viewer.pk).code == "unauthenticated"
    assert refused(moderation.check_unblock, AnonymousUser(), user=viewer.pk).code == "unauthenticated"


def test_unblock_removes_the_block_and_returns_the_new_set(viewer, outsider, host, user_controls):
    run(moderation.check_block, viewer, user=outsider.pk)
    run(moderation.check_block, viewer, user=host.pk)

    assert run(moderation.check_unblock, viewer, user=outsider.pk) == {host.pk}
    assert list(Block.objects.values_list("blocked_id", flat=True)) == [host.pk]
    assert user_controls[-1] == (viewer.pk, "blocks", {"blocked": [host.pk]})
    # Unblocking someone not blocked is as harmless as blocking twice.
    assert run(moderation.check_unblock, viewer, user=outsider.pk) == {host.pk}


def test_blocked_authors_are_left_out_of_the_blockers_history_only(room, viewer, outsider):
    send(outsider, room, "from otto")
    send(viewer, room, "from vic")
    run(moderation.check_block, viewer, user=outsider.pk)

    mine = room_history(room.pk, after=0, blocked=viewer_blocks(viewer))
    theirs = room_history(room.pk, after=0, blocked=viewer_blocks(outsider))

    assert [e["body"] for e in mine.events] == ["from vic"]
    assert [e["body"] for e in theirs.events] == ["from otto", "from vic"]
    assert mine.last_seq == theirs.last_seq == 2


def test_blocks_are_personal_and_never_hide_moderation(room, moderator, viewer):
    run(moderation.check_block, viewer, user=moderator.pk)
    run(moderation.check_set_slow_mode, moderator, room_id=room.pk, seconds=5)

    history = room_history(room.pk, after=0, blocked=viewer_blocks(viewer))

    assert [e["type"] for e in history.events] == ["moderation"]
    assert Room.objects.get(pk=room.pk).slow_mode_seconds == 5
