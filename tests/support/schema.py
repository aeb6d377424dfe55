"""The server side of PROTOCOL.md as assertions.

`validate_event(obj)` checks one server event (or a `batch` frame) against the contract
and raises AssertionError naming the event, the field and what was wrong. Hand-written on
purpose: the contract is small, and a message such as "message.author.role: 'admin' is
not one of ..." says more than a generic schema error would.

Extra fields are allowed everywhere (the contract says clients must tolerate added
fields); missing, mistyped and out-of-range ones are not.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from rooms.protocol import (
    CLIENT_ID_MAX,
    CODES_WITH_RETRY_AFTER,
    ERROR_CODES,
    MAX_SLOW_MODE_SECONDS,
    events,
    frames,
)
from rooms.services.emotes import CODE_RE

ROLES = frozenset({"host", "moderator", "member", "guest"})
TEAM_ROLES = frozenset({"host", "moderator"})
# The names, codes and limits come from the protocol's own definitions (rooms.protocol):
# what the server builds and what this checks cannot drift apart.
ROOM_EVENT_TYPES = frozenset(events.FIELDS)
CONNECTION_EVENT_TYPES = frozenset(frames.FIELDS)
REQUIRED_FIELDS = {**events.FIELDS, **frames.FIELDS}
MODERATION_ACTIONS = events.MODERATION_ACTIONS


Event = dict[str, Any]


def validate_event(obj: Any) -> None:
    """Assert that `obj` is one server event, or a `batch` of them, as PROTOCOL.md says."""
    _check(isinstance(obj, dict), "event", f"must be a JSON object, got {_show(obj)}")
    kind = obj.get("type")
    _check(isinstance(kind, str), "event", f"needs a string `type`, got {_show(obj)}")
    if kind == "batch":
        _batch(obj)
        return
    checker = _CHECKERS.get(kind)
    _check(checker is not None, kind, f"is not a server event type of the protocol: {_show(obj)}")
    if kind in ROOM_EVENT_TYPES:
        _room_event_header(obj, kind)
    for name in REQUIRED_FIELDS[kind]:
        _field(obj, name, kind)
    try:
        checker(obj, kind)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n  in {_show(obj)}") from None


def validate_frame(text: str) -> list[Event]:
    """Decode one server text frame, validate it and return its events in order."""
    _check(isinstance(text, str), "frame", f"must be a text frame, got {_show(text)}")
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise AssertionError(f"frame: not JSON ({exc}): {text[:200]!r}") from None
    validate_event(obj)
    return unpack(obj)


def unpack(obj: Event) -> list[Event]:
    """The events a frame carries: a batch's events, or the frame itself."""
    return list(obj["events"]) if obj.get("type") == "batch" else [obj]


def is_room_event(event: Event) -> bool:
    return event.get("type") in ROOM_EVENT_TYPES


# Checks for fields.


