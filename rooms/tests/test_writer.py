"""The per-room writer: how a room's sends are grouped into database writes."""

import asyncio

import pytest

from rooms import writer as writer_module
from rooms.errors import BadRequest
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


async def test_sends_within_the_write_interval_share_one_write(monkeypatch, settings):
    settings.CHAT_WRITE_INTERVAL_MS = 100
    writes = recording(monkeypatch)
    writer = RoomWriter(1)

    assert await writer.send(send("a")) == "stored a"
    b = asyncio.ensure_future(writer.send(send("b")))
    await asyncio.sleep(0.02)
    c = asyncio.ensure_future(writer.send(send("c")))
    answers = await asyncio.gather(b, c)

    assert answers == ["stored b", "stored c"]
    assert writes == [["a"], ["b", "c"]]


async def test_a_send_after_a_quiet_interval_is_written_alone(monkeypatch, settings):
    settings.CHAT_WRITE_INTERVAL_MS = 20
    writes = recording(monkeypatch)
    writer = RoomWriter(1)

    await writer.send(send("a"))
    await asyncio.sleep(0.05)
    await writer.send(send("b"))

    assert writes == [["a"], ["b"]]


async def test_a_refused_send_fails_alone_in_its_write(monkeypatch, settings):
    settings.CHAT_WRITE_INTERVAL_MS = 100
    writes = recording(monkeypatch)
    writer = RoomWriter(1)
    await writer.send(send("a"))

    results = await asyncio.gather(writer.send(send("bad")), writer.send(send("c")), return_exceptions=True)

    assert isinstance(results[0], BadRequest)
    assert results[1] == "stored c"
    assert writes == [["a"], ["bad", "c"]]
