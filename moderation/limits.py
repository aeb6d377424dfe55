"""A member's send limits: slow mode and the send-rate windows, claimed atomically.

Every server process has its own writer for a room, so two processes check a member's
sends at the same moment. Reading a counter and writing it back separately lets both
pass what only one may; here each attempted send is one atomic claim that checks slow
mode and both rate windows together and records the send only if all of them pass. With
REDIS_URL set the claim is one Lua script, so it holds across every process; without it
(the embedded mode, one process) it runs under a lock in memory, with the same rules.

A claim changes state, so this is a service module, not a selector.
"""

from __future__ import annotations

import bisect
import logging
import secrets
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from rooms.errors import ChatError, RateLimited
from rooms.extensions import SendContext

logger = logging.getLogger(__name__)

# A claim's answer: None when the send is recorded, else (reason, wait in ms), where
# reason 0 is slow mode and i >= 1 the i-th window (burst, then sustained).
Refusal = tuple[int, int] | None

# After a failed Redis call, claims skip Redis for this long: they run in the database
# thread the process's sends share, and while Redis hangs each would wait its timeout.
OUTAGE_HOLD_SECONDS = 1.0
# At most one warning per this many seconds while Redis fails, however many sends.
WARNING_EVERY_SECONDS = 10.0


def check_sends_allowed(sends: list[SendContext]) -> list[ChatError | None]:
    """Why each send may not be posted right now, or None, in which case it is counted
    against slow mode and the rate limits: call it once per attempted send, in the
    order the sends were made. Those that pass the checks below are claimed together,
    in order (one round trip to Redis for a room writer's whole batch)."""
    answers: list[ChatError | None] = []
    claims: list[tuple[int, int, int]] = []
    claimed_at: list[int] = []
    for send in sends:
        refusal = _refusal_before_claim(send)
        answers.append(refusal)
        if refusal is None and not send.exempt:
            claimed_at.append(len(answers) - 1)
            claims.append((send.room_id, send.user_id, send.slow_mode_seconds))
    for at, refusal in zip(claimed_at, claim_sends(claims), strict=True):
        answers[at] = refusal
    return answers


def _refusal_before_claim(send: SendContext) -> ChatError | None:
    if send.banned_until is not None:
        return ChatError(_("You are banned from this room."), code="banned")
    if send.muted_until is not None:
        return ChatError(
            _("You are muted in this room."),
            code="muted",
            retry_after=(send.muted_until - send.now).total_seconds(),
        )
    if send.exempt:
        return None
    if send.slow_mode_seconds and send.last_sent_at is not None:
        wait = send.slow_mode_seconds - (send.now - send.last_sent_at).total_seconds()
        if wait > 0:
            return _slow_mode_error(send.slow_mode_seconds, wait)
    return None


def claim_sends(claims: list[tuple[int, int, int]], *, now: float | None = None) -> list[ChatError | None]:
    """Record each send (room id, user id, slow mode seconds), in order, if it keeps to
    slow mode and to both send-rate windows, atomically across processes; else the
    error that refuses it, with retry_after the wait until a send would pass (the
    longest of the waits that apply), and nothing recorded, so a refused send delays
    nothing. A send sees the claims before it in the list as already made.

    `now`: seconds since the epoch; None is the store's clock (Redis's own, which every
    process shares).

    If Redis fails, the sends are let through, as connection limits are
    (rooms/consumers.py): chat keeps working while the limits are down, a warning is
    logged every WARNING_EVERY_SECONDS, and slow mode still holds through the database
    check in check_sends_allowed.
    """
    if not claims:
        return []
    limits = (settings.CHAT_SEND_RATE_BURST, settings.CHAT_SEND_RATE_SUSTAINED)
    # Sliding windows: fixed ones would let a burst straddle a boundary twice.
    windows = [(count, int(window * 1000)) for count, window in limits]
    now_ms = None if now is None else int(now * 1000)
    asked = [(room_id, user_id, max(0, int(slow * 1000))) for room_id, user_id, slow in claims]
    try:
        refusals = get_limits().claim(asked, now_ms=now_ms, windows=windows)
    except LimitsUnavailable:
        _warn_unavailable()
        return [None] * len(claims)
    return [
        _refusal_error(refusal, slow_mode_seconds, limits)
        for refusal, (_room, _user, slow_mode_seconds) in zip(refusals, claims, strict=True)
    ]


