"""The per-room writer: how a room's sends are grouped into database writes."""

import asyncio
import time

import pytest

from rooms import writer as writer_module
from rooms.errors import BadRequest, Busy
from rooms.services import SendRequest
from rooms.writer import RoomWriter

# The writer's database hop closes stale connections on the way, even with the
# database work stubbed out.
pytestmark = pytest.mark.django_db


def recording(monkeypatch):
    """Stands in for check_send_messages: records each write's bodies, and refuses
    a body of "bad" the way a failed check does."""
    writes: list[list[str]] = []

    def check_send_messages(room_id, requests):
        writes.append([r.body for r in requests])
        return [BadRequest("no") if r.body == "bad" else f"stored {r.body}" for r in requests]

    monkeypatch.setattr(writer_module, "check_send_messages", check_send_messages)
    return writes


def send(body: str) -> SendRequest:
    return SendRequest(actor=None, body=body, client_id=body)


async def test_a_send_to_an_idle_writer_is_written_at_once_alone(monkeypatch):
    writes = recording(monkeypatch)
    writer = RoomWriter(1)

    assert await writer.send(send("a")) == "stored a"
    assert await writer.send(send("b")) == "stored b"

    assert writes == [["a"], ["b"]]


def held_writes(monkeypatch, refuse: str | None = None):
    """check_send_messages that holds each write until the test lets it go, and refuses
    a body of `refuse` the way a failed check does."""
    import threading

    writes: list[list[str]] = []
    gate = threading.Event()

    def check_send_messages(room_id, requests):
        gate.wait(5)
        writes.append([r.body for r in requests])
        return [BadRequest("no") if r.body == refuse else f"stored {r.body}" for r in requests]

    monkeypatch.setattr(writer_module, "check_send_messages", check_send_messages)
    return writes, gate


async def settle():
    # Let queued sends reach the writer.
    for _ in range(5):
        await asyncio.sleep(0)


async def test_sends_arriving_while_a_write_is_in_flight_go_together_in_the_next(monkeypatch):
    writes, gate = held_writes(monkeypatch)
    writer = RoomWriter(1)

    first = asyncio.ensure_future(writer.send(send("a")))  # being written
    await settle()
    queued = [asyncio.ensure_future(writer.send(send(body))) for body in ("b", "c", "d")]
    await settle()
    gate.set()

    assert await asyncio.gather(first, *queued) == ["stored a", "stored b", "stored c", "stored d"]
    assert writes == [["a"], ["b", "c", "d"]]


async def test_a_refused_send_fails_alone_in_its_write(monkeypatch):
    writes, gate = held_writes(monkeypatch, refuse="bad")
    writer = RoomWriter(1)
    first = asyncio.ensure_future(writer.send(send("a")))
    await settle()

    queued = asyncio.gather(writer.send(send("bad")), writer.send(send("c")), return_exceptions=True)
    await settle()
    gate.set()
    results = await queued

    assert await first == "stored a"
    assert isinstance(results[0], BadRequest)
    assert results[1] == "stored c"
    assert writes == [["a"], ["bad", "c"]]


async def test_a_member_send_the_room_cannot_store_in_time_is_answered_busy_at_once(monkeypatch, settings):
    settings.CHAT_ADMISSION_MS = 250
    writes, gate = held_writes(monkeypatch)
    writer = RoomWriter(1)
    writer.send_seconds = 0.1  # each send costs 100 ms to store

    first = asyncio.ensure_future(writer.send(send("a")))  # being written
    await settle()
    queued = [asyncio.ensure_future(writer.send(send(body))) for body in ("b", "c")]  # 200 ms waiting
    await settle()

    with pytest.raises(Busy) as refused:
        await writer.send(send("d"))

    assert refused.value.code == "busy"
    assert refused.value.retry_after > 0
    gate.set()
    assert await asyncio.gather(first, *queued) == ["stored a", "stored b", "stored c"]
    assert [body for batch in writes for body in batch] == ["a", "b", "c"]


async def test_the_host_team_is_never_refused_and_is_written_before_waiting_members(monkeypatch, settings):
    settings.CHAT_ADMISSION_MS = 250
    writes, gate = held_writes(monkeypatch)
    writer = RoomWriter(1)
    writer.send_seconds = 0.1

    first = asyncio.ensure_future(writer.send(send("a")))
    await settle()
    members = [asyncio.ensure_future(writer.send(send(body))) for body in ("m1", "m2")]
    await settle()
    with pytest.raises(Busy):
        await writer.send(send("m3"))
    team = [asyncio.ensure_future(writer.send(send(body), priority=True)) for body in ("t1", "t2", "t3")]
    await settle()
    gate.set()

    assert await asyncio.gather(*team) == ["stored t1", "stored t2", "stored t3"]
    await asyncio.gather(first, *members)
    assert writes == [["a"], ["t1", "t2", "t3", "m1", "m2"]]


async def test_the_cost_of_a_send_follows_the_writes(monkeypatch):
    recording(monkeypatch)
    writer = RoomWriter(1)
    writer.send_seconds = 10.0  # a guess far off

    for body in "abcdefgh":
        await writer.send(send(body), priority=True)

    assert writer.send_seconds < 10.0 * (1 - writer_module.COST_SMOOTHING) ** 7


async def test_a_member_send_is_busy_while_the_process_runs_behind(monkeypatch, settings):
    settings.CHAT_ADMISSION_MS = 250
    writes = recording(monkeypatch)
    monkeypatch.setattr(writer_module, "loop_lag", lambda: 0.4)
    writer = RoomWriter(1)

    with pytest.raises(Busy):
        await writer.send(send("member"))
    assert await writer.send(send("team"), priority=True) == "stored team"
    assert writes == [["team"]]


async def test_the_loop_watch_sees_a_loop_that_was_blocked():
    import time

    from rooms.delivery import lag

    lag.start_watch()
    try:
        for _ in range(4):
            time.sleep(0.4)  # the loop is held again and again: the watch wakes up late
            await asyncio.sleep(0)
        assert lag.loop_lag() >= 0.25
    finally:
        lag.stop_watch()
    assert lag.loop_lag() == 0.0


async def test_sends_arriving_in_the_pause_after_a_costly_write_go_together(monkeypatch, settings):
    settings.CHAT_WRITE_CPU_PERCENT = 20
    writes: list[list[str]] = []

    def check_send_messages(room_id, requests):
        # Busy, not asleep: the pause pays for the write's CPU time (20 ms: 80 ms more).
        done = time.thread_time() + 0.02
        while time.thread_time() < done:
            pass
        writes.append([r.body for r in requests])
        return [f"stored {r.body}" for r in requests]

    monkeypatch.setattr(writer_module, "check_send_messages", check_send_messages)
    writer = RoomWriter(1)

    assert await writer.send(send("a")) == "stored a"
    b = asyncio.ensure_future(writer.send(send("b")))
    await asyncio.sleep(0.01)
    c = asyncio.ensure_future(writer.send(send("c")))

    assert await asyncio.gather(b, c) == ["stored b", "stored c"]
    assert writes == [["a"], ["b", "c"]]
