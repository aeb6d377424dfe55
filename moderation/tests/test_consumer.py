"""Moderation over the WebSocket, in the embedded mode (in-memory channel layer): what
the actor, the target and bystanders see, and what the server closes."""

import json

import pytest
from channels.db import database_sync_to_async

from moderation.models import Ban, Block, Mute
from rooms.models import Message, Room

pytestmark = pytest.mark.django_db(transaction=True)


async def db(fn):
    return await database_sync_to_async(fn)()


async def until(client, kind, **fields):
    """The first `kind` event with `fields` this client has received, reading on if needed.
    Lets a test wait for an ack and an event in either order."""

    def matches(event):
        return event["type"] == kind and all(event.get(k) == v for k, v in fields.items())

    for event in client.events:
        if matches(event):
            return event
    event, _ = await client.receive_until(matches, what=f"a {kind!r} event with {fields}")
    return event


async def still_open(client, client_id="still-there"):
    await client.send({"type": "ping", "ts": 1, "client_id": client_id})
    pong = await until(client, "pong", client_id=client_id)
    assert client.close_code is None
    return pong


def brief(user, role="member"):
    return {"id": user.pk, "name": user.get_username(), "role": role}


# Mute.


async def test_moderator_mutes_a_viewer_who_then_gets_muted_error_with_retry_after(connect, room, moderator, viewer):
    mod = await connect(room, moderator)
    vic = await connect(room, viewer)

    await mod.send({"type": "mute", "user": viewer.pk, "seconds": 60, "reason": "spam", "client_id": "m-1"})

    ack = await until(mod, "ack", client_id="m-1")
    seen_by_mod = await until(mod, "moderation", action="mute")
    seen_by_vic = await until(vic, "moderation", action="mute")
    assert ack["seq"] == seen_by_mod["seq"] == seen_by_vic["seq"] == 1
    assert seen_by_vic["target"] == brief(viewer)
    assert seen_by_vic["by"] == brief(moderator, "moderator")
    assert (seen_by_vic["seconds"], seen_by_vic["reason"]) == (60, "spam")
    mute = await db(lambda: Mute.objects.get(room=room, user=viewer, ended_at__isnull=True))
    assert mute.by_id == moderator.pk

    await vic.send({"type": "send", "body": "can anyone hear me", "client_id": "v-1"})

    error = await until(vic, "error", client_id="v-1")
    assert error["code"] == "muted"
    assert 0 < error["retry_after"] <= 60
    assert await db(lambda: Message.objects.count()) == 0
    await mod.expect_nothing()


async def test_a_muted_viewer_reconnecting_is_told_until_when(connect, room, moderator, viewer):
    mod = await connect(room, moderator)
    await mod.send({"type": "mute", "user": viewer.username, "seconds": 600, "client_id": "m-1"})
    await until(mod, "ack", client_id="m-1")

    vic = await connect(room, viewer)

    mute = await db(lambda: Mute.objects.get())
    assert vic.welcome["you"]["muted_until"] is not None
    assert vic.welcome["you"]["muted_until"].replace("Z", "+00:00") == mute.until.isoformat()


async def test_unmute_over_the_socket_lets_the_viewer_chat_again(connect, room, moderator, viewer):
    mod = await connect(room, moderator)
    vic = await connect(room, viewer)
    await mod.send({"type": "mute", "user": viewer.pk, "seconds": 60, "client_id": "m-1"})
    await until(mod, "ack", client_id="m-1")

    await mod.send({"type": "unmute", "user": viewer.pk, "client_id": "m-2"})

    ack = await until(mod, "ack", client_id="m-2")
    unmute = await until(vic, "moderation", action="unmute")
    assert ack["seq"] == unmute["seq"] == 2
    await vic.send({"type": "send", "body": "thanks", "client_id": "v-1"})
    assert (await until(vic, "ack", client_id="v-1"))["seq"] == 3


# Kick and ban.


