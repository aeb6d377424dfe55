"""Who is connected to each room: in Redis when REDIS_URL is set, in memory otherwise.

Presence is not part of the event log. Each connection is an entry; a signed-in user
counts once however many tabs they have (a reference count per user), each anonymous
connection counts once. Each process refreshes its own connections' entries every
CHAT_PRESENCE_BEAT_SECONDS, so entries of a process that died age out after
CHAT_PRESENCE_TTL_SECONDS and so that a Redis that restarted empty is refilled.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import weakref
from dataclasses import dataclass
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    conn_id: str
    # "u<id>" for a signed-in user, "a<conn_id>" for an anonymous connection.
    user_key: str
    # The protocol user object, or None for an anonymous connection.
    user: dict[str, Any] | None
    is_team: bool


@dataclass(frozen=True)
class Change:
    """What one join or leave did to the roster: a user appeared or went, or neither."""

    joined: dict[str, Any] | None = None
    left: dict[str, Any] | None = None
    # A user still online whose shown self (role, staff) changed.
    changed: dict[str, Any] | None = None


class MemoryPresence:
    """One process's roster, for the embedded mode."""

    def __init__(self) -> None:
        self.rooms: dict[int, dict[str, Any]] = {}
        self.holders: dict[str, set[str]] = {}

    async def admit(self, conn_id: str, limits: list[tuple[str, int]]) -> str | None:
        """Count a new connection against each (key, limit); the first key over its limit
        is returned and nothing is counted."""
        for key, limit in limits:
            if len(self.holders.get(key, ())) >= limit:
                return key
        for key, _ in limits:
            self.holders.setdefault(key, set()).add(conn_id)
        return None

    async def release(self, conn_id: str, keys: list[str]) -> None:
        for key in keys:
            self.holders.get(key, set()).discard(conn_id)

    async def refresh(self, conn_ids_by_key: dict[str, list[str]]) -> None:
        """Nothing ages out of one process's memory."""

    def _room(self, room_id: int) -> dict[str, Any]:
        return self.rooms.setdefault(room_id, {"conns": {}, "refs": {}, "info": {}, "team": set()})

    async def join(self, room_id: int, entry: Entry) -> Change:
        r = self._room(room_id)
        if entry.conn_id in r["conns"]:
            return Change()
        r["conns"][entry.conn_id] = entry.user_key
        r["refs"][entry.user_key] = r["refs"].get(entry.user_key, 0) + 1
        if entry.user is not None:
            r["info"][entry.user_key] = entry.user
        if entry.is_team:
            r["team"].add(entry.user_key)
        if r["refs"][entry.user_key] == 1:
            return Change(joined=entry.user or {})
        return Change()

    async def leave(self, room_id: int, conn_id: str) -> Change:
        r = self._room(room_id)
        user_key = r["conns"].pop(conn_id, None)
        if user_key is None:
            return Change()
        r["refs"][user_key] -= 1
        if r["refs"][user_key] > 0:
            return Change()
        del r["refs"][user_key]
        r["team"].discard(user_key)
        return Change(left=r["info"].pop(user_key, {}))

    async def update(self, room_id: int, entry: Entry) -> Change:
        """Show a connected user as `entry` says now (a new role, staff or not)."""
        r = self._room(room_id)
        if entry.user is None or entry.conn_id not in r["conns"] or r["info"].get(entry.user_key) == entry.user:
            return Change()
        r["info"][entry.user_key] = entry.user
        if entry.is_team:
            r["team"].add(entry.user_key)
        else:
            r["team"].discard(entry.user_key)
        return Change(changed=entry.user)

    async def beat(self, room_id: int, entries: list[Entry]) -> None:
        """Nothing ages out of one process's memory: leaving is always explicit."""

    async def sweep(self, room_id: int) -> list[Change]:
        return []

    async def count(self, room_id: int) -> int:
        return len(self._room(room_id)["refs"])

    async def team(self, room_id: int) -> list[dict[str, Any]]:
        r = self._room(room_id)
        return sorted((r["info"][k] for k in r["team"] if k in r["info"]), key=_by_name)

    async def audience(self, room_id: int, *, offset: int, limit: int) -> list[dict[str, Any]]:
        r = self._room(room_id)
        people = sorted((v for k, v in r["info"].items() if k not in r["team"]), key=_by_name)
        return people[offset : offset + limit]

    def counts(self, room_ids: list[int]) -> dict[int, int]:
        return {room_id: len(self.rooms.get(room_id, {}).get("refs", ())) for room_id in room_ids}

    def reset(self) -> None:
        self.rooms.clear()
        self.holders.clear()


