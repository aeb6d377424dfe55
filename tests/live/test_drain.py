"""SIGTERM on a real daphne process while its room is busy: every viewer is sent to the
other process with 1012, resumes there with ?after=, and across the whole run every
acked message reaches every viewer exactly once."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from websockets.exceptions import ConnectionClosed

from rooms.models import Message
from rooms.protocol import Close
from tests.live.clients import LiveClient
from tests.live.test_multiprocess import make_cast

pytestmark = [
    pytest.mark.multiprocess,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

DRAIN_SECONDS = 2
# Beyond the drain: the last writes, daphne's own shutdown and the interpreter's exit.
EXIT_MARGIN_SECONDS = 15
SENDS_EACH = 30


class Roamer:
    """One logical viewer (a browser tab): on 1012 it reconnects to `fallback` with
    ?after= the last seq it has without a hole, as the page does."""

    def __init__(self, ws_connect, slug: str, user, label: str) -> None:
        self.ws_connect = ws_connect
        self.slug = slug
        self.user = user
        self.label = label
        self.connections: list[LiveClient] = []
        self.resumed_after: int | None = None
        self._changed = asyncio.Event()

    @property
    def conn(self) -> LiveClient:
        return self.connections[-1]

    async def open(self, server, after: int | None = None) -> None:
        client = await self.ws_connect(server, self.slug, user=self.user, after=after, label=f"{self.label}#{after}")
        await client.expect_welcome()
        self.connections.append(client)
        self._changed.set()

    def seqs(self) -> list[int]:
        return [seq for client in self.connections for seq in client.seqs]

    def contiguous(self) -> int:
        have = set(self.seqs())
        last = self.connections[0].welcome["last_seq"]
        while last + 1 in have:
            last += 1
        return last

    async def roam_to(self, fallback) -> int:
        """Wait for the server to close this viewer; resume on `fallback`. The close code."""
        code = await self.conn.wait_closed(timeout=60)
        self.resumed_after = self.contiguous()
        await self.open(fallback, after=self.resumed_after)
        return code

    async def next_connection(self, old: LiveClient) -> None:
        while self.conn is old:
            self._changed.clear()
            await asyncio.wait_for(self._changed.wait(), 60)


async def send_all(roamer: Roamer, prefix: str, acked: dict[str, int]) -> None:
    """Send SENDS_EACH lines, each until acked, across a move to the other process:
    a line that got no ack is sent again with the same client_id (stored once)."""
    for n in range(SENDS_EACH):
        client_id = f"{prefix}-{n}"
        while client_id not in acked:
            conn = roamer.conn
            try:
                await conn.send({"type": "send", "body": f"{prefix} line {n}", "client_id": client_id})
                reply = await conn.wait_for(
                    lambda e, c=client_id: e.get("type") in ("ack", "error") and e.get("client_id") == c, timeout=10
                )
            except Exception as exc:
                # A send can fail on the server's 1012 before the client's reader has
                # marked the connection closed.
                if not conn.closed and not isinstance(exc, ConnectionClosed):
                    raise
                await roamer.next_connection(conn)
                continue
            if reply["type"] == "ack":
                acked[client_id] = reply["seq"]
            else:
                assert reply["code"] == "busy", reply
                await asyncio.sleep(min(reply.get("retry_after", 0.5), 1.0))
        await asyncio.sleep(0.03)


async def test_sigterm_drains_every_viewer_to_the_other_process_without_loss_or_doubles(daphne_servers, ws_connect):
    env = {
        "CHAT_DRAIN_SECONDS": str(DRAIN_SECONDS),
        # The members send faster than the member rate limits allow.
        "CHAT_SEND_BURST_COUNT": "1000",
        "CHAT_SEND_SUSTAINED_COUNT": "1000",
        # Every line live, so that "received" means received: past 20 lines a second the
        # readable feed would leave member lines out (for the client to page from the log).
        "CHAT_READABLE_MESSAGES_PER_SECOND": "0",
    }
    a, b = daphne_servers(2, env=env)
    cast = await make_cast("drain")
    users = get_user_model().objects
    readers = [await sync_to_async(users.create_user)(username=f"drain-reader-{n}") for n in range(4)]

    on_a = [Roamer(ws_connect, "drain", user, user.username) for user in (cast.alice, cast.bob, *readers)]
    on_b = Roamer(ws_connect, "drain", cast.moderator, "moderator-on-b")
    for roamer in on_a:
        await roamer.open(a)
    await on_b.open(b)
    # A request still arriving (its headers not all there): daphne has a connection for
    # it but no application yet, which made its own shutdown fail with KeyError
    # 'application_instance' (as did a handshake in its first second).
    slow_request = socket.create_connection(("127.0.0.1", a.port), timeout=5)
    slow_request.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n")

    acked: dict[str, int] = {}
    senders = [
        asyncio.ensure_future(send_all(on_a[0], "alice", acked)),
        asyncio.ensure_future(send_all(on_a[1], "bob", acked)),
        asyncio.ensure_future(send_all(on_b, "mod", acked)),
    ]
    while len(acked) < 6:
        await asyncio.sleep(0.02)
    roaming = [asyncio.ensure_future(roamer.roam_to(b)) for roamer in on_a]
    a.terminate()

    codes = await asyncio.gather(*roaming)
    exit_code = await sync_to_async(a.process.wait)(DRAIN_SECONDS + EXIT_MARGIN_SECONDS)
    await asyncio.gather(*senders)
    slow_request.close()

    assert codes == [Close.SERVICE_RESTART] * len(on_a)
    assert exit_code == 0, a.output()[-3000:]
    # No new connections were taken once the drain began.
    with pytest.raises(OSError):
        await ws_connect(a, "drain")
    output = a.output()
    assert "application_instance" not in output and "CRITICAL" not in output and "Traceback" not in output, output[
        -3000:
    ]

    assert len(acked) == 3 * SENDS_EACH
    everyone = [*on_a, on_b]
    last = max(acked.values())
    for roamer in everyone:
        await roamer.conn.wait_until(lambda r=roamer: last in r.seqs(), timeout=10, what=f"{roamer.label}: seq {last}")
    for roamer in everyone:
        counts = Counter(roamer.seqs())
        missing = sorted(seq for seq in acked.values() if counts[seq] == 0)
        # Sent twice: within one connection, or on the resumed connection at or below
        # the ?after= it asked with. (Live delivery may leave a hole for the client to
        # fill, on a loaded machine; a client resuming from before the hole gets what
        # came after it again, by its own asking, and keeps each seq once, as the page does.)
        doubled = sorted(
            {seq for client in roamer.connections for seq, n in Counter(client.seqs).items() if n > 1}
            | {seq for client in roamer.connections[1:] for seq in client.seqs if seq <= (roamer.resumed_after or 0)}
        )
        assert not missing and not doubled, (
            f"{roamer.label}: missing {missing}, doubled {doubled}; resumed after {roamer.resumed_after}; "
            f"seqs per connection {[c.seqs for c in roamer.connections]}; "
            f"welcomes {[(c.welcome['last_seq'], len(c.welcome.get('history', []))) for c in roamer.connections]}"
        )
    for roamer in on_a:
        assert len(roamer.connections) == 2 and roamer.resumed_after is not None
    stored = await sync_to_async(lambda: Counter(Message.objects.values_list("client_id", flat=True)))()
    assert stored == Counter(acked.keys()), "each acked line stored once, nothing unacked stored"
