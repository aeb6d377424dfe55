"""The WebSocket adapter: protocol frames in, service calls, frames out.

One RoomConsumer per connection. It has no channel-layer channel of its own: room events
reach it through its process's hub (rooms.delivery.hub), which writes the same encoded
frame to every local viewer. Per event and viewer the work here is `offer`: the
viewer's stream decides what it gets (rooms.delivery.stream) and its transport writes
it (rooms.delivery.transport), with no database access and no hop to the sync thread.

A client frame is parsed, charged to the connection's budget, and looked up among the
room's own commands (rooms.commands) or those other apps registered (rooms.extensions):
each answers with one reply frame.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from functools import cached_property
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http import HttpRequest
from django.utils import translation
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from rooms import commands, extensions, metrics
from rooms.budget import CommandBudget
from rooms.dbpaths import reads, writes
from rooms.delivery import drain, welcome
from rooms.delivery.hub import get_hub
from rooms.delivery.stream import Delivery, FellBehind, Frame, Thinned, ViewerStream
from rooms.delivery.transport import transport_for
from rooms.errors import Busy, ChatError
from rooms.permissions import is_team
from rooms.presence import Entry, get_presence
from rooms.protocol import Close, Command, ProtocolError, frames, parse_after, parse_client_frame

logger = logging.getLogger(__name__)


class RoomConsumer(AsyncWebsocketConsumer):
    # The hub does this process's channel-layer I/O; a consumer needs no channel.
    channel_layer_alias = "none"

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' dispatch first closes stale database connections, with a hop to the
        # database thread of its own for every frame a client sends. Every database call
        # here goes through database_sync_to_async, which does the same in that thread
        # on the way, so that hop would be pure cost: one of three per chat line.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        # Replies speak the viewer's language. Activation is per asyncio task (a context
        # variable), so it holds for this frame's work and for the tasks it starts (a
        # send being stored), and never leaks into another connection's.
        with translation.override(self.language):
            await handler(message)
        if message["type"] == "websocket.receive":
            self.transport.frame_handled()

    @cached_property
    def language(self) -> str:
        return language_of(self.scope)

    # Connecting.

    async def connect(self) -> None:
        self.conn_id = uuid.uuid4().hex
        self.user = self.scope["user"]
        self.user_id: int | None = self.user.pk if self.user.is_authenticated else None
        self.session_key: str | None = getattr(self.scope.get("session"), "session_key", None)
        self.room_id: int | None = None
        self.closed = False
        # Closing for a drain: answers on their way still go out, new commands get busy.
        self.leaving = False
        self.counted = False
        self.limit_keys: list[str] = []
        self.sends_in_flight = 0
        self._tasks: set[asyncio.Task] = set()
        # The last reply on its way: the next one goes after it.
        self._last_reply: asyncio.Future | None = None
        self.transport = transport_for(self.base_send)
        if drain.draining():
            # A handshake that got in as the process began to drain: go elsewhere now.
            await self.accept()
            await self.close(code=Close.SERVICE_RESTART)
            return
        after, after_refused = parse_after(self.scope.get("query_string", b""))
        self.hub = get_hub()
        state = await reads(welcome.viewer_state)(
            self.scope["url_route"]["kwargs"]["slug"], self.user, rooms=self.hub.rooms_by_slug
        )
        self.transport.connecting()
        await self.accept()
        self.transport.accepted()
        metrics.WEBSOCKETS.inc()
        self.counted = True
        if state is None:
            await self.close(code=Close.NOT_FOUND)
            return
        self.me = state.me
        self.stream = ViewerStream(
            blocked=state.blocked, queue_max=settings.CHAT_VIEWER_QUEUE_MAX, user_id=self.user_id
        )
        self.budget = CommandBudget(**_budget_for(self.me), strikes_to_close=settings.CHAT_FLOOD_STRIKES)
        # Refused syncs are already counted by the command budget: these strikes close nothing.
        self.sync_budget = CommandBudget(
            rate=settings.CHAT_SYNC_PER_SECOND, burst=settings.CHAT_SYNC_BURST, strikes_to_close=2**31
        )
        if state.banned:
            await self.close(code=Close.FORBIDDEN)
            return
        if not await self._admit():
            await self.close(code=Close.FLOODING)
            return
        self.room_id = state.room.pk
        joined = await self.hub.join(self.room_id, self)
        parts = await self.hub.welcome_parts(self.room_id, after=after, blocked=state.blocked, head=state.head)
        history = parts.history
        roster = await self.hub.welcome_roster(self.room_id, joined)
        await self.send(text_data=welcome.welcome_frame(state, parts, roster=roster))
        if after_refused is not None:
            await self.send(text_data=frames.error(after_refused.code, after_refused.detail))
        if not history.truncated:
            # A truncated resume keeps holding until the client has paged the rest with sync.
            await self.write_frame(self.stream.release(history.last_seq))

    async def _admit(self) -> bool:
        """Count this connection against the per-user and per-address limits."""
        client = self.scope.get("client") or ("unknown", 0)
        limits = [(f"ip:{client[0]}", settings.CHAT_MAX_CONNECTIONS_PER_IP)]
        if self.user_id is not None:
            limits.append((f"user:{self.user_id}", settings.CHAT_MAX_CONNECTIONS_PER_USER))
        try:
            over = await get_presence().admit(self.conn_id, limits)
        except Exception:
            logger.warning("Connection limits unavailable; admitting", exc_info=True)
            over = None
        if over is not None:
            return False
        self.limit_keys = [key for key, _ in limits]
        return True

    def spawn(self, coro) -> asyncio.Task:
        """Run a command's work beside the reading of the connection (sends being stored)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        metrics.closed(code)
        if code is not None and self.transport.close_frame(code):
            return
        await super().close(code=code, reason=reason)

    async def disconnect(self, code: int) -> None:
        self.closed = True
        if self.counted:
            self.counted = False
            metrics.WEBSOCKETS.dec()
        # Sends on their way are stored or refused as usual; their answers go nowhere.
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.limit_keys:
            try:
                await get_presence().release(self.conn_id, self.limit_keys)
            except Exception:
                logger.warning("Could not release connection-limit entries; they age out", exc_info=True)
        if self.room_id is not None:
            await self.hub.leave(self.room_id, self)

    # What the hub calls (rooms.delivery.hub.Viewer).

    def presence_entry(self) -> Entry:
        if self.user_id is None:
            return Entry(conn_id=self.conn_id, user_key=f"a{self.conn_id}", user=None, is_team=False)
        return Entry(conn_id=self.conn_id, user_key=f"u{self.user_id}", user=self.me, is_team=is_team(self.me["role"]))

    async def offer(
        self,
        deliveries: list[Delivery],
        frame: Frame,
        actors: set[int],
        first_seq: int | None,
        last_seq: int | None,
        dense: bool,
        thinned: Thinned | None = None,
    ) -> None:
        if self.closed:
            return
        try:
            mine = self.stream.offer(deliveries, frame, actors, first_seq, last_seq, dense, thinned)
        except FellBehind:
            await self.close_by_hub(Close.TOO_FAR_BEHIND)
            return
        await self.write_frame(mine)

    async def write_frame(self, frame: Frame | None) -> None:
        if frame is not None and not await self.transport.write(frame):
            await self.close_by_hub(Close.TOO_FAR_BEHIND)

    async def close_by_hub(self, code: int) -> None:
        if self.closed:
            return
        if code == Close.SERVICE_RESTART:
            # The process is draining: a send being stored still gets its ack here, so
            # that the client does not send it again elsewhere (that would be stored
            # once, but answered late).
            self.leaving = True
            deadline = asyncio.get_running_loop().time() + drain.REPLIES_WAIT_SECONDS
            # Commands that came meanwhile join the chain, answered busy at once.
            while self._replies_pending() and (left := deadline - asyncio.get_running_loop().time()) > 0:
                await asyncio.wait([self._last_reply], timeout=left)
        if not self.closed:
            self.closed = True
            await self.close(code=code)

    async def control(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "blocks":
            self.set_blocked(set(payload.get("blocked", ())))
        elif kind == "revoke":
            session = payload.get("session")
            if session is None or session == self.session_key:
                await self.close_by_hub(Close.FORBIDDEN)
        elif kind == "refresh":
            await self._refresh_standing()
        elif kind == "wallet":
            await self.send(text_data=frames.you(self.me, balance=payload["balance"]))

    def set_blocked(self, blocked: set[int]) -> None:
        self.stream.blocked = blocked

    async def _refresh_standing(self) -> None:
        """Read the user's account and room role again. Every permission check reads
        `self.user`, so a fresh user object (no permission cache) is what takes a
        revoked power away; the viewer and the roster are told the new role."""
        if self.closed or self.room_id is None:
            return
        fresh = await reads(welcome.fresh_standing)(self.user_id, self.room_id)
        if fresh is None:
            await self.close_by_hub(Close.FORBIDDEN)
            return
        self.user, me = fresh
        if me == self.me:
            return
        self.me = me
        self.budget.rescale(**_budget_for(me))
        await self.send(text_data=frames.you(me))
        await self.hub.presence.updated(self.room_id, self.presence_entry())

    # Client frames.

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.room_id is None or self.closed:
            return
        try:
            await self._answer(text_data)
        except Exception:
            # Closing here, rather than letting the error end the consumer, still runs
            # disconnect(): the viewer leaves the hub and the roster.
            logger.exception("Could not answer a frame; closing the connection")
            await self.close_by_hub(Close.SERVER_ERROR)

    async def _answer(self, text_data: str | None) -> None:
        try:
            command = parse_client_frame(text_data)
        except ProtocolError as exc:
            command, refused = None, exc
        # Replies go out in the order the commands came. Sends are the one command that
        # does not wait for the answers before it: a sender's frames are read (and its
        # surplus refused as busy) as they arrive, not after each write.
        if command is None or command.type != "send":
            await self._earlier_replies_sent()
        # Malformed frames count against the budget too: they are the cheapest flood.
        wait = self.budget.take()
        if wait is not None:
            if self.budget.flooding:
                await self.close_by_hub(Close.FLOODING)
                return
            client_id = command.client_id if command is not None else refused.client_id
            metrics.SHED_RATE_LIMITED.inc()
            metrics.command(_kind(command), "rate_limited")
            reply = frames.error(
                "rate_limited", _("Too many commands; slow down."), client_id=client_id, retry_after=wait
            )
        elif command is None:
            metrics.command("invalid", refused.code)
            reply = frames.error(refused.code, refused.detail, client_id=refused.client_id)
        else:
            reply = await self._run(command)
        if isinstance(reply, asyncio.Future) or self._replies_pending():
            self._last_reply = self.spawn(self._reply_after(self._last_reply, reply))
        elif reply is not None:
            await self.send(text_data=reply)

    def _replies_pending(self) -> bool:
        return self._last_reply is not None and not self._last_reply.done()

    async def _earlier_replies_sent(self) -> None:
        if self._replies_pending():
            await asyncio.wait([self._last_reply])

    async def _reply_after(self, previous: asyncio.Future | None, reply) -> None:
        """Send `reply` (a text, or a future of one) once the reply before it went out."""
        if previous is not None:
            await asyncio.wait([previous])
        text = await reply if isinstance(reply, asyncio.Future) else reply
        if text is not None and not self.closed:
            await self.send(text_data=text)

    async def _run(self, command: Command) -> str | asyncio.Future | None:
        """The one reply to a parsed command: its text, a future of it (a send being
        stored), or None when the command sent it already."""
        kind = _kind(command)
        try:
            if self.leaving:
                raise Busy(_("This server is restarting; send it again once reconnected."), retry_after=1.0)
            own = commands.COMMANDS.get(command.type)
            if own is not None:
                reply = await own(self, command)
                if not isinstance(reply, asyncio.Future):  # a send counts itself once stored
                    metrics.command(kind, "ok")
                return reply
            other = extensions.socket_commands.get(command.type)
            if other is None:
                metrics.command(kind, "unknown_type")
                return frames.error(
                    "unknown_type",
                    format_lazy(_("This server does not serve {type!r}."), type=command.type),
                    client_id=command.client_id,
                )
            result = await writes(other.run)(self.user, room_id=self.room_id, **command.args)
            if other.apply is not None:
                other.apply(self, result)
            metrics.command(kind, "ok")
            return other.reply(command.client_id, result)
        except ChatError as exc:
            metrics.command(kind, exc.code)
            return frames.error(exc.code, exc.detail, client_id=command.client_id, retry_after=exc.retry_after)
        except Exception:
            logger.exception("Command %s failed", command.type)
            metrics.command(kind, "server_error")
            return frames.error("server_error", _("Something went wrong; try again."), client_id=command.client_id)


def language_of(scope: dict[str, Any]) -> str:
    """The language of a connection's replies, chosen from its handshake the way
    LocaleMiddleware chooses a page's: the language switch's cookie, else
    Accept-Language, else LANGUAGE_CODE."""
    request = HttpRequest()
    request.COOKIES = scope.get("cookies", {})
    for name, value in scope.get("headers", ()):
        if name == b"accept-language":
            request.META["HTTP_ACCEPT_LANGUAGE"] = value.decode("latin-1")
    return translation.get_language_from_request(request)


def _kind(command: Command | None) -> str:
    """The command's type as a metric label: only the types this server serves, so that
    what clients type cannot grow the number of series."""
    if command is None:
        return "invalid"
    if command.type in commands.COMMANDS or command.type in extensions.socket_commands:
        return command.type
    return "unknown"


def _budget_for(me: dict[str, Any]) -> dict[str, float]:
    """The command budget of a viewer: the host team and staff run the room, at a multiple."""
    multiplier = settings.CHAT_TEAM_COMMAND_MULTIPLIER if is_team(me["role"]) or me.get("staff") else 1
    return {"rate": settings.CHAT_COMMANDS_PER_SECOND * multiplier, "burst": settings.CHAT_COMMANDS_BURST * multiplier}
