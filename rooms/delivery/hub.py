"""The hub: one per server process, the members of every room group it watches.

Services publish each room event once, as encoded JSON text, to the room's group. The
members of a room group are not consumers but one hub per process: a process subscribes
to a room once, however many of its connections watch it, and the hub writes the same
frame to every local viewer. Events that arrive within a short window of the previous
flush are coalesced into one `batch` frame (see batch_window), so a busy room costs
each viewer a few frames a second while a quiet room's events go out at once.

Live delivery is an optimization over the room event log. Whatever this path drops (a
layer restart, a viewer too slow to keep up) the client fills from the log with `sync`
or `?after=N`, which is why nothing here retries a delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections import deque
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any, Protocol

from channels.layers import get_channel_layer
from django.conf import settings

from rooms import metrics, realtime, selectors
from rooms.dbpaths import catch_up_gate, reads
from rooms.delivery import lag, welcome
from rooms.delivery.shared_reads import SharedReads
from rooms.delivery.stream import Delivery, Frame, Thinned
from rooms.errors import ChatError
from rooms.presence import Entry, PresenceTracker
from rooms.protocol import batch_text

logger = logging.getLogger(__name__)

# How many people a welcome's roster lists (the client asks for more with `roster`).
ROSTER_PAGE = 50
ROSTER_MAX_AGE_SECONDS = 1.0
# How long a room feed waits for a missing seq (published out of order by two server
# processes) before it delivers what it has; the client then fills the gap from the log.
GAP_WAIT_SECONDS = 0.3
# Viewers written to between two turns of the event loop in a flush (a few milliseconds).
FLUSH_SLICE = 500
# A room with more local viewers than this is written to a group of them at a time (see
# RoomFeed).
FEED_GROUP_VIEWERS = 2000
# A flush that carries nothing but presence deltas (who came and went, the count) may
# take at most this share of the process: during a join storm, deltas reach a big
# room's viewers in fewer, larger frames, and the process's time goes to the joins.
PRESENCE_FANOUT_PERCENT = 5
# How many of this process's own events a room feed remembers until their echo from the
# channel layer comes back (see RoomFeed.push_event).
LOCAL_ECHOES_MAX = 10_000


class Viewer(Protocol):
    """What the hub needs from a connection (rooms.consumers.RoomConsumer)."""

    conn_id: str
    user_id: int | None
    # What this connection counts against (per-user and per-address connection limits).
    limit_keys: list[str]

    def presence_entry(self) -> Entry: ...

    def offer(
        self,
        deliveries: list[Delivery],
        frame: Frame,
        actors: set[int],
        first_seq: int | None,
        last_seq: int | None,
        dense: bool,
        thinned: Thinned | None,
    ) -> Awaitable[None] | None:
        """Write `frame` (all of `deliveries`, in seq order) or what of it is for this
        viewer. `dense`: the deliveries' seqs run from first_seq to last_seq without a hole.
        `thinned`: what the room's readable feed keeps of them, when it left some out.
        What is left to await (a write that could not be made at once, a close), if
        anything."""

    async def close_by_hub(self, code: int) -> None: ...

    async def control(self, kind: str, payload: dict[str, Any]) -> None: ...


class _Group:
    """Viewers of a room written to together, and the events on their way to them."""

    __slots__ = ("viewers", "pending", "closes", "last_flush", "cost")

    def __init__(self) -> None:
        self.viewers: set[Viewer] = set()
        self.pending: list[Delivery] = []
        self.closes: list[tuple[int, int]] = []
        self.last_flush = 0.0
        # The CPU time its latest flush took.
        self.cost = 0.0


class RoomFeed:
    """One room as seen by one process: its local viewers and the events on their way.

    A room of thousands of viewers is written to a group of FEED_GROUP_VIEWERS at a time,
    each group with its own events on their way, the groups' flushes spread evenly over
    the room's window. Each viewer still gets a frame at most once per window, and the
    fan-out costs the same; but an event waits for the next group's turn, a fraction of
    the window, rather than for the whole room to be written before the next flush can
    start (170 ms at 10,000 viewers)."""

    def __init__(self, hub: Hub, room_id: int) -> None:
        self.hub = hub
        self.room_id = room_id
        self.groups: list[_Group] = []
        # Every local viewer of the room, and its group.
        self._group_of: dict[Viewer, _Group] = {}
        # Events that arrived ahead of a missing seq, by seq, each with when it arrived: it
        # waits up to GAP_WAIT_SECONDS from then.
        self.held: dict[int, tuple[Delivery, float]] = {}
        self.next_seq: int | None = None
        # Seqs of this process's own events, delivered as they were published, whose
        # echo from the channel layer has not come back yet (oldest first).
        self.local_seqs: dict[int, None] = {}
        # When the latest flush (of any group) started, and the room's window: how long
        # after a group's flush its next may start.
        self.last_flush = 0.0
        self.window = 0.0
        # How long after a group's flush one with only presence deltas may start.
        self.presence_window = 0.0
        self.flush_scheduled = False
        # The timer of a flush scheduled for later (None while one runs or is due now).
        self.flush_timer: asyncio.TimerHandle | None = None
        self.gap_timer: asyncio.TimerHandle | None = None
        self.subscribed = False
        # The readable feed: member lines a viewer may still take this second.
        self.readable = float(settings.CHAT_READABLE_MESSAGES_PER_SECOND)
        self.readable_at = time.monotonic()
        # The room's welcome snapshot, kept current with the events taken in; None until
        # a viewer needs it, and after an event it cannot follow.
        self.snapshot: welcome.RoomSnapshot | None = None
        self._snapshot_read: asyncio.Future | None = None
        # The latest events taken in, to bring a snapshot read meanwhile up to date.
        self.recent: deque[tuple[int, str]] = deque(maxlen=64)
        # The roster's first page as welcomes show it, read once per presence delta:
        # every delta since it was read reaches the viewers joining now. At most
        # ROSTER_MAX_AGE_SECONDS old all the same, in case deltas stop reaching this
        # process (a Redis restart drops its subscriptions until they are renewed).
        self.roster: dict[str, Any] | None = None
        self.roster_at = 0.0
        # Local joins written to the presence store so far, and how many of them the
        # roster (and the read in flight) were read after: a welcome's roster counts
        # its viewer.
        self.joins = 0
        self.roster_joins = 0
        self._roster_read: asyncio.Future | None = None
        self._roster_read_joins = 0

    # Viewers.

    @property
    def viewers(self):
        """The room's local viewers (a live view: copy it to iterate across awaits)."""
        return self._group_of.keys()

    def add_viewer(self, viewer: Viewer) -> None:
        """From now on `viewer` is offered the room's events (it holds them until its welcome)."""
        group = min(self.groups, key=lambda g: len(g.viewers), default=None)
        if group is None or len(group.viewers) >= FEED_GROUP_VIEWERS:
            # A group starts with no events on their way: its viewers are new, and their
            # welcomes hold everything taken in so far. A kick or ban the other groups
            # have not acted on yet applies to its viewers too (one may be the user's).
            group = _Group()
            group.closes = list(dict.fromkeys(close for g in self.groups for close in g.closes))
            self.groups.append(group)
        group.viewers.add(viewer)
        self._group_of[viewer] = group

    def remove_viewer(self, viewer: Viewer) -> None:
        group = self._group_of.pop(viewer, None)
        if group is not None:
            group.viewers.discard(viewer)
            if not group.viewers:
                self.groups.remove(group)

    # Incoming events.

    def _queue(self, delivery: Delivery) -> None:
        for group in self.groups:
            group.pending.append(delivery)

    def push_event(self, delivery: Delivery, close_user: tuple[int, int] | None, *, local: bool = False) -> None:
        """Take a room event in. `local`: this process stored it and it is delivered
        here as it is published (Hub._dispatch_local); the echo of it that then comes from
        the channel layer is dropped."""
        seq = delivery.seq
        if local:
            self.local_seqs[seq] = None
            if len(self.local_seqs) > LOCAL_ECHOES_MAX:
                # An echo that never came (the publish failed): forget the oldest.
                del self.local_seqs[next(iter(self.local_seqs))]
        elif seq in self.local_seqs:
            del self.local_seqs[seq]
            return
        if close_user is not None:
            for group in self.groups:
                group.closes.append(close_user)
        if self.next_seq is None or seq <= self.next_seq:
            # In order, or late: a late one goes out as is and viewers that already saw
            # a higher seq drop it, or it was already delivered to them after a gap.
            delivery = self._decide(delivery)
            self._queue(delivery)
            self._took(delivery)
            if self.next_seq is None or seq == self.next_seq:
                self.next_seq = seq + 1
                self._release_held()
        else:
            self.held[seq] = (delivery, time.monotonic())
            if self.gap_timer is None:
                self.gap_timer = asyncio.get_running_loop().call_later(GAP_WAIT_SECONDS, self._give_up_gap)
        self.schedule_flush()

    def push_connection_event(self, text: str) -> None:
        # A presence delta: viewers joining from now on get the roster read again.
        self.roster = None
        self._queue(Delivery(None, None, text))
        self.schedule_flush()

    def _release_held(self) -> None:
        while self.next_seq in self.held:
            delivery = self._decide(self.held.pop(self.next_seq)[0])
            self._queue(delivery)
            self._took(delivery)
            self.next_seq += 1
        if not self.held and self.gap_timer is not None:
            self.gap_timer.cancel()
            self.gap_timer = None

    def _give_up_gap(self) -> None:
        """Give up on every hole an event held behind it has waited GAP_WAIT_SECONDS for,
        all at once: while the channel layer is down, every other event of a room written
        by two processes is missing here, and one wait per hole in turn would hold the
        rest back further and further."""
        self.gap_timer = None
        if not self.held:
            return
        due = time.monotonic() - GAP_WAIT_SECONDS
        # What arrived ahead of the holes the last of them waited behind goes out now.
        # (None may have waited: the timer was set for events released since, and those
        # still held arrived later and wait their own time.)
        through = max((seq for seq, (_, at) in self.held.items() if at <= due), default=None)
        while through is not None and self.held and min(self.held) <= through:
            self.next_seq = min(self.held)
            self._release_held()
        if self.held:
            # Holes further on, behind events that have not waited their turn yet.
            wait = min(at for _, at in self.held.values()) + GAP_WAIT_SECONDS - time.monotonic()
            self.gap_timer = asyncio.get_running_loop().call_later(max(wait, 0.0), self._give_up_gap)
        self.schedule_flush()

    def _took(self, delivery: Delivery) -> None:
        self.recent.append((delivery.seq, delivery.text))
        if self.snapshot is not None and not self.snapshot.follow(delivery.seq, delivery.text):
            self.snapshot = None

    # Welcomes.

    async def welcome_parts(self, *, after: int | None, blocked: set[int], head: int) -> welcome.WelcomeParts:
        """The room's parts of a welcome for a viewer that joined this feed: from the
        room's snapshot when it holds them, else read for this viewer alone. `head`: the
        room's last seq before the viewer joined; a snapshot behind it is missing events
        still on their way here (or lost on the way, a channel-layer outage)."""
        if not blocked:
            snapshot = await self._current_snapshot()
            behind = snapshot is None or snapshot.last_seq < head
            parts = None if behind else snapshot.parts(after)
            if parts is not None:
                return parts
        # A resume from further back than the snapshot holds is a catch-up: it takes its turn.
        async with catch_up_gate() if after is not None else contextlib.nullcontext():
            return await reads(welcome.read_parts)(self.room_id, after=after, blocked=blocked)

    async def welcome_roster(self, joined: int) -> dict[str, Any]:
        """The roster's first page for the welcome of the `joined`-th viewer to join
        here (counting it). A join storm reads it once per batch of joins, not once per
        viewer (the store's answer grows with the room): the viewers that joined while
        a read was in flight share the next one."""
        while True:
            fresh = time.monotonic() - self.roster_at < ROSTER_MAX_AGE_SECONDS
            if self.roster is not None and fresh and self.roster_joins >= joined:
                return self.roster
            read = self._roster_read
            if read is not None and self._roster_read_joins < joined:
                # Read before this viewer's join was written: wait for it, then read anew.
                await asyncio.shield(read)
                continue
            if read is None:
                self._roster_read_joins = self.joins
                read = self._roster_read = asyncio.ensure_future(self._read_roster(self.joins))
            return await asyncio.shield(read)

    async def _read_roster(self, joins: int) -> dict[str, Any]:
        try:
            roster_at = time.monotonic()
            roster = await welcome.read_roster(self.room_id, offset=0, limit=ROSTER_PAGE)
        except Exception:
            return welcome.local_roster(len(self.viewers), offset=0)
        finally:
            self._roster_read = None
        self.roster, self.roster_joins, self.roster_at = roster, joins, roster_at
        return roster

    async def _current_snapshot(self) -> welcome.RoomSnapshot | None:
        if self.snapshot is not None and self.snapshot.fresh:
            return self.snapshot
        # Viewers joining meanwhile wait for the same read.
        if self._snapshot_read is None:
            self._snapshot_read = asyncio.ensure_future(self._read_snapshot())
        try:
            return await asyncio.shield(self._snapshot_read)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("Could not read room %s for its welcome", self.room_id, exc_info=True)
            return None

    async def _read_snapshot(self) -> welcome.RoomSnapshot | None:
        try:
            snapshot = await reads(welcome.read_snapshot)(self.room_id)
        finally:
            self._snapshot_read = None
        # Every viewer waiting joined this feed before the read ended, and gets what the
        # feed took in from then on: the snapshot must hold all that came before.
        for seq, text in self.recent:
            if not snapshot.follow(seq, text):
                return None
        self.snapshot = snapshot
        return snapshot

    # Delivery.

    def schedule_flush(self) -> None:
        timer = self.flush_timer
        if self.flush_scheduled and timer is None:
            return  # a flush is running or about to: what came goes with it or the next
        group, at = self._next_group()
        if group is None:
            return
        if timer is not None:
            if timer.when() <= self._loop_time(at) + 0.001:
                return
            # A room event after presence deltas that were to wait: its turn comes sooner.
            timer.cancel()
        self.flush_scheduled = True
        self.flush_timer = None
        delay = at - time.monotonic()
        loop = asyncio.get_running_loop()
        if delay <= 0:
            # A quiet room: nothing went out within the window, so this goes out at once.
            loop.call_soon(self._start_flush)
        else:
            self.flush_timer = loop.call_later(delay, self._start_flush)

    def _start_flush(self) -> None:
        self.flush_timer = None
        self.hub.spawn(self.flush())

    @staticmethod
    def _loop_time(monotonic_at: float) -> float:
        return asyncio.get_running_loop().time() + (monotonic_at - time.monotonic())

    def _next_group(self) -> tuple[_Group | None, float]:
        """The group to write to next, and when it may start: a window after its own last
        flush, and an even share of the window after the room's last flush of any group
        (so that the room's writing keeps to its share of the process)."""
        spacing = self.window / len(self.groups) if self.groups else 0.0
        chosen, chosen_at = None, 0.0
        for group in self.groups:
            if not group.pending and not group.closes:
                continue
            at = max(group.last_flush + self.window, self.last_flush + spacing)
            if not group.closes and all(d.seq is None for d in group.pending):
                # Presence deltas alone (a few: the tracker coalesces them).
                at = max(at, group.last_flush + self.presence_window)
            if chosen is None or (at, group.last_flush) < (chosen_at, chosen.last_flush):
                chosen, chosen_at = group, at
        return chosen, chosen_at

    async def flush(self) -> None:
        group, _at = self._next_group()
        if group is None:
            self.flush_scheduled = False
            return
        self.last_flush = group.last_flush = time.monotonic()
        # The flush's own CPU time, not the wall clock: time spent waiting for the GIL
        # or for a core the machine gave to others is not what writing the frames cost.
        cpu = _CpuTime()
        try:
            await self._flush(group, cpu)
        except asyncio.CancelledError:
            self.flush_scheduled = False
            raise
        except Exception:
            logger.exception("Flush of room %s failed", self.room_id)
        group.cost = cpu.stop()
        # What writing to the whole room costs: each group's latest flush.
        room_cost = sum(g.cost for g in self.groups)
        self.window = batch_window(room_cost)
        self.presence_window = room_cost * 100 / PRESENCE_FANOUT_PERCENT
        self.flush_scheduled = False
        # One flush at a time, so that every viewer gets the room's frames in order: what
        # arrived meanwhile goes out in the next.
        self.schedule_flush()

    async def _flush(self, group: _Group, cpu: _CpuTime) -> None:
        deliveries, group.pending = group.pending, []
        closes, group.closes = group.closes, []
        if deliveries:
            if len(deliveries) > 1:
                deliveries.sort(key=_seq_order)
            frame = Frame(batch_text([d.text for d in deliveries]))
            actors = {d.actor for d in deliveries if d.actor is not None}
            seqs = [d.seq for d in deliveries if d.seq is not None]
            first_seq, last_seq = (seqs[0], seqs[-1]) if seqs else (None, None)
            # No hole inside this flush (seqs are sorted and unique).
            dense = bool(seqs) and last_seq - first_seq + 1 == len(seqs)
            thinned = self._thin(deliveries, last_seq)
            for index, viewer in enumerate(list(group.viewers), 1):
                try:
                    later = viewer.offer(deliveries, frame, actors, first_seq, last_seq, dense, thinned)
                    if later is not None:
                        await later
                except Exception:
                    logger.exception("Delivery to %s failed", viewer.conn_id)
                if not index % FLUSH_SLICE:
                    # A huge room's flush takes a good part of a second: the process's
                    # other work (commands, pings, welcomes, other rooms) goes on between
                    # slices of it rather than after it.
                    await cpu.paused()
            metrics.flushed(len(deliveries), len(group.viewers))
        for user_id, code in closes:
            for viewer in [v for v in group.viewers if v.user_id == user_id]:
                try:
                    await viewer.close_by_hub(code)
                except Exception:
                    logger.exception("Closing %s failed", viewer.conn_id)

    def _decide(self, delivery: Delivery) -> Delivery:
        """Whether the readable feed keeps a member's line, decided once as it is taken
        in (in seq order), so that every group of viewers keeps the same lines."""
        rate = settings.CHAT_READABLE_MESSAGES_PER_SECOND
        if not rate or not delivery.skippable or delivery.readable is not None:
            return delivery
        now = time.monotonic()
        self.readable = min(float(rate), self.readable + (now - self.readable_at) * rate)
        self.readable_at = now
        if self.readable >= 1:
            self.readable -= 1
            return replace(delivery, readable=True)
        metrics.SHED_READABLE.inc()
        return replace(delivery, readable=False)

    def _thin(self, deliveries: list[Delivery], last_seq: int | None) -> Thinned | None:
        """The readable feed: past CHAT_READABLE_MESSAGES_PER_SECOND member lines a
        second, member lines are left out of viewers' live feeds (the log keeps them; a
        viewer is told how many it missed). Everything else always goes: tips, notices,
        moderation, room changes, the host team's lines, and for the users a line
        concerns, that line. This also bounds what a huge room costs to fan out."""
        rate = settings.CHAT_READABLE_MESSAGES_PER_SECOND
        if not rate or last_seq is None or not any(d.skippable for d in deliveries):
            return None
        kept: list[Delivery] = []
        skipped: list[Delivery] = []
        # Each line was decided as it was taken in (_decide).
        for d in deliveries:
            (kept if not d.skippable or d.readable else skipped).append(d)
        if not skipped:
            return None
        for_user: dict[int, list[Delivery]] = {}
        for d in skipped:
            for user_id in d.concerns:
                for_user.setdefault(user_id, []).append(d)
        return Thinned(
            kept=kept,
            frame=Frame(batch_text([d.text for d in kept], complete_to=last_seq, skipped=len(skipped))),
            skipped=len(skipped),
            actors={d.actor for d in kept if d.actor is not None},
            for_user=for_user,
        )


