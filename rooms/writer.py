"""Group commit for chat messages, per process and per room.

A busy room's sends would each take the room's seq lock in a transaction of their own.
Instead, while one write is in flight the next sends queue up here, and the next write
stores them all in one transaction (one seq update, two inserts). A quiet room's send
is written at once, alone; a busy room's writes grow as large as the load needs.
"""

from __future__ import annotations

import asyncio
import weakref

from channels.db import database_sync_to_async

from rooms.models import Message
from rooms.services.messages import PreparedMessage, store_messages

# Bounds one transaction's size, so a burst cannot hold the room's lock for long.
MAX_BATCH = 200


class RoomWriter:
    def __init__(self) -> None:
        self.waiting: list[tuple[PreparedMessage, asyncio.Future]] = []
        self.draining = False

    async def store(self, prepared: PreparedMessage) -> Message:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((prepared, future))
        if not self.draining:
            self.draining = True
            asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:MAX_BATCH], self.waiting[MAX_BATCH:]
                if len(batch) == 1:
                    await self._store(batch)
                elif not await self._store(batch, fail=False):
                    # One message the database refuses must not fail the others with it.
                    for one in batch:
                        await self._store([one])
        finally:
            self.draining = False

    async def _store(self, batch: list[tuple[PreparedMessage, asyncio.Future]], *, fail: bool = True) -> bool:
        """Store `batch` in one transaction and settle its futures. On failure, fail
        them (or with fail=False leave them pending) and answer False."""
        try:
            messages = await database_sync_to_async(store_messages)([prepared for prepared, _ in batch])
        except Exception as exc:
            if fail:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            return False
        for (_, future), message in zip(batch, messages, strict=True):
            if not future.done():
                future.set_result(message)
        return True


_writers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_writer(room_id: int) -> RoomWriter:
    """The writer of a room in the running event loop (one per process in production)."""
    loop = asyncio.get_running_loop()
    writers = _writers.get(loop)
    if writers is None:
        writers = _writers[loop] = {}
    writer = writers.get(room_id)
    if writer is None:
        writer = writers[room_id] = RoomWriter()
    return writer
