"""Moderation's HTTP endpoints: the room's audit log for its team, a user's own blocks."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from moderation.selectors import audit_log, blocked_people
from rooms import selectors
from rooms.permissions import MODERATOR, authorize
from rooms.protocol import iso
from rooms.views import json_api, signed_in


@require_GET
@json_api
def room_moderation_log(request: HttpRequest, slug: str) -> JsonResponse:
    """The room's audit log, for its host team and staff."""
    room = selectors.get_room(slug)
    authorize(request.user, room, min_rank=MODERATOR, denied=_("Only the host team sees the moderation log."))
    return JsonResponse({"entries": [_audit_entry(e) for e in audit_log(room_ids=[room.pk], limit=100)]})


def _audit_entry(entry) -> dict:
    def person(user):
        return None if user is None else {"id": user.pk, "name": user.get_username()}

    return {
        "id": entry.pk,
        "action": entry.action,
        "actor": person(entry.actor),
        "target": person(entry.target),
        "reason": entry.reason,
        "until": iso(entry.until),
        "seconds": entry.seconds,
        "ts": iso(entry.created_at),
    }


@require_GET
@json_api
def my_blocks(request: HttpRequest) -> JsonResponse:
    """The people the signed-in user blocked, with names, to undo it."""
    signed_in(request)
    return JsonResponse({"blocked": blocked_people(request.user.pk)})
