"""Powers taken away (or given) while a socket is open take effect on that socket at
once: it keeps no stale user object or permission cache. Embedded mode; the same over
two real processes is in tests/live/test_multiprocess_standing.py."""

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Group, Permission

from moderation.models import Mute
from moderation.tests.test_consumer import brief, until
from rooms.services import do_set_role

pytestmark = pytest.mark.django_db(transaction=True)


def moderate_all_rooms() -> Permission:
    return Permission.objects.get(codename="moderate_all_rooms", content_type__app_label="rooms")


async def mute_attempt(client, target, client_id: str) -> dict:
    """Send a mute and return its one ack or error."""
    await client.send({"type": "mute", "user": target.pk, "seconds": 60, "client_id": client_id})

    def matches(event):
        return event.get("client_id") == client_id and event["type"] in ("ack", "error")

    for event in client.events:
        if matches(event):
            return event
    event, _ = await client.receive_until(matches, what=f"the answer to {client_id}")
    return event


async def test_superuser_demoted_while_connected_gets_forbidden(connect, room, staff, viewer):
    sock = await connect(room, staff)
    assert sock.welcome["you"]["staff"] is True

    def demote():
        staff.is_superuser = False
        staff.is_staff = False
        staff.save()

    await database_sync_to_async(demote)()

    you = await until(sock, "you")
    assert you["role"] == "member" and "staff" not in you
    refused = await mute_attempt(sock, viewer, "m-1")
    assert refused["type"] == "error" and refused["code"] == "forbidden"
    assert not await database_sync_to_async(Mute.objects.exists)()


async def test_staff_losing_the_permission_while_connected_gets_forbidden(connect, room, staff2, viewer):
    sock = await connect(room, staff2)
    assert sock.welcome["you"]["staff"] is True

    await database_sync_to_async(lambda: staff2.user_permissions.remove(moderate_all_rooms()))()

    you = await until(sock, "you")
    assert "staff" not in you
    assert (await mute_attempt(sock, viewer, "m-1"))["code"] == "forbidden"


@database_sync_to_async
def make_group_staff():
    """A staff member through a group that holds the site-staff permission."""
    from conftest import make_user

    group = Group.objects.create(name="site moderators")
    group.permissions.add(moderate_all_rooms())
    user = make_user("gus_groupstaff", is_staff=True)
    user.groups.add(group)
    return group, user


async def test_staff_through_a_group_loses_powers_when_the_group_does(connect, room, viewer):
    group, member = await make_group_staff()
    sock = await connect(room, member)
    assert sock.welcome["you"]["staff"] is True

    await database_sync_to_async(lambda: group.permissions.remove(moderate_all_rooms()))()

    assert "staff" not in await until(sock, "you")
    assert (await mute_attempt(sock, viewer, "m-1"))["code"] == "forbidden"


async def test_leaving_a_staff_group_takes_the_powers_away(connect, room, viewer):
    group, member = await make_group_staff()
    sock = await connect(room, member)

    await database_sync_to_async(lambda: member.groups.clear())()

    assert "staff" not in await until(sock, "you")
    assert (await mute_attempt(sock, viewer, "m-1"))["code"] == "forbidden"


async def test_demoted_moderator_gets_forbidden_and_the_roster_shows_the_new_role(connect, room, moderator, viewer):
    mod = await connect(room, moderator)
    vic = await connect(room, viewer)
    assert mod.welcome["you"]["role"] == "moderator"

    await database_sync_to_async(do_set_role)(None, room_id=room.pk, username=moderator.username, role="member")

    assert (await until(mod, "you"))["role"] == "member"
    delta = await until(vic, "presence", team=[])
    assert delta["changed"] == [brief(moderator, "member")]
    assert (await mute_attempt(mod, viewer, "m-1"))["code"] == "forbidden"

    await vic.send({"type": "roster", "client_id": "r-1"})
    roster = await until(vic, "roster", client_id="r-1")
    assert roster["team"] == []
    assert brief(moderator, "member") in roster["audience"]


async def test_a_viewer_appointed_moderator_can_moderate_at_once(connect, room, viewer, outsider):
    vic = await connect(room, viewer)
    await connect(room, outsider)
    assert (await mute_attempt(vic, outsider, "m-1"))["code"] == "forbidden"

    await database_sync_to_async(do_set_role)(None, room_id=room.pk, username=viewer.username, role="moderator")

    assert (await until(vic, "you"))["role"] == "moderator"
    assert (await mute_attempt(vic, outsider, "m-2"))["type"] == "ack"


async def test_a_rolled_back_demotion_tells_nobody(connect, room, staff):
    from django.db import transaction

    sock = await connect(room, staff)

    def demote_then_fail():
        with transaction.atomic():
            staff.is_superuser = False
            staff.save()
            transaction.set_rollback(True)

    await database_sync_to_async(demote_then_fail)()

    await sock.expect_nothing()
