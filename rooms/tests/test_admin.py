"""The Django admin as hosts and staff use it: each host sees and acts on their own rooms
only, and every change goes through the same services as the room page (events in the
log, audit rows)."""

from datetime import timedelta

import pytest
from django.db.models import Model
from django.test import TestCase
from django.urls import reverse

from conftest import make_user
from moderation.models import AuditEntry, Ban, Mute
from moderation.services import do_ban, do_block, do_mute
from rooms.models import LedgerEntry, Membership, Notice, Room, RoomEvent, Tip, Wallet
from rooms.permissions import MODERATOR, actor_rank
from rooms.services import check_send_tip, do_create_room, do_grant_coins, do_send_message

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_host(db):
    # Hosts the side stage only; nothing in `room` is theirs.
    return make_user("olga_other")


@pytest.fixture
def side_room(other_host):
    return do_create_room(None, slug="side-stage", title="Side stage", host_username=other_host.username)


@pytest.fixture
def activity(room, side_room, viewer, outsider, staff):
    """A message, a mute, a ban, an audit row and a tip in each room."""
    do_grant_coins(None, user_id=viewer.pk, amount=100)
    rows = {}
    for each in (room, side_room):
        rows[each.slug] = {
            "message": do_send_message(viewer, room_id=each.pk, body=f"hello {each.slug}"),
            "tip": check_send_tip(viewer, room_id=each.pk, amount=10, client_id=f"tip-{each.slug}"),
        }
        do_mute(staff, room_id=each.pk, target_id=viewer.pk, seconds=600)
        do_ban(staff, room_id=each.pk, target_id=outsider.pk)
    do_block(viewer, target_id=outsider.pk)
    return rows


@pytest.fixture
def as_host(client, host, room):
    client.force_login(host)
    return client


@pytest.fixture
def as_staff(client, staff):
    client.force_login(staff)
    return client


def changelist(name):
    return reverse(f"admin:{name}_changelist")


def listed(client, name) -> list[Model]:
    response = client.get(changelist(name))
    assert response.status_code == 200, f"{name}: {response.status_code}"
    return list(response.context["cl"].result_list)


def room_of(row) -> int:
    return row.pk if isinstance(row, Room) else row.room_id


