"""Scenario: clients drop and come back with ?after=N while the room is at its busiest."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.harness import (
    Burst,
    CpuMeter,
    check_each_send_stored_once,
    check_exactly_once,
    fanout_lag_figures,
    latency_figures,
    make_cast,
    report,
    settle,
    start_all,
    stop_all,
    stored_client_ids,
    stored_seqs,
)
from tests.faults.resilient import ResilientClient

pytestmark = [pytest.mark.faults, pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]

RATE = 200
SECONDS = 3.0
SENDERS = 20


async def test_clients_reconnecting_with_after_mid_burst_miss_nothing_and_get_nothing_twice(private_redis, servers_on):
    servers = servers_on(private_redis, 2)
    cast = await make_cast("resume", moderators=2, members=6)
    # Each sender connection stays within the per-connection command budget (10 a second).
    senders = [
        ResilientClient(servers, "resume", user=cast.moderators[n % 2], home=n % 2, label=f"sender{n}")
        for n in range(SENDERS)
    ]
    watchers = [
        ResilientClient(servers, "resume", user=member, home=n % 2, label=f"watcher{n}")
        for n, member in enumerate(cast.members)
    ]
    everyone = await start_all([*senders, *watchers])
    try:
        burst = Burst(senders, rate=RATE, seconds=SECONDS, tag="r")
        meter = CpuMeter({"a": servers[0].pid, "b": servers[1].pid}).start()
        running = asyncio.create_task(burst.run())

        # Drops spread over the burst: clean closes and lost networks, watchers and senders.
        async def drop(client: ResilientClient, at: float, *, abrupt: bool) -> None:
            await asyncio.sleep(at)
            if abrupt:
                client.abort()
            else:
                await client.bounce()

        await asyncio.gather(
            drop(watchers[0], 0.5, abrupt=False),
            drop(watchers[1], 1.0, abrupt=True),
            drop(watchers[2], 1.5, abrupt=False),
            drop(watchers[0], 2.0, abrupt=True),
            drop(senders[3], 1.2, abrupt=False),
            drop(senders[8], 1.8, abrupt=True),
        )
        acks = await running
        cpu = meter.stop()
        head = await settle(everyone, cast.room.pk, timeout=60)
        stored = await stored_seqs(cast.room.pk)
        figures = check_exactly_once(everyone, stored)
        check_each_send_stored_once(acks, await stored_client_ids(cast.room.pk))
        dropped = (watchers[0], watchers[1], watchers[2], senders[3], senders[8])
        # Each came back mid-stream: with an ?after that was neither the start nor the end.
        assert all(any(0 < n < head for n in c.stats.resumed_after) for c in dropped), [
            c.stats.resumed_after for c in dropped
        ]
        report(
            "reconnect mid-burst",
            head=head,
            resumed_after=[n for c in dropped for n in c.stats.resumed_after],
            **burst.figures(),
            **figures,
            **latency_figures(watchers),
            **fanout_lag_figures(watchers, burst),
            **cpu,
        )
    finally:
        await stop_all(everyone)
