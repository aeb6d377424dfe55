"""The room feed's batching: how events are grouped into frames for a room's viewers."""

import asyncio
import time

import pytest

from rooms.delivery.hub import RoomFeed, batch_window
from rooms.delivery.stream import Delivery
from rooms.protocol import encode


class StubHub:
    def spawn(self, coro) -> None:
        asyncio.ensure_future(coro)


class Viewer:
    """Records the seqs of each frame; `write_seconds` stands in for a room whose
    frames take that long to write to all of its viewers."""

    def __init__(self, write_seconds: float = 0.0) -> None:
        self.frames: list[list[int]] = []
        self.write_seconds = write_seconds
        self.conn_id = "stub"
        self.user_id = None

    async def offer(self, deliveries, frame, actors, first_seq, last_seq, dense, thinned=None) -> None:
        # Busy, not asleep: the feed paces itself by the CPU time its flushes take.
        done = time.thread_time() + self.write_seconds
        while time.thread_time() < done:
            pass
        self.frames.append([d.seq for d in deliveries])


def watched_feed(viewer: Viewer) -> RoomFeed:
    feed = RoomFeed(StubHub(), 1)
    feed.add_viewer(viewer)
    return feed


def event(seq: int) -> Delivery:
    return Delivery(seq, None, encode({"type": "message", "seq": seq}))


def test_the_pause_after_a_flush_keeps_writing_to_its_share_of_the_time_and_is_bounded(settings):
    settings.CHAT_BATCH_WINDOW_MAX_MS = 200
    settings.CHAT_BATCH_FANOUT_PERCENT = 20

    settings.CHAT_BATCH_FANOUT_MAX_PERCENT = 60

    assert batch_window(0.0) == 0.0
    assert batch_window(0.001) == pytest.approx(0.005)
    assert batch_window(0.02) == pytest.approx(0.1)
    assert batch_window(0.1) == 0.2
    # A room so big that writing a frame takes 180 ms: at most 60% of the time, not 90%.
    assert batch_window(0.18) == pytest.approx(0.3)
    assert batch_window(5.0) == pytest.approx(5.0 / 0.6)


async def test_a_quiet_room_sends_each_event_at_once():
    viewer = Viewer()
    feed = watched_feed(viewer)

    feed.push_event(event(1), None)
    await asyncio.sleep(0.01)

    assert viewer.frames == [[1]]


async def test_events_find_a_cheap_feed_idle_and_go_out_one_by_one():
    viewer = Viewer()
    feed = watched_feed(viewer)

    for seq in (1, 2, 3):
        feed.push_event(event(seq), None)
        await asyncio.sleep(0)
        # Past the (tiny) pause that paid for the last flush, the feed is idle again.
        await asyncio.sleep(feed.window + 0.005)

    assert viewer.frames == [[1], [2], [3]]


async def test_events_arriving_together_go_out_in_one_frame():
    viewer = Viewer()
    feed = watched_feed(viewer)

    feed.push_event(event(1), None)
    feed.push_event(event(2), None)
    await asyncio.sleep(0.01)

    assert viewer.frames == [[1, 2]]


async def test_events_arriving_while_a_costly_frame_is_paid_for_go_out_together(settings):
    settings.CHAT_BATCH_WINDOW_MAX_MS = 1000
    settings.CHAT_BATCH_FANOUT_PERCENT = 20
    viewer = Viewer(write_seconds=0.02)
    feed = watched_feed(viewer)

    feed.push_event(event(1), None)
    await asyncio.sleep(0.03)
    # Writing took 20 ms: at most 20% of the time goes to it, so the next frame waits.
    feed.push_event(event(2), None)
    feed.push_event(event(3), None)
    await asyncio.sleep(0.01)
    assert viewer.frames == [[1]]
    await asyncio.sleep(0.15)

    assert viewer.frames == [[1], [2, 3]]


async def test_a_room_whose_frames_take_long_to_write_widens_its_window(settings):
    settings.CHAT_BATCH_WINDOW_MAX_MS = 1000
    settings.CHAT_BATCH_FANOUT_PERCENT = 20
    viewer = Viewer(write_seconds=0.05)
    feed = watched_feed(viewer)

    feed.push_event(event(1), None)
    await asyncio.sleep(0.07)
    # Writing took 50 ms: at most 20% of the time goes to it, so the window is 250 ms.
    assert feed.window >= 0.25
    feed.push_event(event(2), None)
    await asyncio.sleep(0.05)
    feed.push_event(event(3), None)
    await asyncio.sleep(0.35)

    assert viewer.frames == [[1], [2, 3]]


