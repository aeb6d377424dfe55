"""Fixtures shared by every test package (registered from the root conftest).

- `broadcasts`: what services publish after commit, decoded and checked against the
  protocol schema (Zulip's `capture_send_event_calls`), while still publishing.
- `in_memory_channels`: the embedded mode (in-memory channel layer and presence) even
  when the environment points the app at Redis.
- `connect`: opens a WebSocket to a room through the whole ASGI application (origin
  check, session cookie, auth middleware, routing) and hands back a `ChatClient`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from tests.support.schema import is_room_event, validate_event, validate_frame

Event = dict[str, Any]

# The application checks Origin against ALLOWED_HOSTS, whose default includes 127.0.0.1.
ORIGIN = "http://127.0.0.1"
# Long enough for a thread hop and a batch window on a loaded machine; a test that waits
# this long for something that should come has failed anyway.
RECEIVE_TIMEOUT = 3.0
# Presence deltas arrive on their own schedule; tests that are not about presence skip them.
IGNORED_BY_DEFAULT = ("presence",)


# What services publish.


@dataclass(frozen=True)
class Published:
    """One call of rooms.realtime.publish_room_event."""

    room_id: int
    seq: int
    actor_id: int | None
    text: str
    close_user: tuple[int, int] | None
    event: Event


class Broadcasts(list):
    """The published room events, decoded, in publishing order; `calls` has the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Published] = []

    @property
    def seqs(self) -> list[int]:
        return [event["seq"] for event in self]

    def of_type(self, kind: str) -> list[Event]:
        return [event for event in self if event["type"] == kind]


@pytest.fixture
def broadcasts(monkeypatch: pytest.MonkeyPatch) -> Broadcasts:
    """Every room event published while the test runs, validated against PROTOCOL.md.

    Services publish from `transaction.on_commit`, so a sync test sees them only inside
    `django_capture_on_commit_callbacks(execute=True)` (or a transactional test).
    """
    from rooms import realtime

    captured = Broadcasts()
    original = realtime.publish_room_event

    def capture(
        room_id: int,
        *,
        seq: int,
        actor_id: int | None,
        text: str,
        close_user: tuple[int, int] | None = None,
        **delivery: object,
    ) -> None:
        event = json.loads(text)
        validate_event(event)
        assert is_room_event(event), f"only room events are published through the log: {event}"
        assert event["seq"] == seq, f"published with seq={seq} but the text says {event['seq']}: {text}"
        captured.append(event)
        captured.calls.append(Published(room_id, seq, actor_id, text, close_user, event))
        original(room_id, seq=seq, actor_id=actor_id, text=text, close_user=close_user, **delivery)

    monkeypatch.setattr(realtime, "publish_room_event", capture)
    return captured


# The two modes.


IN_MEMORY_CHANNEL_LAYERS = {
    "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 100_000, "expiry": 60}}
}


@pytest.fixture
def in_memory_channels(settings) -> None:
    """The embedded mode: in-memory channel layer and in-process presence.

    Setting CHANNEL_LAYERS also gives the test a fresh layer: Channels drops its cached
    layers when the setting changes, so no queue outlives the event loop it belongs to.
    """
    settings.REDIS_URL = ""
    settings.CHANNEL_LAYERS = IN_MEMORY_CHANNEL_LAYERS


# WebSocket clients.


class ConnectionClosed(AssertionError):
    def __init__(self, code: int | None, waiting_for: str) -> None:
        super().__init__(f"the server closed the connection (code {code}) while the test waited for {waiting_for}")
        self.code = code


