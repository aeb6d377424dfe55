"""HTTP adapters: pages, the events API and the health checks."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.contrib.auth.forms import UserCreationForm
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from rooms import extensions, selectors
from rooms.errors import NotFound
from rooms.models import Message
from rooms.permissions import MODERATOR, actor_rank
from rooms.protocol import iso

EVENTS_API_DEFAULT_LIMIT = 100
EVENTS_API_MAX_LIMIT = 1000


def room_list(request: HttpRequest) -> HttpResponse:
    return render(request, "rooms/room_list.html", {"rooms": selectors.room_list()})


def room_page(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        room = selectors.get_room(slug)
    except NotFound as exc:
        raise Http404(exc.detail) from None
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
            "standing_api": reverse("my_standing", args=[room.slug]),
            # The page appends a person's id to this prefix.
            "people_api": reverse("room_person", args=[room.slug, 0]).removesuffix("0"),
            "join_lines_max_viewers": settings.CHAT_JOIN_LINES_MAX_VIEWERS,
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
    except NotFound as exc:
        return json_error(exc.code, exc.detail, 404)
    try:
        after = _int_param(request, "after", default=0, low=0, high=2**63 - 1)
        limit = _int_param(request, "limit", default=EVENTS_API_DEFAULT_LIMIT, low=1, high=EVENTS_API_MAX_LIMIT)
    except ValueError as exc:
        return json_error("bad_request", str(exc), 400)
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


def json_error(code: str, detail: str, status: int) -> JsonResponse:
    """An HTTP error in the protocol's shape: {"error": {"code", "detail"}}."""
    return JsonResponse({"error": {"code": code, "detail": detail}}, status=status)


@require_GET
def room_leaderboard(request: HttpRequest, slug: str) -> JsonResponse:
    """Top tippers of the room: this stream (since it last went live) and all time."""
    try:
        room = selectors.get_room(slug)
    except NotFound as exc:
        return json_error(exc.code, exc.detail, 404)
    return JsonResponse(selectors.leaderboard(room))


# Health. Three probes for three jobs (docs/deploy.md, "Health checks"):
# - /healthz (the contract in PROTOCOL.md): the database and Redis both answer; 503 if
#   either does not. For monitoring and alerts.
# - /readyz: may this process take traffic? 200 while its database answers, even with
#   Redis down: Redis is shared by every process, so failing on it would take them all
#   out of the proxy's pool at once, while each can still serve pages, history and the
#   events API. For the proxy's or load balancer's health check.
# - /livez: the process answers HTTP at all; no dependencies. For a supervisor that
#   restarts hung processes.
# Async, so that a Redis that does not answer holds up only the probe, not the thread
# every database call of the process goes through.

REDIS_PROBE_TIMEOUT_SECONDS = 1.0


def _database_answers() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # any failure means "not answering", whatever the driver raises
        return False
    return True


async def _redis_state() -> str:
    if not settings.REDIS_URL:
        return "disabled"
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=REDIS_PROBE_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_PROBE_TIMEOUT_SECONDS,
    )
    try:
        await client.ping()
    except Exception:  # down, refusing, timing out or misconfigured: all "error"
        return "error"
    finally:
        await client.aclose()
    return "ok"


async def _dependencies() -> dict[str, str]:
    database = "ok" if await sync_to_async(_database_answers)() else "error"
    redis = await _redis_state()
    healthy = database == "ok" and redis in ("ok", "disabled")
    return {"status": "ok" if healthy else "degraded", "database": database, "redis": redis}


@never_cache
@require_GET
async def healthz(request: HttpRequest) -> JsonResponse:
    status = await _dependencies()
    return JsonResponse(status, status=200 if status["status"] == "ok" else 503)


@never_cache
@require_GET
async def readyz(request: HttpRequest) -> JsonResponse:
    status = await _dependencies()
    return JsonResponse(status, status=200 if status["database"] == "ok" else 503)


@never_cache
@require_GET
async def livez(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _restrictions(room_id: int, user_id: int) -> dict[str, dict | None]:
    """A user's ban and mute in a room as the page shows them (through the seam: rooms
    does not read moderation's tables itself)."""
    now = extensions.restrictions(room_id, user_id)
    return {
        "banned": {"until": iso(now.banned_until), "reason": now.ban_reason} if now.banned else None,
        "muted": {"until": iso(now.muted_until), "reason": now.muted_reason} if now.muted_until else None,
    }


@require_GET
@never_cache
def my_standing(request: HttpRequest, slug: str) -> JsonResponse:
    """The signed-in viewer's own ban and mute in the room: what the page says when the
    socket is refused (4403) or the viewer was kicked, since a close frame carries no
    length or reason."""
    try:
        room = selectors.get_room(slug)
    except NotFound as exc:
        return json_error(exc.code, exc.detail, 404)
    if not request.user.is_authenticated:
        return JsonResponse({"banned": None, "muted": None})
    return JsonResponse(_restrictions(room.pk, request.user.pk))


PERSON_RECENT_MESSAGES = 5


@require_GET
def room_person(request: HttpRequest, slug: str, user_id: int) -> JsonResponse:
    """A person's card in a room, for signed-in viewers: role, account age and their
    latest messages here; for the host team also their mute and ban."""
    try:
        room = selectors.get_room(slug)
    except NotFound as exc:
        return json_error(exc.code, exc.detail, 404)
    if not request.user.is_authenticated:
        return json_error("unauthenticated", "Sign in first.", 401)
    person = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if person is None:
        return json_error("not_found", "No such person.", 404)
    recent = Message.objects.filter(room=room, author=person, deleted_at__isnull=True).order_by("-seq")[
        :PERSON_RECENT_MESSAGES
    ]
    card = {
        "person": selectors.user_in_room(person, room),
        "joined": iso(person.date_joined),
        "recent": [{"id": m.pk, "seq": m.seq, "body": m.body, "ts": iso(m.created_at)} for m in recent],
    }
    if actor_rank(request.user, room) >= MODERATOR:
        card.update(_restrictions(room.pk, person.pk))
    return JsonResponse(card)
