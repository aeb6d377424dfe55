"""The two ways from the event loop to the database.

- `writes`: the process's one database thread (Channels' database_sync_to_async):
  services that change state, in the order they were asked for. Under a burst it is busy
  with the writers' group commits.
- `reads`: a few threads with database connections of their own, for the reads a viewer
  waits on (its welcome, a ping, a sync replay). They never queue behind the writes, so
  a room that is being written as fast as it can be still welcomes and answers.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

from channels.db import DatabaseSyncToAsync, database_sync_to_async
from django.db import connections

# Enough to overlap a few replays and welcomes; each thread holds one connection.
READ_THREADS = 4

_read_executor = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="db-read")

writes = database_sync_to_async


def reads(fn):
    """`fn` (a read: it must not write) as a coroutine function that runs on the read path."""
    return DatabaseSyncToAsync(fn, thread_sensitive=False, executor=_read_executor)


# Catch-ups (a sync page, a resume from further back than a room's snapshot holds) read
# and send up to a page of the log each. Many at once, viewers back from a stall or
# arriving from a draining process, would take the core from the live viewers in
# bursts; one at a time per process, the others wait their turn (their live events held
# meanwhile), and catching up runs beside the live path at a pace it can afford.
CATCH_UPS_AT_ONCE = 1

_catch_up_gates: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def catch_up_gate() -> asyncio.Semaphore:
    """The running event loop's gate for catch-ups: `async with catch_up_gate(): ...`."""
    loop = asyncio.get_running_loop()
    gate = _catch_up_gates.get(loop)
    if gate is None:
        gate = _catch_up_gates[loop] = asyncio.Semaphore(CATCH_UPS_AT_ONCE)
    return gate


def close_read_connections() -> None:
    """Close the database connections the read threads hold (before a test database is
    dropped). Each thread takes one of the closing tasks: they wait for each other."""
    barrier = threading.Barrier(READ_THREADS)

    def close() -> None:
        connections.close_all()
        barrier.wait(10)

    for future in [_read_executor.submit(close) for _ in range(READ_THREADS)]:
        future.result()
