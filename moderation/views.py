"""Moderation's HTTP endpoints: the room's audit log for its team, a user's own blocks."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from moderation.selectors import audit_log, blocked_people
from rooms import selectors
from rooms.errors import NotFound
from rooms.permissions import MODERATOR, actor_rank
from rooms.protocol import iso
from rooms.views import json_error


@require_GET
def room_moderation_log(request: HttpRequest, slug: str) -> JsonResponse:
    """The room's audit log, for its host team and staff."""
    try:
        room = selectors.get_room(slug)
    except NotFound as exc:
        return json_error(exc.code, exc.detail, 404)
    if not request.user.is_authenticated:
        return json_error("unauthenticated", "Sign in first.", 401)
    if actor_rank(request.user, room) < MODERATOR:
        return json_error("forbidden", "Only the host team sees the moderation log.", 403)
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
def my_blocks(request: HttpRequest) -> JsonResponse:
    """The people the signed-in user blocked, with names, to undo it."""
    if not request.user.is_authenticated:
        return json_error("unauthenticated", "Sign in first.", 401)
    return JsonResponse({"blocked": blocked_people(request.user.pk)})
