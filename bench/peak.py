"""The recovery probe of the `peak` preset: right after a burst, is the room usable?

Every second a fresh viewer connects (signed in as a member), and the time to its
welcome is taken; it then sends one message, and the time until that message comes back
to it as a room event (or until it is answered with an error, e.g. `busy`) is taken.
A probe that gets no welcome or no answer within 10 s counts as failed. Nothing here
asserts a time: run.py prints what it measured.
"""

from __future__ import annotations

import asyncio
import json
import time

from websockets.asyncio.client import connect

PROBE_TIMEOUT = 10.0


async def _one(url: str, origin: str, cookie: str, n: int) -> dict:
    started = time.monotonic()
    result: dict = {"at_s": None, "welcome_ms": None, "echo_ms": None, "answer": None}
    try:
        async with connect(
            url, origin=origin, additional_headers={"Cookie": cookie}, max_size=None, ping_interval=None, proxy=None
        ) as ws:
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), PROBE_TIMEOUT))
                if frame.get("type") == "welcome":
                    break
            result["welcome_ms"] = round((time.monotonic() - started) * 1000, 1)
            client_id = f"probe-{n}-{int(started * 1000)}"
            sent = time.monotonic()
            await ws.send(json.dumps({"type": "send", "body": f"probe {n}", "client_id": client_id}))
            deadline = sent + PROBE_TIMEOUT
            while time.monotonic() < deadline:
                frame = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
                events = frame.get("events", [frame]) if frame.get("type") == "batch" else [frame]
                for event in events:
                    if event.get("type") == "message" and event.get("client_id") == client_id:
                        result["echo_ms"] = round((time.monotonic() - sent) * 1000, 1)
                        result["answer"] = "stored"
                        return result
                    if event.get("type") == "error" and event.get("client_id") == client_id:
                        result["echo_ms"] = round((time.monotonic() - sent) * 1000, 1)
                        result["answer"] = event.get("code")
                        return result
    except (TimeoutError, OSError, ValueError) as exc:
        result["answer"] = f"failed: {exc.__class__.__name__}"
    return result


async def recovery_probe(url: str, origin: str, cookies: list[str]) -> dict:
    """Probe once a second, a different member each time (slow mode is per member);
    each probe runs on its own, so a slow one does not delay the next."""
    began = time.monotonic()
    tasks = []
    for n, cookie in enumerate(cookies):
        await asyncio.sleep(max(0.0, began + n - time.monotonic()))
        tasks.append(asyncio.ensure_future(_one(url, origin, cookie, n)))
    probes = await asyncio.gather(*tasks)
    for n, probe in enumerate(probes):
        probe["at_s"] = n

    def usable(p: dict) -> bool:
        return (
            p["welcome_ms"] is not None
            and p["welcome_ms"] <= 1000
            and p["answer"] == "stored"
            and p["echo_ms"] is not None
            and p["echo_ms"] <= 1000
        )

    # Recovered: from this probe on, every probe was welcomed and echoed within 1 s.
    recovered_at = None
    for n in range(len(probes)):
        if all(usable(p) for p in probes[n:]):
            recovered_at = n
            break
    return {"probes": probes, "recovered_after_s": recovered_at}


def format_probe(result: dict) -> str:
    lines = ["recovery probe (a fresh member every second): welcome ms / own message back ms / answer"]
    for p in result["probes"]:
        lines.append(f"  +{p['at_s']:>2} s  {p['welcome_ms']!s:>8}  {p['echo_ms']!s:>8}  {p['answer']}")
    recovered = result["recovered_after_s"]
    lines.append(
        f"recovered after: {recovered} s" if recovered is not None else "recovered after: not within the probe"
    )
    return "\n".join(lines)
