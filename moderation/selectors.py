"""Moderation state the rooms app reads (the only moderation module it imports)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from moderation.models import AuditEntry, Ban, Block, Mute
from rooms.errors import ChatError, RateLimited

# Stands in for "no end" where a permanent ban must sort after every timed one.
PERMANENT = datetime(9999, 12, 31, tzinfo=UTC)


def blocked_user_ids(user_id: int | None) -> set[int]:
    if user_id is None:
        return set()
    return set(Block.objects.filter(blocker_id=user_id).values_list("blocked_id", flat=True))


def blocked_people(user_id: int) -> list[dict]:
    rows = Block.objects.filter(blocker_id=user_id).select_related("blocked").order_by("blocked__username")
    return [{"id": b.blocked_id, "name": b.blocked.get_username()} for b in rows]


def _active(model, room_id: int, user_id: int, now: datetime):
    return (
        model.objects.filter(room_id=room_id, user_id=user_id, ended_at__isnull=True)
        .filter(Q(until__isnull=True) | Q(until__gt=now))
        .order_by("-created_at")
        .first()
    )


def active_mute(room_id: int, user_id: int, *, now: datetime | None = None) -> Mute | None:
    return _active(Mute, room_id, user_id, now or timezone.now())


def active_ban(room_id: int, user_id: int, *, now: datetime | None = None) -> Ban | None:
    return _active(Ban, room_id, user_id, now or timezone.now())


def restriction_columns_sql(*, room_column: str, user_column: str) -> str:
    """Two SQL columns, `banned_until` and `muted_until`: when the active ban and mute of
    the user `user_column` names, in the room `room_column` names, end; NULL if none,
    PERMANENT if no end. Their parameters: restriction_columns_params(). Hand-written
    because they are read for every send, where building them with the ORM cost ten
    times the query itself."""
    return (
        f"{_ends_sql(Ban, room_column, user_column)} AS banned_until,"
        f" {_ends_sql(Mute, room_column, user_column)} AS muted_until"
    )


def restriction_columns_params(*, now: datetime) -> list:
    adapt = connection.ops.adapt_datetimefield_value
    return [adapt(PERMANENT), adapt(now)] * 2


def _ends_sql(model, room_column: str, user_column: str) -> str:
    meta = model._meta
    qn = connection.ops.quote_name
    room, user, until, ended = (qn(meta.get_field(name).column) for name in ("room", "user", "until", "ended_at"))
    return (
        f"(SELECT MAX(COALESCE(r.{until}, %s)) FROM {qn(meta.db_table)} r"
        f" WHERE r.{room} = {room_column} AND r.{user} = {user_column} AND r.{ended} IS NULL"
        f" AND (r.{until} IS NULL OR r.{until} > %s))"
    )


def send_restriction(
    *,
    user_id: int,
    exempt: bool,
    banned_until: datetime | None,
    muted_until: datetime | None,
    slow_mode_seconds: int,
    last_sent_at: datetime | None,
    now: datetime,
) -> ChatError | None:
    """Why a user may not post right now, or None. Consumes a rate-limit token when it
    answers None, so call it once per attempted send. `exempt`: the host team and staff,
    whom slow mode and rate limits do not apply to."""
    if banned_until is not None:
        return ChatError("You are banned from this room.", code="banned")
    if muted_until is not None:
        return ChatError("You are muted in this room.", code="muted", retry_after=(muted_until - now).total_seconds())
    if exempt:
        return None
    if slow_mode_seconds and last_sent_at is not None:
        wait = slow_mode_seconds - (now - last_sent_at).total_seconds()
        if wait > 0:
            return ChatError(f"Slow mode: one message every {slow_mode_seconds} s.", code="slow_mode", retry_after=wait)
    return take_send_token(user_id)


def take_send_token(user_id: int) -> RateLimited | None:
    """Sliding windows (a burst one and a sustained one) over the user's recent send
    times, kept in the shared cache (Redis when configured) so the limit holds across
    server processes. Fixed windows would let a burst straddle a boundary twice."""
    now = time.time()
    limits = (settings.CHAT_SEND_RATE_BURST, settings.CHAT_SEND_RATE_SUSTAINED)
    longest = max(window for _, window in limits)
    key = f"rl:send:{user_id}"
    sent = [t for t in cache.get(key, []) if t > now - longest]
    for count, window in limits:
        recent = [t for t in sent if t > now - window]
        if len(recent) >= count:
            retry_after = recent[-count] + window - now
            return RateLimited(
                f"You are sending too fast: at most {count} messages in {window} s.", retry_after=max(retry_after, 0.05)
            )
    sent.append(now)
    cache.set(key, sent, timeout=longest + 1)
    return None


def audit_log(*, room_ids: list[int] | None = None, limit: int = 100) -> list[AuditEntry]:
    entries = AuditEntry.objects.select_related("actor", "target", "room")
    if room_ids is not None:
        entries = entries.filter(room_id__in=room_ids)
    return list(entries[:limit])