class _CpuTime:
    """The CPU time of this thread spent in one flush, less what the event loop ran
    in the turns the flush let it have."""

    __slots__ = ("spent", "since")

    def __init__(self) -> None:
        self.spent = 0.0
        self.since = time.thread_time()

    async def paused(self) -> None:
        """Let the event loop run what is ready, then go on."""
        self.spent += time.thread_time() - self.since
        try:
            await asyncio.sleep(0)
        finally:
            self.since = time.thread_time()

    def stop(self) -> float:
        self.spent += time.thread_time() - self.since
        self.since = time.thread_time()
        return self.spent


def batch_window(flush_seconds: float) -> float:
    """How long after the start of a flush that took `flush_seconds` the room's next
    flush may start: long enough that writing frames takes at most
    CHAT_BATCH_FANOUT_PERCENT of the time, and at most CHAT_BATCH_WINDOW_MAX_MS, unless
    that would let a huge room's writing take more than CHAT_BATCH_FANOUT_MAX_PERCENT.
    Natural batching: an event that finds the feed idle goes out at once, whatever
    arrives while a flush is written (and in the pause that pays for it) goes out in
    the next one, so frames carry more events as the room grows in rate and viewers
    (each frame costs every viewer a socket write, whatever it carries) and none when
    it is quiet. The ceiling is what keeps a room of 10,000 viewers from taking the
    whole process: without it, flushes of 170 ms every 200 ms left too little for
    storing the room's lines and answering its members, and everything ran late."""
    wanted = flush_seconds * 100 / settings.CHAT_BATCH_FANOUT_PERCENT
    bounded = min(wanted, settings.CHAT_BATCH_WINDOW_MAX_MS / 1000)
    return max(bounded, flush_seconds * 100 / settings.CHAT_BATCH_FANOUT_MAX_PERCENT)


