"""The WebSocket adapter: protocol frames in, service calls, frames out.

One RoomConsumer per connection. It has no channel-layer channel of its own: room
events reach it through its process's hub (rooms.realtime), which writes the same
encoded text to every local viewer. So the per-event, per-viewer work here is `offer`:
a blocked-author check, a seq check and one socket write, with no database access and
no hop to the sync thread.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.consumer import get_handler_name
from django.conf import settings
from django.contrib.auth import get_user_model
from twisted.web.http import HTTPChannel

from moderation import services as moderation
from moderation.selectors import active_ban, active_mute
from rooms import selectors, services
from rooms.errors import ChatError, RateLimited
from rooms.models import Room
from rooms.permissions import is_team
from rooms.presence import Entry, get_presence
from rooms.protocol import (
    MAX_ID,
    Command,
    ProtocolError,
    ack_frame,
    batch_text,
    encode,
    error_frame,
    iso,
    parse_client_frame,
    with_client_id,
)
from rooms.realtime import Delivery, Frame, get_hub, new_conn_id
from rooms.writer import get_writer

logger = logging.getLogger(__name__)

CLOSE_KICKED = 4000
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_FAR_BEHIND = 4409
CLOSE_FLOODING = 4429
CLOSE_SERVER_ERROR = 1011
# Bytes the server may hold for one viewer that is not reading before it is told to
# resync from the log: bounds memory per connection whatever the room does.
TRANSPORT_BACKLOG_MAX = 1 << 20
# The largest WebSocket message read at all, as a multiple of the protocol's frame
# limit: a frame between the two still gets its `too_large` error, a larger one is
# closed with 1009 before it is buffered (daphne's own limit is 1 MiB, and it bounds
# what the server sends too: a replay or a welcome may be larger).
WS_MESSAGE_MAX_FACTOR = 8
# Frames of one connection that have arrived but not been handled yet: past the high
# mark the socket is not read (TCP pushes back on the client) until the consumer is
# down to the low mark. Bounds what one connection can queue in memory.
INBOUND_FRAMES_HIGH = 32
INBOUND_FRAMES_LOW = 8


def _write_now(transport, data: bytes) -> None:
    """What daphne's send does, minus re-encoding and re-framing per viewer, and minus
    the reactor round trip: with nothing queued before it, the frame goes straight to
    the socket (one send call, where Twisted would register the socket for writability,
    wait for the next loop iteration, write, and unregister it). Whatever the kernel
    does not take is queued in the transport as usual, which keeps the order."""
    if transport._tempDataLen or len(transport.dataBuffer) - transport.offset:
        transport.write(data)
        return
    if not transport.connected or transport.disconnecting:
        return
    try:
        sent = transport.socket.send(data)
    except (BlockingIOError, InterruptedError):
        sent = 0
    except OSError:
        # Let Twisted see the broken connection and close it its usual way.
        transport.write(data)
        return
    if sent < len(data):
        transport.write(data[sent:])


def _release_handshake(ws) -> None:
    """Let go of what daphne and autobahn keep from the handshake for as long as the
    socket is open and never read again: ~4 KB per viewer, an eighth of its memory.

    Daphne leaves the HTTP channel it upgraded registered as the socket's producer,
    which keeps the channel and its request (headers, buffers) alive. Without it, a
    viewer whose socket backs up is still read (its pings and commands answered); the
    transport backlog bound covers its memory. Autobahn keeps the raw request and
    response bytes and the parsed request headers (daphne copied what it needed into
    the scope before the consumer started)."""
    # Each piece only if it is there: these are daphne's and autobahn's insides.
    transport = ws.transport
    producer = getattr(transport, "producer", None)
    if isinstance(producer, HTTPChannel):
        transport.unregisterProducer()
        producer.setTimeout(None)
    for name in ("http_request_data", "http_response_data"):
        if hasattr(ws, name):
            setattr(ws, name, None)
    headers = getattr(ws, "http_headers", None)
    if isinstance(headers, dict):
        headers.clear()


def _limit_inbound(ws) -> None:
    """Bound what one daphne WebSocket reads ahead of its consumer: messages larger than
    WS_MESSAGE_MAX_FACTOR protocol frames fail the connection (1009), and past
    INBOUND_FRAMES_HIGH unhandled frames the socket stops being read until
    `_resume_inbound` sees the backlog down to INBOUND_FRAMES_LOW. Autobahn copies its
    factory's options onto each protocol when it connects, so these are per connection."""
    limit = settings.CHAT_FRAME_MAX_BYTES * WS_MESSAGE_MAX_FACTOR
    # Autobahn's message limit applies to what is sent as well, so incoming messages are
    # held to this one the way Autobahn holds them to its own: as each frame begins.
    ws.maxFramePayloadSize = limit
    frame_begins = ws.onMessageFrameBegin

    def on_message_frame_begin(length: int) -> None:
        frame_begins(length)
        if not ws.failedByMe and ws.message_data_total_length > limit:
            ws.wasMaxMessagePayloadSizeExceeded = True
            ws._max_message_size_exceeded(
                ws.message_data_total_length, limit, f"received a WebSocket message over {limit} octets"
            )

    ws.onMessageFrameBegin = on_message_frame_begin
    queue = ws.application_queue
    receive = ws.onMessage

    def on_message(payload: bytes, is_binary: bool) -> None:
        receive(payload, is_binary)
        if queue.qsize() >= INBOUND_FRAMES_HIGH and not ws.chat_inbound_paused:
            ws.chat_inbound_paused = True
            ws.transport.pauseProducing()

    ws.chat_inbound_paused = False
    ws.onMessage = on_message


