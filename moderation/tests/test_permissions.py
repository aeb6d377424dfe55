"""Who may do what to whom in a room: every role against every action and every rank of
target. The rules (PROTOCOL.md): moderators mute, unmute, kick, delete, set slow mode
and announce; hosts and staff also ban, unban and change the room; everyone may delete
their own messages; nobody acts on themselves or on an equal or higher rank."""

import pytest
from django.contrib.auth.models import AnonymousUser

from conftest import make_user
from moderation import services as moderation
from moderation.models import AuditEntry, Ban, Mute
from rooms.errors import ChatError
from rooms.models import Message, Room, RoomEvent
from rooms.services import check_announce, check_update_room, do_create_room, do_send_message

pytestmark = pytest.mark.django_db

OK, FORBIDDEN, UNAUTHENTICATED = "ok", "forbidden", "unauthenticated"

TARGETED = ("mute", "unmute", "kick", "ban", "unban", "delete")
UNTARGETED = ("delete_own", "slow_mode", "announce", "room_status")
MODERATOR_ACTIONS = {"mute", "unmute", "kick", "delete", "slow_mode", "announce"}
HOST_ACTIONS = MODERATOR_ACTIONS | {"ban", "unban", "room_status"}

# For each acting role, a persona one rank below, one of the same rank and one above,
# where such a rank exists. Guests are never targets: moderation needs a user.
TARGETS = {
    "guest": {"higher": "member"},
    "member": {"equal": "member2", "higher": "moderator"},
    "moderator": {"lower": "member", "equal": "moderator2", "higher": "host"},
    "host": {"lower": "moderator", "equal": "host2", "higher": "staff"},
    "staff": {"lower": "host", "equal": "staff2"},
}
MAY = {"guest": set(), "member": set(), "moderator": MODERATOR_ACTIONS, "host": HOST_ACTIONS, "staff": HOST_ACTIONS}


def expected(role: str, action: str, relation: str | None) -> str:
    if role == "guest":
        return UNAUTHENTICATED
    if action == "delete_own":
        return OK
    if action not in MAY[role]:
        return FORBIDDEN
    if relation in ("equal", "higher", "self"):
        return FORBIDDEN
    return OK


def matrix():
    for role, targets in TARGETS.items():
        for action in TARGETED:
            for relation in ("lower", "equal", "higher"):
                if relation in targets:
                    yield pytest.param(
                        role, action, relation, expected(role, action, relation), id=f"{role}-{action}-{relation}"
                    )
        for action in UNTARGETED:
            yield pytest.param(role, action, None, expected(role, action, None), id=f"{role}-{action}")


@pytest.fixture
def cast(host, room, cohost, moderator, comoderator, viewer, outsider, staff, staff2):
    return {
        "guest": AnonymousUser(),
        "member": viewer,
        "member2": outsider,
        "moderator": moderator,
        "moderator2": comoderator,
        "host": host,
        "host2": cohost,
        "staff": staff,
        "staff2": staff2,
    }


def prepare(action: str, room: Room, actor, target):
    """What must exist for the action to make sense: a mute to lift, a message to delete."""
    if action == "unmute":
        moderation.do_mute(None, room_id=room.pk, target_id=target.pk, seconds=600)
    elif action == "unban":
        moderation.do_ban(None, room_id=room.pk, target_id=target.pk)
    elif action == "delete":
        return do_send_message(target, room_id=room.pk, body="a line to delete")
    elif action == "delete_own":
        # A guest has no messages of its own; it tries someone else's.
        author = actor if actor.is_authenticated else target
        return do_send_message(author, room_id=room.pk, body="my own line")
    return None


def perform(action: str, room: Room, actor, target, message: Message | None) -> RoomEvent:
    if action == "mute":
        return moderation.check_mute(actor, room_id=room.pk, user=target.pk, seconds=60, reason="spam")
    if action == "unmute":
        return moderation.check_unmute(actor, room_id=room.pk, user=target.pk)
    if action == "kick":
        return moderation.check_kick(actor, room_id=room.pk, user=target.pk)
    if action == "ban":
        return moderation.check_ban(actor, room_id=room.pk, user=target.pk, reason="spam")
    if action == "unban":
        return moderation.check_unban(actor, room_id=room.pk, user=target.pk)
    if action in ("delete", "delete_own"):
        return moderation.check_delete_message(actor, room_id=room.pk, message_id=message.pk)
    if action == "slow_mode":
        return moderation.check_set_slow_mode(actor, room_id=room.pk, seconds=10)
    if action == "announce":
        return check_announce(actor, room_id=room.pk, body="Be kind", level="info")
    if action == "room_status":
        return check_update_room(actor, room_id=room.pk, title="Renamed")
    raise AssertionError(action)


