"""Group commit for chat messages, per process and per room, with admission.

A busy room's sends would each take a database round trip to be checked, then a
transaction of their own under the room's seq lock, each a hop to the database thread
that every connection of the process shares. Instead, while one write is in flight the
next sends queue up here, and the next write checks them all and stores those that pass
in one transaction (one seq update, two inserts), in one hop. No clock is involved: a
send that finds the writer idle is written at once, alone; whatever arrives while a
write is in flight, or in the pause that pays for its CPU time (so that a room's writes
take at most CHAT_WRITE_CPU_PERCENT of the process), goes together in the next. Writes
grow with the load: a quiet room's sends are written one by one, a busy room's in
batches, at a bounded cost to everyone else on the process.

Admission: the writer knows what it has queued and what a send costs it to store (a
moving average of its recent writes). A member's send that would wait longer than
CHAT_ADMISSION_MS is answered `busy` at once, with retry_after, instead of joining a
queue it cannot get through in time: a room past its capacity answers rather than
queues. The host team's and staff's sends have a lane of their own, written first and
never refused as busy.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from collections import deque
from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from rooms import metrics
from rooms.dbpaths import writes
from rooms.delivery.lag import loop_lag
from rooms.errors import Busy
from rooms.models import Message
from rooms.services import do_auto_slow_mode
from rooms.services.messages import SendRequest, check_send_messages

logger = logging.getLogger(__name__)

# Bounds one transaction's size, so a burst cannot hold the room's lock for long.
MAX_BATCH = 200
# A send's cost before the writer has measured any: a few milliseconds of database time.
INITIAL_SEND_SECONDS = 0.003
# Weight of the newest write in the moving average of the cost per send.
COST_SMOOTHING = 0.2


@dataclass(slots=True)
class _Waiting:
    request: SendRequest
    future: asyncio.Future


class RoomWriter:
    def __init__(self, room_id: int) -> None:
        self.room_id = room_id
        self.team: deque[_Waiting] = deque()
        self.members: deque[_Waiting] = deque()
        self.draining = False
        # When the next write may start: a write's own CPU time is paid for by a pause
        # after it (see _drain).
        self.next_write_at = 0.0
        # Seconds of database time one stored send costs, measured on this room's writes.
        self.send_seconds = INITIAL_SEND_SECONDS
        self.load = RoomLoad(room_id)

    @property
    def queued_seconds(self) -> float:
        """How long the sends waiting now will take to store."""
        return (len(self.team) + len(self.members)) * self.send_seconds

    async def send(self, request: SendRequest, *, priority: bool = False) -> Message:
        """Check and store one send: the Message stored, or the ChatError that refused
        it (Busy when the room cannot store it within CHAT_ADMISSION_MS).
        `priority`: a send of the host team or staff, never refused as busy."""
        if not priority:
            admission = settings.CHAT_ADMISSION_MS / 1000
            # What this send would wait: the room's queued writes, or the whole process
            # running behind (then even its answer would be late).
            wait = max(self.queued_seconds + self.send_seconds, loop_lag()) - admission
            self.load.offered(refused=wait > 0, capacity=1 / self.send_seconds)
            if wait > 0:
                metrics.SHED_ADMISSION.inc()
                raise Busy(
                    _("The room is too busy to take your message right now; it was not sent."),
                    # Spread the retries, so that the refused do not all come back at once.
                    retry_after=wait + 0.5 + random.random(),
                )
        waiting = _Waiting(request, asyncio.get_running_loop().create_future())
        (self.team if priority else self.members).append(waiting)
        if not self.draining:
            self.draining = True
            asyncio.ensure_future(self._drain())
        return await waiting.future

    def _next_batch(self) -> list[_Waiting]:
        batch = []
        for lane in (self.team, self.members):
            while lane and len(batch) < MAX_BATCH:
                batch.append(lane.popleft())
        return batch

    async def _drain(self) -> None:
        try:
            while self.team or self.members:
                wait = self.next_write_at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                batch = self._next_batch()
                metrics.WRITE_BATCH_SENDS.observe(len(batch))
                started = time.perf_counter()
                started_at = time.monotonic()
                try:
                    answers, cpu = await writes(_write)(self.room_id, [waiting.request for waiting in batch])
                except Exception as exc:
                    answers, cpu = [exc] * len(batch), 0.0
                self.next_write_at = started_at + cpu * 100 / settings.CHAT_WRITE_CPU_PERCENT
                per_send = (time.perf_counter() - started) / len(batch)
                self.send_seconds += COST_SMOOTHING * (per_send - self.send_seconds)
                for waiting, answer in zip(batch, answers, strict=True):
                    if waiting.future.done():  # the connection went away meanwhile
                        continue
                    if isinstance(answer, Exception):
                        waiting.future.set_exception(answer)
                    else:
                        waiting.future.set_result(answer)
        finally:
            self.draining = False


def _write(room_id: int, requests: list[SendRequest]) -> tuple[list, float]:
    """check_send_messages, and the CPU time it took this thread (the ORM's and the
    driver's work, which holds the GIL the event loop needs)."""
    started = time.thread_time()
    answers = check_send_messages(room_id, requests)
    return answers, time.thread_time() - started


class RoomLoad:
    """What the room's members offer, second by second, and the automatic slow mode that
    follows from it: engaged when sends have been refused as busy in each of the last
    CHAT_AUTO_SLOW_MODE_AFTER_SECONDS seconds, lifted when it has held for
    CHAT_AUTO_SLOW_MODE_MIN_SECONDS and the members' offer is below a quarter of what
    the room can store. Choosing by what the room can store (not by what people can
    read, which the readable feed takes care of) keeps a fast but healthy room free.
    Each process judges by what it sees; the room's state is shared in the database, and
    a moderator's own slow mode is never changed."""

    def __init__(self, room_id: int) -> None:
        self.room_id = room_id
        self.second = int(time.monotonic())
        self.count = 0
        self.refused = 0
        self.overloaded_seconds = 0
        self.engaged_at: float | None = None
        self.calm_seconds = 0
        self.busy = False  # a change is on its way to the database

    def offered(self, *, refused: bool, capacity: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        second = int(now)
        if second != self.second:
            self._close_second(capacity, idle_seconds=second - self.second - 1, now=now)
            self.second, self.count, self.refused = second, 0, 0
        self.count += 1
        self.refused += refused

    def _close_second(self, capacity: float, *, idle_seconds: int, now: float) -> None:
        seconds = settings.CHAT_AUTO_SLOW_MODE_SECONDS
        if not seconds or self.busy:
            return
        if self.refused and not idle_seconds:
            self.overloaded_seconds += 1
            self.calm_seconds = 0
        else:
            self.overloaded_seconds = 0
            calm = self.count < capacity / 4
            self.calm_seconds = self.calm_seconds + 1 + idle_seconds if calm else 0
        if self.engaged_at is None and self.overloaded_seconds >= settings.CHAT_AUTO_SLOW_MODE_AFTER_SECONDS:
            self._change(seconds, now)
        elif (
            self.engaged_at is not None
            and now - self.engaged_at >= settings.CHAT_AUTO_SLOW_MODE_MIN_SECONDS
            and self.calm_seconds >= settings.CHAT_AUTO_SLOW_MODE_AFTER_SECONDS
        ):
            self._change(0, now)

    def _change(self, seconds: int, now: float) -> None:
        self.busy = True
        self.engaged_at = now if seconds else None
        self.overloaded_seconds = self.calm_seconds = 0
        asyncio.ensure_future(self._store(seconds))

    async def _store(self, seconds: int) -> None:
        try:
            await writes(do_auto_slow_mode)(None, room_id=self.room_id, seconds=seconds)
        except Exception:
            logger.warning("Could not change the automatic slow mode of room %s", self.room_id, exc_info=True)
        finally:
            self.busy = False


_writers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_writer(room_id: int) -> RoomWriter:
    """The writer of a room in the running event loop (one per process in production)."""
    loop = asyncio.get_running_loop()
    writers = _writers.get(loop)
    if writers is None:
        writers = _writers[loop] = {}
    writer = writers.get(room_id)
    if writer is None:
        writer = writers[room_id] = RoomWriter(room_id)
    return writer


def idle() -> bool:
    """No room writer of the process holds a send or has a write in flight (a drain waits for this)."""
    return not any(w.draining or w.team or w.members for writers in list(_writers.values()) for w in writers.values())


def queued_sends() -> int:
    """Sends waiting in every room writer of the process (for the metrics)."""
    return sum(len(w.team) + len(w.members) for writers in list(_writers.values()) for w in list(writers.values()))
