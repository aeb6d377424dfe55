"""Who is connected to each room (not part of the event log).

- `store`: the roster itself, in Redis when REDIS_URL is set, in memory otherwise;
- `tracker`: this process's part of it: joins, leaves and role changes, coalesced
  deltas, beats and retries.
"""

from rooms.presence.store import (
    Change,
    Entry,
    MemoryPresence,
    RedisPresence,
    _memory,
    get_presence,
    online_counts,
)
from rooms.presence.tracker import PresenceTracker

__all__ = [
    "Change",
    "Entry",
    "MemoryPresence",
    "PresenceTracker",
    "RedisPresence",
    "_memory",
    "get_presence",
    "online_counts",
]
