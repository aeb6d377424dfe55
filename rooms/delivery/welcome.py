"""What a viewer is told when it connects: the `welcome` frame and what it is made of."""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from rooms import extensions, selectors, services
from rooms.models import Room
from rooms.presence import get_presence
from rooms.protocol import client_limits, encode, frames, iso, parse_iso

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ViewerState:
    """Who connects to which room, read once when the connection opens."""

    room: Room
    me: dict[str, Any]
    blocked: set[int]
    banned: bool
    muted_until: datetime | None
    muted_reason: str
    balance: int
    # The room's last seq when the viewer connected: its welcome holds at least this.
    head: int


def viewer_state(room: Room, user, *, head: int) -> ViewerState:
    """The viewer's standing in `room` (a signed-in viewer's is read from the database:
    run it on the read path; a guest's reads nothing)."""
    if not user.is_authenticated:
        return ViewerState(
            room=room,
            me=selectors.user_in_room(user, room),
            blocked=set(),
            banned=False,
            muted_until=None,
            muted_reason="",
            balance=0,
            head=head,
        )
    restricted = extensions.restrictions(room.pk, user.pk)
    return ViewerState(
        room=room,
        me=selectors.user_in_room(user, room),
        blocked=extensions.blocked_ids(user.pk),
        banned=restricted.banned,
        muted_until=restricted.muted_until,
        muted_reason=restricted.muted_reason,
        balance=services.balance_of(user.pk),
        head=head,
    )


def fresh_standing(user_id: int, room_id: int):
    """(user, the user as the protocol shows them in the room), read anew; None if the
    account is gone or deactivated, or the room is."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    room = Room.objects.filter(pk=room_id).first()
    if user is None or room is None:
        return None
    return user, selectors.user_in_room(user, room)


@dataclass(frozen=True)
class WelcomeParts:
    """What a welcome tells about the room rather than the viewer, encoded: `room`,
    the `history` (a History of event texts) and the `pinned` event texts."""

    room: str
    history: selectors.History
    pinned: list[str]


def read_parts(room_id: int, *, after: int | None, blocked: set[int], limit: int | None = None) -> WelcomeParts:
    """The welcome's room parts for one viewer, read from the database (a viewer with
    blocks, or one resuming from further back than its room's snapshot holds)."""
    room = selectors.room_by_id(room_id)
    return WelcomeParts(
        room=encode(selectors.room_state(room)),
        history=selectors.room_history(room_id, after=after, blocked=blocked, limit=limit, as_text=True),
        pinned=[encode(event) for event in selectors.pinned_events(room_id, blocked=blocked)],
    )


# Events are encoded from dicts whose first key is `type` (rooms.services.events).
_MESSAGE_EVENT = '{"type":"message",'
# How many of the latest events a room's snapshot keeps: a first visit's history and
# the resumes of viewers that were away briefly (a reconnect, a process draining).
SNAPSHOT_EVENTS = 200
# How long a snapshot is reused without being read again. Its room's feed keeps it
# current with every live event; the bound covers what changes without one reaching
# this process (a host's new name in `room.hosts`, a publish lost while the channel
# layer was away).
SNAPSHOT_MAX_AGE_SECONDS = 2.0


