"""Load, ground truth and the exactly-once checker shared by the fault scenarios."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from rooms.models import Message, Room, RoomEvent
from rooms.services import do_create_room, do_set_role
from tests.faults.resilient import ResilientClient, stamp


def rss_kib(pid: int) -> int:
    """Resident memory of a process, from /proc (VmRSS, KiB)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Cast:
    room: Room
    host: Any
    moderators: list[Any]
    members: list[Any]


@sync_to_async
def make_cast(slug: str, *, moderators: int = 2, members: int = 4) -> Cast:
    # Unusable passwords: sessions are made directly, and hashing costs time.
    users = get_user_model().objects
    host = users.create_user(username=f"{slug}-host")
    room = do_create_room(None, slug=slug, title=f"Room {slug}", host_username=host.username)
    mods = []
    for i in range(moderators):
        user = users.create_user(username=f"{slug}-mod{i}")
        # The host team is exempt from the members' send limits, so it can drive a busy room.
        do_set_role(None, room_id=room.pk, username=user.username, role="moderator")
        mods.append(user)
    people = [users.create_user(username=f"{slug}-member{i}") for i in range(members)]
    return Cast(room=room, host=host, moderators=mods, members=people)


@sync_to_async
def stored_seqs(room_id: int) -> list[int]:
    return list(RoomEvent.objects.filter(room_id=room_id).order_by("seq").values_list("seq", flat=True))


@sync_to_async
def room_head(room_id: int) -> int:
    return Room.objects.get(pk=room_id).last_seq


@sync_to_async
def stored_client_ids(room_id: int) -> list[str]:
    return list(Message.objects.filter(room_id=room_id).values_list("client_id", flat=True))


async def start_all(clients: Iterable[ResilientClient]) -> list[ResilientClient]:
    clients = list(clients)
    await asyncio.gather(*(c.start() for c in clients))
    return clients


async def stop_all(clients: Iterable[ResilientClient]) -> None:
    await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)


class Burst:
    """Messages at `rate` per second for `seconds`, spread over `senders` (each at an
    even pace), every send retried with its client_id until acked. A busy room does not
    wait for acks, so sends overlap."""

    def __init__(
        self,
        senders: Sequence[ResilientClient],
        *,
        rate: float,
        seconds: float,
        tag: str,
        pad: str = "",
    ) -> None:
        self.senders = list(senders)
        self.rate = rate
        self.seconds = seconds
        self.tag = tag
        self.pad = pad
        self.acks: dict[str, dict] = {}
        # Seconds from the first attempt of each send to its ack, retries included.
        self.ack_seconds: list[float] = []
        # When each stored seq's ack reached its sender: the moment it was known stored.
        self.acked_at: dict[int, float] = {}
        self.started = 0.0
        self.sent_in = 0.0

    async def run(self, *, ack_within: float = 40.0) -> dict[str, dict]:
        per_sender = max(1, round(self.rate * self.seconds / len(self.senders)))
        interval = len(self.senders) / self.rate
        self.started = time.monotonic()
        pending: list[asyncio.Task] = []

        async def pace(n: int, sender: ResilientClient) -> None:
            start = self.started + n * interval / len(self.senders)
            for i in range(per_sender):
                delay = start + i * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                client_id = f"{self.tag}-{n}-{i}"
                body = stamp(f"{self.pad}{self.tag} {n}/{i}")
                pending.append(asyncio.create_task(self._send(sender, body, client_id, ack_within)))

        await asyncio.gather(*(pace(n, s) for n, s in enumerate(self.senders)))
        self.sent_in = time.monotonic() - self.started
        await asyncio.gather(*pending)
        return self.acks

    async def _send(self, sender: ResilientClient, body: str, client_id: str, within: float) -> None:
        began = time.monotonic()
        ack = self.acks[client_id] = await sender.send_until_acked(body, client_id, within=within)
        self.acked_at[ack["seq"]] = time.monotonic()
        self.ack_seconds.append(time.monotonic() - began)

    def figures(self) -> dict[str, Any]:
        return {
            "sends": len(self.acks),
            "achieved_rate": round(len(self.acks) / self.sent_in, 1) if self.sent_in else 0,
            "max_ack_s": round(max(self.ack_seconds), 2) if self.ack_seconds else None,
        }


async def settle(clients: Sequence[ResilientClient], room_id: int, *, timeout: float = 20.0) -> int:
    """Wait until every client has applied the whole log as it stands; the head seq."""
    head = await room_head(room_id)
    await asyncio.gather(*(c.caught_up(head, timeout) for c in clients))
    return head


