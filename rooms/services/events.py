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
    return take_seqs(room_id, 1)


def take_seqs(room_id: int, count: int) -> int:
    """Take `count` consecutive seqs and return the first (same rules as next_seq)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE rooms_room SET last_seq = last_seq + %s WHERE id = %s RETURNING last_seq", [count, room_id]
        )
        row = cursor.fetchone()
    if row is None:
        raise NotFound("No such room.")
    return row[0] - count + 1


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
    event = build_event(room_id, seq=seq, type=type, actor_id=actor_id, fields=fields, at=at)
    event.save(force_insert=True)
    publish_on_commit(event, close_user=close_user)
    return event


def build_event(
    room_id: int, *, seq: int, type: str, actor_id: int | None, fields: dict[str, Any], at=None
) -> RoomEvent:
    at = at or timezone.now()
    data = {"type": type, "seq": seq, "ts": iso(at), **fields}
    return RoomEvent(room_id=room_id, seq=seq, type=type, actor_id=actor_id, data=data, created_at=at)


def publish_on_commit(event: RoomEvent, *, close_user: tuple[int, int] | None = None) -> None:
    # Encoded here, once: every process and every viewer forwards this same text.
    text = encode(event.data)
    room_id, seq, actor_id = event.room_id, event.seq, event.actor_id
    transaction.on_commit(
        lambda: realtime.publish_room_event(room_id, seq=seq, actor_id=actor_id, text=text, close_user=close_user)
    )


def append_event(
    room_id: int, *, type: str, actor_id: int | None, fields: dict[str, Any], close_user=None
) -> RoomEvent:
    return log_event(room_id, seq=next_seq(room_id), type=type, actor_id=actor_id, fields=fields, close_user=close_user)
