"""Flooding: too many sockets, too many commands, too many bytes from one client.

Each limit protects everybody else in the room: past it the offender gets errors, then
is closed (4429), and the server's memory does not grow with what one client sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.faults.harness import make_cast, report, rss_kib
from tests.faults.rawws import open_raw
from tests.faults.resilient import ResilientClient
from tests.live.clients import session_cookie_for

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

USER_LIMIT = 5


@pytest.mark.multiprocess
async def test_one_connection_over_the_per_user_limit_across_processes_is_closed_4429(private_redis, servers_on):
    a, b = servers_on(private_redis, 2, env={"CHAT_MAX_CONNECTIONS_PER_USER": str(USER_LIMIT)})
    cast = await make_cast("limit", moderators=0, members=2)
    alice, bob = cast.members

    def tab(server, user, n):
        label = f"{user.username}#{n}"
        return ResilientClient([server], "limit", user=user, label=label, reconnect=False, ping_every=60)

    # The limit counts sockets on every process: 3 here, 2 there.
    open_tabs = [tab([a, b][n % 2], alice, n) for n in range(USER_LIMIT)]
    for t in open_tabs:
        await t.start()
    extra = tab(a, alice, USER_LIMIT)
    others = [tab(b, bob, 0)]
    try:
        with pytest.raises(AssertionError, match="no welcome"):
            await extra.start(timeout=5)
        await extra.wait_until(lambda: extra.final_close is not None, 10, "closed")
        assert extra.final_close == 4429, extra.stats.close_codes
        assert not extra.welcomes, "refused, yet welcomed first"
        # Someone else is not affected, and a freed slot can be used again.
        await others[0].start()
        await open_tabs[0].stop()
        again = tab(b, alice, "again")
        others.append(again)
        # The slot is released when the server has seen the close.
        await asyncio.sleep(0.5)
        await again.start()
        assert again.welcomes
    finally:
        for t in [*open_tabs, extra, *others]:
            await t.stop()


async def test_a_command_flood_gets_rate_limited_errors_then_a_4429_close(daphne_servers):
    (server,) = daphne_servers(1)
    cast = await make_cast("flood", moderators=0, members=2)
    bystander = await ResilientClient([server], "flood", user=cast.members[1], ping_every=60).start()
    cookie = await sync_to_async(session_cookie_for)(cast.members[0])
    try:
        async with connect(
            f"{server.ws_url}/ws/rooms/flood/",
            origin=server.origin,
            additional_headers=[("Cookie", f"{cookie['name']}={cookie['value']}")],
            proxy=None,
            ping_interval=None,
        ) as ws:
            assert json.loads(await ws.recv())["type"] == "welcome"
            for n in range(300):
                await ws.send(json.dumps({"type": "ping", "ts": n, "client_id": f"f{n}"}))
            replies = []
            with contextlib.suppress(ConnectionClosed):
                async for frame in ws:
                    obj = json.loads(frame)
                    replies.extend(obj["events"] if obj["type"] == "batch" else [obj])
            close_code = ws.close_code
        pongs = [r for r in replies if r["type"] == "pong"]
        limited = [r for r in replies if r["type"] == "error" and r["code"] == "rate_limited"]
        assert pongs, "no command at all was served"
        assert limited and all(r["retry_after"] > 0 for r in limited)
        # The burst allowance is served in full before anything is refused.
        assert all(r["type"] == "pong" for r in replies[: int(0.9 * 40)]), replies[:40]
        assert close_code == 4429, close_code
        assert (await bystander.request({"type": "ping", "ts": 0, "client_id": "ok"}))["type"] == "pong"
        report("command flood", sent=300, pongs=len(pongs), rate_limited=len(limited), close=close_code)
    finally:
        await bystander.stop()


MAX_FRAME = 8192
# Far more than the command budget lets through: the rest must be dropped, not queued.
BLAST_BYTES = 48 << 20
RSS_GROWTH_LIMIT_KIB = 64 * 1024


async def test_one_client_blasting_max_size_frames_does_not_grow_server_memory(daphne_servers):
    (server,) = daphne_servers(1)
    cast = await make_cast("blast", moderators=0, members=2)
    bystander = await ResilientClient([server], "blast", user=cast.members[1], ping_every=60).start()
    cookie = await sync_to_async(session_cookie_for)(cast.members[0])
    try:
        rss_before = rss_kib(server.pid)
        raw = await open_raw(server, "/ws/rooms/blast/", cookie=cookie)
        assert (await raw.read_json())["type"] == "welcome"
        # The biggest frame a command may be: a ping whose `ts` fills it.
        frame = json.dumps({"type": "ping", "ts": ""})
        frame = json.dumps({"type": "ping", "ts": "x" * (MAX_FRAME - len(frame))})
        assert len(frame) == MAX_FRAME
        peak = rss_before
        began = time.monotonic()
        sent = 0
        # Written as fast as the socket takes them, replies never read: the server sees
        # frames arrive far faster than it answers them.
        try:
            while sent < BLAST_BYTES:
                await raw.send_text(frame)
                sent += len(frame)
                if sent % (1 << 20) < MAX_FRAME:
                    peak = max(peak, rss_kib(server.pid))
        except (ConnectionError, OSError):
            pass
        blast_s = time.monotonic() - began
        for _ in range(10):
            peak = max(peak, rss_kib(server.pid))
            await asyncio.sleep(0.1)
        await raw.close()
        await asyncio.sleep(0.5)
        rss_after = rss_kib(server.pid)
        assert server.alive()
        assert (await bystander.request({"type": "ping", "ts": 0, "client_id": "ok"}))["type"] == "pong"
        report(
            "byte flood",
            sent_mib=round(sent / (1 << 20), 1),
            blast_s=round(blast_s, 2),
            rss_before_kib=rss_before,
            rss_peak_kib=peak,
            rss_after_kib=rss_after,
        )
        assert sent < BLAST_BYTES, "the server read 48 MiB of commands from one client without closing it"
        assert peak - rss_before < RSS_GROWTH_LIMIT_KIB, f"RSS grew {peak - rss_before} KiB"
    finally:
        await bystander.stop()


async def test_a_frame_over_the_transport_limit_is_closed_1009(daphne_servers):
    (server,) = daphne_servers(1)
    await make_cast("oversized", moderators=0, members=1)
    async with connect(
        f"{server.ws_url}/ws/rooms/oversized/", origin=server.origin, proxy=None, max_size=None, ping_interval=None
    ) as ws:
        assert json.loads(await ws.recv())["type"] == "welcome"
        await ws.send(json.dumps({"type": "ping", "ts": "y" * ((1 << 20) + 64)}))
        with contextlib.suppress(ConnectionClosed):
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert reply["type"] == "error" and reply["code"] == "too_large", reply
            return
        assert ws.close_code == 1009, f"closed {ws.close_code}"


async def test_a_frame_over_a_small_multiple_of_the_protocol_limit_is_closed_1009(daphne_servers):
    # daphne alone reads messages of up to 1 MiB; nothing the protocol takes is over 8 KiB.
    (server,) = daphne_servers(1)
    await make_cast("oversized64", moderators=0, members=1)
    async with connect(
        f"{server.ws_url}/ws/rooms/oversized64/", origin=server.origin, proxy=None, max_size=None, ping_interval=None
    ) as ws:
        assert json.loads(await ws.recv())["type"] == "welcome"
        await ws.send(json.dumps({"type": "ping", "ts": "y" * (MAX_FRAME * 8 + 64)}))
        with contextlib.suppress(ConnectionClosed):
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            raise AssertionError(f"the server read the frame and answered {reply}")
        assert ws.close_code == 1009, f"closed {ws.close_code}"


async def test_a_guest_sending_big_frames_faster_than_they_are_answered_is_not_read_ahead(daphne_servers):
    """While the process cannot answer (its database thread waits on a lock), a guest
    writes frames just under the transport limit without reading a reply: the server
    stops reading its socket past a few dozen unhandled frames instead of queueing all
    of them (150 of 1 MiB once grew a process by 100 MB, never given back)."""
    import psycopg
    from django.db import connection

    (server,) = daphne_servers(1)
    await make_cast("readahead", moderators=0, members=1)
    raw = await open_raw(server, "/ws/rooms/readahead/")
    assert (await raw.read_json())["type"] == "welcome"
    rss_before = rss_kib(server.pid)
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("options", None)
    blocker = await psycopg.AsyncConnection.connect(**params)
    frame = json.dumps({"type": "ping", "ts": "z" * (MAX_FRAME * 7)})
    peak = rss_before
    try:
        await blocker.execute("LOCK TABLE rooms_room IN ACCESS EXCLUSIVE MODE")
        # Answering a ping reads the room's head: this one waits on the lock, and every
        # frame after it waits behind it.
        await raw.send_json({"type": "ping", "ts": 0})
        with contextlib.suppress(ConnectionError, OSError, asyncio.TimeoutError):
            for _ in range(150):
                await asyncio.wait_for(raw.send_text(frame), 2)
                peak = max(peak, rss_kib(server.pid))
        for _ in range(5):
            await asyncio.sleep(0.1)
            peak = max(peak, rss_kib(server.pid))
    finally:
        await blocker.rollback()
        await blocker.close()
        await raw.close()
    assert server.alive()
    report("read-ahead", rss_before_kib=rss_before, rss_peak_kib=peak)
    # 150 frames of 56 KiB are 8 MiB; what may be queued is 32 of them plus one read.
    assert peak - rss_before < 6 * 1024, f"RSS grew {peak - rss_before} KiB"


async def test_the_server_still_sends_replays_larger_than_what_it_reads(daphne_servers):
    # The inbound limit is for what clients send; a resume or a sync may be far larger.
    from rooms.services import do_send_message

    (server,) = daphne_servers(1)
    cast = await make_cast("bigreplay", moderators=0, members=0)

    @sync_to_async
    def fill():
        for i in range(400):
            do_send_message(cast.host, room_id=cast.room.pk, body=f"line {i} " + "w" * 300)

    await fill()
    async with connect(
        f"{server.ws_url}/ws/rooms/bigreplay/?after=0", origin=server.origin, proxy=None, max_size=None
    ) as ws:
        welcome_text = await ws.recv()
        welcome = json.loads(welcome_text)
        assert len(welcome_text) > MAX_FRAME * 8
        assert [e["seq"] for e in welcome["history"]] == list(range(1, 401))
        await ws.send(json.dumps({"type": "sync", "after": 0, "client_id": "all"}))
        replay = await asyncio.wait_for(ws.recv(), 10)
        assert len(replay) > MAX_FRAME * 8
        # A guest's page (CHAT_SYNC_PAGE_GUEST), still over the inbound limit.
        assert [e["seq"] for e in json.loads(replay)["events"]] == list(range(1, 201))