def _by_name(user: dict[str, Any]) -> tuple[str, int]:
    return (str(user.get("name", "")).lower(), user.get("id") or 0)


# KEYS: conns (zset conn -> last beat), conn_user (hash conn -> user key),
#       refs (hash user key -> open connections), info (hash user key -> user JSON),
#       team (set of user keys)
_JOIN = """
local fresh = redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
if fresh == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[4], ARGV[2], ARGV[4]) end
if ARGV[5] == '1' then redis.call('SADD', KEYS[5], ARGV[2]) end
return redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
"""
# Returns false if the connection was not there, '' if its user still has others open,
# else the departed user's JSON ('{}' for an anonymous connection).
_LEAVE = """
local key = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
if not key then return false end
redis.call('HDEL', KEYS[2], ARGV[1])
local n = redis.call('HINCRBY', KEYS[3], key, -1)
if n > 0 then return '' end
redis.call('HDEL', KEYS[3], key)
redis.call('SREM', KEYS[5], key)
local info = redis.call('HGET', KEYS[4], key)
redis.call('HDEL', KEYS[4], key)
return info or '{}'
"""

# Returns 1 if the user's shown self changed, 0 if it was already so or they are gone.
_UPDATE = """
if not redis.call('HGET', KEYS[2], ARGV[1]) then return 0 end
if redis.call('HGET', KEYS[4], ARGV[2]) == ARGV[4] then return 0 end
redis.call('HSET', KEYS[4], ARGV[2], ARGV[4])
if ARGV[5] == '1' then redis.call('SADD', KEYS[5], ARGV[2]) else redis.call('SREM', KEYS[5], ARGV[2]) end
return 1
"""

# KEYS: one sorted set (conn -> last beat) per limited thing (a user, an IP address).
# ARGV: conn id, now, cutoff for stale entries, ttl, then one limit per key.
_ADMIT = """
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[3])
  if redis.call('ZCARD', key) >= tonumber(ARGV[4 + i]) then return i end
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, ARGV[2], ARGV[1])
  redis.call('EXPIRE', key, ARGV[4])
end
return 0
"""


class PresenceUnavailable(Exception):
    """Redis failed a moment ago; callers fall back without waiting on it again."""


# After a failed call, others fail at once for this long: a connecting viewer makes
# several presence calls, and while Redis hangs each would wait out its own timeout.
OUTAGE_HOLD_SECONDS = 1.0


def _failing_fast(method):
    @functools.wraps(method)
    async def guarded(self, *args, **kwargs):
        if time.monotonic() < self.down_until:
            raise PresenceUnavailable("Redis failed a moment ago")
        try:
            return await method(self, *args, **kwargs)
        except Exception:
            self.down_until = time.monotonic() + OUTAGE_HOLD_SECONDS
            raise

    return guarded


