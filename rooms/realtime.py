"""Channel-layer I/O and the per-process room hub: the live delivery path.

Services publish each room event once, as already-encoded JSON text, to the room's
group. The members of a room group are not consumers but one hub per server process:
a process subscribes to a room once, however many of its connections watch it, and the
hub writes the same text to every local viewer. Events that arrive within a short
window of the previous flush are coalesced into one `batch` frame, so a busy room costs
each viewer a few frames a second while a quiet room's events go out at once.

Live delivery is an optimization over the room event log. Whatever this path drops
(a layer restart, a viewer too slow to keep up) the client fills from the log with
`sync` or `?after=N`, which is why nothing here retries.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from rooms import presence as presence_store
from rooms.presence import Entry
from rooms.protocol import batch_text, encode

logger = logging.getLogger(__name__)

# How long a room feed waits for a missing seq (published out of order by two server
# processes) before it delivers what it has; the client then fills the gap from the log.
GAP_WAIT_SECONDS = 0.3
# A publish that the channel layer has not taken by then is dropped (clients recover
# from the log), so a hanging Redis cannot stall delivery behind it.
PUBLISH_TIMEOUT_SECONDS = 2.0
MAX_PENDING_PUBLISHES = 10_000


def room_group(room_id: int) -> str:
    return f"room.{room_id}"


SITE_GROUP = "site"


class Frame:
    """One outgoing text frame, shared by every viewer it goes to. Under daphne the
    WebSocket framing is done once too (`wire`): each viewer's write is then a single
    transport write of the same bytes."""

    __slots__ = ("text", "_wire")

    def __init__(self, text: str) -> None:
        self.text = text
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            from autobahn.websocket.protocol import PreparedMessage

            # Server-to-client frames are unmasked, so the bytes are the same for everyone.
            self._wire = PreparedMessage(self.text.encode(), False, False, True).payloadHybi
        return self._wire


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event on its way to viewers. `seq` is None for connection events (presence)."""

    seq: int | None
    actor: int | None
    text: str


# Publishing (from services, which run in sync code after commit).


def publish_room_event(
    room_id: int, *, seq: int, actor_id: int | None, text: str, close_user: tuple[int, int] | None = None
) -> None:
    """Hand one stored room event to every server process watching the room.

    `close_user` is (user id, close code): after delivering the event, each process
    closes that user's connections to the room (kick, ban).
    """
    message: dict[str, Any] = {"type": "room.event", "room": room_id, "seq": seq, "actor": actor_id, "text": text}
    if close_user is not None:
        message["close_user"] = list(close_user)
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


def _group_send(group: str, message: dict[str, Any]) -> None:
    """Publish from sync code (services run in the database thread, after commit).

    In a server process the message is handed to the hub's publisher on the event loop
    and this returns at once: the database thread, which every connection of the
    process shares, never waits on Redis. Elsewhere (management commands, the shell)
    it publishes and waits."""
    hub = _server_hub
    if hub is not None and hub.loop.is_running():
        try:
            hub.loop.call_soon_threadsafe(hub.enqueue_publish, group, message)
            return
        except RuntimeError:  # that loop closed meanwhile
            pass
    layer = get_channel_layer()
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:
        # The event is stored; viewers get it from the log when they next sync.
        logger.warning("Could not publish to %s; viewers will catch up from the log", group, exc_info=True)


async def publish_presence(room_id: int, text: str) -> None:
    layer = get_channel_layer()
    try:
        await layer.group_send(room_group(room_id), {"type": "room.presence", "room": room_id, "text": text})
    except Exception:
        logger.warning("Could not publish presence for room %s", room_id, exc_info=True)


# The hub.


