"""The load generator: N viewers and S senders in one room, in one process.

Senders and viewers share this process so that send and receive times come from one
clock: every message body is "t=<time.monotonic_ns()> n=<k> ..." and a viewer's
latency for it is its receive time minus t.

What makes one core read ~200k deliveries/s:

- no task per frame: each connection is an asyncio.Protocol (wsraw.RawClient) whose
  read callback parses every frame of a chunk in place;
- every viewer of a room receives byte-identical frames (the server encodes once), so
  a frame is JSON-parsed once, the first time any viewer sees it, and cached by its
  bytes. A viewer then pays a dict lookup and, when the frame continues exactly where
  the viewer left off (the normal case), O(1) bookkeeping and one list append of its
  receive time, whatever the number of events in the frame;
- latency histograms are built after the run from (frame send times x receive times),
  not per delivery while reading.

Accounting is by `seq`: a viewer's baseline is its first welcome's `last_seq`; it is
owed every room event after that up to the room's final `last_seq` (asked with a `ping`
after the senders stop). Anything missing when the drain ends is lost; a seq seen twice
is a duplicate. A viewer closed with 4409 reconnects with `?after=` and what its
welcome history (and `sync` pages) bring back counts as recovered.

Readable feeds: a batch with `last_seq` (and `skipped`) vouches that the holes up to
there were left out on purpose. Priority events, which no feed may leave out (anything
but a member's message: the host team's lines, room events, ...), are counted apart:
each parsed frame knows how many it holds, a viewer adds them up, and every priority
seq after a viewer's baseline is owed to it (known from the team senders' acks and from
any frame). Member lines a viewer got in the window, per second, are set against the
readable rate.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import datetime
import gc
import itertools
import json
import os
import platform
import random
import resource
import socket
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from urllib.parse import quote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import procstats  # noqa: E402
import sseraw  # noqa: E402
import wsraw  # noqa: E402

try:
    import orjson

    loads = orjson.loads
    dumps = orjson.dumps
    JSON_LIB = "orjson"
except ImportError:  # slower, but the generator still works

    loads = json.loads

    def dumps(obj) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    JSON_LIB = "json"

clock = time.monotonic_ns
WINDOW_MARKER: str | None = None


# ---------------------------------------------------------------------------------------
# Protocols: what commands and frames look like on the wire
#
# The accounting works on chatsite's frames (docs/protocol.md). Another protocol maps
# its packets to them in `decode`, which only runs when a frame's bytes are parsed for
# the first time (the frame cache), so the read path stays the same for every protocol.


class ChatProtocol:
    """chatsite's room protocol: one JSON object per frame, commands as JSON objects."""

    name = "chat"
    # Decoded types a connection handles by itself, with the text it answers (or None).
    answers: dict[str, bytes | None] = {}
    # Close codes that make a viewer reconnect with ?after=, besides LoadConfig.resync_codes.
    resync_codes: tuple = ()
    decode = staticmethod(loads)

    @staticmethod
    def path(room: str, after: int | None) -> str:
        return f"/ws/rooms/{room}/" + (f"?after={after}" if after is not None else "")

    @staticmethod
    def encode(obj: dict) -> bytes:
        return dumps(obj)

    @staticmethod
    def is_reply(payload: bytes) -> bool:
        """Whether a sender should parse this frame (answers to its commands)."""
        return b'"type":"ack"' in payload or b'"type":"error"' in payload or b'"type":"pong"' in payload


class SocketIOProtocol:
    """Socket.IO 5 packets over Engine.IO 4 on a WebSocket (bench/socketio/server.js).

    An event `42["name",{...}]` decodes to its object with `type` = name; an ack
    `43<id>[{...}]` to its argument (that server answers commands with the chat
    protocol's replies: ack, error, pong, synced). Commands go out as events with an ack
    id, `42<id>["send",{...}]`. Engine.IO's open packet `0{...}` is answered with `40`
    (join the main namespace, answered with `40{"sid":...}`), its ping `2` with `3`.
    """

    name = "socketio"
    answers: dict[str, bytes | None] = {"eio_open": b"40", "eio_ping": b"3", "eio_noop": None, "sio_connect": None}
    # Engine.IO closes a connection whose ping went unanswered (a viewer that stopped
    # reading) without a status code; a Socket.IO client reconnects.
    resync_codes = (1005,)
    _control = {b"0": "eio_open", b"1": "eio_close", b"2": "eio_ping", b"6": "eio_noop", b"40": "sio_connect",
                b"41": "sio_disconnect", b"44": "sio_connect_error"}

    def __init__(self):
        self.ack_ids = itertools.count(1)

    @staticmethod
    def path(room: str, after: int | None) -> str:
        return f"/socket.io/?EIO=4&transport=websocket&room={quote(room)}" + (
            f"&after={after}" if after is not None else "")

    def encode(self, obj: dict) -> bytes:
        data = {k: v for k, v in obj.items() if k != "type"}
        return b'42%d["%s",' % (next(self.ack_ids), obj["type"].encode()) + dumps(data) + b"]"

    @staticmethod
    def is_reply(payload: bytes) -> bool:
        return payload[:2] == b"43" or payload == b"2"

    @classmethod
    def decode(cls, payload: bytes):
        head = payload[:2]
        if head == b"42":
            args = loads(payload[2:])
            if not isinstance(args, list) or not args or not isinstance(args[0], str):
                return None
            doc = args[1] if len(args) > 1 and isinstance(args[1], dict) else {}
            doc["type"] = args[0]
            # The server logs messages only: its welcome history and sync replays hold them untyped.
            for ev in doc.get("history") or doc.get("events") or ():
                if isinstance(ev, dict):
                    ev.setdefault("type", "message")
            return doc
        if head == b"43":
            args = loads(payload[payload.index(b"[") :])
            return args[0] if isinstance(args, list) and args else None
        kind = cls._control.get(head if head[:1] == b"4" else head[:1])
        if kind is None:
            raise ValueError("not a Socket.IO packet")
        return {"type": kind}


PROTOCOLS = {"chat": ChatProtocol, "socketio": SocketIOProtocol}
CHAT = ChatProtocol()


# ---------------------------------------------------------------------------------------
# Parsed-frame cache


class Frame:
    """One distinct frame payload as parsed once, shared by every viewer that receives it."""

    __slots__ = (
        "first", "last", "n", "contig", "events", "recv", "recv_slow", "synced", "kinds", "complete_to", "answer",
        "prio", "n_prio", "n_member", "prio_t", "ascending", "holes",
    )

    def __init__(
        self, events: list[tuple[int, int | None]], synced: int | None, kinds: tuple, complete_to: int | None = None,
        answer: bytes | None = None, prio: frozenset = frozenset(), prio_t: tuple = (),
    ):
        self.events = events  # [(seq, send time ns or None)] of the room events, in frame order
        self.n = len(events)
        self.first = events[0][0] if events else 0
        self.last = events[-1][0] if events else 0
        self.contig = bool(events) and all(events[i][0] == self.first + i for i in range(self.n))
        # Strictly increasing seqs, and how many holes between them (a readable feed's
        # batch leaves member lines out, so its seqs jump).
        self.ascending = all(events[i][0] < events[i + 1][0] for i in range(self.n - 1))
        self.holes = sum(1 for i in range(self.n - 1) if events[i + 1][0] != events[i][0] + 1)
        # Priority events (never left out of a feed: anything but a member's message) by
        # seq, and the send times of those among them that carry one.
        self.prio = prio
        self.n_prio = len(prio)
        self.n_member = self.n - self.n_prio
        self.prio_t = prio_t
        self.recv: list[int] = []  # receive times of normal viewers that took the whole frame
        self.recv_slow: list[int] = []
        self.synced = synced
        self.kinds = kinds
        # A batch's `last_seq`: the viewer was sent everything meant for it up to there
        # (the server left out what its readable feed skips, or what the viewer blocked).
        self.complete_to = complete_to
        # What a connection answers to this frame by itself (a protocol's keep-alive).
        self.answer = answer


CACHE: dict[bytes, Frame] = {}
ARCHIVE: list[Frame] = []
CACHE_MAX = 20_000
PARSE_STATS = Counter()
# Seqs of every priority event seen in any parsed frame or welcome history.
PRIO_SEQS: set[int] = set()
NO_PRIO: frozenset = frozenset()


def is_priority(ev: dict) -> bool:
    """An event a readable feed never leaves out: anything but a message by a member
    (the host team's and staff's lines, tips, notices, moderation, room events)."""
    if ev.get("type") != "message":
        return True
    author = ev.get("author")
    if not isinstance(author, dict):
        # No author brief to go by: counted as ordinary chat.
        return False
    return author.get("role") != "member" or bool(author.get("staff"))