class RoomSnapshot:
    """The parts of a room's welcome that all its viewers without blocks share, read
    once and kept by the room's feed (rooms.delivery.hub.RoomFeed): a join storm costs
    one read of the room, not one per viewer. Chat lines that arrive live are added as
    they come; any other event (a tip, a notice, moderation, a room change) makes the
    feed drop it, to be read again by the next viewer."""

    def __init__(self, *, room: str, latest: selectors.LatestEvents, pinned: list[dict[str, Any]]) -> None:
        self.room = room
        self.pinned = [(parse_iso(event["pinned_until"]), encode(event)) for event in pinned]
        self.events: deque[tuple[int, str]] = deque(latest.events, maxlen=SNAPSHOT_EVENTS)
        self.last_seq = latest.last_seq
        self.pruned_through = latest.pruned_through
        # The events held are all there are after the retention floor.
        self.complete = len(latest.events) < SNAPSHOT_EVENTS
        self.taken_at = time.monotonic()

    @property
    def fresh(self) -> bool:
        return time.monotonic() - self.taken_at < SNAPSHOT_MAX_AGE_SECONDS

    def follow(self, seq: int, text: str) -> bool:
        """Take in a live event; False when the snapshot cannot stay correct with it."""
        if seq <= self.last_seq:
            return True
        if seq != self.last_seq + 1 or not text.startswith(_MESSAGE_EVENT):
            return False
        if len(self.events) == self.events.maxlen:
            self.complete = False
        self.events.append((seq, text))
        self.last_seq = seq
        return True

    def parts(self, after: int | None) -> WelcomeParts | None:
        """The welcome's room parts for a viewer without blocks resuming after `after`
        (None: a first visit); None when the snapshot does not hold all it needs."""
        now = timezone.now()
        pinned = [text for until, text in self.pinned if until > now]
        if after is None:
            texts = [text for _, text in self.events][-settings.CHAT_HISTORY_FIRST_VISIT :]
            history = selectors.History(
                events=texts, last_seq=self.last_seq, more=False, pruned=False, pruned_through=self.pruned_through
            )
            return WelcomeParts(room=self.room, history=history, pinned=pinned)
        oldest = self.events[0][0] if self.events else self.last_seq + 1
        if after > self.last_seq or (after < oldest - 1 and not self.complete):
            return None
        texts = [text for seq, text in self.events if seq > after]
        page = settings.CHAT_HISTORY_RESUME_MAX
        history = selectors.History(
            events=texts[:page],
            last_seq=self.last_seq,
            more=len(texts) > page,
            pruned=after < self.pruned_through,
            pruned_through=self.pruned_through,
        )
        return WelcomeParts(room=self.room, history=history, pinned=pinned)


def read_snapshot(room_id: int) -> RoomSnapshot:
    return RoomSnapshot(
        room=encode(selectors.room_state(selectors.room_by_id(room_id))),
        latest=selectors.latest_events(room_id, limit=SNAPSHOT_EVENTS),
        pinned=selectors.pinned_events(room_id, blocked=set()),
    )


def welcome_frame(state: ViewerState, parts: WelcomeParts, *, roster: dict[str, Any]) -> str:
    you = {
        **state.me,
        "muted_until": iso(state.muted_until),
        "balance": state.balance,
        "blocked": sorted(state.blocked),
    }
    if state.muted_until is not None:
        you["muted_reason"] = state.muted_reason
    return frames.welcome(
        room=parts.room,
        you=you,
        roster=roster,
        history=parts.history.events,
        last_seq=parts.history.last_seq,
        history_truncated=parts.history.truncated,
        pinned=parts.pinned,
        limits=client_limits(),
    )


async def read_roster(room_id: int, *, offset: int, limit: int) -> dict[str, Any]:
    """A page of the room's roster from the presence store (which may be unreachable)."""
    store = get_presence()
    return frames.roster_fields(
        count=await store.count(room_id),
        team=await store.team(room_id),
        audience=await store.audience(room_id, offset=offset, limit=limit),
        offset=offset,
    )


def local_roster(local_viewers: int, *, offset: int) -> dict[str, Any]:
    """What this process alone can tell of the roster while the presence store is
    unreachable, so a viewer still gets in and reads the log."""
    logger.warning("Presence store unavailable; answering with this process's viewers", exc_info=True)
    return frames.roster_fields(count=local_viewers, team=[], audience=[], offset=offset)


async def roster_or_local(room_id: int, *, offset: int, limit: int, local_viewers: int) -> dict[str, Any]:
    try:
        return await read_roster(room_id, offset=offset, limit=limit)
    except Exception:
        return local_roster(local_viewers, offset=offset)
