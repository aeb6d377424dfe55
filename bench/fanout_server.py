"""A trivial in-process asyncio fan-out server that speaks the room protocol's frame shapes.

Not a chat server: one process, rooms in memory, no auth, no persistence. It exists
to measure the load generator's own ceiling (how many deliveries/s one generator core
can read and account) with a server that costs as little per delivery as Python allows:
each event is encoded once, its WebSocket frame is built once, and a flush writes the
same bytes to every viewer. It also gives the "plain asyncio fan-out" reference point
for the real server's figures.

What it implements of PROTOCOL.md: the Origin check (HTTP 403), `welcome` with
`last_seq` and `history` (latest 50, or everything after `?after=N` up to 1000 with
`history_truncated`), `send` -> `ack` + `message` event with a gapless per-room `seq`,
`ping` -> `pong` with `last_seq`, `sync` -> replay + `synced`, batch frames within a
time window, and close 4409 for a viewer whose unsent bytes pass a bound.

    python bench/fanout_server.py --port 8765 [--batch-ms 50] [--frames batch|single]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import resource
import signal
import struct
import sys
import time
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsraw import OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, accept_key, close_payload, server_frame  # noqa: E402

try:
    import orjson

    def dumps(obj) -> bytes:
        return orjson.dumps(obj)

    loads = orjson.loads
except ImportError:  # pragma: no cover - bench works without it, only slower

    def dumps(obj) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

    loads = json.loads

_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")

HISTORY_FIRST = 50
HISTORY_MAX = 1000


def iso_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


class Room:
    def __init__(self, slug: str, server: Server):
        self.slug = slug
        self.server = server
        self.log: list[bytes] = []  # encoded events; log[i] has seq i + 1
        self.viewers: set[Conn] = set()
        self.pending: list[bytes] = []
        self.last_flush = 0.0
        self.flush_handle = None

    @property
    def last_seq(self) -> int:
        return len(self.log)

    def append(self, event: dict) -> int:
        seq = len(self.log) + 1
        event["seq"] = seq
        self.log.append(dumps(event))
        self.pending.append((seq, self.log[-1]))
        self._schedule()
        return seq

    def _schedule(self) -> None:
        if self.flush_handle is not None:
            return
        window = self.server.batch_s
        delay = self.last_flush + window - time.monotonic()
        loop = asyncio.get_running_loop()
        if delay <= 0:
            self.flush_handle = loop.call_soon(self.flush)
        else:
            self.flush_handle = loop.call_later(delay, self.flush)

    def encode(self, events: list[bytes]) -> bytes:
        if self.server.frames == "batch" and len(events) > 1:
            return server_frame(b'{"type":"batch","events":[' + b",".join(events) + b"]}")
        # Separate frames, but one write per viewer per flush.
        return b"".join(server_frame(e) for e in events)

    def flush(self) -> None:
        self.flush_handle = None
        self.last_flush = time.monotonic()
        pending, self.pending = self.pending, []
        if not pending:
            return
        data = self.encode([e for _, e in pending])
        first = pending[0][0]
        limit = self.server.queue_bytes
        for conn in list(self.viewers):
            t = conn.transport
            if t.get_write_buffer_size() > limit:
                conn.close(4409, "fell too far behind")
                continue
            if conn.seen_seq >= first:
                # Joined after these were logged: its welcome history already had some.
                mine = [e for s, e in pending if s > conn.seen_seq]
                if mine:
                    t.write(self.encode(mine))
                continue
            t.write(data)
        self.server.frames_out += len(self.viewers)


class Conn(asyncio.Protocol):
    def __init__(self, server: Server):
        self.server = server
        self.transport = None
        self.buf = b""
        self.open = False
        self.room: Room | None = None
        self.seen_seq = 0
        self.frag: list[bytes] | None = None

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        if self.room is not None:
            self.room.viewers.discard(self)
        self.open = False

    def data_received(self, data):
        if self.buf:
            data = self.buf + data
            self.buf = b""
        if not self.open:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            self.handshake(data[:end].decode("latin-1"))
            data = data[end + 4 :]
            if not self.open:
                return
        self.frames(data)

    def handshake(self, head: str) -> None:
        lines = head.split("\r\n")
        method, _, rest = lines[0].partition(" ")
        target = rest.rsplit(" ", 1)[0]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        origin = headers.get("origin", "")
        host = headers.get("host", "")
        if origin not in (f"http://{host}", f"https://{host}"):
            self.transport.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.transport.close()
            return
        url = urlsplit(target)
        parts = [p for p in url.path.split("/") if p]
        if method != "GET" or len(parts) != 3 or parts[:2] != ["ws", "rooms"]:
            self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.transport.close()
            return
        key = headers.get("sec-websocket-key", "").encode()
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key) + b"\r\n\r\n"
        )
        self.open = True
        room = self.server.room(parts[2])
        after = parse_qs(url.query).get("after")
        after_seq = int(after[0]) if after and after[0].isdigit() else None
        if after_seq is None:
            history = room.log[-HISTORY_FIRST:]
            truncated = False
        else:
            history = room.log[after_seq : after_seq + HISTORY_MAX]
            truncated = room.last_seq - after_seq > HISTORY_MAX
        welcome = (
            b'{"type":"welcome","room":'
            + dumps({"slug": room.slug, "title": room.slug, "is_live": True, "slow_mode_seconds": 0, "hosts": []})
            + b',"you":{"id":null,"name":null,"role":"guest","muted_until":null,"balance":0,"blocked":[]}'
            + b',"roster":'
            + dumps({"count": len(room.viewers) + 1, "team": [], "audience": [], "offset": 0})
            + b',"history":['
            + b",".join(history)
            + b'],"last_seq":'
            + str(room.last_seq).encode()
            + b',"history_truncated":'
            + (b"true" if truncated else b"false")
            + b',"pinned":[]}'
        )
        self.transport.write(server_frame(welcome))
        self.room = room
        self.seen_seq = after_seq + len(history) if after_seq is not None else room.last_seq
        room.viewers.add(self)

    def frames(self, data: bytes) -> None:
        n = len(data)
        i = 0
        while n - i >= 2:
            b0, b1 = data[i], data[i + 1]
            ln = b1 & 0x7F
            h = i + 2
            if ln == 126:
                if n - i < 4:
                    break
                ln = _U16.unpack_from(data, i + 2)[0]
                h = i + 4
            elif ln == 127:
                if n - i < 10:
                    break
                ln = _U64.unpack_from(data, i + 2)[0]
                h = i + 10
            masked = b1 & 0x80
            end = h + (4 if masked else 0) + ln
            if end > n:
                break
            payload = data[h + 4 : end] if masked else data[h:end]
            if masked:
                key = data[h : h + 4]
                reps = (ln + 3) // 4
                payload = (int.from_bytes(payload, "big") ^ int.from_bytes((key * reps)[:ln], "big")).to_bytes(
                    ln, "big"
                ) if ln else b""
            i = end
            op = b0 & 0x0F
            if op == OP_TEXT:
                if b0 & 0x80:
                    self.command(payload)
                else:
                    self.frag = [payload]
            elif op == OP_CONT and self.frag is not None:
                self.frag.append(payload)
                if b0 & 0x80:
                    whole, self.frag = b"".join(self.frag), None
                    self.command(whole)
            elif op == OP_PING:
                self.transport.write(server_frame(payload, OP_PONG))
            elif op == OP_CLOSE:
                self.close(_U16.unpack_from(payload)[0] if len(payload) >= 2 else 1000)
                return
        if i < n:
            self.buf = data[i:]

    def send(self, obj: dict) -> None:
        self.transport.write(server_frame(dumps(obj)))

    def command(self, payload: bytes) -> None:
        try:
            frame = loads(payload)
        except ValueError:
            self.send({"type": "error", "code": "bad_request", "detail": "The frame is not valid JSON."})
            return
        kind = frame.get("type")
        cid = frame.get("client_id")
        room = self.room
        if kind == "send":
            event = {
                "type": "message",
                "seq": 0,
                "ts": iso_now(),
                "id": room.last_seq + 1,
                "author": {"id": 1, "name": "bench", "role": "moderator"},
                "body": frame.get("body", ""),
                "reply_to": None,
                "mentions": [],
                "client_id": cid,
            }
            seq = room.append(event)
            self.send({"type": "ack", "client_id": cid, "id": seq, "seq": seq})
        elif kind == "ping":
            self.send({"type": "pong", "ts": frame.get("ts"), "last_seq": room.last_seq, "client_id": cid})
        elif kind == "sync":
            after = frame.get("after", 0)
            events = room.log[after : after + HISTORY_MAX]
            if events:
                self.transport.write(server_frame(b'{"type":"batch","events":[' + b",".join(events) + b"]}"))
                # The replay may include events still waiting for the next flush.
                self.seen_seq = max(self.seen_seq, after + len(events))
            self.send({"type": "synced", "last_seq": after + len(events), "client_id": cid})
        else:
            self.send({"type": "error", "code": "unknown_type", "detail": "Not in the bench server.", "client_id": cid})

    def close(self, code: int, reason: str = "") -> None:
        if self.open:
            self.open = False
            if self.room is not None:
                self.room.viewers.discard(self)
            self.transport.write(server_frame(close_payload(code, reason), OP_CLOSE))
            self.transport.close()


class Server:
    def __init__(self, batch_ms: float, frames: str, queue_bytes: int):
        self.batch_s = batch_ms / 1000
        self.frames = frames
        self.queue_bytes = queue_bytes
        self.rooms: dict[str, Room] = {}
        self.frames_out = 0

    def room(self, slug: str) -> Room:
        room = self.rooms.get(slug)
        if room is None:
            room = self.rooms[slug] = Room(slug, self)
        return room


async def main(args) -> None:
    loop = asyncio.get_running_loop()
    server = Server(args.batch_ms, args.frames, args.queue_bytes)
    srv = await loop.create_server(lambda: Conn(server), args.host, args.port, backlog=4096, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"fanout server on ws://{args.host}:{args.port}/ws/rooms/<slug>/", flush=True)
    try:
        await asyncio.wait_for(stop.wait(), timeout=args.max_seconds)
    except TimeoutError:
        pass
    srv.close()


def cli(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--batch-ms", type=float, default=50, help="coalescing window (0: every event at once)")
    p.add_argument("--frames", choices=["batch", "single"], default="batch",
                   help="batch: one {type: batch} frame per flush; single: one frame per event, one write per flush")
    p.add_argument("--queue-bytes", type=int, default=1 << 20, help="unsent bytes per viewer before close 4409")
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    p.add_argument("--max-seconds", type=float, default=3600, help="stop by itself after this long")
    args = p.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.loop == "uvloop":
        try:
            import uvloop

            uvloop.run(main(args))
            return
        except ImportError:
            pass
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()
