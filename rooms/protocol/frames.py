"""Connection frames (PROTOCOL.md "Connection events"): about one connection, not the
room's log, and never stored. One builder each, returning the encoded text; FIELDS
names what each carries, and the tests' schema checks frames against it."""

from __future__ import annotations

import json
from typing import Any

from django.utils.functional import Promise

from rooms.protocol.wire import encode

User = dict[str, Any]

# Required fields of each connection frame (besides `type`). Optional ones: `client_id`
# on replies, `retry_after` on errors, `truncated` on synced, `changed` on presence,
# what an ack stored (`id`, `seq`, `balance`, `blocked`), `staff` on a user, `ts` on a
# pong (one that answers no ping, see head(), has none), `close` on an error that ends a
# server-sent-events stream.
FIELDS: dict[str, tuple[str, ...]] = {
    "welcome": (
        "room",
        "you",
        "roster",
        "history",
        "last_seq",
        "history_truncated",
        "pinned",
        "limits",
    ),
    "presence": ("count", "joined", "left", "team"),
    "roster": ("count", "team", "audience", "offset"),
    "ack": ("client_id",),
    "error": ("code", "detail"),
    "pong": ("last_seq",),
    "synced": ("last_seq",),
    "you": ("id", "name", "role"),
}


def _with_client_id(frame: dict[str, Any], client_id: str | None) -> dict[str, Any]:
    if client_id is not None:
        frame["client_id"] = client_id
    return frame


def welcome(
    *,
    room: str,
    you: dict[str, Any],
    roster: dict[str, Any],
    history: list[str],
    last_seq: int,
    history_truncated: bool,
    pinned: list[str],
    limits: dict[str, Any],
) -> str:
    """`room`, and each event of `history` and `pinned`, are already encoded JSON: the
    parts every viewer of a room shares are encoded once and reused, and stored events
    are forwarded as the database holds them."""
    return (
        '{"type":"welcome","room":' + room
        + ',"you":' + encode(you)
        + ',"roster":' + encode(roster)
        + ',"history":[' + ",".join(history)
        + '],"last_seq":' + str(last_seq)
        + ',"history_truncated":' + ("true" if history_truncated else "false")
        + ',"pinned":[' + ",".join(pinned)
        + '],"limits":' + encode(limits)
        + "}"
    )  # fmt: skip


def presence(*, count: int, joined: list[User], left: list[User], team: list[User], changed: list[User]) -> str:
    frame: dict[str, Any] = {"type": "presence", "count": count, "joined": joined, "left": left, "team": team}
    if changed:
        frame["changed"] = changed
    return encode(frame)


def roster_fields(*, count: int, team: list[User], audience: list[User], offset: int) -> dict[str, Any]:
    """The roster as `welcome.roster` carries it (the `roster` frame without its type)."""
    return {"count": count, "team": team, "audience": audience, "offset": offset}


def roster(fields: dict[str, Any], *, client_id: str | None) -> str:
    return encode(_with_client_id({"type": "roster", **fields}, client_id))


def ack(client_id: str | None, **stored: Any) -> str:
    """`stored`: what the command stored or changed (`id`, `seq`, `balance`, `blocked`);
    None values are left out."""
    frame: dict[str, Any] = {"type": "ack", "client_id": client_id}
    frame.update((name, value) for name, value in stored.items() if value is not None)
    return encode(frame)


def error(code: str, detail: str | Promise, *, client_id: str | None = None, retry_after: float | None = None) -> str:
    """`detail`, usually a lazy translation, is put in the language active now: the
    connection's (the consumer activates it) or the request's (LocaleMiddleware)."""
    frame: dict[str, Any] = {"type": "error", "code": code, "detail": str(detail)}
    if client_id is not None:
        frame["client_id"] = client_id
    if retry_after is not None:
        frame["retry_after"] = max(round(retry_after, 3), 0.001)
    text = encode(frame)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A client_id with a lone surrogate, echoed back: escaped, the frame is valid UTF-8.
        text = json.dumps(frame, separators=(",", ":"), ensure_ascii=True)
    return text


def pong(*, ts: Any, last_seq: int, client_id: str | None) -> str:
    return encode(_with_client_id({"type": "pong", "ts": ts, "last_seq": last_seq}, client_id))


def head(*, last_seq: int) -> str:
    """A `pong` nobody asked for: the room's log goes up to `last_seq`, and live
    delivery may have missed some of it (fetch it with `sync`)."""
    return encode({"type": "pong", "last_seq": last_seq})


def ended(code: str, detail: str | Promise, *, close: int) -> str:
    """The `error` that ends a server-sent-events stream for good; `close` is the
    WebSocket close code of the same ending (4000 kicked, 4403 banned or signed out).
    `detail` is put in the language active now, as `error` puts it."""
    return encode({"type": "error", "code": code, "detail": str(detail), "close": close})


def synced(*, last_seq: int, truncated: bool, client_id: str | None, pruned: bool = False) -> str:
    """`pruned`: retention deleted events the client asked for; what it got starts after
    them (as `history_truncated` says in a welcome)."""
    frame: dict[str, Any] = {"type": "synced", "last_seq": last_seq}
    if truncated:
        frame["truncated"] = True
    if pruned:
        frame["history_truncated"] = True
    return encode(_with_client_id(frame, client_id))


def you(me: User, **changed: Any) -> str:
    """The viewer's own user again, when it (or their `balance`) changed while connected."""
    return encode({"type": "you", **me, **changed})
