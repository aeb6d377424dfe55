"""Sync storm: guests asking for a long replay over and over, and what it does to
everyone else on the same process.

N guest sockets each send `{"type":"sync","after":0}` at R per second (open loop: the
next one goes at its time whether or not the last was answered) into a room whose log
holds E events, while one bystander pings every 100 ms. Reported: the bystander's ping
round trips (p50/p90/p99/max), the storm's answers by kind (replayed events, synced,
rate_limited), and the server's CPU. run.py starts the server and makes the room
(`--preset sync-storm`); nothing here asserts a time.
"""

from __future__ import annotations

import asyncio
import json
import time

from loadgen import pct
from websockets.asyncio.client import connect


async def _guest(url: str, origin: str, per_second: float, until: float, counts: dict) -> None:
    async with connect(url, origin=origin, max_size=None, ping_interval=None, proxy=None) as ws:
        await ws.recv()  # welcome

        async def read() -> None:
            async for text in ws:
                frame = json.loads(text)
                kind = frame.get("type")
                if kind == "batch":
                    counts["replayed_events"] += len(frame["events"])
                elif kind == "error":
                    counts[f"error_{frame.get('code')}"] += 1
                elif kind in ("synced", "message"):
                    counts[kind] += 1

        reader = asyncio.ensure_future(read())
        start = time.monotonic()
        k = 0
        try:
            while time.monotonic() < until:
                k += 1
                await ws.send('{"type":"sync","after":0}')
                counts["syncs_sent"] += 1
                await asyncio.sleep(max(0.0, start + k / per_second - time.monotonic()))
        finally:
            reader.cancel()


async def _bystander(url: str, origin: str, start_at: float, until: float, rtts: list[float]) -> None:
    async with connect(url, origin=origin, max_size=None, ping_interval=None, proxy=None) as ws:
        await ws.recv()  # welcome
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        n = 0
        while time.monotonic() < until:
            n += 1
            sent = time.monotonic()
            await ws.send(json.dumps({"type": "ping", "ts": n, "client_id": f"p{n}"}))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if frame.get("type") == "pong" and frame.get("client_id") == f"p{n}":
                    break
            rtts.append((time.monotonic() - sent) * 1000)
            await asyncio.sleep(0.1)


async def run_storm(url: str, origin: str, *, guests: int, per_second: float, duration: float, probe) -> dict:
    counts: dict = {k: 0 for k in ("syncs_sent", "replayed_events", "synced", "message", "error_rate_limited")}
    quiet_rtts: list[float] = []
    storm_rtts: list[float] = []
    # A quiet baseline first: the bystander alone for 5 s.
    now = time.monotonic()
    await _bystander(url, origin, now, now + 5, quiet_rtts)
    started = time.monotonic()
    until = started + duration
    cpu_before = probe.snapshot().get("cpu_s")
    await asyncio.gather(
        *(_guest(url, origin, per_second, until, counts) for _ in range(guests)),
        # The bystander starts once the storm is under way.
        _bystander(url, origin, started + 2, until, storm_rtts),
    )
    cpu_after = probe.snapshot().get("cpu_s")
    cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None

    def summary(rtts: list[float]) -> dict:
        return {
            "pings": len(rtts),
            **{f"p{p}_ms": round(pct(rtts, p), 1) if rtts else None for p in (50, 90, 99)},
            "max_ms": round(max(rtts), 1) if rtts else None,
        }

    return {
        "storm": {"guests": guests, "syncs_per_second_each": per_second, "duration_s": duration, **counts},
        "bystander_quiet": summary(quiet_rtts),
        "bystander_in_storm": summary(storm_rtts),
        "server_cpu_s": round(cpu, 2) if cpu is not None else None,
    }


def format_storm(result: dict) -> str:
    s, quiet, storm = result["storm"], result["bystander_quiet"], result["bystander_in_storm"]
    return "\n".join(
        [
            f"storm: {s['guests']} guests x {s['syncs_per_second_each']} sync/s for {s['duration_s']} s: "
            f"{s['syncs_sent']} sent, {s['synced']} answered, {s['error_rate_limited']} rate_limited, "
            f"{s['replayed_events']} events replayed",
            f"bystander ping, alone:    p50 {quiet['p50_ms']} ms, p90 {quiet['p90_ms']} ms, max {quiet['max_ms']} ms",
            f"bystander ping, in storm: p50 {storm['p50_ms']} ms, p90 {storm['p90_ms']} ms, "
            f"p99 {storm['p99_ms']} ms, max {storm['max_ms']} ms ({storm['pings']} pings)",
            f"server CPU during the storm: {result['server_cpu_s']} s",
        ]
    )
