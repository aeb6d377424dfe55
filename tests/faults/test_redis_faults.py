"""Scenarios: the channel layer's Redis dies, or freezes, while a room is at its busiest.

Each test runs its own redis-server (the shared one serves other runs) and two daphne
processes on it. The log in the database is the truth: whatever live delivery loses while
Redis is gone, every client must end with every stored event exactly once; sockets that
stayed open through the fault must hear live events again once Redis is back (not only
through their own pings); and the roster, which lives in Redis, must be rebuilt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from tests.faults.conftest import PrivateRedis
from tests.faults.harness import (
    Burst,
    CpuMeter,
    PingProbe,
    assert_live_everywhere,
    check_each_send_stored_once,
    check_exactly_once,
    make_cast,
    report,
    settle,
    start_all,
    stop_all,
    stored_client_ids,
    stored_seqs,
    wait_for_roster_count,
    wait_subscribed,
)
from tests.faults.resilient import ResilientClient

pytestmark = [pytest.mark.faults, pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]

RATE = 200
SECONDS = 2.5
SENDERS = 20
# The beat that re-adds a process's connections runs every CHAT_PRESENCE_BEAT_SECONDS (10).
PRESENCE_RECOVERY_SECONDS = 15.0
RESUBSCRIBE_SECONDS = 5.0
# Generous: on a loaded two-core machine the processes may still be working off the
# burst when Redis comes back, and the point is what arrives, not how fast.
SETTLE_SECONDS = 60.0


async def run_redis_fault(
    redis: PrivateRedis,
    servers_on,
    slug: str,
    fault: Callable[[], Awaitable[None]],
) -> dict:
    servers = servers_on(redis, 2)
    cast = await make_cast(slug, moderators=2, members=6)
    senders = [
        ResilientClient(servers, slug, user=cast.moderators[n % 2], home=n % 2, label=f"sender{n}")
        for n in range(SENDERS)
    ]
    watchers = [
        ResilientClient(servers, slug, user=m, home=n % 2, label=f"watcher{n}") for n, m in enumerate(cast.members)
    ]
    everyone = await start_all([*senders, *watchers])
    probes = [await PingProbe(server, slug).start() for server in servers]
    prefix = servers[0].redis_prefix
    try:
        meter = CpuMeter({"a": servers[0].pid, "b": servers[1].pid}).start()
        burst = Burst(senders, rate=RATE, seconds=SECONDS, tag="b")
        running = asyncio.create_task(burst.run(ack_within=SETTLE_SECONDS))
        await asyncio.sleep(0.5)
        fault_began = time.monotonic()
        await fault()
        recovered_at = time.monotonic()
        # Both processes listen again: to the room (events) and to the site (user controls).
        resubscribed = await asyncio.gather(
            wait_subscribed(redis.url, f"{prefix}__group__room.{cast.room.pk}", 2, within=RESUBSCRIBE_SECONDS),
            wait_subscribed(redis.url, f"{prefix}__group__site", 2, within=RESUBSCRIBE_SECONDS),
        )
        # Expected: 2 moderators and 6 members, the two anonymous ping probes, and the
        # anonymous newcomer asking. Polled while the processes still work off the burst.
        presence = asyncio.create_task(
            wait_for_roster_count(servers, slug, 2 + 6 + 2 + 1, within=PRESENCE_RECOVERY_SECONDS)
        )
        acks = await running
        cpu = meter.stop()
        head = await settle(everyone, cast.room.pk, timeout=SETTLE_SECONDS)
        caught_up_after = time.monotonic() - recovered_at
        presence_s = await presence

        stored = await stored_seqs(cast.room.pk)
        figures = check_exactly_once(everyone, stored)
        check_each_send_stored_once(acks, await stored_client_ids(cast.room.pk))

        # Sockets that lived through the fault, on both processes, hear the next events
        # live: one sent through each process.
        survivors = [c for c in everyone if c.stats.connections == 1]
        assert len(survivors) >= len(everyone) - 2, [c.stats for c in everyone if c.stats.connections > 1]
        through = [next(s for s in senders if s.server is server) for server in servers]
        live_s = await assert_live_everywhere(survivors, through, "after")

        for server in servers:
            assert server.alive(), server.output()[-3000:]
            status, body = server.get("/healthz")
            assert status == 200, body
        return {
            "head": head,
            **burst.figures(),
            **figures,
            "fault_s": round(recovered_at - fault_began, 1),
            "resubscribed_after_s": round(max(resubscribed), 2),
            "roster_correct_after_s": round(presence_s, 1),
            "caught_up_after_recovery_s": round(caught_up_after, 1),
            "next_live_event_s": round(live_s, 2),
            "worst_pong_wait_s": round(max(p.worst(since=fault_began - 1) for p in probes), 2),
            "survivors": len(survivors),
            "server_tracebacks": sum(s.output().count("Traceback") for s in servers),
            **cpu,
        }
    finally:
        await stop_all(everyone)
        for probe in probes:
            await probe.stop()


async def test_redis_killed_for_5_s_mid_burst_and_restarted_empty_loses_nothing_and_recovers(private_redis, servers_on):
    async def kill_then_restart() -> None:
        private_redis.kill()
        await asyncio.sleep(5.0)
        # Same port, nothing in it: subscriptions, presence and connection counts are gone.
        private_redis.start()

    figures = await run_redis_fault(private_redis, servers_on, "redis-kill", kill_then_restart)
    report("redis SIGKILL 5 s", **figures)


async def test_redis_paused_for_3_s_mid_burst_loses_nothing_and_recovers(private_redis, servers_on):
    async def pause_then_resume() -> None:
        private_redis.pause()
        try:
            await asyncio.sleep(3.0)
        finally:
            private_redis.resume()

    figures = await run_redis_fault(private_redis, servers_on, "redis-pause", pause_then_resume)
    report("redis SIGSTOP 3 s", **figures)


async def test_viewer_can_join_and_resume_from_the_log_while_redis_is_down(private_redis, servers_on):
    """The welcome carries the log, which lives in the database; only its roster lives in
    Redis. Reading that roster (and subscribing) unguarded used to close every new or
    resuming connection 1011 for as long as Redis was down."""
    (server,) = servers_on(private_redis, 1)
    cast = await make_cast("redis-down-join", moderators=1, members=2)
    host = await ResilientClient([server], "redis-down-join", user=cast.moderators[0]).start()
    try:
        for i in range(5):
            await host.send_until_acked(f"before {i}", f"before-{i}")
        private_redis.kill()
        # What stays up: the log. Sends are stored (their publish fails and is logged).
        during = await host.send_until_acked("during", "during")
        assert during["seq"] == 6

        # A viewer whose socket dropped comes back with ?after, as the protocol says.
        resuming = ResilientClient([server], "redis-down-join", user=cast.members[0], after=2, reconnect=False)
        try:
            await resuming.start(timeout=10)
            await resuming.caught_up(6, timeout=5)
            assert resuming.applied == [3, 4, 5, 6]
            assert not resuming.duplicates
        finally:
            close_codes = list(resuming.stats.close_codes)
            await resuming.stop()
        assert close_codes == [], f"closed with {close_codes} before any welcome"
    finally:
        await host.stop()


async def test_pings_and_sends_are_answered_while_redis_hangs(private_redis, servers_on):
    """A send's publish used to run in the database thread every connection of a process
    shares, on a Redis connection with no socket timeout: a hanging Redis then held up
    every ping, sync, send and welcome of the process."""
    (server,) = servers_on(private_redis, 1)
    cast = await make_cast("redis-hang", moderators=1, members=1)
    host = await ResilientClient([server], "redis-hang", user=cast.moderators[0], ping_every=60).start()
    viewer = await ResilientClient([server], "redis-hang", user=cast.members[0], ping_every=60).start()
    try:
        await host.send_until_acked("before", "before")
        private_redis.pause()
        try:
            # Stored during the hang; its publish then waits on Redis, off the database thread.
            began = time.monotonic()
            sent = await host.request({"type": "send", "body": "during", "client_id": "during"}, timeout=5)
            send_s = time.monotonic() - began
            began = time.monotonic()
            pong = await viewer.request({"type": "ping", "ts": 1, "client_id": "ping"}, timeout=5)
            pong_s = time.monotonic() - began
            synced = await viewer.request({"type": "sync", "after": 0, "client_id": "sync"}, timeout=5)
        finally:
            private_redis.resume()
        assert sent["type"] == "ack" and send_s < 2.0, (sent, send_s)
        assert pong["type"] == "pong" and pong["last_seq"] == 2 and pong_s < 2.0, (pong, pong_s)
        assert synced["type"] == "synced" and synced["last_seq"] == 2
        await viewer.caught_up(2)
        assert not viewer.duplicates
    finally:
        await stop_all([host, viewer])


async def test_a_newcomer_gets_its_welcome_from_the_log_while_redis_hangs(private_redis, servers_on):
    (server,) = servers_on(private_redis, 1)
    cast = await make_cast("redis-hang-join", moderators=1, members=0)
    host = await ResilientClient([server], "redis-hang-join", user=cast.moderators[0], ping_every=60).start()
    newcomer = ResilientClient([server], "redis-hang-join", after=0, reconnect=False)
    try:
        await host.send_until_acked("before", "before")
        private_redis.pause()
        try:
            began = time.monotonic()
            try:
                await newcomer.start(timeout=5)
                welcome_s = time.monotonic() - began
            except AssertionError:
                welcome_s = float("inf")
        finally:
            private_redis.resume()
        assert welcome_s < 2.0, f"while Redis hung, a newcomer waited {welcome_s:.1f} s for its welcome"
        assert newcomer.applied == [1]
    finally:
        await stop_all([host, newcomer])
