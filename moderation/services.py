"""Moderation actions: mute, kick, ban, delete, slow mode, and personal blocks.

`check_*` resolves and authorizes an untrusted actor (consumer, views, admin) and calls
`do_*`, which writes, audits and appends the `moderation` room event in one transaction.
Management commands call `do_*` directly. Both take the acting user first and keyword-only
ids after it (see rooms.services).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from moderation.models import AuditEntry, Ban, Block, Mute
from moderation.selectors import blocked_user_ids
from rooms import realtime
from rooms.errors import BadRequest, NoSuchRoom, NotFound, Unauthenticated
from rooms.models import Message, Room, RoomEvent
from rooms.permissions import HOST, MODERATOR, authorize
from rooms.protocol import MAX_BAN_SECONDS, MAX_MUTE_SECONDS, MAX_SLOW_MODE_SECONDS, Close, events
from rooms.selectors import find_user, room_by_id, user_in_room
from rooms.services import append_event, room_event


def _moderation_event(
    room: Room,
    *,
    action: str,
    by,
    target=None,
    until=None,
    seconds: int | None = None,
    reason: str = "",
    close_code: int | None = None,
    details: dict[str, Any] | None = None,
) -> RoomEvent:
    now = timezone.now()
    AuditEntry.objects.create(
        room=room,
        actor=by,
        action=action,
        target=target,
        reason=reason,
        until=until,
        seconds=seconds,
        details=details or {},
        created_at=now,
    )
    return append_event(
        room.pk,
        event=events.moderation(
            action=action,
            target=user_in_room(target, room) if target is not None else None,
            by=user_in_room(by, room) if by is not None else None,
            until=until,
            seconds=seconds,
            reason=reason,
        ),
        # Moderation is never hidden by a viewer's personal blocks.
        actor_id=None,
        close_user=(target.pk, close_code) if close_code is not None and target is not None else None,
    )


def _end_active(model, room: Room, user, *, by, now) -> int:
    """End the user's restrictions of this kind still in force; how many there were."""
    return (
        model.objects.filter(room=room, user=user, ended_at__isnull=True)
        .filter(Q(until__isnull=True) | Q(until__gt=now))
        .update(ended_at=now, ended_by=by)
    )


def _user(user_id: int):
    return get_user_model().objects.get(pk=user_id)


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if len(reason) > 200:
        raise BadRequest(_("A reason is at most 200 characters."))
    return reason


# Mute.


def check_mute(actor, *, room_id: int, user: int | str, seconds: int, reason: str = "") -> RoomEvent:
    room = room_by_id(room_id)
    target = find_user(user)
    authorize(actor, room, min_rank=MODERATOR, target=target)
    return do_mute(actor, room_id=room.pk, target_id=target.pk, seconds=seconds, reason=reason)


@transaction.atomic
def do_mute(actor, *, room_id: int, target_id: int, seconds: int, reason: str = "") -> RoomEvent:
    if type(seconds) is not int or not 1 <= seconds <= MAX_MUTE_SECONDS:
        raise BadRequest(format_lazy(_("A mute lasts 1 to {n} seconds."), n=MAX_MUTE_SECONDS))
    room, target = room_by_id(room_id), _user(target_id)
    now = timezone.now()
    until = now + timedelta(seconds=seconds)
    _end_active(Mute, room, target, by=actor, now=now)
    Mute.objects.create(room=room, user=target, by=actor, reason=_reason(reason), created_at=now, until=until)
    return _moderation_event(
        room, action="mute", by=actor, target=target, until=until, seconds=seconds, reason=_reason(reason)
    )


def check_unmute(actor, *, room_id: int, user: int | str) -> RoomEvent:
    room = room_by_id(room_id)
    target = find_user(user)
    authorize(actor, room, min_rank=MODERATOR, target=target)
    return do_unmute(actor, room_id=room.pk, target_id=target.pk)


def do_unmute(actor, *, room_id: int, target_id: int) -> RoomEvent:
    return _lift(actor, Mute, action="unmute", absent=_("{name} is not muted."), room_id=room_id, target_id=target_id)


