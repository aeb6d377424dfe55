"""The one JSON encoding of the protocol, timestamps, and frames assembled from
already-encoded events."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any


def encode(obj: dict[str, Any]) -> str:
    """The one JSON encoding of the protocol: compact, UTF-8 kept as is."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def batch_text(event_texts: list[str], *, complete_to: int | None = None, skipped: int = 0) -> str:
    """Several already-encoded events as one frame, without decoding them again.

    `complete_to`: the viewer has every event it is owed up to this seq (some were
    withheld from it), sent as the batch's `last_seq`. `skipped`: how many member
    messages up to there its readable feed left out."""
    if complete_to is not None:
        tail = f',"skipped":{skipped}' if skipped else ""
        return '{"type":"batch","events":[' + ",".join(event_texts) + '],"last_seq":' + str(complete_to) + tail + "}"
    if len(event_texts) == 1:
        return event_texts[0]
    return '{"type":"batch","events":[' + ",".join(event_texts) + "]}"