async def test_kick_delivers_the_event_then_closes_the_target_with_4000_and_others_stay(
    connect, room, moderator, viewer, outsider
):
    mod = await connect(room, moderator)
    vic = await connect(room, viewer)
    out = await connect(room, outsider)

    await mod.send({"type": "kick", "user": viewer.pk, "client_id": "k-1"})

    ack = await until(mod, "ack", client_id="k-1")
    kicked = await until(vic, "moderation", action="kick")
    assert kicked["seq"] == ack["seq"]
    assert kicked["target"] == brief(viewer)
    assert await vic.expect_close(4000) == 4000
    assert (await until(out, "moderation", action="kick"))["seq"] == ack["seq"]
    await still_open(out)
    await still_open(mod)
    # A kick is not a ban: the viewer may come straight back.
    again = await connect(room, viewer)
    assert again.welcome["you"]["id"] == viewer.pk


async def test_kick_closes_every_connection_of_the_target(connect, room, moderator, viewer):
    mod = await connect(room, moderator)
    tabs = [await connect(room, viewer, label=f"vic-{i}") for i in range(2)]

    await mod.send({"type": "kick", "user": viewer.pk, "client_id": "k-1"})

    for tab in tabs:
        await until(tab, "moderation", action="kick")
        assert await tab.expect_close() == 4000
    await still_open(mod)


async def test_ban_closes_the_target_with_4403_and_refuses_its_new_connections(connect, room, host, viewer, outsider):
    hana = await connect(room, host)
    vic = await connect(room, viewer)
    out = await connect(room, outsider)

    await hana.send({"type": "ban", "user": viewer.pk, "reason": "abuse", "client_id": "b-1"})

    ack = await until(hana, "ack", client_id="b-1")
    banned = await until(vic, "moderation", action="ban")
    assert banned["seq"] == ack["seq"]
    assert (banned["until"], banned["seconds"], banned["reason"]) == (None, None, "abuse")
    assert await vic.expect_close(4403) == 4403
    await until(out, "moderation", action="ban")
    await still_open(out)
    assert await db(lambda: Ban.objects.filter(user=viewer, ended_at__isnull=True).count()) == 1

    retry = await connect(room, viewer, welcome=False)

    assert retry.accepted
    assert await retry.expect_close(4403) == 4403
    assert [e["type"] for e in retry.events] == []


async def test_a_ban_closes_only_the_connections_to_that_room(connect, room, host, viewer, outsider):
    from rooms.services import do_create_room

    other = await db(
        lambda: do_create_room(None, slug="side-stage", title="Side stage", host_username=outsider.username)
    )
    hana = await connect(room, host)
    here = await connect(room, viewer, label="vic-here")
    elsewhere = await connect(other, viewer, label="vic-elsewhere")

    await hana.send({"type": "ban", "user": viewer.pk, "client_id": "b-1"})

    await until(here, "moderation", action="ban")
    assert await here.expect_close() == 4403
    await elsewhere.expect_nothing()
    await still_open(elsewhere)


async def test_a_timed_ban_over_the_socket_says_until_when(connect, room, host, viewer):
    hana = await connect(room, host)
    vic = await connect(room, viewer)

    await hana.send({"type": "ban", "user": viewer.pk, "seconds": 3600, "client_id": "b-1"})

    banned = await until(vic, "moderation", action="ban")
    ban = await db(lambda: Ban.objects.get())
    assert banned["seconds"] == 3600
    assert banned["until"].replace("Z", "+00:00") == ban.until.isoformat()
    await vic.expect_close(4403)


async def test_unban_lets_the_user_connect_again(connect, room, host, viewer):
    hana = await connect(room, host)
    await hana.send({"type": "ban", "user": viewer.pk, "client_id": "b-1"})
    await until(hana, "ack", client_id="b-1")

    await hana.send({"type": "unban", "user": viewer.pk, "client_id": "b-2"})

    ack = await until(hana, "ack", client_id="b-2")
    assert (await until(hana, "moderation", action="unban"))["seq"] == ack["seq"]
    vic = await connect(room, viewer)
    assert vic.welcome["you"]["id"] == viewer.pk


