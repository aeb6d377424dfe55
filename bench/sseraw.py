"""A minimal server-sent-events client for the load generator (`--transport sse`).

The same surface as wsraw.RawClient, over `GET /rooms/<slug>/stream`: an
asyncio.Protocol that decodes the chunked body of every read in place and calls the
viewer's handler with each event's `data` (the frame's JSON bytes, byte-identical for
every viewer, so loadgen's parse cache works as it does for WebSocket frames).

How a stream ends maps onto the socket's close codes, so the viewer's resync logic is
the same: an `error` event with `close` (kicked, banned) is that code; a response the
server ended (the viewer fell behind, a resume page ended) is 4409, resume with
?after=; a dropped connection is 1006.
"""

from __future__ import annotations

import asyncio
import json
import time

import wsraw

FELL_BEHIND = 4409
DROPPED = 1006


class SseClient(asyncio.Protocol):
    __slots__ = (
        "transport",
        "request",
        "on_text",
        "on_close",
        "opened",
        "head_done",
        "buf",
        "chunk_left",
        "body",
        "close_code",
        "closed",
        "_clock",
        "ended_clean",
    )

    def __init__(self, request: bytes, on_text, on_close, opened: asyncio.Future, clock):
        self.transport: asyncio.Transport | None = None
        self.request = request
        self.on_text = on_text
        self.on_close = on_close
        self.opened = opened
        self.head_done = False
        self.buf = b""
        self.chunk_left = 0
        self.body = b""
        self.close_code: int | None = None
        self.closed = False
        self._clock = clock
        self.ended_clean = False

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes):
        now = self._clock()
        buf = self.buf + data if self.buf else data
        if not self.head_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            head, buf = buf[:end].decode("latin-1"), buf[end + 4 :]
            status = int(head.split(" ", 2)[1])
            if status != 200:
                if not self.opened.done():
                    self.opened.set_exception(wsraw.HandshakeError(status, head.split("\r\n", 1)[0]))
                self.transport.abort()
                return
            self.head_done = True
            if not self.opened.done():
                self.opened.set_result(self)
        self.buf = self._dechunk(buf)
        self._events(now)

    def _dechunk(self, buf: bytes) -> bytes:
        """Move whole or partial chunk data from `buf` to the body; returns what is left."""
        pos = 0
        size = len(buf)
        while pos < size:
            if self.chunk_left:
                take = min(self.chunk_left, size - pos)
                self.body += buf[pos : pos + take]
                self.chunk_left -= take
                pos += take
                continue
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                break
            if line_end == pos:  # the CRLF after a chunk's data
                pos += 2
                continue
            length = int(buf[pos:line_end].split(b";", 1)[0], 16)
            pos = line_end + 2
            if length == 0:
                self.ended_clean = True
                return b""
            self.chunk_left = length
        return buf[pos:]

    def _events(self, now: int) -> None:
        body = self.body
        start = 0
        on_text = self.on_text
        while (end := body.find(b"\n\n", start)) >= 0:
            block = body[start:end]
            start = end + 2
            at = block.find(b"data: ")
            if at < 0:
                continue
            payload = block[at + 6 :]
            if block.startswith(b"event: error") and b'"close":' in payload:
                self.close_code = json.loads(payload)["close"]
            on_text(payload, now)
        self.body = body[start:]

    def connection_lost(self, exc):
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("stream closed before its response"))
        code = self.close_code
        if code is None:
            code = FELL_BEHIND if self.ended_clean else DROPPED
        cb, self.on_close = self.on_close, None
        if cb is not None:
            cb(code)

    def send_text(self, payload: bytes) -> None:
        """A stream takes no frames: commands are POSTed, and a stream is resumed with
        ?after= rather than synced (loadgen's viewers send none over a stream)."""

    def close(self, code: int = 1000) -> None:
        if not self.closed and self.transport is not None:
            self.close_code = code
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()


async def connect(
    host: str,
    port: int,
    path: str,
    *,
    on_text,
    on_close,
    cookie: str | None = None,
    local_ip: str | None = None,
    rcvbuf: int | None = None,
    clock=None,
) -> SseClient:
    """Open a stream and read its response head (raises HandshakeError/OSError)."""
    loop = asyncio.get_running_loop()
    sock = await wsraw.connected_socket(host, port, local_ip, rcvbuf)
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Accept: text/event-stream"]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    opened = loop.create_future()
    client = SseClient(request, on_text, on_close, opened, clock or time.monotonic_ns)
    await loop.create_connection(lambda: client, sock=sock)
    return await opened
