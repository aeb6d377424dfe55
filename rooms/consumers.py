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
from functools import cached_property
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.http import HttpRequest
from django.utils import translation

from rooms import metrics
from rooms.connection import ViewerConnection, command_kind, rate_limited, run_command
from rooms.delivery import drain
from rooms.delivery.transport import transport_for
from rooms.protocol import Close, ProtocolError, frames, parse_after, parse_client_frame

logger = logging.getLogger(__name__)


class RoomConsumer(ViewerConnection, AsyncWebsocketConsumer):
    # The hub does this process's channel-layer I/O; a consumer needs no channel (and
    # __call__ below never asks Channels for one).
    channel_layer_alias = "none"

    async def __call__(self, scope, receive, send) -> None:
        # Channels reads a consumer's messages through await_many_dispatch, made for one
        # that also reads a channel of the channel layer: a new task and an asyncio.wait
        # for every message. A RoomConsumer has one source, the socket, and reads it in
        # turn with handling it, as await_many_dispatch does, without the task per frame
        # (every ping and send of every viewer).
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

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
        self.start_viewer(self.scope, transport_for(self.base_send))
        self.counted = False
        # The last reply on its way: the next one goes after it.
        self._last_reply: asyncio.Future | None = None
        if drain.draining():
            # A handshake that got in as the process began to drain: go elsewhere now.
            await self.accept()
            await self.close(code=Close.SERVICE_RESTART)
            return
        after, after_refused = parse_after(self.scope.get("query_string", b""))
        state = await self.read_viewer_state()
        self.transport.connecting()
        await self.accept()
        self.transport.accepted()
        metrics.WEBSOCKETS.inc()
        self.counted = True
        if state is None:
            await self.close(code=Close.NOT_FOUND)
            return
        if state.banned:
            await self.close(code=Close.FORBIDDEN)
            return
        if not await self.admit():
            await self.close(code=Close.FLOODING)
            return
        await self.join_room(state, after=after, after_refused=after_refused)

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        metrics.closed(code)
        if code is not None and self.transport.close_frame(code):
            return
        await super().close(code=code, reason=reason)

    async def disconnect(self, code: int) -> None:
        if self.counted:
            self.counted = False
            metrics.WEBSOCKETS.dec()
        await self.leave_room()

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
        await super().close_by_hub(code)

    # What the connection core calls (rooms.connection).

    async def send_text(self, text: str) -> None:
        await self.send(text_data=text)

    async def end(self, code: int) -> None:
        await self.close(code=code)

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
            metrics.command(command_kind(command), "rate_limited")
            reply = rate_limited(client_id, wait)
        elif command is None:
            metrics.command("invalid", refused.code)
            reply = frames.error(refused.code, refused.detail, client_id=refused.client_id)
        else:
            reply = await run_command(self, command)
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
