"""The overlay's query options (`/rooms/<slug>/overlay/?mode=...`): what a streamer puts
in the browser source's URL, read once and checked, so a typo gets a clear answer
instead of an overlay that silently does something else."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from rooms.errors import BadRequest

MODES = ("list", "danmaku")
TIPS = ("all", "only")
# Text size in CSS pixels: big enough to read on a stream by default, and bounded so a
# slip of the keyboard (font=2800) does not fill the scene with one letter.
FONT_DEFAULT = 28
FONT_MIN, FONT_MAX = 12, 96
# Seconds a line stays in list mode; 0 keeps lines until newer ones push them out.
FADE_DEFAULT = 0
FADE_MAX = 3600


@dataclass(frozen=True, slots=True)
class OverlayOptions:
    mode: str = "list"
    tips: str = "all"
    font: int = FONT_DEFAULT
    fade: int = FADE_DEFAULT


def parse_overlay_options(query: Mapping[str, str]) -> OverlayOptions:
    """The options in `query` (request.GET), defaults for those left out or empty.
    Raises BadRequest naming the option and what it takes."""
    return OverlayOptions(
        mode=_choice(query, "mode", MODES),
        tips=_choice(query, "tips", TIPS),
        font=_whole(query, "font", FONT_DEFAULT, FONT_MIN, FONT_MAX),
        fade=_whole(query, "fade", FADE_DEFAULT, 0, FADE_MAX),
    )


def _choice(query: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    raw = (query.get(name) or "").strip().lower()
    if not raw:
        return allowed[0]
    if raw not in allowed:
        choices = format_lazy(_("{} or {}"), ", ".join(allowed[:-1]), allowed[-1])
        raise BadRequest(format_lazy(_("`{name}` is {choices}, not {raw!r}."), name=name, choices=choices, raw=raw))
    return raw


def _whole(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = (query.get(name) or "").strip().lower().removesuffix("px").removesuffix("s")
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(
            format_lazy(
                _("`{name}` is a whole number from {low} to {high}, not {raw!r}."),
                name=name,
                low=low,
                high=high,
                raw=query.get(name),
            )
        )
    return int(raw)
