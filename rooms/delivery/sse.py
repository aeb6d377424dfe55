"""Writing frames to one viewer's server-sent-events stream (PROTOCOL.md "Server-sent
events"): each frame is one event, `event: <frame type>`, `id: <highest seq>` when it
holds room events, `data: <the frame's JSON>`.

A frame the hub writes to many viewers is turned into its event once, on the frame
(`Frame.sse`), like the WebSocket transport's framed bytes. Under daphne the event is
written straight to the connection with the chunk framing HTTP/1.1 needs, the backlog
of a viewer that stopped reading is known (it is ended, and resumes with
Last-Event-ID), and nothing goes through the ASGI `send` per viewer; under any other
ASGI server every event goes through `send`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from rooms.delivery.stream import Frame
from rooms.delivery.transport import BACKLOG_MAX, Send, _write_now, server_protocol

# The browser waits this long before it reconnects a stream that ended (the `retry`
# field): long enough not to hammer a process that is shedding, short enough that a
# viewer sent back to the log (fell behind, a process draining) is back at once.
RECONNECT_MS = 1000


class Event:
    """One encoded event: as it goes on the wire in a plain HTTP body, and as one
    HTTP/1.1 chunk."""

    __slots__ = ("raw", "chunk")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.chunk = b"%x\r\n%s\r\n" % (len(raw), raw)


def encode_event(text: str, *, kind: str, event_id: int | None = None) -> Event:
    head = f"event: {kind}\n" if event_id is None else f"event: {kind}\nid: {event_id}\n"
    # The protocol's JSON never holds a raw line break (json.dumps escapes them), so
    # the frame is one `data:` line.
    return Event(head.encode() + b"data: " + text.encode() + b"\n\n")


def frame_event(text: str) -> Event:
    """The event of a frame whose type and seqs are read from its text: a room event
    (its seq), a batch (its highest seq, or the `last_seq` it vouches for), or a
    connection frame (no id)."""
    frame: dict[str, Any] = json.loads(text)
    kind = frame["type"]
    if kind == "batch":
        seqs = [event["seq"] for event in frame["events"] if "seq" in event]
        if "last_seq" in frame:
            seqs.append(frame["last_seq"])
    else:
        seqs = [frame["seq"]] if "seq" in frame else []
    return encode_event(text, kind=kind, event_id=max(seqs) if seqs else None)


def shared_event(frame: Frame) -> Event:
    event = frame.sse
    if event is None:
        event = frame.sse = frame_event(frame.text)
    return event


def preamble() -> bytes:
    """The start of every stream: how soon to reconnect once it ends."""
    return f"retry: {RECONNECT_MS}\n\n".encode()


class AsgiStream:
    """Any ASGI server: each event is one `http.response.body` message."""

    fast = False

    def __init__(self, send: Send) -> None:
        self._send = send
        # When something last went out (the heartbeat is owed after a quiet while).
        self.last_write = time.monotonic()

    def put(self, frame: Frame) -> bool | None:
        """Write one frame at once, without awaiting: False if the viewer has too much
        unread already (it is to resume from the log), None if this stream cannot (then
        `write` it)."""
        return None

    async def write(self, frame: Frame) -> bool:
        """Write one frame; False if the viewer has too much unread already."""
        return await self.write_event(shared_event(frame))

    async def write_event(self, event: Event) -> bool:
        self.last_write = time.monotonic()
        await self._send({"type": "http.response.body", "body": event.raw, "more_body": True})
        return True


class DaphneStream(AsgiStream):
    """A daphne HTTP response (a Twisted Request) that stays open."""

    fast = True

    def __init__(self, send: Send, request) -> None:
        super().__init__(send)
        self.request = request

    def put(self, frame: Frame) -> bool | None:
        # The fan-out path: one viewer of many, once per frame, so no call it can spare.
        event = frame.sse
        return self._put(event if event is not None else shared_event(frame))

    async def write_event(self, event: Event) -> bool:
        written = self._put(event)
        return written if written is not None else await super().write_event(event)

    def _put(self, event: Event) -> bool | None:
        """Write straight to the connection; None when the response is not under way
        (its head goes through daphne) or is over, for daphne to handle."""
        request = self.request
        channel = request.channel
        if request.finished or channel is None or not request.startedWriting:
            return None
        transport = channel.transport
        if len(transport.dataBuffer) - transport.offset + transport._tempDataLen > BACKLOG_MAX:
            return False
        self.last_write = time.monotonic()
        _write_now(transport, event.chunk if request.chunked else event.raw)
        return True


# What daphne's HTTP request and its Twisted transport must have for DaphneStream.
_REQUEST_ATTRS = ("channel", "finished", "startedWriting", "chunked", "write")
_TCP_ATTRS = ("dataBuffer", "offset", "_tempDataLen", "socket", "connected", "disconnecting")


def stream_for(send: Send) -> AsgiStream:
    """The stream transport of a response, from the ASGI `send` the server gave it."""
    request = server_protocol(send)
    if request is not None and all(hasattr(request, name) for name in _REQUEST_ATTRS):
        transport = getattr(request.channel, "transport", None)
        if transport is not None and all(hasattr(transport, name) for name in _TCP_ATTRS):
            return DaphneStream(send, request)
    return AsgiStream(send)
