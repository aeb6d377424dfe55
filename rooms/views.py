"""HTTP adapters: pages, the events API and the health checks."""

from __future__ import annotations

import functools
import hashlib

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.forms import UserCreationForm
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.cache import patch_cache_control
from django.utils.functional import Promise
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import condition, require_GET
from django.views.i18n import JavaScriptCatalog

from rooms import selectors
from rooms.errors import ChatError, Unauthenticated
from rooms.middleware import embeddable
from rooms.overlay import parse_overlay_options
from rooms.permissions import MODERATOR, actor_rank
from rooms.services import emotes

EVENTS_API_DEFAULT_LIMIT = 100
EVENTS_API_MAX_LIMIT = 1000


def json_error(code: str, detail: str | Promise, status: int) -> JsonResponse:
    """An HTTP error in the protocol's shape: {"error": {"code", "detail"}}, the detail in
    the request's language (LocaleMiddleware)."""
    return JsonResponse({"error": {"code": code, "detail": str(detail)}}, status=status)


# The HTTP status of each domain error, for the JSON endpoints.
ERROR_STATUS = {"bad_request": 400, "unauthenticated": 401, "forbidden": 403, "not_found": 404}


def json_api(view):
    """A JSON endpoint's one mapping of domain errors: a ChatError the view (or what it
    calls) raises becomes {"error": {"code", "detail"}} with its HTTP status."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> JsonResponse:
        try:
            return view(request, *args, **kwargs)
        except ChatError as exc:
            return json_error(exc.code, exc.detail, ERROR_STATUS.get(exc.code, 400))

    return wrapped


def signed_in(request: HttpRequest) -> None:
    if not request.user.is_authenticated:
        raise Unauthenticated(_("Sign in first."))


def room_list(request: HttpRequest) -> HttpResponse:
    return render(request, "rooms/room_list.html", {"rooms": selectors.room_list()})


def room_page(request: HttpRequest, slug: str, *, popout: bool = False) -> HttpResponse:
    """The room page; `popout`: the chat alone, without the site's header, for a
    window of its own (a streamer's second screen)."""
    try:
        room = selectors.get_room(slug)
    except ChatError as exc:
        raise Http404(exc.detail) from None
    return render(
        request,
        "rooms/popout.html" if popout else "rooms/room.html",
        {
            "room": room,
            "ws_path": f"/ws/rooms/{room.slug}/",
            # The server-sent-events fallback (rooms.sse), where WebSockets are blocked.
            "stream_path": f"/rooms/{room.slug}/stream",
            "commands_path": reverse("room_commands", args=[room.slug]),
            "events_api": reverse("room_events", args=[room.slug]),
            "leaderboard_api": reverse("room_leaderboard", args=[room.slug]),
            "moderation_log_api": reverse("room_moderation_log", args=[room.slug]),
            "blocks_api": reverse("my_blocks"),
            "standing_api": reverse("my_standing", args=[room.slug]),
            # The page appends a person's id to this prefix.
            "people_api": reverse("room_person", args=[room.slug, 0]).removesuffix("0"),
            "join_lines_max_viewers": settings.CHAT_JOIN_LINES_MAX_VIEWERS,
            "emotes_api": reverse("room_emotes", args=[room.slug]),
            "overlay_url": request.build_absolute_uri(reverse("room_overlay", args=[room.slug])),
            "popout_url": reverse("room_popout", args=[room.slug]),
        },
    )


def room_popout(request: HttpRequest, slug: str) -> HttpResponse:
    return room_page(request, slug, popout=True)


@require_GET
@embeddable
def room_overlay(request: HttpRequest, slug: str) -> HttpResponse:
    """Read-only live chat for a browser source in streaming software: no sign-in, no
    controls, a transparent page (docs/deploy.md "Streamers"). Bad options answer 400
    with what each takes, rather than an overlay that quietly ignores them."""
    try:
        room = selectors.get_room(slug)
    except ChatError as exc:
        raise Http404(exc.detail) from None
    try:
        options = parse_overlay_options(request.GET)
    except ChatError as exc:
        return json_error(exc.code, exc.detail, 400)
    return render(
        request,
        "rooms/overlay.html",
        {"room": room, "ws_path": f"/ws/rooms/{room.slug}/", "options": options},
    )


@require_GET
@json_api
def room_emotes(request: HttpRequest, slug: str) -> JsonResponse:
    """The room's emotes, {code, url} each, for the page's picker and outside clients."""
    room = selectors.get_room(slug)
    return JsonResponse({"emotes": emotes.room_emotes(room.pk)})


# Emote images are uploads: served with the type their bytes were sniffed as when they
# were stored, never sniffed again by the browser, and sandboxed should one be opened
# as a page. Their URL names the stored file, so it always means the same bytes.
EMOTE_CACHE_SECONDS = 365 * 24 * 3600


@require_GET
def emote_image(request: HttpRequest, emote_id: int, name: str) -> HttpResponse:
    emote = emotes.stored_emote(emote_id, name=name)
    if emote is None:
        raise Http404("No such emote.")
    try:
        # Small by rule (CHAT_EMOTE_MAX_BYTES): read whole, not streamed through a thread.
        with emote.image.open("rb") as image:
            content = image.read()
    except FileNotFoundError:
        raise Http404("No such emote.") from None
    response = HttpResponse(content, content_type=emote.content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = f"public, max-age={EMOTE_CACHE_SECONDS}, immutable"
    return response


# The JavaScript catalog of each language, as (ETag, body): built on first use, since
# catalogs change only with a deploy, which restarts the process.
_catalogs: dict[str, tuple[str, bytes]] = {}


def _catalog(request: HttpRequest) -> tuple[str, bytes]:
    language = translation.get_language()
    if language not in _catalogs:
        body = JavaScriptCatalog.as_view()(request).content
        _catalogs[language] = (hashlib.sha256(body).hexdigest()[:32], body)
    return _catalogs[language]


@require_GET
@condition(etag_func=lambda request: _catalog(request)[0])
def javascript_catalog(request: HttpRequest) -> HttpResponse:
    """Django's JavaScript catalog (window.django.gettext for the page's modules), in the
    request's language, built once per process and answered 304 while the browser has it.

    The language comes from the language switch's cookie or from Accept-Language, and
    no Vary header can name that cookie alone: so the browser asks on every page
    (no-cache) and the ETag, which differs per language and per catalog, says whether
    its copy still holds."""
    _etag, body = _catalog(request)
    response = HttpResponse(body, content_type='text/javascript; charset="utf-8"')
    patch_cache_control(response, no_cache=True)
    return response


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
@json_api
def room_events(request: HttpRequest, slug: str) -> JsonResponse:
    """The room event log as JSON, in the same shapes as on the socket."""
    room = selectors.get_room(slug)
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
        raise ValueError(
            format_lazy(_("`{name}` must be an integer from {low} to {high}."), name=name, low=low, high=high)
        ) from None
    if not low <= value <= high:
        raise ValueError(
            format_lazy(_("`{name}` must be an integer from {low} to {high}."), name=name, low=low, high=high)
        )
    return value


@require_GET
@json_api
def room_leaderboard(request: HttpRequest, slug: str) -> JsonResponse:
    """Top tippers of the room: this stream (since it last went live) and all time."""
    room = selectors.get_room(slug)
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


@require_GET
@never_cache
@json_api
def my_standing(request: HttpRequest, slug: str) -> JsonResponse:
    """The signed-in viewer's own ban and mute in the room: what the page says when the
    socket is refused (4403) or the viewer was kicked, since a close frame carries no
    length or reason."""
    room = selectors.get_room(slug)
    if not request.user.is_authenticated:
        return JsonResponse({"banned": None, "muted": None})
    return JsonResponse(selectors.restrictions_shown(room.pk, request.user.pk))


@require_GET
@json_api
def room_person(request: HttpRequest, slug: str, user_id: int) -> JsonResponse:
    """A person's card in a room, for signed-in viewers: role, account age and their
    latest messages here; for the host team also their mute and ban."""
    room = selectors.get_room(slug)
    signed_in(request)
    return JsonResponse(selectors.person_card(room, user_id, for_team=actor_rank(request.user, room) >= MODERATOR))