class ChatClient:
    """One test WebSocket connection to a room.

    Reads one ASGI message at a time from the application; `batch` frames are unpacked
    into their events, and every event is checked against the protocol schema. `frames`
    keeps each text frame as sent, `events` every event received so far.
    """

    def __init__(self, communicator, *, label: str) -> None:
        self.communicator = communicator
        self.label = label
        self.accepted: bool | None = None
        # The signed-in session the connection's cookie carries (None when anonymous).
        self.session_key: str | None = None
        self.handshake_code: int | None = None
        self.close_code: int | None = None
        self.welcome: Event | None = None
        self.frames: list[str] = []
        self.events: list[Event] = []
        self._pending: list[Event] = []

    def __repr__(self) -> str:
        return f"<ChatClient {self.label}>"

    @property
    def room_seqs(self) -> list[int]:
        """Seqs of every room event received, in order (welcome history included)."""
        seqs = [e["seq"] for e in (self.welcome or {}).get("history", [])]
        return seqs + [e["seq"] for e in self.events if is_room_event(e)]

    # Sending.

    async def send(self, frame: dict[str, Any]) -> None:
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def send_text(self, text: str) -> None:
        await self.communicator.send_input({"type": "websocket.receive", "text": text})

    async def send_bytes(self, data: bytes) -> None:
        await self.communicator.send_input({"type": "websocket.receive", "bytes": data})

    # Receiving.

    async def _next_message(self, timeout: float) -> dict[str, Any]:
        try:
            return await self.communicator.receive_output(timeout)
        except TimeoutError:
            raise AssertionError(f"{self.label}: nothing arrived within {timeout} s") from None

    async def receive(self, *, timeout: float = RECEIVE_TIMEOUT, waiting_for: str = "an event") -> Event:
        """The next event from the server, whatever its type."""
        # A frame may carry no event (a batch whose lines the readable feed all left
        # out tells only `skipped`): read on until one does.
        while not self._pending:
            if self.close_code is not None:
                raise ConnectionClosed(self.close_code, waiting_for)
            message = await self._next_message(timeout)
            if message["type"] == "websocket.close":
                self.close_code = message.get("code", 1000)
                raise ConnectionClosed(self.close_code, waiting_for)
            assert message["type"] == "websocket.send", f"{self.label}: unexpected ASGI message {message}"
            assert "text" in message and message.get("bytes") is None, (
                f"{self.label}: the server sent a binary frame; the protocol is JSON text: {message}"
            )
            self.frames.append(message["text"])
            self._pending.extend(validate_frame(message["text"]))
        event = self._pending.pop(0)
        self.events.append(event)
        return event

    async def expect(
        self, kind: str, *, ignore: Iterable[str] = IGNORED_BY_DEFAULT, timeout: float = RECEIVE_TIMEOUT
    ) -> Event:
        """The next event, which must be of type `kind` (events of `ignore` types skipped)."""
        skip = set(ignore) - {kind}
        while True:
            event = await self.receive(timeout=timeout, waiting_for=f"a {kind!r} event")
            if event["type"] in skip:
                continue
            assert event["type"] == kind, f"{self.label}: expected a {kind!r} event, got {event}"
            return event

    async def wait_for(
        self, predicate: Callable[[Event], bool], *, timeout: float = RECEIVE_TIMEOUT, what: str = "a matching event"
    ) -> Event:
        """The first event, already received or still to come, that matches."""
        for event in self.events:
            if predicate(event):
                return event
        event, _ = await self.receive_until(predicate, timeout=timeout, what=what)
        return event

    async def receive_until(
        self, predicate: Callable[[Event], bool], *, timeout: float = RECEIVE_TIMEOUT, what: str = "a matching event"
    ) -> tuple[Event, list[Event]]:
        """Read until an event matches; returns it and the events read before it."""
        skipped: list[Event] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"{self.label}: no {what} within {timeout} s; got {skipped}")
            event = await self.receive(timeout=left, waiting_for=what)
            if predicate(event):
                return event, skipped
            skipped.append(event)

    async def room_events(self, count: int, *, timeout: float = RECEIVE_TIMEOUT) -> list[Event]:
        """The next `count` room events, skipping connection events such as presence."""
        found: list[Event] = []
        while len(found) < count:
            event = await self.receive(timeout=timeout, waiting_for=f"room event {len(found) + 1} of {count}")
            if is_room_event(event):
                found.append(event)
        return found

    async def expect_nothing(self, *, ignore: Iterable[str] = IGNORED_BY_DEFAULT, timeout: float = 0.3) -> None:
        """Nothing but `ignore`d events arrives within `timeout`, and the connection stays open."""
        skip = set(ignore)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        unexpected: list[Event] = []
        while not unexpected:
            while self._pending:
                event = await self.receive()
                if event["type"] not in skip:
                    unexpected.append(event)
            left = deadline - loop.time()
            if unexpected or left <= 0:
                break
            if await self.communicator.receive_nothing(timeout=left, interval=0.01):
                break
            event = await self.receive(timeout=left, waiting_for="nothing")
            if event["type"] not in skip:
                unexpected.append(event)
        assert not unexpected, f"{self.label}: expected nothing, got {unexpected}"

    async def expect_close(self, code: int | None = None, *, timeout: float = RECEIVE_TIMEOUT) -> int:
        """Read (and keep) whatever comes until the server closes; returns the close code."""
        self.events.extend(self._pending)
        self._pending.clear()
        while self.close_code is None:
            message = await self._next_message(timeout)
            if message["type"] == "websocket.close":
                self.close_code = message.get("code", 1000)
            elif message["type"] == "websocket.send" and message.get("text") is not None:
                self.frames.append(message["text"])
                self.events.extend(validate_frame(message["text"]))
        if code is not None:
            assert self.close_code == code, f"{self.label}: closed with {self.close_code}, expected {code}"
        return self.close_code

    async def disconnect(self) -> None:
        """Close from the client side, as a browser tab does, and let the consumer finish."""
        future = self.communicator.future
        if self.accepted and self.close_code is None and not future.done():
            self.close_code = 1000
            # A consumer that raised or was cancelled (a receive timed out) has nothing to close.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self.communicator.disconnect(timeout=RECEIVE_TIMEOUT)
        self.communicator.stop(exceptions=False)


