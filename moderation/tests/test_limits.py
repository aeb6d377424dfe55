"""A member's send limits (moderation/limits.py), in memory and in Redis: the same rules,
exact under any interleaving, and a refused send records nothing."""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.utils import timezone

from moderation import limits
from moderation.limits import check_sends_allowed, claim_sends
from rooms.extensions import SendContext

# Mid-window and on a whole millisecond, so that retry_after comes out exact.
T = 1_700_000_001.0
ROOM, OTHER_ROOM = 1, 2
USER, OTHER_USER = 10, 11


@pytest.fixture(
    params=["memory", pytest.param("redis", marks=pytest.mark.redis)],
)
def store(request, settings):
    """Which store the claims go to; the default limits: 5 sends in 5 s, 20 in 30 s."""
    if request.param == "redis":
        request.getfixturevalue("redis_layer")
    settings.CHAT_SEND_RATE_BURST = (5, 5)
    settings.CHAT_SEND_RATE_SUSTAINED = (20, 30)
    return request.param


def claim_send(*, room_id: int, user_id: int, slow_mode_seconds: int, now: float | None = None):
    [refusal] = claim_sends([(room_id, user_id, slow_mode_seconds)], now=now)
    return refusal


def claim(at: float, *, room_id: int = ROOM, user_id: int = USER, slow_mode_seconds: int = 0):
    return claim_send(room_id=room_id, user_id=user_id, slow_mode_seconds=slow_mode_seconds, now=at)


def refusal(error) -> tuple[str, float] | None:
    return None if error is None else (error.code, round(error.retry_after, 3))


# The burst window.


def test_five_sends_in_five_seconds_pass_and_the_sixth_waits_for_the_first_to_leave(store):
    assert [claim(T) for _ in range(5)] == [None] * 5

    error = claim(T)

    assert refusal(error) == ("rate_limited", 5.0)
    assert error.detail == "You are sending too fast: at most 5 messages in 5 s."
    assert refusal(claim(T + 4.999)) == ("rate_limited", 0.001)
    assert claim(T + 5) is None


def test_the_burst_window_slides_with_each_send(store):
    for i in range(5):
        assert claim(T + i) is None

    assert refusal(claim(T + 4.5)) == ("rate_limited", 0.5)
    assert claim(T + 5) is None
    # Now the sends at T+1..T+5 are in the window: the next waits for T+1's to leave.
    assert refusal(claim(T + 5)) == ("rate_limited", 1.0)


# The sustained window.


