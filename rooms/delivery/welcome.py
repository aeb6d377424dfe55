"""What a viewer is told when it connects: the `welcome` frame and what it is made of."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model

from rooms import extensions, selectors, services
from rooms.errors import ChatError
from rooms.models import Room
from rooms.presence import get_presence
from rooms.protocol import client_limits, frames, iso

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
    pinned: list[dict[str, Any]]


def viewer_state(slug: str, user) -> ViewerState | None:
    """None for an unknown room."""
    try:
        room = selectors.get_room(slug)
    except ChatError:
        return None
    user_id = user.pk if user.is_authenticated else None
    restricted = extensions.restrictions(room.pk, user_id) if user_id is not None else extensions.Restrictions()
    blocked = extensions.blocked_ids(user_id)
    return ViewerState(
        room=room,
        me=selectors.user_in_room(user, room),
        blocked=blocked,
        banned=restricted.banned,
        muted_until=restricted.muted_until,
        muted_reason=restricted.muted_reason,
        balance=services.balance_of(user_id),
        pinned=selectors.pinned_events(room.pk, blocked=blocked),
    )


def fresh_standing(user_id: int, room_id: int):
    """(user, the user as the protocol shows them in the room), read anew; None if the
    account is gone or deactivated, or the room is."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    room = Room.objects.filter(pk=room_id).first()
    if user is None or room is None:
        return None
    return user, selectors.user_in_room(user, room)


def welcome_frame(
    state: ViewerState, *, room: dict[str, Any], history: selectors.History, roster: dict[str, Any]
) -> str:
    you = {
        **state.me,
        "muted_until": iso(state.muted_until),
        "balance": state.balance,
        "blocked": sorted(state.blocked),
    }
    if state.muted_until is not None:
        you["muted_reason"] = state.muted_reason
    return frames.welcome(
        room=room,
        you=you,
        roster=roster,
        history=history.events,
        last_seq=history.last_seq,
        history_truncated=history.truncated,
        pinned=state.pinned,
        limits=client_limits(),
    )


async def roster_or_local(room_id: int, *, offset: int, limit: int, local_viewers: int) -> dict[str, Any]:
    """The room's roster, or while the presence store is unreachable what this process
    alone can see, so a viewer still gets in and reads the log."""
    store = get_presence()
    try:
        return frames.roster_fields(
            count=await store.count(room_id),
            team=await store.team(room_id),
            audience=await store.audience(room_id, offset=offset, limit=limit),
            offset=offset,
        )
    except Exception:
        logger.warning("Presence store unavailable; answering with this process's viewers", exc_info=True)
        return frames.roster_fields(count=local_viewers, team=[], audience=[], offset=offset)
