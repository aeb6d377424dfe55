"""Scenario: a server process is SIGKILLed mid-burst; its clients resume on another.

A crash gives the process no chance to say goodbye: its sockets just drop (1006), sends
in flight on them get no reply, and its presence entries stay behind until they age out.
Clients do what the protocol says: reconnect (the next process in their list plays the
proxy sending them to a live one) with ?after, and repeat unacknowledged sends with the
same client_id.
"""

from __future__ import annotations

import asyncio
import time

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


async def test_clients_of_a_killed_process_resume_on_another_without_loss_or_duplicates(private_redis, servers_on):
    doomed, survivor = servers = servers_on(private_redis, 2)
    cast = await make_cast("crash", moderators=2, members=6)
    senders = [
        ResilientClient(servers, "crash", user=cast.moderators[n % 2], home=n % 2, label=f"sender{n}")
        for n in range(SENDERS)
    ]
    watchers = [
        ResilientClient(servers, "crash", user=m, home=n % 2, label=f"watcher{n}") for n, m in enumerate(cast.members)
    ]
    everyone = await start_all([*senders, *watchers])
    victims = [c for c in everyone if c.server is doomed]
    try:
        meter = CpuMeter({"survivor": survivor.pid}).start()
        burst = Burst(senders, rate=RATE, seconds=SECONDS, tag="k")
        running = asyncio.create_task(burst.run(ack_within=60))
        await asyncio.sleep(1.2)
        doomed.kill()
        killed_at = time.monotonic()
        await asyncio.gather(
            *(v.wait_until(lambda v=v: v.server is survivor and v._ready.is_set(), 15, "resumed") for v in victims)
        )
        resumed_s = time.monotonic() - killed_at
        acks = await running
        head = await settle(everyone, cast.room.pk, timeout=60)
        stored = await stored_seqs(cast.room.pk)
        figures = check_exactly_once(everyone, stored)
        check_each_send_stored_once(acks, await stored_client_ids(cast.room.pk))
        assert all(v.stats.close_codes[0] == 1006 for v in victims), [v.stats.close_codes for v in victims]
        # Each victim had seen part of the room before the crash, and the rest after.
        assert all(0 < len([r for r in v.receipts.values() if r.conn == 1]) < len(stored) for v in victims)
        report(
            "daphne SIGKILL",
            head=head,
            victims=len(victims),
            all_resumed_within_s=round(resumed_s, 2),
            **burst.figures(),
            **figures,
            **latency_figures(watchers),
            **fanout_lag_figures(watchers, burst),
            **meter.stop(),
        )
    finally:
        await stop_all(everyone)
