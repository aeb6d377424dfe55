"""The server-sent-events fallback over the whole ASGI application, in the embedded mode:
the stream (`GET /rooms/<slug>/stream`) and the commands endpoint (`POST .../commands`).

Each stream is read as a browser's EventSource reads it: `event`, `id` and `data`
fields, every frame checked against the protocol schema."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import ApplicationCommunicator
from django.conf import settings as django_settings
from django.test import AsyncClient
from django.utils import timezone

from conftest import make_user
from moderation.models import Ban
from rooms import sse
from rooms.models import Message
from rooms.services import do_send_message
from tests.support.fixtures import RECEIVE_TIMEOUT, create_session
from tests.support.schema import is_room_event, validate_frame

# Every test ends with the hub stopped and the read path's connections closed, as the
# `connect` fixture does, whether or not it opened a socket.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("connect")]


@pytest.fixture(autouse=True)
def _fresh_command_budgets():
    # Budgets are kept per user and room id between posts, and ids repeat across tests.
    sse._budgets.clear()
    yield
    sse._budgets.clear()


class SseClient:
    """One EventSource: the response's status, headers and the events read so far."""

    def __init__(self, communicator: ApplicationCommunicator) -> None:
        self.communicator = communicator
        self.status: int | None = None
        self.headers: dict[bytes, bytes] = {}
        self.body = b""
        self.ended = False
        self.buffer = ""
        self.events: list[dict] = []
        self.last_event_id: str | None = None

    async def start(self) -> None:
        await self.communicator.send_input({"type": "http.request", "body": b""})
        start = await self.communicator.receive_output(RECEIVE_TIMEOUT)
        assert start["type"] == "http.response.start"
        self.status = start["status"]
        self.headers = dict(start["headers"])

    async def _read(self, timeout: float) -> None:
        message = await self.communicator.receive_output(timeout)
        assert message["type"] == "http.response.body"
        self.body += message["body"]
        self.buffer += message["body"].decode()
        if not message.get("more_body", False):
            self.ended = True
        while "\n\n" in self.buffer:
            block, self.buffer = self.buffer.split("\n\n", 1)
            fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
            if "data" not in fields:
                continue
            frame = json.loads(fields["data"])
            assert fields["event"] == frame["type"], block
            validate_frame(fields["data"])
            if "id" in fields:
                self.last_event_id = fields["id"]
            self.events.append({"event": fields["event"], "id": fields.get("id"), "frame": frame})

    async def next(self, kind: str | None = None, *, skip=("presence",)) -> dict:
        """The next event (of `kind`, skipping `skip`)."""
        while True:
            while not self.events:
                assert not self.ended, "the stream ended"
                await self._read(RECEIVE_TIMEOUT)
            event = self.events.pop(0)
            if event["event"] in skip and event["event"] != kind:
                continue
            if kind is not None:
                assert event["event"] == kind, event
            return event

    async def room_events(self, count: int) -> list[dict]:
        found = []
        while len(found) < count:
            event = await self.next(skip=())
            frame = event["frame"]
            inner = frame["events"] if frame["type"] == "batch" else [frame]
            found.extend(e for e in inner if is_room_event(e))
        return found

    async def until_end(self) -> list[dict]:
        while not self.ended:
            await self._read(RECEIVE_TIMEOUT)
        events, self.events = self.events, []
        return events

    async def close(self) -> None:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            if not self.communicator.future.done():
                await self.communicator.send_input({"type": "http.disconnect"})
                await self.communicator.wait(RECEIVE_TIMEOUT)
        self.communicator.stop(exceptions=False)