async def test_moderator_ban_over_the_socket_is_forbidden_and_the_target_stays(connect, room, moderator, viewer):
    mod = await connect(room, moderator)
    vic = await connect(room, viewer)

    await mod.send({"type": "ban", "user": viewer.pk, "client_id": "b-1"})

    error = await until(mod, "error", client_id="b-1")
    assert error["code"] == "forbidden"
    assert not await db(lambda: Ban.objects.exists())
    await vic.expect_nothing()
    await still_open(vic)


# Deleting messages.


async def test_delete_reaches_everyone_and_a_resuming_client_gets_the_redacted_message(
    connect, room, moderator, viewer, outsider
):
    mod = await connect(room, moderator)
    vic = await connect(room, viewer)
    out = await connect(room, outsider)
    await vic.send({"type": "send", "body": "the secret plan", "client_id": "v-1"})
    sent = await until(vic, "ack", client_id="v-1")
    await until(out, "message", id=sent["id"])

    await mod.send({"type": "delete", "id": sent["id"], "client_id": "d-1"})

    ack = await until(mod, "ack", client_id="d-1")
    for client in (mod, vic, out):
        deleted = await until(client, "message_deleted", id=sent["id"])
        assert deleted["seq"] == ack["seq"] == sent["seq"] + 1
        assert deleted["by"] == brief(moderator, "moderator")
    message = await db(lambda: Message.objects.get(pk=sent["id"]))
    assert message.deleted_by_id == moderator.pk

    resumed = await connect(room, outsider, after=sent["seq"] - 1)

    history = resumed.welcome["history"]
    assert [e["type"] for e in history] == ["message", "message_deleted"]
    assert (history[0]["id"], history[0]["body"], history[0]["deleted"]) == (sent["id"], "", True)
    assert history[1]["id"] == sent["id"]
    assert "secret" not in json.dumps(resumed.welcome)
    fresh = await connect(room, viewer)
    assert "secret" not in json.dumps(fresh.welcome)


async def test_author_deletes_their_own_message_over_the_socket(connect, room, viewer, outsider):
    vic = await connect(room, viewer)
    out = await connect(room, outsider)
    await vic.send({"type": "send", "body": "typo", "client_id": "v-1"})
    sent = await until(vic, "ack", client_id="v-1")

    await vic.send({"type": "delete", "id": sent["id"], "client_id": "d-1"})

    ack = await until(vic, "ack", client_id="d-1")
    deleted = await until(out, "message_deleted", id=sent["id"])
    assert deleted["seq"] == ack["seq"]
    assert deleted["by"] == brief(viewer)


async def test_member_deleting_someone_elses_message_is_forbidden(connect, room, viewer, outsider):
    vic = await connect(room, viewer)
    out = await connect(room, outsider)
    await out.send({"type": "send", "body": "mine", "client_id": "o-1"})
    sent = await until(out, "ack", client_id="o-1")

    await vic.send({"type": "delete", "id": sent["id"], "client_id": "d-1"})

    error = await until(vic, "error", client_id="d-1")
    assert error["code"] == "forbidden"
    assert (await db(lambda: Message.objects.get(pk=sent["id"]))).deleted_at is None
    await still_open(vic)


# Slow mode.


