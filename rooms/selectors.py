"""Reads for display: rooms, users as the protocol shows them, and the event log."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, QuerySet, Sum, TextField
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from rooms import extensions
from rooms.errors import NoSuchRoom, NotFound
from rooms.models import Membership, Message, Room, RoomEvent, Tip
from rooms.permissions import Standing, is_site_staff, standing, standings
from rooms.presence import online_counts
from rooms.protocol import iso, parse_iso


def get_room(slug: str) -> Room:
    room = Room.objects.filter(slug=slug).select_related("owner").first()
    if room is None:
        raise NoSuchRoom()
    return room


def room_by_id(room_id: int) -> Room:
    room = Room.objects.filter(pk=room_id).first()
    if room is None:
        raise NoSuchRoom()
    return room


def user_brief(user, *, role: str) -> dict[str, Any]:
    """A user as the protocol shows them: {id, name, role} plus `staff` for staff."""
    if not user.is_authenticated:
        return {"id": None, "name": None, "role": "guest"}
    brief: dict[str, Any] = {"id": user.pk, "name": user.get_username(), "role": role}
    if is_site_staff(user):
        brief["staff"] = True
    return brief


def user_in_room(user, room: Room) -> dict[str, Any]:
    if not user.is_authenticated:
        return user_brief(user, role="guest")
    return user_with_standing(user, standing(user, room))


def user_with_standing(user, where: Standing) -> dict[str, Any]:
    brief: dict[str, Any] = {"id": user.pk, "name": user.get_username(), "role": where.role}
    if where.is_staff:
        brief["staff"] = True
    return brief


def room_hosts(room: Room) -> list[dict[str, Any]]:
    hosts = [m.user for m in Membership.objects.filter(room=room, role="host").select_related("user")]
    where = standings(hosts, room)
    return sorted((user_with_standing(user, where[user.pk]) for user in hosts), key=lambda u: u["name"])


def room_state(room: Room) -> dict[str, Any]:
    return {
        "slug": room.slug,
        "title": room.title,
        "is_live": room.is_live,
        "slow_mode_seconds": room.slow_mode_seconds,
        "slow_mode_auto": room.slow_mode_auto,
        "hosts": room_hosts(room),
    }


def find_user(ref: int | str):
    """A user by id or by name; NotFound for neither."""
    User = get_user_model()
    lookup = {"pk": ref} if isinstance(ref, int) else {User.USERNAME_FIELD: ref}
    user = User.objects.filter(is_active=True, **lookup).first()
    if user is None:
        raise NotFound(format_lazy(_("No user {ref!r}."), ref=ref))
    return user


@dataclass(frozen=True)
class History:
    # The events as dicts, or as JSON text (room_history's `as_text`).
    events: list[Any]
    # The seq the history is complete up to: every event up to it is either in `events`
    # or hidden from this viewer. Live delivery continues after it.
    last_seq: int
    # More events follow `events` than the page held: page on from the last of them.
    more: bool
    # Events after the requested `after` were deleted by retention: the log now starts
    # after `pruned_through`, and `events` starts there.
    pruned: bool
    pruned_through: int = 0

    @property
    def truncated(self) -> bool:
        """`history_truncated`: the events do not hold everything after the `after`
        asked for, whether a page ran out or retention deleted the start."""
        return self.more or self.pruned


@dataclass(frozen=True)
class _Log:
    events: QuerySet
    last_seq: int
    pruned_through: int


def _visible_log(room_id: int, blocked: set[int]) -> _Log:
    """The room's events one viewer may see, between the retention floor and the head."""
    # Read the head first: everything up to it is committed, and later events reach the
    # viewer live (it subscribed before calling this).
    last_seq, pruned_through = Room.objects.filter(pk=room_id).values_list("last_seq", "pruned_through").get()
    # The floor hides what a pruning still in progress has not deleted yet, so every
    # reader sees the log start at the same place.
    events = RoomEvent.objects.filter(room_id=room_id, seq__gt=pruned_through, seq__lte=last_seq)
    if blocked:
        events = events.exclude(actor_id__in=blocked)
    return _Log(events=events, last_seq=last_seq, pruned_through=pruned_through)


def room_history(
    room_id: int, *, after: int | None, blocked: set[int], limit: int | None = None, as_text: bool = False
) -> History:
    """The log as one viewer sees it: the latest events on a first visit (`after` None),
    otherwise every event after `after`, oldest first. `as_text`: each event as the
    database holds its JSON (for frames that forward it as it is), not decoded."""
    log = _visible_log(room_id, blocked)
    events = log.events.annotate(text=Cast("data", TextField())) if as_text else log.events
    column = "text" if as_text else "data"
    if after is None:
        limit = limit or settings.CHAT_HISTORY_FIRST_VISIT
        rows = list(events.order_by("-seq").values_list(column, flat=True)[:limit])
        rows.reverse()
        return History(events=rows, last_seq=log.last_seq, more=False, pruned=False, pruned_through=log.pruned_through)
    limit = limit or settings.CHAT_HISTORY_RESUME_MAX
    rows = list(events.filter(seq__gt=after).order_by("seq").values_list(column, flat=True)[: limit + 1])
    return History(
        events=rows[:limit],
        last_seq=log.last_seq,
        more=len(rows) > limit,
        pruned=after < log.pruned_through,
        pruned_through=log.pruned_through,
    )


