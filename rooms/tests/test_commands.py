"""Management commands: the same services, with CommandError for a wrong name and nothing half-applied."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from rooms.models import LedgerEntry, Membership, Message, Room, RoomEvent, Wallet
from rooms.services import balance_of

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# create_room.


def test_create_room_makes_a_room_hosted_by_the_user(viewer):
    output = run("create_room", "vic-live", "--title", "Vic live", "--host", viewer.username)

    assert "vic-live" in output
    room = Room.objects.get(slug="vic-live")
    assert (room.title, room.owner) == ("Vic live", viewer)
    assert list(Membership.objects.filter(room=room).values_list("user_id", "role")) == [(viewer.pk, "host")]


def test_create_room_for_an_unknown_host_fails_and_creates_nothing(db):
    with pytest.raises(CommandError, match="nobody"):
        run("create_room", "orphan", "--title", "Orphan", "--host", "nobody")
    assert not Room.objects.exists()


@pytest.mark.parametrize("slug", ["has space", "-dash-first", "under_score", "x" * 65])
def test_create_room_with_a_bad_slug_fails_and_creates_nothing(viewer, slug):
    with pytest.raises(CommandError, match="slug"):
        run("create_room", slug, "--title", "Title", "--host", viewer.username)
    assert not Room.objects.exists()
    viewer.refresh_from_db()
    assert not viewer.is_staff


def test_create_room_with_a_taken_slug_fails(room, viewer):
    with pytest.raises(CommandError, match="already exists"):
        run("create_room", room.slug, "--title", "Copy", "--host", viewer.username)
    assert Room.objects.count() == 1


def test_create_room_needs_a_title_and_a_host(viewer):
    with pytest.raises(CommandError):
        run("create_room", "untitled", "--host", viewer.username)
    with pytest.raises(CommandError):
        run("create_room", "hostless", "--title", "Hostless")
    assert not Room.objects.exists()


# set_role.


def test_set_role_appoints_a_moderator(room, viewer):
    output = run("set_role", room.slug, viewer.username, "moderator")

    assert "moderator" in output
    assert Membership.objects.get(room=room, user=viewer).role == "moderator"


def test_set_role_member_removes_a_moderator(room, moderator):
    run("set_role", room.slug, moderator.username, "member")
    assert not Membership.objects.filter(room=room, user=moderator).exists()


def test_set_role_for_an_unknown_user_fails(room):
    with pytest.raises(CommandError, match="ghost"):
        run("set_role", room.slug, "ghost", "moderator")
    assert Membership.objects.filter(room=room).count() == 1


def test_set_role_in_an_unknown_room_fails(viewer):
    with pytest.raises(CommandError, match="room"):
        run("set_role", "no-such-room", viewer.username, "moderator")
    assert not Membership.objects.filter(user=viewer).exists()


def test_set_role_with_an_unknown_role_fails(room, viewer):
    with pytest.raises(CommandError):
        run("set_role", room.slug, viewer.username, "admin")
    assert not Membership.objects.filter(user=viewer).exists()


def test_set_role_cannot_make_the_owner_a_plain_member(room, host):
    with pytest.raises(CommandError, match="owner"):
        run("set_role", room.slug, host.username, "member")
    assert Membership.objects.get(room=room, user=host).role == "host"


# seed_demo.


def demo_counts():
    return {
        model.__name__: model.objects.count()
        for model in (get_user_model(), Room, Membership, Message, RoomEvent, Wallet, LedgerEntry)
    }


def test_seed_demo_creates_a_live_room_a_team_and_viewers_with_coins(db):
    run("seed_demo")

    User = get_user_model()
    lobby = Room.objects.get(slug="lobby")
    assert lobby.is_live and lobby.owner.username == "streamer"
    assert not Room.objects.get(slug="chill").is_live
    assert Membership.objects.get(room=lobby, user__username="mod").role == "moderator"
    assert Message.objects.filter(room=lobby).count() == 1
    assert User.objects.get(username="admin").is_superuser
    for name in ("alice", "bob"):
        user = User.objects.get(username=name)
        assert user.check_password("chatsite-demo")
        assert balance_of(user.pk) == 1000


def test_seed_demo_is_idempotent(db):
    run("seed_demo")
    first = demo_counts()
    run("seed_demo")

    assert demo_counts() == first
    assert Room.objects.get(slug="lobby").last_seq == RoomEvent.objects.filter(room__slug="lobby").count()


def test_seed_demo_keeps_what_an_operator_changed(db):
    run("seed_demo")
    Room.objects.filter(slug="lobby").update(title="Renamed by the host")

    run("seed_demo")

    assert Room.objects.get(slug="lobby").title == "Renamed by the host"