# Kick and ban.


def check_kick(actor, *, room_id: int, user: int | str, reason: str = "") -> RoomEvent:
    room = room_by_id(room_id)
    target = find_user(user)
    authorize(actor, room, min_rank=MODERATOR, target=target)
    return do_kick(actor, room_id=room.pk, target_id=target.pk, reason=reason)


@transaction.atomic
def do_kick(actor, *, room_id: int, target_id: int, reason: str = "") -> RoomEvent:
    room, target = room_by_id(room_id), _user(target_id)
    return _moderation_event(
        room, action="kick", by=actor, target=target, reason=_reason(reason), close_code=Close.KICKED
    )


def check_ban(actor, *, room_id: int, user: int | str, seconds: int | None = None, reason: str = "") -> RoomEvent:
    room = room_by_id(room_id)
    target = find_user(user)
    authorize(actor, room, min_rank=HOST, target=target)
    return do_ban(actor, room_id=room.pk, target_id=target.pk, seconds=seconds, reason=reason)


@transaction.atomic
def do_ban(actor, *, room_id: int, target_id: int, seconds: int | None = None, reason: str = "") -> RoomEvent:
    if seconds is not None and (type(seconds) is not int or not 1 <= seconds <= MAX_BAN_SECONDS):
        raise BadRequest(_("A timed ban lasts 1 second to 10 years; leave `seconds` out for a permanent ban."))
    room, target = room_by_id(room_id), _user(target_id)
    now = timezone.now()
    until = now + timedelta(seconds=seconds) if seconds is not None else None
    _end_active(Ban, room, target, by=actor, now=now)
    Ban.objects.create(room=room, user=target, by=actor, reason=_reason(reason), created_at=now, until=until)
    return _moderation_event(
        room,
        action="ban",
        by=actor,
        target=target,
        until=until,
        seconds=seconds,
        reason=_reason(reason),
        close_code=Close.FORBIDDEN,
    )


def check_unban(actor, *, room_id: int, user: int | str) -> RoomEvent:
    room = room_by_id(room_id)
    target = find_user(user)
    authorize(actor, room, min_rank=HOST, target=target)
    return do_unban(actor, room_id=room.pk, target_id=target.pk)


def do_unban(actor, *, room_id: int, target_id: int) -> RoomEvent:
    return _lift(actor, Ban, action="unban", absent=_("{name} is not banned."), room_id=room_id, target_id=target_id)


@transaction.atomic
def _lift(actor, model, *, action: str, absent: Promise, room_id: int, target_id: int) -> RoomEvent:
    """End a mute or ban early. `absent`: the refusal when there is none, with `{name}`."""
    room, target = room_by_id(room_id), _user(target_id)
    if not _end_active(model, room, target, by=actor, now=timezone.now()):
        raise NotFound(format_lazy(absent, name=target.get_username()))
    return _moderation_event(room, action=action, by=actor, target=target)


# Deleting messages.


def check_delete_message(actor, *, room_id: int, message_id: int) -> RoomEvent:
    room = room_by_id(room_id)
    message = Message.objects.filter(pk=message_id, room=room).select_related("author").first()
    if message is None or message.is_deleted:
        raise NotFound(_("No such message in this room."))
    if not actor.is_authenticated:
        raise Unauthenticated(_("Sign in first."))
    if message.author_id != actor.pk:
        authorize(actor, room, min_rank=MODERATOR, target=message.author)
    return do_delete_message(actor, message_id=message.pk)


