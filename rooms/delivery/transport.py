"""Writing frames to one viewer's socket: the only module that touches daphne, Twisted
or Autobahn.

`transport_for(send)` picks the transport of a connection from the ASGI `send` the
server gave it; `drain_on_sigterm(drain)` makes daphne's SIGTERM drain the process
(rooms.delivery.drain) rather than stop it at once; `spread_connection_checks()` makes
daphne's periodic connection checks a slice at a time; `defer_handshake_logging()` keeps
Autobahn from formatting debug lines nobody reads.

Under daphne it is a DaphneTransport: fan-out frames are framed once for all viewers and
written straight to the socket, what a viewer that stopped reading has queued is known
(so it can be told to resume from the log instead of growing), and what a client may
send unread is bounded. Under any other ASGI server it is an
AsgiTransport: every frame goes through `send`, and the viewer's outbox bound is the
only one. The daphne, Twisted and Autobahn versions are pinned in requirements.txt, and
rooms/tests/test_daphne_glue.py fails when an upgrade moves what this relies on.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import pprint
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from rooms.delivery.stream import Frame

logger = logging.getLogger(__name__)

# Bytes the server may hold for one viewer that is not reading before it is told to
# resync from the log: bounds memory per connection whatever the room does.
BACKLOG_MAX = 1 << 20
# The largest WebSocket message read at all, as a multiple of the protocol's frame
# limit: a frame between the two still gets its `too_large` error, a larger one is
# closed with 1009 before it is buffered (daphne's own limit is 1 MiB, and it bounds
# what the server sends too: a replay or a welcome may be larger).
MESSAGE_MAX_FACTOR = 8
# Frames of one connection that have arrived but not been handled yet: past the high
# mark the socket is not read (TCP pushes back on the client) until the consumer is
# down to the low mark. Bounds what one connection can queue in memory.
INBOUND_FRAMES_HIGH = 32
INBOUND_FRAMES_LOW = 8

Send = Callable[[dict[str, Any]], Awaitable[None]]


class FramesWritten:
    """Frames written to viewers, by path: plain integers, which only the event loop
    changes, read by rooms.metrics when Prometheus asks (a Prometheus counter takes a
    lock per increment, too dear once per viewer per frame)."""

    __slots__ = ("fast", "asgi")

    def __init__(self) -> None:
        self.fast = 0
        self.asgi = 0


frames_written = FramesWritten()


class AsgiTransport:
    """Any ASGI server: frames go through `send` like every other message."""

    fast = False

    def __init__(self, send: Send) -> None:
        self._send = send

    def connecting(self) -> None:
        """Before the handshake is accepted."""

    def accepted(self) -> None:
        """Once the socket is open."""

    def frame_handled(self) -> None:
        """After the consumer handled one client frame."""

    def close_frame(self, code: int) -> bool:
        """Send the close frame with `code` itself, when closing through ASGI cannot:
        True if it did, False to close through ASGI as usual."""
        return False

    def put(self, frame: Frame) -> bool | None:
        """Write one frame at once, without awaiting: False if the viewer has too much
        unread already (it is to resume from the log), None if this transport cannot
        (then `write` it)."""
        return None

    async def write(self, frame: Frame) -> bool:
        """Write one frame; False if the viewer has too much unread already."""
        frames_written.asgi += 1
        await self._send({"type": "websocket.send", "text": frame.text})
        return True


class DaphneTransport:
    """A daphne WebSocket: Autobahn's protocol over a Twisted TCP transport."""

    fast = True

    def __init__(self, ws) -> None:
        self.ws = ws
        self.inbound_paused = False

    def connecting(self) -> None:
        ws = self.ws
        # Autobahn fails a connection (a frame over the size limit, a protocol error) by
        # dropping TCP, so the client sees 1006 and cannot tell it from a network fault;
        # with a close frame it sees why (1009 too big, 1002).
        ws.failByDrop = False
        self._limit_inbound()

    def accepted(self) -> None:
        self._release_handshake()

    def frame_handled(self) -> None:
        if self.inbound_paused and self.ws.application_queue.qsize() <= INBOUND_FRAMES_LOW:
            self.inbound_paused = False
            if self.ws.transport is not None:
                self.ws.transport.resumeProducing()

    def close_frame(self, code: int) -> bool:
        # Autobahn lets application code close with 1000 or 3000-4999 only, but a server
        # going away closes with 1012 (service restart, IANA-registered): that one frame
        # is sent the way Autobahn's sendClose sends it, without the check. (A handshake
        # not accepted yet is refused through ASGI whatever the code: HTTP 403.)
        ws = self.ws
        if code == 1000 or 3000 <= code <= 4999 or ws.state == ws.STATE_CONNECTING:
            return False
        if ws.state == ws.STATE_OPEN:
            ws.sendCloseFrame(code=code, isReply=False)
        return True

    async def write(self, frame: Frame) -> bool:
        return self.put(frame)

    def put(self, frame: Frame) -> bool:
        ws = self.ws
        transport = ws.transport
        if transport is None or ws.state != ws.STATE_OPEN:
            return True
        if len(transport.dataBuffer) - transport.offset + transport._tempDataLen > BACKLOG_MAX:
            return False
        frames_written.fast += 1
        wire = frame.wire
        if wire is None:
            wire = frame.wire = _framed(frame.text)
        if ws.send_queue:
            ws.sendData(wire)
        else:
            _write_now(transport, wire)
        return True

    def _limit_inbound(self) -> None:
        """Messages larger than MESSAGE_MAX_FACTOR protocol frames fail the connection
        (1009), and past INBOUND_FRAMES_HIGH unhandled frames the socket stops being read
        until frame_handled() sees the backlog down to INBOUND_FRAMES_LOW. Autobahn copies
        its factory's options onto each protocol when it connects, so these are per
        connection."""
        ws = self.ws
        limit = settings.CHAT_FRAME_MAX_BYTES * MESSAGE_MAX_FACTOR
        # Autobahn's message limit applies to what is sent as well, so incoming messages
        # are held to this one the way Autobahn holds them to its own: as each frame begins.
        ws.maxFramePayloadSize = limit
        frame_begins = ws.onMessageFrameBegin

        def on_message_frame_begin(length: int) -> None:
            frame_begins(length)
            if not ws.failedByMe and ws.message_data_total_length > limit:
                ws.wasMaxMessagePayloadSizeExceeded = True
                ws._max_message_size_exceeded(
                    ws.message_data_total_length, limit, f"received a WebSocket message over {limit} octets"
                )

        queue = ws.application_queue
        receive = ws.onMessage

        def on_message(payload: bytes, is_binary: bool) -> None:
            receive(payload, is_binary)
            if queue.qsize() >= INBOUND_FRAMES_HIGH and not self.inbound_paused:
                self.inbound_paused = True
                ws.transport.pauseProducing()

        ws.onMessageFrameBegin = on_message_frame_begin
        ws.onMessage = on_message

    def _release_handshake(self) -> None:
        """Let go of what daphne and Autobahn keep from the handshake for as long as the
        socket is open and never read again: ~4 KB per viewer, an eighth of its memory.

        Daphne leaves the HTTP channel it upgraded registered as the socket's producer,
        which keeps the channel and its request (headers, buffers) alive. Without it, a
        viewer whose socket backs up is still read (its pings and commands answered); the
        backlog bound covers its memory. Autobahn keeps the raw request and response
        bytes and the parsed request headers (daphne copied what it needed into the
        scope before the consumer started)."""
        from twisted.web.http import HTTPChannel

        ws = self.ws
        transport = ws.transport
        producer = getattr(transport, "producer", None)
        if isinstance(producer, HTTPChannel):
            transport.unregisterProducer()
            producer.setTimeout(None)
        for name in ("http_request_data", "http_response_data"):
            if hasattr(ws, name):
                setattr(ws, name, None)
        headers = getattr(ws, "http_headers", None)
        if isinstance(headers, dict):
            headers.clear()


