"""The server-sent-events fallback (PROTOCOL.md "Server-sent events"), for networks
where WebSockets do not get through.

- `RoomStream`: `GET /rooms/<slug>/stream[?after=N]`, a plain ASGI app (routed in
  chatsite/asgi.py before Django). It is a viewer like a socket (rooms.connection): the
  same hub, welcome, frames, roster, limits and user controls; only how frames are
  written (rooms.delivery.sse) and how it ends differ.
- `room_commands`: `POST /rooms/<slug>/commands`, the client frames a socket would
  have sent, run by the same command handlers with the same budget, answered with the
  same reply frames.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import translation
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt

from rooms import metrics, selectors
from rooms.budget import CommandBudget
from rooms.connection import ViewerConnection, budget_for, rate_limited, run_command
from rooms.consumers import language_of
from rooms.dbpaths import reads
from rooms.delivery import drain, sse
from rooms.delivery.hub import get_hub
from rooms.errors import ChatError
from rooms.middleware import origin_allowed
from rooms.protocol import Close, ProtocolError, frames, parse_after, parse_client_frame
from rooms.views import json_error

logger = logging.getLogger(__name__)

# A stream that sent nothing for this long gets a `pong` (PROTOCOL.md): proxies keep it
# open, and the client learns the room's last seq.
HEARTBEAT_SECONDS = 15.0

# How a stream that is ended for good tells its client (it must not reconnect).
ENDINGS = {
    Close.KICKED: ("forbidden", _("You were removed from the room.")),
    Close.FORBIDDEN: ("forbidden", _("You no longer have access to this room.")),
    Close.NOT_FOUND: ("not_found", _("This room no longer exists.")),
}

STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    # nginx must pass each event on at once (deploy/nginx.conf also turns buffering off).
    (b"x-accel-buffering", b"no"),
]


def heartbeat_delay(last_write: float, now: float, interval: float) -> float:
    """Seconds until a stream that last wrote at `last_write` is owed a heartbeat (0: now)."""
    return max(0.0, last_write + interval - now)


def resume_point(scope: dict[str, Any]) -> tuple[int | None, ProtocolError | None]:
    """Where a stream starts: `Last-Event-ID` when the browser reconnects (it keeps the
    URL's `?after=` of the first visit, which is older), else `?after=`."""
    last_event_id = [value for key, value in scope.get("headers", ()) if key.lower() == b"last-event-id"]
    if last_event_id:
        return parse_after(b"after=" + last_event_id[-1].strip())
    return parse_after(scope.get("query_string", b""))


async def json_response(send, status: int, code: str, detail: str) -> None:
    """An HTTP error in the protocol's shape (rooms.views.json_error), as plain ASGI."""
    body = json_error(code, detail, status).content
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


class RoomStream(ViewerConnection):
    """One viewer's event stream: from its welcome until the client goes, or the stream
    is ended (kick, ban, sign-out, too far behind, the process draining)."""

    def __init__(self, scope, receive, send) -> None:
        self.receive = receive
        self.send = send
        self.start_viewer(scope, sse.stream_for(send))
        self.ended = asyncio.Event()
        self.language = language_of(scope)
        # The last event of a stream ended for good (see ENDINGS).
        self.ending: sse.Event | None = None

    @classmethod
    def as_asgi(cls):
        async def app(scope, receive, send) -> None:
            stream = cls(scope, receive, send)
            # The stream's errors speak the viewer's language, as a socket's replies do.
            with translation.override(stream.language):
                await stream.run()

        return app

    async def run(self) -> None:
        request = await self.receive()
        if request["type"] == "http.disconnect":
            return
        if self.scope["method"] != "GET":
            await json_response(self.send, 405, "bad_request", _("The stream is read with GET."))
            return
        if drain.draining():
            # The process is going away: the browser reconnects, through the proxy, to another.
            await json_response(self.send, 503, "busy", _("This server is restarting; connect again."))
            return
        after, after_refused = resume_point(self.scope)
        state = await self.read_viewer_state()
        if state is None:
            await json_response(self.send, 404, "not_found", _("No such room."))
            return
        if state.banned:
            await json_response(self.send, 403, "banned", _("You are banned from this room."))
            return
        if not await self.admit():
            await json_response(self.send, 429, "rate_limited", _("Too many open connections; close some first."))
            return
        await self.send({"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS})
        await self.send({"type": "http.response.body", "body": sse.preamble(), "more_body": True})
        metrics.EVENT_STREAMS.inc()
        gone = asyncio.ensure_future(self._client_gone())
        heartbeat: asyncio.Task | None = None
        try:
            await self.join_room(state, after=after, after_refused=after_refused)
            heartbeat = asyncio.ensure_future(self._heartbeat())
            ended = asyncio.ensure_future(self.ended.wait())
            await asyncio.wait([gone, ended], return_when=asyncio.FIRST_COMPLETED)
            ended.cancel()
        finally:
            client_gone = gone.done() and not gone.cancelled()
            for task in (gone, heartbeat):
                if task is not None:
                    task.cancel()
            metrics.EVENT_STREAMS.dec()
            await self.leave_room()
            if not client_gone:
                await self._finish()

    async def _client_gone(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass

    async def _finish(self) -> None:
        if self.ending is not None:
            await self.transport.write_event(self.ending)
        try:
            await self.send({"type": "http.response.body", "body": b"", "more_body": False})
        except Exception:
            logger.debug("The stream's client was gone before its end", exc_info=True)

    async def _heartbeat(self) -> None:
        while not self.closed:
            delay = heartbeat_delay(self.transport.last_write, time.monotonic(), HEARTBEAT_SECONDS)
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            try:
                last_seq = await self.hub.heads.get(self.room_id)
            except Exception:
                logger.warning("Could not read the room's head for a heartbeat", exc_info=True)
                last_seq = self.stream.last_seq
            if not self.closed:
                await self.send_text(frames.head(last_seq=last_seq))

    # What the connection core calls (rooms.connection).

    async def send_text(self, text: str) -> None:
        if not self.closed:
            await self.transport.write_event(sse.frame_event(text))

    async def send_welcome(self, text: str, history: selectors.History) -> None:
        # A resume that got one page of what it missed picks up after that page: the
        # stream ends, and the browser reconnects with the page's last seq.
        if history.more and history.events:
            last = history.events[-1]
            # The events are stored JSON text as the welcome forwards them (or dicts).
            event_id = (json.loads(last) if isinstance(last, str) else last)["seq"]
        else:
            event_id = history.last_seq
        await self.transport.write_event(sse.encode_event(text, kind="welcome", event_id=event_id))
        if history.more:
            await self.close_by_hub(Close.NORMAL)

    async def end(self, code: int) -> None:
        metrics.closed(code)
        ending = ENDINGS.get(code)
        if ending is not None:
            # Called from the hub's work for the room, outside this stream's own task.
            with translation.override(self.language):
                self.ending = sse.frame_event(frames.ended(*ending, close=code))
        self.ended.set()


# The commands endpoint.

# Client frames one POST may carry: a page's outbox after a reconnect, not a flood.
FRAMES_PER_POST_MAX = 32
# Command budgets of the signed-in users who posted lately, per room, in this process.
BUDGETS_MAX = 10_000


class PostedCommands:
    """What the command handlers run as for one POST (they take a connection): the
    user and the room, and the user's budget in the room, kept between posts."""

    def __init__(self, user, *, room_id: int, me: dict[str, Any], budget: CommandBudget) -> None:
        self.user = user
        self.user_id: int = user.pk
        self.room_id = room_id
        self.me = me
        self.budget = budget
        self.hub = get_hub()
        # A process that is draining takes no new commands (answered busy).
        self.leaving = drain.draining()
        self.sends_in_flight = 0
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def set_blocked(self, blocked: set[int]) -> None:
        """The user's streams learn their new block list from the user control the
        block published; a POST has no feed of its own to filter."""


_budgets: dict[tuple[int, int], CommandBudget] = {}


def _budget(user_id: int, room_id: int, me: dict[str, Any]) -> CommandBudget:
    key = (user_id, room_id)
    budget = _budgets.pop(key, None)
    if budget is None:
        budget = CommandBudget(**budget_for(me), strikes_to_close=settings.CHAT_FLOOD_STRIKES)
    else:
        budget.rescale(**budget_for(me))
    if len(_budgets) >= BUDGETS_MAX:
        # The least recently used: its bucket has long been full again.
        del _budgets[next(iter(_budgets))]
    _budgets[key] = budget
    return budget


def _room_and_me(slug: str, user) -> tuple[int, dict[str, Any]]:
    room = selectors.get_room(slug)
    return room.pk, selectors.user_in_room(user, room)


class _CsrfCheck(CsrfViewMiddleware):
    # Django's own CSRF check, answered in the protocol's JSON rather than the HTML page.
    def _reject(self, request, reason):
        return json_error("forbidden", format_lazy(_("CSRF check failed: {reason}"), reason=reason), 403)


def _frames_of(body: bytes) -> list[str]:
    """The client frames of a POST body: one JSON object, or a list of them, each
    re-encoded as the text frame a socket would have carried."""
    try:
        posted = json.loads(body)
    except (ValueError, RecursionError):
        raise ProtocolError("bad_request", _("The body is not valid JSON.")) from None
    if isinstance(posted, dict):
        return [body.decode()]
    if not isinstance(posted, list) or not posted:
        raise ProtocolError("bad_request", _("The body must be a command object or a non-empty list of them."))
    if len(posted) > FRAMES_PER_POST_MAX:
        detail = format_lazy(_("At most {count} commands per request."), count=FRAMES_PER_POST_MAX)
        raise ProtocolError("too_large", detail)
    return [json.dumps(frame, ensure_ascii=False) for frame in posted]


# Answered on the stream instead: reconnect it with ?after= (which is also its ping).
STREAM_ONLY = frozenset({"ping", "sync"})


@csrf_exempt
async def room_commands(request: HttpRequest, slug: str) -> HttpResponse:
    if request.method != "POST":
        return json_error("bad_request", _("Commands are sent with POST."), 405)
    if not origin_allowed(request.headers.get("Origin"), host=request.get_host(), scheme=request.scheme):
        return json_error("forbidden", _("Commands are taken only from this site's own pages."), 403)
    refused = _CsrfCheck(lambda _: None).process_view(request, None, (), {})
    if refused is not None:
        return refused
    user = await request.auser()
    if not user.is_authenticated:
        return json_error("unauthenticated", _("Sign in to send commands."), 403)
    if len(request.body) > settings.CHAT_FRAME_MAX_BYTES * FRAMES_PER_POST_MAX:
        return json_error("too_large", _("The request is too large."), 413)
    try:
        texts = _frames_of(request.body)
    except ProtocolError as exc:
        return json_error(exc.code, exc.detail, 413 if exc.code == "too_large" else 400)
    try:
        room_id, me = await reads(_room_and_me)(slug, user)
    except ChatError as exc:
        return json_error(exc.code, exc.detail, 404 if exc.code == "not_found" else 403)
    conn = PostedCommands(user, room_id=room_id, me=me, budget=_budget(user.pk, room_id, me))
    replies, refused_all = await answer(conn, texts)
    if refused_all and conn.budget.flooding:
        # A client that keeps on past its budget (where a socket would be closed 4429):
        # nothing of this post ran, so it is refused as a whole.
        return json_error("rate_limited", _("Too many commands; wait before sending more."), 429)
    # The reply frames as encoded for a socket, spliced in as they are.
    return HttpResponse('{"replies":[' + ",".join(replies) + "]}", content_type="application/json")


async def answer(conn: PostedCommands, texts: list[str]) -> tuple[list[str], bool]:
    """The reply frame of each client frame, in order, and whether the budget refused
    them all. As on a socket, sends are handed to the room's writer together and every
    other command waits for the sends before it."""
    replies: list[str | asyncio.Future] = []
    refused = 0
    for text in texts:
        try:
            command = parse_client_frame(text)
        except ProtocolError as exc:
            command, malformed = None, exc
        if command is None or command.type != "send":
            await asyncio.gather(*[r for r in replies if isinstance(r, asyncio.Future)], return_exceptions=True)
        wait = conn.budget.take()
        if wait is not None:
            refused += 1
            replies.append(rate_limited(command.client_id if command is not None else malformed.client_id, wait))
        elif command is None:
            replies.append(frames.error(malformed.code, malformed.detail, client_id=malformed.client_id))
        elif command.type in STREAM_ONLY:
            replies.append(
                frames.error(
                    "unknown_type",
                    format_lazy(
                        _("{type!r} is not sent as a command here; reconnect the stream with ?after= instead."),
                        type=command.type,
                    ),
                    client_id=command.client_id,
                )
            )
        else:
            replies.append(await run_command(conn, command))
    answered = [await r if isinstance(r, asyncio.Future) else r for r in replies if r is not None]
    return answered, refused == len(replies)