@transaction.atomic
def do_delete_message(actor, *, message_id: int) -> RoomEvent:
    """Hide a message everywhere: its log entry and every quote of it are redacted in
    place, and a `message_deleted` event tells live viewers."""
    message = Message.objects.select_for_update().select_related("room", "author").get(pk=message_id)
    if message.is_deleted:
        raise NotFound(_("That message is already deleted."))
    now = timezone.now()
    # The row keeps its body for staff in the admin; everything viewers can read is redacted.
    message.deleted_at, message.deleted_by = now, actor
    message.save(update_fields=["deleted_at", "deleted_by"])
    _redact_logged(
        message.room_id, message.seq, lambda data: data.update(body="", deleted=True, mentions=[], emotes=[])
    )
    for reply in Message.objects.filter(reply_to=message).only("room_id", "seq"):
        _redact_logged(reply.room_id, reply.seq, _redact_quote)
    room = message.room
    if actor is not None and actor.pk != message.author_id:
        AuditEntry.objects.create(
            room=room,
            actor=actor,
            action="delete",
            target=message.author,
            created_at=now,
            details={"message_id": message.pk},
        )
    return append_event(
        room.pk,
        event=events.message_deleted(id=message.pk, by=user_in_room(actor, room) if actor is not None else None),
        actor_id=None,
    )


def _redact_quote(data: dict[str, Any]) -> None:
    if data.get("reply_to"):
        data["reply_to"] = {**data["reply_to"], "excerpt": "", "deleted": True}


def _redact_logged(room_id: int, seq: int, redact) -> None:
    event = RoomEvent.objects.select_for_update().get(room_id=room_id, seq=seq)
    redact(event.data)
    event.save(update_fields=["data"])


# Slow mode.


def check_set_slow_mode(actor, *, room_id: int, seconds: int) -> RoomEvent:
    room = room_by_id(room_id)
    authorize(actor, room, min_rank=MODERATOR)
    return do_set_slow_mode(actor, room_id=room.pk, seconds=seconds)


@transaction.atomic
def do_set_slow_mode(actor, *, room_id: int, seconds: int) -> RoomEvent:
    if type(seconds) is not int or not 0 <= seconds <= MAX_SLOW_MODE_SECONDS:
        raise BadRequest(format_lazy(_("Slow mode is 0 (off) to {n} seconds."), n=MAX_SLOW_MODE_SECONDS))
    room = Room.objects.select_for_update().filter(pk=room_id).first()
    if room is None:
        raise NoSuchRoom()
    was_auto = room.slow_mode_auto
    # A moderator's setting overrides the server's automatic slow mode, which then leaves it be.
    room.slow_mode_seconds, room.slow_mode_auto = seconds, False
    room.save(update_fields=["slow_mode_seconds", "slow_mode_auto"])
    if was_auto:
        # Viewers showing "automatic" learn that it is the moderators' setting now.
        append_event(room.pk, event=room_event(room), actor_id=None)
    return _moderation_event(room, action="slow_mode", by=actor, seconds=seconds)


# Personal blocks.


def check_block(actor, *, user: int | str) -> set[int]:
    if not actor.is_authenticated:
        raise Unauthenticated(_("Sign in to block people."))
    target = find_user(user)
    if target.pk == actor.pk:
        raise BadRequest(_("You cannot block yourself."))
    return do_block(actor, target_id=target.pk)


@transaction.atomic
def do_block(actor, *, target_id: int) -> set[int]:
    """Hide `target_id`'s lines from the actor, everywhere; the actor's new block list."""
    Block.objects.get_or_create(blocker_id=actor.pk, blocked_id=target_id)
    return _blocks_changed(actor.pk)


def check_unblock(actor, *, user: int | str) -> set[int]:
    if not actor.is_authenticated:
        raise Unauthenticated(_("Sign in first."))
    target = find_user(user)
    return do_unblock(actor, target_id=target.pk)


@transaction.atomic
def do_unblock(actor, *, target_id: int) -> set[int]:
    Block.objects.filter(blocker_id=actor.pk, blocked_id=target_id).delete()
    return _blocks_changed(actor.pk)


def _blocks_changed(user_id: int) -> set[int]:
    blocked = blocked_user_ids(user_id)
    # Every open connection of the user, on every process, filters with the new list.
    transaction.on_commit(lambda: realtime.publish_user_control(user_id, "blocks", blocked=sorted(blocked)))
    return blocked