def check_exactly_once(clients: Sequence[ResilientClient], stored: list[int]) -> dict[str, Any]:
    """Every client applied every stored event after its starting point exactly once, in
    order, with no gap, and the server sent it no duplicate. Returns figures to report."""
    assert stored == list(range(1, len(stored) + 1)), f"the room log itself has gaps: {stored[:20]}..."
    problems = []
    for client in clients:
        expected = [s for s in stored if s > client.start_after]
        applied = client.applied
        if applied != expected:
            seen = set(applied)
            missing = [s for s in expected if s not in seen]
            extra = sorted(set(applied) - set(expected))
            twice = sorted(s for s in seen if applied.count(s) > 1)
            problems.append(
                f"{client.label}: applied {len(applied)} of {len(expected)}; missing {missing[:10]} "
                f"extra {extra[:10]} twice {twice[:10]}"
            )
        if client.duplicates:
            problems.append(f"{client.label}: server sent duplicates {client.duplicates[:10]}")
        if client.held:
            problems.append(f"{client.label}: still holding {sorted(client.held)[:10]}")
        if client.protocol_errors:
            problems.append(f"{client.label}: frames against the protocol: {client.protocol_errors[:3]}")
        if client.vouched:
            # Nobody here blocks anybody, so nothing may be withheld.
            problems.append(f"{client.label}: told it had {client.vouched[:10]} without getting them")
    assert not problems, "exactly-once violated:\n  " + "\n  ".join(problems)
    return {
        "clients": len(clients),
        "stored_events": len(stored),
        "deliveries_checked": sum(len(c.applied) for c in clients),
        "duplicates": sum(len(c.duplicates) for c in clients),
        "gaps_left": 0,
        "gap_syncs": sum(c.stats.gap_syncs for c in clients),
        "pong_syncs": sum(c.stats.pong_syncs for c in clients),
        "sync_overlaps": sum(c.stats.sync_overlaps for c in clients),
        "reconnects": sum(c.stats.connections - 1 for c in clients),
        "send_retries": sum(c.stats.send_retries for c in clients),
        "reply_timeouts": sum(c.stats.reply_timeouts for c in clients),
        "errors": dict(sum((c.stats.errors for c in clients), start=Counter())),
    }


def check_each_send_stored_once(acks: dict[str, dict], stored_ids: list[str]) -> None:
    """Retried sends stored nothing twice, and each ack names what was stored."""
    counts: dict[str, int] = {}
    for client_id in stored_ids:
        counts[client_id] = counts.get(client_id, 0) + 1
    twice = {cid: n for cid, n in counts.items() if n > 1}
    assert not twice, f"stored more than once: {twice}"
    missing = set(acks) - set(counts)
    assert not missing, f"acked but not stored: {sorted(missing)[:10]}"
    seqs = [a["seq"] for a in acks.values()]
    assert len(set(seqs)) == len(seqs), "two acks name the same seq"


def latency_figures(clients: Iterable[ResilientClient]) -> dict[str, float]:
    values = [v for c in clients for v in c.latencies]
    if not values:
        return {"live_deliveries": 0}
    values.sort()
    return {
        "live_deliveries": len(values),
        "p50_ms": round(statistics.median(values) * 1000, 1),
        "p99_ms": round(values[int(len(values) * 0.99) - 1] * 1000, 1),
        "max_ms": round(values[-1] * 1000, 1),
    }


def fanout_lag_figures(clients: Iterable[ResilientClient], burst: Burst) -> dict[str, float]:
    """How long after its sender heard it was stored each message reached the other
    clients live: the fan-out path alone, without the time it queued to be stored."""
    values = sorted(
        max(0.0, r.at - burst.acked_at[r.seq])
        for c in clients
        for r in c.receipts.values()
        if r.how == "live" and r.seq in burst.acked_at
    )
    if not values:
        return {}
    return {
        "fanout_p50_ms": round(statistics.median(values) * 1000, 1),
        "fanout_p99_ms": round(values[int(len(values) * 0.99) - 1] * 1000, 1),
        "fanout_max_ms": round(values[-1] * 1000, 1),
    }


