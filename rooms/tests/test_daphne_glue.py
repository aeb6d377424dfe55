"""What the daphne transport does to daphne's objects for a WebSocket it serves."""

import asyncio
import inspect
from types import SimpleNamespace

from twisted.internet.testing import StringTransport
from twisted.web.http import HTTPChannel

from rooms.delivery.transport import (
    INBOUND_FRAMES_HIGH,
    INBOUND_FRAMES_LOW,
    MESSAGE_MAX_FACTOR,
    AsgiTransport,
    DaphneTransport,
    transport_for,
)


def _release_handshake(ws):
    DaphneTransport(ws).accepted()


def _limit_inbound(ws):
    transport = DaphneTransport(ws)
    transport.connecting()
    return transport


def upgraded(producer):
    transport = StringTransport()
    transport.registerProducer(producer, True)
    return SimpleNamespace(
        transport=transport,
        http_request_data=b"GET ...",
        http_response_data=b"HTTP/1.1 101 ...",
        http_headers={"host": "chat.example"},
    )


def test_the_upgraded_http_channel_and_the_raw_handshake_are_let_go_of():
    ws = upgraded(HTTPChannel())

    _release_handshake(ws)

    assert ws.transport.producer is None
    assert (ws.http_request_data, ws.http_response_data, ws.http_headers) == (None, None, {})


def test_any_other_producer_is_left_alone():
    other = object()
    ws = upgraded(other)

    _release_handshake(ws)

    assert ws.transport.producer is other


def test_a_protocol_without_those_pieces_is_left_as_it_is():
    ws = SimpleNamespace(transport=StringTransport())

    _release_handshake(ws)

    assert vars(ws).keys() == {"transport"}


class PausableTransport:
    def __init__(self):
        self.paused = 0
        self.resumed = 0

    def pauseProducing(self):  # noqa: N802 (Twisted's name)
        self.paused += 1

    def resumeProducing(self):  # noqa: N802
        self.resumed += 1


def daphne_like_protocol():
    """What _limit_inbound uses of daphne's WebSocketProtocol: each message goes to the
    application's queue, as daphne's onMessage does."""
    queue = asyncio.Queue()
    ws = SimpleNamespace(
        application_queue=queue,
        transport=PausableTransport(),
        maxMessagePayloadSize=1 << 20,
        maxFramePayloadSize=1 << 20,
        message_data_total_length=0,
        failedByMe=False,
        failed=[],
    )
    ws.onMessage = lambda payload, is_binary: queue.put_nowait({"type": "websocket.receive", "text": payload.decode()})

    def frame_begins(length):
        ws.message_data_total_length += length

    def fail(size, limit, reason):
        ws.failedByMe = True
        ws.failed.append((size, limit))

    ws.onMessageFrameBegin = frame_begins
    ws._max_message_size_exceeded = fail
    return ws


