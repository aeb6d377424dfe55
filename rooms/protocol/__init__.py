"""The wire format (PROTOCOL.md), in one place: everything that knows a field name, a
limit or a code of the protocol lives in this package, so the consumer, the views, the
services and the tests' schema agree on one shape.

- `commands`: client frames in (parse_client_frame -> Command, or ProtocolError);
- `events`: the room events the log stores and every viewer is sent (typed builders);
- `frames`: connection frames (welcome, presence, ack, error, ...; typed builders);
- `limits`: sizes, ranges, close codes and error codes, and what `welcome` tells clients;
- `wire`: the one JSON encoding, timestamps, batches of already-encoded events.

Import from the package: `from rooms.protocol import events, frames, encode, Close`.
"""

from rooms.protocol import events, frames
from rooms.protocol.commands import Command, ProtocolError, parse_after, parse_client_frame
from rooms.protocol.limits import (
    CLIENT_ID_MAX,
    CODES_WITH_RETRY_AFTER,
    ERROR_CODES,
    EXCERPT_CHARS,
    MAX_BAN_SECONDS,
    MAX_ID,
    MAX_MUTE_SECONDS,
    MAX_SLOW_MODE_SECONDS,
    NOTICE_BODY_MAX,
    REASON_MAX,
    ROSTER_PAGE_DEFAULT,
    ROSTER_PAGE_MAX,
    SLUG_MAX,
    TIP_BODY_MAX,
    TITLE_MAX,
    Close,
    client_limits,
)
from rooms.protocol.wire import batch_text, encode, iso, parse_iso

__all__ = [
    "CLIENT_ID_MAX",
    "CODES_WITH_RETRY_AFTER",
    "ERROR_CODES",
    "EXCERPT_CHARS",
    "MAX_BAN_SECONDS",
    "MAX_ID",
    "MAX_MUTE_SECONDS",
    "MAX_SLOW_MODE_SECONDS",
    "NOTICE_BODY_MAX",
    "REASON_MAX",
    "ROSTER_PAGE_DEFAULT",
    "ROSTER_PAGE_MAX",
    "SLUG_MAX",
    "TIP_BODY_MAX",
    "TITLE_MAX",
    "Close",
    "Command",
    "ProtocolError",
    "batch_text",
    "client_limits",
    "encode",
    "events",
    "frames",
    "iso",
    "parse_after",
    "parse_client_frame",
    "parse_iso",
]
