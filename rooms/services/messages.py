"""Chat messages: posting with replies and mentions, idempotent by client_id."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from moderation.selectors import send_restriction
from rooms.errors import BadRequest, NotFound, Unauthenticated
from rooms.models import Message, Room
from rooms.permissions import Standing, is_site_staff, standings
from rooms.selectors import send_context, user_in_room, user_with_standing
from rooms.services.events import log_event, next_seq

MENTION_RE = re.compile(r"(?<![\w@])@([\w.+-]{1,150})")
EXCERPT_CHARS = 80


def check_send_message(
    actor, room_id: int, *, body: Any, reply_to_id: int | None = None, client_id: str | None = None
) -> Message:
    """Post a chat line for a signed-in viewer. Repeating a client_id returns the
    message it stored the first time and stores nothing."""
    if not actor.is_authenticated:
        raise Unauthenticated("Sign in to chat.")
    now = timezone.now()
    room = send_context(room_id, user_id=actor.pk, client_id=client_id, now=now)
    if room is None:
        raise NotFound("No such room.")
    if room.stored_id is not None:
        return Message.objects.get(pk=room.stored_id)
    if not isinstance(body, str):
        raise BadRequest("`body` must be a string.")
    body = body.strip()
    if not body:
        raise BadRequest("A message cannot be empty.")
    if len(body) > settings.CHAT_BODY_MAX_CHARS:
        raise BadRequest(f"A message is at most {settings.CHAT_BODY_MAX_CHARS} characters.")
    where = Standing(role=room.member_role or "member", is_staff=is_site_staff(actor))
    refusal = send_restriction(
        user_id=actor.pk,
        exempt=where.exempt_from_limits,
        banned_until=room.banned_until,
        muted_until=room.muted_until,
        slow_mode_seconds=room.slow_mode_seconds,
        last_sent_at=room.last_sent_at,
        now=now,
    )
    if refusal is not None:
        raise refusal
    reply_to = None
    if reply_to_id is not None:
        reply_to = Message.objects.filter(pk=reply_to_id, room_id=room_id).select_related("author").first()
        if reply_to is None:
            raise NotFound("The message you reply to is not in this room.")
    try:
        return do_send_message(
            room=room,
            author=actor,
            body=body,
            reply_to=reply_to,
            client_id=client_id,
            author_brief=user_with_standing(actor, where),
            # Resolved before the transaction: the room's seq lock is held only for writes.
            mentions=resolve_mentions(body, room),
        )
    except IntegrityError:
        # The same client_id raced in from another connection; its message is the answer.
        existing = Message.objects.filter(room_id=room_id, author=actor, client_id=client_id).first()
        if client_id is None or existing is None:
            raise
        return existing


@transaction.atomic
def do_send_message(
    *,
    room: Room,
    author,
    body: str,
    reply_to: Message | None = None,
    client_id: str | None = None,
    author_brief: dict[str, Any] | None = None,
    mentions: list[dict[str, Any]] | None = None,
) -> Message:
    """Store and publish a message. `author_brief` is the author as the event shows
    them, when the caller already knows their standing."""
    now = timezone.now()
    seq = next_seq(room.pk)
    message = Message.objects.create(
        room=room, author=author, body=body, reply_to=reply_to, client_id=client_id, seq=seq, created_at=now
    )
    log_event(
        room.pk,
        seq=seq,
        type="message",
        actor_id=author.pk,
        at=now,
        fields={
            "id": message.pk,
            "author": author_brief or user_in_room(author, room),
            "body": body,
            "reply_to": reply_excerpt(reply_to, room),
            "mentions": resolve_mentions(body, room) if mentions is None else mentions,
            "client_id": client_id,
        },
    )
    return message


def reply_excerpt(message: Message | None, room: Room) -> dict[str, Any] | None:
    if message is None:
        return None
    return {
        "id": message.pk,
        "author": user_in_room(message.author, room),
        "excerpt": "" if message.is_deleted else message.body[:EXCERPT_CHARS],
        "deleted": message.is_deleted,
    }


def resolve_mentions(body: str, room: Room) -> list[dict[str, Any]]:
    """`@name` tokens that name a user, in order of first appearance; others stay text."""
    names = list(dict.fromkeys(m.rstrip(".") for m in MENTION_RE.findall(body)))[:20]
    if not names:
        return []
    User = get_user_model()
    field = User.USERNAME_FIELD
    found = {getattr(u, field): u for u in User.objects.filter(**{f"{field}__in": names}, is_active=True)}
    where = standings(found.values(), room)
    return [user_with_standing(found[name], where[found[name].pk]) for name in names if name in found]