Transport = AsgiTransport | DaphneTransport

# What daphne's protocol and its Twisted transport must have for DaphneTransport.
_PROTOCOL_ATTRS = (
    "transport",
    "send_queue",
    "sendData",
    "state",
    "STATE_OPEN",
    "application_queue",
    "onMessage",
    "onMessageFrameBegin",
    "failByDrop",
    "sendCloseFrame",
    "STATE_CONNECTING",
)
_TCP_ATTRS = ("dataBuffer", "offset", "_tempDataLen", "socket", "connected", "disconnecting", "pauseProducing")


def transport_for(send: Send) -> Transport:
    """The transport of a connection, from the ASGI `send` the server gave it.

    Daphne passes `send` as partial(server.handle_reply, protocol); Channels' session
    middleware wraps it (to save the session on accept) and passes websocket.send
    through as it is."""
    protocol = server_protocol(send)
    if protocol is not None and _daphne_protocol(protocol):
        return DaphneTransport(protocol)
    return AsgiTransport(send)


def server_protocol(send: Send):
    """The daphne protocol object behind an ASGI `send` (the WebSocket protocol, or the
    HTTP request), or None under another server."""
    inner = send
    while not isinstance(inner, functools.partial) and hasattr(getattr(inner, "__self__", None), "real_send"):
        inner = inner.__self__.real_send
    return inner.args[0] if isinstance(inner, functools.partial) and inner.args else None