def test_the_sustained_window_holds_across_bursts(store, settings):
    settings.CHAT_SEND_RATE_SUSTAINED = (8, 30)
    for i in range(8):
        assert claim(T + 6 * (i // 4) + i % 4 * 0.1) is None

    error = claim(T + 12)

    assert refusal(error) == ("rate_limited", 18.0)
    assert error.detail == "You are sending too fast: at most 8 messages in 30 s."
    assert claim(T + 30) is None


def test_retry_after_is_the_longest_wait_of_the_windows_that_refuse(store, settings):
    settings.CHAT_SEND_RATE_BURST = (2, 5)
    settings.CHAT_SEND_RATE_SUSTAINED = (3, 30)
    assert [claim(T), claim(T + 5), claim(T + 5)] == [None, None, None]

    # Both windows refuse: a retry after the burst window's 4 s would be refused again.
    error = claim(T + 6)

    assert refusal(error) == ("rate_limited", 24.0)
    assert error.detail == "You are sending too fast: at most 3 messages in 30 s."


# Slow mode.


def test_slow_mode_lets_one_send_per_interval_with_retry_after(store):
    assert claim(T, slow_mode_seconds=10) is None

    error = claim(T + 3, slow_mode_seconds=10)

    assert refusal(error) == ("slow_mode", 7.0)
    assert error.detail == "Slow mode: one message every 10 s."
    assert refusal(claim(T + 9.999, slow_mode_seconds=10)) == ("slow_mode", 0.001)
    assert claim(T + 10, slow_mode_seconds=10) is None


def test_a_shorter_slow_mode_applies_at_once_to_the_last_send(store):
    assert claim(T, slow_mode_seconds=30) is None

    assert refusal(claim(T + 3, slow_mode_seconds=5)) == ("slow_mode", 2.0)
    assert claim(T + 5, slow_mode_seconds=5) is None


def test_sends_without_slow_mode_do_not_start_a_slow_mode_wait(store):
    assert claim(T) is None

    assert claim(T + 1, slow_mode_seconds=10) is None


# A refused send records nothing.


def test_sends_refused_by_slow_mode_do_not_count_against_the_rate_limit(store, settings):
    settings.CHAT_SEND_RATE_BURST = (2, 100)
    assert claim(T, slow_mode_seconds=10) is None
    for i in range(1, 10):
        assert refusal(claim(T + i, slow_mode_seconds=10)) == ("slow_mode", 10.0 - i)

    assert claim(T + 10, slow_mode_seconds=10) is None
    assert refusal(claim(T + 20, slow_mode_seconds=10)) == ("rate_limited", 80.0)


def test_a_send_refused_by_the_rate_limit_does_not_start_a_slow_mode_wait(store, settings):
    settings.CHAT_SEND_RATE_BURST = (1, 5)
    assert claim(T, slow_mode_seconds=3) is None

    assert refusal(claim(T + 4, slow_mode_seconds=3)) == ("rate_limited", 1.0)
    assert claim(T + 5, slow_mode_seconds=3) is None


def test_refused_sends_do_not_push_the_rate_limit_back(store):
    assert [claim(T) for _ in range(5)] == [None] * 5
    for i in range(1, 5):
        assert refusal(claim(T + i)) == ("rate_limited", 5.0 - i)

    assert claim(T + 5) is None


# Whose counts are whose.


def test_slow_mode_is_per_room_and_per_user(store):
    assert claim(T, slow_mode_seconds=30) is None

    assert claim(T, room_id=OTHER_ROOM, slow_mode_seconds=30) is None
    assert claim(T, user_id=OTHER_USER, slow_mode_seconds=30) is None
    assert refusal(claim(T + 1, slow_mode_seconds=30)) == ("slow_mode", 29.0)


def test_the_rate_limit_is_per_user_across_rooms(store):
    for room_id in (ROOM, ROOM, ROOM, OTHER_ROOM, OTHER_ROOM):
        assert claim(T, room_id=room_id) is None

    assert refusal(claim(T, room_id=OTHER_ROOM)) == ("rate_limited", 5.0)
    assert [claim(T, user_id=OTHER_USER) for _ in range(5)] == [None] * 5


# Exactness under concurrency: many threads claim at the same instant.


def claim_from_threads(n: int, **kwargs) -> list:
    start = threading.Barrier(n)

    def one(_):
        start.wait()
        return claim(T, **kwargs)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def test_concurrent_claims_let_exactly_the_burst_through(store):
    answers = claim_from_threads(40)

    assert answers.count(None) == 5
    assert {refusal(error) for error in answers if error is not None} == {("rate_limited", 5.0)}


def test_concurrent_claims_under_slow_mode_let_exactly_one_through(store):
    answers = claim_from_threads(40, slow_mode_seconds=30)

    assert answers.count(None) == 1
    assert {refusal(error) for error in answers if error is not None} == {("slow_mode", 30.0)}


# A writer's batch: many claims in one call, in order.


def test_a_batch_of_claims_is_taken_in_order_each_seeing_those_before_it(store):
    answers = claim_sends([(ROOM, USER, 0)] * 7 + [(ROOM, OTHER_USER, 0)], now=T)

    assert answers[:5] == [None] * 5
    assert [refusal(error) for error in answers[5:7]] == [("rate_limited", 5.0)] * 2
    # Another user's limits are their own.
    assert answers[7] is None
    # The refused two recorded nothing: the window has room again when the first five leave.
    assert claim(T + 5) is None


def test_a_batch_under_slow_mode_lets_one_send_of_each_user_through(store):
    answers = claim_sends([(ROOM, USER, 30), (ROOM, OTHER_USER, 30), (ROOM, USER, 30)], now=T)

    assert [refusal(error) for error in answers] == [None, None, ("slow_mode", 30.0)]


def test_a_batch_is_one_call_to_redis(redis_layer, monkeypatch):
    calls = count_script_calls(monkeypatch)

    answers = check_sends_allowed(
        [
            context(user_id=USER),
            context(user_id=OTHER_USER, banned_until=timezone.now()),
            context(user_id=OTHER_USER, exempt=True),
            context(user_id=OTHER_USER),
        ]
    )

    assert [None if a is None else a.code for a in answers] == [None, "banned", None, None]
    # The banned and the exempt send are not claimed; the other two in one call.
    assert len(calls) == 1
    assert len(calls[0]["keys"]) == 4


def test_an_empty_batch_claims_nothing(store):
    assert claim_sends([], now=T) == []
    assert check_sends_allowed([]) == []


# The store's own clock.


def test_without_now_the_store_clock_is_used(store):
    for _ in range(5):
        assert claim_send(room_id=ROOM, user_id=USER, slow_mode_seconds=0) is None

    error = claim_send(room_id=ROOM, user_id=USER, slow_mode_seconds=0)

    assert error.code == "rate_limited"
    assert 0 < error.retry_after <= 5


# check_sends_allowed: the checks before the claim.


def context(**overrides) -> SendContext:
    arguments = {
        "room_id": ROOM,
        "user_id": USER,
        "exempt": False,
        "banned_until": None,
        "muted_until": None,
        "slow_mode_seconds": 0,
        "last_sent_at": None,
        "now": timezone.now(),
    }
    return SendContext(**{**arguments, **overrides})


def check(**overrides):
    [answer] = check_sends_allowed([context(**overrides)])
    return answer


def test_the_team_and_staff_are_not_limited_and_count_nothing(store):
    for _ in range(20):
        assert check(exempt=True, slow_mode_seconds=120) is None

    assert claim_send(room_id=ROOM, user_id=USER, slow_mode_seconds=120) is None


def test_slow_mode_is_also_checked_against_the_last_stored_message(store):
    now = timezone.now()

    error = check(slow_mode_seconds=10, last_sent_at=now - timedelta(seconds=2), now=now)

    assert refusal(error) == ("slow_mode", 8.0)
    # Refused before the claim: nothing was counted.
    assert claim(T, slow_mode_seconds=10) is None


def test_a_ban_or_a_mute_refuses_before_the_limits_and_counts_nothing(store):
    now = timezone.now()

    assert check(banned_until=now + timedelta(days=1), now=now).code == "banned"
    assert refusal(check(muted_until=now + timedelta(seconds=60), now=now)) == ("muted", 60.0)
    assert claim(T, slow_mode_seconds=10) is None


def test_a_send_that_passes_is_counted(store):
    assert check(slow_mode_seconds=10) is None

    assert check(slow_mode_seconds=10).code == "slow_mode"


# When Redis fails.


@pytest.fixture
def dead_redis(settings, monkeypatch):
    """Limits pointed at a Redis that refuses connections (nothing listens on port 1);
    the calls that reach it are counted."""
    monkeypatch.setattr(limits, "_next_warning", 0.0)
    # Longer than any test: whether a claim skips Redis must not depend on timing.
    monkeypatch.setattr(limits, "OUTAGE_HOLD_SECONDS", 3600.0)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.CHANNEL_LAYERS = {"default": {"CONFIG": {"prefix": f"chatsite-test-{uuid.uuid4().hex[:10]}"}}}
    return count_script_calls(monkeypatch)


def count_script_calls(monkeypatch) -> list[dict]:
    """The calls of the limits store's claim script from now on (their keys and args)."""
    store = limits.get_limits()
    calls = []
    script = store._claim

    def counted(**kwargs):
        calls.append(kwargs)
        return script(**kwargs)

    monkeypatch.setattr(store, "_claim", counted)
    return calls


def test_when_redis_fails_sends_pass_with_one_warning_and_the_database_slow_mode_still_holds(dead_redis, caplog):
    with caplog.at_level(logging.WARNING, logger="moderation.limits"):
        answers = [claim(T, slow_mode_seconds=30) for _ in range(10)]
        error = check(slow_mode_seconds=30, last_sent_at=timezone.now() - timedelta(seconds=1))

    assert answers == [None] * 10
    assert [r.getMessage() for r in caplog.records] == [
        "Send limits unavailable (Redis failed); letting member sends through"
    ]
    assert error.code == "slow_mode"
    # After the first failure, claims skip Redis instead of each waiting on it.
    assert len(dead_redis) == 1
