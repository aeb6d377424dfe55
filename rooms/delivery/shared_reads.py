"""Reads that many connections ask for at once, read once for all of them.

Every connect asks for its room and the room's last seq, and so does every ping (the
room page pings every 20 s: a room of 10,000 viewers asks 500 times a second). Each was
a query of its own and a hop to a read thread. Here, a read of a key that finds none in
flight starts at once; whoever asks for the same key while it is in flight waits for the
next read, which starts as soon as that one ends, and shares it. Natural batching again:
a quiet room reads once per ask, a busy one once per round trip of the database.

Everyone gets a value at least as recent as a read of their own would have been: the
read they share began after they asked. That is what a welcome's "is the room's snapshot
behind?" and a pong's "have you missed anything?" need.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from rooms.dbpaths import reads

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ReadCancelled(Exception):
    """The shared read was cancelled (its process is stopping), not the asker."""


class SharedReads(Generic[K, V]):
    """`await shared.get(key)`: `read(key)` on the read path, shared as above. An error
    of the read is raised to everyone who shared it."""

    def __init__(self, read: Callable[[K], V]) -> None:
        self._read = reads(read)
        # The read each key's next askers share, not started yet (one is in flight).
        self._next: dict[K, asyncio.Future] = {}
        self._in_flight: dict[K, asyncio.Task] = {}
        self._stopped = False

    async def get(self, key: K) -> V:
        if self._stopped:
            raise ReadCancelled(key)
        answer = self._next.get(key)
        if answer is None:
            answer = self._next[key] = asyncio.get_running_loop().create_future()
            # Retrieved here, so that an error nobody is left to await is not logged as lost.
            answer.add_done_callback(_retrieve)
            if key not in self._in_flight:
                self._start(key)
        # One asker going away (a connection closed mid-connect) does not cancel the
        # read the others wait for.
        return await asyncio.shield(answer)

    def stop(self) -> list[asyncio.Task]:
        """Cancel the reads in flight (the loop is about to close); whoever waits for one
        gets ReadCancelled. The tasks, to be awaited."""
        self._stopped = True
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        return tasks

    def _start(self, key: K) -> None:
        answer = self._next.pop(key)
        task = self._in_flight[key] = asyncio.ensure_future(self._read(key))
        # A callback rather than a try/finally in the task: it runs even for a task
        # cancelled before it began.
        task.add_done_callback(functools.partial(self._done, key, answer))

    def _done(self, key: K, answer: asyncio.Future, task: asyncio.Task) -> None:
        del self._in_flight[key]
        if not answer.done():
            if task.cancelled():
                answer.set_exception(ReadCancelled(key))
            elif task.exception() is not None:
                answer.set_exception(task.exception())
            else:
                answer.set_result(task.result())
        waiting = self._next.get(key)
        if waiting is not None:
            if self._stopped:
                del self._next[key]
                waiting.set_exception(ReadCancelled(key))
            else:
                self._start(key)


def _retrieve(answer: asyncio.Future) -> None:
    if not answer.cancelled():
        answer.exception()
