"""Reads shared by the connections that ask for them at about the same time: one read
per round trip however many ask, and never a value older than the ask."""

import asyncio
import threading

import pytest

from rooms.delivery.shared_reads import ReadCancelled, SharedReads


class Counter:
    """A read the test controls: each read takes the counter's value when it begins, then
    waits until the test lets it end."""

    def __init__(self) -> None:
        self.value = 0
        self.reads: list[str] = []
        self.gates: list[threading.Event] = []
        self.started = threading.Semaphore(0)
        self.fail_next = False

    def read(self, key: str) -> int:
        seen = self.value
        gate = threading.Event()
        self.reads.append(key)
        self.gates.append(gate)
        self.started.release()
        gate.wait(10)
        if self.fail_next:
            self.fail_next = False
            raise LookupError(key)
        return seen

    async def wait_started(self, count: int) -> None:
        for _ in range(count):
            assert await asyncio.to_thread(self.started.acquire, True, 10)

    def end(self, index: int) -> None:
        self.gates[index].set()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_an_ask_that_finds_no_read_in_flight_reads_at_once():
    source = Counter()
    shared = SharedReads(source.read)
    ask = asyncio.ensure_future(shared.get("room"))
    await source.wait_started(1)
    source.end(0)

    assert await ask == 0
    assert source.reads == ["room"]


async def test_asks_during_a_read_share_the_next_one_which_sees_what_came_before_them():
    source = Counter()
    shared = SharedReads(source.read)
    first = asyncio.ensure_future(shared.get("room"))
    await source.wait_started(1)
    # A commit after the first read began: those who ask now must see it.
    source.value = 7
    later = [asyncio.ensure_future(shared.get("room")) for _ in range(20)]
    await settle()
    assert len(source.reads) == 1  # they wait for the read in flight to end

    source.end(0)
    assert await first == 0
    await source.wait_started(1)
    source.end(1)

    assert await asyncio.gather(*later) == [7] * 20
    assert len(source.reads) == 2


async def test_keys_are_read_apart():
    source = Counter()
    shared = SharedReads(source.read)
    one = asyncio.ensure_future(shared.get("one"))
    two = asyncio.ensure_future(shared.get("two"))
    await source.wait_started(2)
    source.end(0)
    source.end(1)

    assert await asyncio.gather(one, two) == [0, 0]
    assert sorted(source.reads) == ["one", "two"]


async def test_an_error_goes_to_everyone_who_shared_the_read_and_the_next_ask_reads_again():
    source = Counter()
    shared = SharedReads(source.read)
    first = asyncio.ensure_future(shared.get("room"))
    await source.wait_started(1)
    source.fail_next = True
    source.end(0)
    with pytest.raises(LookupError):
        await first

    source.value = 3
    again = asyncio.ensure_future(shared.get("room"))
    await source.wait_started(1)
    source.end(1)
    assert await again == 3


async def test_one_asker_going_away_does_not_cancel_the_read_for_the_others():
    source = Counter()
    shared = SharedReads(source.read)
    first = asyncio.ensure_future(shared.get("room"))
    await source.wait_started(1)
    # These two share the next read.
    leaving = asyncio.ensure_future(shared.get("room"))
    staying = asyncio.ensure_future(shared.get("room"))
    await settle()
    leaving.cancel()
    await settle()
    source.value = 5
    source.end(0)
    await source.wait_started(1)
    source.end(1)

    assert await asyncio.gather(first, staying) == [0, 5]
    assert leaving.cancelled()
    assert len(source.reads) == 2


async def test_stopping_fails_the_read_in_flight_and_those_waiting_for_the_next_and_every_later_ask():
    source = Counter()
    shared = SharedReads(source.read)
    in_flight = asyncio.ensure_future(shared.get("room"))
    await source.wait_started(1)
    next_one = asyncio.ensure_future(shared.get("room"))
    await settle()

    tasks = shared.stop()
    source.end(0)  # the thread's read ends by itself; nobody takes its value
    await asyncio.gather(*tasks, return_exceptions=True)

    for ask in (in_flight, next_one):
        with pytest.raises(ReadCancelled):
            await ask
    with pytest.raises(ReadCancelled):
        await shared.get("room")
    assert len(source.reads) == 1


async def test_a_read_cancelled_before_it_began_does_not_leave_its_key_waiting_forever():
    source = Counter()
    shared = SharedReads(source.read)
    ask = asyncio.ensure_future(shared.get("room"))
    await asyncio.sleep(0)  # the ask has started its read's task, which has not run yet

    shared.stop()

    with pytest.raises(ReadCancelled):
        await asyncio.wait_for(ask, 5)
    assert source.reads == []
