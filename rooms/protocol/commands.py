"""Client commands (PROTOCOL.md "Client to server"): one text frame in, a Command out,
or a ProtocolError saying what is wrong with it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.utils.functional import Promise
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from rooms.protocol.limits import (
    CLIENT_ID_MAX,
    MAX_ID,
    MAX_MUTE_SECONDS,
    MAX_SLOW_MODE_SECONDS,
    NOTICE_BODY_MAX,
    REASON_MAX,
    ROSTER_PAGE_DEFAULT,
    ROSTER_PAGE_MAX,
    TIP_BODY_MAX,
    TITLE_MAX,
)


class ProtocolError(Exception):
    """A client frame that cannot become a command."""

    def __init__(self, code: str, detail: str | Promise, *, client_id: str | None = None):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.client_id = client_id


@dataclass(frozen=True)
class Command:
    type: str
    client_id: str | None
    args: dict[str, Any] = field(default_factory=dict)


def _is_int(value: Any) -> bool:
    return type(value) is int  # bool is an int subclass and never a valid id or count


def _id(frame: dict, name: str, client_id: str | None) -> int:
    value = frame.get(name)
    if not _is_int(value) or not 1 <= value <= MAX_ID:
        raise ProtocolError(
            "bad_request", format_lazy(_("`{name}` must be a positive integer id."), name=name), client_id=client_id
        )
    return value


def _int_in(frame: dict, name: str, low: int, high: int, client_id: str | None, *, default=None) -> int:
    if name not in frame and default is not None:
        return default
    value = frame.get(name)
    if not _is_int(value) or not low <= value <= high:
        raise ProtocolError(
            "bad_request",
            format_lazy(_("`{name}` must be an integer from {low} to {high}."), name=name, low=low, high=high),
            client_id=client_id,
        )
    return value


def _text(frame: dict, name: str, client_id: str | None, *, required: bool, max_len: int) -> str:
    value = frame.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ProtocolError("bad_request", format_lazy(_("`{name}` must be a string."), name=name), client_id=client_id)
    if len(value) > max_len:
        raise ProtocolError(
            "bad_request",
            format_lazy(_("`{name}` is longer than {max_len} characters."), name=name, max_len=max_len),
            client_id=client_id,
        )
    return value


def _user_ref(frame: dict, client_id: str | None) -> int | str:
    value = frame.get("user")
    if _is_int(value) and 1 <= value <= MAX_ID:
        return value
    if isinstance(value, str) and 0 < len(value.strip()) <= 150:
        return value.strip()
    raise ProtocolError("bad_request", _("`user` must be a user id or a user name."), client_id=client_id)


def _parse_ping(f, cid):
    return {"ts": f.get("ts")}


def _parse_send(f, cid):
    body = _text(f, "body", cid, required=True, max_len=settings.CHAT_FRAME_MAX_BYTES)
    reply_to = f.get("reply_to")
    return {"body": body, "reply_to": None if reply_to is None else _id(f, "reply_to", cid)}


def _parse_sync(f, cid):
    return {"after": _int_in(f, "after", 0, MAX_ID, cid)}


def _parse_roster(f, cid):
    return {
        "offset": _int_in(f, "offset", 0, 1_000_000, cid, default=0),
        "limit": _int_in(f, "limit", 1, ROSTER_PAGE_MAX, cid, default=ROSTER_PAGE_DEFAULT),
    }


def _parse_delete(f, cid):
    return {"id": _id(f, "id", cid)}


def _parse_mute(f, cid):
    return {
        "user": _user_ref(f, cid),
        "seconds": _int_in(f, "seconds", 1, MAX_MUTE_SECONDS, cid),
        "reason": _text(f, "reason", cid, required=False, max_len=REASON_MAX),
    }


def _parse_user_only(f, cid):
    return {"user": _user_ref(f, cid)}


def _parse_ban(f, cid):
    seconds = f.get("seconds")
    return {
        "user": _user_ref(f, cid),
        "seconds": None if seconds is None else _int_in(f, "seconds", 1, MAX_ID // 10**9, cid),
        "reason": _text(f, "reason", cid, required=False, max_len=REASON_MAX),
    }


def _parse_slow_mode(f, cid):
    return {"seconds": _int_in(f, "seconds", 0, MAX_SLOW_MODE_SECONDS, cid)}


def _parse_announce(f, cid):
    level = f.get("level", "info")
    if level not in ("info", "warning"):
        raise ProtocolError("bad_request", _('`level` must be "info" or "warning".'), client_id=cid)
    return {"body": _text(f, "body", cid, required=True, max_len=NOTICE_BODY_MAX), "level": level}


def _parse_room_status(f, cid):
    args: dict[str, Any] = {}
    if "is_live" in f:
        if not isinstance(f["is_live"], bool):
            raise ProtocolError("bad_request", _("`is_live` must be true or false."), client_id=cid)
        args["is_live"] = f["is_live"]
    if "title" in f:
        args["title"] = _text(f, "title", cid, required=True, max_len=TITLE_MAX)
    if not args:
        raise ProtocolError("bad_request", _("Give `is_live`, `title` or both."), client_id=cid)
    return args


def _parse_tip(f, cid):
    # The amount is checked by the service, which answers invalid_amount for any bad value.
    return {"amount": f.get("amount"), "body": _text(f, "body", cid, required=False, max_len=TIP_BODY_MAX)}


PARSERS = {
    "ping": _parse_ping,
    "send": _parse_send,
    "sync": _parse_sync,
    "roster": _parse_roster,
    "delete": _parse_delete,
    "mute": _parse_mute,
    "unmute": _parse_user_only,
    "kick": _parse_user_only,
    "ban": _parse_ban,
    "unban": _parse_user_only,
    "slow_mode": _parse_slow_mode,
    "announce": _parse_announce,
    "room_status": _parse_room_status,
    "block": _parse_user_only,
    "unblock": _parse_user_only,
    "tip": _parse_tip,
}
REQUIRES_CLIENT_ID = {"send", "tip"}


def _is_clean_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


def _check_storable(frame: dict, client_id: str | None) -> None:
    """Refuse what JSON allows but nothing downstream can store or send back: lone
    surrogates (not encodable as UTF-8), NUL characters (PostgreSQL text refuses them)
    and NaN or infinite numbers (not JSON on the way out)."""
    try:
        json.dumps(frame, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        raise ProtocolError(
            "bad_request", _("The frame holds text or numbers that cannot be stored."), client_id=client_id
        ) from None
    try:
        has_nul = _has_nul(frame)
    except RecursionError:
        raise ProtocolError("bad_request", _("The frame is nested too deeply."), client_id=client_id) from None
    if has_nul:
        raise ProtocolError("bad_request", _("The frame holds a NUL character."), client_id=client_id)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def parse_client_frame(text: str | None) -> Command:
    """Turn one client text frame into a Command, or raise ProtocolError."""
    if text is None:
        raise ProtocolError("bad_request", _("Frames must be UTF-8 JSON text, not binary."))
    if len(text) > settings.CHAT_FRAME_MAX_BYTES or len(text.encode("utf-8")) > settings.CHAT_FRAME_MAX_BYTES:
        raise ProtocolError(
            "too_large", format_lazy(_("Frames are limited to {n} bytes."), n=settings.CHAT_FRAME_MAX_BYTES)
        )
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("bad_request", _("The frame is not valid JSON.")) from None
    if not isinstance(frame, dict):
        raise ProtocolError("bad_request", _("A frame must be a JSON object."))
    client_id = frame.get("client_id")
    if client_id is not None and (not isinstance(client_id, str) or not 0 < len(client_id) <= CLIENT_ID_MAX):
        raise ProtocolError(
            "bad_request", format_lazy(_("`client_id` must be a string of 1 to {n} characters."), n=CLIENT_ID_MAX)
        )
    if client_id is not None and not _is_clean_text(client_id):
        # Readable, so answered with it (escaped), though nothing can store it.
        raise ProtocolError(
            "bad_request", _("`client_id` holds a NUL or a character that is not text."), client_id=client_id
        )
    _check_storable(frame, client_id)
    kind = frame.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("bad_request", _("A frame needs a string `type`."), client_id=client_id)
    parser = PARSERS.get(kind)
    if parser is None:
        raise ProtocolError(
            "unknown_type", format_lazy(_("Unknown command type {type!r}."), type=kind[:40]), client_id=client_id
        )
    if kind in REQUIRES_CLIENT_ID and client_id is None:
        raise ProtocolError("bad_request", format_lazy(_("`{type}` needs a `client_id`."), type=kind))
    return Command(type=kind, client_id=client_id, args=parser(frame, client_id))


def parse_after(query_string: bytes) -> tuple[int | None, ProtocolError | None]:
    """`?after=N` of a connection's URL: (N or None, and the error to tell the client
    when one was given but is not a seq; it then gets the latest history instead)."""
    values = parse_qs(query_string.decode("latin-1")).get("after")
    if not values:
        return None, None
    try:
        after = int(values[0])
    except ValueError:
        after = -1
    if not 0 <= after <= MAX_ID:
        return None, ProtocolError(
            "bad_request", _("`after` must be a non-negative integer; showing the latest history instead.")
        )
    return after, None