class _Batched:
    """Calls of one Lua script, pipelined: a call that finds none in flight goes out at
    once, and the calls arriving meanwhile go together in the next round trip. In a
    join storm every connect makes these calls, and each round trip costs the process
    more than the script costs Redis; batched, they cost one per batch, not per viewer.

    The pipeline holds plain EVALSHAs. (redis-py's scripts in a pipeline first ask Redis
    whether the script is loaded, a round trip of its own on every batch.) When Redis
    answers NOSCRIPT (it restarted, or its scripts were flushed), the script is loaded
    and the calls it refused are sent again."""

    def __init__(self, client, script) -> None:
        self.client = client
        self.script = script
        self.waiting: list[tuple[list[str], list[Any], asyncio.Future]] = []
        self.sending = False

    async def __call__(self, *, keys: list[str], args: list[Any]) -> Any:
        answer = asyncio.get_running_loop().create_future()
        self.waiting.append((keys, args, answer))
        if not self.sending:
            self.sending = True
            asyncio.ensure_future(self._send())
        return await answer

    async def _send(self) -> None:
        from redis.exceptions import NoScriptError

        try:
            while self.waiting:
                batch, self.waiting = self.waiting, []
                try:
                    results = await self._run(batch)
                    refused = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
                    if refused:
                        self.script.sha = await self.client.script_load(self.script.script)
                        again = await self._run([batch[i] for i in refused])
                        for i, result in zip(refused, again, strict=True):
                            results[i] = result
                except Exception as exc:
                    results = [exc] * len(batch)
                for (_, _, answer), result in zip(batch, results, strict=True):
                    if answer.done():
                        continue
                    if isinstance(result, Exception):
                        answer.set_exception(result)
                    else:
                        answer.set_result(result)
        finally:
            self.sending = False

    async def _run(self, batch: list[tuple[list[str], list[Any], asyncio.Future]]) -> list[Any]:
        async with self.client.pipeline(transaction=False) as pipe:
            for keys, args, _ in batch:
                pipe.evalsha(self.script.sha, len(keys), *keys, *args)
            return await pipe.execute(raise_on_error=False)


