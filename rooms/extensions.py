"""The seam through which apps built on rooms plug into it.

rooms never imports such an app (moderation builds on rooms, not the other way round);
the app fills these in its AppConfig.ready(). What a seam does when nothing filled it
is the room without that app: nobody is banned or muted, nobody blocks anyone, no
command beyond the room's own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Commands over the socket (and any other transport of the protocol).


@dataclass(frozen=True)
class SocketCommand:
    """A client command served by another app.

    `run(actor, *, room_id, **args)` is its service (sync; it runs in the database
    thread) and raises ChatError to refuse; `reply(client_id, result)` is the encoded
    reply frame; `apply(connection, result)`, if given, is what the connection keeps of
    the result (a new block list)."""

    run: Callable[..., Any]
    reply: Callable[[str | None, Any], str]
    apply: Callable[[Any, Any], None] | None = None


socket_commands: dict[str, SocketCommand] = {}


def register_socket_command(type: str, command: SocketCommand) -> None:
    socket_commands[type] = command


# What restricts a user in a room (bans, mutes) and whom a user does not want to see.


@dataclass(frozen=True)
class Restrictions:
    banned: bool = False
    # None with `banned`: a permanent ban.
    banned_until: datetime | None = None
    ban_reason: str = ""
    muted_until: datetime | None = None
    muted_reason: str = ""


@dataclass(frozen=True)
class SendContext:
    """What the checks of one attempted send need (read with its batch's context query).

    `exempt`: the host team and staff, whom slow mode and rate limits do not apply to.
    `last_sent_at`: the user's last stored message in the room. Slow mode is checked
    against it as well as against the claim, which covers a Redis that restarted empty
    and a slow mode turned on after the user's last message.
    """

    room_id: int
    user_id: int
    exempt: bool
    banned_until: datetime | None
    muted_until: datetime | None
    slow_mode_seconds: int
    last_sent_at: datetime | None
    now: datetime


@dataclass(frozen=True)
class SendRules:
    """How the sends of a batch are checked (rooms.services.messages).

    `columns_sql(room_column=, user_column=)`: SQL for two columns, `banned_until` and
    `muted_until`, read with every batch of sends in its one context query;
    `columns_params(now=)`: their parameters; `check(sends)`: for each SendContext, in
    order, why that send may not go (a ChatError) or None, counting it against the
    sender's limits when it may. One call per batch, so that counting costs the batch
    one round trip to a shared store, not one per send."""

    columns_sql: Callable[..., str]
    columns_params: Callable[..., list]
    check: Callable[[list[SendContext]], list[Any]]


def _unrestricted(room_id: int, user_id: int) -> Restrictions:
    return Restrictions()


def _nobody(user_id: int | None) -> set[int]:
    return set()


def _no_send_rules() -> SendRules:
    return SendRules(
        columns_sql=lambda **_: "NULL AS banned_until, NULL AS muted_until",
        columns_params=lambda **_: [],
        check=lambda sends: [None] * len(sends),
    )


_restrictions: Callable[[int, int], Restrictions] = _unrestricted
_blocked_ids: Callable[[int | None], set[int]] = _nobody
_send_rules: SendRules = _no_send_rules()


def provide(
    *,
    restrictions: Callable[[int, int], Restrictions] | None = None,
    blocked_ids: Callable[[int | None], set[int]] | None = None,
    send_rules: SendRules | None = None,
) -> None:
    global _restrictions, _blocked_ids, _send_rules
    if restrictions is not None:
        _restrictions = restrictions
    if blocked_ids is not None:
        _blocked_ids = blocked_ids
    if send_rules is not None:
        _send_rules = send_rules


def restrictions(room_id: int, user_id: int) -> Restrictions:
    """The user's ban and mute in the room now."""
    return _restrictions(room_id, user_id)


def blocked_ids(user_id: int | None) -> set[int]:
    """Ids of the people this user blocked (none for a guest)."""
    return _blocked_ids(user_id) if user_id is not None else set()


def send_rules() -> SendRules:
    return _send_rules