def body_time(ev: dict) -> int | None:
    """The send time a generator's message carries in its body ("t=<ns> ...")."""
    if ev.get("type") != "message":
        return None
    body = ev.get("body")
    if body and body.startswith("t="):
        sp = body.find(" ", 2)
        try:
            return int(body[2:sp] if sp > 0 else body[2:])
        except ValueError:
            return None
    return None


def parse_frame(payload: bytes, proto=CHAT) -> Frame:
    PARSE_STATS["parsed"] += 1
    try:
        doc = proto.decode(payload)
    except ValueError:
        PARSE_STATS["bad_json"] += 1
        frame = Frame([], None, ("bad_json",))
        _remember(payload, frame)
        return frame
    if not isinstance(doc, dict):
        frame = Frame([], None, ("not_object",))
        _remember(payload, frame)
        return frame
    kind = doc.get("type")
    items = doc.get("events") or () if kind == "batch" else (doc,)
    events = []
    kinds = []
    synced = None
    prio = []
    prio_t = []
    for ev in items:
        seq = ev.get("seq")
        etype = ev.get("type")
        if seq is None:
            kinds.append(etype)
            if etype == "synced":
                synced = (ev.get("last_seq") or 0, bool(ev.get("truncated")))
            continue
        t = body_time(ev)
        if is_priority(ev):
            prio.append(seq)
            if t is not None:
                prio_t.append(t)
        events.append((seq, t))
    complete_to = doc.get("last_seq") if kind == "batch" else None
    if prio:
        PRIO_SEQS.update(prio)
    frame = Frame(events, synced, tuple(kinds), complete_to, proto.answers.get(kind),
                  frozenset(prio) if prio else NO_PRIO, tuple(prio_t))
    _remember(payload, frame)
    return frame


def _remember(payload: bytes, frame: Frame) -> None:
    if len(CACHE) >= CACHE_MAX:
        # Keep the parsed frames (their receive times are needed for latency) but stop
        # looking them up: a late viewer re-parses, which is correct, just slower.
        ARCHIVE.extend(CACHE.values())
        CACHE.clear()
    CACHE[payload] = frame


def reset_cache() -> None:
    CACHE.clear()
    ARCHIVE.clear()
    PARSE_STATS.clear()
    PRIO_SEQS.clear()


# ---------------------------------------------------------------------------------------
# Configuration


@dataclass
class LoadConfig:
    url: str = "ws://127.0.0.1:8000"
    room: str = "bench"
    viewers: int = 100
    senders: int = 1
    rate: float = 10.0  # total messages/s across senders
    duration: float = 30.0  # measured window, seconds
    warmup: float = 5.0
    ramp: float = 500.0  # new connections/s
    connect_concurrency: int = 16  # handshakes in flight: a long server queue trips its handshake timeout
    connect_timeout: float = 30.0
    slow: int = 0  # viewers among N that stop reading for a while
    slow_pause: float = 10.0
    slow_at: float | None = None  # seconds into the measured window; default a quarter in
    slow_rcvbuf: int = 16384
    resync: bool = True  # reconnect with ?after= after a close in resync_codes
    # 4409 is the protocol's "fell too far behind"; 1006 is what a client sees when the
    # server drops a connection whose close frame could not get past unread data.
    resync_codes: tuple = (4409, 1006)
    drain: float = 15.0  # max seconds to wait for stragglers after the last send
    body_bytes: int = 64
    sessions: list[str] = field(default_factory=list)  # session keys for senders
    # The host team: more senders (moderators, whose lines no feed leaves out) with an
    # open-loop pacer of their own, alongside the senders above.
    team_senders: int = 0
    team_rate: float = 0.0  # total messages/s across team senders
    team_sessions: list[str] = field(default_factory=list)
    # The server's CHAT_READABLE_MESSAGES_PER_SECOND, shown next to the member lines a
    # viewer got per second (the generator cannot ask the server for it).
    readable_rate: float = 20.0
    cookie_name: str = "sessionid"
    conns_per_ip: int = 500  # spread sources over 127.0.0.x, below per-IP limits
    client: str = "raw"  # raw | websockets
    protocol: str = "chat"  # chat | socketio (see PROTOCOLS)
    transport: str = "websocket"  # websocket | sse (viewers only; senders stay on sockets)
    app_ping: float = 0.0  # seconds between protocol pings per connection (0: off)
    settle: float = 1.0  # seconds between connecting and sending
    label: str = ""


# ---------------------------------------------------------------------------------------
# Connections


class WsLibClient:
    """The same surface as wsraw.RawClient, over the websockets library (for comparison)."""

    def __init__(self, ws, on_text, on_close):
        self.ws = ws
        self.on_text = on_text
        self.on_close = on_close
        self.closed = False
        self.paused: asyncio.Event | None = None
        self.task = asyncio.ensure_future(self._reader())

    async def _reader(self):
        from websockets.exceptions import ConnectionClosed

        code = 1006
        try:
            recv = self.ws.recv
            on_text = self.on_text
            while True:
                if self.paused is not None:
                    await self.paused.wait()
                data = await recv(decode=False)
                on_text(data, clock())
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else 1006
        except asyncio.CancelledError:
            pass
        finally:
            self.closed = True
            cb, self.on_close = self.on_close, None
            if cb is not None:
                cb(code)

    def send_text(self, payload: bytes) -> None:
        if not self.closed:
            asyncio.ensure_future(self.ws.send(payload.decode()))

    def send_raw(self, frame: bytes) -> None:
        raise NotImplementedError

    def close(self, code: int = 1000) -> None:
        if not self.closed:
            self.closed = True
            asyncio.ensure_future(self.ws.close(code))

    def abort(self) -> None:
        self.closed = True
        self.ws.transport.abort()

    def pause_reading(self) -> None:
        self.paused = asyncio.Event()

    def resume_reading(self) -> None:
        if self.paused is not None:
            self.paused.set()
            self.paused = None