def _refusal_error(refusal: Refusal, slow_mode_seconds: int, limits) -> ChatError | None:
    if refusal is None:
        return None
    reason, wait_ms = refusal
    if reason == 0:
        return _slow_mode_error(slow_mode_seconds, wait_ms / 1000)
    count, window = limits[reason - 1]
    return RateLimited(
        format_lazy(_("You are sending too fast: at most {count} messages in {window} s."), count=count, window=window),
        retry_after=wait_ms / 1000,
    )


def _slow_mode_error(slow_mode_seconds: int, wait: float) -> ChatError:
    # Never more than the interval: the database's clock and Redis's may differ by a hair.
    return ChatError(
        format_lazy(_("Slow mode: one message every {n} s."), n=slow_mode_seconds),
        code="slow_mode",
        retry_after=min(wait, slow_mode_seconds),
    )


class LimitsUnavailable(Exception):
    """Redis failed during a claim, or a moment ago."""


class MemoryLimits:
    """One process's limits, for the embedded mode: the Lua script's rules under a lock.

    The slow-mode slot of a (room, user) lives as long as the interval it was claimed
    with, like the Redis key's PX; a send's time stays in its user's list as long as the
    longest window.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        # (room id, user id) -> (when the last send was recorded, when the slot lapses), ms.
        self.slots: dict[tuple[int, int], tuple[int, int]] = {}
        # user id -> times of the sends recorded in the longest window, ms, ascending.
        self.sends: dict[int, list[int]] = {}
        self.sweep_at = 1024

    def claim(
        self, claims: list[tuple[int, int, int]], *, now_ms: int | None, windows: list[tuple[int, int]]
    ) -> list[Refusal]:
        """Each claim (room id, user id, slow mode in ms) in order, as the script does."""
        with self.lock:
            now = int(self.clock() * 1000) if now_ms is None else now_ms
            return [self._claim(room_id, user_id, slow_ms, now, windows) for room_id, user_id, slow_ms in claims]

    def _claim(self, room_id: int, user_id: int, slow_ms: int, now: int, windows: list[tuple[int, int]]) -> Refusal:
        longest = max(window for _, window in windows)
        reason, wait = -1, 0
        slot = self.slots.get((room_id, user_id))
        if slow_ms > 0 and slot is not None and now < slot[1] and slot[0] + slow_ms - now > 0:
            reason, wait = 0, slot[0] + slow_ms - now
        sent = self.sends.get(user_id, [])
        del sent[: bisect.bisect_right(sent, now - longest)]
        for i, (count, window) in enumerate(windows, start=1):
            recent = sent[bisect.bisect_right(sent, now - window) :]
            if len(recent) >= count and recent[-count] + window - now > wait:
                reason, wait = i, recent[-count] + window - now
        if reason >= 0:
            return reason, wait
        if slow_ms > 0:
            self.slots[(room_id, user_id)] = (now, now + slow_ms)
        bisect.insort(sent, now)
        self.sends[user_id] = sent
        if len(self.slots) + len(self.sends) > self.sweep_at:
            self._sweep(now, longest)
        return None

    def _sweep(self, now: int, longest: int) -> None:
        """Forget lapsed slots and idle users: what Redis's expiry does for its keys."""
        self.slots = {key: slot for key, slot in self.slots.items() if now < slot[1]}
        self.sends = {user: sent for user, sent in self.sends.items() if sent and sent[-1] > now - longest}
        self.sweep_at = max(1024, 2 * (len(self.slots) + len(self.sends)))

    def reset(self) -> None:
        with self.lock:
            self.slots.clear()
            self.sends.clear()


