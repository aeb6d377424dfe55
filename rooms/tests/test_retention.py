"""Retention: prune_events deletes the start of room logs and the messages in it, keeps
tips, the ledger, notices and the audit log, and readers say the history was truncated."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from conftest import make_user
from moderation.models import AuditEntry
from moderation.services import do_delete_message, do_mute
from rooms import selectors
from rooms.errors import BadRequest
from rooms.models import LedgerEntry, Message, Notice, Room, RoomEvent, Tip
from rooms.services import do_announce, do_create_room, do_grant_coins, do_send_message, do_send_tip
from rooms.services.retention import do_prune_events

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command("prune_events", *args, stdout=out)
    return out.getvalue()


def age(room, *, through: int, days: int) -> None:
    """Make the room's events up to seq `through` look `days` days old."""
    RoomEvent.objects.filter(room=room, seq__lte=through).update(created_at=timezone.now() - timedelta(days=days))


def seqs(room) -> list[int]:
    return list(RoomEvent.objects.filter(room=room).order_by("seq").values_list("seq", flat=True))


def chat(room, author, count: int, *, start: int = 0) -> list[Message]:
    return [do_send_message(author, room_id=room.pk, body=f"line {start + i}") for i in range(count)]


def test_prune_deletes_old_events_and_their_messages_and_raises_the_floor(room, host):
    chat(room, host, 5)
    age(room, through=3, days=40)

    output = run("--older-than", "30")

    assert "main-stage: deleted 3 events and 3 messages, up to seq 3" in output
    assert "Deleted 3 events and 3 messages in 1 rooms." in output
    assert seqs(room) == [4, 5]
    assert list(Message.objects.filter(room=room).values_list("seq", flat=True)) == [4, 5]
    room.refresh_from_db()
    assert (room.pruned_through, room.last_seq) == (3, 5)


def test_prune_keeps_tips_the_ledger_notices_and_the_audit_log(room, host, moderator, viewer):
    do_grant_coins(None, user_id=viewer.pk, amount=100)
    tip = do_send_tip(viewer, room_id=room.pk, amount=10, body="gg", client_id="t1")
    do_announce(host, room_id=room.pk, body="Welcome", level="info")
    do_mute(moderator, room_id=room.pk, target_id=viewer.pk, seconds=60, reason="spam")
    chat(room, host, 1)
    age(room, through=Room.objects.get(pk=room.pk).last_seq, days=400)

    run("--older-than", "30")

    assert seqs(room) == []
    assert not Message.objects.filter(room=room).exists()
    assert Tip.objects.filter(pk=tip.pk).exists()
    assert LedgerEntry.objects.filter(user=viewer).count() == 2
    assert Notice.objects.filter(room=room).count() == 1
    assert AuditEntry.objects.filter(room=room, action="mute").count() == 1


def test_prune_only_takes_a_run_from_the_start_of_the_log(room, host):
    # An old event after a newer one (clocks of two server processes disagree) goes with
    # the run before it; what follows the newest old event stays whatever its age.
    chat(room, host, 4)
    age(room, through=2, days=40)
    RoomEvent.objects.filter(room=room, seq=4).update(created_at=timezone.now() - timedelta(days=40))

    run("--older-than", "30")

    assert seqs(room) == []
    chat(room, host, 1, start=10)
    assert seqs(room) == [5]


def test_prune_with_room_touches_only_that_room(room, host):
    other = do_create_room(None, slug="other", title="Other", host_username=host.username)
    chat(room, host, 2)
    chat(other, host, 2)
    age(room, through=2, days=40)
    age(other, through=2, days=40)

    output = run("--older-than", "30", "--room", "other")

    assert "other: deleted 2 events" in output
    assert (seqs(room), seqs(other)) == ([1, 2], [])


def test_prune_dry_run_reports_and_changes_nothing(room, host):
    chat(room, host, 3)
    age(room, through=2, days=40)

    output = run("--older-than", "30", "--dry-run")

    assert "main-stage: would delete 2 events and 2 messages, up to seq 2" in output
    assert "Dry run: 2 events and 2 messages in 1 rooms would be deleted; nothing was changed." in output
    assert seqs(room) == [1, 2, 3]
    assert Room.objects.get(pk=room.pk).pruned_through == 0


def test_prune_with_nothing_old_enough_changes_nothing(room, host):
    chat(room, host, 2)

    output = run("--older-than", "1")

    assert "Deleted 0 events and 0 messages in 0 rooms." in output
    assert seqs(room) == [1, 2]


def test_prune_finishes_what_an_interrupted_run_left_below_the_floor(room, host):
    chat(room, host, 4)
    # A run that raised the floor and died before deleting anything.
    Room.objects.filter(pk=room.pk).update(pruned_through=3)

    report = do_prune_events(None, older_than_days=30)

    assert [(p.events, p.messages, p.pruned_through) for p in report] == [(3, 3, 3)]
    assert seqs(room) == [4]