def create_session(user) -> str:
    """A signed-in session for `user`, stored the way `django.contrib.auth.login` stores it."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = user._meta.pk.value_to_string(user)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return session.session_key


Connect = Callable[..., Any]


@pytest_asyncio.fixture
async def connect() -> AsyncIterator[Connect]:
    """`await connect(room, user=None, after=None)` -> ChatClient with its `welcome` read.

    `room` is a Room or a slug. Keywords: `query` (raw query string, instead of `after`),
    `origin` (None sends no Origin header), `headers` (extra), `welcome=False` to stop
    after the handshake (for refusals and close codes). A signed-in client's
    `session_key` is its session's. Clients still open when the test ends are
    disconnected, and the event loop's room hub is stopped.
    """
    from channels.db import database_sync_to_async
    from channels.testing import WebsocketCommunicator
    from django.conf import settings

    from chatsite.asgi import application

    clients: list[ChatClient] = []

    async def open_client(
        room,
        user=None,
        after: int | None = None,
        *,
        query: str | None = None,
        origin: str | None = ORIGIN,
        headers: Iterable[tuple[bytes, bytes]] = (),
        welcome: bool = True,
        label: str | None = None,
    ) -> ChatClient:
        slug = room if isinstance(room, str) else room.slug
        path = f"/ws/rooms/{slug}/"
        if query is None and after is not None:
            query = f"after={after}"
        if query:
            path += "?" + query
        all_headers = [(b"host", b"127.0.0.1")]
        if origin is not None:
            all_headers.append((b"origin", origin.encode()))
        session_key = None
        if user is not None:
            session_key = await database_sync_to_async(create_session)(user)
            all_headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_key}".encode()))
        all_headers.extend(headers)
        communicator = WebsocketCommunicator(application, path, headers=all_headers)
        client = ChatClient(communicator, label=label or (user.get_username() if user else "anonymous"))
        client.session_key = session_key
        clients.append(client)
        accepted, detail = await communicator.connect(timeout=RECEIVE_TIMEOUT)
        client.accepted = accepted
        if not accepted:
            client.handshake_code = detail
            return client
        if welcome:
            client.welcome = await client.expect("welcome")
            client.events.remove(client.welcome)
        return client

    try:
        yield open_client
    finally:
        # Whatever happened in the test, the clients and the hub must end here: an error
        # in this teardown would leave the test database unflushed for the next test.
        for client in clients:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await client.disconnect()
        await stop_room_hub()
        # The read path's connections live in threads pytest-django does not close; left
        # open, they keep the test database from being dropped.
        from rooms.dbpaths import close_read_connections

        await asyncio.to_thread(close_read_connections)


async def stop_room_hub() -> None:
    """Stop the running loop's room hub: its tasks belong to a loop the test is about to close.

    A server process keeps its hub for its lifetime; a test's event loop ends with the
    test, and tasks left pending on it would be destroyed mid-await.
    """
    from django.conf import settings

    from rooms.delivery import hub as hubs

    if asyncio.get_running_loop() not in hubs._hubs:
        return
    # Flushes and presence deltas are scheduled as timers holding a coroutine; let the
    # last ones run rather than leave coroutines that were never awaited.
    await asyncio.sleep(settings.CHAT_PRESENCE_COALESCE_MS / 1000 + 0.05)
    await hubs.stop_hub()
