"""The event stream's wire, without a server: how a frame becomes an event (type, id,
data), when a heartbeat is owed, and what the daphne path does with daphne's HTTP
request (each event written to the connection as one chunk, encoded once for all; a
reader that stopped reading noticed)."""

import asyncio
import functools
import inspect

from rooms import sse as stream_app
from rooms.delivery import sse
from rooms.delivery.sse import encode_event, frame_event, shared_event
from rooms.delivery.stream import Frame
from rooms.protocol import batch_text, encode


class FakeRequest:
    """The parts of daphne's WebRequest (a twisted.web Request) the stream reads."""

    def __init__(self, *, chunked: bool = True) -> None:
        self.finished = False
        self.startedWriting = True
        self.chunked = chunked
        self.written: list[bytes] = []
        self.channel = type("Channel", (), {})()
        self.channel.transport = FakeTcp()

    def write(self, data: bytes) -> None:
        raise AssertionError("the fast path does not go through Request.write")


class FakeTcp:
    """A Twisted TCP transport whose socket takes everything."""

    def __init__(self) -> None:
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataLen = 0
        self.connected = True
        self.disconnecting = False
        self.sent = b""
        self.socket = self

    def send(self, data: bytes) -> int:
        self.sent += data
        return len(data)

    def write(self, data: bytes) -> None:
        self.dataBuffer += data


async def handle_reply(protocol, message):
    protocol.replies.append(message)


def daphne_send(request):
    request.replies = []
    return functools.partial(handle_reply, request)


def test_a_daphne_response_gets_the_fast_stream_and_anything_else_the_asgi_one():
    request = FakeRequest()

    assert isinstance(sse.stream_for(daphne_send(request)), sse.DaphneStream)
    assert type(sse.stream_for(handle_reply)) is sse.AsgiStream


def test_an_event_goes_to_the_socket_as_one_http_chunk_encoded_once_for_all():
    frame = Frame(encode({"type": "message", "seq": 3}))
    first, second = FakeRequest(), FakeRequest()

    for request in (first, second):
        assert asyncio.run(sse.stream_for(daphne_send(request)).write(frame)) is True

    raw = b'event: message\nid: 3\ndata: {"type":"message","seq":3}\n\n'
    assert first.channel.transport.sent == b"%x\r\n%s\r\n" % (len(raw), raw)
    assert second.channel.transport.sent == first.channel.transport.sent
    assert frame.sse.raw == raw


def test_an_unchunked_response_gets_the_event_as_it_is():
    request = FakeRequest(chunked=False)

    asyncio.run(sse.stream_for(daphne_send(request)).write(Frame(encode({"type": "message", "seq": 1}))))

    assert request.channel.transport.sent.startswith(b"event: message\n")


def test_a_reader_with_too_much_unread_is_told_to_resume():
    request = FakeRequest()
    request.channel.transport.dataBuffer = b"x" * (sse.BACKLOG_MAX + 1)

    written = asyncio.run(sse.stream_for(daphne_send(request)).write(Frame(encode({"type": "message", "seq": 1}))))

    assert written is False
    assert request.channel.transport.sent == b""


def test_before_the_head_went_out_daphne_writes_the_event():
    request = FakeRequest()
    request.startedWriting = False

    asyncio.run(sse.stream_for(daphne_send(request)).write(Frame(encode({"type": "message", "seq": 1}))))

    assert request.replies[0]["type"] == "http.response.body" and request.replies[0]["more_body"] is True
    assert request.channel.transport.sent == b""


def test_every_twisted_attribute_the_stream_reads_exists():
    """DaphneStream falls back to the plain path when a piece is missing; this fails
    instead, so an upgrade of daphne or Twisted cannot slow it down silently."""
    from daphne.http_protocol import WebRequest
    from twisted.internet import abstract
    from twisted.web import http

    for name in ("channel", "finished", "startedWriting", "chunked", "write"):
        assert hasattr(WebRequest, name) or f"self.{name}" in inspect.getsource(http.Request), name
    source = inspect.getsource(abstract)
    for name in ("dataBuffer", "_tempDataLen", "self.offset"):
        assert name in source, name


def test_a_heartbeat_is_owed_fifteen_seconds_after_the_last_write():
    assert stream_app.HEARTBEAT_SECONDS == 15
    assert stream_app.heartbeat_delay(100.0, 100.0, 15) == 15.0
    assert stream_app.heartbeat_delay(100.0, 110.0, 15) == 5.0
    assert stream_app.heartbeat_delay(100.0, 115.0, 15) == 0.0
    assert stream_app.heartbeat_delay(100.0, 130.0, 15) == 0.0


# The event encoding.


def test_a_batch_is_one_event_whose_id_is_its_highest_seq():
    texts = [encode({"type": "message", "seq": 7}), encode({"type": "presence", "count": 1})]
    raw = frame_event(batch_text([encode({"type": "message", "seq": 6}), *texts])).raw

    lines = raw.decode().split("\n")
    assert lines[:2] == ["event: batch", "id: 7"]
    assert lines[2].startswith("data: {")
    assert raw.endswith(b"\n\n")


def test_a_batch_that_vouches_for_more_takes_its_last_seq_as_id():
    raw = frame_event(batch_text([encode({"type": "message", "seq": 6})], complete_to=9, skipped=3)).raw

    assert raw.split(b"\n")[1] == b"id: 9"


def test_a_connection_frame_has_no_id_and_line_breaks_in_text_stay_escaped():
    raw = encode_event(encode({"type": "you", "name": "a\nb"}), kind="you").raw

    assert raw.count(b"\n") == 3
    assert b"id:" not in raw


def test_a_shared_frame_is_encoded_once_for_every_stream():
    frame = Frame(encode({"type": "message", "seq": 1}))

    assert shared_event(frame) is shared_event(frame)
