"""HTTP adapters: pages, the events API and the health check."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.forms import UserCreationForm
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from moderation.selectors import audit_log, blocked_people
from rooms import selectors
from rooms.errors import NotFound
from rooms.permissions import MODERATOR, actor_rank
from rooms.protocol import iso

EVENTS_API_DEFAULT_LIMIT = 100
EVENTS_API_MAX_LIMIT = 1000


def room_list(request: HttpRequest) -> HttpResponse:
    return render(request, "rooms/room_list.html", {"rooms": selectors.room_list()})


def room_page(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        room = selectors.get_room(slug)
    except NotFound:
        raise Http404("No such room.") from None
    return render(
        request,
        "rooms/room.html",
        {
            "room": room,
            "ws_path": f"/ws/rooms/{room.slug}/",
            "events_api": reverse("room_events", args=[room.slug]),
            "leaderboard_api": reverse("room_leaderboard", args=[room.slug]),
            "moderation_log_api": reverse("room_moderation_log", args=[room.slug]),
            "blocks_api": reverse("my_blocks"),
            "body_max": settings.CHAT_BODY_MAX_CHARS,
            "join_lines_max_viewers": settings.CHAT_JOIN_LINES_MAX_VIEWERS,
            "tip_max": settings.CHAT_TIP_MAX,
        },
    )


def signup(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = UserCreationForm(request.POST)
        if form.is_valid():
            user = form.save()
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect(_safe_next(request) or "room_list")
    else:
        form = UserCreationForm()
    return render(request, "registration/signup.html", {"form": form, "next": _safe_next(request) or ""})


def _safe_next(request: HttpRequest) -> str | None:
    from django.utils.http import url_has_allowed_host_and_scheme

    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return None


@require_GET
def room_events(request: HttpRequest, slug: str) -> JsonResponse:
    """The room event log as JSON, in the same shapes as on the socket."""
    try:
        room = selectors.get_room(slug)
    except NotFound:
        return JsonResponse({"error": {"code": "not_found", "detail": "No such room."}}, status=404)
    try:
        after = _int_param(request, "after", default=0, low=0, high=2**63 - 1)
        limit = _int_param(request, "limit", default=EVENTS_API_DEFAULT_LIMIT, low=1, high=EVENTS_API_MAX_LIMIT)
    except ValueError as exc:
        return JsonResponse({"error": {"code": "bad_request", "detail": str(exc)}}, status=400)
    history = selectors.room_history(room.pk, after=after, blocked=selectors.viewer_blocks(request.user), limit=limit)
    return JsonResponse(
        {
            "events": history.events,
            "last_seq": history.last_seq,
            # Page on after the last event while this is true.
            "has_more": history.more,
            # As in the socket's welcome: the events do not hold everything after `after`,
            # a page ran out or retention deleted the log up to `pruned_through`.
            "history_truncated": history.truncated,
            "pruned_through": history.pruned_through,
        }
    )


def _int_param(request: HttpRequest, name: str, *, default: int, low: int, high: int) -> int:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"`{name}` must be an integer from {low} to {high}.") from None
    if not low <= value <= high:
        raise ValueError(f"`{name}` must be an integer from {low} to {high}.")
    return value


def _error(code: str, detail: str, status: int) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "detail": detail}}, status=status)


@require_GET
def room_leaderboard(request: HttpRequest, slug: str) -> JsonResponse:
    """Top tippers of the room: this stream (since it last went live) and all time."""
    try:
        room = selectors.get_room(slug)
    except NotFound:
        return _error("not_found", "No such room.", 404)
    return JsonResponse(selectors.leaderboard(room))


@require_GET
def room_moderation_log(request: HttpRequest, slug: str) -> JsonResponse:
    """The room's audit log, for its host team and staff."""
    try:
        room = selectors.get_room(slug)
    except NotFound:
        return _error("not_found", "No such room.", 404)
    if not request.user.is_authenticated:
        return _error("unauthenticated", "Sign in first.", 401)
    if actor_rank(request.user, room) < MODERATOR:
        return _error("forbidden", "Only the host team sees the moderation log.", 403)
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
        return _error("unauthenticated", "Sign in first.", 401)
    return JsonResponse({"blocked": blocked_people(request.user.pk)})


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    status = {"status": "ok", "database": "ok", "redis": "disabled"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        status["database"] = "error"
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
            status["redis"] = "ok"
        except Exception:
            status["redis"] = "error"
        finally:
            client.close()
    healthy = status["database"] == "ok" and status["redis"] in ("ok", "disabled")
    status["status"] = "ok" if healthy else "degraded"
    return JsonResponse(status, status=200 if healthy else 503)