def act(client, name, action, rows, **extra):
    """Run an admin action on `rows` from the changelist, publishing after commit."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(
            changelist(name),
            {"action": action, "_selected_action": [str(r.pk) for r in rows], "index": "0", **extra},
            follow=True,
        )


def post(client, url, data):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(url, data)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def change_form_data(response) -> dict:
    """The POST body the change form would submit as rendered, inlines included."""

    def wire(value):
        if isinstance(value, bool):
            return "on" if value else None
        if value is None:
            return ""
        if isinstance(value, Model):
            return str(value.pk)
        return value

    data = {}
    form = response.context["adminform"].form
    for name in form.fields:
        value = wire(form[name].value())
        if value is not None:
            data[form.add_prefix(name)] = value
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = wire(management[name].value())
        for each in formset.forms:
            for name in each.fields:
                value = wire(each[name].value())
                if value is not None:
                    data[each.add_prefix(name)] = value
    return data


# Who sees what.

SCOPED = ["rooms_room", "rooms_message", "moderation_mute", "moderation_ban", "moderation_auditentry", "rooms_tip"]


@pytest.mark.parametrize("name", SCOPED)
def test_staff_sees_every_rooms_rows(as_staff, room, side_room, activity, name):
    rows = listed(as_staff, name)

    assert {room_of(r) for r in rows} == {room.pk, side_room.pk}


@pytest.mark.parametrize("name", SCOPED)
def test_host_sees_only_their_own_rooms_rows(as_host, host, room, side_room, activity, name):
    host.refresh_from_db()
    assert host.is_staff and not host.is_superuser

    rows = listed(as_host, name)

    assert rows
    assert {room_of(r) for r in rows} == {room.pk}


@pytest.mark.parametrize(
    ("name", "pick"),
    [
        ("rooms_room", lambda a, side: side),
        ("rooms_message", lambda a, side: a["side-stage"]["message"]),
        ("rooms_tip", lambda a, side: a["side-stage"]["tip"]),
        ("moderation_mute", lambda a, side: Mute.objects.get(room=side)),
        ("moderation_ban", lambda a, side: Ban.objects.get(room=side)),
        ("moderation_auditentry", lambda a, side: AuditEntry.objects.filter(room=side).first()),
    ],
)
def test_host_cannot_open_another_rooms_rows(as_host, side_room, activity, name, pick):
    row = pick(activity, side_room)

    response = as_host.get(reverse(f"admin:{name}_change", args=[row.pk]))

    # The admin answers a row outside the host's queryset as missing: a redirect home.
    assert response.status_code in (302, 403, 404)
    if response.status_code == 302:
        assert response.url == reverse("admin:index")


def test_host_opens_their_own_rooms_change_page(as_host, room):
    response = as_host.get(reverse("admin:rooms_room_change", args=[room.pk]))

    assert response.status_code == 200
    assert response.context["original"] == room


@pytest.mark.parametrize("name", ["rooms_wallet", "rooms_ledgerentry", "moderation_block"])
def test_host_cannot_see_wallets_ledger_or_blocks(as_host, activity, name):
    assert as_host.get(changelist(name)).status_code == 403
    index = as_host.get(reverse("admin:index"))
    assert changelist(name) not in index.content.decode()


@pytest.mark.parametrize("name", ["rooms_wallet", "rooms_ledgerentry", "moderation_block"])
def test_staff_sees_wallets_ledger_and_blocks(as_staff, activity, name):
    assert listed(as_staff, name)


def test_host_sees_a_deleted_message_as_deleted_and_staff_can_still_read_it(client, host, staff, room, viewer):
    from moderation.services import do_delete_message

    message = do_send_message(viewer, room_id=room.pk, body="the secret plan")
    do_delete_message(host, message_id=message.pk)
    url = reverse("admin:rooms_message_change", args=[message.pk])

    client.force_login(host)
    assert "the secret plan" not in client.get(url).content.decode()
    client.force_login(staff)
    assert "the secret plan" in client.get(url).content.decode()


def test_a_plain_member_cannot_enter_the_admin(client, viewer):
    client.force_login(viewer)

    response = client.get(changelist("rooms_room"))

    assert response.status_code == 302
    assert reverse("admin:login") in response.url


# Admin actions go through the services.


def test_delete_messages_action_redacts_and_publishes(as_host, host, room, viewer, broadcasts):
    message = do_send_message(viewer, room_id=room.pk, body="something rude")

    response = act(as_host, "rooms_message", "delete_messages", [message])

    assert response.status_code == 200
    assert any("Deleted message" in m for m in messages_of(response))
    message.refresh_from_db()
    assert message.deleted_by == host
    logged = RoomEvent.objects.get(room=room, seq=message.seq).data
    assert (logged["body"], logged["deleted"]) == ("", True)
    audit = AuditEntry.objects.get()
    assert (audit.action, audit.actor, audit.target) == ("delete", host, viewer)
    assert [(e["type"], e["id"]) for e in broadcasts] == [("message_deleted", message.pk)]


def test_mute_action_mutes_authors_for_ten_minutes(as_host, host, room, viewer, broadcasts):
    message = do_send_message(viewer, room_id=room.pk, body="spam spam")

    act(as_host, "rooms_message", "mute_authors_10_min", [message])

    mute = Mute.objects.get()
    assert (mute.room, mute.user, mute.by) == (room, viewer, host)
    assert mute.until - mute.created_at == timedelta(minutes=10)
    assert AuditEntry.objects.get().action == "mute"
    [event] = broadcasts
    assert (event["action"], event["target"]["id"], event["seconds"]) == ("mute", viewer.pk, 600)


def test_ban_action_bans_authors_and_closes_their_sockets(as_host, host, room, viewer, broadcasts):
    message = do_send_message(viewer, room_id=room.pk, body="abuse")

    act(as_host, "rooms_message", "ban_authors", [message])

    ban = Ban.objects.get()
    assert (ban.room, ban.user, ban.by, ban.until) == (room, viewer, host, None)
    assert AuditEntry.objects.get().action == "ban"
    assert broadcasts[0]["action"] == "ban"
    assert broadcasts.calls[0].close_user == (viewer.pk, 4403)


def test_a_refused_action_is_reported_and_changes_nothing(as_host, room, cohost_message, broadcasts):
    response = act(as_host, "rooms_message", "ban_authors", [cohost_message])

    assert any("equal or higher rank" in m for m in messages_of(response))
    assert not Ban.objects.exists()
    assert broadcasts == []


@pytest.fixture
def cohost_message(room):
    from rooms.services import do_set_role

    cohost = make_user("cora_cohost")
    do_set_role(None, room_id=room.pk, username=cohost.username, role="host")
    return do_send_message(cohost, room_id=room.pk, body="co-hosting tonight")


def test_host_actions_cannot_reach_another_rooms_messages(as_host, side_room, viewer, broadcasts):
    message = do_send_message(viewer, room_id=side_room.pk, body="not yours")

    act(as_host, "rooms_message", "delete_messages", [message])
    act(as_host, "rooms_message", "ban_authors", [message])

    message.refresh_from_db()
    assert message.deleted_at is None
    assert not Ban.objects.exists()
    assert broadcasts == []


@pytest.mark.parametrize(
    ("name", "model", "action"), [("moderation_mute", Mute, "unmute"), ("moderation_ban", Ban, "unban")]
)
def test_end_now_lifts_the_sanction_through_the_service(as_host, host, room, viewer, name, model, action, broadcasts):
    if model is Mute:
        do_mute(host, room_id=room.pk, target_id=viewer.pk, seconds=600)
    else:
        do_ban(host, room_id=room.pk, target_id=viewer.pk)
    row = model.objects.get()

    act(as_host, name, "end_now", [row])

    row.refresh_from_db()
    assert row.ended_at is not None and row.ended_by == host
    assert AuditEntry.objects.filter(action=action, actor=host, target=viewer).exists()
    assert [(e["action"], e["target"]["id"]) for e in broadcasts] == [(action, viewer.pk)]


# Adding rows.


def test_host_mutes_someone_from_the_add_form(as_host, host, room, viewer, broadcasts):
    response = post(
        as_host,
        reverse("admin:moderation_mute_add"),
        {"room": room.pk, "user": viewer.pk, "seconds": "600", "reason": "spam"},
    )

    assert response.status_code == 302
    mute = Mute.objects.get()
    assert (mute.room, mute.user, mute.by, mute.reason) == (room, viewer, host, "spam")
    assert mute.until - mute.created_at == timedelta(seconds=600)
    assert AuditEntry.objects.get().action == "mute"
    assert [(e["type"], e["action"]) for e in broadcasts] == [("moderation", "mute")]


def test_host_cannot_add_a_mute_in_a_room_they_do_not_host(as_host, side_room, viewer, broadcasts):
    response = post(
        as_host,
        reverse("admin:moderation_mute_add"),
        {"room": side_room.pk, "user": viewer.pk, "seconds": "600", "reason": "spam"},
    )

    assert response.status_code == 200
    assert "room" in response.context["adminform"].form.errors
    assert not Mute.objects.exists()
    assert broadcasts == []


def test_host_bans_someone_from_the_add_form_for_a_while(as_host, host, room, viewer, broadcasts):
    post(as_host, reverse("admin:moderation_ban_add"), {"room": room.pk, "user": viewer.pk, "seconds": "3600"})

    ban = Ban.objects.get()
    assert ban.until - ban.created_at == timedelta(hours=1)
    assert broadcasts.calls[0].close_user == (viewer.pk, 4403)


def test_a_refused_ban_from_the_add_form_is_reported_and_stores_nothing(as_host, room, cohost_message, broadcasts):
    response = post(
        as_host, reverse("admin:moderation_ban_add"), {"room": room.pk, "user": cohost_message.author_id, "reason": ""}
    )

    followed = as_host.get(response.url) if response.status_code == 302 else response
    assert any("equal or higher rank" in m for m in messages_of(followed))
    assert not Ban.objects.exists()
    assert broadcasts == []


def test_staff_posts_a_site_notice_from_the_notice_admin(as_staff, staff, room, side_room, broadcasts):
    response = post(
        as_staff, reverse("admin:rooms_notice_add"), {"room": "", "level": "warning", "body": "Maintenance"}
    )

    assert response.status_code == 302
    notice = Notice.objects.get()
    assert (notice.room, notice.scope, notice.by, notice.body) == (None, "site", staff, "Maintenance")
    assert sorted(c.room_id for c in broadcasts.calls) == sorted([room.pk, side_room.pk])
    assert {e["scope"] for e in broadcasts} == {"site"}


def test_host_cannot_post_a_site_notice(as_host, room, side_room, broadcasts):
    response = post(as_host, reverse("admin:rooms_notice_add"), {"room": "", "level": "info", "body": "Everyone!"})

    assert response.status_code == 200
    assert "room" in response.context["adminform"].form.errors
    assert not Notice.objects.exists()
    assert broadcasts == []


def test_host_announces_in_their_room_from_the_notice_admin(as_host, host, room, broadcasts):
    response = post(as_host, reverse("admin:rooms_notice_add"), {"room": room.pk, "level": "info", "body": "Hi all"})

    assert response.status_code == 302
    notice = Notice.objects.get()
    assert (notice.room, notice.by) == (room, host)
    assert [(e["type"], e["scope"], e["body"]) for e in broadcasts] == [("notice", "room", "Hi all")]


def test_host_cannot_post_a_notice_to_a_room_they_do_not_host(as_host, side_room, broadcasts):
    response = post(as_host, reverse("admin:rooms_notice_add"), {"room": side_room.pk, "level": "info", "body": "Hi"})

    assert response.status_code == 200
    assert "room" in response.context["adminform"].form.errors
    assert not Notice.objects.exists()
    assert broadcasts == []


def test_host_appoints_a_moderator_from_the_membership_admin(as_host, room, outsider):
    response = post(
        as_host, reverse("admin:rooms_membership_add"), {"room": room.pk, "user": outsider.pk, "role": "moderator"}
    )

    assert response.status_code == 302
    membership = Membership.objects.get(user=outsider)
    assert (membership.room, membership.role) == (room, "moderator")
    assert actor_rank(outsider, room) == MODERATOR


def test_host_cannot_appoint_in_a_room_they_do_not_host(as_host, side_room, outsider):
    response = post(
        as_host, reverse("admin:rooms_membership_add"), {"room": side_room.pk, "user": outsider.pk, "role": "host"}
    )

    assert response.status_code == 200
    assert not Membership.objects.filter(user=outsider).exists()


def test_remove_from_team_makes_a_moderator_a_member_again(as_host, room, moderator):
    membership = Membership.objects.get(user=moderator)

    act(as_host, "rooms_membership", "remove_from_team", [membership])

    assert not Membership.objects.filter(user=moderator).exists()
    assert actor_rank(moderator, room) < MODERATOR


def test_remove_from_team_never_removes_the_owner(as_host, host, room):
    membership = Membership.objects.get(user=host)

    response = act(as_host, "rooms_membership", "remove_from_team", [membership])

    assert Membership.objects.filter(user=host, role="host").exists()
    assert any("owner" in m for m in messages_of(response))


# Changing a room.


def test_staff_retitles_a_room_and_viewers_get_a_room_event(as_staff, room, broadcasts):
    url = reverse("admin:rooms_room_change", args=[room.pk])
    data = change_form_data(as_staff.get(url))
    data["title"] = "Late night"

    response = post(as_staff, url, data)

    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    room.refresh_from_db()
    assert room.title == "Late night"
    assert [(e["type"], e["title"], e["is_live"]) for e in broadcasts] == [("room", "Late night", False)]


def test_going_live_in_the_admin_sets_live_since(as_host, room, broadcasts):
    url = reverse("admin:rooms_room_change", args=[room.pk])
    data = change_form_data(as_host.get(url))
    data["is_live"] = "on"

    post(as_host, url, data)

    room.refresh_from_db()
    assert room.is_live and room.live_since is not None
    assert [(e["type"], e["is_live"]) for e in broadcasts] == [("room", True)]


def test_slow_mode_change_in_the_admin_is_a_moderation_event(as_host, host, room, broadcasts):
    url = reverse("admin:rooms_room_change", args=[room.pk])
    data = change_form_data(as_host.get(url))
    data["slow_mode_seconds"] = "30"

    post(as_host, url, data)

    room.refresh_from_db()
    assert room.slow_mode_seconds == 30
    assert [(e["type"], e["action"], e["seconds"]) for e in broadcasts] == [("moderation", "slow_mode", 30)]
    assert AuditEntry.objects.get().actor == host


def test_unchanged_room_form_publishes_nothing(as_staff, room, broadcasts):
    url = reverse("admin:rooms_room_change", args=[room.pk])

    post(as_staff, url, change_form_data(as_staff.get(url)))

    assert broadcasts == []
    assert Room.objects.get(pk=room.pk).last_seq == 0


def test_staff_creates_a_room_from_the_admin(as_staff, outsider):
    url = reverse("admin:rooms_room_add")
    data = change_form_data(as_staff.get(url))
    data.update(slug="late-show", title="Late show", owner=str(outsider.pk), slow_mode_seconds="0")

    response = post(as_staff, url, data)

    assert response.status_code == 302
    room = Room.objects.get(slug="late-show")
    assert (room.owner, room.title) == (outsider, "Late show")
    assert Membership.objects.get(room=room).role == "host"


def test_host_cannot_change_another_room(as_host, side_room, broadcasts):
    url = reverse("admin:rooms_room_change", args=[side_room.pk])

    response = post(as_host, url, {"title": "Hijacked", "slow_mode_seconds": "0"})

    assert response.status_code in (302, 403, 404)
    side_room.refresh_from_db()
    assert side_room.title == "Side stage"
    assert broadcasts == []


def test_wallet_grant_action_is_staff_only_and_writes_the_ledger(as_staff, staff, viewer):
    do_grant_coins(None, user_id=viewer.pk, amount=5)
    wallet = Wallet.objects.get(user=viewer)

    act(as_staff, "rooms_wallet", "grant_100", [wallet])

    wallet.refresh_from_db()
    assert wallet.balance == 105
    assert LedgerEntry.objects.filter(user=viewer, kind="grant", by=staff, amount=100).exists()


def test_tips_are_read_only_for_hosts(as_host, room, activity):
    tip = activity["main-stage"]["tip"]

    response = as_host.get(reverse("admin:rooms_tip_change", args=[tip.pk]))

    assert response.status_code == 200
    assert not response.context["has_change_permission"]
    assert Tip.objects.filter(room=room).count() == 1
