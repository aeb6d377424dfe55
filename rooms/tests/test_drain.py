"""The drain at shutdown: its schedule, and what each viewer sees (rooms.delivery.drain)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from channels.db import database_sync_to_async

from rooms.delivery import drain
from rooms.models import Message
from rooms.protocol import Close

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _not_draining_after(monkeypatch):
    # The flag is the process's; each test's drain ends with its test.
    monkeypatch.setattr(drain, "_draining", False)


# The schedule.


@pytest.mark.parametrize(("count", "seconds"), [(1, 10), (4, 2), (1000, 10), (7, 0.5)])
def test_closes_are_spread_evenly_from_the_start_to_one_step_before_the_end(count, seconds):
    plan = drain.spread(count, seconds)

    assert len(plan) == count
    assert plan[0] == 0
    step = seconds / count
    assert all(later - earlier == pytest.approx(step) for earlier, later in zip(plan, plan[1:], strict=False))
    assert plan[-1] == pytest.approx(seconds - step) and plan[-1] < seconds


def test_no_viewers_need_no_schedule_and_zero_seconds_closes_everyone_at_once():
    assert drain.spread(0, 10) == []
    assert drain.spread(3, 0) == [0, 0, 0]


class FakeViewer:
    def __init__(self, started: float) -> None:
        self.started = started
        self.closed_at: list[tuple[int, float]] = []

    async def close_by_hub(self, code: int) -> None:
        self.closed_at.append((code, time.monotonic() - self.started))


def fake_hub(monkeypatch, rooms: dict[int, list[FakeViewer]]) -> SimpleNamespace:
    """The running loop's hub, as the drain sees it: rooms' feeds and their viewers."""
    from rooms.delivery import hub as hubs

    hub = SimpleNamespace(feeds={room: SimpleNamespace(viewers=set(viewers)) for room, viewers in rooms.items()})
    monkeypatch.setitem(hubs._hubs, asyncio.get_running_loop(), hub)
    return hub


async def test_the_drain_closes_each_viewer_once_with_1012_no_earlier_than_its_turn(monkeypatch):
    started = time.monotonic()
    viewers = [FakeViewer(started) for _ in range(5)]
    fake = fake_hub(monkeypatch, {1: viewers[:3], 2: viewers[3:]})

    async def leave_after_close():
        # The viewers leave the hub once closed, as real ones do in their disconnect.
        while not all(v.closed_at for v in viewers):
            await asyncio.sleep(0.01)
        fake.feeds = {}

    leaving = asyncio.ensure_future(leave_after_close())
    await drain.drain(seconds=0.5)
    await leaving

    assert drain.draining()
    assert all(len(v.closed_at) == 1 and v.closed_at[0][0] == Close.SERVICE_RESTART for v in viewers)
    # Sleeping until each turn: never early (a lower bound, which no load can break).
    offsets = sorted(v.closed_at[0][1] for v in viewers)
    for offset, due in zip(offsets, drain.spread(5, 0.5), strict=True):
        assert offset >= due - drain.TICK_SECONDS


async def test_a_viewer_that_joins_during_the_drain_is_closed_too(monkeypatch):
    started = time.monotonic()
    early, late = FakeViewer(started), FakeViewer(started)
    fake = fake_hub(monkeypatch, {1: [early]})

    async def handshake_finishing_meanwhile():
        while not early.closed_at:
            await asyncio.sleep(0.01)
        fake.feeds[1].viewers.add(late)
        while not late.closed_at:
            await asyncio.sleep(0.01)
        fake.feeds = {}

    joining = asyncio.ensure_future(handshake_finishing_meanwhile())
    await drain.drain(seconds=0)
    await joining

    assert [code for code, _ in early.closed_at + late.closed_at] == [Close.SERVICE_RESTART] * 2


# Real consumers.


async def closed_by_server(client, code: int) -> None:
    """The close arrives; the client's side of the handshake goes back, as daphne's does."""
    await client.expect_close(code)
    await client.communicator.send_input({"type": "websocket.disconnect", "code": code})


async def test_a_send_in_flight_is_stored_and_acked_before_the_1012_and_later_ones_are_busy(
    connect, room, viewer, outsider, unlimited_sends, monkeypatch
):
    from rooms import writer
    from rooms.delivery.hub import get_hub

    entered, release = asyncio.Event(), asyncio.Event()
    store = writer.RoomWriter.send

    async def held_send(self, request, **kwargs):
        entered.set()
        await release.wait()
        return await store(self, request, **kwargs)

    monkeypatch.setattr(writer.RoomWriter, "send", held_send)
    sender = await connect(room, viewer)
    reader = await connect(room, outsider)
    consumers = list(get_hub().feeds[room.pk].viewers)

    await sender.send({"type": "send", "body": "last words", "client_id": "bye-1"})
    await entered.wait()
    draining = asyncio.ensure_future(drain.drain(seconds=0))
    while not all(c.leaving for c in consumers):
        await asyncio.sleep(0.01)
    await sender.send({"type": "send", "body": "too late", "client_id": "bye-2"})
    release.set()

    await closed_by_server(sender, Close.SERVICE_RESTART)
    await closed_by_server(reader, Close.SERVICE_RESTART)
    await draining

    replies = {e["client_id"]: e for e in sender.events if e["type"] in ("ack", "error")}
    assert replies["bye-1"]["type"] == "ack"
    assert (replies["bye-2"]["type"], replies["bye-2"]["code"]) == ("error", "busy")
    stored = await database_sync_to_async(lambda: list(Message.objects.values_list("client_id", "seq")))()
    assert stored == [("bye-1", replies["bye-1"]["seq"])]
    assert get_hub().feeds == {}, "the closed viewers left the hub before the drain ended"


async def test_a_viewer_that_connects_while_draining_is_sent_elsewhere_at_once(connect, room, viewer):
    await drain.drain(seconds=0)

    late = await connect(room, viewer, welcome=False)

    assert late.accepted
    await late.expect_close(Close.SERVICE_RESTART)
    assert late.welcome is None
