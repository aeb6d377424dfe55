"""Room and message services: what they return, what they store, what they publish."""

from dataclasses import replace

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import DataError, transaction

from conftest import make_user
from moderation.models import Block
from moderation.services import do_ban, do_mute, do_set_slow_mode
from rooms.errors import BadRequest, ChatError, NotFound, RateLimited, Unauthenticated
from rooms.models import Membership, Message, Room, RoomEvent
from rooms.protocol import iso
from rooms.selectors import room_history, viewer_blocks
from rooms.services import (
    SendRequest,
    check_send_message,
    check_send_messages,
    do_create_room,
    do_send_message,
    do_set_role,
    do_update_room,
)

pytestmark = pytest.mark.django_db


def brief(user, role="member"):
    return {"id": user.pk, "name": user.get_username(), "role": role}


def logged(room):
    return list(RoomEvent.objects.filter(room=room).order_by("seq").values_list("seq", "type"))


# Sending.


def test_send_stores_the_message_and_publishes_a_message_event_with_the_next_seq(
    room, viewer, broadcasts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        message = check_send_message(viewer, room_id=room.pk, body="hello room", client_id="c-1")

    assert (message.body, message.seq, message.client_id, message.author) == ("hello room", 1, "c-1", viewer)
    room.refresh_from_db()
    assert room.last_seq == 1
    stored = RoomEvent.objects.get(room=room, seq=1)
    assert (stored.type, stored.actor_id) == ("message", viewer.pk)
    expected = {
        "type": "message",
        "seq": 1,
        "ts": iso(message.created_at),
        "id": message.pk,
        "author": brief(viewer),
        "body": "hello room",
        "reply_to": None,
        "mentions": [],
        "client_id": "c-1",
        "emotes": [],
    }
    assert stored.data == expected
    assert broadcasts == [expected]
    call = broadcasts.calls[0]
    assert (call.room_id, call.seq, call.actor_id, call.close_user) == (room.pk, 1, viewer.pk, None)


def test_message_event_shows_the_author_with_their_room_role(
    room, host, moderator, staff, broadcasts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        check_send_message(host, room_id=room.pk, body="welcome all", client_id="h")
        check_send_message(moderator, room_id=room.pk, body="be nice", client_id="m")
        check_send_message(staff, room_id=room.pk, body="site notice", client_id="s")

    assert [e["author"] for e in broadcasts] == [
        brief(host, "host"),
        brief(moderator, "moderator"),
        {**brief(staff, "member"), "staff": True},
    ]


def test_seq_is_gapless_and_increasing_across_sends_and_room_updates(
    room, host, viewer, broadcasts, django_capture_on_commit_callbacks, unlimited_sends
):
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(12):
            if i % 4 == 3:
                do_update_room(host, room_id=room.pk, is_live=i % 8 == 3)
            else:
                check_send_message(viewer, room_id=room.pk, body=f"line {i}", client_id=f"c{i}")

    assert list(Message.objects.filter(room=room).values_list("seq", flat=True)) == [1, 2, 3, 5, 6, 7, 9, 10, 11]
    assert [seq for seq, _ in logged(room)] == list(range(1, 13))
    room.refresh_from_db()
    assert room.last_seq == 12
    assert broadcasts.seqs == list(range(1, 13))
    assert [e["type"] for e in broadcasts].count("room") == 3


def test_each_room_counts_its_own_seq(room, host, viewer, broadcasts, django_capture_on_commit_callbacks):
    other = do_create_room(None, slug="side-stage", title="Side stage", host_username=host.username)
    with django_capture_on_commit_callbacks(execute=True):
        check_send_message(viewer, room_id=room.pk, body="a", client_id="a")
        check_send_message(viewer, room_id=other.pk, body="b", client_id="b")
        check_send_message(viewer, room_id=room.pk, body="c", client_id="c")

    assert [(c.room_id, c.seq) for c in broadcasts.calls] == [(room.pk, 1), (other.pk, 1), (room.pk, 2)]


def test_room_update_publishes_a_room_event_with_the_current_state(
    room, host, broadcasts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        event = do_update_room(host, room_id=room.pk, title="  Finals night ", is_live=True)

    assert event.seq == 1
    room.refresh_from_db()
    assert (room.title, room.is_live, room.last_seq) == ("Finals night", True, 1)
    assert broadcasts == [
        {
            "type": "room",
            "seq": 1,
            "ts": iso(event.created_at),
            "title": "Finals night",
            "is_live": True,
            "slow_mode_seconds": 0,
            "slow_mode_auto": False,
        }
    ]


def test_room_update_with_an_empty_title_is_refused_and_takes_no_seq(
    room, host, broadcasts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(BadRequest):
        do_update_room(host, room_id=room.pk, title="   ")

    room.refresh_from_db()
    assert (room.title, room.last_seq) == ("Main stage", 0)
    assert broadcasts == []


def test_repeating_a_client_id_returns_the_first_message_and_stores_and_publishes_nothing(
    room, viewer, broadcasts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = check_send_message(viewer, room_id=room.pk, body="only once", client_id="dup")
        again = check_send_message(viewer, room_id=room.pk, body="only once", client_id="dup")
        different_body = check_send_message(viewer, room_id=room.pk, body="changed my mind", client_id="dup")

    assert (again.pk, again.seq) == (first.pk, first.seq)
    assert (different_body.pk, different_body.body) == (first.pk, "only once")
    assert Message.objects.filter(room=room).count() == 1
    assert RoomEvent.objects.filter(room=room).count() == 1
    assert broadcasts.seqs == [1]


def test_same_client_id_from_another_user_is_a_separate_message(
    room, viewer, outsider, broadcasts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        mine = check_send_message(viewer, room_id=room.pk, body="mine", client_id="same")
        theirs = check_send_message(outsider, room_id=room.pk, body="theirs", client_id="same")

    assert mine.pk != theirs.pk
    assert (mine.seq, theirs.seq) == (1, 2)
    assert Message.objects.filter(room=room, client_id="same").count() == 2
    assert [e["author"]["id"] for e in broadcasts] == [viewer.pk, outsider.pk]


def test_same_client_id_in_another_room_is_a_separate_message(
    room, host, viewer, broadcasts, django_capture_on_commit_callbacks
):
    other = do_create_room(None, slug="side-stage", title="Side stage", host_username=host.username)
    with django_capture_on_commit_callbacks(execute=True):
        here = check_send_message(viewer, room_id=room.pk, body="here", client_id="same")
        there = check_send_message(viewer, room_id=other.pk, body="there", client_id="same")

    assert here.pk != there.pk
    assert [(c.room_id, c.seq) for c in broadcasts.calls] == [(room.pk, 1), (other.pk, 1)]


def test_a_refused_send_stores_nothing_so_its_client_id_can_be_used_again(
    room, viewer, broadcasts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(BadRequest):
            check_send_message(viewer, room_id=room.pk, body="   ", client_id="retry")
        message = check_send_message(viewer, room_id=room.pk, body="now with words", client_id="retry")

    assert (message.body, message.seq) == ("now with words", 1)
    assert broadcasts.seqs == [1]


def test_send_without_client_id_stores_each_message(room, viewer, broadcasts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        check_send_message(viewer, room_id=room.pk, body="same words")
        check_send_message(viewer, room_id=room.pk, body="same words")

    assert Message.objects.filter(room=room).count() == 2
    assert [e["client_id"] for e in broadcasts] == [None, None]


def test_body_is_trimmed_before_it_is_stored_and_counted(room, viewer, broadcasts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        message = check_send_message(viewer, room_id=room.pk, body="  \n " + "x" * 500 + " \t", client_id="t")

    assert message.body == "x" * 500
    assert Message.objects.get().body == "x" * 500
    assert broadcasts[0]["body"] == "x" * 500


def test_body_of_500_characters_is_accepted_and_501_refused(
    room, viewer, broadcasts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        check_send_message(viewer, room_id=room.pk, body="é" * 500, client_id="ok")
        with pytest.raises(BadRequest) as info:
            check_send_message(viewer, room_id=room.pk, body="é" * 501, client_id="long")

    assert "500" in info.value.detail
    assert Message.objects.filter(room=room).count() == 1
    assert broadcasts.seqs == [1]


def test_body_limit_follows_the_setting(room, viewer, settings):
    settings.CHAT_BODY_MAX_CHARS = 10
    with pytest.raises(BadRequest):
        check_send_message(viewer, room_id=room.pk, body="x" * 11, client_id="c")
    assert check_send_message(viewer, room_id=room.pk, body="x" * 10, client_id="d").seq == 1


@pytest.mark.parametrize("body", ["", "   ", "\n\t ", None, 42, ["hi"]])
def test_empty_or_non_text_body_is_bad_request(room, viewer, broadcasts, django_capture_on_commit_callbacks, body):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(BadRequest):
        check_send_message(viewer, room_id=room.pk, body=body, client_id="c")

    assert not Message.objects.exists()
    room.refresh_from_db()
    assert room.last_seq == 0
    assert broadcasts == []


def test_anonymous_send_is_unauthenticated(room, broadcasts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(Unauthenticated) as info:
        check_send_message(AnonymousUser(), room_id=room.pk, body="hi", client_id="c")

    assert info.value.code == "unauthenticated"
    assert not Message.objects.exists()
    assert broadcasts == []


def test_send_to_a_missing_room_is_not_found(viewer, broadcasts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(NotFound):
        check_send_message(viewer, room_id=987654, body="hi", client_id="c")

    assert not Message.objects.exists()
    assert broadcasts == []


def test_a_member_past_5_messages_in_5_seconds_is_rate_limited_with_retry_after(
    room, viewer, broadcasts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(5):
            check_send_message(viewer, room_id=room.pk, body=f"line {i}", client_id=f"c{i}")
        with pytest.raises(RateLimited) as info:
            check_send_message(viewer, room_id=room.pk, body="one too many", client_id="c5")

    assert info.value.code == "rate_limited"
    assert 0 < info.value.retry_after <= 5
    assert Message.objects.filter(room=room).count() == 5
    assert broadcasts.seqs == [1, 2, 3, 4, 5]


def test_repeating_a_stored_client_id_does_not_count_against_the_rate_limit(room, viewer):
    for i in range(5):
        check_send_message(viewer, room_id=room.pk, body=f"line {i}", client_id=f"c{i}")

    assert check_send_message(viewer, room_id=room.pk, body="line 4", client_id="c4").seq == 5


def test_the_host_team_is_not_rate_limited(room, host, moderator, broadcasts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(8):
            check_send_message(host, room_id=room.pk, body=f"host {i}", client_id=f"h{i}")
            check_send_message(moderator, room_id=room.pk, body=f"mod {i}", client_id=f"m{i}")

    assert broadcasts.seqs == list(range(1, 17))


def test_slow_mode_makes_a_member_wait_between_messages(
    room, host, viewer, broadcasts, django_capture_on_commit_callbacks
):
    do_set_slow_mode(host, room_id=room.pk, seconds=30)
    with django_capture_on_commit_callbacks(execute=True):
        check_send_message(viewer, room_id=room.pk, body="first", client_id="1")
        with pytest.raises(ChatError) as info:
            check_send_message(viewer, room_id=room.pk, body="too soon", client_id="2")

    assert info.value.code == "slow_mode"
    assert 29 < info.value.retry_after <= 30
    assert list(Message.objects.values_list("body", flat=True)) == ["first"]
    assert [e["type"] for e in broadcasts] == ["message"]


def test_slow_mode_does_not_apply_to_the_host_team(room, host, moderator):
    do_set_slow_mode(host, room_id=room.pk, seconds=30)
    for i in range(3):
        check_send_message(moderator, room_id=room.pk, body=f"mod {i}", client_id=f"m{i}")
        check_send_message(host, room_id=room.pk, body=f"host {i}", client_id=f"h{i}")
    assert Message.objects.count() == 6


def test_a_muted_member_gets_muted_with_retry_after(room, host, viewer, broadcasts, django_capture_on_commit_callbacks):
    do_mute(host, room_id=room.pk, target_id=viewer.pk, seconds=600)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ChatError) as info:
        check_send_message(viewer, room_id=room.pk, body="let me talk", client_id="c")

    assert info.value.code == "muted"
    assert 599 < info.value.retry_after <= 600
    assert not Message.objects.exists()
    assert broadcasts == []


def test_a_banned_member_gets_banned(room, host, viewer, broadcasts, django_capture_on_commit_callbacks):
    do_ban(host, room_id=room.pk, target_id=viewer.pk)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ChatError) as info:
        check_send_message(viewer, room_id=room.pk, body="hello?", client_id="c")

    assert info.value.code == "banned"
    assert not Message.objects.exists()
    assert broadcasts == []


# Sends checked and stored together (the consumer's group commit).


def test_sends_checked_together_are_answered_in_order_and_stored_with_consecutive_seqs(
    room, viewer, outsider, broadcasts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        answers = check_send_messages(
            room.pk,
            [
                SendRequest(viewer, "first", client_id="v1"),
                SendRequest(outsider, "   ", client_id="o1"),
                SendRequest(outsider, "second", client_id="o2"),
            ],
        )

    first, refused, second = answers
    assert isinstance(refused, BadRequest)
    assert [(m.body, m.seq) for m in (first, second)] == [("first", 1), ("second", 2)]
    assert broadcasts.seqs == [1, 2]
    assert list(Message.objects.order_by("seq").values_list("client_id", flat=True)) == ["v1", "o2"]


def test_a_client_id_repeated_within_one_batch_stores_one_message(room, viewer, broadcasts):
    answers = check_send_messages(
        room.pk, [SendRequest(viewer, "hello", client_id="same"), SendRequest(viewer, "hello", client_id="same")]
    )

    assert answers[0].pk == answers[1].pk
    assert Message.objects.count() == 1


def test_slow_mode_counts_a_send_waiting_in_the_same_batch(room, host, viewer):
    do_set_slow_mode(host, room_id=room.pk, seconds=30)

    stored, refused = check_send_messages(
        room.pk, [SendRequest(viewer, "first", client_id="1"), SendRequest(viewer, "second", client_id="2")]
    )

    assert stored.body == "first"
    assert isinstance(refused, ChatError) and refused.code == "slow_mode"
    assert list(Message.objects.values_list("body", flat=True)) == ["first"]


def test_a_send_refused_for_its_reply_counts_nothing_against_slow_mode(room, host, viewer):
    do_set_slow_mode(host, room_id=room.pk, seconds=30)

    [refused] = check_send_messages(room.pk, [SendRequest(viewer, "re", reply_to_id=10**9, client_id="1")])
    [stored] = check_send_messages(room.pk, [SendRequest(viewer, "hello", client_id="2")])

    assert isinstance(refused, NotFound)
    assert stored.body == "hello"


def test_the_room_rules_check_a_whole_batch_at_once_in_order(room, viewer, outsider, monkeypatch):
    from rooms import extensions

    rules = extensions.send_rules()
    batches = []

    def check(sends):
        batches.append([send.user_id for send in sends])
        return rules.check(sends)

    monkeypatch.setattr(extensions, "_send_rules", replace(rules, check=check))

    answers = check_send_messages(
        room.pk,
        [
            SendRequest(viewer, "one", client_id="1"),
            SendRequest(outsider, "  ", client_id="2"),
            SendRequest(outsider, "three", client_id="3"),
        ],
    )

    # The empty line is refused by its own check and never reaches the rules.
    assert batches == [[viewer.pk, outsider.pk]]
    assert [getattr(a, "body", None) for a in answers] == ["one", None, "three"]


def test_a_send_the_database_refuses_fails_alone_and_the_rest_of_its_batch_is_stored(
    room, viewer, outsider, monkeypatch
):
    from rooms.services import messages

    store_together = messages._store_together

    def refuse_poison(batch):
        if any(p.body == "poison" for p in batch):
            raise DataError("value too long")
        return store_together(batch)

    monkeypatch.setattr(messages, "_store_together", refuse_poison)

    before, failed, after = check_send_messages(
        room.pk,
        [
            SendRequest(viewer, "before", client_id="1"),
            SendRequest(outsider, "poison", client_id="2"),
            SendRequest(outsider, "after", client_id="3"),
        ],
    )

    assert isinstance(failed, DataError)
    assert [(before.body, before.seq), (after.body, after.seq)] == [("before", 1), ("after", 2)]
    assert not Message.objects.filter(body="poison").exists()


# Replies and mentions.


def test_reply_quotes_the_first_80_characters_of_the_original(
    room, host, viewer, broadcasts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        original = check_send_message(host, room_id=room.pk, body="0123456789" * 10, client_id="o")
        reply = check_send_message(viewer, room_id=room.pk, body="agreed", reply_to_id=original.pk, client_id="r")

    assert reply.reply_to_id == original.pk
    assert Message.objects.get(pk=reply.pk).reply_to_id == original.pk
    assert broadcasts[1]["reply_to"] == {
        "id": original.pk,
        "author": brief(host, "host"),
        "excerpt": "0123456789" * 8,
        "deleted": False,
    }


def test_reply_to_a_message_in_another_room_is_not_found(
    room, host, viewer, broadcasts, django_capture_on_commit_callbacks
):
    other = do_create_room(None, slug="side-stage", title="Side stage", host_username=host.username)
    with django_capture_on_commit_callbacks(execute=True):
        elsewhere = check_send_message(host, room_id=other.pk, body="over here", client_id="e")
        with pytest.raises(NotFound):
            check_send_message(viewer, room_id=room.pk, body="re", reply_to_id=elsewhere.pk, client_id="r")

    assert not Message.objects.filter(room=room).exists()
    assert [c.room_id for c in broadcasts.calls] == [other.pk]


def test_reply_to_a_missing_message_is_not_found(room, viewer, broadcasts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(NotFound):
        check_send_message(viewer, room_id=room.pk, body="re", reply_to_id=123456, client_id="r")

    assert not Message.objects.exists()
    assert broadcasts == []


def test_reply_to_a_deleted_message_quotes_nothing(room, host, viewer, broadcasts, django_capture_on_commit_callbacks):
    original = do_send_message(host, room_id=room.pk, body="regrettable")
    Message.objects.filter(pk=original.pk).update(deleted_at=original.created_at, deleted_by=host)

    with django_capture_on_commit_callbacks(execute=True):
        check_send_message(viewer, room_id=room.pk, body="what did it say?", reply_to_id=original.pk, client_id="r")

    assert broadcasts[0]["reply_to"] == {
        "id": original.pk,
        "author": brief(host, "host"),
        "excerpt": "",
        "deleted": True,
    }


def test_mentions_resolve_known_users_in_order_once_each(
    room, host, viewer, outsider, broadcasts, django_capture_on_commit_callbacks
):
    body = f"@{outsider.username} and @{host.username}, hi @{outsider.username}! cc @nobody_here"
    with django_capture_on_commit_callbacks(execute=True):
        check_send_message(viewer, room_id=room.pk, body=body, client_id="m")

    assert broadcasts[0]["mentions"] == [brief(outsider), brief(host, "host")]
    assert broadcasts[0]["body"] == body


def test_mentions_carry_each_users_room_role(
    room, host, moderator, staff, viewer, broadcasts, django_capture_on_commit_callbacks
):
    body = f"@{host.username} @{moderator.username} @{staff.username}"
    with django_capture_on_commit_callbacks(execute=True):
        check_send_message(viewer, room_id=room.pk, body=body, client_id="m")

    assert broadcasts[0]["mentions"] == [
        brief(host, "host"),
        brief(moderator, "moderator"),
        {**brief(staff), "staff": True},
    ]


def test_mention_followed_by_a_full_stop_still_resolves(
    room, viewer, outsider, broadcasts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        check_send_message(viewer, room_id=room.pk, body=f"thanks @{outsider.username}.", client_id="m")

    assert broadcasts[0]["mentions"] == [brief(outsider)]


def test_email_like_text_is_not_a_mention(room, viewer, outsider, broadcasts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        check_send_message(viewer, room_id=room.pk, body=f"mail me at me@{outsider.username} or a@b", client_id="m")

    assert broadcasts[0]["mentions"] == []


def test_unknown_and_inactive_names_are_not_mentions(room, viewer, broadcasts, django_capture_on_commit_callbacks):
    make_user("gone_user", is_active=False)
    with django_capture_on_commit_callbacks(execute=True):
        check_send_message(viewer, room_id=room.pk, body="@ghost @gone_user @ alone", client_id="m")

    assert broadcasts[0]["mentions"] == []


# Rooms and roles.


def test_create_room_makes_the_owner_its_host_and_opens_the_admin_to_them(
    viewer, broadcasts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        room = do_create_room(None, slug="vic-live", title="  Vic live  ", host_username=viewer.username)

    assert (room.slug, room.title, room.owner, room.last_seq, room.is_live) == (
        "vic-live",
        "Vic live",
        viewer,
        0,
        False,
    )
    assert list(Membership.objects.filter(room=room).values_list("user_id", "role")) == [(viewer.pk, "host")]
    viewer.refresh_from_db()
    assert viewer.is_staff
    assert broadcasts == []


def test_create_room_lowercases_and_trims_the_slug(viewer):
    assert do_create_room(None, slug="  Big-Stage ", title="Big", host_username=viewer.username).slug == "big-stage"


@pytest.mark.parametrize("slug", ["", "-leading", "has space", "under_score", "dots.no", "x" * 65, "ümlaut", "a/b"])
def test_create_room_with_a_bad_slug_is_refused(viewer, slug):
    with pytest.raises(BadRequest):
        do_create_room(None, slug=slug, title="Title", host_username=viewer.username)
    assert not Room.objects.exists()
    viewer.refresh_from_db()
    assert not viewer.is_staff


def test_create_room_accepts_a_64_character_slug(viewer):
    assert len(do_create_room(None, slug="a" * 64, title="Long", host_username=viewer.username).slug) == 64


@pytest.mark.parametrize("title", ["", "   ", "t" * 201])
def test_create_room_with_a_bad_title_is_refused(viewer, title):
    with pytest.raises(BadRequest):
        do_create_room(None, slug="fine", title=title, host_username=viewer.username)
    assert not Room.objects.exists()


def test_create_room_with_a_taken_slug_is_refused(room, viewer):
    with pytest.raises(BadRequest) as info:
        do_create_room(None, slug=room.slug, title="Copy", host_username=viewer.username)

    assert room.slug in info.value.detail
    assert Room.objects.get().owner_id == room.owner_id
    assert not Membership.objects.filter(user=viewer).exists()


def test_create_room_for_an_unknown_host_is_not_found(db):
    with pytest.raises(NotFound):
        do_create_room(None, slug="orphan", title="Orphan", host_username="no_such_user")
    assert not Room.objects.exists()


def test_set_role_appoints_a_moderator(room, viewer):
    membership = do_set_role(None, room_id=room.pk, username=viewer.username, role="moderator")

    assert (membership.room, membership.user, membership.role) == (room, viewer, "moderator")
    viewer.refresh_from_db()
    assert not viewer.is_staff  # moderators work from the room page, not the admin


def test_set_role_appoints_a_co_host_with_admin_access(room, viewer):
    do_set_role(None, room_id=room.pk, username=viewer.username, role="host")

    assert Membership.objects.get(room=room, user=viewer).role == "host"
    viewer.refresh_from_db()
    assert viewer.is_staff


def test_set_role_changes_an_existing_seat(room, moderator):
    do_set_role(None, room_id=room.pk, username=moderator.username, role="host")
    assert list(Membership.objects.filter(room=room, user=moderator).values_list("role", flat=True)) == ["host"]


def test_set_role_member_takes_the_seat_away(room, moderator):
    assert do_set_role(None, room_id=room.pk, username=moderator.username, role="member") is None
    assert not Membership.objects.filter(room=room, user=moderator).exists()


def test_set_role_member_for_a_plain_member_changes_nothing(room, viewer):
    assert do_set_role(None, room_id=room.pk, username=viewer.username, role="member") is None
    assert Membership.objects.filter(room=room).count() == 1


def test_set_role_for_an_unknown_user_is_not_found(room):
    with pytest.raises(NotFound):
        do_set_role(None, room_id=room.pk, username="nobody", role="moderator")
    assert Membership.objects.filter(room=room).count() == 1


def test_set_role_in_an_unknown_room_is_not_found(viewer):
    with pytest.raises(NotFound):
        do_set_role(None, room_id=424242, username=viewer.username, role="moderator")


@pytest.mark.parametrize("role", ["admin", "guest", "staff", "", "Moderator"])
def test_set_role_with_an_unknown_role_is_refused(room, viewer, role):
    with pytest.raises(BadRequest):
        do_set_role(None, room_id=room.pk, username=viewer.username, role=role)
    assert not Membership.objects.filter(user=viewer).exists()


def test_owner_cannot_be_made_a_plain_member(room, host):
    with pytest.raises(BadRequest):
        do_set_role(None, room_id=room.pk, username=host.username, role="member")
    assert Membership.objects.get(room=room, user=host).role == "host"


def test_owner_cannot_be_demoted_to_moderator(room, host):
    with pytest.raises(BadRequest):
        do_set_role(None, room_id=room.pk, username=host.username, role="moderator")
    assert Membership.objects.get(room=room, user=host).role == "host"


# History.


def send_many(room, author, count, *, start=0):
    return [do_send_message(author, room_id=room.pk, body=f"line {start + i}") for i in range(count)]


def test_first_visit_history_is_the_latest_events_oldest_first(room, viewer, settings):
    settings.CHAT_HISTORY_FIRST_VISIT = 4
    send_many(room, viewer, 7)

    history = room_history(room.pk, after=None, blocked=set())

    assert [e["seq"] for e in history.events] == [4, 5, 6, 7]
    assert (history.last_seq, history.truncated) == (7, False)


def test_first_visit_history_defaults_to_the_latest_50(room, viewer):
    send_many(room, viewer, 53)
    history = room_history(room.pk, after=None, blocked=set())
    assert [e["seq"] for e in history.events] == list(range(4, 54))


def test_history_after_n_holds_every_later_event(room, host, viewer):
    send_many(room, viewer, 3)
    do_update_room(host, room_id=room.pk, is_live=True)
    send_many(room, viewer, 2, start=3)

    history = room_history(room.pk, after=2, blocked=set())

    assert [(e["seq"], e["type"]) for e in history.events] == [
        (3, "message"),
        (4, "room"),
        (5, "message"),
        (6, "message"),
    ]
    assert (history.last_seq, history.truncated) == (6, False)
    assert room_history(room.pk, after=6, blocked=set()).events == []


def test_history_after_n_stops_at_the_resume_limit_and_says_it_was_truncated(room, viewer, settings):
    settings.CHAT_HISTORY_RESUME_MAX = 5
    send_many(room, viewer, 8)

    first_page = room_history(room.pk, after=0, blocked=set())
    rest = room_history(room.pk, after=5, blocked=set())
    exactly_the_limit = room_history(room.pk, after=3, blocked=set())

    assert [e["seq"] for e in first_page.events] == [1, 2, 3, 4, 5]
    assert (first_page.last_seq, first_page.truncated) == (8, True)
    assert ([e["seq"] for e in rest.events], rest.truncated) == ([6, 7, 8], False)
    assert ([e["seq"] for e in exactly_the_limit.events], exactly_the_limit.truncated) == ([4, 5, 6, 7, 8], False)


def test_history_leaves_out_events_by_blocked_users_for_the_blocker_only(room, host, viewer, outsider):
    do_send_message(outsider, room_id=room.pk, body="noise")
    do_send_message(host, room_id=room.pk, body="hello")
    do_update_room(host, room_id=room.pk, is_live=True)
    do_send_message(outsider, room_id=room.pk, body="more noise")
    Block.objects.create(blocker=viewer, blocked=outsider)

    mine = room_history(room.pk, after=None, blocked=viewer_blocks(viewer))
    theirs = room_history(room.pk, after=None, blocked=viewer_blocks(host))

    assert [e["seq"] for e in mine.events] == [2, 3]
    assert mine.last_seq == 4  # the head still moves past hidden events
    assert [e["seq"] for e in theirs.events] == [1, 2, 3, 4]
    assert [e["seq"] for e in room_history(room.pk, after=1, blocked=viewer_blocks(viewer)).events] == [2, 3]


def test_anonymous_viewers_block_nobody(db):
    assert viewer_blocks(AnonymousUser()) == set()


def test_history_is_what_was_published(room, viewer, broadcasts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        check_send_message(viewer, room_id=room.pk, body="one", client_id="1")
        check_send_message(viewer, room_id=room.pk, body="two", client_id="2")

    assert room_history(room.pk, after=0, blocked=set()).events == list(broadcasts)


# Transactions.


def test_a_rolled_back_write_gives_its_seq_back(room, viewer, broadcasts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            do_send_message(viewer, room_id=room.pk, body="never happened", client_id="lost")
            raise RuntimeError("the transaction fails after the seq was taken")
        message = check_send_message(viewer, room_id=room.pk, body="kept", client_id="kept")

    assert message.seq == 1
    assert list(Message.objects.values_list("body", flat=True)) == ["kept"]
    assert logged(room) == [(1, "message")]
    assert [(e["seq"], e["body"]) for e in broadcasts] == [(1, "kept")]


def test_nothing_is_published_before_commit(room, viewer, broadcasts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        check_send_message(viewer, room_id=room.pk, body="pending", client_id="p")
        assert broadcasts == []
    assert len(callbacks) == 1
    callbacks[0]()
    assert broadcasts.seqs == [1]
