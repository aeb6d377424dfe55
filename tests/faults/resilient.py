"""A client that keeps a room exactly once, the way docs/protocol.md "Staying exactly once"
tells every client to, and that keeps score of what the server did along the way.

What it does, as a real client would:

- applies room events in seq order, each once; holds events that arrive ahead of a gap;
- on a gap, waits GAP_WAIT_SECONDS for the missing events, then sends `sync`;
- pings every `ping_every` seconds and syncs when `pong.last_seq` stays ahead of it;
- when the server refuses a sync (too many syncs), syncs again after its retry_after, as
  the room page does;
- after any disconnect, reconnects with `?after=<last applied>` (to the next server in
  its list when the one it used is gone), paging with `sync` past a truncated history;
- retries a `send` with the same client_id until it is acked.

What it records, for the checker: `applied` (the seqs applied, in order) and every
duplicate the server sent. A duplicate is a room event the server sent again on a
connection that already carried it, or one at or below the `after` the connection asked
for, when no `sync` of the client asked for it again. The protocol lets a client
de-duplicate, so a real client would not notice; the tests count them because the server
promises not to send them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from tests.live.clients import session_cookie_for
from tests.support.schema import is_room_event, validate_event

Event = dict[str, Any]

GAP_WAIT_SECONDS = 0.3
# A pong ahead of the client may only mean events in flight; sync if it is still behind
# after this long.
PONG_GRACE_SECONDS = 0.5
RECONNECT_BACKOFF_SECONDS = 0.2
# A command's reply may be slow on a loaded machine; the connection being alive is what
# says it is still coming (each command with a client_id gets exactly one reply).
REPLY_TIMEOUT_SECONDS = 20.0
# Close codes after which a real client stops rather than reconnects.
FINAL_CLOSE_CODES = frozenset({4000, 4403, 4404, 4429})


class Disconnected(Exception):
    """The connection a command went out on closed before its reply came."""


class Refused(AssertionError):
    """The server answered a command with an error that retrying would not fix."""


def strict_json(text: str) -> Any:
    """json.loads without Python's extensions: NaN and Infinity are not JSON (RFC 8259)."""

    def reject(token: str) -> Any:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=reject)


def stamp(body: str) -> str:
    """A message body that carries its send time, for measuring live latency."""
    return f"{body} @{time.monotonic():.6f}"


def sent_at(body: str) -> float | None:
    head, sep, tail = body.rpartition(" @")
    if not sep:
        return None
    try:
        return float(tail)
    except ValueError:
        return None


@dataclass
class Receipt:
    """How a room event first reached the client."""

    seq: int
    conn: int
    at: float
    # "welcome" (history), "live", or "sync" (while a sync of the client was outstanding).
    how: str


@dataclass
class Stats:
    connections: int = 0
    connect_failures: int = 0
    close_codes: list[int | None] = field(default_factory=list)
    gap_syncs: int = 0
    # Syncs the server refused (an error answering them): each is tried again.
    refused_syncs: int = 0
    pong_syncs: int = 0
    page_syncs: int = 0
    # Events received again inside a sync window: the replay covering what was in flight.
    sync_overlaps: int = 0
    send_retries: int = 0
    reply_timeouts: int = 0
    errors: Counter = field(default_factory=Counter)
    frames: int = 0
    # The ?after of each reconnection.
    resumed_after: list[int] = field(default_factory=list)


