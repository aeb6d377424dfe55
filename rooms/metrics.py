"""What a server process counts, and `GET /metrics`, where Prometheus reads it.

Every metric is defined here, in prometheus_client's default registry (which also
carries the process's CPU, memory and open files). Each process serves its own numbers:
Prometheus scrapes every daphne port (docs/deploy.md, "Metrics").

Counting is kept off the per-viewer path, whose budget is a few microseconds a delivery:
the hub counts deliveries once per flush (events x viewers), socket writes are plain
integers in rooms.delivery.transport read at scrape time, and what is a level rather
than a count (queued sends, event-loop lag) is read when Prometheus asks. Labelled
children are bound once, here, rather than looked up per event.

This module is imported while logging is configured (ErrorCounter), before the apps
are loaded: it imports nothing of the project at the top.
"""

from __future__ import annotations

import ipaddress
import logging

from django.conf import settings
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

# A `_created` timestamp beside every counter doubles the scrape and tells nothing a
# process's start time does not.
disable_created_metrics()

CONNECTIONS = Gauge("chatsite_connections", "Viewers connected to this process.", ["transport"])
WEBSOCKETS = CONNECTIONS.labels(transport="websocket")
# For the server-sent-events stream: opened and closed like WEBSOCKETS.
EVENT_STREAMS = CONNECTIONS.labels(transport="sse")