async def test_slow_mode_is_announced_and_holds_members_to_the_interval(connect, room, moderator, viewer):
    mod = await connect(room, moderator)
    vic = await connect(room, viewer)

    await mod.send({"type": "slow_mode", "seconds": 30, "client_id": "s-1"})

    ack = await until(mod, "ack", client_id="s-1")
    event = await until(vic, "moderation", action="slow_mode")
    assert (event["seq"], event["seconds"], event["target"]) == (ack["seq"], 30, None)
    assert (await db(lambda: Room.objects.get(pk=room.pk))).slow_mode_seconds == 30

    await vic.send({"type": "send", "body": "one", "client_id": "v-1"})
    await until(vic, "ack", client_id="v-1")
    await vic.send({"type": "send", "body": "two", "client_id": "v-2"})

    error = await until(vic, "error", client_id="v-2")
    assert error["code"] == "slow_mode"
    assert 0 < error["retry_after"] <= 30
    assert await db(lambda: Message.objects.count()) == 1
    # The team is exempt.
    for i in range(2):
        await mod.send({"type": "send", "body": f"mod {i}", "client_id": f"mm-{i}"})
        await until(mod, "ack", client_id=f"mm-{i}")


# Personal blocks.


async def test_block_hides_the_blocked_users_messages_from_every_connection_of_the_blocker(
    connect, room, moderator, viewer, outsider
):
    vic = await connect(room, viewer, label="vic-1")
    vic_other_tab = await connect(room, viewer, label="vic-2")
    mod = await connect(room, moderator)
    out = await connect(room, outsider)

    await vic.send({"type": "block", "user": outsider.pk, "client_id": "b-1"})

    ack = await until(vic, "ack", client_id="b-1")
    assert ack["blocked"] == [outsider.pk]
    assert await db(lambda: Block.objects.filter(blocker=viewer, blocked=outsider).count()) == 1

    await out.send({"type": "send", "body": "from otto", "client_id": "o-1"})
    sent = await until(out, "ack", client_id="o-1")

    assert (await until(mod, "message", id=sent["id"]))["body"] == "from otto"
    await vic.expect_nothing()
    await vic_other_tab.expect_nothing()
    # Blocking is one way: otto still reads vic.
    await vic.send({"type": "send", "body": "from vic", "client_id": "v-1"})
    mine = await until(vic, "ack", client_id="v-1")
    assert (await until(out, "message", id=mine["id"]))["body"] == "from vic"
    assert (await until(vic_other_tab, "message", id=mine["id"]))["body"] == "from vic"

    reconnected = await connect(room, viewer, label="vic-3")

    assert reconnected.welcome["you"]["blocked"] == [outsider.pk]
    authors = [e["author"]["id"] for e in reconnected.welcome["history"] if e["type"] == "message"]
    assert authors == [viewer.pk]


async def test_unblock_restores_the_users_messages(connect, room, viewer, outsider):
    vic = await connect(room, viewer, label="vic-1")
    vic_other_tab = await connect(room, viewer, label="vic-2")
    out = await connect(room, outsider)
    await vic.send({"type": "block", "user": outsider.username, "client_id": "b-1"})
    await until(vic, "ack", client_id="b-1")

    await vic.send({"type": "unblock", "user": outsider.username, "client_id": "b-2"})

    ack = await until(vic, "ack", client_id="b-2")
    assert ack["blocked"] == []
    assert not await db(lambda: Block.objects.exists())
    await out.send({"type": "send", "body": "hello again", "client_id": "o-1"})
    sent = await until(out, "ack", client_id="o-1")
    assert (await until(vic, "message", id=sent["id"]))["body"] == "hello again"
    assert (await until(vic_other_tab, "message", id=sent["id"]))["body"] == "hello again"


async def test_blocking_yourself_over_the_socket_is_bad_request(connect, room, viewer):
    vic = await connect(room, viewer)

    await vic.send({"type": "block", "user": viewer.pk, "client_id": "b-1"})

    assert (await until(vic, "error", client_id="b-1"))["code"] == "bad_request"
    assert not await db(lambda: Block.objects.exists())


async def test_anonymous_cannot_moderate_or_block(connect, room, viewer):
    anon = await connect(room)

    await anon.send({"type": "mute", "user": viewer.pk, "seconds": 60, "client_id": "a-1"})
    await anon.send({"type": "block", "user": viewer.pk, "client_id": "a-2"})

    assert (await until(anon, "error", client_id="a-1"))["code"] == "unauthenticated"
    assert (await until(anon, "error", client_id="a-2"))["code"] == "unauthenticated"
    assert not await db(lambda: Mute.objects.exists() or Block.objects.exists())