class SyncViewer:
    """A viewer whose transport writes at once (offer returns nothing to await)."""

    def __init__(self, name: str, log: list) -> None:
        self.conn_id = name
        self.user_id = None
        self.log = log

    def offer(self, deliveries, frame, actors, first_seq, last_seq, dense, thinned=None):
        self.log.append((self.conn_id, [d.seq for d in deliveries]))
        return None


async def test_a_huge_flush_lets_the_loop_run_between_slices_and_the_next_waits_for_it(monkeypatch):
    from rooms.delivery import hub as hub_module

    monkeypatch.setattr(hub_module, "FLUSH_SLICE", 2)
    log: list = []
    feed = RoomFeed(StubHub(), 1)
    for n in range(5):
        feed.add_viewer(SyncViewer(f"v{n}", log))

    def meanwhile():
        # Runs in the loop's turn after the first slice: the process's other work, and
        # an event arriving while the flush is still under way.
        log.append(("loop", None))
        feed.push_event(event(2), None)

    feed.push_event(event(1), None)
    asyncio.get_running_loop().call_soon(lambda: asyncio.get_running_loop().call_soon(meanwhile))
    await asyncio.sleep(0.05)

    assert log.index(("loop", None)) < 5  # not only after the whole flush
    frames = [entry for entry in log if entry[0] != "loop"]
    assert len(frames) == 10
    # Every viewer got seq 1 before seq 2, whichever order the viewers are written in.
    for n in range(5):
        mine = [seqs for name, seqs in frames if name == f"v{n}"]
        assert mine == [[1], [2]]
    assert all(seqs == [1] for _, seqs in frames[:5])


class GroupViewer(SyncViewer):
    """Records the seqs each frame carries for it (the readable feed's, when thinned)."""

    def __init__(self, name: str, log: list, user_id=None) -> None:
        super().__init__(name, log)
        self.user_id = user_id
        self.closed_with = None

    def offer(self, deliveries, frame, actors, first_seq, last_seq, dense, thinned=None):
        shown = thinned.kept if thinned is not None else deliveries
        self.log.append((self.conn_id, [d.seq for d in shown]))
        return None

    async def close_by_hub(self, code):
        self.closed_with = code


def member_line(seq: int, author: int) -> Delivery:
    return Delivery(seq, author, encode({"type": "message", "seq": seq}), True, (author,))


async def test_a_big_room_is_written_a_group_at_a_time_each_viewer_getting_every_event_once(monkeypatch, settings):
    from rooms.delivery import hub as hub_module

    monkeypatch.setattr(hub_module, "FEED_GROUP_VIEWERS", 2)
    settings.CHAT_READABLE_MESSAGES_PER_SECOND = 2
    log: list = []
    feed = RoomFeed(StubHub(), 1)
    viewers = [GroupViewer(f"v{n}", log, user_id=100 + n) for n in range(5)]
    for viewer in viewers:
        feed.add_viewer(viewer)
    assert sorted(len(group.viewers) for group in feed.groups) == [1, 2, 2]

    # Member lines past the readable rate (2): every group keeps the same two.
    for seq in range(1, 6):
        feed.push_event(member_line(seq, 7), None)
    feed.push_event(event(6), (104, 4003))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if not any(group.pending or group.closes for group in feed.groups):
            break

    for viewer in viewers:
        mine = [seq for name, seqs in log if name == viewer.conn_id for seq in seqs]
        assert mine == [1, 2, 6], viewer.conn_id
    # The kick reached its user's viewer in whichever group it is.
    assert [v.closed_with for v in viewers] == [None, None, None, None, 4003]

    # A group whose viewers all left is gone with what was on its way to them.
    lone = next(group for group in feed.groups if len(group.viewers) == 1)
    feed.remove_viewer(next(iter(lone.viewers)))
    assert len(feed.groups) == 2 and len(feed.viewers) == 4