EVENTS_STORED = Counter("chatsite_events_stored", "Room events this process stored (committed).")
DELIVERIES = Counter(
    "chatsite_deliveries",
    "Room and connection events this process wrote to its viewers, counted per flush: "
    "events in the flush times the room's local viewers.",
)
BATCH_EVENTS = Histogram(
    "chatsite_batch_events",
    "Events per flush of a room's feed (one frame to every local viewer).",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
WRITE_BATCH_SENDS = Histogram(
    "chatsite_write_batch_sends",
    "Sends checked and stored per transaction by a room's writer.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200),
)

COMMANDS = Counter(
    "chatsite_commands", "Client commands answered, by type and outcome (ok or the error code).", ["type", "outcome"]
)
SEND_ACK_SECONDS = Histogram(
    "chatsite_send_ack_seconds",
    "From a `send` read off the socket to its ack: the wait in the room's writer and the store.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

SHED = Counter("chatsite_shed", "Work refused or left out to stay responsive, by reason.", ["reason"])
# The writer could not store a member's send within CHAT_ADMISSION_MS: answered busy.
SHED_ADMISSION = SHED.labels(reason="admission")
# A member's connection had SENDS_IN_FLIGHT_MAX sends still being stored: answered busy.
SHED_SENDS_IN_FLIGHT = SHED.labels(reason="sends_in_flight")
# A command over the connection's command budget: answered rate_limited.
SHED_RATE_LIMITED = SHED.labels(reason="rate_limited")
# A `sync` over the connection's replay budget: answered rate_limited.
SHED_SYNC = SHED.labels(reason="sync_rate_limited")
# A publish the channel layer could not take (backlog full): viewers fill it from the log.
SHED_PUBLISH = SHED.labels(reason="publish_backlog")
# Member lines left out of live feeds faster than people read (one per line, per room).
SHED_READABLE = SHED.labels(reason="readable_feed")

CLOSES = Counter("chatsite_closes", "Connections this process closed, by WebSocket close code.", ["code"])

REDIS_ERRORS = Counter(
    "chatsite_redis_errors", "Failures with a Redis exception that this process logged (before log throttling)."
)
DATABASE_ERRORS = Counter("chatsite_database_errors", "Failures with a database exception that this process logged.")


def flushed(events: int, viewers: int) -> None:
    """A room's feed wrote one frame of `events` to `viewers` local viewers."""
    DELIVERIES.inc(events * viewers)
    BATCH_EVENTS.observe(events)


_close_children: dict[int, Counter] = {}


def closed(code: int | None) -> None:
    child = _close_children.get(code)
    if child is None:
        child = _close_children[code] = CLOSES.labels(code=str(code or 1000))
    child.inc()


_command_children: dict[tuple[str, str], Counter] = {}


def command(kind: str, outcome: str) -> None:
    """One command answered. `kind` must be a command this server knows (or "unknown",
    "invalid") and `outcome` "ok" or a protocol error code: both come from fixed sets,
    never from what a client typed."""
    key = (kind, outcome)
    child = _command_children.get(key)
    if child is None:
        child = _command_children[key] = COMMANDS.labels(type=kind, outcome=outcome)
    child.inc()


class ErrorCounter(logging.Filter):
    """Counts the logged failures that carry a Redis or database exception. A logging
    filter (on the console handler, ahead of the Redis throttle) sees every failure the
    code handles, wherever it is handled, without a counter at each place."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            from django.db import Error as DatabaseError

            from chatsite.logging import is_redis_error

            exc = record.exc_info[1]
            if is_redis_error(exc):
                REDIS_ERRORS.inc()
            elif _caused_by(exc, DatabaseError):
                DATABASE_ERRORS.inc()
        return True


def _caused_by(exc: BaseException | None, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


class _ReadAtScrape:
    """What is cheaper to read when Prometheus asks than to keep up to date."""

    def describe(self):
        return []

    def collect(self):
        from rooms import writer
        from rooms.delivery import lag, transport

        lag_gauge = GaugeMetricFamily(
            "chatsite_event_loop_lag_seconds",
            "How far behind the event loop runs: its mean delay over the last second.",
        )
        lag_gauge.add_metric([], lag.worst_lag())
        yield lag_gauge
        queued = GaugeMetricFamily(
            "chatsite_writer_queued_sends", "Sends waiting in this process's room writers to be stored."
        )
        queued.add_metric([], writer.queued_sends())
        yield queued
        writes = CounterMetricFamily(
            "chatsite_socket_writes",
            "Frames written to viewers' sockets: straight to daphne's socket (fast) or "
            "through ASGI send (asgi, any other server or daphne internals not recognised).",
            labels=["path"],
        )
        writes.add_metric(["fast"], transport.frames_written.fast)
        writes.add_metric(["asgi"], transport.frames_written.asgi)
        yield writes


REGISTRY.register(_ReadAtScrape())


# Serving.

_PROXY_HEADERS = frozenset({b"x-forwarded-for", b"forwarded", b"x-real-ip"})


def scrape_allowed(scope: dict) -> bool:
    """Whether an HTTP request may read the metrics: it came straight from an address in
    CHAT_METRICS_ALLOW, not through a proxy.

    The address checked is the peer of the TCP connection. With --proxy-headers daphne
    puts the X-Forwarded-For address in scope["client"] instead, but only when the
    header is there; so a request carrying any proxy header is refused outright. That
    keeps out both a request relayed by nginx (whose own address, loopback, would
    otherwise pass) and a client that sends X-Forwarded-For: 127.0.0.1 itself."""
    if any(name in _PROXY_HEADERS for name, _ in scope.get("headers", ())):
        return False
    client = scope.get("client")
    if not client or not client[0]:
        return False  # a Unix socket, or a server that does not say
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in settings.CHAT_METRICS_ALLOW)


class MetricsEndpoint:
    """ASGI: answers `GET /metrics` to the addresses allowed, in Prometheus text format,
    and hands every other request (a refused scrape included) to `app`, so that a
    refused one gets the site's ordinary 404. It sits in front of Django: a scrape of
    127.0.0.1:PORT needs no entry in ALLOWED_HOSTS and is never redirected to https."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == "/metrics"
            and scope["method"] in ("GET", "HEAD")
            and scrape_allowed(scope)
        ):
            body = generate_latest(REGISTRY)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        # Every name here is a classic one, so the classic format
                        # version, which every Prometheus and agent reads.
                        (b"content-type", CONTENT_TYPE_PLAIN_0_0_4.encode()),
                        (b"content-length", str(len(body)).encode()),
                        (b"cache-control", b"no-store"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
            return
        await self.app(scope, receive, send)