def _check(condition: bool, where: str, problem: str) -> None:
    if not condition:
        raise AssertionError(f"{where}: {problem}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + "..."


def _field(obj: Event, name: str, where: str) -> Any:
    _check(name in obj, f"{where}.{name}", "is missing")
    return obj[name]


def _int(value: Any, where: str, *, minimum: int | None = None) -> None:
    # bool is an int subclass in Python but never an id, seq or count on the wire.
    _check(type(value) is int, where, f"must be an integer, got {_show(value)}")
    if minimum is not None:
        _check(value >= minimum, where, f"must be >= {minimum}, got {value}")


def _int_or_null(value: Any, where: str, *, minimum: int | None = None) -> None:
    if value is not None:
        _int(value, where, minimum=minimum)


def _str(value: Any, where: str, *, non_empty: bool = False) -> None:
    _check(isinstance(value, str), where, f"must be a string, got {_show(value)}")
    if non_empty:
        _check(value.strip() != "", where, "must not be empty")


def _bool(value: Any, where: str) -> None:
    _check(isinstance(value, bool), where, f"must be true or false, got {_show(value)}")


def _one_of(value: Any, allowed: frozenset[str], where: str) -> None:
    _check(value in allowed, where, f"{_show(value)} is not one of {', '.join(sorted(allowed))}")


def _iso(value: Any, where: str) -> None:
    _check(isinstance(value, str), where, f"must be an ISO-8601 string, got {_show(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise AssertionError(f"{where}: {value!r} is not ISO-8601") from None
    _check(
        parsed.utcoffset() == timedelta(0),
        where,
        f"{value!r} must be UTC (ending in Z or +00:00)",
    )


def _iso_or_null(value: Any, where: str) -> None:
    if value is not None:
        _iso(value, where)


def _client_id(value: Any, where: str) -> None:
    _check(
        isinstance(value, str) and 0 < len(value) <= CLIENT_ID_MAX,
        where,
        f"must be a string of 1 to {CLIENT_ID_MAX} characters, got {_show(value)}",
    )


def _user(value: Any, where: str, *, roles: frozenset[str] = ROLES) -> None:
    _check(isinstance(value, dict), where, f"must be a user object, got {_show(value)}")
    user_id = _field(value, "id", where)
    name = _field(value, "name", where)
    role = _field(value, "role", where)
    _one_of(role, roles, f"{where}.role")
    if user_id is None:
        # Only an anonymous connection has no id, and then no name either.
        _check(role == "guest", f"{where}.role", f"a user without an id is a guest, not {role!r}")
        _check(name is None, f"{where}.name", f"a user without an id has no name, got {_show(name)}")
    else:
        _int(user_id, f"{where}.id", minimum=1)
        _str(name, f"{where}.name", non_empty=True)
        _check(role != "guest", f"{where}.role", "a signed-in user is never a guest")
    if "staff" in value:
        _bool(value["staff"], f"{where}.staff")
    if "badges" in value:
        _check(isinstance(value["badges"], list), f"{where}.badges", "must be a list")


def _signed_in_user(value: Any, where: str, *, roles: frozenset[str] = ROLES) -> None:
    _user(value, where, roles=roles)
    _check(value["id"] is not None, f"{where}.id", "must be a signed-in user's id")


def _user_or_null(value: Any, where: str) -> None:
    if value is not None:
        _user(value, where)


def _users(value: Any, where: str, *, roles: frozenset[str] = ROLES) -> None:
    _check(isinstance(value, list), where, f"must be a list of users, got {_show(value)}")
    for i, user in enumerate(value):
        _signed_in_user(user, f"{where}[{i}]", roles=roles)
    ids = [u["id"] for u in value]
    _check(len(ids) == len(set(ids)), where, f"lists a user twice: {ids}")


def _optional_client_id(obj: Event, where: str) -> None:
    if "client_id" in obj:
        _client_id(obj["client_id"], f"{where}.client_id")


# Room events.


def _room_event_header(obj: Event, kind: str) -> None:
    _int(_field(obj, "seq", kind), f"{kind}.seq", minimum=1)
    _iso(_field(obj, "ts", kind), f"{kind}.ts")


def _message(obj: Event, w: str) -> None:
    _int(_field(obj, "id", w), f"{w}.id", minimum=1)
    _signed_in_user(_field(obj, "author", w), f"{w}.author")
    body = _field(obj, "body", w)
    _str(body, f"{w}.body")
    deleted = obj.get("deleted", False)
    _bool(deleted, f"{w}.deleted")
    if deleted:
        _check(body == "", f"{w}.body", "a deleted message never carries its body")
    else:
        _check(body.strip() != "", f"{w}.body", "must not be empty")
    reply_to = _field(obj, "reply_to", w)
    if reply_to is not None:
        rw = f"{w}.reply_to"
        _check(isinstance(reply_to, dict), rw, f"must be an object or null, got {_show(reply_to)}")
        _int(_field(reply_to, "id", rw), f"{rw}.id", minimum=1)
        _signed_in_user(_field(reply_to, "author", rw), f"{rw}.author")
        _str(_field(reply_to, "excerpt", rw), f"{rw}.excerpt")
        if reply_to.get("deleted"):
            _check(reply_to["excerpt"] == "", f"{rw}.excerpt", "a deleted message is never quoted")
    _users(_field(obj, "mentions", w), f"{w}.mentions")
    emotes = _field(obj, "emotes", w)
    _check(isinstance(emotes, list), f"{w}.emotes", f"must be a list, got {_show(emotes)}")
    for i, emote in enumerate(emotes):
        ew = f"{w}.emotes[{i}]"
        _check(isinstance(emote, dict), ew, f"must be an object, got {_show(emote)}")
        code = _field(emote, "code", ew)
        _check(isinstance(code, str) and CODE_RE.fullmatch(code) is not None, f"{ew}.code", "must be :code:")
        _str(_field(emote, "url", ew), f"{ew}.url", non_empty=True)
        _check(emote["code"] in body, f"{ew}.code", "must be used in the body")
    client_id = _field(obj, "client_id", w)
    if client_id is not None:
        _client_id(client_id, f"{w}.client_id")


def _message_deleted(obj: Event, w: str) -> None:
    _int(_field(obj, "id", w), f"{w}.id", minimum=1)
    _signed_in_user(_field(obj, "by", w), f"{w}.by")


def _tip(obj: Event, w: str) -> None:
    _int(_field(obj, "id", w), f"{w}.id", minimum=1)
    _signed_in_user(_field(obj, "from", w), f"{w}.from")
    _int(_field(obj, "amount", w), f"{w}.amount", minimum=1)
    _str(_field(obj, "body", w), f"{w}.body")
    _iso_or_null(_field(obj, "pinned_until", w), f"{w}.pinned_until")


def _notice(obj: Event, w: str) -> None:
    _int(_field(obj, "id", w), f"{w}.id", minimum=1)
    _one_of(_field(obj, "scope", w), frozenset({"room", "site"}), f"{w}.scope")
    _one_of(_field(obj, "level", w), frozenset({"info", "warning"}), f"{w}.level")
    _str(_field(obj, "body", w), f"{w}.body", non_empty=True)
    _user_or_null(_field(obj, "by", w), f"{w}.by")


def _moderation(obj: Event, w: str) -> None:
    action = _field(obj, "action", w)
    _one_of(action, MODERATION_ACTIONS, f"{w}.action")
    target = _field(obj, "target", w)
    if target is not None:
        _signed_in_user(target, f"{w}.target")
    _signed_in_user(_field(obj, "by", w), f"{w}.by")
    _iso_or_null(_field(obj, "until", w), f"{w}.until")
    seconds = _field(obj, "seconds", w)
    _int_or_null(seconds, f"{w}.seconds", minimum=0)
    _str(_field(obj, "reason", w), f"{w}.reason")
    if action == "slow_mode":
        _check(seconds is not None, f"{w}.seconds", "a slow_mode event says how many seconds")


def _room(obj: Event, w: str) -> None:
    _str(_field(obj, "title", w), f"{w}.title", non_empty=True)
    _bool(_field(obj, "is_live", w), f"{w}.is_live")
    _slow_mode(_field(obj, "slow_mode_seconds", w), f"{w}.slow_mode_seconds")
    _bool(_field(obj, "slow_mode_auto", w), f"{w}.slow_mode_auto")


def _slow_mode(value: Any, where: str) -> None:
    _int(value, where, minimum=0)
    _check(value <= MAX_SLOW_MODE_SECONDS, where, f"must be at most {MAX_SLOW_MODE_SECONDS}, got {value}")


# Connection events.


def _roster_fields(obj: Event, w: str) -> None:
    _int(_field(obj, "count", w), f"{w}.count", minimum=0)
    team = _field(obj, "team", w)
    _users(team, f"{w}.team", roles=TEAM_ROLES)
    audience = _field(obj, "audience", w)
    _users(audience, f"{w}.audience")
    _int(_field(obj, "offset", w), f"{w}.offset", minimum=0)
    on_team = {u["id"] for u in team}
    both = [u["id"] for u in audience if u["id"] in on_team]
    _check(not both, f"{w}.audience", f"lists team members, who belong in `team`: {both}")


def _welcome(obj: Event, w: str) -> None:
    room = _field(obj, "room", w)
    _check(isinstance(room, dict), f"{w}.room", f"must be an object, got {_show(room)}")
    _str(_field(room, "slug", f"{w}.room"), f"{w}.room.slug", non_empty=True)
    _str(_field(room, "title", f"{w}.room"), f"{w}.room.title", non_empty=True)
    _bool(_field(room, "is_live", f"{w}.room"), f"{w}.room.is_live")
    _slow_mode(_field(room, "slow_mode_seconds", f"{w}.room"), f"{w}.room.slow_mode_seconds")
    _users(_field(room, "hosts", f"{w}.room"), f"{w}.room.hosts", roles=frozenset({"host"}))

    you = _field(obj, "you", w)
    _user(you, f"{w}.you")
    _iso_or_null(_field(you, "muted_until", f"{w}.you"), f"{w}.you.muted_until")
    _int(_field(you, "balance", f"{w}.you"), f"{w}.you.balance", minimum=0)
    blocked = _field(you, "blocked", f"{w}.you")
    _check(isinstance(blocked, list), f"{w}.you.blocked", f"must be a list of user ids, got {_show(blocked)}")
    for i, user_id in enumerate(blocked):
        _int(user_id, f"{w}.you.blocked[{i}]", minimum=1)

    roster = _field(obj, "roster", w)
    _check(isinstance(roster, dict), f"{w}.roster", f"must be an object, got {_show(roster)}")
    _roster_fields(roster, f"{w}.roster")

    last_seq = _field(obj, "last_seq", w)
    _int(last_seq, f"{w}.last_seq", minimum=0)
    _bool(_field(obj, "history_truncated", w), f"{w}.history_truncated")
    history = _field(obj, "history", w)
    _check(isinstance(history, list), f"{w}.history", f"must be a list, got {_show(history)}")
    previous = 0
    for i, event in enumerate(history):
        where = f"{w}.history[{i}]"
        _check(isinstance(event, dict) and is_room_event(event), where, f"must be a room event, got {_show(event)}")
        validate_event(event)
        _check(
            event["seq"] > previous,
            f"{where}.seq",
            f"history is oldest first without repeats: {event['seq']} after {previous}",
        )
        _check(event["seq"] <= last_seq, f"{where}.seq", f"{event['seq']} is past last_seq {last_seq}")
        previous = event["seq"]

    pinned = _field(obj, "pinned", w)
    _check(isinstance(pinned, list), f"{w}.pinned", f"must be a list, got {_show(pinned)}")
    for i, event in enumerate(pinned):
        _check(
            isinstance(event, dict) and event.get("type") in ("tip", "notice"),
            f"{w}.pinned[{i}]",
            f"only tips and notices are pinned, got {_show(event)}",
        )
        validate_event(event)


def _presence(obj: Event, w: str) -> None:
    _int(_field(obj, "count", w), f"{w}.count", minimum=0)
    _users(_field(obj, "joined", w), f"{w}.joined")
    _users(_field(obj, "left", w), f"{w}.left")
    _users(_field(obj, "team", w), f"{w}.team", roles=TEAM_ROLES)
    if "changed" in obj:
        _users(obj["changed"], f"{w}.changed")


def _you(obj: Event, w: str) -> None:
    # The viewer's own user object, sent again when their role or staff flag changes.
    _signed_in_user({k: v for k, v in obj.items() if k != "type"}, w)


def _roster(obj: Event, w: str) -> None:
    _roster_fields(obj, w)
    _optional_client_id(obj, w)


def _ack(obj: Event, w: str) -> None:
    client_id = _field(obj, "client_id", w)
    if client_id is not None:
        _client_id(client_id, f"{w}.client_id")
    if "id" in obj:
        _int(obj["id"], f"{w}.id", minimum=1)
    if "seq" in obj:
        _int(obj["seq"], f"{w}.seq", minimum=1)


def _error(obj: Event, w: str) -> None:
    code = _field(obj, "code", w)
    _one_of(code, ERROR_CODES, f"{w}.code")
    _str(_field(obj, "detail", w), f"{w}.detail", non_empty=True)
    _optional_client_id(obj, w)
    if code in CODES_WITH_RETRY_AFTER:
        _field(obj, "retry_after", w)
    if "retry_after" in obj:
        value = obj["retry_after"]
        _check(
            isinstance(value, int | float) and not isinstance(value, bool),
            f"{w}.retry_after",
            f"must be a number of seconds, got {_show(value)}",
        )
        _check(value > 0, f"{w}.retry_after", f"must be > 0, got {value}")


def _pong(obj: Event, w: str) -> None:
    # `ts` answers a ping's; a pong that answers none (the head, told unasked) has none.
    _int(_field(obj, "last_seq", w), f"{w}.last_seq", minimum=0)
    _optional_client_id(obj, w)


def _synced(obj: Event, w: str) -> None:
    _int(_field(obj, "last_seq", w), f"{w}.last_seq", minimum=0)
    _optional_client_id(obj, w)


def _batch(obj: Event) -> None:
    skipped = "skipped" in obj
    if skipped:
        # Contract v1.1 "Readable feeds": how many member messages were left out, up to last_seq.
        _int(obj["skipped"], "batch.skipped", minimum=1)
        _int(_field(obj, "last_seq", "batch"), "batch.last_seq", minimum=1)
    events = _field(obj, "events", "batch")
    # A batch that only says what was skipped may carry no event at all.
    _check(
        isinstance(events, list) and (events or skipped),
        "batch.events",
        f"must be a non-empty list, got {_show(events)}",
    )
    previous = 0
    for i, event in enumerate(events):
        _check(
            isinstance(event, dict) and event.get("type") != "batch",
            f"batch.events[{i}]",
            f"must be an event (batches do not nest), got {_show(event)}",
        )
        validate_event(event)
        if is_room_event(event):
            _check(
                event["seq"] > previous,
                f"batch.events[{i}].seq",
                f"a batch carries its room events in seq order: {event['seq']} after {previous}",
            )
            previous = event["seq"]


_CHECKERS = {
    "message": _message,
    "message_deleted": _message_deleted,
    "tip": _tip,
    "notice": _notice,
    "moderation": _moderation,
    "room": _room,
    "welcome": _welcome,
    "presence": _presence,
    "roster": _roster,
    "ack": _ack,
    "error": _error,
    "pong": _pong,
    "synced": _synced,
    "you": _you,
}