def test_the_groups_of_a_busy_room_take_turns_a_share_of_the_window_apart(monkeypatch):
    from rooms.delivery import hub as hub_module

    monkeypatch.setattr(hub_module, "FEED_GROUP_VIEWERS", 1)
    feed = RoomFeed(StubHub(), 1)
    for n in range(4):
        feed.add_viewer(GroupViewer(f"v{n}", []))
    first, second, third, fourth = feed.groups
    # Writing to the whole room took long: a window of 0.4 s, the last flush (the first
    # group's) at t=10.
    feed.window, feed.last_flush = 0.4, 10.0
    first.last_flush, second.last_flush, third.last_flush, fourth.last_flush = 10.0, 9.7, 9.0, 9.5
    for group in feed.groups:
        group.pending.append(event(1))

    # The group written longest ago goes next, a quarter of the window after the last.
    assert feed._next_group() == (third, pytest.approx(10.1))
    third.last_flush = feed.last_flush = 10.1
    assert feed._next_group() == (fourth, pytest.approx(10.2))
    # One written recently waits a whole window after its own flush.
    second.last_flush = 10.15
    for group in (first, third, fourth):
        group.pending.clear()
    assert feed._next_group() == (second, pytest.approx(10.55))
    # Nothing on its way anywhere: nothing to write.
    second.pending.clear()
    assert feed._next_group() == (None, 0.0)


class FailingCloseViewer(GroupViewer):
    def __init__(self, name, log, user_id, feed) -> None:
        super().__init__(name, log, user_id=user_id)
        self.feed = feed

    async def close_by_hub(self, code):
        # The next event arrives while this flush is under way, and then nothing more.
        self.feed.push_event(event(2), None)
        raise RuntimeError("the client went away first")


async def test_a_close_that_fails_does_not_stop_the_rooms_next_flushes():
    log: list = []
    feed = RoomFeed(StubHub(), 1)
    feed.add_viewer(FailingCloseViewer("kicked", log, 5, feed))
    feed.add_viewer(GroupViewer("other", log, user_id=6))

    feed.push_event(event(1), (5, 4003))
    await asyncio.sleep(0.05)

    assert [seqs for name, seqs in log if name == "other"] == [[1], [2]]


async def test_a_kick_on_its_way_reaches_a_viewer_in_a_group_made_after_it(monkeypatch):
    from rooms.delivery import hub as hub_module

    monkeypatch.setattr(hub_module, "FEED_GROUP_VIEWERS", 1)
    log: list = []
    feed = RoomFeed(StubHub(), 1)
    feed.add_viewer(GroupViewer("first", log, user_id=5))
    feed.window = feed.last_flush = 10**9  # nothing is written until the test says
    feed.push_event(event(1), (7, 4003))
    # The kicked user's connection joins after the kick arrived, in a group of its own.
    late = GroupViewer("late", log, user_id=7)
    feed.add_viewer(late)
    feed.window = feed.last_flush = 0.0
    feed.flush_scheduled = False
    feed.schedule_flush()
    await asyncio.sleep(0.05)

    assert late.closed_with == 4003


def feed_after_seq_1(monkeypatch, *, gap_wait: float) -> tuple[RoomFeed, list]:
    """A room feed with one viewer that has had seq 1, and the log of what it was sent;
    a hole in the seqs is waited for `gap_wait` seconds."""
    from rooms.delivery import hub as hub_module

    monkeypatch.setattr(hub_module, "GAP_WAIT_SECONDS", gap_wait)
    log: list = []
    feed = RoomFeed(StubHub(), 1)
    feed.add_viewer(GroupViewer("v", log))
    feed.push_event(event(1), None)
    return feed, log


async def test_a_second_hole_in_the_seqs_gets_its_own_wait(monkeypatch):
    feed, log = feed_after_seq_1(monkeypatch, gap_wait=0.02)
    # 2 and 4 never arrive (lost on the way): 3 and 5 are held, then given up on in turn.
    feed.push_event(event(3), None)
    feed.push_event(event(5), None)
    await asyncio.sleep(0.2)

    assert [seq for _, seqs in log for seq in seqs] == [1, 3, 5]


async def test_holes_behind_events_that_waited_are_given_up_on_together_not_one_wait_each(monkeypatch):
    feed, log = feed_after_seq_1(monkeypatch, gap_wait=0.05)
    # The other process's events (the even seqs) are lost while the channel layer is
    # down; this process's own arrive.
    for seq in (3, 5, 7, 9, 11):
        feed.push_event(event(seq), None)
    await asyncio.sleep(0.12)

    # One wait for all of them, not one wait per hole (that would be 0.25 s).
    assert [seq for _, seqs in log for seq in seqs] == [1, 3, 5, 7, 9, 11]