def _resume_inbound(ws) -> None:
    if ws.chat_inbound_paused and ws.application_queue.qsize() <= INBOUND_FRAMES_LOW:
        ws.chat_inbound_paused = False
        if ws.transport is not None:
            ws.transport.resumeProducing()


class CommandBudget:
    """Per-connection token bucket for client commands of any kind. A client that keeps
    hitting the bottom is flooding and gets closed; one that bumps it gets errors."""

    def __init__(self, *, rate: float, burst: int, strikes_to_close: int) -> None:
        self.rate, self.burst, self.strikes_to_close = rate, burst, strikes_to_close
        self.tokens = float(burst)
        self.updated = time.monotonic()
        self.strikes = 0

    def take(self) -> float | None:
        """None if the command may run, else seconds until it could."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.strikes = max(0, self.strikes - 1)
            return None
        self.strikes += 1
        return (1 - self.tokens) / self.rate

    def rescale(self, *, rate: float, burst: int) -> None:
        """Take a new rate and burst (the viewer joined or left the host team)."""
        self.rate, self.burst = rate, burst
        self.tokens = min(self.tokens, float(burst))

    @property
    def flooding(self) -> bool:
        return self.strikes >= self.strikes_to_close


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
        await handler(message)
        ws = self._daphne_protocol
        if ws is not None and message["type"] == "websocket.receive":
            _resume_inbound(ws)

    async def connect(self) -> None:
        self.conn_id = new_conn_id()
        self.user = self.scope["user"]
        self.user_id: int | None = self.user.pk if self.user.is_authenticated else None
        session = self.scope.get("session")
        self.session_key: str | None = getattr(session, "session_key", None)
        self.room_id: int | None = None
        self.closed = False
        # While holding (before the welcome, during a sync replay) live events wait in
        # the outbox; afterwards they are written as they come.
        self.holding = True
        self.outbox: list[Delivery] = []
        self.last_seq = 0
        # Every room event up to this seq was sent to this connection or withheld from
        # it (blocked authors); beyond it there may be a hole that only the log can fill.
        self.complete_seq = 0
        self.owes_complete = False
        self.blocked: set[int] = set()
        self.limit_keys: list[str] = []
        slug = self.scope["url_route"]["kwargs"]["slug"]
        after, after_error = _parse_after(self.scope.get("query_string", b""))
        state = await database_sync_to_async(_connection_state)(slug, self.user)
        ws = self._daphne_protocol
        if ws is not None:
            # Autobahn fails a connection (a frame over daphne's size limit, a protocol
            # error) by dropping TCP, so the client sees 1006 and cannot tell it from a
            # network fault; with a close frame it sees why (1009 too big, 1002).
            ws.failByDrop = False
            _limit_inbound(ws)
        await self.accept()
        if ws is not None:
            _release_handshake(ws)
        if state is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        room, self.me, self.blocked, banned, mute, balance, pinned = state
        self.budget = CommandBudget(**_budget_for(self.me), strikes_to_close=settings.CHAT_FLOOD_STRIKES)
        # Refused syncs are already counted by the command budget: these strikes close nothing.
        self.sync_budget = CommandBudget(
            rate=settings.CHAT_SYNC_PER_SECOND, burst=settings.CHAT_SYNC_BURST, strikes_to_close=2**31
        )
        if banned:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        if not await self._admit():
            await self.close(code=CLOSE_FLOODING)
            return
        self.room_id = room.pk
        self.hub = get_hub()
        await self.hub.join(self.room_id, self)
        history = await database_sync_to_async(selectors.room_history)(self.room_id, after=after, blocked=self.blocked)
        store = get_presence()
        welcome = {
            "type": "welcome",
            "room": await database_sync_to_async(selectors.room_state)(room),
            "you": {
                **self.me,
                "muted_until": iso(mute.until) if mute else None,
                "balance": balance,
                "blocked": sorted(self.blocked),
                **({"muted_reason": mute.reason} if mute else {}),
            },
            "roster": await self._roster_or_local(store, offset=0, limit=50),
            "history": history.events,
            "last_seq": history.last_seq,
            "history_truncated": history.truncated,
            "pinned": pinned,
        }
        await self.send(text_data=encode(welcome))
        if after_error:
            await self.send(text_data=error_frame("bad_request", after_error))
        if not history.truncated:
            # A truncated resume keeps holding until the client has paged the rest with sync.
            await self._release(history.last_seq)

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

    async def disconnect(self, code: int) -> None:
        self.closed = True
        if self.limit_keys:
            try:
                await get_presence().release(self.conn_id, self.limit_keys)
            except Exception:
                logger.warning("Could not release connection-limit entries; they age out", exc_info=True)
        if self.room_id is not None:
            await self.hub.leave(self.room_id, self)

    # What the hub calls.

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
    ) -> None:
        if self.closed:
            return
        if self.holding:
            self.outbox.extend(deliveries)
            if len(self.outbox) > settings.CHAT_VIEWER_QUEUE_MAX:
                await self.close_by_hub(CLOSE_TOO_FAR_BEHIND)
            return
        if last_seq is not None and dense and first_seq <= self.complete_seq + 1:
            self.complete_seq = max(self.complete_seq, last_seq)
        if (
            (first_seq is not None and first_seq <= self.last_seq)
            or (self.blocked and not self.blocked.isdisjoint(actors))
            or self.owes_complete
        ):
            frame = self._frame_for_me(deliveries)
            if frame is None:
                return
        if last_seq is not None and last_seq > self.last_seq:
            self.last_seq = last_seq
        await self._write(frame)

    async def _write(self, frame: Frame) -> None:
        ws = self._daphne_protocol
        if ws is None:
            await self.base_send({"type": "websocket.send", "text": frame.text})
            return
        transport = ws.transport
        if transport is None or ws.state != ws.STATE_OPEN:
            return
        if len(transport.dataBuffer) - transport.offset + transport._tempDataLen > TRANSPORT_BACKLOG_MAX:
            await self.close_by_hub(CLOSE_TOO_FAR_BEHIND)
        elif ws.send_queue:
            ws.sendData(frame.wire)
        else:
            _write_now(transport, frame.wire)

    async def close_by_hub(self, code: int) -> None:
        if not self.closed:
            self.closed = True
            await self.close(code=code)

    async def control(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "blocks":
            self.blocked = set(payload.get("blocked", ()))
        elif kind == "revoke":
            session = payload.get("session")
            if session is None or session == self.session_key:
                await self.close_by_hub(CLOSE_FORBIDDEN)
        elif kind == "refresh":
            await self._refresh_standing()

    async def _refresh_standing(self) -> None:
        """Read the user's account and room role again. Every permission check reads
        `self.user`, so a fresh user object (no permission cache) is what takes a
        revoked power away; the viewer and the roster are told the new role."""
        if self.closed or self.room_id is None:
            return
        fresh = await database_sync_to_async(_fresh_standing)(self.user_id, self.room_id)
        if fresh is None:
            await self.close_by_hub(CLOSE_FORBIDDEN)
            return
        self.user, me = fresh
        if me == self.me:
            return
        self.me = me
        self.budget.rescale(**_budget_for(me))
        await self.send(text_data=encode({"type": "you", **me}))
        await self.hub.update_presence(self.room_id, self)

    def _frame_for_me(self, deliveries: list[Delivery]) -> Frame | None:
        """The part of `deliveries` this viewer gets: not what it already has, not what
        its blocked users said. When something was withheld, the frame says up to which
        seq the viewer has everything, so the client does not mistake the hole for loss
        and go back to the log for it."""
        mine = []
        withheld = self.owes_complete
        for d in deliveries:
            if d.seq is not None and d.seq <= self.last_seq:
                continue
            if d.actor is not None and d.actor in self.blocked:
                withheld = True
                continue
            mine.append(d.text)
        if not mine:
            # Nothing to send now; the next frame says how far this viewer is complete.
            self.owes_complete = withheld
            return None
        self.owes_complete = False
        if withheld and self.complete_seq:
            return Frame(batch_text(mine, complete_to=self.complete_seq))
        return Frame(batch_text(mine))

    async def _release(self, last_seq: int) -> None:
        """Stop holding: everything up to `last_seq` was sent, send what queued after it."""
        self.last_seq = max(self.last_seq, last_seq)
        self.complete_seq = max(self.complete_seq, last_seq)
        waiting, self.outbox = self.outbox, []
        self.holding = False
        if waiting:
            waiting.sort(key=lambda d: d.seq if d.seq is not None else MAX_ID)
            for d in waiting:
                if d.seq is not None and d.seq == self.complete_seq + 1:
                    self.complete_seq = d.seq
            frame = self._frame_for_me(waiting)
            seqs = [d.seq for d in waiting if d.seq is not None]
            if seqs:
                self.last_seq = max(self.last_seq, seqs[-1])
            if frame is not None:
                await self._write(frame)

    @functools.cached_property
    def _daphne_protocol(self):
        """The autobahn protocol behind this connection when served by daphne, else None.

        Daphne passes `send` as partial(server.handle_reply, protocol). Writing to the
        protocol directly lets a fan-out write pre-framed bytes and see how much is
        queued for a viewer that stopped reading (the bound on its memory). Under other
        servers every write goes through ASGI `send` and the outbox bound is the only one.
        """
        send = self.base_send
        # Channels' session middleware wraps `send` to save the session on accept; the
        # frames written here are plain websocket.send, which it passes through as is.
        while not isinstance(send, functools.partial) and hasattr(getattr(send, "__self__", None), "real_send"):
            send = send.__self__.real_send
        protocol = send.args[0] if isinstance(send, functools.partial) and send.args else None
        wanted = ("transport", "send_queue", "STATE_OPEN", "application_queue", "onMessage", "onMessageFrameBegin")
        if protocol is None or not all(hasattr(protocol, a) for a in wanted):
            return None
        transport = protocol.transport
        if not all(
            hasattr(transport, a)
            for a in ("dataBuffer", "offset", "_tempDataLen", "socket", "connected", "disconnecting")
        ):
            return None
        return protocol

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
            await self.close_by_hub(CLOSE_SERVER_ERROR)

    async def _answer(self, text_data: str | None) -> None:
        try:
            command = parse_client_frame(text_data)
        except ProtocolError as exc:
            command = None
            error = exc
        # Malformed frames count against the budget too: they are the cheapest flood.
        wait = self.budget.take()
        if wait is not None:
            if self.budget.flooding:
                await self.close_by_hub(CLOSE_FLOODING)
            else:
                client_id = command.client_id if command is not None else error.client_id
                await self.send(
                    text_data=error_frame(
                        "rate_limited", "Too many commands; slow down.", client_id=client_id, retry_after=wait
                    )
                )
            return
        if command is None:
            await self.send(text_data=error_frame(error.code, error.detail, client_id=error.client_id))
            return
        handler = getattr(self, f"do_{command.type}", None)
        try:
            await handler(command)
        except ChatError as exc:
            await self.send(
                text_data=error_frame(exc.code, exc.detail, client_id=command.client_id, retry_after=exc.retry_after)
            )
        except Exception:
            logger.exception("Command %s failed", command.type)
            await self.send(
                text_data=error_frame("server_error", "Something went wrong; try again.", client_id=command.client_id)
            )

    async def do_ping(self, command: Command) -> None:
        last_seq = await database_sync_to_async(selectors.room_head)(self.room_id)
        await self.send(
            text_data=encode(
                with_client_id({"type": "pong", "ts": command.args["ts"], "last_seq": last_seq}, command.client_id)
            )
        )

    async def do_send(self, command: Command) -> None:
        message = await get_writer(self.room_id).send(
            services.SendRequest(
                self.user, command.args["body"], reply_to_id=command.args["reply_to"], client_id=command.client_id
            )
        )
        await self.send(text_data=ack_frame(command.client_id, id=message.pk, seq=message.seq))

    async def do_sync(self, command: Command) -> None:
        # Commands are answered one at a time, so a connection has one replay in flight
        # at most; the budget bounds how often, the page how big.
        wait = self.sync_budget.take()
        if wait is not None:
            raise RateLimited("Too many syncs; wait a moment before the next one.", retry_after=wait)
        page = settings.CHAT_HISTORY_RESUME_MAX if self.user_id is not None else settings.CHAT_SYNC_PAGE_GUEST
        # Hold live events while replaying so that each event reaches the client once:
        # what the replay covers is dropped from the outbox when it is released.
        self.holding = True
        try:
            replay = await database_sync_to_async(selectors.room_replay)(
                self.room_id, after=command.args["after"], blocked=self.blocked, limit=page
            )
        except Exception:
            await self._release(self.last_seq)
            raise
        if replay.texts:
            await self.base_send({"type": "websocket.send", "text": batch_text(replay.texts)})
        synced = {"type": "synced", "last_seq": replay.last_seq}
        if replay.truncated:
            # The client asks for the next page; live events keep waiting until it has
            # caught up (or the outbox bound sends it back with ?after).
            synced["truncated"] = True
            await self.send(text_data=encode(with_client_id(synced, command.client_id)))
            return
        await self.send(text_data=encode(with_client_id(synced, command.client_id)))
        await self._release(replay.last_seq)

    async def _acked(self, command: Command, action, *args, **kwargs) -> None:
        """Run a service that appends a room event and ack with that event's seq."""
        event = await database_sync_to_async(action)(self.user, *args, **kwargs)
        await self.send(text_data=ack_frame(command.client_id, seq=event.seq))

    async def do_delete(self, command: Command) -> None:
        await self._acked(command, moderation.check_delete_message, self.room_id, message_id=command.args["id"])

    async def do_mute(self, command: Command) -> None:
        await self._acked(command, moderation.check_mute, self.room_id, **command.args)

    async def do_unmute(self, command: Command) -> None:
        await self._acked(command, moderation.check_unmute, self.room_id, **command.args)

    async def do_kick(self, command: Command) -> None:
        await self._acked(command, moderation.check_kick, self.room_id, **command.args)

    async def do_ban(self, command: Command) -> None:
        await self._acked(command, moderation.check_ban, self.room_id, **command.args)

    async def do_unban(self, command: Command) -> None:
        await self._acked(command, moderation.check_unban, self.room_id, **command.args)

    async def do_slow_mode(self, command: Command) -> None:
        await self._acked(command, moderation.check_set_slow_mode, self.room_id, **command.args)

    async def do_room_status(self, command: Command) -> None:
        await self._acked(command, services.check_update_room, self.room_id, **command.args)

    async def do_tip(self, command: Command) -> None:
        tip = await database_sync_to_async(services.check_send_tip)(
            self.user, self.room_id, client_id=command.client_id, **command.args
        )
        balance = await database_sync_to_async(services.balance_of)(self.user_id)
        ack = {"type": "ack", "client_id": command.client_id, "id": tip.pk, "seq": tip.seq, "balance": balance}
        await self.send(text_data=encode(ack))

    async def do_announce(self, command: Command) -> None:
        await self._acked(command, services.check_announce, self.room_id, **command.args)

    async def do_block(self, command: Command) -> None:
        self.blocked = await database_sync_to_async(moderation.check_block)(self.user, **command.args)
        await self._ack_blocks(command)

    async def do_unblock(self, command: Command) -> None:
        self.blocked = await database_sync_to_async(moderation.check_unblock)(self.user, **command.args)
        await self._ack_blocks(command)

    async def _ack_blocks(self, command: Command) -> None:
        await self.send(
            text_data=encode({"type": "ack", "client_id": command.client_id, "blocked": sorted(self.blocked)})
        )

    async def _roster_or_local(self, store, *, offset: int, limit: int) -> dict[str, Any]:
        """The room's roster, or while the presence store is unreachable what this
        process alone can see, so a viewer still gets in and reads the log."""
        try:
            return await _roster(store, self.room_id, offset=offset, limit=limit)
        except Exception:
            logger.warning("Presence store unavailable; answering with this process's viewers", exc_info=True)
            return {"count": self.hub.local_viewers(self.room_id), "team": [], "audience": [], "offset": offset}

    async def do_roster(self, command: Command) -> None:
        roster = await self._roster_or_local(get_presence(), offset=command.args["offset"], limit=command.args["limit"])
        await self.send(text_data=encode(with_client_id({"type": "roster", **roster}, command.client_id)))


