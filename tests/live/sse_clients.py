"""Clients of the server-sent-events fallback for live-server tests: a stream read over
a real TCP (or TLS) connection the way an EventSource reads it, and the commands
endpoint posted to as the page does (session cookie, CSRF cookie and header, Origin)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from tests.support.schema import is_room_event, validate_frame

Event = dict[str, Any]
# Any 32 characters are a valid CSRF secret; the page sends the cookie's value back.
CSRF_SECRET = "s" * 32


def insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class LiveStream:
    """One open stream: its status, and every frame read so far, each checked against
    the protocol schema."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, label: str) -> None:
        self.reader = reader
        self.writer = writer
        self.label = label
        self.status = 0
        self.frames: list[tuple[str, str | None, dict]] = []
        self.events: list[Event] = []
        self.ended = asyncio.get_running_loop().create_future()
        self.changed = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def _read_head(self) -> None:
        status_line = await self.reader.readline()
        self.status = int(status_line.split()[1])
        self.headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            self.headers[name.strip().lower()] = value.strip()

    async def _body(self):
        if self.headers.get("transfer-encoding") == "chunked":
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    return
                yield await self.reader.readexactly(size)
                await self.reader.readexactly(2)
        while chunk := await self.reader.read(65536):
            yield chunk

    async def _read(self) -> None:
        buffer = ""
        try:
            async for chunk in self._body():
                buffer += chunk.decode()
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
                    if "data" in fields:
                        self._frame(fields)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if not self.ended.done():
                self.ended.set_result(True)
            self.changed.set()

    def _frame(self, fields: dict[str, str]) -> None:
        frame = json.loads(fields["data"])
        assert fields.get("event") == frame["type"], f"{self.label}: event name {fields} for {frame['type']}"
        self.frames.append((fields["event"], fields.get("id"), frame))
        self.events.extend(validate_frame(fields["data"]))
        self.changed.set()

    async def wait_for(self, predicate, timeout: float = 5.0) -> Event:
        async def find() -> Event:
            seen = 0
            while True:
                for event in self.events[seen:]:
                    if predicate(event):
                        return event
                seen = len(self.events)
                if self.ended.done():
                    raise AssertionError(f"{self.label}: the stream ended; got {self.events}")
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(find(), timeout)

    async def expect_welcome(self, timeout: float = 10.0) -> Event:
        welcome = await self.wait_for(lambda e: e["type"] == "welcome", timeout)
        assert self.events[0] is welcome, f"{self.label}: the welcome was not first: {self.events}"
        return welcome

    async def wait_ended(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(asyncio.shield(self.ended), timeout)

    @property
    def room_seqs(self) -> list[int]:
        welcome = next((e for e in self.events if e["type"] == "welcome"), {})
        return [e["seq"] for e in welcome.get("history", [])] + [e["seq"] for e in self.events if is_room_event(e)]

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def open_stream(
    base_url: str,
    slug: str,
    *,
    cookie: dict[str, str] | None = None,
    query: str = "",
    last_event_id: int | None = None,
    source: str | None = None,
    label: str = "",
) -> LiveStream:
    """GET /rooms/<slug>/stream on `base_url` (http:// or https://, any certificate)."""
    parts = urlsplit(base_url)
    tls = insecure_context() if parts.scheme == "https" else None
    reader, writer = await asyncio.open_connection(
        parts.hostname, parts.port, ssl=tls, local_addr=(source, 0) if source else None
    )
    lines = [
        f"GET /rooms/{slug}/stream{'?' + query if query else ''} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Accept: text/event-stream",
    ]
    if cookie is not None:
        lines.append(f"Cookie: {cookie['name']}={cookie['value']}")
    if last_event_id is not None:
        lines.append(f"Last-Event-ID: {last_event_id}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    stream = LiveStream(reader, writer, label or f"stream@{parts.netloc}")
    await asyncio.wait_for(stream._read_head(), 10)
    stream.task = asyncio.ensure_future(stream._read())
    return stream


def post_commands(base_url: str, slug: str, frames: Any, *, cookie: dict[str, str]) -> tuple[int, dict]:
    """POST frames to /rooms/<slug>/commands as the room page does (blocking: call it in
    a thread); returns the status and the JSON body."""
    request = urllib.request.Request(
        f"{base_url}/rooms/{slug}/commands",
        data=json.dumps(frames).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Origin": base_url,
            "X-CSRFToken": CSRF_SECRET,
            "Cookie": f"{cookie['name']}={cookie['value']}; csrftoken={CSRF_SECRET}",
        },
    )
    try:
        with urllib.request.urlopen(request, context=insecure_context(), timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