async def test_an_event_held_behind_a_hole_waits_its_own_time_from_when_it_arrived(monkeypatch):
    feed, log = feed_after_seq_1(monkeypatch, gap_wait=0.5)
    feed.push_event(event(3), None)
    await asyncio.sleep(0.3)
    feed.push_event(event(5), None)
    await asyncio.sleep(0.3)
    # 3 waited its time and went; 5 arrived later, and 4 may still come.
    assert [seq for _, seqs in log for seq in seqs] == [1, 3]

    feed.push_event(event(4), None)
    await asyncio.sleep(0.01)

    assert [seq for _, seqs in log for seq in seqs] == [1, 3, 4, 5]
    assert not feed.held and feed.gap_timer is None


async def test_a_wait_for_a_hole_filled_since_does_not_cut_short_the_wait_for_a_later_one(monkeypatch):
    feed, log = feed_after_seq_1(monkeypatch, gap_wait=0.5)
    feed.push_event(event(3), None)
    await asyncio.sleep(0.3)
    # 5 comes ahead of 4; then 2 fills the first hole, and 3 goes with it.
    feed.push_event(event(5), None)
    feed.push_event(event(2), None)
    await asyncio.sleep(0.3)
    # The wait 3 started is over, but 5 has waited only part of its own: 4 may still come.
    assert list(feed.held) == [5]

    feed.push_event(event(4), None)
    await asyncio.sleep(0.01)

    assert [seq for _, seqs in log for seq in seqs] == [1, 2, 3, 4, 5]


async def test_an_event_delivered_here_as_it_was_published_is_not_delivered_again_by_its_echo():
    viewer = Viewer()
    feed = watched_feed(viewer)

    feed.push_event(event(1), None, local=True)
    await asyncio.sleep(0.01)
    # The channel layer brings the same event back to this process, then the next one.
    feed.push_event(event(1), None)
    feed.push_event(event(2), None)
    await asyncio.sleep(0.01)

    assert viewer.frames == [[1], [2]]


def test_a_room_feed_forgets_the_oldest_local_event_whose_echo_never_came(monkeypatch):
    from rooms.delivery import hub

    monkeypatch.setattr(hub, "LOCAL_ECHOES_MAX", 3)
    feed = RoomFeed(StubHub(), 1)
    monkeypatch.setattr(feed, "schedule_flush", lambda: None)

    for seq in range(1, 6):
        feed.push_event(event(seq), None, local=True)

    assert list(feed.local_seqs) == [3, 4, 5]


def test_presence_deltas_alone_wait_their_smaller_share_and_a_room_event_does_not(monkeypatch):
    from rooms.delivery import hub as hub_module

    monkeypatch.setattr(hub_module, "FEED_GROUP_VIEWERS", 1)
    feed = RoomFeed(StubHub(), 1)
    monkeypatch.setattr(feed, "schedule_flush", lambda: None)
    feed.add_viewer(GroupViewer("v", []))
    (group,) = feed.groups
    feed.window, feed.presence_window = 0.1, 0.4
    feed.last_flush = group.last_flush = 10.0

    feed.push_connection_event(encode({"type": "presence", "count": 2}))
    assert feed._next_group() == (group, pytest.approx(10.4))

    feed.push_event(event(1), None)
    assert feed._next_group() == (group, pytest.approx(10.1))


async def test_a_room_event_after_waiting_presence_deltas_goes_at_its_own_turn_with_them():
    viewer = Viewer()
    feed = watched_feed(viewer)
    # A flush just went out; deltas alone would wait far longer than this test.
    feed.window, feed.presence_window = 0.01, 60.0
    feed.last_flush = feed.groups[0].last_flush = time.monotonic()

    feed.push_connection_event(encode({"type": "presence", "count": 2}))
    feed.push_event(event(1), None)
    for _ in range(100):
        await asyncio.sleep(0.01)
        if viewer.frames:
            break

    assert viewer.frames == [[1, None]]


async def test_flushes_measure_what_presence_deltas_alone_may_cost(monkeypatch):
    from rooms.delivery import hub as hub_module

    monkeypatch.setattr(hub_module, "PRESENCE_FANOUT_PERCENT", 5)
    viewer = Viewer(write_seconds=0.01)
    feed = watched_feed(viewer)

    feed.push_event(event(1), None)
    for _ in range(100):
        await asyncio.sleep(0.01)
        if viewer.frames and not feed.flush_scheduled:
            break

    # The flush's cost, 20 times over: deltas alone take at most 5 % of the process.
    assert feed.presence_window == pytest.approx(feed.groups[0].cost * 20)
    assert feed.presence_window >= 0.2
