"""Room events (PROTOCOL.md "Room events"): what the room's log holds and every viewer
is sent. One typed builder each; services store and publish what they return (with
`type`, `seq` and `ts` added by the log). FIELDS names what each carries, and the tests'
schema checks events against it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rooms.protocol.wire import iso

User = dict[str, Any]

FIELDS: dict[str, tuple[str, ...]] = {
    "message": ("id", "author", "body", "reply_to", "mentions", "client_id", "emotes"),
    "message_deleted": ("id", "by"),
    "tip": ("id", "from", "amount", "body", "pinned_until", "highlight", "client_id"),
    "notice": ("id", "scope", "level", "body", "by", "pinned_until"),
    "moderation": ("action", "target", "by", "until", "seconds", "reason"),
    "room": ("title", "is_live", "slow_mode_seconds", "slow_mode_auto"),
}
MODERATION_ACTIONS = frozenset({"mute", "unmute", "ban", "unban", "kick", "slow_mode"})


@dataclass(frozen=True, slots=True)
class RoomEventData:
    """A room event before the log gives it its seq and time."""

    type: str
    fields: dict[str, Any]


def quote(*, id: int, author: User, excerpt: str, deleted: bool) -> dict[str, Any]:
    """What a reply carries of the message it answers (`message.reply_to`)."""
    return {"id": id, "author": author, "excerpt": excerpt, "deleted": deleted}


def message(
    *,
    id: int,
    author: User,
    body: str,
    reply_to: dict[str, Any] | None,
    mentions: list[User],
    client_id: str | None,
    emotes: list[dict[str, str]],
) -> RoomEventData:
    """`emotes`: the room's emotes the body uses, as {code, url}, in order of first use."""
    return RoomEventData(
        "message",
        {
            "id": id,
            "author": author,
            "body": body,
            "reply_to": reply_to,
            "mentions": mentions,
            "client_id": client_id,
            "emotes": emotes,
        },
    )


def message_deleted(*, id: int, by: User | None) -> RoomEventData:
    return RoomEventData("message_deleted", {"id": id, "by": by})


def tip(
    *,
    id: int,
    sender: User,
    amount: int,
    body: str,
    pinned_until: datetime | None,
    highlight: bool,
    client_id: str | None,
) -> RoomEventData:
    return RoomEventData(
        "tip",
        {
            "id": id,
            "from": sender,
            "amount": amount,
            "body": body,
            "pinned_until": iso(pinned_until),
            "highlight": highlight,
            "client_id": client_id,
        },
    )


def notice(
    *, id: int, scope: str, level: str, body: str, by: User | None, pinned_until: datetime | None
) -> RoomEventData:
    return RoomEventData(
        "notice",
        {"id": id, "scope": scope, "level": level, "body": body, "by": by, "pinned_until": iso(pinned_until)},
    )


def moderation(
    *,
    action: str,
    target: User | None,
    by: User | None,
    until: datetime | None = None,
    seconds: int | None = None,
    reason: str = "",
) -> RoomEventData:
    assert action in MODERATION_ACTIONS, action
    return RoomEventData(
        "moderation",
        {"action": action, "target": target, "by": by, "until": iso(until), "seconds": seconds, "reason": reason},
    )


def room(*, title: str, is_live: bool, slow_mode_seconds: int, slow_mode_auto: bool) -> RoomEventData:
    return RoomEventData(
        "room",
        {"title": title, "is_live": is_live, "slow_mode_seconds": slow_mode_seconds, "slow_mode_auto": slow_mode_auto},
    )
