"""What a viewer of a room is, whatever carries its frames.

A WebSocket (rooms.consumers) and a server-sent-events stream (rooms.sse) are the same
viewer to the hub, the roster and the connection limits: they open the same way (the
viewer's state, the limits, joining the hub, the welcome), get the same frames, obey the
same user controls (blocks, revoke, refresh, wallet) and leave the same way. This is
that lifecycle, once. A transport supplies how a text frame is sent (`send_text`), how
the connection ends (`end`), and its `transport` (rooms.delivery.transport, .sse).

Commands are run here too (`run_command`), for the socket's frames and for the
commands endpoint of the streams alike.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import uuid
from collections.abc import Awaitable
from typing import Any

from django.conf import settings
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from rooms import commands, extensions, metrics, selectors
from rooms.budget import CommandBudget
from rooms.dbpaths import reads, writes
from rooms.delivery import welcome
from rooms.delivery.hub import get_hub
from rooms.delivery.stream import Delivery, FellBehind, Frame, Thinned, ViewerStream
from rooms.errors import Busy, ChatError, NoSuchRoom
from rooms.permissions import is_team
from rooms.presence import Entry, get_presence
from rooms.protocol import Close, Command, ProtocolError, frames

logger = logging.getLogger(__name__)

# A connection's id names it in the presence store and the connection limits, which
# every process shares: this process's random prefix and a count. (uuid4 per connection
# read the system's random source each time: a few percent of a connect's CPU.)
_PROCESS_PREFIX = uuid.uuid4().hex
_connections = itertools.count()


def _new_process() -> None:
    # A server that imports the application and then forks its workers: each its own.
    global _PROCESS_PREFIX, _connections
    _PROCESS_PREFIX = uuid.uuid4().hex
    _connections = itertools.count()


os.register_at_fork(after_in_child=_new_process)


def new_conn_id() -> str:
    return f"{_PROCESS_PREFIX}{next(_connections):x}"


class ViewerConnection:
    """The part of a connection the hub, the presence tracker and the commands see."""

    def start_viewer(self, scope: dict[str, Any], transport) -> None:
        """Who is connecting, before anything is read (the transport writes its frames)."""
        self.scope = scope
        self.conn_id = new_conn_id()
        self.user = scope["user"]
        self.user_id: int | None = self.user.pk if self.user.is_authenticated else None
        self.session_key: str | None = getattr(scope.get("session"), "session_key", None)
        self.room_id: int | None = None
        self.closed = False
        # Closing for a drain: answers on their way still go out, new commands get busy.
        self.leaving = False
        self.limit_keys: list[str] = []
        self.sends_in_flight = 0
        self._tasks: set[asyncio.Task] = set()
        self.transport = transport

    async def read_viewer_state(self) -> welcome.ViewerState | None:
        """The room and the viewer in it (None: no such room); sets up what the viewer
        keeps for as long as it is connected."""
        self.hub = get_hub()
        slug = self.scope["url_route"]["kwargs"]["slug"]
        room = await self.hub.room(slug)
        if room is None:
            return None
        try:
            head = await self.hub.heads.get(room.pk)
        except NoSuchRoom:
            # Deleted since the hub read it.
            self.hub.forget_room(slug)
            return None
        if self.user_id is None:
            state = welcome.viewer_state(room, self.user, head=head)
        else:
            state = await reads(welcome.viewer_state)(room, self.user, head=head)
        self.me = state.me
        self.stream = ViewerStream(
            blocked=state.blocked, queue_max=settings.CHAT_VIEWER_QUEUE_MAX, user_id=self.user_id
        )
        self.budget = CommandBudget(**budget_for(self.me), strikes_to_close=settings.CHAT_FLOOD_STRIKES)
        # Refused syncs are already counted by the command budget: these strikes close nothing.
        self.sync_budget = CommandBudget(
            rate=settings.CHAT_SYNC_PER_SECOND, burst=settings.CHAT_SYNC_BURST, strikes_to_close=2**31
        )
        return state

    async def admit(self) -> bool:
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

    async def join_room(
        self, state: welcome.ViewerState, *, after: int | None, after_refused: ProtocolError | None
    ) -> None:
        """Join the hub (live events wait from here on), then send the welcome."""
        self.room_id = state.room.pk
        joined = await self.hub.join(self.room_id, self)
        parts = await self.hub.welcome_parts(self.room_id, after=after, blocked=state.blocked, head=state.head)
        history = parts.history
        roster = await self.hub.welcome_roster(self.room_id, joined)
        await self.send_welcome(welcome.welcome_frame(state, parts, roster=roster), history)
        if after_refused is not None:
            await self.send_text(frames.error(after_refused.code, after_refused.detail))
        if not history.truncated:
            # A truncated resume keeps holding until the client has paged the rest.
            await self.write_frame(self.stream.release(history.last_seq))

    async def send_welcome(self, text: str, history: selectors.History) -> None:
        await self.send_text(text)

    def spawn(self, coro) -> asyncio.Task:
        """Run a command's work beside the reading of the connection (sends being stored)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def leave_room(self) -> None:
        """The connection is gone: out of the limits, the hub and the roster."""
        self.closed = True
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

    def offer(
        self,
        deliveries: list[Delivery],
        frame: Frame,
        actors: set[int],
        first_seq: int | None,
        last_seq: int | None,
        dense: bool,
        thinned: Thinned | None = None,
    ) -> Awaitable[None] | None:
        # Once per viewer per frame: written at once where the transport can, so that a
        # flush to 10,000 viewers is 10,000 calls, not 30,000 coroutines.
        if self.closed:
            return None
        try:
            mine = self.stream.offer(deliveries, frame, actors, first_seq, last_seq, dense, thinned)
        except FellBehind:
            return self.close_by_hub(Close.TOO_FAR_BEHIND)
        if mine is None:
            return None
        written = self.transport.put(mine)
        if written is None:
            return self.write_frame(mine)
        return None if written else self.close_by_hub(Close.TOO_FAR_BEHIND)

    async def write_frame(self, frame: Frame | None) -> None:
        if frame is not None and not await self.transport.write(frame):
            await self.close_by_hub(Close.TOO_FAR_BEHIND)

    async def close_by_hub(self, code: int) -> None:
        if not self.closed:
            self.closed = True
            await self.end(code)

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
            await self.send_text(frames.you(self.me, balance=payload["balance"]))

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
        self.budget.rescale(**budget_for(me))
        await self.send_text(frames.you(me))
        await self.hub.presence.updated(self.room_id, self.presence_entry())

    # What a transport supplies.

    async def send_text(self, text: str) -> None:
        raise NotImplementedError

    async def end(self, code: int) -> None:
        """End the connection; `code` is the WebSocket close code that says why."""
        raise NotImplementedError