# Bad input: answered, nothing changes, the connection stays open.

TARGET = object()

BAD_COMMANDS = [
    ("mute-unknown-id", {"type": "mute", "user": 987654, "seconds": 60}, "not_found"),
    ("mute-unknown-name", {"type": "mute", "user": "nobody_here", "seconds": 60}, "not_found"),
    ("mute-negative", {"type": "mute", "user": TARGET, "seconds": -5}, "bad_request"),
    ("mute-zero", {"type": "mute", "user": TARGET, "seconds": 0}, "bad_request"),
    ("mute-over-2-weeks", {"type": "mute", "user": TARGET, "seconds": 1_209_601}, "bad_request"),
    ("mute-fractional", {"type": "mute", "user": TARGET, "seconds": 1.5}, "bad_request"),
    ("mute-string-seconds", {"type": "mute", "user": TARGET, "seconds": "60"}, "bad_request"),
    ("mute-missing-seconds", {"type": "mute", "user": TARGET}, "bad_request"),
    ("mute-missing-user", {"type": "mute", "seconds": 60}, "bad_request"),
    ("mute-bool-user", {"type": "mute", "user": True, "seconds": 60}, "bad_request"),
    ("unmute-not-muted", {"type": "unmute", "user": TARGET}, "not_found"),
    ("kick-missing-user", {"type": "kick"}, "bad_request"),
    ("kick-unknown", {"type": "kick", "user": 987654}, "not_found"),
    ("ban-zero", {"type": "ban", "user": TARGET, "seconds": 0}, "bad_request"),
    ("ban-negative", {"type": "ban", "user": TARGET, "seconds": -60}, "bad_request"),
    ("ban-unknown", {"type": "ban", "user": "nobody_here"}, "not_found"),
    ("unban-not-banned", {"type": "unban", "user": TARGET}, "not_found"),
    ("slow-mode-121", {"type": "slow_mode", "seconds": 121}, "bad_request"),
    ("slow-mode-negative", {"type": "slow_mode", "seconds": -1}, "bad_request"),
    ("slow-mode-missing", {"type": "slow_mode"}, "bad_request"),
    ("delete-unknown", {"type": "delete", "id": 987654}, "not_found"),
    ("delete-string-id", {"type": "delete", "id": "1"}, "bad_request"),
    ("block-unknown", {"type": "block", "user": 987654}, "not_found"),
    ("block-missing-user", {"type": "block"}, "bad_request"),
]


async def test_bad_moderation_commands_are_answered_and_change_nothing(connect, room, host, viewer):
    # One connection takes every bad command in turn: each must be answered on its own,
    # and none may end the connection or leave anything behind.
    hana = await connect(room, host)
    vic = await connect(room, viewer)

    for name, frame, _ in BAD_COMMANDS:
        frame = {k: (viewer.pk if v is TARGET else v) for k, v in frame.items()}
        await hana.send({**frame, "client_id": name})

    answers = {name: await until(hana, "error", client_id=name) for name, _, _ in BAD_COMMANDS}
    assert {name: answers[name]["code"] for name, _, _ in BAD_COMMANDS} == {
        name: code for name, _, code in BAD_COMMANDS
    }
    assert all(answer["detail"] for answer in answers.values())
    assert [e for e in hana.events if e["type"] not in ("error", "presence")] == []
    fresh = await db(lambda: Room.objects.get(pk=room.pk))
    assert (fresh.last_seq, fresh.slow_mode_seconds) == (0, 0)
    assert not await db(lambda: Mute.objects.exists() or Ban.objects.exists() or Block.objects.exists())
    await still_open(hana)
    await vic.expect_nothing()
    await still_open(vic)
