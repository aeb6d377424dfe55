"""What the metrics add to the live path, measured alone: a figure that a busy machine
cannot blur the way it blurs a whole load run (bench/RESULTS.md, "2026-12-03, metrics").

    .venv/bin/python bench/metrics_cost.py

Times the counting each socket write, each room flush and each stored send now does
(and one scrape), then prices it at target-1000x100's rates (the defaults; the options take others, from a
report of bench/run.py) as CPU per delivery.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")


def best(statement, number: int, **names) -> float:
    """Seconds per run of `statement`: the best of five repeats (the least disturbed)."""
    return min(timeit.repeat(statement, globals=names, number=number, repeat=5)) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=float, default=100_000, help="deliveries per second")
    parser.add_argument("--frames", type=float, default=7_100, help="socket writes per second")
    parser.add_argument("--viewers", type=int, default=1_000, help="viewers per flush")
    parser.add_argument("--sends", type=float, default=100, help="sends stored per second")
    args = parser.parse_args()

    import django

    django.setup()
    from rooms import metrics
    from rooms.delivery.transport import frames_written

    def stored_send() -> None:
        # What one send adds from read to ack: the writer's batch, the stored event, the
        # ack's histogram and the command's outcome.
        metrics.WRITE_BATCH_SENDS.observe(5)
        metrics.EVENTS_STORED.inc()
        metrics.SEND_ACK_SECONDS.observe(0.05)
        metrics.command("send", "ok")

    events_per_frame = args.deliveries / args.frames
    write = best("written.fast += 1", 2_000_000, written=frames_written)
    flush = best("flushed(events, viewers)", 200_000, flushed=metrics.flushed, events=14, viewers=args.viewers)
    send = best("stored_send()", 200_000, stored_send=stored_send)
    from prometheus_client import REGISTRY, generate_latest

    scrape = best("generate_latest(registry)", 200, generate_latest=generate_latest, registry=REGISTRY)
    flushes = args.frames / args.viewers
    per_second = args.frames * write + flushes * flush + args.sends * send
    print(f"per socket write  {write * 1e9:8.1f} ns")
    print(f"per room flush    {flush * 1e6:8.2f} us")
    print(f"per stored send   {send * 1e6:8.2f} us")
    print(f"per scrape        {scrape * 1e3:8.2f} ms (on the event loop; Prometheus asks every 15 s or so)")
    print(
        f"at {args.deliveries:,.0f} deliveries/s ({args.frames:,.0f} writes/s, {events_per_frame:.1f} events a frame, "
        f"{flushes:.1f} flushes/s, {args.sends:,.0f} sends/s): {per_second * 1e3:.3f} ms of CPU a second, "
        f"{per_second / args.deliveries * 1e9:.2f} ns per delivery"
    )


if __name__ == "__main__":
    main()
