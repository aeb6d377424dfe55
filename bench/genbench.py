"""CPU cost of the generator's read path per delivery, without sockets or a server.

Feeds pre-built server frames (chatsite's single and batch frames, and Socket.IO's
one event per frame) through the same code a live run uses (RawClient frame
parsing -> Viewer accounting -> parsed-frame cache) for many viewers, and reports CPU
microseconds per delivery. It leaves out the kernel's share (the recv() syscalls), so
it is a lower bound; run.py --server fanout --preset ceiling measures the whole thing.
On a busy machine it is the steadier number, since it counts CPU time, not wall time.

    python bench/genbench.py [--viewers 1000] [--events 2000] [--per-read 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import loadgen  # noqa: E402
import wsraw  # noqa: E402


class NullTransport:
    def write(self, data):
        pass

    def close(self):
        pass


def event(seq: int, protocol: str) -> bytes:
    now = time.monotonic_ns()
    if protocol == "socketio":
        # What io.to(room).emit("message", {...}) sends (bench/socketio/server.js).
        return b'42["message",' + loadgen.dumps(_message(seq, now)) + b"]"
    return loadgen.dumps({"type": "message", **_message(seq, now)})


def _message(seq: int, now: int) -> dict:
    return {
        "seq": seq, "ts": "2026-11-26T07:49:43.123456Z", "id": seq,
        "author": {"id": 3, "name": "bench-sender-0", "role": "moderator"},
        "body": f"t={now} n={seq} " + "x" * 30, "reply_to": None, "mentions": [], "client_id": f"b1234abcd-{seq}",
    }


def run(viewers: int, events: int, per_read: int, batch: bool, protocol: str = "chat") -> dict:
    loadgen.reset_cache()
    gen = loadgen.Generator(loadgen.LoadConfig(url="ws://127.0.0.1:9", protocol=protocol))
    clients = []
    for i in range(viewers):
        v = loadgen.Viewer(gen, i, None)
        v.baseline, v.next, v.welcomed = 0, 1, True
        c = wsraw.RawClient(b"", b"", v.on_text, v.on_close, None, time.monotonic_ns)
        c.transport, c.handshaken = NullTransport(), True
        clients.append(c)
    chunks = []
    for first in range(1, events + 1, per_read):
        evs = [event(s, protocol) for s in range(first, min(first + per_read, events + 1))]
        if batch and len(evs) > 1:
            chunks.append(wsraw.server_frame(b'{"type":"batch","events":[' + b",".join(evs) + b"]}"))
        else:
            chunks.append(b"".join(wsraw.server_frame(e) for e in evs))
    t0 = time.process_time()
    for chunk in chunks:
        for c in clients:
            # A fresh bytes object per viewer, as each socket read returns its own.
            c._frames(bytes(chunk))
    cpu = time.process_time() - t0
    got = sum(c.on_text.__self__.got for c in clients)
    assert got == viewers * events, (got, viewers * events)
    return {"deliveries": got, "cpu_s": cpu, "us_per_delivery": cpu / got * 1e6, "per_s": got / cpu}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--viewers", type=int, default=1000)
    p.add_argument("--events", type=int, default=2000)
    args = p.parse_args(argv)
    import gc

    gc.disable()
    print(f"{'frames':>8} {'events/read':>11} {'us/delivery':>12} {'deliveries/s':>13}")
    for kind in ("single", "batch", "socketio"):
        for per_read in (1, 4, 16):
            if kind == "batch" and per_read == 1:
                continue
            r = run(args.viewers, args.events, per_read, kind == "batch", "socketio" if kind == "socketio" else "chat")
            print(f"{kind:>8} {per_read:>11} {r['us_per_delivery']:>12.3f} {r['per_s']:>13,.0f}")


if __name__ == "__main__":
    main()