class ResilientClient:
    def __init__(
        self,
        servers: Sequence[Any],
        slug: str,
        *,
        user: Any = None,
        label: str = "",
        home: int = 0,
        after: int = 0,
        ping_every: float = 2.0,
        reconnect: bool = True,
    ) -> None:
        self.servers = list(servers)
        self.slug = slug
        self.user = user
        self.label = label or (getattr(user, "username", None) or "anon")
        self.home = home
        self.ping_every = ping_every
        self.reconnect = reconnect
        self.cookie: dict[str, str] | None = None

        self.last = after
        self.start_after = after
        self.applied: list[int] = []
        self.bodies: dict[int, Event] = {}
        self.receipts: dict[int, Receipt] = {}
        self.held: dict[int, Event] = {}
        self.duplicates: list[tuple[int, int, str]] = []
        # Seqs the server vouched for without sending (withheld from this client).
        self.vouched: list[int] = []
        # Frames that were not JSON, or not what PROTOCOL.md says.
        self.protocol_errors: list[str] = []
        self.latencies: list[float] = []
        self.stats = Stats()
        self.roster_count: int | None = None
        self.welcomes: list[Event] = []
        self.final_close: int | None = None

        self.ws: ClientConnection | None = None
        self.server: Any = None
        self.conn = 0
        self._conn_after = after
        self._conn_seen: set[int] = set()
        self._syncing = 0
        # The client_ids of the syncs on their way: an error answering one ends it.
        self._sync_ids: set[str] = set()
        self._sync_n = 0
        self._gap_timer: asyncio.TimerHandle | None = None
        self._pong_check: asyncio.TimerHandle | None = None
        self._waiters: dict[str, asyncio.Future] = {}
        self._ready = asyncio.Event()
        self._changed = asyncio.Event()
        self._stopping = False
        self._attempt = 0
        self._ping_n = 0
        self._task: asyncio.Task | None = None

    def __repr__(self) -> str:
        return f"<ResilientClient {self.label} last={self.last} conn={self.conn} held={sorted(self.held)[:5]}>"

    # Life cycle.

    async def start(self, timeout: float = 10.0) -> ResilientClient:
        if self.user is not None and self.cookie is None:
            self.cookie = await sync_to_async(session_cookie_for)(self.user)
        self._task = asyncio.create_task(self._run(), name=f"resilient {self.label}")
        await self.wait_ready(timeout)
        return self

    async def wait_ready(self, timeout: float = 10.0) -> None:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.label}: no welcome within {timeout} s; {self.stats}") from None

    async def stop(self) -> None:
        self._stopping = True
        for timer in (self._gap_timer, self._pong_check):
            if timer is not None:
                timer.cancel()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 3)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def bounce(self) -> None:
        """Close the connection from the client side; the client comes back with ?after."""
        if self.ws is not None:
            await self.ws.close()

    def abort(self) -> None:
        """Drop the TCP connection without a close handshake, as a lost network does."""
        if self.ws is not None:
            self.ws.transport.abort()

    def _pick_server(self) -> Any:
        return self.servers[(self.home + self._attempt) % len(self.servers)]

    async def _run(self) -> None:
        while not self._stopping:
            server = self._pick_server()
            url = f"{server.ws_url}/ws/rooms/{self.slug}/?after={self.last}"
            headers = []
            if self.cookie is not None:
                headers.append(("Cookie", f"{self.cookie['name']}={self.cookie['value']}"))
            try:
                ws = await connect(
                    url,
                    origin=server.origin,
                    additional_headers=headers,
                    ping_interval=None,
                    open_timeout=5,
                    close_timeout=2,
                    max_size=16 * 1024 * 1024,
                    max_queue=None,
                    compression=None,
                    proxy=None,
                )
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                self.stats.connect_failures += 1
                if isinstance(exc, InvalidStatus) and exc.response.status_code == 403:
                    self.final_close = 403
                    break
                self._attempt += 1
                await asyncio.sleep(RECONNECT_BACKOFF_SECONDS)
                continue
            self.ws, self.server = ws, server
            self._open_connection()
            pinger = asyncio.create_task(self._ping_loop(ws))
            try:
                async for frame in ws:
                    try:
                        self._on_frame(frame)
                    except (AssertionError, ValueError) as exc:
                        # Kept for the checker; a real client would log it and carry on.
                        self.protocol_errors.append(f"{exc}"[:500])
            except ConnectionClosed:
                pass
            finally:
                pinger.cancel()
                self._ready.clear()
                self._fail_waiters()
                self._changed.set()
            code = ws.close_code
            self.stats.close_codes.append(code)
            if self._stopping:
                break
            if not self.reconnect or code in FINAL_CLOSE_CODES:
                self.final_close = code
                break
            if code == 1006:
                # The process may be gone: try the next one.
                self._attempt += 1
            await asyncio.sleep(RECONNECT_BACKOFF_SECONDS)

    def _open_connection(self) -> None:
        self.conn += 1
        self.stats.connections += 1
        self._conn_after = self.last
        if self.conn > 1:
            self.stats.resumed_after.append(self.last)
        self._conn_seen = set()
        self._syncing = 0
        self._sync_ids.clear()
        # Held events came from the old connection; the new one replays from `last`.
        self.held.clear()
        if self._gap_timer is not None:
            self._gap_timer.cancel()
            self._gap_timer = None

    async def _ping_loop(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed, asyncio.CancelledError):
            while True:
                await asyncio.sleep(self.ping_every)
                self._ping_n += 1
                await ws.send(json.dumps({"type": "ping", "ts": self._ping_n}))

    # Incoming frames.

    def _on_frame(self, text: str | bytes) -> None:
        assert isinstance(text, str), f"{self.label}: binary frame from the server: {text[:80]!r}"
        self.stats.frames += 1
        obj = strict_json(text)
        validate_event(obj)
        events = obj["events"] if obj.get("type") == "batch" else [obj]
        for event in events:
            self._on_event(event)
        if obj.get("type") == "batch" and "last_seq" in obj:
            self._vouch(obj["last_seq"])
        self._changed.set()

    def _on_event(self, event: Event) -> None:
        kind = event["type"]
        if kind == "welcome":
            self.welcomes.append(event)
            self.roster_count = event["roster"]["count"]
            for item in event["history"]:
                self._on_room_event(item, how="welcome")
            if event["history_truncated"]:
                self.stats.page_syncs += 1
                self._sync()
            else:
                self._vouch(event["last_seq"])
            self._ready.set()
        elif is_room_event(event):
            self._on_room_event(event, how="sync" if self._syncing else "live")
        elif kind == "pong":
            self._on_pong(event)
        elif kind == "synced":
            self._on_synced(event)
        elif kind == "error":
            self.stats.errors[event["code"]] += 1
            if event.get("client_id") in self._sync_ids:
                self._sync_refused(event)
        elif kind in ("presence", "roster"):
            self.roster_count = event["count"]
        if kind in ("ack", "error", "pong", "synced", "roster"):
            # Every reply to a command that carried a client_id carries it back.
            waiter = self._waiters.pop(event.get("client_id") or "", None)
            if waiter is not None and not waiter.done():
                waiter.set_result(event)

    def _on_room_event(self, event: Event, *, how: str) -> None:
        seq = event["seq"]
        if seq in self._conn_seen:
            if self._syncing:
                self.stats.sync_overlaps += 1
            else:
                self.duplicates.append((seq, self.conn, "sent twice on one connection"))
        elif seq <= self._conn_after:
            self.duplicates.append((seq, self.conn, f"at or below ?after={self._conn_after}"))
        self._conn_seen.add(seq)
        if seq <= self.last:
            return
        if seq not in self.receipts:
            self.receipts[seq] = Receipt(seq, self.conn, time.monotonic(), how)
        if seq != self.last + 1:
            self.held[seq] = event
            if self._gap_timer is None:
                self._gap_timer = asyncio.get_running_loop().call_later(GAP_WAIT_SECONDS, self._gap_expired)
            return
        self._apply(event)
        while self.last + 1 in self.held:
            self._apply(self.held.pop(self.last + 1))
        for stale in [s for s in self.held if s <= self.last]:
            del self.held[stale]
        if not self.held and self._gap_timer is not None:
            self._gap_timer.cancel()
            self._gap_timer = None

    def _apply(self, event: Event) -> None:
        seq = event["seq"]
        self.applied.append(seq)
        self.last = seq
        self.bodies[seq] = event
        receipt = self.receipts[seq]
        if event["type"] == "message" and receipt.how == "live":
            sent = sent_at(event["body"])
            if sent is not None:
                self.latencies.append(receipt.at - sent)

    def _gap_expired(self) -> None:
        self._gap_timer = None
        if self.held and min(self.held) > self.last + 1:
            self.stats.gap_syncs += 1
            self._sync()

    def _on_pong(self, event: Event) -> None:
        head = event["last_seq"]
        if head > self.last and self._pong_check is None:
            self._pong_check = asyncio.get_running_loop().call_later(PONG_GRACE_SECONDS, self._pong_expired, head)

    def _pong_expired(self, head: int) -> None:
        self._pong_check = None
        if self.last < head and not self._syncing:
            self.stats.pong_syncs += 1
            self._sync()

    def _vouch(self, seq: int) -> None:
        """The server says nothing up to `seq` is missing for this client: what did not
        come was withheld from it (people it blocked). Recorded, so that a checker can
        tell withheld from lost."""
        while self.last < seq:
            following = self.last + 1
            if following in self.held:
                self._apply(self.held.pop(following))
            else:
                self.vouched.append(following)
                self.last = following
        while self.last + 1 in self.held:
            self._apply(self.held.pop(self.last + 1))
        for stale in [s for s in self.held if s <= self.last]:
            del self.held[stale]

    def _on_synced(self, event: Event) -> None:
        self._sync_ids.discard(event.get("client_id"))
        self._syncing = max(0, self._syncing - 1)
        self._vouch(event["last_seq"])
        if event.get("truncated"):
            self.stats.page_syncs += 1
            self._sync()
        elif self.held and self._gap_timer is None:
            self._gap_timer = asyncio.get_running_loop().call_later(GAP_WAIT_SECONDS, self._gap_expired)

    def _sync(self) -> None:
        ws = self.ws
        if ws is None or self._syncing:
            return
        self._syncing += 1
        self._sync_n += 1
        client_id = f"auto-sync-{self._sync_n}"
        self._sync_ids.add(client_id)
        frame = {"type": "sync", "after": self.last, "client_id": client_id}
        asyncio.get_running_loop().create_task(self._send_quietly(ws, frame))

    def _sync_refused(self, event: Event) -> None:
        client_id = event["client_id"]
        self._sync_ids.discard(client_id)
        self._syncing = max(0, self._syncing - 1)
        self.stats.refused_syncs += 1
        if client_id.startswith("auto-sync-"):
            # One of its own (a gap, a pong ahead): what it was for is still to do. A
            # sync asked for through request() is its caller's to repeat.
            asyncio.get_running_loop().call_later(event.get("retry_after") or GAP_WAIT_SECONDS, self._sync)

    async def _send_quietly(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(frame))

    def _fail_waiters(self) -> None:
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(Disconnected())
        self._waiters.clear()

    # Commands.

    async def request(self, frame: dict[str, Any], timeout: float = REPLY_TIMEOUT_SECONDS) -> Event:
        """Send one command with a client_id on the current connection; its ack or error."""
        await self.wait_ready()
        ws = self.ws
        assert ws is not None
        client_id = frame["client_id"]
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[client_id] = waiter
        if frame.get("type") == "sync":
            # What it replays was asked for: not duplicates.
            self._syncing += 1
            self._sync_ids.add(client_id)
        try:
            await ws.send(json.dumps(frame))
        except ConnectionClosed:
            raise Disconnected() from None
        try:
            return await asyncio.wait_for(waiter, timeout)
        finally:
            if self._waiters.get(client_id) is waiter:
                del self._waiters[client_id]

    async def send_until_acked(self, body: str, client_id: str, *, within: float = 30.0) -> Event:
        """Send a message, repeating the same client_id through errors and reconnects."""
        deadline = time.monotonic() + within
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.label}: {client_id} not acked within {within} s; {self.stats}")
            try:
                reply = await self.request({"type": "send", "body": body, "client_id": client_id})
            except TimeoutError:
                self.stats.reply_timeouts += 1
                self.stats.send_retries += 1
                continue
            except (Disconnected, AssertionError):
                self.stats.send_retries += 1
                await asyncio.sleep(RECONNECT_BACKOFF_SECONDS)
                continue
            if reply["type"] == "ack":
                return reply
            if reply["code"] in ("server_error", "rate_limited"):
                self.stats.send_retries += 1
                await asyncio.sleep(min(reply.get("retry_after") or 0.25, 2.0))
                continue
            raise Refused(f"{self.label}: send {client_id} refused: {reply}")

    # Waiting.

    async def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.label}: {what} not within {timeout} s; {self!r} {self.stats}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))

    async def caught_up(self, seq: int, timeout: float = 15.0) -> None:
        await self.wait_until(lambda: self.last >= seq, timeout, f"applied up to seq {seq}")