# One call claims a writer's whole batch, in order (each claim sees those before it).
# KEYS: per claim, the slow-mode slot of its room and user (when its last send was
#       recorded, ms; PX the interval) and the user's sends (sorted set: a unique member
#       per send, scored by ms).
# ARGV: now in ms ('' for the server's clock), the number of windows, (count, window in
#       ms) per window, then per claim its slow-mode interval in ms (0: off) and its
#       send's member.
# Returns, per claim, {-1, 0} when the send is recorded, else {reason, wait in ms} as in
# Refusal, flattened.
_CLAIM = """
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[1])
end
local windows, longest = {}, 0
for w = 1, tonumber(ARGV[2]) do
  local count, window = tonumber(ARGV[1 + 2 * w]), tonumber(ARGV[2 + 2 * w])
  windows[w] = {count, window}
  longest = math.max(longest, window)
end
local base = 2 + 2 * #windows
local answers = {}
for c = 1, #KEYS / 2 do
  local slot_key, sends_key = KEYS[2 * c - 1], KEYS[2 * c]
  local slow, member = tonumber(ARGV[base + 2 * c - 1]), ARGV[base + 2 * c]
  local reason, wait = -1, 0
  if slow > 0 then
    local last = redis.call('GET', slot_key)
    if last and tonumber(last) + slow - now > 0 then
      reason, wait = 0, tonumber(last) + slow - now
    end
  end
  redis.call('ZREMRANGEBYSCORE', sends_key, '-inf', now - longest)
  for w, limit in ipairs(windows) do
    local count, window = limit[1], limit[2]
    -- The count-th newest send in the window: the window has room again once it leaves.
    local nth = redis.call('ZREVRANGEBYSCORE', sends_key, '+inf', '(' .. (now - window),
      'WITHSCORES', 'LIMIT', count - 1, 1)
    if #nth > 0 and tonumber(nth[2]) + window - now > wait then
      reason, wait = w, tonumber(nth[2]) + window - now
    end
  end
  if reason < 0 then
    if slow > 0 then redis.call('SET', slot_key, now, 'PX', slow) end
    redis.call('ZADD', sends_key, now, member)
    redis.call('PEXPIRE', sends_key, longest)
  end
  answers[2 * c - 1], answers[2 * c] = reason, wait
end
return answers
"""


class RedisLimits:
    """The limits every process shares, for the scale-out mode."""

    def __init__(self, client, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.down_until = 0.0
        self._claim = client.register_script(_CLAIM)

    def claim(
        self, claims: list[tuple[int, int, int]], *, now_ms: int | None, windows: list[tuple[int, int]]
    ) -> list[Refusal]:
        """Each claim (room id, user id, slow mode in ms) in order, in one script call."""
        if time.monotonic() < self.down_until:
            raise LimitsUnavailable("Redis failed a moment ago")
        keys: list[str] = []
        args: list = ["" if now_ms is None else now_ms, len(windows)]
        args += [n for window in windows for n in window]
        for room_id, user_id, slow_ms in claims:
            keys += [f"{self.prefix}:limits:slow:{room_id}:{user_id}", f"{self.prefix}:limits:sends:{user_id}"]
            args += [slow_ms, secrets.token_hex(8)]
        try:
            flat = self._claim(keys=keys, args=args)
        except Exception as exc:
            self.down_until = time.monotonic() + OUTAGE_HOLD_SECONDS
            raise LimitsUnavailable(str(exc)) from exc
        return [
            None if reason < 0 else (int(reason), int(wait)) for reason, wait in zip(flat[::2], flat[1::2], strict=True)
        ]


_memory = MemoryLimits()
_redis: dict[tuple[str, str], RedisLimits] = {}
_redis_lock = threading.Lock()
_next_warning = 0.0


def get_limits() -> MemoryLimits | RedisLimits:
    """The limits store: Redis when REDIS_URL is set, this process's memory otherwise.
    Claims run in sync code (the database thread), so the Redis client is redis-py's
    sync one, made once per URL and key prefix."""
    if not settings.REDIS_URL:
        return _memory
    where = (settings.REDIS_URL, settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"])
    store = _redis.get(where)
    if store is None:
        with _redis_lock:
            store = _redis.get(where)
            if store is None:
                import redis

                client = redis.Redis.from_url(
                    where[0],
                    # Short, like presence's: a send waits on this in the thread every
                    # send of the process shares.
                    socket_timeout=1,
                    socket_connect_timeout=1,
                )
                store = _redis[where] = RedisLimits(client, where[1])
    return store


def _warn_unavailable() -> None:
    global _next_warning
    if time.monotonic() >= _next_warning:
        _next_warning = time.monotonic() + WARNING_EVERY_SECONDS
        logger.warning("Send limits unavailable (Redis failed); letting member sends through", exc_info=True)
