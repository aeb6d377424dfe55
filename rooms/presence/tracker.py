"""This process's part of every room's roster.

The hub tells the tracker who joins, leaves or changes; the tracker writes it to the
store, coalesces each room's roster changes over CHAT_PRESENCE_COALESCE_MS into one
`presence` delta that it publishes to the room, refreshes its connections' entries
every CHAT_PRESENCE_BEAT_SECONDS (and ages out those of processes that died), and
finishes every second what failed while the store was away.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings

from rooms import realtime
from rooms.presence.store import Change, Entry, get_presence
from rooms.protocol import frames

logger = logging.getLogger(__name__)


class _RoomDeltas:
    """One room's roster changes waiting to be published."""

    __slots__ = ("joined", "left", "updated", "changed", "scheduled")

    def __init__(self) -> None:
        self.joined: dict[str, dict] = {}
        self.left: dict[str, dict] = {}
        # Users still online whose role or staff flag changed.
        self.updated: dict[str, dict] = {}
        self.changed = False
        self.scheduled = False


class PresenceTracker:
    """`viewers_by_room` answers, when asked, this process's viewers of each room (the
    hub's feeds): whose entries the beat refreshes."""

    def __init__(self, viewers_by_room: Callable[[], dict[int, list[Any]]]) -> None:
        self._viewers_by_room = viewers_by_room
        self._deltas: dict[int, _RoomDeltas] = {}
        # Joins and leaves that failed while the store was away, retried every second.
        self._unannounced: dict[tuple[int, str], Entry] = {}
        self._unfinished_leaves: list[tuple[int, str]] = []
        self._beater: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()

    def tasks(self) -> list[asyncio.Task]:
        return [t for t in (self._beater, *self._tasks) if t is not None]

    def start(self) -> None:
        if self._beater is None:
            self._beater = asyncio.ensure_future(self._beat_loop())

    async def joined(self, room_id: int, entry: Entry) -> None:
        try:
            change = await get_presence().join(room_id, entry)
        except Exception:
            logger.warning("Presence store unavailable on join; retrying", exc_info=True)
            self._unannounced[(room_id, entry.conn_id)] = entry
            return
        self._note(room_id, change)

    async def left(self, room_id: int, conn_id: str) -> None:
        if self._unannounced.pop((room_id, conn_id), None) is not None:
            return
        try:
            change = await get_presence().leave(room_id, conn_id)
        except Exception:
            # Retried every second, so the roster does not count this viewer until the
            # entry would age out.
            logger.warning("Presence store unavailable on leave; retrying", exc_info=True)
            self._unfinished_leaves.append((room_id, conn_id))
            return
        self._note(room_id, change)

    async def updated(self, room_id: int, entry: Entry) -> None:
        """Show a connected viewer as `entry` says now (its user's role changed)."""
        if (room_id, entry.conn_id) in self._unannounced:
            self._unannounced[(room_id, entry.conn_id)] = entry
            return
        try:
            change = await get_presence().update(room_id, entry)
        except Exception:
            # The beat does not rewrite a known entry: the roster shows the old role until
            # the user reconnects. Their powers changed already.
            logger.warning("Presence store unavailable; a role change is not shown in the roster", exc_info=True)
            return
        self._note(room_id, change)

    # Deltas, coalesced per room before they are published.

    def _note(self, room_id: int, change: Change) -> None:
        if change.joined is None and change.left is None and change.changed is None:
            return
        deltas = self._deltas.get(room_id)
        if deltas is None:
            deltas = self._deltas[room_id] = _RoomDeltas()
        # Even a join and a leave that cancel out here must be published: another
        # process may already have announced a count that included this viewer.
        deltas.changed = True
        if change.changed is not None:
            key = _presence_key(change.changed)
            if key is not None:
                deltas.updated[key] = change.changed
        elif change.joined is not None:
            key = _presence_key(change.joined)
            if key is not None and deltas.left.pop(key, None) is None:
                deltas.joined[key] = change.joined
        else:
            key = _presence_key(change.left)
            if key is not None and deltas.joined.pop(key, None) is None:
                deltas.left[key] = change.left
        if not deltas.scheduled:
            deltas.scheduled = True
            asyncio.get_running_loop().call_later(
                settings.CHAT_PRESENCE_COALESCE_MS / 1000, self._spawn, self._publish(room_id)
            )

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, room_id: int) -> None:
        deltas = self._deltas.pop(room_id, None)
        if deltas is None or not deltas.changed:
            return
        store = get_presence()
        try:
            count = await store.count(room_id)
            team = await store.team(room_id)
        except Exception:
            logger.warning("Presence store unavailable; skipping a roster delta", exc_info=True)
            return
        text = frames.presence(
            count=count,
            joined=list(deltas.joined.values()),
            left=list(deltas.left.values()),
            team=team,
            changed=list(deltas.updated.values()),
        )
        await realtime.publish_presence(room_id, text)

    # Retries and beats.

    async def _retry(self) -> None:
        """Finish the joins and leaves that failed while the presence store was away."""
        store = get_presence()
        leaves, self._unfinished_leaves = self._unfinished_leaves, []
        for index, (room_id, conn_id) in enumerate(leaves):
            try:
                self._note(room_id, await store.leave(room_id, conn_id))
            except Exception:
                self._unfinished_leaves.extend(leaves[index:])
                return
        for key, entry in list(self._unannounced.items()):
            try:
                change = await store.join(key[0], entry)
            except Exception:
                return
            if self._unannounced.pop(key, None) is not None:
                self._note(key[0], change)
            else:
                # The viewer left while this join was on its way: take it back out.
                self._unfinished_leaves.append(key)

    async def _beat_loop(self) -> None:
        """Retry failed presence writes every second; every CHAT_PRESENCE_BEAT_SECONDS,
        refresh this process's entries and age out those of dead processes. A beat that
        failed is tried again the next second: it is what puts this process's viewers
        back after a Redis restart, and the first call after one may well fail."""
        # Spread the processes' beats so they do not all sweep at the same moment.
        next_beat = time.monotonic() + settings.CHAT_PRESENCE_BEAT_SECONDS * (0.5 + _jitter())
        while True:
            await asyncio.sleep(1)
            await self._retry()
            if time.monotonic() >= next_beat:
                beaten = await self._beat()
                next_beat = time.monotonic() + (settings.CHAT_PRESENCE_BEAT_SECONDS if beaten else 0)

    async def _beat(self) -> bool:
        """Refresh and sweep; False if any of it failed."""
        store = get_presence()
        rooms = self._viewers_by_room()
        holders: dict[str, list[str]] = {}
        for viewers in rooms.values():
            for viewer in viewers:
                for key in viewer.limit_keys:
                    holders.setdefault(key, []).append(viewer.conn_id)
        beaten = True
        try:
            await store.refresh(holders)
        except asyncio.CancelledError:
            raise
        except Exception:
            beaten = False
            logger.warning("Connection-limit refresh failed", exc_info=True)
        for room_id, viewers in rooms.items():
            try:
                await store.beat(room_id, [v.presence_entry() for v in viewers])
                for change in await store.sweep(room_id):
                    self._note(room_id, change)
            except asyncio.CancelledError:
                raise
            except Exception:
                beaten = False
                logger.warning("Presence beat for room %s failed", room_id, exc_info=True)
        return beaten


def _presence_key(user: dict) -> str | None:
    user_id = user.get("id")
    return None if user_id is None else f"u{user_id}"


def _jitter() -> float:
    return (uuid.uuid4().int % 1000) / 1000
