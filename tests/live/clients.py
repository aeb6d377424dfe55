"""WebSocket clients for tests that talk to real daphne processes.

A `LiveClient` reads its socket in a background task from the moment it connects, the
way a browser tab does: the server never sees a viewer that stopped reading just because
the test was busy elsewhere, and `seqs` records every room event that reached the client
whether or not the test looked at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from asgiref.sync import sync_to_async
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

Event = dict[str, Any]
Predicate = Callable[[Event], bool]

# Events that describe the connection rather than the room: they are not stored and,
# except for `ack` (which reports the seq of what it stored), carry no seq.
CONNECTION_EVENT_TYPES = frozenset({"welcome", "presence", "roster", "ack", "error", "pong", "synced"})


class LiveServer(Protocol):
    """What a client needs from a server started by the `daphne_servers` fixture."""

    @property
    def ws_url(self) -> str: ...

    @property
    def origin(self) -> str: ...


def is_room_event(event: Event) -> bool:
    return "seq" in event and event.get("type") not in CONNECTION_EVENT_TYPES


class LiveClient:
    """One WebSocket connection to a room, read continuously in the background.

    `recv_event()` hands out events one at a time, unpacking `batch` frames. Room events
    carried inside `welcome.history` are recorded in `seqs` and `room_events` but are not
    queued separately: the test sees them as part of the welcome.
    """

    def __init__(self, ws: ClientConnection, *, label: str = "") -> None:
        self.ws = ws
        self.label = label
        self.seqs: list[int] = []
        self.room_events: list[Event] = []
        # Every event in arrival order, batches unpacked, whether or not the test consumed it.
        self.events: list[Event] = []
        # Member lines a readable feed left out of this viewer's live feed.
        self.skipped = 0
        self.frames: list[str] = []
        self.welcome: Event | None = None
        self.failure: Exception | None = None
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name=f"live-client-reader {label}")

    def __repr__(self) -> str:
        return f"<LiveClient {self.label} seqs={len(self.seqs)} close_code={self.close_code}>"

    # Reading.

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if isinstance(frame, bytes):
                    raise AssertionError(f"{self.label}: server sent a binary frame: {frame[:80]!r}")
                self.frames.append(frame)
                for event in self._unpack(json.loads(frame)):
                    self._record(event)
                    self._queue.put_nowait(event)
                self._changed.set()
        except ConnectionClosed:
            pass
        except Exception as exc:
            # A frame that breaks the protocol: kept so that waiters report it, not a timeout.
            self.failure = exc
        finally:
            # Wakes every waiter so that nobody waits out a full timeout on a dead socket.
            self._queue.put_nowait(None)
            self._changed.set()

    def _unpack(self, frame: Any) -> list[Event]:
        if not isinstance(frame, dict) or "type" not in frame:
            raise AssertionError(f"{self.label}: frame is not an event object: {frame!r}")
        if frame["type"] == "batch":
            events = frame.get("events")
            # A readable feed's batch may carry only what it left out (`skipped`, up to
            # `last_seq`); any other batch holds events.
            if not isinstance(events, list) or not (events or frame.get("skipped")):
                raise AssertionError(f"{self.label}: batch without events: {frame!r}")
            self.skipped += frame.get("skipped", 0)
            return [e for item in events for e in self._unpack(item)]
        return [frame]

    def _record(self, event: Event) -> None:
        self.events.append(event)
        if event["type"] == "welcome":
            if self.welcome is None:
                self.welcome = event
            for item in event.get("history", []):
                self._record_room_event(item)
        elif is_room_event(event):
            self._record_room_event(event)

    def _record_room_event(self, event: Event) -> None:
        self.seqs.append(event["seq"])
        self.room_events.append(event)

    @property
    def roster_count(self) -> int | None:
        """How many viewers the server last said are online (welcome, presence or roster)."""
        for event in reversed(self.events):
            if event["type"] == "welcome":
                return event["roster"]["count"]
            if event["type"] in ("presence", "roster") and "count" in event:
                return event["count"]
        return None

    async def recv_event(self, timeout: float = 5.0) -> Event:
        """The next event, whether it came alone or inside a batch."""
        try:
            event = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.label}: no event within {timeout} s") from None
        if event is None:
            self._queue.put_nowait(None)
            if self.failure is not None:
                raise AssertionError(f"{self.label}: bad frame from the server: {self.failure}") from self.failure
            raise AssertionError(f"{self.label}: connection closed (code {self.close_code}) while waiting for an event")
        return event

    async def wait_for(self, predicate: Predicate, timeout: float = 5.0) -> Event:
        """Consume events until one matches `predicate`; return it.

        Events before the match are consumed too: the server does not promise an order
        between, say, a sender's `ack` and the `message` it stored, so to check for an
        event that may already have gone by use `room_event` or `wait_until`.
        """
        deadline = time.monotonic() + timeout
        skipped: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.label}: no matching event within {timeout} s; skipped {skipped[-10:]}")
            try:
                event = await self.recv_event(timeout=remaining)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; skipped {skipped[-10:]}") from None
            if predicate(event):
                return event
            skipped.append(json.dumps(event)[:200])

    async def wait_for_type(self, type_: str, timeout: float = 5.0, **fields: Any) -> Event:
        """The next event of `type_` whose fields equal `fields`."""
        return await self.wait_for(
            lambda e: e.get("type") == type_ and all(e.get(k) == v for k, v in fields.items()), timeout
        )

    async def expect_welcome(self, timeout: float = 10.0) -> Event:
        event = await self.recv_event(timeout)
        assert event["type"] == "welcome", f"{self.label}: first event is not welcome: {event}"
        return event

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
        """Wait until `condition()` holds, re-checking after each frame that arrives.

        Does not consume the event queue, so it mixes with `recv_event` and `wait_for`.
        """
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed:
                if condition():
                    return
                state = "closed" if self.closed else f"not within {timeout} s"
                if self.failure is not None:
                    state += f" (bad frame from the server: {self.failure})"
                recent = "\n  ".join(json.dumps(e)[:300] for e in self.events[-8:])
                raise AssertionError(f"{self.label}: {what or 'condition'} {state}; {self!r}; last events:\n  {recent}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def room_event(self, seq: int, timeout: float = 5.0) -> Event:
        """The room event with `seq`, once it has arrived (live, in a batch or in history).

        Looks at everything received rather than at the queue, so it does not matter
        whether an earlier `wait_for` already stepped over the event.
        """
        await self.wait_until(lambda: seq in self.seqs, timeout, f"room event seq {seq}")
        return next(e for e in self.room_events if e["seq"] == seq)

    async def wait_for_seq(self, seq: int, timeout: float = 5.0) -> None:
        """Wait until a room event with seq >= `seq` has arrived."""
        await self.wait_until(lambda: bool(self.seqs) and max(self.seqs) >= seq, timeout, f"seq {seq}")

    def drain(self) -> list[Event]:
        """Everything queued right now, without waiting."""
        events = []
        while not self._queue.empty():
            event = self._queue.get_nowait()
            if event is None:
                self._queue.put_nowait(None)
                break
            events.append(event)
        return events

    # Writing and closing.

    async def send(self, payload: dict[str, Any] | str) -> None:
        await self.ws.send(payload if isinstance(payload, str) else json.dumps(payload))

    async def send_message(self, body: str, client_id: str, **extra: Any) -> Event:
        """Send a chat message and return its `ack`; fails on an `error` reply."""
        await self.send({"type": "send", "body": body, "client_id": client_id, **extra})
        reply = await self.wait_for(lambda e: e.get("type") in ("ack", "error") and e.get("client_id") == client_id)
        assert reply["type"] == "ack", f"{self.label}: send {client_id!r} failed: {reply}"
        return reply

    @property
    def closed(self) -> bool:
        return self._reader.done()

    @property
    def close_code(self) -> int | None:
        """The code the server closed with, 1006 if the connection just dropped, None while open."""
        return self.ws.close_code if self.closed else None

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.label}: still open after {timeout} s") from None
        return self.close_code

    async def close(self, code: int = 1000) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code), 5)
        if not self._reader.done():
            self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


def session_cookie_for(user: AbstractBaseUser) -> dict[str, str]:
    """A signed-in session for `user`, stored in the test database, as a browser cookie.

    The session is made the way `django.contrib.auth.login` makes one, so every server
    process reading the same database accepts it.
    """
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = user._meta.pk.value_to_string(user)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return {"name": settings.SESSION_COOKIE_NAME, "value": session.session_key, "domain": "127.0.0.1", "path": "/"}


async def ws_connect(
    server: LiveServer,
    slug: str,
    user: AbstractBaseUser | None = None,
    after: int | None = None,
    *,
    cookie: dict[str, str] | None = None,
    origin: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    label: str | None = None,
) -> LiveClient:
    """Open /ws/rooms/<slug>/ on `server` as `user` (anonymous when None).

    Sends the server's own Origin unless `origin` says otherwise ("" sends none). A
    refused handshake raises `websockets.exceptions.InvalidStatus` (its
    `.response.status_code` is 403 for a foreign or missing Origin).
    """
    url = f"{server.ws_url}/ws/rooms/{slug}/"
    if after is not None:
        url += f"?after={after}"
    extra = list(headers)
    if user is not None and cookie is None:
        # The ORM may not be called from the event loop's thread.
        cookie = await sync_to_async(session_cookie_for)(user)
    if cookie is not None:
        extra.append(("Cookie", f"{cookie['name']}={cookie['value']}"))
    ws = await connect(
        url,
        origin=(server.origin if origin is None else origin) or None,  # type: ignore[arg-type]
        additional_headers=extra,
        # Keepalive pings are the server's business; a client ping could hide an idle
        # connection problem the tests are looking for.
        ping_interval=None,
        open_timeout=10,
        close_timeout=5,
        # Replays of up to 1000 events come in one welcome.
        max_size=16 * 1024 * 1024,
        max_queue=None,
        compression=None,
        proxy=None,
    )
    name = label or f"{getattr(user, 'username', 'anon')}@{url.split('//', 1)[1]}"
    return LiveClient(ws, label=name)
