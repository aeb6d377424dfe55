"""Broadcast notices: a room's announcements and site-wide notices."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from rooms.errors import BadRequest
from rooms.models import Notice, Room, RoomEvent
from rooms.permissions import MODERATOR, authorize
from rooms.protocol import NOTICE_BODY_MAX, events
from rooms.selectors import room_by_id, user_in_room
from rooms.services.events import append_event
from rooms.text import visible


def _clean(body: str, level: str) -> str:
    if level not in Notice.Level.values:
        raise BadRequest(_('The level is "info" or "warning".'))
    body = visible(body or "")
    if not body or len(body) > NOTICE_BODY_MAX:
        raise BadRequest(format_lazy(_("A notice is 1 to {n} characters."), n=NOTICE_BODY_MAX))
    return body


def check_announce(actor, *, room_id: int, body: str, level: str = "info") -> RoomEvent:
    room = room_by_id(room_id)
    authorize(actor, room, min_rank=MODERATOR, denied=_("Only moderators, hosts and staff can post announcements."))
    return do_announce(actor, room_id=room.pk, body=body, level=level)


@transaction.atomic
def do_announce(actor, *, room_id: int, body: str, level: str = "info") -> RoomEvent:
    """Post a notice to one room, signed by `actor` (None: unsigned, from the shell)."""
    body = _clean(body, level)
    room = Room.objects.get(pk=room_id)
    notice = Notice.objects.create(
        room=room, level=level, body=body, by=actor, pinned_until=_pin_until(), created_at=timezone.now()
    )
    return _log_notice(notice, room, actor)


def do_site_announce(actor, *, body: str, level: str = "info") -> Notice:
    """One notice in every room's log, each room in its own short transaction so a
    site with many rooms never holds every room's lock at once. `actor`: the staff
    member posting it, or None from the shell."""
    body = _clean(body, level)
    notice = Notice.objects.create(
        room=None, level=level, body=body, by=actor, pinned_until=_pin_until(), created_at=timezone.now()
    )
    for room in Room.objects.order_by("pk"):
        with transaction.atomic():
            _log_notice(notice, room, actor)
    return notice


def _pin_until():
    seconds = settings.CHAT_NOTICE_PIN_SECONDS
    return timezone.now() + timedelta(seconds=seconds) if seconds else None


def _log_notice(notice: Notice, room: Room, by) -> RoomEvent:
    return append_event(
        room.pk,
        event=events.notice(
            id=notice.pk,
            scope=notice.scope,
            level=notice.level,
            body=notice.body,
            by=user_in_room(by, room) if by is not None else None,
            pinned_until=notice.pinned_until,
        ),
        # Notices are never hidden by a viewer's personal blocks.
        actor_id=None,
    )