async def run_command(conn, command: Command) -> str | asyncio.Future | None:
    """The one reply to a parsed command: its text, a future of it (a send being
    stored), or None when the command sent it already. `conn` is what the command
    runs as: a connection, or the commands endpoint's stand-in for one."""
    kind = command_kind(command)
    try:
        if conn.leaving:
            raise Busy(_("This server is restarting; send it again once reconnected."), retry_after=1.0)
        own = commands.COMMANDS.get(command.type)
        if own is not None:
            reply = await own(conn, command)
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
        result = await writes(other.run)(conn.user, room_id=conn.room_id, **command.args)
        if other.apply is not None:
            other.apply(conn, result)
        metrics.command(kind, "ok")
        return other.reply(command.client_id, result)
    except ChatError as exc:
        metrics.command(kind, exc.code)
        return frames.error(exc.code, exc.detail, client_id=command.client_id, retry_after=exc.retry_after)
    except Exception:
        logger.exception("Command %s failed", command.type)
        metrics.command(kind, "server_error")
        return frames.error("server_error", _("Something went wrong; try again."), client_id=command.client_id)


def command_kind(command: Command | None) -> str:
    """The command's type as a metric label: only the types this server serves, so that
    what clients type cannot grow the number of series."""
    if command is None:
        return "invalid"
    if command.type in commands.COMMANDS or command.type in extensions.socket_commands:
        return command.type
    return "unknown"


def budget_for(me: dict[str, Any]) -> dict[str, float]:
    """The command budget of a viewer: the host team and staff run the room, at a multiple."""
    multiplier = settings.CHAT_TEAM_COMMAND_MULTIPLIER if is_team(me["role"]) or me.get("staff") else 1
    return {"rate": settings.CHAT_COMMANDS_PER_SECOND * multiplier, "burst": settings.CHAT_COMMANDS_BURST * multiplier}


def rate_limited(client_id: str | None, wait: float) -> str:
    return frames.error("rate_limited", _("Too many commands; slow down."), client_id=client_id, retry_after=wait)