def _daphne_protocol(protocol) -> bool:
    if not all(hasattr(protocol, name) for name in _PROTOCOL_ATTRS):
        return False
    return all(hasattr(protocol.transport, name) for name in _TCP_ATTRS)


def _framed(text: str) -> bytes:
    from autobahn.websocket.protocol import PreparedMessage

    # Server-to-client frames are unmasked, so the bytes are the same for every viewer.
    return PreparedMessage(text.encode(), False, False, True).payloadHybi


def _write_now(transport, data: bytes) -> None:
    """What daphne's send does, minus re-encoding and re-framing per viewer, and minus
    the reactor round trip: with nothing queued before it, the frame goes straight to
    the socket (one send call, where Twisted would register the socket for writability,
    wait for the next loop iteration, write, and unregister it). Whatever the kernel
    does not take is queued in the transport as usual, which keeps the order."""
    if transport._tempDataLen or len(transport.dataBuffer) - transport.offset:
        transport.write(data)
        return
    if not transport.connected or transport.disconnecting:
        return
    try:
        sent = transport.socket.send(data)
    except (BlockingIOError, InterruptedError):
        sent = 0
    except OSError:
        # Let Twisted see the broken connection and close it its usual way.
        transport.write(data)
        return
    if sent < len(data):
        transport.write(data[sent:])


# Draining under daphne.
#
# daphne runs Twisted's reactor with its signal handlers: SIGTERM stops the reactor at
# once, and daphne's "before shutdown" trigger then cancels every application, so the
# viewers see their sockets drop together. A trigger of our own cannot go first: Twisted
# calls every "before" trigger at once and only then waits for their Deferreds. So once
# the reactor runs (and has installed its handlers), SIGTERM is taken over: stop
# listening, drain, then stop the reactor the usual way. A second SIGTERM stops at once.


def drain_on_sigterm(drain: Callable[[], Awaitable[None]]) -> bool:
    """Under daphne, make SIGTERM stop accepting connections, await `drain()` and then
    stop the server; False, doing nothing, under any other server. Called when the
    application is imported, before daphne starts its reactor."""
    reactor = sys.modules.get("twisted.internet.reactor")
    if "daphne.server" not in sys.modules or reactor is None:
        return False
    reactor.callWhenRunning(_take_sigterm, reactor, drain)
    return True


def _daphne_servers(reactor) -> set:
    # daphne's Server, reached through the factories of the sockets it listens on.
    return {getattr(port.factory, "server", None) for port in _listening_ports(reactor)} - {None}


def _take_sigterm(reactor, drain: Callable[[], Awaitable[None]]) -> None:
    servers = _daphne_servers(reactor)
    began = False

    def on_sigterm(signum, frame) -> None:
        nonlocal began
        if began:
            reactor.callFromThread(_stop, reactor, servers)
            return
        began = True
        reactor.callFromThread(_begin_drain, reactor, servers, drain)

    signal.signal(signal.SIGTERM, on_sigterm)


# Connection checks under daphne.
#
# Every 2 s daphne checks each connection's timeouts and sends a WebSocket ping to those
# not pinged for --ping-interval (20 s), all in one call: at 10,000 viewers a pass holds
# the event loop for 100-300 ms (a thousand pings written, ten thousand checks), and
# every room's frames wait behind it, every 2 s. The same checks are made a slice at a
# time, the loop running what is ready between slices.