def _retrieve(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()


class Conn:
    """State shared by viewers and senders: connecting, welcome, close codes."""

    __slots__ = (
        "gen", "idx", "client", "welcomed", "welcome_fut", "connect_ns", "local_ip",
        "closed_code", "frames", "slow", "cookie", "rcvbuf", "early",
    )

    def __init__(self, gen: Generator, idx: int, local_ip: str | None, cookie: str | None = None):
        self.gen = gen
        self.idx = idx
        self.client = None
        self.welcomed = False
        self.welcome_fut: asyncio.Future | None = None
        self.connect_ns = 0
        self.local_ip = local_ip
        self.closed_code: int | None = None
        self.frames = 0
        self.slow = False
        self.cookie = cookie
        self.rcvbuf: int | None = None
        self.early: list[bytes] = []  # answers to frames read before connect() had its client

    async def connect(self, after: int | None = None) -> None:
        gen = self.gen
        path = gen.proto.path(gen.cfg.room, after)
        self.early = []
        cookie = f"{gen.cfg.cookie_name}={self.cookie}" if self.cookie else None
        loop = asyncio.get_running_loop()
        self.welcomed = False
        self.welcome_fut = loop.create_future()
        # Nobody awaits it any more after a timeout; keep asyncio from logging that.
        self.welcome_fut.add_done_callback(_retrieve)
        t0 = clock()
        if gen.cfg.transport == "sse" and isinstance(self, Viewer):
            self.client = await sseraw.connect(
                gen.host, gen.port, f"/rooms/{gen.cfg.room}/stream" + (f"?after={after}" if after is not None else ""),
                on_text=self.on_text, on_close=self.on_close, cookie=cookie, local_ip=self.local_ip,
                rcvbuf=self.rcvbuf, clock=clock,
            )
        elif gen.cfg.client == "websockets" and isinstance(self, Viewer):
            from websockets.asyncio.client import connect as ws_connect

            headers = {"Cookie": cookie} if cookie else None
            sock = wsraw.make_socket(gen.host, gen.port, self.local_ip, self.rcvbuf)
            try:
                await loop.sock_connect(sock, (gen.host, gen.port))
            except BaseException:
                sock.close()
                raise
            ws = await ws_connect(
                f"ws://{gen.host}:{gen.port}{path}", origin=gen.origin, additional_headers=headers,
                compression=None, proxy=None, ping_interval=None, max_size=None, max_queue=64,
                sock=sock, open_timeout=gen.cfg.connect_timeout,
            )
            self.client = WsLibClient(ws, self.on_text, self.on_close)
        else:
            self.client = await wsraw.connect(
                gen.host, gen.port, path, on_text=self.on_text, on_close=self.on_close,
                origin=gen.origin, cookie=cookie, local_ip=self.local_ip, rcvbuf=self.rcvbuf, clock=clock,
            )
        self.closed_code = None
        early, self.early = self.early, []
        for text in early:
            self.client.send_text(text)
        if isinstance(self, Viewer) and self.sync_pending:
            self.request_sync()
        await self.welcome_fut
        self.connect_ns = clock() - t0

    def on_close(self, code: int) -> None:
        self.closed_code = code
        self.client = None
        if not self.gen.stopping:
            self.gen.close_codes[code] += 1
        if self.welcome_fut is not None and not self.welcome_fut.done():
            self.welcome_fut.set_exception(ConnectionError(f"closed {code} before welcome"))

    def on_text(self, payload: bytes, now: int) -> None:
        raise NotImplementedError

    def send_obj(self, obj: dict) -> None:
        if self.client is not None:
            self.client.send_text(self.gen.proto.encode(obj))

    def send_text(self, text: bytes) -> None:
        if self.client is not None:
            self.client.send_text(text)
        else:
            # The frame came in the same read as the handshake, before connect() returned.
            self.early.append(text)

    def before_welcome(self, payload: bytes) -> dict | None:
        """The welcome, decoded; None for what a protocol sends before it (answered here
        when it asks for an answer: Engine.IO's open packet and ping)."""
        proto = self.gen.proto
        try:
            doc = proto.decode(payload)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            self.gen.unexpected["before-welcome:junk"] += 1
            return None
        if doc.get("type") == "welcome":
            return doc
        if not self.answer(doc):
            self.gen.unexpected[f"before-welcome:{doc.get('type')}"] += 1
        return None

    def answer(self, doc: dict) -> bool:
        """Answer a protocol's keep-alive; True when `doc` was one."""
        answers = self.gen.proto.answers
        kind = doc.get("type")
        if kind not in answers:
            return False
        if answers[kind] is not None:
            self.send_text(answers[kind])
        return True

    def close(self) -> None:
        if self.client is not None:
            self.client.close(1000)


class Viewer(Conn):
    __slots__ = (
        "baseline", "next", "got", "missing", "dups", "reordered", "gaps", "old", "resyncs",
        "recovered", "recovering", "resync_task", "lost_conn", "sync_pending", "base", "skipped",
        "got_prio", "got_member",
    )

    def __init__(self, gen, idx, local_ip):
        super().__init__(gen, idx, local_ip)
        self.baseline: int | None = None
        self.base = 0  # the current step's baseline
        self.next = 0
        self.got = 0
        self.missing: set[int] = set()
        self.dups = 0
        self.reordered = 0
        self.gaps = 0
        self.old = 0
        self.resyncs = 0
        self.recovered = 0
        self.recovering = False
        self.resync_task: asyncio.Task | None = None
        self.lost_conn = False
        self.sync_pending = False
        self.skipped = 0
        self.got_prio = 0  # priority events received (unique), live or recovered
        self.got_member = 0  # member lines received in the live feed (not recovered)

    def on_text(self, payload: bytes, now: int) -> None:
        self.frames += 1
        if not self.welcomed:
            self.on_welcome(payload, now)
            return
        frame = CACHE.get(payload)
        if frame is None:
            frame = parse_frame(payload, self.gen.proto)
        if frame.n == 0:
            if frame.answer is not None:
                self.send_text(frame.answer)
            if frame.synced is not None and self.sync_pending:
                self.on_synced(frame.synced)
            if frame.complete_to is not None:
                self.vouch(frame.complete_to)
            return
        complete_to = frame.complete_to
        if frame.contig and frame.first == self.next and not self.recovering and complete_to is None:
            self.next = frame.last + 1
        elif (
            complete_to is not None and frame.first >= self.next and complete_to >= frame.last
            and frame.ascending and not self.missing and not self.recovering
        ):
            # A readable feed's batch, continuing where the viewer is: what it holds is
            # new, and every hole up to its last_seq was left out on purpose. The same
            # as accept() then vouch(), without touching each skipped seq.
            self.gaps += frame.holes + (frame.first > self.next)
            self.skipped += complete_to - self.next + 1 - frame.n
            self.next = complete_to + 1
        else:
            self.accept(frame.events, now, frame.prio)
            if complete_to is not None:
                self.vouch(complete_to)
            return
        self.got += frame.n
        self.got_prio += frame.n_prio
        self.got_member += frame.n_member
        if self.slow:
            frame.recv_slow.append(now)
        else:
            frame.recv.append(now)

    def vouch(self, upto: int) -> None:
        """Everything up to `upto` meant for this viewer was sent: what is missing there
        the server left out on purpose (skipped, not lost)."""
        left_out = [seq for seq in self.missing if seq <= upto]
        self.missing.difference_update(left_out)
        self.skipped += len(left_out)
        if upto >= self.next:
            self.skipped += upto - self.next + 1
            self.next = upto + 1

    def accept(self, events, now: int, prio: frozenset = NO_PRIO) -> int:
        """Per-event accounting for frames that do not simply continue the sequence.
        `prio`: which of these seqs are priority events."""
        taken = 0
        taken_prio = 0
        pairs = self.gen.pairs_slow if self.slow else self.gen.pairs
        recovering = self.recovering
        for seq, t in events:
            nx = self.next
            if seq == nx:
                self.next = nx + 1
            elif seq > nx:
                self.missing.update(range(nx, seq))
                self.gaps += 1
                self.next = seq + 1
            elif seq <= self.base:
                self.old += 1
                continue
            elif seq in self.missing:
                self.missing.discard(seq)
                if not recovering:
                    self.reordered += 1
            else:
                if not recovering:
                    self.dups += 1
                continue
            taken += 1
            if prio and seq in prio:
                taken_prio += 1
            if t is not None:
                pairs.append((t, now))
        self.got += taken
        self.got_prio += taken_prio
        if recovering:
            self.recovered += taken
        else:
            self.got_member += taken - taken_prio
        return taken

    def on_welcome(self, payload: bytes, now: int) -> None:
        doc = self.before_welcome(payload)
        if doc is None:
            return
        last = doc.get("last_seq") or 0
        self.welcomed = True
        if self.baseline is None:
            self.baseline = self.base = last
            self.next = last + 1
        else:
            # A reconnect: the history is what this viewer missed.
            events = []
            prio = set()
            for ev in doc.get("history") or ():
                seq = ev.get("seq")
                if seq is None:
                    continue
                if is_priority(ev):
                    prio.add(seq)
                events.append((seq, body_time(ev)))
            PRIO_SEQS.update(prio)
            self.recovering = True
            self.accept(events, now, frozenset(prio))
            self.recovering = False
            if doc.get("history_truncated"):
                self.request_sync()
        if self.welcome_fut is not None and not self.welcome_fut.done():
            self.welcome_fut.set_result(None)

    def resume_point(self) -> int:
        return (min(self.missing) - 1) if self.missing else self.next - 1

    def request_sync(self) -> None:
        if self.gen.cfg.transport == "sse":
            # A stream has no sync: the server ends it where a resume page ends, and the
            # viewer resumes from there with ?after= (on_close, 4409).
            return
        self.sync_pending = True
        self.recovering = True
        if self.client is None:
            # The welcome arrived in the same read as the handshake, before connect()
            # returned the client: Conn.connect sends it.
            return
        self.send_obj({"type": "sync", "after": self.resume_point(), "client_id": f"sync-{self.idx}"})

    def on_synced(self, synced: tuple[int, bool]) -> None:
        self.sync_pending = False
        self.recovering = False
        last_seq, truncated = synced
        if truncated or self.resume_point() < last_seq:
            # More than one page was missing; ask again from where this one ended.
            self.request_sync()

    def on_close(self, code: int) -> None:
        super().on_close(code)
        gen = self.gen
        if not self.welcomed or gen.stopping:
            return
        if gen.cfg.resync and (code in gen.cfg.resync_codes or code in gen.proto.resync_codes):
            self.resyncs += 1
            gen.resyncs += 1
            gen.resyncs_by_code[code] += 1
            self.resync_task = asyncio.ensure_future(self.resync())
        else:
            self.lost_conn = True

    async def resync(self) -> None:
        for attempt in range(5):
            if self.gen.stopping:
                return
            try:
                await asyncio.wait_for(self.connect(after=self.resume_point()), self.gen.cfg.connect_timeout)
                if self.slow and self.gen.slow_paused:
                    # Still inside its pause: the reconnected viewer stays slow.
                    self.client.pause_reading()
                return
            except (TimeoutError, OSError, ConnectionError, wsraw.HandshakeError) as exc:
                self.gen.resync_failures[type(exc).__name__] += 1
                await asyncio.sleep(0.2 * (attempt + 1))
        self.lost_conn = True


class Sender(Conn):
    __slots__ = ("pending", "acked", "errors", "max_seq", "ack_lat", "answer_lat", "team")

    def __init__(self, gen, idx, local_ip, cookie, team: bool = False):
        super().__init__(gen, idx, local_ip, cookie)
        self.team = team  # the host team's: its acked seqs are priority events owed to every viewer
        self.pending: dict[str, int] = {}
        self.acked = 0
        self.errors = Counter()
        self.max_seq = 0
        self.ack_lat: list[int] = []
        # Every answer, ack or error (busy under overload): how long a sender waits to know.
        self.answer_lat: list[int] = []

    def on_text(self, payload: bytes, now: int) -> None:
        self.frames += 1
        if not self.welcomed:
            if self.before_welcome(payload) is not None:
                self.welcomed = True
                if self.welcome_fut is not None and not self.welcome_fut.done():
                    self.welcome_fut.set_result(None)
            return
        # Senders read the room like everyone else but only replies matter here.
        proto = self.gen.proto
        if proto.is_reply(payload):
            try:
                doc = proto.decode(payload)
            except ValueError:
                return
            if not isinstance(doc, dict) or self.answer(doc):
                return
            items = doc.get("events", ()) if doc.get("type") == "batch" else (doc,)
            for ev in items:
                self.on_reply(ev, now)

    def on_reply(self, ev: dict, now: int) -> None:
        kind = ev.get("type")
        cid = ev.get("client_id")
        if kind == "pong":
            fut = self.gen.pongs.pop(cid, None)
            if fut is not None and not fut.done():
                fut.set_result(ev.get("last_seq"))
            return
        sent = self.pending.pop(cid, None)
        if sent is None:
            return
        self.answer_lat.append(now - sent)
        if kind == "ack":
            self.acked += 1
            self.ack_lat.append(now - sent)
            seq = ev.get("seq") or 0
            if seq > self.max_seq:
                self.max_seq = seq
            if self.team and seq:
                self.gen.team_seqs.append(seq)
        elif kind == "error":
            self.errors[ev.get("code") or "?"] += 1

    def send_message(self, k: int, tag: str, pad: str) -> None:
        now = clock()
        cid = f"{tag}-{k}"
        self.pending[cid] = now
        self.client.send_text(self.gen.proto.encode({"type": "send", "body": f"t={now} n={k} {pad}", "client_id": cid}))


# ---------------------------------------------------------------------------------------
# Histogram


class Histogram:
    """Latencies in ns: 10 us buckets up to 2 s, 1 ms buckets beyond."""

    FINE_NS = 10_000
    FINE_N = 200_000
    COARSE_NS = 1_000_000

    def __init__(self):
        self.fine = [0] * self.FINE_N
        self.coarse = Counter()
        self.count = 0
        self.max = 0
        self.sum = 0

    def add_many(self, base_t: int, recv: list[int]) -> None:
        fine = self.fine
        fine_ns = self.FINE_NS
        fine_n = self.FINE_N
        mx = self.max
        s = 0
        for r in recv:
            d = r - base_t
            s += d
            b = d // fine_ns
            if b < fine_n:
                fine[b if b >= 0 else 0] += 1
            else:
                self.coarse[d // self.COARSE_NS] += 1
            if d > mx:
                mx = d
        self.max = mx
        self.count += len(recv)
        self.sum += s

    def add(self, d: int) -> None:
        self.add_many(0, [d])

    def percentile(self, p: float) -> float | None:
        """Upper edge of the bucket holding the p-th percentile, in ms."""
        if not self.count:
            return None
        rank = max(1, int(round(p / 100 * self.count + 0.4999)))
        seen = 0
        for i, c in enumerate(self.fine):
            if c:
                seen += c
                if seen >= rank:
                    return (i + 1) * self.FINE_NS / 1e6
        for b in sorted(self.coarse):
            seen += self.coarse[b]
            if seen >= rank:
                return (b + 1) * self.COARSE_NS / 1e6
        return self.max / 1e6

    def summary(self) -> dict:
        return {
            "count": self.count,
            "p50": self.percentile(50),
            "p90": self.percentile(90),
            "p99": self.percentile(99),
            "p999": self.percentile(99.9),
            "max": self.max / 1e6 if self.count else None,
            "mean": self.sum / self.count / 1e6 if self.count else None,
        }


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100 * len(values) + 0.4999)) - 1))
    return values[k]


