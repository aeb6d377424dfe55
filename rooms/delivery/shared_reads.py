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
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from rooms.dbpaths import reads

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SharedReads(Generic[K, V]):
    """`await shared.get(key)`: `read(key)` on the read path, shared as above. An error
    of the read is raised to everyone who shared it."""

    def __init__(self, read: Callable[[K], V]) -> None:
        self._read = reads(read)
        # The read each key's next askers share, not started yet (one is in flight).
        self._next: dict[K, asyncio.Future] = {}
        self._in_flight: set[K] = set()

    async def get(self, key: K) -> V:
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

    def _start(self, key: K) -> None:
        answer = self._next.pop(key)
        self._in_flight.add(key)
        asyncio.ensure_future(self._run(key, answer))

    async def _run(self, key: K, answer: asyncio.Future) -> None:
        try:
            value = await self._read(key)
        except Exception as exc:
            if not answer.done():
                answer.set_exception(exc)
        except BaseException:
            answer.cancel()
            raise
        else:
            if not answer.done():
                answer.set_result(value)
        finally:
            self._in_flight.discard(key)
            if key in self._next:
                self._start(key)


def _retrieve(answer: asyncio.Future) -> None:
    if not answer.cancelled():
        answer.exception()
