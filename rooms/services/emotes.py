"""Room emotes: small images a room's viewers write as `:code:`.

An upload is believed only as far as its bytes go: the format is sniffed from the
first bytes (PNG, GIF or WebP; SVG and everything else are refused, whatever the file
is called), Pillow must read it as that format within the size limits, and the file is
stored under a name and extension the server picks. It is served with the type sniffed
here (rooms.views.emote_image), never one guessed from a name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.base import File
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from rooms.errors import BadRequest, NotFound
from rooms.models import Emote, Room
from rooms.permissions import HOST, authorize
from rooms.selectors import room_by_id

# `:pog:`, `:GG_2:`: letters, digits and underscores between colons.
CODE_RE = re.compile(r":[A-Za-z0-9_]{2,32}:")
# A code as it may stand in a message. The closing colon is looked ahead at, not taken,
# so that it may open the next code (`:a::b:`, `:gg:pog:`); static/chat/emotes.js
# splits bodies by the same rule.
CODE_IN_TEXT_RE = re.compile(r":([A-Za-z0-9_]{2,32})(?=:)")
# Distinct emotes one message carries at most; a body full of codes shows the rest as text.
EMOTES_PER_MESSAGE = 20

# Format name (as Pillow calls it) -> what it is served as, and the stored file's extension.
FORMATS = {"PNG": ("image/png", ".png"), "GIF": ("image/gif", ".gif"), "WEBP": ("image/webp", ".webp")}
SNIFF_BYTES = 16


@dataclass(frozen=True, slots=True)
class EmoteImage:
    """What an upload was found to be."""

    format: str
    content_type: str
    extension: str
    width: int
    height: int


def clean_code(code: Any) -> str:
    """The code as stored (`:pog:`), from `pog` or `:pog:`; BadRequest if it is not one."""
    if not isinstance(code, str):
        raise BadRequest(_("An emote code is text such as :pog:."))
    code = code.strip()
    if not code.startswith(":"):
        code = f":{code}:"
    if not CODE_RE.fullmatch(code):
        raise BadRequest(_("An emote code is 2 to 32 letters, digits or underscores between colons, such as :pog:."))
    return code


def sniff_format(head: bytes) -> str | None:
    """The image format the first bytes of a file announce, among those allowed."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def inspect_image(upload: File) -> EmoteImage:
    """Check an uploaded emote image; BadRequest with a sentence for people if it is not
    a PNG, GIF or WebP within CHAT_EMOTE_MAX_BYTES and CHAT_EMOTE_MAX_SIDE."""
    from PIL import Image, UnidentifiedImageError

    max_bytes, max_side = settings.CHAT_EMOTE_MAX_BYTES, settings.CHAT_EMOTE_MAX_SIDE
    if upload.size is None:
        raise BadRequest(
            format_lazy(_("An emote image is at most {max} KiB; this one is of unknown size."), max=max_bytes // 1024)
        )
    if upload.size > max_bytes:
        raise BadRequest(
            format_lazy(
                _("An emote image is at most {max} KiB; this one is {size} KiB."),
                max=max_bytes // 1024,
                size=(upload.size + 1023) // 1024,
            )
        )
    upload.seek(0)
    fmt = sniff_format(upload.read(SNIFF_BYTES))
    if fmt is None:
        raise BadRequest(_("An emote image must be a PNG, GIF or WebP file (SVG and other formats are not accepted)."))
    try:
        upload.seek(0)
        # Only the sniffed format's reader: a file cannot pass as one format and be read as another.
        with Image.open(upload, formats=[fmt]) as image:
            width, height = image.size
            if width > max_side or height > max_side:
                raise BadRequest(
                    format_lazy(
                        _("An emote image is at most {side}×{side} pixels; this one is {width}×{height}."),
                        side=max_side,
                        width=width,
                        height=height,
                    )
                )
            image.verify()
        upload.seek(0)
        with Image.open(upload, formats=[fmt]) as image:
            image.load()
    except BadRequest:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise BadRequest(format_lazy(_("This file is not a readable {format} image."), format=fmt)) from None
    finally:
        upload.seek(0)
    content_type, extension = FORMATS[fmt]
    return EmoteImage(fmt, content_type, extension, width, height)


# Writes.


def check_create_emote(actor, *, room_id: int, code: Any, image: File) -> Emote:
    """Add an emote to a room, for its hosts and staff."""
    room = room_by_id(room_id)
    authorize(actor, room, min_rank=HOST, denied="Only the room's hosts and staff can add emotes.")
    return do_create_emote(actor, room_id=room.pk, code=code, image=image)


def do_create_emote(actor, *, room_id: int, code: Any, image: File) -> Emote:
    code = clean_code(code)
    found = inspect_image(image)
    room = Room.objects.get(pk=room_id)
    if Emote.objects.filter(room=room, code=code).exists():
        raise BadRequest(format_lazy(_("This room has an emote {code} already."), code=code))
    emote = Emote(
        room=room,
        code=code,
        content_type=found.content_type,
        width=found.width,
        height=found.height,
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    # Through the storage API: the name given here only lends its extension (_emote_path).
    emote.image.save(f"emote{found.extension}", image, save=False)
    try:
        with transaction.atomic():
            emote.save()
    except IntegrityError:
        emote.image.delete(save=False)
        raise BadRequest(format_lazy(_("This room has an emote {code} already."), code=code)) from None
    return emote


def check_delete_emote(actor, *, emote_id: int) -> None:
    emote = Emote.objects.filter(pk=emote_id).select_related("room").first()
    if emote is None:
        raise NotFound(_("No such emote."))
    authorize(actor, emote.room, min_rank=HOST, denied="Only the room's hosts and staff can remove emotes.")
    do_delete_emote(actor, emote_id=emote.pk)


@transaction.atomic
def do_delete_emote(actor, *, emote_id: int) -> None:
    """Remove an emote. Messages that used it keep its code as text where the image no
    longer loads; the file goes once the row is gone for good."""
    emote = Emote.objects.get(pk=emote_id)
    storage, name = emote.image.storage, emote.image.name
    emote.delete()
    transaction.on_commit(lambda: storage.delete(name))


# Reads.


def _file_name(emote: Emote) -> str:
    return emote.image.name.rsplit("/", 1)[-1]


def emote_url(emote: Emote) -> str:
    """Where the image is served (a path on this site). The stored file's name is part
    of it, so a URL always means the same bytes and may be cached for good."""
    return reverse("emote_image", kwargs={"emote_id": emote.pk, "name": _file_name(emote)})


def stored_emote(emote_id: int, *, name: str) -> Emote | None:
    """The emote whose image a URL of emote_url names, or None (removed, replaced)."""
    emote = Emote.objects.filter(pk=emote_id).first()
    return emote if emote is not None and _file_name(emote) == name else None


def emote_brief(emote: Emote) -> dict[str, str]:
    """An emote as the protocol shows it: {code, url}."""
    return {"code": emote.code, "url": emote_url(emote)}


def room_emotes(room_id: int) -> list[dict[str, str]]:
    return [emote_brief(emote) for emote in Emote.objects.filter(room_id=room_id).order_by("code")]


def resolve_emotes(body: str, room_id: int) -> list[dict[str, str]]:
    """The room's emotes that `body` uses, in order of first use, as {code, url}. Bodies
    without anything shaped like a code cost no query."""
    codes: list[str] = []
    for name in CODE_IN_TEXT_RE.findall(body):
        code = f":{name}:"
        if code not in codes:
            codes.append(code)
    if not codes:
        return []
    found = {emote.code: emote for emote in Emote.objects.filter(room_id=room_id, code__in=codes)}
    return [emote_brief(found[code]) for code in codes if code in found][:EMOTES_PER_MESSAGE]
