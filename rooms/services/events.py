"""The room event log: seq allocation, storing an event, publishing it after commit."""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from rooms import realtime
from rooms.errors import NotFound
from rooms.models import RoomEvent
from rooms.protocol import encode, iso


def next_seq(room_id: int) -> int:
    """Take the room's next seq. Must run inside the transaction that stores the event:
    the row lock orders concurrent writers and a rollback gives the number back."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE rooms_room SET last_seq = last_seq + 1 WHERE id = %s RETURNING last_seq", [room_id])
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
    return log_event(room_id, seq=next_seq(room_id), type=type, actor_id=actor_id, fields=fields, close_user=close_user)
