"""Peak load across two server processes: members shed with `busy` while the host team's
lane goes through, the automatic slow mode that follows reaches viewers everywhere, and a
viewer on the other process gets a readable feed with everything that is never left out."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model

from rooms.services import do_create_room

pytestmark = [
    pytest.mark.multiprocess,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

# Members' own limits out of the way: only the room's capacity (or the readable feed) acts.
UNLIMITED = {
    "CHAT_SEND_BURST_COUNT": "100000",
    "CHAT_SEND_SUSTAINED_COUNT": "100000",
    "CHAT_COMMANDS_PER_SECOND": "100",
    "CHAT_COMMANDS_BURST": "200",
}


@sync_to_async
def make_room(slug: str, *, members: int):
    users = get_user_model().objects
    host = users.create_user(username=f"{slug}-host")
    do_create_room(None, slug=slug, title=f"Room {slug}", host_username=host.username)
    return host, [users.create_user(username=f"{slug}-member{n}") for n in range(members)]


def answer(client, cid: str) -> dict | None:
    return next((e for e in client.events if e.get("client_id") == cid and e["type"] in ("ack", "error")), None)


async def test_members_are_shed_the_team_goes_through_and_auto_slow_mode_reaches_the_other_process(
    daphne_servers, ws_connect
):
    # Every member send would wait longer than 1 ms: each is answered busy at once.
    env = {
        **UNLIMITED,
        "CHAT_ADMISSION_MS": "1",
        "CHAT_AUTO_SLOW_MODE_SECONDS": "10",
        "CHAT_AUTO_SLOW_MODE_AFTER_SECONDS": "1",
    }
    a, b = daphne_servers(2, env=env)
    host, members = await make_room("peak-shed", members=3)
    on_a = [await ws_connect(a, "peak-shed", user=member) for member in members]
    host_on_a = await ws_connect(a, "peak-shed", user=host)
    watcher_on_b = await ws_connect(b, "peak-shed", user=None)
    for client in (*on_a, host_on_a, watcher_on_b):
        await client.expect_welcome()

    sent = []
    for rnd in range(30):
        for n, client in enumerate(on_a):
            cid = f"m{n}-{rnd}"
            sent.append((client, cid))
            await client.send({"type": "send", "body": f"line {cid}", "client_id": cid})
        await host_on_a.send({"type": "send", "body": f"host {rnd}", "client_id": f"h-{rnd}"})
        if any(e.get("type") == "room" and e.get("slow_mode_auto") for e in watcher_on_b.events):
            break
        await asyncio.sleep(0.2)

    room = await watcher_on_b.wait_for(lambda e: e["type"] == "room" and e.get("slow_mode_auto"), timeout=10)
    assert room["slow_mode_seconds"] == 10
    for client, cid in sent:
        await client.wait_until(lambda client=client, cid=cid: answer(client, cid) is not None, what=cid)
    codes = {answer(client, cid)["code"] for client, cid in sent}
    assert codes <= {"busy", "slow_mode"} and "busy" in codes, codes
    busy = [answer(client, cid) for client, cid in sent if answer(client, cid)["code"] == "busy"]
    assert all(reply["retry_after"] > 0 for reply in busy)
    host_answers = [
        e for e in host_on_a.events if e["type"] in ("ack", "error") and e.get("client_id", "").startswith("h-")
    ]
    assert host_answers and all(e["type"] == "ack" for e in host_answers), host_answers


async def test_a_viewer_on_the_other_process_gets_a_readable_feed_with_all_it_must_see(daphne_servers, ws_connect):
    a, b = daphne_servers(2, env={**UNLIMITED, "CHAT_READABLE_MESSAGES_PER_SECOND": "2"})
    host, members = await make_room("peak-read", members=4)
    reader = members[-1]
    chatters = [await ws_connect(a, "peak-read", user=member) for member in members[:-1]]
    host_on_a = await ws_connect(a, "peak-read", user=host)
    reader_on_b = await ws_connect(b, "peak-read", user=reader)
    for client in (*chatters, host_on_a, reader_on_b):
        await client.expect_welcome()

    acks = []
    for rnd in range(8):
        for n, client in enumerate(chatters):
            acks.append(await client.send_message(f"line {n}-{rnd}", f"c{n}-{rnd}"))
    acks.append(await chatters[0].send_message(f"hey @{reader.username}", "mention"))
    acks.append(await host_on_a.send_message("the host speaks", "host"))
    last = max(ack["seq"] for ack in acks)

    await reader_on_b.wait_until(
        lambda: any(e.get("seq") == last for e in reader_on_b.room_events), timeout=10, what=f"seq {last}"
    )
    got = {e["body"] for e in reader_on_b.room_events if e["type"] == "message"}
    member_lines = 8 * len(chatters)
    assert {"the host speaks", f"hey @{reader.username}"} <= got
    assert reader_on_b.skipped > 0
    assert len([body for body in got if body.startswith("line ")]) + reader_on_b.skipped == member_lines
