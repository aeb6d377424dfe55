"""Every number of the protocol, defined once: sizes, ranges, close codes, error codes.

The browser learns the ones it needs from `welcome` (`client_limits`), so no page copies
them; settings may change the configurable ones.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

MAX_ID = 2**63 - 1
CLIENT_ID_MAX = 64
MAX_MUTE_SECONDS = 1_209_600
# Ban lengths beyond this are permanent bans in all but name; refuse them as typos.
MAX_BAN_SECONDS = 10 * 365 * 24 * 3600
MAX_SLOW_MODE_SECONDS = 120
ROSTER_PAGE_MAX = 200
ROSTER_PAGE_DEFAULT = 50
REASON_MAX = 200
TIP_BODY_MAX = 200
NOTICE_BODY_MAX = 500
TITLE_MAX = 200
SLUG_MAX = 64
# How much of a quoted message a reply carries.
EXCERPT_CHARS = 80


class Close:
    """WebSocket close codes (PROTOCOL.md "Close codes"). Plain ints, not an enum:
    Autobahn accepts nothing but an int for a close code."""

    NORMAL = 1000
    SERVER_ERROR = 1011
    TOO_BIG = 1009
    # This process is shutting down: reconnect (to another one) after a moment's jitter.
    SERVICE_RESTART = 1012
    KICKED = 4000
    FORBIDDEN = 4403
    NOT_FOUND = 4404
    HEARTBEAT = 4408
    TOO_FAR_BEHIND = 4409
    FLOODING = 4429


ERROR_CODES = frozenset(
    {
        "bad_request",
        "too_large",
        "unknown_type",
        "unauthenticated",
        "forbidden",
        "not_found",
        "muted",
        "banned",
        "slow_mode",
        "rate_limited",
        "insufficient_funds",
        "invalid_amount",
        "server_error",
        "busy",
    }
)
# Codes whose `error` must say when to try again.
CODES_WITH_RETRY_AFTER = frozenset({"muted", "slow_mode", "rate_limited", "busy"})


def client_limits() -> dict[str, Any]:
    """What a client needs to check input before sending it and to read close codes:
    part of every `welcome`."""
    return {
        "body_max_chars": settings.CHAT_BODY_MAX_CHARS,
        "frame_max_bytes": settings.CHAT_FRAME_MAX_BYTES,
        "tip_body_max": TIP_BODY_MAX,
        "tip_max": settings.CHAT_TIP_MAX,
        "notice_body_max": NOTICE_BODY_MAX,
        "reason_max": REASON_MAX,
        "title_max": TITLE_MAX,
        "mute_max_seconds": MAX_MUTE_SECONDS,
        "slow_mode_max_seconds": MAX_SLOW_MODE_SECONDS,
        "excerpt_chars": EXCERPT_CHARS,
        "roster_page_max": ROSTER_PAGE_MAX,
        "client_id_max": CLIENT_ID_MAX,
        "close_codes": {name.lower(): code for name, code in vars(Close).items() if isinstance(code, int)},
    }
