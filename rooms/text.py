"""Rules for user text that every kind of it shares (messages, notices, tip notes, titles)."""

from __future__ import annotations

import unicodedata


def visible(text: str) -> str:
    """`text` without the whitespace and invisible format characters (Unicode category Cf:
    zero-width spaces and joiners, the byte order mark, direction marks) at either end,
    or "" if that is all it is. Inside the text they stay: emoji sequences are joined by
    U+200D, and scripts need joiners and direction marks."""
    start, end = 0, len(text)
    while start < end and _invisible(text[start]):
        start += 1
    while end > start and _invisible(text[end - 1]):
        end -= 1
    return text[start:end]


def _invisible(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) == "Cf"