def _room_event(message: dict[str, Any]) -> tuple[Delivery, tuple[int, int] | None]:
    """A `room.event` message's delivery, and whom it closes (kick, ban)."""
    close_user = message.get("close_user")
    delivery = Delivery(
        message["seq"],
        message.get("actor"),
        message["text"],
        message.get("skippable", False),
        tuple(message.get("concerns", ())),
    )
    return delivery, tuple(close_user) if close_user else None


def _seq_order(delivery: Delivery) -> int:
    # Connection events keep their place relative to nothing in particular; put them last.
    return delivery.seq if delivery.seq is not None else 2**63


class Hub:
    """The live delivery path of one server process (one per event loop): room feeds and
    the channel-layer subscriptions behind them."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        # Services' publishes from the database thread go out through this loop.
        self.publisher = realtime.start_publisher()
        self.publisher.on_local = self._dispatch_local
        lag.start_watch()
        self.feeds: dict[int, RoomFeed] = {}
        # Rooms recently connected to, by slug (see room()).
        self.rooms_by_slug: dict[str, tuple[float, Any]] = {}
        self._room_reads = SharedReads(selectors.get_room)
        # Every room's last seq, for connects and pings: `await hub.heads.get(room_id)`.
        self.heads = SharedReads(selectors.room_head)
        self.channel: str | None = None
        self.presence = PresenceTracker(self._viewers_by_room)
        self._receiver: asyncio.Task | None = None
        self._retrier: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._lock = asyncio.Lock()

    def spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Subscriptions.

    async def _start(self) -> None:
        if self._retrier is None:
            self._retrier = asyncio.ensure_future(self._retry_loop())
            self.presence.start()
        if self.channel is None:
            layer = get_channel_layer()
            channel = await layer.new_channel(prefix="hub.")
            await layer.group_add(realtime.SITE_GROUP, channel)
            self.channel = channel
            self._receiver = asyncio.ensure_future(self._receive_loop())

    async def _subscribe(self, feed: RoomFeed) -> None:
        """Subscribe this process to the room. If the channel layer is down, the viewers
        still get their welcome from the log, and the retry loop tries again."""
        try:
            await self._start()
            await get_channel_layer().group_add(realtime.room_group(feed.room_id), self.channel)
            feed.subscribed = True
        except Exception:
            logger.warning("Could not subscribe to room %s; retrying", feed.room_id, exc_info=True)

    async def join(self, room_id: int, viewer: Viewer) -> int:
        """Start delivering the room's events to `viewer` and count it as present. The
        number of viewers that joined the room here so far, this one included (for
        welcome_roster)."""
        async with self._lock:
            feed = self.feeds.get(room_id)
            if feed is None:
                feed = self.feeds[room_id] = RoomFeed(self, room_id)
            feed.add_viewer(viewer)
            if not feed.subscribed:
                await self._subscribe(feed)
        await self.presence.joined(room_id, viewer.presence_entry())
        feed.joins += 1
        return feed.joins

    async def leave(self, room_id: int, viewer: Viewer) -> None:
        feed = self.feeds.get(room_id)
        if feed is None or viewer not in feed.viewers:
            return
        feed.remove_viewer(viewer)
        await self.presence.left(room_id, viewer.conn_id)
        async with self._lock:
            if not feed.viewers and self.feeds.get(room_id) is feed:
                del self.feeds[room_id]
                if feed.subscribed:
                    try:
                        await get_channel_layer().group_discard(realtime.room_group(room_id), self.channel)
                    except Exception:
                        logger.warning("Could not unsubscribe from room %s", room_id, exc_info=True)

    async def welcome_parts(
        self, room_id: int, *, after: int | None, blocked: set[int], head: int
    ) -> welcome.WelcomeParts:
        """The room's parts of the welcome of a viewer that joined it (see RoomFeed)."""
        feed = self.feeds.get(room_id)
        if feed is None:
            return await reads(welcome.read_parts)(room_id, after=after, blocked=blocked)
        return await feed.welcome_parts(after=after, blocked=blocked, head=head)

    async def welcome_roster(self, room_id: int, joined: int) -> dict[str, Any]:
        """The roster's first page for the welcome of a viewer that joined the room
        (`joined`: what join() answered it)."""
        feed = self.feeds.get(room_id)
        if feed is None:
            return await welcome.roster_or_local(room_id, offset=0, limit=ROSTER_PAGE, local_viewers=0)
        return await feed.welcome_roster(joined)

    async def room(self, slug: str):
        """The room a viewer connects to (None: no such room), read within
        welcome.SNAPSHOT_MAX_AGE_SECONDS: in a join storm the query (mostly the ORM's own
        work) would be a good part of every connect. What a connect uses of it (its id,
        its owner for standings) changes rarely; the welcome's room state comes from the
        room's snapshot."""
        now = time.monotonic()
        cached = self.rooms_by_slug.get(slug)
        if cached is not None and now - cached[0] < welcome.SNAPSHOT_MAX_AGE_SECONDS:
            return cached[1]
        try:
            room = await self._room_reads.get(slug)
        except ChatError:
            return None
        if len(self.rooms_by_slug) > 10_000:  # bounded, however many rooms clients ask for
            self.rooms_by_slug.clear()
        self.rooms_by_slug[slug] = (now, room)
        return room

    def forget_room(self, slug: str) -> None:
        """A room found gone: the next connect to it reads it again."""
        self.rooms_by_slug.pop(slug, None)

    def local_viewers(self, room_id: int) -> int:
        feed = self.feeds.get(room_id)
        return len(feed.viewers) if feed else 0

    def _viewers_by_room(self) -> dict[int, list[Viewer]]:
        return {room_id: list(feed.viewers) for room_id, feed in self.feeds.items()}

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
        if kind == "room.events":
            for seq, actor, text, close_user, skippable, concerns in message["events"]:
                feed.push_event(
                    Delivery(seq, actor, text, skippable, tuple(concerns)), tuple(close_user) if close_user else None
                )
        elif kind == "room.event":
            feed.push_event(*_room_event(message))
        elif kind == "room.presence":
            feed.push_connection_event(message["text"])

    def _dispatch_local(self, message: dict[str, Any]) -> None:
        """A room event this process stored, as it is published: to its viewers here at
        once. The same event then comes back from the channel layer, and the feed drops
        that echo."""
        feed = self.feeds.get(message["room"])
        if feed is not None:
            feed.push_event(*_room_event(message), local=True)

    async def _control_users(self, user_ids: set[int], kind: str, payload: dict[str, Any]) -> None:
        for feed in list(self.feeds.values()):
            for viewer in [v for v in feed.viewers if v.user_id in user_ids]:
                try:
                    await viewer.control(kind, payload)
                except Exception:
                    logger.exception("Control %s for %s failed", kind, viewer.conn_id)

    async def _retry_loop(self) -> None:
        """Subscribe every second to the rooms whose subscription failed."""
        while True:
            await asyncio.sleep(1)
            async with self._lock:
                for feed in list(self.feeds.values()):
                    if not feed.subscribed:
                        await self._subscribe(feed)

    async def stop(self) -> None:
        """Cancel what this hub runs: its loop is about to close (a test's, at its end)."""
        tasks = [self._receiver, self._retrier, *self._tasks, *self.presence.tasks(), self.publisher.task]
        tasks += [*self.heads.stop(), *self._room_reads.stop()]
        tasks = [t for t in tasks if t is not None and not t.done()]
        lag.stop_watch()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


_hubs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_hub() -> Hub:
    """The hub of the running event loop: one per server process in production."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
    return hub


async def stop_hub() -> None:
    """Stop and forget the running loop's hub, if it has one."""
    hub = _hubs.pop(asyncio.get_running_loop(), None)
    if hub is not None:
        await hub.stop()
