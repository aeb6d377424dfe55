"""Channel-layer I/O: group names, and publishing to them.

Services publish each stored room event once, as encoded JSON text, to the room's group;
the members of a room group are the hubs of the processes watching it
(rooms.delivery.hub). User controls (a user's blocks changed, their access was revoked,
their standing changed) go to the site group, which every hub joins.

Publishing never makes the database thread wait on Redis: in a server process, sync
code hands each message to the process's publisher on the event loop, which sends them
in order. Live delivery is an optimization over the room event log: what is not
published (the layer is down) viewers get from the log when they next sync.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from rooms import metrics

logger = logging.getLogger(__name__)

SITE_GROUP = "site"
# A publish that the channel layer has not taken by then is dropped (clients recover
# from the log), so a hanging Redis cannot stall delivery behind it.
PUBLISH_TIMEOUT_SECONDS = 2.0
MAX_PENDING_PUBLISHES = 10_000


def room_group(room_id: int) -> str:
    return f"room.{room_id}"


def publish_room_event(
    room_id: int,
    *,
    seq: int,
    actor_id: int | None,
    text: str,
    close_user: tuple[int, int] | None = None,
    skippable: bool = False,
    concerns: tuple[int, ...] = (),
) -> None:
    """Hand one stored room event to every server process watching the room.

    `close_user` is (user id, close code): after delivering the event, each process
    closes that user's connections to the room (kick, ban). `skippable`: a member's chat
    line, which a feed faster than a person can read may leave out; never for the users
    in `concerns` (its author, whom it mentions, whom it answers).
    """
    message: dict[str, Any] = {"type": "room.event", "room": room_id, "seq": seq, "actor": actor_id, "text": text}
    if close_user is not None:
        message["close_user"] = [int(close_user[0]), int(close_user[1])]
    if skippable:
        message["skippable"] = True
        message["concerns"] = list(concerns)
    _group_send(room_group(room_id), message)


def publish_user_control(user_id: int, kind: str, **payload: Any) -> None:
    """Tell every connection of one user, on every process, that something about them
    changed (`blocks`: their block list; `revoke`: they lost access; `refresh`: what
    they may do changed, so read their account and room role again)."""
    publish_users_control([user_id], kind, **payload)


def publish_users_control(user_ids: list[int], kind: str, **payload: Any) -> None:
    """publish_user_control for several users at once, in one message (a group of
    thousands losing a permission is one publish, not thousands)."""
    _group_send(SITE_GROUP, {"type": "user.control", "users": list(user_ids), "kind": kind, "payload": payload})


async def publish_presence(room_id: int, text: str) -> None:
    layer = get_channel_layer()
    try:
        await layer.group_send(room_group(room_id), {"type": "room.presence", "room": room_id, "text": text})
    except Exception:
        logger.warning("Could not publish presence for room %s", room_id, exc_info=True)


def _group_send(group: str, message: dict[str, Any]) -> None:
    """Publish from sync code (services run in the database thread, after commit).

    In a server process the message is handed to the publisher on the event loop and
    this returns at once: the database thread, which every connection of the process
    shares, never waits on Redis. Elsewhere (management commands, the shell) it
    publishes and waits."""
    publisher = _server_publisher
    if publisher is not None and publisher.loop.is_running():
        try:
            publisher.loop.call_soon_threadsafe(publisher.enqueue, group, message)
            return
        except RuntimeError:  # that loop closed meanwhile
            pass
    layer = get_channel_layer()
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:
        # The event is stored; viewers get it from the log when they next sync.
        logger.warning("Could not publish to %s; viewers will catch up from the log", group, exc_info=True)


class Publisher:
    """Sends, in order and off the database thread, what sync code published in a
    server process (one per event loop)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._outgoing: deque[tuple[str, dict[str, Any]]] = deque()
        self.task: asyncio.Task | None = None
        # Told each room event as it is handed over, before it goes to the channel
        # layer: the hub delivers this process's own events to its viewers at once,
        # rather than after a round trip through Redis and back (rooms.delivery.hub),
        # and whether or not the layer then takes it.
        self.on_local: Callable[[dict[str, Any]], None] | None = None

    def enqueue(self, group: str, message: dict[str, Any]) -> None:
        if self.on_local is not None and message["type"] == "room.event":
            try:
                self.on_local(message)
            except Exception:
                logger.exception("Local delivery to %s failed", group)
        if len(self._outgoing) >= MAX_PENDING_PUBLISHES:
            # The channel layer is down or hanging. The event is stored, and this
            # process's viewers have it; other processes' fill the hole from the log.
            metrics.SHED_PUBLISH.inc()
            logger.warning("Channel layer backlog full; dropping a live delivery to %s", group)
            return
        self._outgoing.append((group, message))
        if self.task is None:
            self.task = asyncio.ensure_future(self._send_pending())

    async def _send_pending(self) -> None:
        layer = get_channel_layer()
        try:
            while self._outgoing:
                for group, message in _merged(self._outgoing):
                    try:
                        await asyncio.wait_for(layer.group_send(group, message), PUBLISH_TIMEOUT_SECONDS)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        logger.warning(
                            "Could not publish to %s; viewers will catch up from the log", group, exc_info=True
                        )
        finally:
            self.task = None


def _merged(outgoing: deque[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Take everything waiting, with each group's room events in one `room.events`
    message: a burst costs one publish per room rather than one per event, so the
    publisher keeps up with what the writer stores. Order within a group is kept."""
    taken: list[tuple[str, dict[str, Any]]] = []
    batches: dict[str, dict[str, Any]] = {}
    while outgoing:
        group, message = outgoing.popleft()
        if message["type"] != "room.event":
            taken.append((group, message))
            continue
        event = [
            message["seq"],
            message["actor"],
            message["text"],
            message.get("close_user"),
            message.get("skippable", False),
            message.get("concerns", ()),
        ]
        batch = batches.get(group)
        if batch is None:
            batch = batches[group] = {"type": "room.events", "room": message["room"], "events": []}
            taken.append((group, batch))
        batch["events"].append(event)
    return taken


_publishers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# The publisher of the most recently started event loop, which in a server process is
# its only one: where sync code hands its publishes (see _group_send).
_server_publisher: Publisher | None = None


def publishes_pending() -> bool:
    """Whether this process's publisher still has events to hand to the channel layer."""
    publisher = _server_publisher
    return publisher is not None and (publisher.task is not None or bool(publisher._outgoing))


def start_publisher() -> Publisher:
    """The publisher of the running event loop, made the one sync code publishes through."""
    global _server_publisher
    loop = asyncio.get_running_loop()
    publisher = _publishers.get(loop)
    if publisher is None:
        publisher = _publishers[loop] = Publisher()
    _server_publisher = publisher
    return publisher