async def _roster(store, room_id: int, *, offset: int, limit: int) -> dict[str, Any]:
    return {
        "count": await store.count(room_id),
        "team": await store.team(room_id),
        "audience": await store.audience(room_id, offset=offset, limit=limit),
        "offset": offset,
    }


def _parse_after(query_string: bytes) -> tuple[int | None, str | None]:
    values = parse_qs(query_string.decode("latin-1")).get("after")
    if not values:
        return None, None
    try:
        after = int(values[0])
    except ValueError:
        return None, "`after` must be a non-negative integer; showing the latest history instead."
    if not 0 <= after <= MAX_ID:
        return None, "`after` must be a non-negative integer; showing the latest history instead."
    return after, None


def _budget_for(me: dict[str, Any]) -> dict[str, float]:
    """The command budget of a viewer: the host team and staff run the room, at a multiple."""
    multiplier = settings.CHAT_TEAM_COMMAND_MULTIPLIER if is_team(me["role"]) or me.get("staff") else 1
    return {"rate": settings.CHAT_COMMANDS_PER_SECOND * multiplier, "burst": settings.CHAT_COMMANDS_BURST * multiplier}


def _fresh_standing(user_id: int, room_id: int):
    """(user, the user as the protocol shows them in the room), read anew; None if the
    account is gone or deactivated, or the room is."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    room = Room.objects.filter(pk=room_id).first()
    if user is None or room is None:
        return None
    return user, selectors.user_in_room(user, room)


def _connection_state(slug: str, user):
    try:
        room = selectors.get_room(slug)
    except ChatError:
        return None
    user_id = user.pk if user.is_authenticated else None
    banned = user_id is not None and active_ban(room.pk, user_id) is not None
    blocked = selectors.viewer_blocks(user)
    return (
        room,
        selectors.user_in_room(user, room),
        blocked,
        banned,
        active_mute(room.pk, user_id) if user_id is not None else None,
        services.balance_of(user_id),
        selectors.pinned_events(room.pk, blocked=blocked),
    )