class Viewer(Protocol):
    """What the hub needs from a connection (rooms.consumers.RoomConsumer)."""

    conn_id: str
    user_id: int | None
    # What this connection counts against (per-user and per-address connection limits).
    limit_keys: list[str]

    def presence_entry(self) -> Entry: ...

    async def offer(
        self,
        deliveries: list[Delivery],
        frame: Frame,
        actors: set[int],
        first_seq: int | None,
        last_seq: int | None,
        dense: bool,
    ) -> None:
        """Write `frame` (all of `deliveries`, in seq order) or what of it is for this
        viewer. `dense`: the deliveries' seqs run from first_seq to last_seq without a hole."""

    async def close_by_hub(self, code: int) -> None: ...

    async def control(self, kind: str, payload: dict[str, Any]) -> None: ...


class RoomFeed:
    """One room as seen by one process: its local viewers and the events on their way."""

    def __init__(self, hub: Hub, room_id: int) -> None:
        self.hub = hub
        self.room_id = room_id
        self.viewers: set[Viewer] = set()
        self.pending: list[Delivery] = []
        # Events that arrived ahead of a missing seq, waiting up to GAP_WAIT_SECONDS.
        self.held: dict[int, Delivery] = {}
        self.next_seq: int | None = None
        self.closes: list[tuple[int, int]] = []
        self.last_flush = 0.0
        self.window = settings.CHAT_BATCH_WINDOW_MS / 1000
        self.flush_scheduled = False
        self.gap_timer: asyncio.TimerHandle | None = None
        self.presence_joined: dict[str, dict] = {}
        self.presence_left: dict[str, dict] = {}
        # Users still online whose role or staff flag changed.
        self.presence_updated: dict[str, dict] = {}
        self.presence_changed = False
        self.subscribed = False
        # Viewers whose presence entry could not be written yet.
        self.unannounced: set[Viewer] = set()
        self.presence_scheduled = False

    # Incoming events.

    def push_event(self, delivery: Delivery, close_user: tuple[int, int] | None) -> None:
        seq = delivery.seq
        if close_user is not None:
            self.closes.append(close_user)
        if self.next_seq is None or seq <= self.next_seq:
            # In order, or late: a late one goes out as is and viewers that already saw
            # a higher seq drop it, or it was already delivered to them after a gap.
            self.pending.append(delivery)
            if self.next_seq is None or seq == self.next_seq:
                self.next_seq = seq + 1
                self._release_held()
        else:
            self.held[seq] = delivery
            if self.gap_timer is None:
                self.gap_timer = asyncio.get_running_loop().call_later(GAP_WAIT_SECONDS, self._give_up_gap)
        self.schedule_flush()

    def push_connection_event(self, text: str) -> None:
        self.pending.append(Delivery(None, None, text))
        self.schedule_flush()

    def _release_held(self) -> None:
        while self.next_seq in self.held:
            self.pending.append(self.held.pop(self.next_seq))
            self.next_seq += 1
        if not self.held and self.gap_timer is not None:
            self.gap_timer.cancel()
            self.gap_timer = None

    def _give_up_gap(self) -> None:
        self.gap_timer = None
        if self.held:
            self.next_seq = min(self.held)
            self._release_held()
            self.schedule_flush()

    # Delivery.

    def schedule_flush(self) -> None:
        if self.flush_scheduled:
            return
        self.flush_scheduled = True
        delay = self.last_flush + self.window - time.monotonic()
        loop = asyncio.get_running_loop()
        if delay <= 0:
            # A quiet room: nothing went out within the window, so this goes out at once.
            loop.call_soon(self.hub.spawn, self.flush())
        else:
            loop.call_later(delay, self.hub.spawn, self.flush())

    async def flush(self) -> None:
        self.flush_scheduled = False
        self.last_flush = time.monotonic()
        started = time.perf_counter()
        try:
            await self._flush()
        finally:
            self.window = batch_window(time.perf_counter() - started)

    async def _flush(self) -> None:
        deliveries, self.pending = self.pending, []
        closes, self.closes = self.closes, []
        if deliveries:
            if len(deliveries) > 1:
                deliveries.sort(key=_seq_order)
            frame = Frame(batch_text([d.text for d in deliveries]))
            actors = {d.actor for d in deliveries if d.actor is not None}
            seqs = [d.seq for d in deliveries if d.seq is not None]
            first_seq, last_seq = (seqs[0], seqs[-1]) if seqs else (None, None)
            # No hole inside this flush (seqs are sorted and unique).
            dense = bool(seqs) and last_seq - first_seq + 1 == len(seqs)
            for viewer in list(self.viewers):
                try:
                    await viewer.offer(deliveries, frame, actors, first_seq, last_seq, dense)
                except Exception:
                    logger.exception("Delivery to %s failed", viewer.conn_id)
        for user_id, code in closes:
            for viewer in [v for v in self.viewers if v.user_id == user_id]:
                await viewer.close_by_hub(code)

    # Presence deltas: coalesced per process before they are published.

    def note_presence(self, change: presence_store.Change) -> None:
        if change.joined is None and change.left is None and change.changed is None:
            return
        # Even a join and a leave that cancel out here must be published: another
        # process may already have announced a count that included this viewer.
        self.presence_changed = True
        if change.changed is not None:
            key = _presence_key(change.changed)
            if key is not None:
                self.presence_updated[key] = change.changed
        elif change.joined is not None:
            key = _presence_key(change.joined)
            if key is not None and self.presence_left.pop(key, None) is None:
                self.presence_joined[key] = change.joined
        else:
            key = _presence_key(change.left)
            if key is not None and self.presence_joined.pop(key, None) is None:
                self.presence_left[key] = change.left
        if not self.presence_scheduled:
            self.presence_scheduled = True
            asyncio.get_running_loop().call_later(
                settings.CHAT_PRESENCE_COALESCE_MS / 1000, self.hub.spawn, self.publish_presence()
            )

    async def publish_presence(self) -> None:
        self.presence_scheduled = False
        joined, self.presence_joined = list(self.presence_joined.values()), {}
        left, self.presence_left = list(self.presence_left.values()), {}
        updated, self.presence_updated = list(self.presence_updated.values()), {}
        changed, self.presence_changed = self.presence_changed, False
        if not changed:
            return
        store = presence_store.get_presence()
        try:
            count = await store.count(self.room_id)
            team = await store.team(self.room_id)
        except Exception:
            logger.warning("Presence store unavailable; skipping a roster delta", exc_info=True)
            return
        delta = {"type": "presence", "count": count, "joined": joined, "left": left, "team": team}
        if updated:
            delta["changed"] = updated
        text = encode(delta)
        await publish_presence(self.room_id, text)