TIMEOUT_CHECK_SECONDS = 2
TIMEOUT_CHECK_SLICE = 500


def spread_connection_checks() -> bool:
    """Under daphne, make its periodic connection checks a slice at a time; False,
    doing nothing, under any other server. Called when the application is imported."""
    reactor = sys.modules.get("twisted.internet.reactor")
    if "daphne.server" not in sys.modules or reactor is None:
        return False
    reactor.callWhenRunning(_spread_connection_checks, reactor)
    return True


def _spread_connection_checks(reactor) -> None:
    for server in _daphne_servers(reactor):
        # daphne schedules its next pass as `self.timeout_checker` when a pass ends.
        server.timeout_checker = functools.partial(_check_connections, reactor, server)


def _check_connections(reactor, server, protocols: list | None = None, start: int = 0) -> None:
    """One slice of daphne's Server.timeout_checker, then the next, then the next pass."""
    if protocols is None:
        protocols = list(server.connections)
    end = start + TIMEOUT_CHECK_SLICE
    for protocol in protocols[start:end]:
        # One that went away since the pass began has nothing left to check.
        if protocol in server.connections:
            protocol.check_timeouts()
    if end < len(protocols):
        reactor.callLater(0, _check_connections, reactor, server, protocols, end)
    else:
        reactor.callLater(TIMEOUT_CHECK_SECONDS, server.timeout_checker)


# Autobahn's handshake logging.
#
# Every connection's handshake formats its ~40 options with pprint for a debug line that
# is dropped unless debug logging is on: about 8% of a connect's CPU. The same text is
# made only when the line is written.


class _Pretty:
    """pprint.pformat(value), formatted when a log line is written."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __format__(self, spec: str) -> str:
        return format(pprint.pformat(self.value), spec)

    def __str__(self) -> str:
        return pprint.pformat(self.value)


def _timings_text(timings) -> str:
    return pprint.pformat(timings._timings)


def defer_handshake_logging() -> None:
    """Make Autobahn's handshake debug lines format their values only when written."""
    from autobahn.websocket import protocol

    if protocol.pformat is pprint.pformat:
        protocol.pformat = _Pretty
        # Its one use of pformat that is not a log argument: it must return the text.
        protocol.Timings.__str__ = _timings_text


def _listening_ports(reactor) -> list:
    from twisted.internet import tcp

    # tcp.Port covers TCP, adopted descriptors (--fd) and Unix sockets alike.
    return [reader for reader in reactor.getReaders() if isinstance(reader, tcp.Port)]


def _begin_drain(reactor, servers: set, drain: Callable[[], Awaitable[None]]) -> None:
    logger.info("SIGTERM: no longer accepting connections; draining")
    # Closing the listening sockets, rather than refusing handshakes, lets a proxy send
    # the next connection to another process at once (nginx: "connection refused").
    for port in _listening_ports(reactor):
        port.stopListening()
    task = asyncio.ensure_future(drain())

    def drained(done: asyncio.Future) -> None:
        if not done.cancelled() and done.exception() is not None:
            logger.error("The drain failed; stopping anyway", exc_info=done.exception())
        _stop(reactor, servers)

    task.add_done_callback(drained)


def _stop(reactor, servers: set) -> None:
    _settle_idle_connections(servers)
    if reactor.running:
        reactor.stop()


def _settle_idle_connections(servers: set) -> None:
    """daphne's shutdown trigger (Server.kill_all_applications) reads
    connections[protocol]["application_instance"] of every entry, but an entry has none
    when no application runs for it: a request whose headers have not all arrived
    (daphne makes the entry on its first line), or the HTTP request that a WebSocket
    handshake upgraded, until daphne's once-a-second sweep removes it. The KeyError
    ended the trigger (the other applications were never cancelled) and Twisted logged
    it as CRITICAL. Such an entry gets a finished placeholder, which daphne skips."""
    loop = asyncio.get_event_loop()
    for server in servers:
        for details in server.connections.values():
            if "application_instance" not in details:
                finished = loop.create_future()
                finished.set_result(None)
                details["application_instance"] = finished
