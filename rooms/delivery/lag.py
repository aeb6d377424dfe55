"""How far behind the process's event loop runs: the one measure of its load that
covers everything (fan-out, parsing, acks, Twisted), including frames that arrived but
wait to be handled, which no queue of ours can see.

A task sleeps TICK seconds at a time and notes how much later than asked it woke up;
`lag()` is the mean of those delays over the last WINDOW seconds.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque

TICK = 0.05
WINDOW = 1.0


class LagWatch:
    def __init__(self) -> None:
        self._samples: deque[tuple[float, float]] = deque()
        self._task = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while True:
            asked = time.monotonic()
            await asyncio.sleep(TICK)
            now = time.monotonic()
            self._samples.append((now, now - asked - TICK))
            while self._samples and self._samples[0][0] < now - WINDOW:
                self._samples.popleft()

    def lag(self) -> float:
        """The mean delay over the window: a loop that is behind all the time, not one
        long pause (a collection, a large flush) that is over already. A loop too busy to
        run the watch at all is as late as the watch is overdue."""
        if not self._samples:
            return 0.0
        overdue = max(0.0, time.monotonic() - self._samples[-1][0] - TICK)
        return max(overdue, sum(lag for _, lag in self._samples) / len(self._samples))

    def stop(self) -> None:
        self._task.cancel()


_watches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def start_watch() -> None:
    """Watch the running loop (the hub does, when a process starts serving rooms)."""
    loop = asyncio.get_running_loop()
    if loop not in _watches:
        _watches[loop] = LagWatch()


def loop_lag() -> float:
    """Seconds the running loop has lately been behind; 0 where nothing watches it."""
    watch = _watches.get(asyncio.get_running_loop())
    return watch.lag() if watch is not None else 0.0


def worst_lag() -> float:
    """loop_lag() of the most lagging loop watched, from any thread (for the metrics)."""
    return max((watch.lag() for watch in list(_watches.values())), default=0.0)


def stop_watch() -> None:
    watch = _watches.pop(asyncio.get_running_loop(), None)
    if watch is not None:
        watch.stop()
