"""Scenario: a viewer stops reading in a busy room of big messages.

The server must not let one viewer that stopped reading slow the room for everyone, nor
hold an unbounded backlog for it: past its bound the viewer is told to resync (4409) and
comes back with ?after. The slow viewer here is a bare TCP socket with a small receive
buffer that simply stops calling recv(), as a stalled phone or a hostile client would.

Before anything queues in the server process, the kernel takes up to tcp_wmem[2] for the
socket (4 MiB on this host), so a stall of a couple of MiB ends "caught up"; the bound
itself is pinned by the in-process test at the end, which fakes the backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from tests.faults.harness import (
    Burst,
    CpuMeter,
    check_exactly_once,
    fanout_lag_figures,
    latency_figures,
    make_cast,
    report,
    room_head,
    rss_kib,
    settle,
    start_all,
    stop_all,
    stored_seqs,
)
from tests.faults.rawws import OP_CLOSE, RawSocket, open_raw
from tests.faults.resilient import ResilientClient
from tests.live.clients import session_cookie_for

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

RATE = 200
SECONDS = 5.0
SENDERS = 20
STALL_SECONDS = 10.0
# 500 four-byte characters: the biggest body there is, about 2 KB of UTF-8 per event.
BIG = "\U0001f600" * 468 + " "
# What "bounded" means here, generously: the server may keep a few MiB per stalled viewer
# (its transport bound plus kernel buffers) and some allocator slack, not the whole stream.
RSS_GROWTH_LIMIT_KIB = 64 * 1024


async def read_until(raw: RawSocket, done, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done() and raw.close_code is None and not raw.eof:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            frame = await asyncio.wait_for(raw.read_frame(), remaining)
        except TimeoutError:
            return
        if frame is None or frame[0] == OP_CLOSE:
            return


async def test_a_viewer_that_stops_reading_is_cut_off_or_caught_up_and_the_room_keeps_moving(daphne_servers):
    (server,) = daphne_servers(1)
    cast = await make_cast("slow", moderators=2, members=5)
    senders = [
        ResilientClient([server], "slow", user=cast.moderators[n % 2], label=f"sender{n}") for n in range(SENDERS)
    ]
    watchers = [ResilientClient([server], "slow", user=m, label=f"watcher{n}") for n, m in enumerate(cast.members[1:])]
    everyone = await start_all([*senders, *watchers])
    cookie = await sync_to_async(session_cookie_for)(cast.members[0])
    raw = await open_raw(server, "/ws/rooms/slow/?after=0", cookie=cookie, rcvbuf=4096)
    resumed: ResilientClient | None = None
    try:
        welcome = await raw.read_json()
        assert welcome["type"] == "welcome"
        rss_before = rss_kib(server.pid)

        meter = CpuMeter({"server": server.pid}).start()
        burst = Burst(senders, rate=RATE, seconds=SECONDS, tag="s", pad=BIG)
        running = asyncio.create_task(burst.run(ack_within=60))
        # The stall: nothing reads the socket while the room moves.
        stalled_at = time.monotonic()
        rss_peak = rss_before
        while time.monotonic() - stalled_at < STALL_SECONDS:
            rss_peak = max(rss_peak, rss_kib(server.pid))
            await asyncio.sleep(0.25)
        await running
        cpu = meter.stop()
        head = await room_head(cast.room.pk)

        # Reading again: whatever the server kept for it, then either its close or the head.
        bytes_before = raw.bytes_read
        await read_until(raw, lambda: bool(raw.seqs) and raw.seqs[-1] >= head, timeout=30)
        held_for_it = raw.bytes_read - bytes_before
        raw_seqs = raw.seqs
        assert raw_seqs == list(range(1, len(raw_seqs) + 1)), "the stalled viewer got a gap or a duplicate"
        if raw.close_code is not None:
            outcome = f"closed {raw.close_code}"
            assert raw.close_code == 4409, f"closed with {raw.close_code}, not 4409"
        else:
            assert raw_seqs and raw_seqs[-1] == head, f"neither closed nor caught up: {len(raw_seqs)} of {head}"
            outcome = "caught up"
        await raw.close()

        # Back with ?after=<last seq it applied>, as the 4409 says.
        resumed = ResilientClient([server], "slow", user=cast.members[0], after=raw_seqs[-1] if raw_seqs else 0)
        await resumed.start()
        await settle([*everyone, resumed], cast.room.pk, timeout=60)
        stored = await stored_seqs(cast.room.pk)
        assert raw_seqs + resumed.applied == stored
        figures = check_exactly_once([*everyone, resumed], stored)
        rss_after = rss_kib(server.pid)
        assert rss_peak - rss_before < RSS_GROWTH_LIMIT_KIB, (rss_before, rss_peak)
        # The others were never held up enough to need the log: everything reached them live.
        assert all(r.how == "live" for w in watchers for r in w.receipts.values()), [w.stats for w in watchers]
        report(
            "slow reader",
            outcome=outcome,
            stream_mib=round(head * 2.2 / 1024, 1),
            held_for_stalled_viewer_kib=held_for_it // 1024,
            seqs_before_stall=len(welcome["history"]),
            seqs_read_after_stall=len(raw_seqs),
            rss_before_kib=rss_before,
            rss_peak_kib=rss_peak,
            rss_after_kib=rss_after,
            **burst.figures(),
            **figures,
            **{f"others_{k}": v for k, v in latency_figures(watchers).items()},
            **{f"others_{k}": v for k, v in fanout_lag_figures(watchers, burst).items()},
            **cpu,
        )
    finally:
        await raw.close()
        await stop_all([*everyone, *([resumed] if resumed else [])])


class FakeTwistedTransport:
    """The attributes of twisted.internet.tcp.Server that the consumer reads to see how
    much is queued for a viewer, with a backlog the test sets."""

    def __init__(self) -> None:
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataLen = 0
        self.connected = True
        self.disconnecting = False
        self.socket = self
        self.written: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.written.append(bytes(data))
        return len(data)

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))
        self._tempDataLen += len(data)

    def pauseProducing(self) -> None:  # noqa: N802 (Twisted's name)
        pass

    def resumeProducing(self) -> None:  # noqa: N802
        pass


class FakeDaphneProtocol:
    """What daphne hands an application as `send`'s first argument: an autobahn protocol."""

    STATE_CONNECTING = 0
    STATE_OPEN = 1

    def __init__(self) -> None:
        self.transport = FakeTwistedTransport()
        self.send_queue: list = []
        self.state = self.STATE_OPEN
        self.replies: list[dict] = []
        # What the transport sets up to bound what the client sends.
        self.application_queue: asyncio.Queue = asyncio.Queue()
        self.failByDrop = True
        self.failedByMe = False
        self.message_data_total_length = 0

    def onMessage(self, payload: bytes, is_binary: bool) -> None:  # noqa: N802 (autobahn's name)
        self.application_queue.put_nowait({"type": "websocket.receive", "text": payload.decode()})

    def onMessageFrameBegin(self, length: int) -> None:  # noqa: N802 (autobahn's name)
        self.message_data_total_length += length

    def sendData(self, data: bytes) -> None:  # noqa: N802 (autobahn's name)
        self.transport.write(data)

    def sendCloseFrame(self, code: int, isReply: bool = False) -> None:  # noqa: N802, N803 (autobahn's names)
        self.replies.append({"type": "websocket.close", "code": code, "sent_by": "transport"})


