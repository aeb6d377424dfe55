"""Domain actions for rooms and messages.

Two tiers, as everywhere in this project: `check_*` is the untrusted entry used by the
consumer and views (resolve, authorize, validate, rate-limit) and calls `do_*`, the
trusted core used directly by the admin and management commands. Every `do_*` writes in
one transaction, appends its room event to the log in that transaction, and publishes
the encoded event after commit.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from rooms import realtime
from rooms.errors import BadRequest, NotFound, Unauthenticated
from rooms.models import Membership, Message, Role, Room, RoomEvent
from rooms.permissions import room_role
from rooms.protocol import encode, iso
from rooms.selectors import user_brief

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
MENTION_RE = re.compile(r"(?<![\w@])@([\w.+-]{1,150})")
EXCERPT_CHARS = 80


# The event log.


def next_seq(room_id: int) -> int:
    """Take the room's next seq. Must run inside the transaction that stores the event:
    the row lock orders concurrent writers and a rollback gives the number back."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE rooms_room SET last_seq = last_seq + 1 WHERE id = %s RETURNING last_seq", [room_id]
        )
        row = cursor.fetchone()
    if row is None:
        raise NotFound("No such room.")
    return row[0]


def log_event(
    room_id: int,
    *,
    seq: int,
    type: str,
    actor_id: int | None,
    fields: dict[str, Any],
    at=None,
    close_user: tuple[int, int] | None = None,
) -> RoomEvent:
    """Store one room event and publish it once the transaction commits."""
    at = at or timezone.now()
    data = {"type": type, "seq": seq, "ts": iso(at), **fields}
    event = RoomEvent.objects.create(room_id=room_id, seq=seq, type=type, actor_id=actor_id, data=data, created_at=at)
    text = encode(data)
    transaction.on_commit(
        lambda: realtime.publish_room_event(room_id, seq=seq, actor_id=actor_id, text=text, close_user=close_user)
    )
    return event


def append_event(
    room_id: int, *, type: str, actor_id: int | None, fields: dict[str, Any], close_user=None
) -> RoomEvent:
    return log_event(
        room_id, seq=next_seq(room_id), type=type, actor_id=actor_id, fields=fields, close_user=close_user
    )


# Rooms and roles.


def do_create_room(*, slug: str, title: str, host_username: str) -> Room:
    """Create a room owned by an existing user, who becomes its host."""
    slug = slug.strip().lower()
    title = title.strip()
    if not SLUG_RE.match(slug):
        raise BadRequest("A room slug is 1-64 lowercase letters, digits and hyphens, starting with a letter or digit.")
    if not title or len(title) > 200:
        raise BadRequest("A room title is 1 to 200 characters.")
    User = get_user_model()
    owner = User.objects.filter(**{User.USERNAME_FIELD: host_username}).first()
    if owner is None:
        raise NotFound(f"No user named {host_username!r}.")
    with transaction.atomic():
        if Room.objects.filter(slug=slug).exists():
            raise BadRequest(f"A room with slug {slug!r} already exists.")
        room = Room.objects.create(slug=slug, title=title, owner=owner)
        Membership.objects.create(room=room, user=owner, role=Role.HOST)
        _open_admin_to(owner)
    return room


def _open_admin_to(user) -> None:
    # Hosts manage their own rooms in the Django admin, which needs is_staff to enter.
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])


def do_set_role(*, room_id: int, username: str, role: str) -> Membership | None:
    """Appoint a host or moderator, or with role "member" take the seat away."""
    if role not in ("host", "moderator", "member"):
        raise BadRequest("The role is one of host, moderator, member.")
    User = get_user_model()
    user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
    if user is None:
        raise NotFound(f"No user named {username!r}.")
    with transaction.atomic():
        room = Room.objects.select_for_update().filter(pk=room_id).first()
        if room is None:
            raise NotFound("No such room.")
        if role == "member":
            if user.pk == room.owner_id:
                raise BadRequest("The room's owner is always a host.")
            Membership.objects.filter(room=room, user=user).delete()
            return None
        membership, _ = Membership.objects.update_or_create(room=room, user=user, defaults={"role": role})
        if role == "host":
            _open_admin_to(user)
    return membership


def do_update_room(*, room_id: int, actor_id: int | None, title: str | None = None, is_live: bool | None = None) -> RoomEvent:
    """Change the title or live state and tell every viewer (a `room` event)."""
    with transaction.atomic():
        room = Room.objects.select_for_update().get(pk=room_id)
        if title is not None:
            title = title.strip()
            if not title or len(title) > 200:
                raise BadRequest("A room title is 1 to 200 characters.")
            room.title = title
        if is_live is not None:
            room.is_live = is_live
        room.save(update_fields=["title", "is_live"])
        return append_event(
            room.pk,
            type="room",
            actor_id=None,
            fields={"title": room.title, "is_live": room.is_live, "slow_mode_seconds": room.slow_mode_seconds},
        )


# Messages.


def check_send_message(
    actor, room_id: int, *, body: Any, reply_to_id: int | None = None, client_id: str | None = None
) -> Message:
    """Post a chat line for a signed-in viewer. Repeating a client_id returns the
    message it stored the first time and stores nothing."""
    if not actor.is_authenticated:
        raise Unauthenticated("Sign in to chat.")
    if client_id is not None:
        existing = Message.objects.filter(room_id=room_id, author=actor, client_id=client_id).first()
        if existing is not None:
            return existing
    if not isinstance(body, str):
        raise BadRequest("`body` must be a string.")
    body = body.strip()
    if not body:
        raise BadRequest("A message cannot be empty.")
    if len(body) > settings.CHAT_BODY_MAX_CHARS:
        raise BadRequest(f"A message is at most {settings.CHAT_BODY_MAX_CHARS} characters.")
    room = Room.objects.filter(pk=room_id).first()
    if room is None:
        raise NotFound("No such room.")
    reply_to = None
    if reply_to_id is not None:
        reply_to = Message.objects.filter(pk=reply_to_id, room_id=room_id).select_related("author").first()
        if reply_to is None:
            raise NotFound("The message you reply to is not in this room.")
    try:
        return do_send_message(room=room, author=actor, body=body, reply_to=reply_to, client_id=client_id)
    except IntegrityError:
        # The same client_id raced in from another connection; its message is the answer.
        existing = Message.objects.filter(room_id=room_id, author=actor, client_id=client_id).first()
        if client_id is None or existing is None:
            raise
        return existing


@transaction.atomic
def do_send_message(*, room: Room, author, body: str, reply_to: Message | None = None, client_id: str | None = None) -> Message:
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
            "author": user_brief(author, role=room_role(author, room)),
            "body": body,
            "reply_to": reply_excerpt(reply_to, room),
            "mentions": resolve_mentions(body, room),
            "client_id": client_id,
        },
    )
    return message


def reply_excerpt(message: Message | None, room: Room) -> dict[str, Any] | None:
    if message is None:
        return None
    return {
        "id": message.pk,
        "author": user_brief(message.author, role=room_role(message.author, room)),
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
    found = {getattr(u, field).lower(): u for u in User.objects.filter(**{f"{field}__in": names}, is_active=True)}
    mentioned = []
    for name in names:
        user = found.get(name.lower())
        if user is not None:
            mentioned.append(user_brief(user, role=room_role(user, room)))
    return mentioned