@dataclass(frozen=True)
class LatestEvents:
    """The latest events of a room's log, as stored JSON text with their seqs."""

    events: list[tuple[int, str]]
    last_seq: int
    pruned_through: int


def latest_events(room_id: int, *, limit: int) -> LatestEvents:
    """The room's latest `limit` events (no blocks), oldest first."""
    log = _visible_log(room_id, set())
    rows = list(log.events.annotate(text=Cast("data", TextField())).order_by("-seq").values_list("seq", "text")[:limit])
    rows.reverse()
    return LatestEvents(events=rows, last_seq=log.last_seq, pruned_through=log.pruned_through)


@dataclass(frozen=True)
class Replay:
    """A page of the log as stored JSON text, for a viewer catching up."""

    texts: list[str]
    # The viewer has everything up to this seq once it has these events: the head, or
    # the last event of a truncated page.
    last_seq: int
    # More pages follow: ask again after `last_seq`.
    truncated: bool
    # Events after the requested `after` were deleted by retention; the page starts after
    # the floor. Not a reason to ask again: nothing older will come.
    pruned: bool = False


def room_replay(room_id: int, *, after: int, blocked: set[int], limit: int) -> Replay:
    """Every event after `after` that the viewer may see, oldest first, at most `limit`,
    each as the database holds its JSON: forwarded as it is, never decoded and encoded
    again (a catch-up of thousands of events would cost the process seconds of CPU)."""
    log = _visible_log(room_id, blocked)
    pruned = after < log.pruned_through
    rows = list(
        log.events.filter(seq__gt=after)
        .order_by("seq")
        .annotate(text=Cast("data", TextField()))
        .values_list("seq", "text")[: limit + 1]
    )
    if len(rows) > limit:
        return Replay(
            texts=[text for _, text in rows[:limit]], last_seq=rows[limit - 1][0], truncated=True, pruned=pruned
        )
    return Replay(texts=[text for _, text in rows], last_seq=log.last_seq, truncated=False, pruned=pruned)


def viewer_blocks(user) -> set[int]:
    return extensions.blocked_ids(user.pk if user.is_authenticated else None)


def room_list() -> list[Room]:
    rooms = list(Room.objects.select_related("owner").order_by("-is_live", "title"))
    counts = online_counts([r.pk for r in rooms])
    for room in rooms:
        room.online = counts.get(room.pk, 0)
    # Live first, then the busiest.
    rooms.sort(key=lambda r: (not r.is_live, -r.online, r.title.lower()))
    return rooms


def room_head(room_id: int) -> int:
    """The room's last seq. Asked on every ping and every connect, so in plain SQL: the
    ORM's own work would be most of its cost. NoSuchRoom if the room is gone."""
    with connection.cursor() as cursor:
        cursor.execute(_room_head_sql(connection.vendor), [room_id])
        row = cursor.fetchone()
    if row is None:
        raise NoSuchRoom()
    return row[0]


@functools.cache
def _room_head_sql(vendor: str) -> str:
    qn = connection.ops.quote_name
    return (
        f"SELECT {qn(Room._meta.get_field('last_seq').column)} FROM {qn(Room._meta.db_table)}"
        f" WHERE {qn(Room._meta.pk.column)} = %s"
    )


def pinned_events(room_id: int, *, blocked: set[int]) -> list[dict[str, Any]]:
    """Tips and notices still pinned now, oldest first, as their log events."""
    now = timezone.now()
    longest = max([s for _, s in settings.CHAT_TIP_PIN_TIERS] + [settings.CHAT_NOTICE_PIN_SECONDS])
    events = RoomEvent.objects.filter(
        room_id=room_id, type__in=("tip", "notice"), created_at__gte=now - timedelta(seconds=longest)
    )
    if blocked:
        events = events.exclude(actor_id__in=blocked)
    return [
        data
        for data in events.order_by("seq").values_list("data", flat=True)
        if data.get("pinned_until") and parse_iso(data["pinned_until"]) > now
    ]


def top_tippers(room: Room, *, since=None, limit: int = 10) -> list[dict[str, Any]]:
    tips = Tip.objects.filter(room=room)
    if since is not None:
        tips = tips.filter(created_at__gte=since)
    rows = (
        tips.values("sender_id", "sender__username")
        .annotate(total=Sum("amount"), count=Count("id"))
        .order_by("-total", "sender__username")[:limit]
    )
    return [
        {"id": r["sender_id"], "name": r["sender__username"], "total": r["total"], "tips": r["count"]} for r in rows
    ]


