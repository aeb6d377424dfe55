"""The room event log: seq allocation, storing an event, publishing it after commit."""

from __future__ import annotations

import functools

from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from rooms import metrics, realtime
from rooms.errors import NoSuchRoom
from rooms.models import RoomEvent
from rooms.protocol import encode, iso
from rooms.protocol.events import RoomEventData


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
        raise NoSuchRoom()
    return row[0] - count + 1


def insert_rows(objs: list[Model], *, returning_pk: bool = False) -> None:
    """Insert unsaved instances of one model whose pk the database makes, in one
    statement, without the ORM's work per row and per call (QuerySet.bulk_create):
    every chat line's write runs this, and in a quiet room that work was most of a
    write's cost. Sets their pks when `returning_pk`. The database's constraints hold
    as for any insert."""
    model = type(objs[0])
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    params = [field.get_db_prep_save(getattr(obj, field.attname), connection) for obj in objs for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(connection.vendor, model, len(objs), returning_pk), params)
        if returning_pk:
            for obj, (pk,) in zip(objs, cursor.fetchall(), strict=True):
                obj.pk = pk
                obj._state.adding = False
                obj._state.db = connection.alias


@functools.cache
def _insert_sql(vendor: str, model: type[Model], count: int, returning_pk: bool) -> str:
    qn = connection.ops.quote_name
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = (
        f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)})"
        f" VALUES {', '.join([row] * count)}"
    )
    return sql + f" RETURNING {qn(model._meta.pk.column)}" if returning_pk else sql


def log_event(
    room_id: int,
    *,
    seq: int,
    event: RoomEventData,
    actor_id: int | None,
    at=None,
    close_user: tuple[int, int] | None = None,
) -> RoomEvent:
    """Store one room event and publish it once the transaction commits.

    `actor_id`: whom the event is from, for viewers who blocked them (None: shown to all).
    `close_user`: (user id, close code) whose connections to the room close after it."""
    row = build_event(room_id, seq=seq, event=event, actor_id=actor_id, at=at)
    row.save(force_insert=True)
    publish_on_commit(row, close_user=close_user)
    return row


def build_event(room_id: int, *, seq: int, event: RoomEventData, actor_id: int | None, at=None) -> RoomEvent:
    at = at or timezone.now()
    data = {"type": event.type, "seq": seq, "ts": iso(at), **event.fields}
    return RoomEvent(room_id=room_id, seq=seq, type=event.type, actor_id=actor_id, data=data, created_at=at)


def publish_on_commit(
    event: RoomEvent,
    *,
    close_user: tuple[int, int] | None = None,
    skippable: bool = False,
    concerns: tuple[int, ...] = (),
) -> None:
    """`skippable`, `concerns`: see realtime.publish_room_event."""
    # Encoded here, once: every process and every viewer forwards this same text.
    text = encode(event.data)
    room_id, seq, actor_id = event.room_id, event.seq, event.actor_id

    def stored() -> None:
        metrics.EVENTS_STORED.inc()
        realtime.publish_room_event(
            room_id,
            seq=seq,
            actor_id=actor_id,
            text=text,
            close_user=close_user,
            skippable=skippable,
            concerns=concerns,
        )

    transaction.on_commit(stored)


def append_event(
    room_id: int, *, event: RoomEventData, actor_id: int | None, close_user: tuple[int, int] | None = None
) -> RoomEvent:
    """log_event with the room's next seq."""
    return log_event(room_id, seq=next_seq(room_id), event=event, actor_id=actor_id, close_user=close_user)