class RedisPresence:
    """The shared roster of every process, for the scale-out mode."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis.asyncio as aioredis

        self.prefix = prefix
        self.down_until = 0.0
        self.client = aioredis.Redis.from_url(
            url,
            # Short: a connecting viewer waits on these, and while Redis hangs it should
            # get its welcome from the log soon rather than after several long timeouts.
            socket_timeout=1,
            socket_connect_timeout=1,
            max_connections=1000,
            decode_responses=True,
        )
        self._join_script = self.client.register_script(_JOIN)
        # The two calls of every connect, batched.
        self._join = _Batched(self.client, self._join_script)
        self._leave = self.client.register_script(_LEAVE)
        self._admit = _Batched(self.client, self.client.register_script(_ADMIT))
        self._update = self.client.register_script(_UPDATE)

    @_failing_fast
    async def admit(self, conn_id: str, limits: list[tuple[str, int]]) -> str | None:
        now = time.time()
        ttl = settings.CHAT_PRESENCE_TTL_SECONDS
        keys = [f"{self.prefix}:conns:{key}" for key, _ in limits]
        over = await self._admit(keys=keys, args=[conn_id, now, now - ttl, ttl, *[limit for _, limit in limits]])
        return limits[over - 1][0] if over else None

    @_failing_fast
    async def release(self, conn_id: str, keys: list[str]) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zrem(f"{self.prefix}:conns:{key}", conn_id)
            await pipe.execute()

    @_failing_fast
    async def refresh(self, conn_ids_by_key: dict[str, list[str]]) -> None:
        now = time.time()
        ttl = settings.CHAT_PRESENCE_TTL_SECONDS
        async with self.client.pipeline(transaction=False) as pipe:
            for key, conn_ids in conn_ids_by_key.items():
                pipe.zadd(f"{self.prefix}:conns:{key}", dict.fromkeys(conn_ids, now))
                pipe.expire(f"{self.prefix}:conns:{key}", ttl)
            await pipe.execute()

    def _keys(self, room_id: int) -> list[str]:
        base = f"{self.prefix}:presence:{room_id}"
        return [f"{base}:conns", f"{base}:conn_user", f"{base}:refs", f"{base}:info", f"{base}:team"]

    def _join_args(self, entry: Entry, now: float) -> list[Any]:
        return [
            entry.conn_id,
            entry.user_key,
            now,
            json.dumps(entry.user) if entry.user is not None else "",
            "1" if entry.is_team else "0",
        ]

    @_failing_fast
    async def join(self, room_id: int, entry: Entry) -> Change:
        refs = await self._join(keys=self._keys(room_id), args=self._join_args(entry, time.time()))
        if refs == 1:
            return Change(joined=entry.user or {})
        return Change()

    @_failing_fast
    async def leave(self, room_id: int, conn_id: str) -> Change:
        result = await self._leave(keys=self._keys(room_id), args=[conn_id])
        if not result:
            return Change()
        return Change(left=json.loads(result))

    @_failing_fast
    async def update(self, room_id: int, entry: Entry) -> Change:
        if entry.user is None:
            return Change()
        changed = await self._update(keys=self._keys(room_id), args=self._join_args(entry, time.time()))
        return Change(changed=entry.user) if changed else Change()

    @_failing_fast
    async def beat(self, room_id: int, entries: list[Entry]) -> None:
        keys = self._keys(room_id)
        now = time.time()
        conn_ids = [entry.conn_id for entry in entries]
        if not conn_ids:
            return
        # One command refreshes every connection Redis knows (XX adds none): a room of
        # 10,000 viewers costs one ZADD, not 10,000 script calls that hold the event
        # loop while they are packed.
        refreshed = await self.client.zadd(keys[0], dict.fromkeys(conn_ids, now), xx=True, ch=True)
        if refreshed == len(conn_ids):
            return
        # Some are unknown: a Redis restart lost them (or one left since the list was
        # made, and is added back until the sweep: as before). The join script adds them
        # back, counting a connection only when it is new. (ZSCORE, not ZMSCORE: Redis
        # before 6.2 too.)
        async with self.client.pipeline(transaction=False) as pipe:
            for conn_id in conn_ids:
                pipe.zscore(keys[0], conn_id)
            scores = await pipe.execute()
        lost = [entry for entry, score in zip(entries, scores, strict=True) if score is None]
        async with self.client.pipeline(transaction=False) as pipe:
            for entry in lost:
                await self._join_script(keys=keys, args=self._join_args(entry, now), client=pipe)
            await pipe.execute()

    @_failing_fast
    async def sweep(self, room_id: int) -> list[Change]:
        """Drop connections whose process stopped refreshing them."""
        keys = self._keys(room_id)
        cutoff = time.time() - settings.CHAT_PRESENCE_TTL_SECONDS
        stale = await self.client.zrangebyscore(keys[0], "-inf", cutoff)
        changes = []
        for conn_id in stale:
            change = await self.leave(room_id, conn_id)
            if change.left is not None:
                changes.append(change)
        return changes

    @_failing_fast
    async def count(self, room_id: int) -> int:
        return await self.client.hlen(self._keys(room_id)[2])

    @_failing_fast
    async def team(self, room_id: int) -> list[dict[str, Any]]:
        keys = self._keys(room_id)
        members = list(await self.client.smembers(keys[4]))
        if not members:
            return []
        infos = await self.client.hmget(keys[3], members)
        return sorted((json.loads(i) for i in infos if i), key=_by_name)

    @_failing_fast
    async def audience(self, room_id: int, *, offset: int, limit: int) -> list[dict[str, Any]]:
        keys = self._keys(room_id)
        info = await self.client.hgetall(keys[3])
        team = await self.client.smembers(keys[4])
        people = sorted((json.loads(v) for k, v in info.items() if k not in team), key=_by_name)
        return people[offset : offset + limit]


_memory = MemoryPresence()
_redis_by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_presence() -> MemoryPresence | RedisPresence:
    """The presence store for the running event loop (a Redis client belongs to one loop)."""
    if not settings.REDIS_URL:
        return _memory
    loop = asyncio.get_running_loop()
    store = _redis_by_loop.get(loop)
    if store is None:
        store = RedisPresence(settings.REDIS_URL, settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"])
        _redis_by_loop[loop] = store
    return store


def online_counts(room_ids: list[int]) -> dict[int, int]:
    """Distinct viewers per room, for synchronous callers (views)."""
    if not room_ids:
        return {}
    if not settings.REDIS_URL:
        return _memory.counts(room_ids)
    try:
        return _sync_counts(room_ids)
    except Exception:
        logger.warning("Redis unavailable: room list shows no online counts", exc_info=True)
        return {}


def _sync_counts(room_ids: list[int]) -> dict[int, int]:
    import redis

    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    try:
        with client.pipeline(transaction=False) as pipe:
            for room_id in room_ids:
                pipe.hlen(f"{prefix}:presence:{room_id}:refs")
            return {room_id: int(n) for room_id, n in zip(room_ids, pipe.execute(), strict=True)}
    finally:
        client.close()