def test_readers_never_see_events_below_the_floor(room, host):
    chat(room, host, 4)
    Room.objects.filter(pk=room.pk).update(pruned_through=2)

    history = selectors.room_history(room.pk, after=0, blocked=set())
    replay = selectors.room_replay(room.pk, after=0, blocked=set(), limit=100)

    assert [e["seq"] for e in history.events] == [3, 4]
    assert len(replay.texts) == 2


@pytest.mark.parametrize("days", ["0", "-3", "soon", "1.5", "36501"])
def test_prune_with_a_bad_age_is_a_command_error(room, host, days):
    chat(room, host, 1)
    age(room, through=1, days=40)

    with pytest.raises(CommandError, match="--older-than: must be a whole number of days from 1 to 36500"):
        run("--older-than", days)
    assert seqs(room) == [1]


def test_prune_without_an_age_is_a_command_error(db):
    with pytest.raises(CommandError, match="--older-than"):
        run()


def test_prune_of_an_unknown_room_is_a_command_error(room, host):
    chat(room, host, 1)
    age(room, through=1, days=40)

    with pytest.raises(CommandError, match="No such room."):
        run("--older-than", "30", "--room", "nowhere")
    assert seqs(room) == [1]


def test_the_service_refuses_a_bad_age(db):
    with pytest.raises(BadRequest, match="whole number of days"):
        do_prune_events(None, older_than_days=0)


# What readers see after a pruning.


def test_a_resume_from_before_the_floor_is_truncated_and_starts_after_it(room, host):
    chat(room, host, 5)
    age(room, through=3, days=40)
    run("--older-than", "30")

    history = selectors.room_history(room.pk, after=1, blocked=set())

    assert [e["seq"] for e in history.events] == [4, 5]
    assert (history.truncated, history.more, history.pruned, history.last_seq) == (True, False, True, 5)


def test_a_resume_from_the_floor_on_is_not_truncated(room, host):
    chat(room, host, 5)
    age(room, through=3, days=40)
    run("--older-than", "30")

    history = selectors.room_history(room.pk, after=3, blocked=set())

    assert [e["seq"] for e in history.events] == [4, 5]
    assert history.truncated is False


def test_a_first_visit_after_a_pruning_is_not_truncated(room, host):
    chat(room, host, 5)
    age(room, through=3, days=40)
    run("--older-than", "30")

    history = selectors.room_history(room.pk, after=None, blocked=set())

    assert ([e["seq"] for e in history.events], history.truncated) == ([4, 5], False)


def test_a_replay_from_before_the_floor_says_so_and_is_not_another_page(room, host):
    chat(room, host, 5)
    age(room, through=3, days=40)
    run("--older-than", "30")

    replay = selectors.room_replay(room.pk, after=0, blocked=set(), limit=100)

    assert (len(replay.texts), replay.last_seq, replay.truncated, replay.pruned) == (2, 5, False, True)


def test_events_api_says_the_history_was_truncated(client, room, host):
    chat(room, host, 5)
    age(room, through=3, days=40)
    run("--older-than", "30")

    before = client.get(f"/api/rooms/{room.slug}/events", {"after": 2}).json()
    after = client.get(f"/api/rooms/{room.slug}/events", {"after": 3}).json()

    assert [e["seq"] for e in before["events"]] == [4, 5]
    assert (before["history_truncated"], before["has_more"], before["pruned_through"]) == (True, False, 3)
    assert (after["history_truncated"], after["has_more"], after["pruned_through"]) == (False, False, 3)


def test_a_reply_to_a_pruned_message_keeps_its_quote_and_can_be_deleted(client, room, host, viewer):
    [original] = chat(room, host, 1)
    reply = do_send_message(viewer, room_id=room.pk, body="agreed", reply_to_id=original.pk)
    age(room, through=original.seq, days=40)

    run("--older-than", "30")

    reply.refresh_from_db()
    assert reply.reply_to_id is None
    [event] = client.get(f"/api/rooms/{room.slug}/events").json()["events"]
    assert (event["id"], event["reply_to"]["id"], event["reply_to"]["excerpt"]) == (reply.pk, original.pk, "line 0")
    do_delete_message(host, message_id=reply.pk)
    assert RoomEvent.objects.get(room=room, seq=reply.seq).data["body"] == ""


def test_a_new_reply_to_a_pruned_message_is_refused(room, host, viewer):
    from rooms.services import check_send_message

    [original] = chat(room, host, 1)
    age(room, through=original.seq, days=40)
    run("--older-than", "30")

    with pytest.raises(Exception) as refused:
        check_send_message(
            make_user("late_reader"), room_id=room.pk, body="what?", reply_to_id=original.pk, client_id="c1"
        )
    assert getattr(refused.value, "code", None) == "not_found"
