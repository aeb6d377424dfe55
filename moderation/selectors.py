"""Moderation state the rooms app reads: reads only (what changes state is a service)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from moderation.models import AuditEntry, Ban, Block, Mute
from rooms.extensions import Restrictions

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


def restrictions(room_id: int, user_id: int) -> Restrictions:
    """The user's ban and mute in force in the room now (for rooms.extensions)."""
    now = timezone.now()
    mute = active_mute(room_id, user_id, now=now)
    ban = active_ban(room_id, user_id, now=now)
    return Restrictions(
        banned=ban is not None,
        banned_until=ban.until if ban else None,
        ban_reason=ban.reason if ban else "",
        muted_until=mute.until if mute else None,
        muted_reason=mute.reason if mute else "",
    )


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


def audit_log(*, room_ids: list[int] | None = None, limit: int = 100) -> list[AuditEntry]:
    entries = AuditEntry.objects.select_related("actor", "target", "room")
    if room_ids is not None:
        entries = entries.filter(room_id__in=room_ids)
    return list(entries[:limit])