@pytest.fixture
async def stream(connect):
    # After `connect`, whose teardown stops the hub once the streams below have left it.
    from chatsite.asgi import application

    clients: list[SseClient] = []

    async def open_stream(
        room, user=None, *, query: str = "", last_event_id: str | None = None, client_ip="10.0.0.1", headers=()
    ):
        headers = [(b"host", b"127.0.0.1"), (b"accept", b"text/event-stream"), *headers]
        if user is not None:
            key = await database_sync_to_async(create_session)(user)
            headers.append((b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={key}".encode()))
        if last_event_id is not None:
            headers.append((b"last-event-id", last_event_id.encode()))
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": f"/rooms/{room.slug}/stream",
            "raw_path": f"/rooms/{room.slug}/stream".encode(),
            "query_string": query.encode(),
            "headers": headers,
            "client": (client_ip, 50000),
            "server": ("127.0.0.1", 80),
        }
        client = SseClient(ApplicationCommunicator(application, scope))
        clients.append(client)
        await client.start()
        return client

    try:
        yield open_stream
    finally:
        for client in clients:
            await client.close()


@database_sync_to_async
def send_messages(room, author, count):
    return [do_send_message(author, room_id=room.pk, body=f"line {i}") for i in range(count)]


# The stream.


async def test_the_stream_is_event_stream_and_welcome_comes_first_with_the_last_seq_as_id(stream, room, host, viewer):
    await send_messages(room, host, 3)

    client = await stream(room, viewer)

    assert client.status == 200
    assert client.headers[b"content-type"].startswith(b"text/event-stream")
    welcome = await client.next()
    assert welcome["event"] == "welcome"
    assert welcome["id"] == "3"
    assert [e["seq"] for e in welcome["frame"]["history"]] == [1, 2, 3]
    assert welcome["frame"]["you"]["name"] == viewer.username


async def test_live_events_arrive_once_each_with_their_seq_as_id(stream, room, host, viewer):
    client = await stream(room, viewer)
    await client.next("welcome")

    await send_messages(room, host, 2)

    events = await client.room_events(2)
    assert [e["seq"] for e in events] == [1, 2]
    assert client.last_event_id == "2"


async def test_last_event_id_resumes_after_it_even_when_the_url_still_says_after(stream, room, host, viewer):
    await send_messages(room, host, 5)

    # EventSource reconnects to the URL it was opened with, plus the id it saw last.
    client = await stream(room, viewer, query="after=1", last_event_id="4")

    welcome = await client.next("welcome")
    assert [e["seq"] for e in welcome["frame"]["history"]] == [5]
    assert welcome["id"] == "5"


async def test_after_in_the_url_resumes_a_first_connection(stream, room, host, viewer):
    await send_messages(room, host, 3)

    client = await stream(room, viewer, query="after=2")

    welcome = await client.next("welcome")
    assert [e["seq"] for e in welcome["frame"]["history"]] == [3]


async def test_a_bad_last_event_id_gets_the_latest_history_and_an_error(stream, room, host, viewer):
    await send_messages(room, host, 2)

    client = await stream(room, viewer, last_event_id="soon")

    welcome = await client.next("welcome")
    assert [e["seq"] for e in welcome["frame"]["history"]] == [1, 2]
    error = await client.next("error")
    assert error["frame"]["code"] == "bad_request"


async def test_a_resume_past_one_page_ends_the_stream_at_the_page_so_the_browser_reconnects(
    stream, room, host, viewer, settings
):
    settings.CHAT_HISTORY_RESUME_MAX = 3
    await send_messages(room, host, 5)

    first = await stream(room, viewer, query="after=0")
    events = await first.until_end()
    assert [e["event"] for e in events] == ["welcome"]
    assert events[0]["id"] == "3"
    assert events[0]["frame"]["history_truncated"] is True

    second = await stream(room, viewer, query="after=0", last_event_id=events[0]["id"])
    welcome = await second.next("welcome")
    assert [e["seq"] for e in welcome["frame"]["history"]] == [4, 5]
    assert welcome["frame"]["history_truncated"] is False


async def test_an_unknown_room_is_404_with_a_json_body(stream, room, viewer):
    room.slug = "nowhere"

    client = await stream(room, viewer)

    assert client.status == 404
    await client.until_end()
    assert json.loads(client.body)["error"]["code"] == "not_found"


async def test_a_banned_user_gets_403_and_no_stream(stream, room, host, viewer):
    await database_sync_to_async(Ban.objects.create)(room=room, user=viewer, by=host, created_at=timezone.now())

    client = await stream(room, viewer)

    assert client.status == 403
    await client.until_end()
    assert json.loads(client.body)["error"]["code"] == "banned"


async def test_a_stream_counts_in_the_roster_of_a_socket(stream, connect, room, viewer, outsider):
    await (await stream(room, viewer)).next("welcome")

    socket = await connect(room, outsider)

    names = [u["name"] for u in socket.welcome["roster"]["audience"]]
    assert viewer.username in names


async def test_a_stream_hears_who_joins_like_a_socket(stream, connect, room, viewer, outsider):
    client = await stream(room, viewer)
    await client.next("welcome")

    await connect(room, outsider)

    # The stream's own join comes first, alone or in the same (coalesced) delta.
    presence = await client.next("presence")
    while outsider.username not in [u["name"] for u in presence["frame"]["joined"]]:
        presence = await client.next("presence")
    assert presence["frame"]["count"] == 2


async def test_a_kicked_viewer_gets_an_error_event_then_the_stream_ends(stream, connect, room, host, viewer):
    client = await stream(room, viewer)
    await client.next("welcome")
    team = await connect(room, host)

    await team.send({"type": "kick", "user": viewer.pk, "client_id": "k"})

    events = await client.until_end()
    assert events[-1]["event"] == "error"
    assert events[-1]["frame"]["close"] == 4000
    frames = [e["frame"] for e in events]
    inner = [f for frame in frames for f in (frame["events"] if frame["type"] == "batch" else [frame])]
    assert any(f.get("action") == "kick" for f in inner)


async def test_a_stream_that_falls_behind_ends_without_an_error_so_the_browser_resumes(
    stream, room, host, viewer, monkeypatch
):
    from rooms.delivery.sse import AsgiStream

    client = await stream(room, viewer)
    await client.next("welcome")

    async def backed_up(self, frame):
        return False

    # The transport says the reader has too much unread (the daphne path's backlog bound).
    monkeypatch.setattr(AsgiStream, "write", backed_up)
    await send_messages(room, host, 1)

    events = await client.until_end()
    assert [e for e in events if e["event"] == "error"] == []


async def test_a_chinese_viewer_is_told_why_the_stream_ended_in_chinese(stream, connect, room, host, viewer):
    client = await stream(room, viewer, headers=[(b"accept-language", b"zh-CN,zh;q=0.9")])
    await client.next("welcome")
    team = await connect(room, host)

    await team.send({"type": "kick", "user": viewer.pk, "client_id": "k"})

    ending = (await client.until_end())[-1]["frame"]
    assert (ending["code"], ending["detail"], ending["close"]) == ("forbidden", "你已被移出房间。", 4000)


async def test_signing_out_ends_the_stream_of_that_session(stream, room, viewer):
    from rooms import realtime

    client = await stream(room, viewer)
    await client.next("welcome")

    await database_sync_to_async(realtime.publish_user_control)(viewer.pk, "revoke", session=None)

    events = await client.until_end()
    assert events[-1]["frame"]["close"] == 4403


async def test_streams_obey_the_per_user_connection_limit(stream, room, viewer, settings):
    settings.CHAT_MAX_CONNECTIONS_PER_USER = 1
    first = await stream(room, viewer)
    await first.next("welcome")

    second = await stream(room, viewer)

    assert second.status == 429
    await second.until_end()
    assert json.loads(second.body)["error"]["code"] == "rate_limited"


async def test_a_stream_and_a_socket_share_the_per_address_limit(stream, connect, room, viewer, outsider, settings):
    settings.CHAT_MAX_CONNECTIONS_PER_IP = 1
    # The test sockets come from no address in particular; streams name theirs.
    await (await stream(room, viewer, client_ip="10.9.9.9")).next("welcome")

    again = await stream(room, outsider, client_ip="10.9.9.9")

    assert again.status == 429


async def test_a_quiet_stream_gets_a_pong_with_the_rooms_last_seq_and_no_ts(stream, room, host, viewer, monkeypatch):
    monkeypatch.setattr(sse, "HEARTBEAT_SECONDS", 0.05)
    await send_messages(room, host, 2)
    client = await stream(room, viewer)
    await client.next("welcome")

    pong = await client.next("pong")

    assert pong["frame"] == {"type": "pong", "last_seq": 2}
    assert pong["id"] is None


# The commands endpoint.


# The test client's requests come to http://testserver.
PAGE_ORIGIN = "http://testserver"


async def signed_in_client(user, *, origin: str | None = PAGE_ORIGIN) -> AsyncClient:
    headers = {} if origin is None else {"origin": origin}
    client = AsyncClient(enforce_csrf_checks=True)
    client.page_headers = headers
    key = await database_sync_to_async(create_session)(user)
    client.cookies[django_settings.SESSION_COOKIE_NAME] = key
    client.cookies[django_settings.CSRF_COOKIE_NAME] = "a" * 32
    return client


async def post_commands(client: AsyncClient, room, body, *, csrf: str | None = "a" * 32):
    headers = {**client.page_headers, "x-csrftoken": csrf} if csrf is not None else client.page_headers
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return await client.post(f"/rooms/{room.slug}/commands", data, content_type="application/json", headers=headers)


async def test_a_send_is_acked_with_its_id_and_seq_and_reaches_the_stream(stream, room, viewer):
    watcher = await stream(room, viewer)
    await watcher.next("welcome")
    client = await signed_in_client(viewer)

    response = await post_commands(client, room, {"type": "send", "body": "hello", "client_id": "c1"})

    assert response.status_code == 200
    [ack] = response.json()["replies"]
    assert ack["type"] == "ack" and ack["client_id"] == "c1" and ack["seq"] == 1
    [message] = await watcher.room_events(1)
    assert message["body"] == "hello" and message["client_id"] == "c1"


async def test_several_frames_get_their_replies_in_order(room, viewer, unlimited_sends):
    client = await signed_in_client(viewer)

    response = await post_commands(
        client,
        room,
        [
            {"type": "send", "body": "one", "client_id": "a"},
            {"type": "send", "body": "   ", "client_id": "b"},
            {"type": "roster", "client_id": "r"},
            "not a frame",
            {"type": "ping", "ts": 1, "client_id": "p"},
        ],
    )

    replies = response.json()["replies"]
    assert [(r["type"], r.get("client_id"), r.get("code")) for r in replies] == [
        ("ack", "a", None),
        ("error", "b", "bad_request"),
        ("roster", "r", None),
        ("error", None, "bad_request"),
        ("error", "p", "unknown_type"),
    ]
    for reply in replies:
        validate_frame(json.dumps(reply))


async def test_repeating_a_client_id_stores_nothing_twice(room, viewer):
    client = await signed_in_client(viewer)
    frame = {"type": "send", "body": "once", "client_id": "same"}

    first = (await post_commands(client, room, frame)).json()["replies"][0]
    again = (await post_commands(client, room, frame)).json()["replies"][0]

    assert again == first
    assert await database_sync_to_async(Message.objects.filter(room=room).count)() == 1


async def test_a_member_cannot_moderate_over_the_endpoint(room, viewer, outsider):
    client = await signed_in_client(viewer)

    response = await post_commands(client, room, {"type": "kick", "user": outsider.pk, "client_id": "k"})

    assert response.json()["replies"][0]["code"] == "forbidden"


async def test_bad_json_is_400_with_a_json_body(room, viewer):
    client = await signed_in_client(viewer)

    response = await post_commands(client, room, "{not json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


async def test_errors_of_the_endpoint_speak_the_requests_language(room, viewer):
    client = await signed_in_client(viewer)
    client.page_headers = {**client.page_headers, "accept-language": "zh-CN,zh;q=0.9"}

    response = await post_commands(client, room, "{not json")

    assert response.json()["error"] == {"code": "bad_request", "detail": "请求正文不是有效的 JSON。"}


async def test_an_empty_list_is_400(room, viewer):
    client = await signed_in_client(viewer)

    response = await post_commands(client, room, [])

    assert response.status_code == 400


async def test_too_many_frames_in_one_post_is_413(room, viewer):
    client = await signed_in_client(viewer)

    response = await post_commands(client, room, [{"type": "roster"}] * (sse.FRAMES_PER_POST_MAX + 1))

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


async def test_without_the_csrf_header_it_is_403_with_a_json_body(room, viewer):
    client = await signed_in_client(viewer)

    response = await post_commands(client, room, {"type": "roster"}, csrf=None)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("origin", [None, "http://evil.example", "http://testserver:9", "https://testserver"])
async def test_a_missing_or_foreign_origin_is_403(room, viewer, origin):
    client = await signed_in_client(viewer, origin=origin)

    response = await post_commands(client, room, {"type": "roster"})

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


async def test_without_a_session_it_is_403(room, db):
    client = AsyncClient(enforce_csrf_checks=True)
    client.page_headers = {"origin": PAGE_ORIGIN}
    client.cookies[django_settings.CSRF_COOKIE_NAME] = "a" * 32

    response = await post_commands(client, room, {"type": "roster"})

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "unauthenticated"


async def test_an_unknown_room_is_404(room, viewer):
    client = await signed_in_client(viewer)
    room.slug = "nowhere"

    response = await post_commands(client, room, {"type": "roster"})

    assert response.status_code == 404


async def test_get_is_405(room, viewer):
    client = await signed_in_client(viewer)

    response = await client.get(f"/rooms/{room.slug}/commands", headers=client.page_headers)

    assert response.status_code == 405


async def test_the_budget_holds_across_posts_and_flooding_is_429(room, settings):
    settings.CHAT_COMMANDS_BURST = 2
    # Slow enough that no token comes back between the posts, however slow the machine.
    settings.CHAT_COMMANDS_PER_SECOND = 0.001
    settings.CHAT_FLOOD_STRIKES = 3
    # A user of its own: budgets are kept per user and room between posts.
    user = await database_sync_to_async(make_user)("flo_flood")
    client = await signed_in_client(user)

    first = (await post_commands(client, room, [{"type": "roster", "client_id": "a"}] * 2)).json()["replies"]
    refused = (await post_commands(client, room, {"type": "roster", "client_id": "b"})).json()["replies"]
    flooding = await post_commands(client, room, [{"type": "roster"}] * 3)

    assert [r["type"] for r in first] == ["roster", "roster"]
    assert refused[0]["code"] == "rate_limited" and refused[0]["retry_after"] > 0
    assert flooding.status_code == 429


# Operating: drain and metrics.


async def test_a_draining_process_refuses_new_streams_so_they_go_elsewhere(stream, room, viewer, monkeypatch):
    from rooms.delivery import drain

    monkeypatch.setattr(drain, "_draining", True)

    client = await stream(room, viewer)

    assert client.status == 503
    await client.until_end()
    assert json.loads(client.body)["error"]["code"] == "busy"


async def test_a_stream_counts_in_the_connections_gauge_as_sse(stream, room, viewer):
    from rooms import metrics

    before = metrics.EVENT_STREAMS._value.get()
    client = await stream(room, viewer)
    await client.next("welcome")
    during = metrics.EVENT_STREAMS._value.get()
    await client.close()

    assert during == before + 1
    assert metrics.EVENT_STREAMS._value.get() == before
