"""Scenario: events stored but never published, the channel-layer loss the log must cover.

There is no seam in the server for dropping deliveries, so the loss is made in this
process instead: the services run here, against the same database, with
rooms.realtime.publish_room_event replaced by a no-op. What they store reaches no
server's hub. Clients must notice, by the next live event's seq or by pong.last_seq, and
fill the hole with `sync`. One server without Redis suffices, so this runs in the
embedded mode too.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async

from rooms import realtime
from rooms.services import do_announce, do_grant_coins, do_send_message, do_send_tip, do_update_room
from tests.faults.harness import check_exactly_once, make_cast, report, settle, start_all, stop_all, stored_seqs
from tests.faults.resilient import PONG_GRACE_SECONDS, ResilientClient

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

ROUNDS = 24
PING_EVERY = 1.0


async def test_events_that_were_never_published_are_filled_from_the_log(daphne_servers, monkeypatch):
    (server,) = daphne_servers(1)
    cast = await make_cast("lost", moderators=1, members=4)
    monkeypatch.setattr(realtime, "publish_room_event", lambda *args, **kwargs: None)
    room_id = cast.room.pk
    host, member = cast.host, cast.members[0]
    await sync_to_async(do_grant_coins)(None, user_id=member.pk, amount=1000)

    @sync_to_async
    def store_unpublished(n: int) -> int:
        # A mix of event types: the gap is in the log's seq, whatever fills it.
        kind = n % 4
        if kind == 0:
            event = do_send_message(host, room_id=room_id, body=f"unpublished {n}")
        elif kind == 1:
            event = do_announce(host, room_id=room_id, body=f"notice {n}")
        elif kind == 2:
            event = do_update_room(host, room_id=room_id, title=f"Title {n}")
        else:
            event = do_send_tip(member, room_id=room_id, amount=5, body=f"tip {n}", client_id=f"t{n}")
        return event.seq

    sender = ResilientClient([server], "lost", user=cast.moderators[0], ping_every=PING_EVERY, label="sender")
    watchers = [
        ResilientClient([server], "lost", user=m, ping_every=PING_EVERY, label=f"watcher{n}")
        for n, m in enumerate(cast.members)
    ]
    everyone = await start_all([sender, *watchers])
    try:
        lost = []
        for n in range(ROUNDS):
            await sender.send_until_acked(f"live {n}", f"live-{n}")
            if n % 3 == 1:
                # Followed by a live event: found by the seq gap.
                lost.append(await store_unpublished(n))
            await asyncio.sleep(0.05)
        await settle(everyone, room_id, timeout=15)
        by_pong_before = {c.label: c.stats.pong_syncs for c in everyone}
        # The last event of all is lost too, and nothing follows it: only pong.last_seq
        # tells (nobody is syncing any more, so no replay brings it by chance).
        final = await store_unpublished(ROUNDS)
        lost.append(final)
        stored_at = time.monotonic()
        head = await settle(everyone, room_id, timeout=PING_EVERY + PONG_GRACE_SECONDS + 10)
        found_last_s = max(c.receipts[final].at for c in everyone) - stored_at
        assert all(c.stats.pong_syncs > by_pong_before[c.label] for c in everyone)
        stored = await stored_seqs(room_id)
        figures = check_exactly_once(everyone, stored)
        assert figures["gap_syncs"] > 0, "no client ever noticed a gap by seq"
        for client in everyone:
            assert all(client.receipts[s].how != "live" for s in lost), "an unpublished event arrived live"
        report(
            "lost publishes",
            head=head,
            unpublished=len(lost),
            last_lost_found_after_s=round(found_last_s, 2),
            **figures,
        )
    finally:
        await stop_all(everyone)
