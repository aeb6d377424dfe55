"""Group commit for chat messages, per process and per room.

A busy room's sends would each take a database round trip to be checked, then a
transaction of their own under the room's seq lock, each a hop to the database thread
that every connection of the process shares. Instead, while one write is in flight the
next sends queue up here, and the next write checks them all and stores those that pass
in one transaction (one seq update, two inserts), in one hop. A room is written at most
once per CHAT_WRITE_INTERVAL_MS: a quiet room's send is written at once, alone; in a
busy room the sends of an interval share one write, and writes grow as large as the
load needs.
"""

from __future__ import annotations

import asyncio
import time
import weakref

from channels.db import database_sync_to_async
from django.conf import settings

from rooms.models import Message
from rooms.services.messages import SendRequest, check_send_messages

# Bounds one transaction's size, so a burst cannot hold the room's lock for long.
MAX_BATCH = 200


class RoomWriter:
    def __init__(self, room_id: int) -> None:
        self.room_id = room_id
        self.waiting: list[tuple[SendRequest, asyncio.Future]] = []
        self.draining = False
        self.last_write = -1e9

    async def send(self, request: SendRequest) -> Message:
        """Check and store one send: the Message stored, or the ChatError that refused it."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((request, future))
        if not self.draining:
            self.draining = True
            asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.waiting:
                wait = self.last_write + settings.CHAT_WRITE_INTERVAL_MS / 1000 - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.last_write = time.monotonic()
                batch, self.waiting = self.waiting[:MAX_BATCH], self.waiting[MAX_BATCH:]
                try:
                    answers = await database_sync_to_async(check_send_messages)(
                        self.room_id, [request for request, _ in batch]
                    )
                except Exception as exc:
                    answers = [exc] * len(batch)
                for (_, future), answer in zip(batch, answers, strict=True):
                    if future.done():  # the connection went away meanwhile
                        continue
                    if isinstance(answer, Exception):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)
        finally:
            self.draining = False


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