async def test_a_viewer_with_a_mebibyte_queued_is_told_to_resync(in_memory_channels, settings):
    """Under daphne, with the session and auth middleware in front of the consumer, as in
    chatsite.asgi: the middleware wraps daphne's `send`, which once hid daphne's protocol
    from the consumer and with it the bound. A real stalled socket hides up to
    tcp_wmem[2] (4 MiB here) in the kernel before anything queues in the process, so the
    backlog is faked instead."""
    from channels.db import database_sync_to_async

    from chatsite.asgi import application
    from rooms.services import do_send_message
    from tests.support.fixtures import stop_room_hub

    cast = await make_cast("queued", moderators=0, members=1)
    cookie = await sync_to_async(session_cookie_for)(cast.members[0])
    protocol = FakeDaphneProtocol()

    async def handle_reply(proto: FakeDaphneProtocol, message: dict) -> None:
        proto.replies.append(message)

    inbox: asyncio.Queue = asyncio.Queue()
    scope = {
        "type": "websocket",
        "path": "/ws/rooms/queued/",
        "raw_path": b"/ws/rooms/queued/",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"origin", b"http://127.0.0.1"),
            (b"cookie", f"{cookie['name']}={cookie['value']}".encode()),
        ],
        "client": ["127.0.0.1", 50000],
        "server": ["127.0.0.1", 8000],
        "subprotocols": [],
    }
    # Exactly how daphne calls the application (daphne.server.Server.create_application).
    app = asyncio.create_task(application(scope, inbox.get, functools.partial(handle_reply, protocol)))
    try:
        await inbox.put({"type": "websocket.connect"})
        deadline = time.monotonic() + 5
        while not any(m.get("type") == "websocket.send" for m in protocol.replies):
            assert time.monotonic() < deadline, protocol.replies
            await asyncio.sleep(0.02)
        # The viewer stopped reading: more than the bound is queued in its transport.
        protocol.transport._tempDataLen = 2 << 20
        await database_sync_to_async(do_send_message)(cast.members[0], room_id=cast.room.pk, body="one more")
        await asyncio.sleep(0.3)
        closes = [m for m in protocol.replies if m.get("type") == "websocket.close"]
        assert closes and closes[0].get("code") == 4409, (
            f"with 2 MiB queued the viewer was not told to resync; the event went "
            f"{'through the transport' if protocol.transport.written else 'through send()'}"
        )
    finally:
        await inbox.put({"type": "websocket.disconnect", "code": 1000})
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(app, 5)
        await stop_room_hub()
        # The consumer's database connections live in asgiref's thread, where pytest-django
        # does not close them; left open, they keep the test database from being dropped.
        await sync_to_async(connections.close_all)()