# ---------------------------------------------------------------------------------------
# The generator


class NullProbe:
    pid = None

    def snapshot(self) -> dict:
        return {}


class Generator:
    def __init__(self, cfg: LoadConfig, probe=None):
        self.cfg = cfg
        u = urlsplit(cfg.url)
        if u.hostname not in ("127.0.0.1", "localhost", "::1") and not (u.hostname or "").startswith("127."):
            raise SystemExit("The generator only targets this machine (loopback addresses).")
        self.host = "127.0.0.1" if u.hostname == "localhost" else u.hostname
        self.port = u.port or 80
        self.origin = f"http://{self.host}:{self.port}"
        self.probe = probe or NullProbe()
        self.proto = PROTOCOLS[cfg.protocol]()
        self.viewers: list[Viewer] = []
        self.senders: list[Sender] = []
        self.team: list[Sender] = []
        self.team_seqs: list[int] = []
        self.team_sent = 0
        self.close_codes = Counter()
        self.unexpected = Counter()
        self.connect_failures = Counter()
        self.resync_failures = Counter()
        self.resyncs = 0
        self.resyncs_by_code = Counter()
        self.stopping = False
        self.slow_paused = False
        self.pairs: list[tuple[int, int]] = []
        self.pairs_slow: list[tuple[int, int]] = []
        self.pongs: dict[str, asyncio.Future] = {}
        self.window = (0, 0)
        self.loop_lag: list[float] = []
        self.send_lag_max = 0.0
        self.sent = 0
        self.cpu_shares: dict = {}
        self.connect_info: dict = {}
        self.connect_senders_info: dict | None = None
        self.behind_at_end = 0

    # --- addressing

    def local_ip(self, i: int) -> str | None:
        per = self.cfg.conns_per_ip
        if per <= 0:
            return None
        # 127.0.0.2 onwards; every 127/8 address is loopback on Linux.
        n = i // per
        return f"127.0.{1 + (n + 1) // 254}.{2 + (n + 1) % 254}" if n > 250 else f"127.0.0.{2 + n}"

    # --- connecting

    async def _connect_one(self, conn: Conn, sem: asyncio.Semaphore, times: list[float]) -> None:
        try:
            await asyncio.wait_for(conn.connect(), self.cfg.connect_timeout)
            times.append(conn.connect_ns / 1e6)
        except wsraw.HandshakeError as exc:
            self.connect_failures[f"http_{exc.status}"] += 1
        except TimeoutError:
            self.connect_failures["timeout"] += 1
            if conn.client is not None:
                conn.client.abort()
        except ConnectionError as exc:
            self.connect_failures[f"closed:{conn.closed_code}" if conn.closed_code else type(exc).__name__] += 1
        except OSError as exc:
            self.connect_failures[f"oserror:{exc.errno}"] += 1
        finally:
            sem.release()

    async def connect_many(self, conns: list[Conn], rate: float) -> dict:
        sem = asyncio.Semaphore(self.cfg.connect_concurrency)
        times: list[float] = []
        tasks = []
        t0 = time.monotonic()
        for i, conn in enumerate(conns):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await sem.acquire()
            tasks.append(asyncio.ensure_future(self._connect_one(conn, sem, times)))
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - t0
        return {
            "requested": len(conns),
            "connected": len(times),
            "seconds": round(elapsed, 3),
            "per_s": round(len(times) / elapsed, 1) if elapsed else None,
            "ms_p50": pct(times, 50),
            "ms_p99": pct(times, 99),
            "ms_max": max(times) if times else None,
        }

    # --- background loops

    async def _lag_monitor(self, stop: asyncio.Event) -> None:
        interval = 0.1
        while not stop.is_set():
            t = time.monotonic()
            await asyncio.sleep(interval)
            self.loop_lag.append((time.monotonic() - t - interval) * 1000)

    async def _app_pinger(self, stop: asyncio.Event) -> None:
        interval = self.cfg.app_ping
        frame_payload = self.proto.encode({"type": "ping", "ts": 0})
        while not stop.is_set():
            conns = [c for c in self.viewers + self.senders + self.team if c.client is not None]
            if not conns:
                await asyncio.sleep(interval)
                continue
            # Spread the pings over the interval rather than a burst every interval.
            step = max(1, len(conns) // max(1, int(interval * 20)))
            pause = interval / max(1, len(conns) / step)
            for i in range(0, len(conns), step):
                if stop.is_set():
                    return
                for c in conns[i : i + step]:
                    if c.client is not None:
                        c.client.send_text(frame_payload)
                await asyncio.sleep(pause)

    async def _pacer(self, rate: float, live: list[Sender], t_start: float, t_end: float, team: bool = False) -> None:
        """Open loop: message k goes out at t_start + k/rate whatever the server answers.
        `team`: the host team's pacer (counted apart, "team" in its bodies)."""
        cfg = self.cfg
        if rate <= 0 or not live:
            await asyncio.sleep(max(0.0, t_end - time.monotonic()))
            return
        tag = f"{'team' if team else 'b'}{random.getrandbits(32):08x}"
        pad = ("team " if team else "") + "x" * max(0, cfg.body_bytes - 34 - (5 if team else 0))
        interval = 1.0 / rate
        k = 0
        nsend = len(live)
        while True:
            now = time.monotonic()
            if now >= t_end:
                break
            due = int((now - t_start) / interval) + 1
            if due - k > 1:
                self.send_lag_max = max(self.send_lag_max, (due - k - 1) * interval)
            while k < due:
                sender = live[k % nsend]
                if sender.client is not None:
                    sender.send_message(k, tag, pad)
                    if team:
                        self.team_sent += 1
                    else:
                        self.sent += 1
                k += 1
            nxt = t_start + k * interval
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))

    async def _slow_cycle(self, start: float) -> None:
        slow = [v for v in self.viewers if v.slow]
        if not slow:
            return
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        self.slow_paused = True
        for v in slow:
            if v.client is not None:
                v.client.pause_reading()
        await asyncio.sleep(self.cfg.slow_pause)
        self.slow_paused = False
        for v in slow:
            if v.client is not None:
                v.client.resume_reading()

    async def final_seq(self) -> int | None:
        """The room's last seq, asked with a ping on any open connection."""
        conns = [c for c in self.senders + self.team if c.client is not None] + [
            c for c in self.viewers if c.client is not None]
        for c in conns[:3]:
            cid = f"final-{c.idx}-{random.getrandbits(24)}"
            fut = asyncio.get_running_loop().create_future()
            if isinstance(c, Sender):
                self.pongs[cid] = fut
                c.send_obj({"type": "ping", "ts": 0, "client_id": cid})
                try:
                    return await asyncio.wait_for(fut, 5)
                except TimeoutError:
                    continue
        return None

    # --- the run

    @contextlib.asynccontextmanager
    async def session(self):
        """Connected viewers and senders for one or more measured steps."""
        reset_cache()
        # Receive times and parsed frames are millions of long-lived objects without
        # cycles; a full collection over them would stall reading for 100s of ms.
        gc.collect()
        gc.disable()
        try:
            await self.open()
            yield self
        finally:
            await self.close_all()
            gc.enable()

    async def run(self) -> dict:
        async with self.session():
            return await self.step()

    async def open(self) -> None:
        cfg = self.cfg
        self.started = datetime.datetime.now(datetime.UTC)
        self.stop_event = asyncio.Event()
        self.bg_tasks = [asyncio.ensure_future(self._lag_monitor(self.stop_event))]
        if cfg.app_ping > 0:
            self.bg_tasks.append(asyncio.ensure_future(self._app_pinger(self.stop_event)))

        # Warm the server's code paths (imports, pools) so RSS-before is not inflated by
        # the first connection's one-off costs, then take the baseline.
        warm = Viewer(self, -1, None)
        try:
            await asyncio.wait_for(warm.connect(), cfg.connect_timeout)
        except (TimeoutError, OSError, ConnectionError, wsraw.HandshakeError) as exc:
            raise SystemExit(f"cannot open a viewer connection to {cfg.url}: {exc!r}") from None
        self.stopping = True
        warm.close()
        await asyncio.sleep(0.5)
        self.stopping = False
        self.snap_empty = self.probe.snapshot()

        self.viewers = [Viewer(self, i, self.local_ip(i)) for i in range(cfg.viewers)]
        for v in self.viewers[: cfg.slow]:
            v.slow = True
            v.rcvbuf = cfg.slow_rcvbuf
        if cfg.senders and not cfg.sessions and cfg.rate > 0 and cfg.protocol == "chat":
            print("warning: senders without sessions are anonymous (the real server refuses their sends)",
                  file=sys.stderr)
        self.connect_info = await self.connect_many(self.viewers, cfg.ramp)
        self.connect_senders_info = None
        await self.ensure_senders(cfg.senders)
        if cfg.team_senders:
            self.team = [
                Sender(self, -2 - i, self.local_ip(cfg.viewers + i),
                       cfg.team_sessions[i % len(cfg.team_sessions)] if cfg.team_sessions else None, team=True)
                for i in range(cfg.team_senders)
            ]
            info = await self.connect_many(self.team, cfg.ramp)
            if info["connected"] < len(self.team):
                print(f"warning: {len(self.team) - info['connected']} team senders did not connect", file=sys.stderr)
        await asyncio.sleep(cfg.settle)
        self.snap_connected = self.probe.snapshot()

    async def ensure_senders(self, n: int) -> None:
        """Connect senders up to `n` (a rate search needs more as the rate grows)."""
        if n <= len(self.senders):
            return
        sessions = self.cfg.sessions
        new = [
            Sender(self, i, self.local_ip(self.cfg.viewers + i), sessions[i % len(sessions)] if sessions else None)
            for i in range(len(self.senders), n)
        ]
        self.senders.extend(new)
        info = await self.connect_many(new, self.cfg.ramp)
        prev = self.connect_senders_info
        if prev is None:
            self.connect_senders_info = info
        else:
            prev["requested"] += info["requested"]
            prev["connected"] += info["connected"]

    async def close_all(self) -> None:
        self.stopping = True
        if getattr(self, "stop_event", None) is not None:
            self.stop_event.set()
        for task in getattr(self, "bg_tasks", ()):
            task.cancel()
        for c in self.viewers + self.senders + self.team:
            if isinstance(c, Viewer) and c.resync_task is not None and not c.resync_task.done():
                c.resync_task.cancel()
            c.close()
        await asyncio.sleep(0.5)
        for c in self.viewers + self.senders + self.team:
            if c.client is not None:
                c.client.abort()

    async def quiesce(self, timeout: float = 120.0) -> float:
        """Wait (bounded) until the server has answered every send and every viewer has
        caught up, so that a step does not measure the backlog of the one before."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        while time.monotonic() < deadline and any(s.pending for s in self.senders + self.team if s.client is not None):
            await asyncio.sleep(0.1)
        final = await self.final_seq()
        if final is not None:
            while time.monotonic() < deadline and any(
                v.next <= final for v in self.viewers if v.baseline is not None and v.client is not None
            ):
                await asyncio.sleep(0.1)
        return time.monotonic() - t0

    def _reset_step(self) -> None:
        reset_cache()
        self.pairs.clear()
        self.pairs_slow.clear()
        self.close_codes.clear()
        self.resync_failures.clear()
        self.resyncs = 0
        self.resyncs_by_code.clear()
        self.sent = 0
        self.team_sent = 0
        self.team_seqs.clear()
        self.send_lag_max = 0.0
        self.loop_lag.clear()
        for v in self.viewers:
            if v.baseline is not None:
                # Whatever a viewer still missed was counted in the step before.
                v.missing.clear()
                v.base = v.next - 1
            v.got = v.dups = v.reordered = v.gaps = v.old = v.resyncs = v.recovered = v.skipped = 0
            v.got_prio = v.got_member = 0
        for s in self.senders + self.team:
            s.pending.clear()
            s.acked = 0
            s.errors.clear()
            s.ack_lat.clear()
            s.answer_lat.clear()

    async def step(self, rate: float | None = None, senders: int | None = None, label: str | None = None) -> dict:
        """One measured window on the open connections: warm-up, window, drain, report."""
        cfg = self.cfg
        rate = cfg.rate if rate is None else rate
        n_send = len(self.senders) if senders is None else senders
        self._reset_step()
        live_senders = [s for s in self.senders[:n_send] if s.client is not None]

        t_start = time.monotonic()
        w_start = t_start + cfg.warmup
        w_end = w_start + cfg.duration
        pacer = asyncio.ensure_future(self._pacer(rate, live_senders, t_start, w_end))
        live_team = [s for s in self.team if s.client is not None]
        team_pacer = asyncio.ensure_future(self._pacer(cfg.team_rate, live_team, t_start, w_end, team=True))
        slow_at = cfg.slow_at if cfg.slow_at is not None else cfg.duration / 4
        slow_task = asyncio.ensure_future(self._slow_cycle(w_start + slow_at)) if cfg.slow else None
        await asyncio.sleep(max(0.0, w_start - time.monotonic()))

        if WINDOW_MARKER:
            # Tells a profiler started by run.py --profile that the window has begun.
            open(WINDOW_MARKER, "w").close()
        frames0 = sum(v.frames for v in self.viewers)
        members0 = [v.got_member for v in self.viewers]
        cpus0 = procstats.cpu_times()
        snap0 = self.probe.snapshot()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        ws_ns = clock()
        self.window = (ws_ns, None)
        tw0 = time.monotonic()
        await asyncio.sleep(max(0.0, w_end - time.monotonic()))
        await pacer
        await team_pacer
        tw1 = time.monotonic()
        we_ns = clock()
        self.window = (ws_ns, we_ns)
        snap1 = self.probe.snapshot()
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu_shares = procstats.cpu_shares(cpus0, procstats.cpu_times())
        frames1 = sum(v.frames for v in self.viewers)
        # Member lines each viewer got in its live feed during the window.
        members_window = [
            (v, b - a) for v, a, b in zip(self.viewers, members0, (v.got_member for v in self.viewers), strict=True)
            if v.baseline is not None
        ]
        if slow_task is not None:
            await slow_task

        # Drain: acks first, then every viewer up to the room's last seq.
        drain_deadline = time.monotonic() + cfg.drain
        while time.monotonic() < drain_deadline and any(
            s.pending for s in live_senders + live_team if s.client is not None
        ):
            await asyncio.sleep(0.05)
        final = await self.final_seq()
        max_acked = max((s.max_seq for s in self.senders + self.team), default=0)
        max_seen = max((v.next - 1 for v in self.viewers if v.baseline is not None), default=0)
        final_seq = final if final is not None else max(max_acked, max_seen)
        while time.monotonic() < drain_deadline:
            behind = [
                v for v in self.viewers
                if v.baseline is not None and not v.lost_conn and (v.next <= final_seq or v.missing)
            ]
            if not behind:
                break
            await asyncio.sleep(0.05)
        drain_s = time.monotonic() - tw1
        self.behind_at_end = sum(
            1 for v in self.viewers if v.baseline is not None and not v.lost_conn and (v.next <= final_seq or v.missing)
        )
        snap_end = self.probe.snapshot()
        ru_end = resource.getrusage(resource.RUSAGE_SELF)

        return self.report(
            label=label or cfg.label, rate=rate, senders=live_senders, final_seq=final_seq,
            final_from_server=final is not None, max_acked=max_acked,
            snaps=dict(empty=self.snap_empty, connected=self.snap_connected, w0=snap0, w1=snap1, end=snap_end),
            ru=(ru0, ru1, ru_end), window_s=tw1 - tw0, warmup_s=tw0 - t_start, frames=(frames0, frames1),
            drain_s=drain_s, team=live_team, members_window=members_window,
        )

    # --- the report

    def report(self, *, label, rate, senders, final_seq, final_from_server, max_acked, snaps, ru, window_s,
               warmup_s, frames, drain_s, team=(), members_window=()) -> dict:
        cfg = self.cfg
        connect, connect_senders = self.connect_info, self.connect_senders_info
        ws_ns, we_ns = self.window
        t_calc = time.monotonic()
        hist = Histogram()
        hist_slow = Histogram()
        # Priority events alone (normal and slow viewers): the host team's lines and the like.
        hist_prio = Histogram()
        prio_ts: set[int] = set()
        in_window = 0
        in_window_slow = 0
        for frame in list(CACHE.values()) + ARCHIVE:
            if not (frame.recv or frame.recv_slow):
                continue
            for t in frame.prio_t:
                if ws_ns <= t < we_ns:
                    hist_prio.add_many(t, frame.recv)
                    hist_prio.add_many(t, frame.recv_slow)
            for _, t in frame.events:
                if t is None or not ws_ns <= t < we_ns:
                    continue
                if frame.recv:
                    hist.add_many(t, frame.recv)
                    in_window += len(frame.recv)
                if frame.recv_slow:
                    hist_slow.add_many(t, frame.recv_slow)
                    in_window_slow += len(frame.recv_slow)
        for frame in list(CACHE.values()) + ARCHIVE:
            prio_ts.update(frame.prio_t)
        for pairs, h in ((self.pairs, hist), (self.pairs_slow, hist_slow)):
            for t, r in pairs:
                if ws_ns <= t < we_ns:
                    h.add(r - t)
                    if t in prio_ts:
                        hist_prio.add(r - t)
                    if h is hist:
                        in_window += 1
                    else:
                        in_window_slow += 1
        calc_s = time.monotonic() - t_calc

        viewers = [v for v in self.viewers if v.baseline is not None]
        owed = [max(0, final_seq - v.base) for v in viewers]
        expected = sum(owed)
        received = sum(v.got for v in viewers)
        skipped = sum(v.skipped for v in viewers)
        sent = self.sent
        acked = sum(s.acked for s in senders)
        errors = Counter()
        for s in senders:
            errors.update(s.errors)
        ack_lat = [x / 1e6 for s in senders for x in s.ack_lat]
        answer_lat = [x / 1e6 for s in senders for x in s.answer_lat]
        team_errors = Counter()
        for s in team:
            team_errors.update(s.errors)
        team_ack_lat = [x / 1e6 for s in team for x in s.ack_lat]

        # Priority events owed to each viewer: every one after its baseline up to the
        # end, known from the team senders' acks and from any frame or history holding it.
        prio_all = sorted(PRIO_SEQS.union(self.team_seqs))
        prio_owed = [
            max(0, bisect.bisect_right(prio_all, final_seq) - bisect.bisect_right(prio_all, v.base)) for v in viewers
        ]
        prio_lost = [max(0, o - v.got_prio) for v, o in zip(viewers, prio_owed, strict=True)]
        member_rates = sorted(n / window_s for _, n in members_window) if window_s else []

        def delta(key, a, b):
            if key in snaps[a] and key in snaps[b]:
                return snaps[b][key] - snaps[a][key]
            return None

        server_cpu = delta("cpu_s", "w0", "w1")
        deliveries_window = in_window + in_window_slow
        gen_cpu = (ru[1].ru_utime + ru[1].ru_stime) - (ru[0].ru_utime + ru[0].ru_stime)
        # Through the drain too: a generator that fell behind reads its backlog there.
        gen_cpu_all = (ru[2].ru_utime + ru[2].ru_stime) - (ru[0].ru_utime + ru[0].ru_stime)
        gen_us = gen_cpu_all / deliveries_window * 1e6 if deliveries_window else None
        conn_cpu = delta("cpu_s", "empty", "connected")
        pg_conn_cpu = delta("postgres_cpu_s", "empty", "connected")
        n_conns = connect["connected"] + (connect_senders or {}).get("connected", 0)
        rss_conn = None
        if snaps["connected"].get("rss_kb") and snaps["empty"].get("rss_kb") and n_conns:
            rss_conn = (snaps["connected"]["rss_kb"] - snaps["empty"]["rss_kb"]) * 1024 / n_conns
        pg_sessions_conn = delta("pg_sessions", "empty", "connected")
        lag = sorted(self.loop_lag)
        frames_window = frames[1] - frames[0]
        config = {k: v for k, v in asdict(cfg).items() if k not in ("sessions", "team_sessions")}
        config.update(rate=rate, senders=len(senders))
        result = {
            "label": label,
            "started_utc": self.started.isoformat(timespec="seconds"),
            "config": config,
            "connect": {"viewers": connect, "senders": connect_senders, "failures": dict(self.connect_failures)},
            "messages": {
                "sent": sent,
                "acked": acked,
                "errors": dict(errors),
                "unanswered": sum(len(s.pending) for s in senders),
                "rate_achieved": round(sent / (warmup_s + window_s), 1) if rate else 0,
                "ack_ms_p50": pct(ack_lat, 50),
                "ack_ms_p99": pct(ack_lat, 99),
                "ack_ms_max": max(ack_lat) if ack_lat else None,
                "answer_ms_p99": pct(answer_lat, 99),
                "answer_ms_max": max(answer_lat) if answer_lat else None,
                "pacer_lag_max_ms": round(self.send_lag_max * 1000, 1),
            },
            # The host team's senders (moderators: never left out of a feed), own pacer.
            "team_messages": {
                "senders": len(team),
                "rate": cfg.team_rate,
                "sent": self.team_sent,
                "acked": sum(s.acked for s in team),
                "errors": dict(team_errors),
                "unanswered": sum(len(s.pending) for s in team),
                "ack_ms_p50": pct(team_ack_lat, 50),
                "ack_ms_p99": pct(team_ack_lat, 99),
            } if team else None,
            # Events a readable feed never leaves out (anything but a member's message):
            # every viewer is owed each one after its baseline.
            "priority": {
                "known": len(prio_all),
                "owed": sum(prio_owed),
                "received": sum(v.got_prio for v in viewers),
                "lost": sum(prio_lost),
                "viewers_with_loss": sum(1 for x in prio_lost if x),
                "latency_ms": hist_prio.summary(),
            },
            # Member lines each viewer got in its live feed, per second over the window.
            "member_feed": {
                "readable_rate": cfg.readable_rate,
                "per_viewer_per_s_mean": round(sum(member_rates) / len(member_rates), 2) if member_rates else None,
                "per_viewer_per_s_p99": _r(pct(member_rates, 99)),
                "per_viewer_per_s_max": _r(member_rates[-1]) if member_rates else None,
                # The server's budget is a bucket holding one second's lines: over a
                # window of W s a viewer may get (W + 1) s worth.
                "viewers_over_readable": sum(
                    1 for x in member_rates if window_s and x > cfg.readable_rate * (window_s + 1) / window_s),
            },
            "deliveries": {
                "final_seq": final_seq,
                "final_seq_from_server": final_from_server,
                "max_acked_seq": max_acked,
                "viewers_counted": len(viewers),
                "expected": expected,
                "received": received,
                "skipped": skipped,
                "lost": expected - received - skipped,
                "viewers_with_loss": sum(1 for v, o in zip(viewers, owed, strict=True) if o > v.got + v.skipped),
                "duplicates": sum(v.dups for v in viewers),
                "reordered": sum(v.reordered for v in viewers),
                "gaps": sum(v.gaps for v in viewers),
                "resyncs": self.resyncs,
                "resyncs_by_code": {str(k): v for k, v in sorted(self.resyncs_by_code.items())},
                "recovered": sum(v.recovered for v in viewers),
                "resync_failures": dict(self.resync_failures),
                "viewers_dropped": sum(1 for v in viewers if v.lost_conn),
                # Still catching up when the drain ended: their missing events count as lost.
                "viewers_behind_at_end": self.behind_at_end,
                "close_codes": {str(k): v for k, v in sorted(self.close_codes.items())},
                "in_window": deliveries_window,
                "per_s": round(deliveries_window / window_s, 1) if window_s else None,
                "frames_in_window": frames_window,
                "frames_per_s": round(frames_window / window_s, 1) if window_s else None,
                "events_per_frame": round(deliveries_window / frames_window, 2) if frames_window else None,
                "drain_s": round(drain_s, 2),
            },
            "latency_ms": hist.summary(),
            "latency_slow_ms": hist_slow.summary() if cfg.slow else None,
            "server": {
                "pid": getattr(self.probe, "pid", None),
                "window_s": round(window_s, 3),
                "cpu_s": round(server_cpu, 2) if server_cpu is not None else None,
                "cpu_util": round(server_cpu / window_s, 3) if server_cpu is not None and window_s else None,
                "cpu_us_per_delivery": round(server_cpu / deliveries_window * 1e6, 2)
                if server_cpu is not None and deliveries_window else None,
                "connect_cpu_s": _r(conn_cpu),
                "connect_cpu_ms_per_conn": round(conn_cpu / n_conns * 1000, 2) if conn_cpu and n_conns else None,
                "connect_postgres_cpu_ms_per_conn": round(pg_conn_cpu / n_conns * 1000, 2)
                if pg_conn_cpu and n_conns else None,
                "pg_sessions_per_conn": round(pg_sessions_conn / n_conns, 2)
                if pg_sessions_conn is not None and n_conns else None,
                "pg_sessions_window": delta("pg_sessions", "w0", "w1"),
                "pg_xacts_window": delta("pg_xacts", "w0", "w1"),
                "rss_mb_empty": _mb(snaps["empty"].get("rss_kb")),
                "rss_mb_connected": _mb(snaps["connected"].get("rss_kb")),
                "rss_mb_end": _mb(snaps["end"].get("rss_kb")),
                "peak_rss_mb": _mb(snaps["end"].get("hwm_kb")),
                "rss_kb_per_conn": round(rss_conn / 1024, 1) if rss_conn is not None else None,
                "threads": snaps["end"].get("threads"),
                "redis_cpu_s": _r(delta("redis_cpu_s", "w0", "w1")),
                "postgres_cpu_s": _r(delta("postgres_cpu_s", "w0", "w1")),
            },
            "machine_cpu": self.cpu_shares,
            "generator": {
                "client": cfg.client,
                "transport": cfg.transport,
                "json": JSON_LIB,
                "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
                "cpu_s": round(gen_cpu, 2),
                "cpu_util": round(gen_cpu / window_s, 3) if window_s else None,
                "saturated": bool(window_s and gen_cpu / window_s > 0.9),
                "cpu_us_per_delivery": round(gen_us, 3) if gen_us else None,
                # Only meaningful when reading dominates the generator's work.
                "ceiling_est_per_s": round(1e6 / gen_us) if gen_us and deliveries_window / window_s > 20_000
                else None,
                "loop_lag_ms_p99": round(pct(lag, 99), 1) if lag else None,
                "loop_lag_ms_max": round(lag[-1], 1) if lag else None,
                "frames_parsed": PARSE_STATS["parsed"],
                "report_calc_s": round(calc_s, 2),
                "maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            },
        }
        if self.unexpected:
            result["unexpected"] = dict(self.unexpected)
        return result


def _mb(kb):
    return round(kb / 1024, 1) if kb else None


def _r(x):
    return round(x, 2) if x is not None else None


# ---------------------------------------------------------------------------------------
# Output


def format_table(result: dict) -> str:
    c = result["connect"]["viewers"]
    m = result["messages"]
    d = result["deliveries"]
    lat = result["latency_ms"]
    s = result["server"]
    g = result["generator"]

    def f(x, nd=1):
        if x is None:
            return "-"
        if isinstance(x, float):
            return f"{x:,.{nd}f}"
        return f"{x:,}" if isinstance(x, int) else str(x)

    rows = [
        ("run", result.get("label") or "-"),
        ("viewers connected", f"{f(c['connected'])}/{f(c['requested'])} in {f(c['seconds'], 2)} s "
                              f"({f(c['per_s'])}/s); connect ms p50 {f(c['ms_p50'])} p99 {f(c['ms_p99'])} "
                              f"max {f(c['ms_max'])}"),
        ("connect failures", json.dumps(result["connect"]["failures"]) if result["connect"]["failures"] else "0"),
        ("messages sent/acked", f"{f(m['sent'])}/{f(m['acked'])} ({f(m['rate_achieved'])}/s); errors "
                                f"{json.dumps(m['errors']) if m['errors'] else 0}; ack ms p50 {f(m['ack_ms_p50'])} "
                                f"p99 {f(m['ack_ms_p99'])}; any answer ms p99 {f(m.get('answer_ms_p99'))} "
                                f"max {f(m.get('answer_ms_max'))}; unanswered {f(m['unanswered'])}"),
        ("deliveries expected", f"{f(d['expected'])} (final seq {f(d['final_seq'])})"),
        ("deliveries received", f"{f(d['received'])}; skipped {f(d.get('skipped'))}; lost {f(d['lost'])} "
                                f"(viewers {f(d['viewers_with_loss'])}); "
                                f"dup {f(d['duplicates'])}; reordered {f(d['reordered'])}"),
        ("resyncs", f"{f(d['resyncs'])} {json.dumps(d['resyncs_by_code'])}; recovered {f(d['recovered'])}; "
                    f"dropped {f(d['viewers_dropped'])}; "
                           f"behind at end {f(d['viewers_behind_at_end'])}; "
                           f"close codes {json.dumps(d['close_codes'])}"),
        ("deliveries/s (window)", f"{f(d['per_s'])}; frames/s {f(d['frames_per_s'])}; "
                                  f"events/frame {f(d['events_per_frame'], 2)}"),
        ("latency ms", f"p50 {f(lat['p50'], 2)}  p90 {f(lat['p90'], 2)}  p99 {f(lat['p99'], 2)}  "
                       f"max {f(lat['max'], 2)}  (n={f(lat['count'])})"),
    ]
    pr, mf, tm = result.get("priority"), result.get("member_feed"), result.get("team_messages")
    if tm:
        errs = json.dumps(tm["errors"]) if tm["errors"] else 0
        rows.append(("team sent/acked", f"{f(tm['sent'])}/{f(tm['acked'])} by {f(tm['senders'])} at "
                                        f"{f(float(tm['rate']))}/s; errors {errs}; ack ms p99 {f(tm['ack_ms_p99'])}; "
                                        f"unanswered {f(tm['unanswered'])}"))
    if pr and pr["known"]:
        pl = pr["latency_ms"]
        rows.append(("priority events", f"owed {f(pr['owed'])}, received {f(pr['received'])}; lost {f(pr['lost'])} "
                                        f"(viewers {f(pr['viewers_with_loss'])}); {f(pr['known'])} distinct"))
        rows.append(("latency ms (priority)", f"p50 {f(pl['p50'], 2)}  p90 {f(pl['p90'], 2)}  p99 {f(pl['p99'], 2)}  "
                                              f"max {f(pl['max'], 2)}  (n={f(pl['count'])})"))
    if mf and mf["per_viewer_per_s_max"] is not None and (d.get("skipped") or tm):
        rows.append(("member lines/s/viewer", f"mean {f(mf['per_viewer_per_s_mean'], 2)}  "
                                              f"p99 {f(mf['per_viewer_per_s_p99'], 2)}  "
                                              f"max {f(mf['per_viewer_per_s_max'], 2)}; readable rate "
                                              f"{f(float(mf['readable_rate']))}/s; viewers over it "
                                              f"(+1 s burst) {f(mf['viewers_over_readable'])}"))
    if result.get("latency_slow_ms"):
        ls = result["latency_slow_ms"]
        rows.append(("latency ms (slow)", f"p50 {f(ls['p50'], 2)}  p99 {f(ls['p99'], 2)}  max {f(ls['max'], 2)}"))
    rows += [
        ("server CPU", f"{f(s['cpu_s'], 2)} s over {f(s['window_s'], 1)} s ({f(_pc(s['cpu_util']))}%); "
                       f"{f(s['cpu_us_per_delivery'], 2)} us/delivery; redis {f(s['redis_cpu_s'], 2)} s, "
                       f"postgres {f(s['postgres_cpu_s'], 2)} s"),
        ("server connect CPU", f"{f(s['connect_cpu_s'], 2)} s; {f(s['connect_cpu_ms_per_conn'], 2)} ms/conn "
                               f"(+ postgres {f(s['connect_postgres_cpu_ms_per_conn'], 2)} ms/conn); "
                               f"{f(s['pg_sessions_per_conn'], 2)} PG sessions/conn"),
        ("server DB in window", f"{f(s['pg_sessions_window'])} PG sessions, {f(s['pg_xacts_window'])} transactions"),
        ("server RSS MB", f"empty {f(s['rss_mb_empty'])}, connected {f(s['rss_mb_connected'])}, "
                          f"peak {f(s['peak_rss_mb'])}; {f(s['rss_kb_per_conn'])} KiB/conn"),
        ("machine CPU (window)", "; ".join(
            f"{k} busy {_pc(v['busy'])}% softirq {_pc(v['softirq'])}% steal {_pc(v['steal'])}%"
            for k, v in (result.get("machine_cpu") or {}).items() if k != "cpu")),
        ("generator CPU", f"{f(g['cpu_s'], 2)} s ({f(_pc(g['cpu_util']))}%){' SATURATED' if g['saturated'] else ''}; "
                          f"{f(g['cpu_us_per_delivery'], 2)} us/delivery (ceiling ~{f(g['ceiling_est_per_s'])}/s); "
                          f"loop lag p99 {f(g['loop_lag_ms_p99'])} ms; {g['client']}/{g['loop']}/{g['json']}"),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def _pc(x):
    return round(x * 100, 1) if x is not None else None


def machine_info() -> dict:
    model = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as fh:
            mem_kb = int(fh.readline().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    return {
        "host": socket.gethostname(),
        "cpu": model,
        "cpus": os.cpu_count(),
        "mem_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def raise_nofile(want: int = 65536) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in (max(want, hard), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, target))
            return target
        except (ValueError, OSError):
            continue
    return soft


def install_loop(name: str) -> str:
    if name in ("uvloop", "auto"):
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            return "uvloop"
        except ImportError:
            if name == "uvloop":
                raise
    return "asyncio"


def add_load_args(p: argparse.ArgumentParser) -> None:
    d = LoadConfig()
    g = p.add_argument_group("load shape")
    g.add_argument("--viewers", "-n", type=int, help=f"viewers in the room (default {d.viewers})")
    g.add_argument("--senders", "-s", type=int, help=f"sending connections, signed in (default {d.senders})")
    g.add_argument("--rate", "-r", type=float, help=f"total messages/s (default {d.rate})")
    g.add_argument("--duration", "-d", type=float, help=f"measured seconds (default {d.duration})")
    g.add_argument("--warmup", type=float, help=f"seconds of load before measuring (default {d.warmup})")
    g.add_argument("--ramp", type=float, help=f"new connections/s (default {d.ramp})")
    g.add_argument("--connect-concurrency", type=int, help=f"handshakes in flight (default {d.connect_concurrency})")
    g.add_argument("--slow", type=int, help="viewers that stop reading for --slow-pause seconds")
    g.add_argument("--slow-pause", type=float, help=f"seconds a slow viewer stops reading (default {d.slow_pause})")
    g.add_argument("--slow-at", type=float, help="seconds into the window when they stop (default duration/4)")
    g.add_argument("--slow-rcvbuf", type=int, help=f"SO_RCVBUF of slow viewers (default {d.slow_rcvbuf})")
    g.add_argument("--no-resync", dest="resync", action="store_false", default=None,
                   help="do not reconnect viewers closed with 4409 (or dropped: 1006)")
    g.add_argument("--drain", type=float, help=f"max seconds to wait for stragglers (default {d.drain})")
    g.add_argument("--body-bytes", type=int, help=f"message body length (default {d.body_bytes})")
    g.add_argument("--conns-per-ip", type=int, help=f"connections per source address 127.0.x.y, 0: kernel's choice "
                                                    f"(default {d.conns_per_ip})")
    g.add_argument("--client", choices=["raw", "websockets"], help="viewer client implementation (default raw)")
    g.add_argument("--protocol", choices=sorted(PROTOCOLS),
                   help="chat: chatsite's room protocol (default); socketio: Socket.IO 4 (bench/socketio/server.js)")
    g.add_argument("--transport", choices=["websocket", "sse"],
                   help="how viewers watch: WebSocket, or the server-sent-events stream (default websocket)")
    g.add_argument("--app-ping", type=float, help="seconds between protocol pings on every connection (0: off)")
    g.add_argument("--team-senders", type=int, help="host-team senders (moderators) besides --senders (default 0)")
    g.add_argument("--team-rate", type=float, help="total messages/s of the team senders, own pacer (default 0)")
    g.add_argument("--readable-rate", type=float,
                   help=f"the server's CHAT_READABLE_MESSAGES_PER_SECOND, for the report (default {d.readable_rate:g})")
    g.add_argument("--label", help="name of this run in the report")


def config_from_args(args, base: LoadConfig | None = None) -> LoadConfig:
    cfg = base or LoadConfig()
    for name in LoadConfig.__dataclass_fields__:
        value = getattr(args, name, None)
        if value is not None:
            setattr(cfg, name, value)
    if cfg.transport == "sse" and cfg.protocol != "chat":
        raise SystemExit("--transport sse is chatsite's server-sent-events stream: it needs --protocol chat")
    return cfg


async def run_load(cfg: LoadConfig, probe=None) -> dict:
    return await Generator(cfg, probe).run()


def main(argv=None) -> None:
    """Run one load against an already running server (run.py adds setup, servers, presets)."""
    from procstats import ProcProbe, pid_listening_on

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="ws://127.0.0.1:8000", help="server base URL (loopback only)")
    p.add_argument("--room", default="bench")
    p.add_argument("--session", action="append", default=[], help="session key of a sender (repeat)")
    p.add_argument("--server-pid", type=int, help="server process to measure (default: the one listening on the port)")
    p.add_argument("--loop", choices=["auto", "uvloop", "asyncio"], default="auto")
    p.add_argument("--json", help="write the report here")
    add_load_args(p)
    args = p.parse_args(argv)
    cfg = config_from_args(args)
    cfg.url, cfg.room, cfg.sessions = args.url, args.room, args.session
    raise_nofile()
    install_loop(args.loop)
    port = urlsplit(cfg.url).port or 80
    pid = args.server_pid or pid_listening_on(port)
    result = asyncio.run(run_load(cfg, ProcProbe(pid)))
    result["machine"] = machine_info()
    result["command"] = " ".join([os.path.basename(sys.executable), *sys.argv])
    print(format_table(result))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
