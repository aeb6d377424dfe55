"""The room's own commands over the socket: each takes the connection and the parsed
command and returns its one reply frame (None when it sent the reply itself).
Moderation's commands come through rooms.extensions."""

from __future__ import annotations

import asyncio
import logging
import time

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from rooms import metrics, selectors, services
from rooms.dbpaths import catch_up_gate, reads, writes
from rooms.delivery import welcome
from rooms.errors import Busy, ChatError, RateLimited
from rooms.permissions import is_team
from rooms.protocol import Command, batch_text, frames
from rooms.writer import get_writer

logger = logging.getLogger(__name__)


async def ping(conn, command: Command) -> str:
    last_seq = await conn.hub.heads.get(conn.room_id)
    return frames.pong(ts=command.args["ts"], last_seq=last_seq, client_id=command.client_id)


# Sends of one connection waiting to be stored at once; past this a member's next send is
# answered busy (the writer refuses the rest of what it cannot store in time anyway).
SENDS_IN_FLIGHT_MAX = 8


async def send(conn, command: Command) -> asyncio.Task:
    """Hand the line to the room's writer and go on reading the connection: the ack (or
    error) follows when it is stored, in its turn among the connection's replies.
    Waiting for it here would leave the connection's next frames queued unread behind
    every write, where no admission sees them."""
    request = services.SendRequest(
        conn.user, command.args["body"], reply_to_id=command.args["reply_to"], client_id=command.client_id
    )
    # The host team's and staff's lines go first and are never refused as busy.
    priority = is_team(conn.me["role"]) or bool(conn.me.get("staff"))
    if not priority and conn.sends_in_flight >= SENDS_IN_FLIGHT_MAX:
        metrics.SHED_SENDS_IN_FLIGHT.inc()
        raise Busy(_("You have messages still being sent; wait for them first."), retry_after=1.0)
    conn.sends_in_flight += 1
    return conn.spawn(_store(conn, request, priority=priority, client_id=command.client_id))


async def _store(conn, request: services.SendRequest, *, priority: bool, client_id: str | None) -> str:
    started = time.perf_counter()
    try:
        message = await get_writer(conn.room_id).send(request, priority=priority)
        reply = frames.ack(client_id, id=message.pk, seq=message.seq)
        metrics.SEND_ACK_SECONDS.observe(time.perf_counter() - started)
        metrics.command("send", "ok")
    except ChatError as exc:
        metrics.command("send", exc.code)
        reply = frames.error(exc.code, exc.detail, client_id=client_id, retry_after=exc.retry_after)
    except Exception:
        logger.exception("Storing a message failed")
        metrics.command("send", "server_error")
        reply = frames.error("server_error", _("Something went wrong; try again."), client_id=client_id)
    finally:
        conn.sends_in_flight -= 1
    return reply


async def sync(conn, command: Command) -> str | None:
    # Commands are answered one at a time, so a connection has one replay in flight
    # at most; the budget bounds how often, the page how big.
    wait = conn.sync_budget.take()
    if wait is not None:
        metrics.SHED_SYNC.inc()
        raise RateLimited(_("Too many syncs; wait a moment before the next one."), retry_after=wait)
    page = settings.CHAT_HISTORY_RESUME_MAX if conn.user_id is not None else settings.CHAT_SYNC_PAGE_GUEST
    # Hold live events while replaying so that each event reaches the client once:
    # what the replay covers is dropped from the outbox when it is released.
    conn.stream.hold()
    async with catch_up_gate():
        try:
            replay = await reads(selectors.room_replay)(
                conn.room_id, after=command.args["after"], blocked=conn.stream.blocked, limit=page
            )
        except Exception:
            await conn.write_frame(conn.stream.release(conn.stream.last_seq))
            raise
        if replay.texts:
            await conn.base_send({"type": "websocket.send", "text": batch_text(replay.texts)})
    synced = frames.synced(
        last_seq=replay.last_seq, truncated=replay.truncated, client_id=command.client_id, pruned=replay.pruned
    )
    if not replay.truncated:
        # Before the live events that waited: they come after the replay's end.
        await conn.send(text_data=synced)
        await conn.write_frame(conn.stream.release(replay.last_seq))
        return None
    # The client asks for the next page; live events keep waiting until it has
    # caught up (or the outbox bound sends it back with ?after).
    return synced


async def roster(conn, command: Command) -> str:
    roster = await welcome.roster_or_local(
        conn.room_id,
        offset=command.args["offset"],
        limit=command.args["limit"],
        local_viewers=conn.hub.local_viewers(conn.room_id),
    )
    return frames.roster(roster, client_id=command.client_id)


async def tip(conn, command: Command) -> str:
    tip = await writes(services.check_send_tip)(
        conn.user, room_id=conn.room_id, client_id=command.client_id, **command.args
    )
    balance = await writes(services.balance_of)(conn.user_id)
    return frames.ack(command.client_id, id=tip.pk, seq=tip.seq, balance=balance)


async def room_status(conn, command: Command) -> str:
    event = await writes(services.check_update_room)(conn.user, room_id=conn.room_id, **command.args)
    return frames.ack(command.client_id, seq=event.seq)


async def announce(conn, command: Command) -> str:
    event = await writes(services.check_announce)(conn.user, room_id=conn.room_id, **command.args)
    return frames.ack(command.client_id, seq=event.seq)


COMMANDS = {
    "ping": ping,
    "send": send,
    "sync": sync,
    "roster": roster,
    "tip": tip,
    "room_status": room_status,
    "announce": announce,
}