def leaderboard(room: Room) -> dict[str, Any]:
    return {
        "stream": top_tippers(room, since=room.live_since) if room.live_since else [],
        "all_time": top_tippers(room),
    }


def send_contexts(room_id: int, senders: list[tuple[int | None, str | None]], *, now) -> list[Room | None]:
    """Everything the sends of a batch need to be checked, in one query: for each
    (user id, client_id) in order, the room with the sender's team role
    (`member_role`), their active ban and mute (`banned_until`, `muted_until`), their
    last message for slow mode (`last_sent_at`) and the message a repeated client_id
    already stored (`stored_id`). Nones if the room does not exist."""
    params: list = [value for i, (user_id, client_id) in enumerate(senders) for value in (i, user_id, client_id)]
    params += [*extensions.send_rules().columns_params(now=now), room_id]
    rooms: list[Room | None] = [None] * len(senders)
    for room in Room.objects.raw(_send_contexts_sql(connection.vendor, len(senders)), params):
        for name in ("last_sent_at", "banned_until", "muted_until"):
            setattr(room, name, _datetime_from_db(getattr(room, name)))
        rooms[room.sender_index] = room
    return rooms


@functools.cache
def _send_contexts_sql(vendor: str, count: int) -> str:
    """The query of send_contexts for `count` senders, built once per database vendor.
    It runs for every batch of chat lines, and building it with the ORM cost ten times
    what the database spends on it."""
    qn = connection.ops.quote_name

    def col(model, name: str) -> str:
        return qn(model._meta.get_field(name).column)

    room_table = qn(Room._meta.db_table)
    room_pk = f"{room_table}.{col(Room, 'id')}"
    message = qn(Message._meta.db_table)
    fields = ", ".join(f"{room_table}.{qn(f.column)}" for f in Room._meta.concrete_fields)
    # Typed, so that a column of NULLs (an anonymous sender) still compares with ids.
    client_id_type = f"varchar({Message._meta.get_field('client_id').max_length})"
    senders = ", ".join([f"(CAST(%s AS integer), CAST(%s AS bigint), CAST(%s AS {client_id_type}))"] * count)
    return (
        f"WITH sender (sender_index, user_id, client_id) AS (VALUES {senders})"
        f" SELECT {fields}, sender.sender_index,"
        f" (SELECT m.{col(Membership, 'role')} FROM {qn(Membership._meta.db_table)} m"
        f" WHERE m.{col(Membership, 'room')} = {room_pk} AND m.{col(Membership, 'user')} = sender.user_id)"
        f" AS member_role,"
        f" (SELECT MAX(m.{col(Message, 'created_at')}) FROM {message} m"
        f" WHERE m.{col(Message, 'room')} = {room_pk} AND m.{col(Message, 'author')} = sender.user_id)"
        f" AS last_sent_at,"
        f" (SELECT m.{col(Message, 'id')} FROM {message} m"
        f" WHERE m.{col(Message, 'room')} = {room_pk} AND m.{col(Message, 'author')} = sender.user_id"
        f" AND m.{col(Message, 'client_id')} = sender.client_id) AS stored_id,"
        f" {extensions.send_rules().columns_sql(room_column=room_pk, user_column='sender.user_id')}"
        f" FROM {room_table} CROSS JOIN sender WHERE {room_pk} = %s"
    )


def _datetime_from_db(value):
    # SQLite hands the extra columns of a raw query over as text; PostgreSQL as datetimes.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
        if timezone.is_naive(value):
            value = value.replace(tzinfo=UTC)
    return value


def restrictions_shown(room_id: int, user_id: int) -> dict[str, dict | None]:
    """A user's ban and mute in a room as the page shows them: each `{until, reason}` or
    None (a permanent ban's `until` is None). Read through the seam: rooms does not read
    moderation's tables itself."""
    now = extensions.restrictions(room_id, user_id)
    return {
        "banned": {"until": iso(now.banned_until), "reason": now.ban_reason} if now.banned else None,
        "muted": {"until": iso(now.muted_until), "reason": now.muted_reason} if now.muted_until else None,
    }


PERSON_RECENT_MESSAGES = 5


def person_card(room: Room, user_id: int, *, for_team: bool) -> dict[str, Any]:
    """A person's card in a room: role, account age, latest messages here; for the host
    team (`for_team`) also their ban and mute. NotFound for no such active person."""
    person = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if person is None:
        raise NotFound(_("No such person."))
    recent = Message.objects.filter(room=room, author=person, deleted_at__isnull=True).order_by("-seq")[
        :PERSON_RECENT_MESSAGES
    ]
    card: dict[str, Any] = {
        "person": user_in_room(person, room),
        "joined": iso(person.date_joined),
        "recent": [{"id": m.pk, "seq": m.seq, "body": m.body, "ts": iso(m.created_at)} for m in recent],
    }
    if for_team:
        card.update(restrictions_shown(room.pk, person.pk))
    return card
