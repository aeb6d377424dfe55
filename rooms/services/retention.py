"""What the room log keeps: pruning old events, and forgetting a deleted user's name.

Pruning deletes a room's log from its start up to a seq (`Room.pruned_through`, the
floor) and the chat messages those events carry. It keeps what is not chat: tips and
the wallet ledger (a balance is the sum of its ledger), notices, and the moderation
audit log, which have no retention of their own here.

The floor is raised, in its own short transaction, before anything is deleted, and
every reader of the log (rooms.selectors) starts after it: a pruning that is still
deleting, or that died half way, is never visible as a log with holes. Deletion then
goes in chunks, one transaction each, so a big first pruning never holds a room's row
lock (which every send takes) or a huge transaction; a later run deletes whatever an
interrupted one left below the floor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Max, Q
from django.db.models.expressions import RawSQL
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from rooms.errors import BadRequest
from rooms.models import Message, Room, RoomEvent

# The oldest cut-off a pruning may ask for is a day: anything shorter would take the
# chat of rooms that are live right now.
PRUNE_MIN_DAYS = 1
PRUNE_MAX_DAYS = 36_500
# Rows deleted per transaction.
PRUNE_CHUNK = 2000

# What stored events show instead of the name of a user whose account was deleted.
DELETED_USER_NAME = "deleted user"


@dataclass(frozen=True)
class RoomPruning:
    """What a pruning did (or, dry, would do) to one room."""

    room_id: int
    slug: str
    # The room's floor before and after: events up to `pruned_through` are gone.
    previous_floor: int
    pruned_through: int
    events: int
    messages: int


def validate_prune_days(days: Any) -> int:
    """The retention in whole days, or BadRequest with the sentence to show."""
    if isinstance(days, bool) or not isinstance(days, int) or not PRUNE_MIN_DAYS <= days <= PRUNE_MAX_DAYS:
        raise BadRequest(
            format_lazy(
                _("The age must be a whole number of days from {low} to {high}, not {days!r}."),
                low=PRUNE_MIN_DAYS,
                high=PRUNE_MAX_DAYS,
                days=days,
            )
        )
    return days


def do_prune_events(
    actor, *, older_than_days: int, room_id: int | None = None, dry_run: bool = False
) -> list[RoomPruning]:
    """Delete, per room (every room, or `room_id`'s), the log events stored more than
    `older_than_days` days ago and the messages they carry, and raise the room's floor.

    Only a run of the log from its start goes: the floor is the highest seq stored
    before the cut-off, and everything up to it is deleted, so the log stays one
    unbroken run of seqs after the floor. `dry_run` counts and changes nothing.
    Returns the rooms whose log was (or would be) shortened, by room id. `actor`: who
    prunes, None from the shell (`manage.py prune_events`).
    """
    cutoff = timezone.now() - timedelta(days=validate_prune_days(older_than_days))
    rooms = Room.objects.order_by("pk")
    if room_id is not None:
        rooms = rooms.filter(pk=room_id)
    report = []
    for pk, slug, floor in rooms.values_list("pk", "slug", "pruned_through"):
        newest_old = RoomEvent.objects.filter(room_id=pk, seq__gt=floor, created_at__lt=cutoff).aggregate(
            seq=Max("seq")
        )["seq"]
        target = max(floor, newest_old or 0)
        if dry_run:
            below = RoomEvent.objects.filter(room_id=pk, seq__lte=target)
            events, messages = below.count(), below.filter(type="message").count()
        else:
            if target > floor:
                # Never lowered: a concurrent run with a shorter retention may be ahead.
                Room.objects.filter(pk=pk).update(pruned_through=Greatest("pruned_through", target))
            target = Room.objects.filter(pk=pk).values_list("pruned_through", flat=True).get()
            events, messages = _delete_through(pk, target)
        if events or messages or target > floor:
            report.append(
                RoomPruning(
                    room_id=pk, slug=slug, previous_floor=floor, pruned_through=target, events=events, messages=messages
                )
            )
    return report


def _delete_through(room_id: int, through: int) -> tuple[int, int]:
    """Delete the room's events up to seq `through` and the messages they carry, a chunk
    per transaction, walking the log's (room, seq) index. Returns (events, messages)."""
    events = messages = 0
    while True:
        with transaction.atomic():
            chunk = list(
                RoomEvent.objects.filter(room_id=room_id, seq__lte=through)
                .order_by("seq")
                .values_list("pk", "type", "data__id")[:PRUNE_CHUNK]
            )
            if not chunk:
                return events, messages
            message_ids = [carried for _, kind, carried in chunk if kind == "message" and carried is not None]
            # Through the ORM, for on_delete: a reply to a pruned message keeps its own
            # stored quote, and its reply_to becomes null.
            _, per_model = Message.objects.filter(room_id=room_id, pk__in=message_ids).delete()
            messages += per_model.get(Message._meta.label, 0)
            events += RoomEvent.objects.filter(pk__in=[pk for pk, _, _ in chunk]).delete()[0]


@transaction.atomic
def do_forget_user_names(actor, *, user_id: int) -> int:
    """Replace the name of user `user_id` with DELETED_USER_NAME wherever the stored log
    shows them (message authors, mentions, reply quotes, tips' `from`, moderation
    targets and actors, notices' and deletions' `by`); ids stay, so clients still tell
    one person's lines apart. Runs in the transaction that deletes the user (the
    pre_delete receiver in rooms.signals), so a delete that fails keeps the names.

    Returns how many events changed. It reads the whole log once: user-shaped objects
    sit at several places in an event, and an index for them would cost every send.
    `actor`: who deletes the user, None when that is not known (the signal is not told).
    """
    changed = []
    candidates = RoomEvent.objects.filter(_shows_user(user_id)).select_for_update().order_by("pk")
    for event in candidates.iterator(chunk_size=500):
        if _blank_user(event.data, user_id):
            changed.append(event)
    RoomEvent.objects.bulk_update(changed, ["data"], batch_size=500)
    return len(changed)


def _shows_user(user_id: int) -> Q:
    """Events that may show the user: a superset, narrowed by _blank_user."""
    shown = Q(actor_id=user_id)
    for path in ("author", "by", "from", "target", "reply_to__author"):
        shown |= Q(**{f"data__{path}__id": user_id})
    if connection.vendor == "postgresql":
        shown |= Q(data__mentions__contains=[{"id": user_id}])
    else:
        # SQLite has no JSON containment: look through the list with json_each.
        table = connection.ops.quote_name(RoomEvent._meta.db_table)
        shown |= Q(
            pk__in=RawSQL(
                f"SELECT e.id FROM {table} e, json_each(e.data, '$.mentions') m"
                " WHERE json_extract(m.value, '$.id') = %s",
                [user_id],
            )
        )
    return shown


def _blank_user(value: Any, user_id: int) -> bool:
    """Blank the name in every user object ({id, name, role, ...}) of `user_id` inside
    `value`, in place; True if anything changed."""
    changed = False
    if isinstance(value, dict):
        if value.get("id") == user_id and "name" in value and "role" in value and value["name"] != DELETED_USER_NAME:
            value["name"] = DELETED_USER_NAME
            changed = True
        for item in value.values():
            changed = _blank_user(item, user_id) or changed
    elif isinstance(value, list):
        for item in value:
            changed = _blank_user(item, user_id) or changed
    return changed