def test_messages_over_a_small_multiple_of_the_frame_limit_fail_the_connection(settings):
    limit = settings.CHAT_FRAME_MAX_BYTES * MESSAGE_MAX_FACTOR
    ws = daphne_like_protocol()
    _limit_inbound(ws)

    assert ws.maxFramePayloadSize == limit < 1 << 20
    # A message in fragments: failed once its frames add up to more than the limit.
    ws.onMessageFrameBegin(limit // 2)
    ws.onMessageFrameBegin(limit // 2)
    assert ws.failed == []
    ws.onMessageFrameBegin(1)
    assert ws.failed == [(limit + 1, limit)]
    # What the server sends stays under Autobahn's own, larger limit.
    assert ws.maxMessagePayloadSize == 1 << 20


def test_a_connection_that_sends_faster_than_it_is_answered_stops_being_read():
    ws = daphne_like_protocol()
    _limit_inbound(ws)

    for _ in range(INBOUND_FRAMES_HIGH - 1):
        ws.onMessage(b"{}", False)
    assert ws.transport.paused == 0
    for _ in range(10):
        ws.onMessage(b"{}", False)

    # Paused once, however many frames the read that was under way still held.
    assert ws.transport.paused == 1
    assert ws.application_queue.qsize() == INBOUND_FRAMES_HIGH + 9


def test_reading_resumes_once_the_consumer_is_down_to_the_low_mark():
    ws = daphne_like_protocol()
    transport = _limit_inbound(ws)
    for _ in range(INBOUND_FRAMES_HIGH):
        ws.onMessage(b"{}", False)

    while ws.application_queue.qsize() > INBOUND_FRAMES_LOW + 1:
        ws.application_queue.get_nowait()
        transport.frame_handled()
    assert ws.transport.resumed == 0
    ws.application_queue.get_nowait()
    transport.frame_handled()
    transport.frame_handled()

    assert ws.transport.resumed == 1
    ws.onMessage(b"{}", False)
    assert ws.transport.paused == 1


def test_daphne_still_has_what_the_glue_relies_on():
    """The glue reads daphne's, Autobahn's and Twisted's insides: an upgrade that moves
    one of them must fail here, not fall back silently."""
    from autobahn.websocket.protocol import WebSocketProtocol as AutobahnProtocol
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.internet.tcp import Connection

    assert "onMessage" in vars(WebSocketProtocol)
    for name in ("onMessageFrameBegin", "_max_message_size_exceeded"):
        assert callable(getattr(AutobahnProtocol, name))
    # Fields the frame-begin hook reads, set per message by Autobahn.
    source = inspect.getsource(AutobahnProtocol.onMessageFrameBegin)
    assert "message_data_total_length" in source and "failedByMe" in source
    # Options copied from the factory onto each connection, which the glue then overrides.
    assert {"maxMessagePayloadSize", "maxFramePayloadSize", "failByDrop"} <= set(AutobahnProtocol.CONFIG_ATTRS_COMMON)
    assert callable(Connection.pauseProducing) and callable(Connection.resumeProducing)


def test_a_connection_is_failed_with_a_close_frame_not_a_dropped_socket():
    ws = daphne_like_protocol()
    ws.failByDrop = True

    _limit_inbound(ws)

    assert ws.failByDrop is False


def test_daphne_sends_get_the_daphne_transport_and_others_the_asgi_one():
    import functools

    ws = daphne_like_protocol()
    ws.transport = SimpleNamespace(
        dataBuffer=b"",
        offset=0,
        _tempDataLen=0,
        socket=None,
        connected=True,
        disconnecting=False,
        pauseProducing=lambda: None,
    )
    ws.send_queue, ws.sendData, ws.state, ws.STATE_OPEN, ws.failByDrop = [], None, 3, 3, True
    ws.sendCloseFrame, ws.STATE_CONNECTING = None, 1

    def handle_reply(protocol, message):
        pass

    assert isinstance(transport_for(functools.partial(handle_reply, ws)), DaphneTransport)

    async def uvicorn_send(message):
        pass

    assert isinstance(transport_for(uvicorn_send), AsgiTransport)
    # Something that looks like daphne but lacks a piece: the plain path, not a crash.
    del ws.sendData
    assert isinstance(transport_for(functools.partial(handle_reply, ws)), AsgiTransport)


async def test_the_asgi_transport_writes_each_frame_through_send():
    from rooms.delivery.stream import Frame

    sent = []

    async def send(message):
        sent.append(message)

    transport = AsgiTransport(send)
    transport.connecting()
    transport.accepted()

    assert await transport.write(Frame('{"type":"pong"}')) is True
    assert sent == [{"type": "websocket.send", "text": '{"type":"pong"}'}]


def test_every_daphne_attribute_the_transport_reads_exists():
    """DaphneTransport falls back to the plain path when a piece is missing; this fails
    instead, so an upgrade of daphne, Autobahn or Twisted cannot slow it down silently."""
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.internet.tcp import Connection

    from rooms.delivery import transport

    for name in transport._PROTOCOL_ATTRS:
        if name not in ("transport", "application_queue", "send_queue", "state", "failByDrop"):
            assert hasattr(WebSocketProtocol, name), name
    for name in ("pauseProducing", "resumeProducing", "write"):
        assert hasattr(Connection, name), name
    # Set per connection by Autobahn and Twisted, so read from their sources.
    from autobahn.websocket import protocol as autobahn_protocol

    autobahn_source = inspect.getsource(autobahn_protocol)
    for name in ("self.send_queue", "self.state", "self.failByDrop", "self.message_data_total_length"):
        assert name in autobahn_source, name
    from twisted.internet import abstract

    twisted_source = inspect.getsource(abstract)
    for name in ("dataBuffer", "_tempDataLen", "self.offset"):
        assert name in twisted_source, name


def test_1012_goes_out_as_a_close_frame_past_autobahns_check_and_other_codes_through_asgi():
    from autobahn.websocket.protocol import WebSocketProtocol

    frames = []
    ws = SimpleNamespace(
        STATE_CONNECTING=WebSocketProtocol.STATE_CONNECTING,
        STATE_OPEN=WebSocketProtocol.STATE_OPEN,
        state=WebSocketProtocol.STATE_OPEN,
        sendCloseFrame=lambda **frame: frames.append(frame),
    )
    transport = DaphneTransport(ws)

    assert transport.close_frame(1012) is True
    assert frames == [{"code": 1012, "isReply": False}]
    # Codes Autobahn takes from the application go through daphne as usual.
    assert transport.close_frame(4409) is False and transport.close_frame(1000) is False
    # A handshake not accepted yet is refused by daphne (HTTP 403), whatever the code.
    ws.state = WebSocketProtocol.STATE_CONNECTING
    assert transport.close_frame(1012) is False
    assert len(frames) == 1
    assert AsgiTransport(None).close_frame(1012) is False


def test_daphne_still_has_what_the_drain_relies_on():
    """Draining hooks SIGTERM once Twisted has installed its handlers, finds daphne's
    Server through the listening ports, and settles the entries daphne's shutdown
    trigger would trip over: an upgrade that changes any of it must fail here."""
    from autobahn.websocket.protocol import WebSocketProtocol
    from daphne.http_protocol import HTTPFactory
    from daphne.server import Server
    from twisted.internet import base, tcp

    assert 'details["application_instance"]' in inspect.getsource(Server.kill_all_applications)
    assert "self.server = server" in inspect.getsource(HTTPFactory.__init__)
    assert callable(tcp.Port.stopListening)
    # Twisted installs its SIGTERM handler while the reactor starts, before the
    # "after startup" triggers that callWhenRunning adds.
    assert "self._signals.install()" in inspect.getsource(base.ReactorBase._reallyStartRunning)
    # Autobahn refuses 1012 from sendClose, not from sendCloseFrame.
    assert "3000 <= code <= 4999" in inspect.getsource(WebSocketProtocol.sendClose)
    assert "3000 <= code" not in inspect.getsource(WebSocketProtocol.sendCloseFrame)


class ManualReactor:
    """Calls scheduled with callLater, run when the test says."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, object, tuple]] = []

    def callLater(self, delay, fn, *args):
        self.calls.append((delay, fn, args))

    def run_next(self):
        delay, fn, args = self.calls.pop(0)
        fn(*args)
        return delay


class CheckedProtocol:
    def __init__(self, log: list, name: int) -> None:
        self.log, self.name = log, name

    def check_timeouts(self):
        self.log.append(self.name)


def test_daphnes_connection_checks_run_a_slice_at_a_time_and_then_again(monkeypatch):
    from rooms.delivery import transport

    monkeypatch.setattr(transport, "TIMEOUT_CHECK_SLICE", 2)
    log: list = []
    reactor = ManualReactor()
    protocols = [CheckedProtocol(log, n) for n in range(5)]
    server = SimpleNamespace(connections=dict.fromkeys(protocols, {}), timeout_checker=None)
    server.timeout_checker = lambda: transport._check_connections(reactor, server)

    server.timeout_checker()
    assert log == [0, 1]
    # The loop runs what is ready before the next slice; one connection goes away.
    del server.connections[protocols[2]]
    assert reactor.run_next() == 0
    assert log == [0, 1, 3]
    assert reactor.run_next() == 0
    assert log == [0, 1, 3, 4]
    # The pass is over: the next one in daphne's 2 s.
    assert reactor.calls == [(transport.TIMEOUT_CHECK_SECONDS, server.timeout_checker, ())]


def test_daphne_still_has_what_the_spread_checks_rely_on():
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol

    # The pass reschedules itself through the instance attribute, every 2 s.
    assert "reactor.callLater(2, self.timeout_checker)" in inspect.getsource(Server.timeout_checker)
    assert "protocol.check_timeouts()" in inspect.getsource(Server.timeout_checker)
    assert callable(WebSocketProtocol.check_timeouts)


def test_autobahns_handshake_debug_text_is_made_only_when_written():
    import pprint
    import re

    from autobahn.websocket import protocol

    from rooms.delivery import transport

    source = inspect.getsource(protocol)
    # Where Autobahn uses pformat: two log arguments and Timings.__str__, which the glue
    # replaces. An upgrade that adds another use must be looked at.
    assert len(re.findall(r"\bpformat\(", source)) == 3
    assert "return pformat(self._timings)" in inspect.getsource(protocol.Timings.__str__) or (
        protocol.Timings.__str__ is transport._timings_text
    )

    transport.defer_handshake_logging()
    value = [("openHandshakeTimeout", 5, "WebSocketServerFactory")] * 3

    assert protocol.pformat is transport._Pretty
    # As Twisted's logger formats the line it writes.
    written = "\n{attrs}".format(attrs=protocol.pformat(value))  # noqa: UP032
    assert written == "\n" + pprint.pformat(value)
    timings = protocol.Timings()
    timings.track("handshake")
    assert str(timings) == pprint.pformat(timings._timings)
