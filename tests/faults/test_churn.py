"""Scenario: 200 connections come and go in waves while the room keeps talking.

Viewers leave every way a browser does: a clean close, a dropped network (no close
frame), or leaving before the welcome has even arrived. The viewers who stay must miss
nothing, and the roster, which counted every newcomer, must come back to the true number.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from websockets.asyncio.client import connect

from tests.faults.harness import (
    Burst,
    check_exactly_once,
    make_cast,
    report,
    settle,
    start_all,
    stop_all,
    stored_seqs,
    wait_for_roster_count,
)
from tests.faults.resilient import ResilientClient
from tests.live.clients import session_cookie_for

pytestmark = [pytest.mark.faults, pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]

WAVES = 4
PER_WAVE = 50
CHURN_USERS = 10
RATE = 40
PRESENCE_SECONDS = 30.0


@sync_to_async
def churn_cookies(slug: str) -> list[dict[str, str]]:
    users = get_user_model().objects
    return [session_cookie_for(users.create_user(username=f"{slug}-churn{i}")) for i in range(CHURN_USERS)]


async def churner(server, slug: str, cookie: dict[str, str] | None, how: str, stay: float, tally: dict) -> None:
    headers = [("Cookie", f"{cookie['name']}={cookie['value']}")] if cookie else []
    try:
        ws = await connect(
            f"{server.ws_url}/ws/rooms/{slug}/",
            origin=server.origin,
            additional_headers=headers,
            open_timeout=15,
            ping_interval=None,
            proxy=None,
            max_size=None,
        )
    except Exception as exc:
        tally["refused"].append(repr(exc))
        return
    try:
        if how == "early":
            # Gone before the welcome was read (it may not even have been sent).
            ws.transport.abort()
            return
        first = json.loads(await asyncio.wait_for(ws.recv(), 15))
        assert first["type"] == "welcome", first
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(stay):
                async for _ in ws:
                    pass
        if how == "abort":
            ws.transport.abort()
        else:
            await ws.close()
        tally[how] += 1
    except Exception as exc:
        tally["failed"].append(repr(exc))
        ws.transport.abort()


async def test_survivors_miss_nothing_and_the_roster_recovers_after_200_connections_churn(private_redis, servers_on):
    servers = servers_on(private_redis, 2)
    slug = "churn"
    cast = await make_cast(slug, moderators=2, members=4)
    cookies = await churn_cookies(slug)
    senders = [
        ResilientClient(servers, slug, user=cast.moderators[n % 2], home=n % 2, label=f"sender{n}") for n in range(4)
    ]
    stayers = [
        ResilientClient(servers, slug, user=m, home=n % 2, label=f"stayer{n}") for n, m in enumerate(cast.members)
    ]
    everyone = await start_all([*senders, *stayers])
    tally: dict = {"clean": 0, "abort": 0, "early": 0, "refused": [], "failed": []}
    try:
        burst = Burst(senders, rate=RATE, seconds=WAVES * 2.0, tag="c")
        running = asyncio.create_task(burst.run(ack_within=60))
        ways = ("clean", "abort", "early", "clean")
        began = time.monotonic()
        waves = []
        for _ in range(WAVES):
            waves.append(
                asyncio.gather(
                    *(
                        churner(
                            servers[i % 2],
                            slug,
                            cookies[i % CHURN_USERS] if i % 2 else None,
                            ways[(i // 2) % 4],
                            0.5 + (i % 5) * 0.2,
                            tally,
                        )
                        for i in range(PER_WAVE)
                    )
                )
            )
            await asyncio.sleep(1.5)
        await asyncio.gather(*waves)
        churned_in = time.monotonic() - began
        # Who is really here: 2 moderators, 4 members, and the anonymous newcomer asking.
        presence_s = await wait_for_roster_count(servers, slug, 2 + 4 + 1, within=PRESENCE_SECONDS)
        acks = await running
        head = await settle(everyone, cast.room.pk, timeout=60)
        stored = await stored_seqs(cast.room.pk)
        figures = check_exactly_once(everyone, stored)
        assert not tally["refused"] and not tally["failed"], tally
        report(
            "connection churn",
            head=head,
            sends=len(acks),
            churners=WAVES * PER_WAVE,
            clean=tally["clean"],
            dropped=tally["abort"],
            left_before_welcome=WAVES * PER_WAVE - tally["clean"] - tally["abort"],
            churned_in_s=round(churned_in, 1),
            roster_true_after_s=round(presence_s, 1),
            **figures,
        )
    finally:
        await stop_all(everyone)