def batch_window(flush_seconds: float) -> float:
    """A room's batch window after a flush that took `flush_seconds` to write: wide
    enough that its flushes take at most CHAT_BATCH_FANOUT_PERCENT of the time, within
    [CHAT_BATCH_WINDOW_MS, CHAT_BATCH_WINDOW_MAX_MS]. A room of a few viewers keeps the
    shortest window; a room of thousands batches more events per write instead of
    spending the whole process on writes (each write costs about the same whatever its
    size). A quiet room is not slowed by it: an event that finds no flush within the
    window goes out at once."""
    wanted = flush_seconds * 100 / settings.CHAT_BATCH_FANOUT_PERCENT
    return min(max(wanted, settings.CHAT_BATCH_WINDOW_MS / 1000), settings.CHAT_BATCH_WINDOW_MAX_MS / 1000)


def _seq_order(delivery: Delivery) -> int:
    # Connection events keep their place relative to nothing in particular; put them last.
    return delivery.seq if delivery.seq is not None else 2**63


def _presence_key(user: dict) -> str | None:
    user_id = user.get("id")
    return None if user_id is None else f"u{user_id}"


class Hub:
    """The live delivery path of one server process (one per event loop)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.feeds: dict[int, RoomFeed] = {}
        self.channel: str | None = None
        self._receiver: asyncio.Task | None = None
        self._beater: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._lock = asyncio.Lock()
        self._outgoing: deque[tuple[str, dict[str, Any]]] = deque()
        self._unfinished_leaves: list[tuple[RoomFeed, str]] = []
        self._publishing = False

    def spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Publishing, in order, off the database thread.

    def enqueue_publish(self, group: str, message: dict[str, Any]) -> None:
        if len(self._outgoing) >= MAX_PENDING_PUBLISHES:
            # The channel layer is down or hanging. The event is stored; viewers fill
            # the hole from the log (their next frame's seq, or their next ping).
            logger.warning("Channel layer backlog full; dropping a live delivery to %s", group)
            return
        self._outgoing.append((group, message))
        if not self._publishing:
            self._publishing = True
            self.spawn(self._publish_pending())

    async def _publish_pending(self) -> None:
        layer = get_channel_layer()
        try:
            while self._outgoing:
                group, message = self._outgoing.popleft()
                try:
                    await asyncio.wait_for(layer.group_send(group, message), PUBLISH_TIMEOUT_SECONDS)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.warning("Could not publish to %s; viewers will catch up from the log", group, exc_info=True)
        finally:
            self._publishing = False

    # Subscriptions.

    async def _start(self) -> None:
        if self._beater is None:
            self._beater = asyncio.ensure_future(self._beat_loop())
        if self.channel is None:
            layer = get_channel_layer()
            channel = await layer.new_channel(prefix="hub.")
            await layer.group_add(SITE_GROUP, channel)
            self.channel = channel
            self._receiver = asyncio.ensure_future(self._receive_loop())

    async def _subscribe(self, feed: RoomFeed) -> None:
        """Subscribe this process to the room. If the channel layer is down, the viewers
        still get their welcome from the log, and the beat loop tries again."""
        try:
            await self._start()
            await get_channel_layer().group_add(room_group(feed.room_id), self.channel)
            feed.subscribed = True
        except Exception:
            logger.warning("Could not subscribe to room %s; retrying", feed.room_id, exc_info=True)

    async def join(self, room_id: int, viewer: Viewer) -> None:
        """Start delivering the room's events to `viewer` and count it as present."""
        async with self._lock:
            feed = self.feeds.get(room_id)
            if feed is None:
                feed = self.feeds[room_id] = RoomFeed(self, room_id)
            feed.viewers.add(viewer)
            if not feed.subscribed:
                await self._subscribe(feed)
        await self._presence_join(feed, viewer)

    async def leave(self, room_id: int, viewer: Viewer) -> None:
        feed = self.feeds.get(room_id)
        if feed is None or viewer not in feed.viewers:
            return
        feed.viewers.discard(viewer)
        try:
            change = await presence_store.get_presence().leave(room_id, viewer.conn_id)
            feed.note_presence(change)
        except Exception:
            # Retried every second, so the roster does not count this viewer until the
            # entry would age out.
            logger.warning("Presence store unavailable on leave; retrying", exc_info=True)
            self._unfinished_leaves.append((feed, viewer.conn_id))
        async with self._lock:
            if not feed.viewers and self.feeds.get(room_id) is feed:
                del self.feeds[room_id]
                if feed.subscribed:
                    try:
                        await get_channel_layer().group_discard(room_group(room_id), self.channel)
                    except Exception:
                        logger.warning("Could not unsubscribe from room %s", room_id, exc_info=True)

    async def update_presence(self, room_id: int, viewer: Viewer) -> None:
        """Show `viewer` in the roster as it is now (its user's role changed)."""
        feed = self.feeds.get(room_id)
        if feed is None or viewer not in feed.viewers:
            return
        try:
            change = await presence_store.get_presence().update(room_id, viewer.presence_entry())
        except Exception:
            # The next beat does not rewrite a known entry; the roster shows the old role
            # until the user reconnects. Their powers changed already.
            logger.warning("Presence store unavailable; a role change is not shown in the roster", exc_info=True)
            return
        feed.note_presence(change)

    def local_viewers(self, room_id: int) -> int:
        feed = self.feeds.get(room_id)
        return len(feed.viewers) if feed else 0

    async def _presence_join(self, feed: RoomFeed, viewer: Viewer) -> None:
        try:
            change = await presence_store.get_presence().join(feed.room_id, viewer.presence_entry())
        except Exception:
            logger.warning("Presence store unavailable on join; retrying", exc_info=True)
            feed.unannounced.add(viewer)
            return
        feed.note_presence(change)

    async def _retry_presence(self) -> None:
        """Finish the joins and leaves that failed while the presence store was away."""
        store = presence_store.get_presence()
        leaves, self._unfinished_leaves = self._unfinished_leaves, []
        for index, (feed, conn_id) in enumerate(leaves):
            try:
                feed.note_presence(await store.leave(feed.room_id, conn_id))
            except Exception:
                self._unfinished_leaves.extend(leaves[index:])
                return
        for feed in list(self.feeds.values()):
            for viewer in list(feed.unannounced):
                if viewer not in feed.viewers:
                    feed.unannounced.discard(viewer)
                    continue
                try:
                    feed.note_presence(await store.join(feed.room_id, viewer.presence_entry()))
                except Exception:
                    return
                feed.unannounced.discard(viewer)

    async def _receive_loop(self) -> None:
        layer = get_channel_layer()
        while True:
            try:
                message = await layer.receive(self.channel)
                self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Hub receive failed; retrying")
                await asyncio.sleep(0.5)

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") == "user.control":
            self.spawn(self._control_users(set(message["users"]), message["kind"], message.get("payload") or {}))
            return
        feed = self.feeds.get(message.get("room"))
        if feed is None:
            return
        kind = message.get("type")
        if kind == "room.event":
            close_user = message.get("close_user")
            feed.push_event(
                Delivery(message["seq"], message.get("actor"), message["text"]),
                tuple(close_user) if close_user else None,
            )
        elif kind == "room.presence":
            feed.push_connection_event(message["text"])

    async def _control_users(self, user_ids: set[int], kind: str, payload: dict[str, Any]) -> None:
        for feed in list(self.feeds.values()):
            for viewer in [v for v in feed.viewers if v.user_id in user_ids]:
                try:
                    await viewer.control(kind, payload)
                except Exception:
                    logger.exception("Control %s for %s failed", kind, viewer.conn_id)

    async def _beat_loop(self) -> None:
        """Retry failed subscriptions and presence writes every second; every CHAT_PRESENCE_BEAT_SECONDS,
        refresh this process's presence entries and age out those of dead processes."""
        # Spread the processes' beats so they do not all sweep at the same moment.
        next_beat = time.monotonic() + settings.CHAT_PRESENCE_BEAT_SECONDS * (0.5 + _jitter())
        while True:
            await asyncio.sleep(1)
            async with self._lock:
                for feed in list(self.feeds.values()):
                    if not feed.subscribed:
                        await self._subscribe(feed)
            await self._retry_presence()
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + settings.CHAT_PRESENCE_BEAT_SECONDS
                await self._beat()

    async def _beat(self) -> None:
        store = presence_store.get_presence()
        holders: dict[str, list[str]] = {}
        for feed in list(self.feeds.values()):
            for viewer in list(feed.viewers):
                for key in viewer.limit_keys:
                    holders.setdefault(key, []).append(viewer.conn_id)
        try:
            await store.refresh(holders)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("Connection-limit refresh failed", exc_info=True)
        for room_id, feed in list(self.feeds.items()):
            try:
                await store.beat(room_id, [v.presence_entry() for v in list(feed.viewers)])
                for change in await store.sweep(room_id):
                    feed.note_presence(change)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("Presence beat for room %s failed", room_id, exc_info=True)


def _jitter() -> float:
    return (uuid.uuid4().int % 1000) / 1000


_hubs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# The hub of the most recently started event loop, which in a server process is its
# only one: where sync code hands its publishes (see _group_send).
_server_hub: Hub | None = None


def get_hub() -> Hub:
    """The hub of the running event loop: one per server process in production."""
    global _server_hub
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
        _server_hub = hub
    return hub


def new_conn_id() -> str:
    return uuid.uuid4().hex
