"""Domain actions for rooms and messages.

Two tiers, as everywhere in this project: `check_*` is the untrusted entry used by the
consumer and views (resolve, authorize, validate, rate-limit) and calls `do_*`, the
trusted core used directly by the admin and management commands. Every `do_*` writes in
one transaction, appends its room event to the log in that transaction, and publishes
the encoded event after commit.

One signature for both tiers: the acting user first, everything else keyword-only ids
and primitives, and the row the caller needs back.

    check_*(actor, *, room_id, ...)   actor: the request's or socket's user
    do_*(actor, *, room_id, ...)      actor: a user, or None when the site acts (shell)
"""

from rooms.services.events import append_event, log_event, next_seq
from rooms.services.messages import (
    SendRequest,
    check_send_message,
    check_send_messages,
    do_send_message,
    reply_excerpt,
    resolve_mentions,
)
from rooms.services.notices import check_announce, do_announce, do_site_announce
from rooms.services.rooms import (
    check_set_role,
    check_update_room,
    do_auto_slow_mode,
    do_create_room,
    do_set_role,
    do_update_room,
    room_event,
)
from rooms.services.tips import (
    InsufficientFunds,
    InvalidAmount,
    balance_of,
    check_send_tip,
    do_grant_coins,
    do_send_tip,
    pin_seconds,
)

__all__ = [
    "do_auto_slow_mode",
    "room_event",
    "check_set_role",
    "SendRequest",
    "check_send_messages",
    "InsufficientFunds",
    "InvalidAmount",
    "balance_of",
    "check_announce",
    "check_send_tip",
    "do_announce",
    "do_grant_coins",
    "do_send_tip",
    "do_site_announce",
    "pin_seconds",
    "append_event",
    "check_send_message",
    "check_update_room",
    "do_create_room",
    "do_send_message",
    "do_set_role",
    "do_update_room",
    "log_event",
    "next_seq",
    "reply_excerpt",
    "resolve_mentions",
]