EVENT_TYPE = {
    "delete": "message_deleted",
    "delete_own": "message_deleted",
    "announce": "notice",
    "room_status": "room",
}


def state(room: Room):
    room.refresh_from_db()
    return (
        room.last_seq,
        room.title,
        room.slow_mode_seconds,
        list(Mute.objects.values_list("pk", "ended_at")),
        list(Ban.objects.values_list("pk", "ended_at")),
        list(Message.objects.values_list("pk", "deleted_at")),
        AuditEntry.objects.count(),
    )


@pytest.mark.parametrize(("role", "action", "relation", "outcome"), list(matrix()))
def test_permission_matrix(cast, room, role, action, relation, outcome):
    actor = cast[role]
    target = cast[TARGETS[role].get(relation or "", "member")]
    message = prepare(action, room, actor, target)
    before = state(room)

    if outcome == OK:
        event = perform(action, room, actor, target, message)

        assert event.type == EVENT_TYPE.get(action, "moderation")
        if event.type == "moderation":
            assert event.data["action"] == ("slow_mode" if action == "slow_mode" else action)
        room.refresh_from_db()
        assert event.seq == room.last_seq == before[0] + 1
    else:
        with pytest.raises(ChatError) as refused:
            perform(action, room, actor, target, message)

        assert refused.value.code == outcome
        assert state(room) == before


SELF_CASES = [
    pytest.param(role, action, id=f"{role}-{action}")
    for role in ("moderator", "host", "staff")
    for action in ("mute", "unmute", "kick", "ban", "unban")
    if action in MAY[role]
]


@pytest.mark.parametrize(("role", "action"), SELF_CASES)
def test_nobody_moderates_themselves(cast, room, role, action):
    actor = cast[role]
    prepare(action, room, actor, actor)
    before = state(room)

    with pytest.raises(ChatError) as refused:
        perform(action, room, actor, actor, None)

    assert refused.value.code == FORBIDDEN
    assert "yourself" in refused.value.detail
    assert state(room) == before


@pytest.mark.parametrize("action", ["mute", "kick", "ban", "delete", "slow_mode", "announce", "room_status"])
def test_hosting_one_room_gives_no_power_in_another(room, host, outsider, action):
    # Hosts carry is_staff to enter the admin; that alone must not make them site staff.
    elsewhere = do_create_room(None, slug="side-stage", title="Side stage", host_username=outsider.username)
    bystander = make_user("bea_bystander")
    host.refresh_from_db()
    assert host.is_staff and not host.is_superuser
    message = prepare(action, elsewhere, host, bystander)
    before = state(elsewhere)

    with pytest.raises(ChatError) as refused:
        perform(action, elsewhere, host, bystander, message)

    assert refused.value.code == FORBIDDEN
    assert state(elsewhere) == before


def test_site_staff_by_permission_outranks_the_host(room, host, staff2):
    event = moderation.check_ban(staff2, room_id=room.pk, user=host.pk, seconds=60)

    assert (event.data["action"], event.data["target"]["id"]) == ("ban", host.pk)
    assert event.data["by"] == {"id": staff2.pk, "name": staff2.username, "role": "member", "staff": True}
    assert Ban.objects.filter(room=room, user=host, ended_at__isnull=True).exists()


def test_moderator_may_not_ban_even_a_plain_member(room, moderator, viewer):
    with pytest.raises(ChatError) as refused:
        moderation.check_ban(moderator, room_id=room.pk, user=viewer.pk)

    assert refused.value.code == FORBIDDEN
    assert "hosts and staff" in refused.value.detail
    assert not Ban.objects.exists()


def test_a_removed_moderator_loses_their_powers(room, moderator, viewer):
    from rooms.services import do_set_role

    do_set_role(None, room_id=room.pk, username=moderator.username, role="member")

    with pytest.raises(ChatError) as refused:
        moderation.check_mute(moderator, room_id=room.pk, user=viewer.pk, seconds=60)

    assert refused.value.code == FORBIDDEN
    assert not Mute.objects.exists()
