"""Deleting an account forgets its name in the stored log: every place an event shows the
user keeps their id and shows a neutral name instead, on the socket and in the API."""

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.db.models import ProtectedError

from conftest import make_user
from moderation.services import do_delete_message, do_mute
from rooms.models import RoomEvent
from rooms.services import do_announce, do_grant_coins, do_send_message, do_send_tip
from rooms.services.retention import DELETED_USER_NAME, do_forget_user_names

pytestmark = pytest.mark.django_db(transaction=True)


def user_objects(value, user_id):
    """Every user-shaped object of `user_id` inside an event."""
    if isinstance(value, dict):
        if value.get("id") == user_id and "role" in value and "name" in value:
            yield value
        for item in value.values():
            yield from user_objects(item, user_id)
    elif isinstance(value, list):
        for item in value:
            yield from user_objects(item, user_id)


@database_sync_to_async
def leaver_everywhere_in_the_log(room, host):
    """Events showing `leaver` as message author, mention, quoted author, moderation
    target and actor, notice author and deleter. Returns (leaver, bystander)."""
    leaver = make_user("lea_leaver")
    bystander = make_user("bo_bystander")
    own = do_send_message(leaver, room_id=room.pk, body="hello all")
    do_send_message(bystander, room_id=room.pk, body="hi @lea_leaver", reply_to_id=own.pk)
    do_mute(host, room_id=room.pk, target_id=leaver.pk, seconds=60, reason="calm down")
    from rooms.services import do_set_role

    do_set_role(None, room_id=room.pk, username=leaver.username, role="moderator")
    do_announce(leaver, room_id=room.pk, body="Be nice", level="info")
    other = do_send_message(bystander, room_id=room.pk, body="oops")
    do_delete_message(leaver, message_id=other.pk)
    do_mute(leaver, room_id=room.pk, target_id=bystander.pk, seconds=60, reason="oops")
    return leaver, bystander


@database_sync_to_async
def delete_user(user) -> None:
    user.delete()


async def test_deleting_a_user_blanks_their_name_in_the_welcome_history_and_the_events_api(
    connect, client, room, host, viewer
):
    leaver, bystander = await leaver_everywhere_in_the_log(room, host)
    leaver_id = leaver.pk
    before = await database_sync_to_async(lambda: list(RoomEvent.objects.filter(room=room).order_by("seq")))()
    shown_before = sum(len(list(user_objects(e.data, leaver_id))) for e in before)

    await delete_user(leaver)
    welcome_history = (await connect(room, viewer, after=0)).welcome["history"]
    api_events = (await database_sync_to_async(client.get)(f"/api/rooms/{room.slug}/events")).json()["events"]

    assert shown_before == 7
    for events in (welcome_history, api_events):
        shown = [u for e in events for u in user_objects(e, leaver_id)]
        assert len(shown) == shown_before
        assert {u["name"] for u in shown} == {DELETED_USER_NAME}
        # Nobody else lost their name, and nothing else changed.
        assert all(u["name"] == bystander.username for e in events for u in user_objects(e, bystander.pk))
        assert "lea_leaver" not in str([{k: v for k, v in e.items() if k != "body"} for e in events])
    by_type = {e["type"]: e for e in api_events}
    assert by_type["notice"]["by"] == {"id": leaver_id, "name": DELETED_USER_NAME, "role": "moderator"}
    reply = next(e for e in api_events if e["type"] == "message" and e["reply_to"])
    assert reply["reply_to"]["author"]["name"] == DELETED_USER_NAME
    assert reply["mentions"] == [{"id": leaver_id, "name": DELETED_USER_NAME, "role": "member"}]
    assert by_type["message_deleted"]["by"]["name"] == DELETED_USER_NAME


async def test_a_delete_that_fails_keeps_the_names(room, host, viewer):
    # Coins leave a ledger that protects the account: the delete fails, and with it
    # (one transaction) the blanking.
    await database_sync_to_async(do_grant_coins)(None, user_id=viewer.pk, amount=5)
    await database_sync_to_async(do_send_message)(viewer, room_id=room.pk, body="still here")

    with pytest.raises(ProtectedError):
        await delete_user(viewer)

    data = await database_sync_to_async(lambda: RoomEvent.objects.get(room=room, seq=1).data)()
    assert data["author"]["name"] == viewer.username


def test_forgetting_a_tipper_blanks_the_tips_from(room, viewer, outsider):
    do_grant_coins(None, user_id=viewer.pk, amount=100)
    do_send_tip(viewer, room_id=room.pk, amount=10, body="gg", client_id="t1")
    do_send_message(outsider, room_id=room.pk, body="thanks @vic_viewer")

    changed = do_forget_user_names(None, user_id=viewer.pk)

    tip, message = (e.data for e in RoomEvent.objects.filter(room=room).order_by("seq"))
    assert changed == 2
    assert tip["from"] == {"id": viewer.pk, "name": DELETED_USER_NAME, "role": "member"}
    assert message["mentions"][0]["name"] == DELETED_USER_NAME
    assert message["author"]["name"] == outsider.username
    assert get_user_model().objects.filter(pk=viewer.pk).exists()