def report(name: str, **figures: Any) -> None:
    """Figures for the run's log (pytest -s, or the captured output of a failure)."""
    print(f"\n[faults] {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


async def fresh_roster_count(server: Any, slug: str) -> int:
    """What a viewer arriving now is told: welcome.roster.count (the newcomer included)."""
    async with connect(
        f"{server.ws_url}/ws/rooms/{slug}/", origin=server.origin, open_timeout=5, proxy=None, ping_interval=None
    ) as ws:
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if event["type"] == "welcome":
                return event["roster"]["count"]


async def wait_for_roster_count(servers: Sequence[Any], slug: str, expected: int, *, within: float) -> float:
    """Seconds until a newcomer on every server is told `expected` viewers (itself included)."""
    began = time.monotonic()
    seen: list[Any] = []
    while True:
        try:
            counts: list[Any] = [await fresh_roster_count(s, slug) for s in servers]
        except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
            # A newcomer refused or dropped (say 1011) while Redis recovers: asked again.
            counts = [f"{exc.__class__.__name__}: {exc}"]
        seen.append(counts)
        if all(c == expected for c in counts):
            return time.monotonic() - began
        if time.monotonic() - began > within:
            raise AssertionError(f"roster count not {expected} within {within} s; newcomers were told {seen[-8:]}")
        await asyncio.sleep(0.5)


async def assert_live_everywhere(
    clients: Sequence[ResilientClient], senders: Sequence[ResilientClient], tag: str, *, within: float = 5.0
) -> float:
    """A message from each sender reaches every client live (not through a sync), promptly.
    Returns the slowest arrival in seconds."""
    slowest = 0.0
    for n, sender in enumerate(senders):
        began = time.monotonic()
        ack = await sender.send_until_acked(stamp(f"{tag} {n}"), f"{tag}-{n}")
        seq = ack["seq"]
        await asyncio.gather(
            *(c.wait_until(lambda c=c, seq=seq: seq in c.receipts, within, f"{tag} seq {seq}") for c in clients)
        )
        deaf = [f"{c.label} ({c.receipts[seq].how})" for c in clients if c.receipts[seq].how != "live"]
        assert not deaf, f"seq {seq} sent through {sender.label} reached these only by sync: {deaf}"
        slowest = max(slowest, max(c.receipts[seq].at for c in clients) - began)
    return slowest


class CpuMeter:
    """CPU seconds used by processes between start() and stop()."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before: dict[str, float] = {}

    def start(self) -> CpuMeter:
        self.began = time.monotonic()
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def stop(self) -> dict[str, float]:
        figures = {f"cpu_s_{name}": round(cpu_seconds(pid) - self.before[name], 2) for name, pid in self.pids.items()}
        figures["wall_s"] = round(time.monotonic() - self.began, 2)
        return figures


class PingProbe:
    """An anonymous viewer that pings every `every` seconds and records each round trip:
    how long the server took to answer anything at all, second by second."""

    def __init__(self, server: Any, slug: str, *, every: float = 0.2) -> None:
        self.server = server
        self.slug = slug
        self.every = every
        self.rtts: list[tuple[float, float]] = []
        self.unanswered: dict[float, float] = {}
        self._task: asyncio.Task | None = None

    async def start(self) -> PingProbe:
        self.ws = await connect(
            f"{self.server.ws_url}/ws/rooms/{self.slug}/?after=0",
            origin=self.server.origin,
            open_timeout=5,
            proxy=None,
            ping_interval=None,
            max_size=None,
        )
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        async def pinger() -> None:
            while True:
                sent = time.monotonic()
                self.unanswered[sent] = sent
                await self.ws.send(json.dumps({"type": "ping", "ts": sent}))
                await asyncio.sleep(self.every)

        task = asyncio.create_task(pinger())
        try:
            async for frame in self.ws:
                obj = json.loads(frame)
                for event in obj.get("events", [obj]) if obj.get("type") == "batch" else [obj]:
                    if event.get("type") == "pong" and isinstance(event.get("ts"), float):
                        sent = event["ts"]
                        self.unanswered.pop(sent, None)
                        self.rtts.append((sent, time.monotonic() - sent))
        except Exception:
            pass
        finally:
            task.cancel()

    def worst(self, since: float = 0.0) -> float:
        """The longest wait for a pong among pings sent after `since` (unanswered ones count
        from when they were sent until now)."""
        now = time.monotonic()
        waits = [rtt for sent, rtt in self.rtts if sent >= since]
        waits += [now - sent for sent in self.unanswered if sent >= since]
        return max(waits, default=0.0)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 2)
        if self._task is not None:
            self._task.cancel()


async def wait_subscribed(redis_url: str, channel: str, subscribers: int, *, within: float) -> float:
    """Seconds until `subscribers` connections listen on a Redis pub/sub channel: how long
    the server processes take to subscribe again after Redis lost them."""
    began = time.monotonic()
    client = aioredis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)
    try:
        while True:
            try:
                [(_, count)] = await client.pubsub_numsub(channel)
            except (aioredis.RedisError, OSError):
                count = None
            if count == subscribers:
                return time.monotonic() - began
            if time.monotonic() - began > within:
                raise AssertionError(f"{channel}: {count} subscribers, not {subscribers}, after {within} s")
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()
