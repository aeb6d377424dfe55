"""GET /metrics: who may read it, and that what it shows moves with what the process does."""

from __future__ import annotations

import ipaddress
import logging

import pytest
from channels.testing import ApplicationCommunicator
from prometheus_client.parser import text_string_to_metric_families

from chatsite.asgi import application
from rooms import metrics

pytestmark = pytest.mark.django_db(transaction=True)

LOOPBACK = ("127.0.0.1", 40000)


async def scrape(client=LOOPBACK, headers=(), method="GET") -> tuple[int, dict[bytes, bytes], bytes]:
    """A request for /metrics straight to the ASGI application, from `client`."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/metrics",
        "raw_path": b"/metrics",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8001"), *headers],
        "client": client,
        "server": ("127.0.0.1", 8001),
    }
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(5)
    body = b""
    while True:
        message = await communicator.receive_output(5)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await communicator.wait(5)
    return start["status"], dict(start["headers"]), body


async def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, _, body = await scrape()
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def value(found, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


# Who may read it.


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
async def test_loopback_reads_the_metrics_in_prometheus_text(address):
    status, headers, body = await scrape(client=(address, 40000))

    assert status == 200
    assert headers[b"content-type"].startswith(b"text/plain; version=0.0.4")
    names = {family.name for family in text_string_to_metric_families(body.decode())}
    assert {
        "chatsite_connections",
        "chatsite_events_stored",
        "chatsite_deliveries",
        "chatsite_commands",
        "chatsite_shed",
        "chatsite_send_ack_seconds",
        "chatsite_event_loop_lag_seconds",
        "chatsite_closes",
        "chatsite_redis_errors",
        "chatsite_database_errors",
        "chatsite_socket_writes",
        "chatsite_writer_queued_sends",
        "chatsite_batch_events",
        "chatsite_write_batch_sends",
        "process_resident_memory_bytes",
    } <= names


@pytest.mark.parametrize(
    ("client", "headers"),
    [
        (("10.1.2.3", 40000), []),
        (("203.0.113.9", 40000), []),
        # Relayed by a proxy on this machine: the TCP peer is loopback, the client is not.
        (LOOPBACK, [(b"x-forwarded-for", b"203.0.113.9")]),
        # A client that claims loopback itself (what --proxy-headers would believe).
        (LOOPBACK, [(b"x-forwarded-for", b"127.0.0.1")]),
        (LOOPBACK, [(b"forwarded", b"for=127.0.0.1")]),
        (LOOPBACK, [(b"x-real-ip", b"127.0.0.1")]),
        # A Unix socket has no peer address to check.
        (None, []),
        (["", 0], []),
    ],
)
async def test_anyone_else_gets_the_sites_ordinary_404(client, headers):
    status, _, body = await scrape(client=client, headers=headers)

    assert status == 404
    assert b"chatsite_" not in body


async def test_other_methods_get_the_sites_404(settings):
    status, _, _ = await scrape(method="DELETE")

    assert status == 404


async def test_the_allow_list_takes_networks_and_then_loopback_is_just_another_address(settings):
    settings.CHAT_METRICS_ALLOW = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))

    assert (await scrape(client=("10.200.0.7", 1)))[0] == 200
    assert (await scrape(client=("2001:db8::5", 1)))[0] == 200
    assert (await scrape(client=LOOPBACK))[0] == 404


async def test_a_head_request_gets_the_headers_alone():
    status, headers, body = await scrape(method="HEAD")

    assert status == 200 and body == b"" and int(headers[b"content-length"]) > 0


# What it shows.


async def test_a_send_over_a_real_consumer_moves_the_counters(connect, room, viewer, outsider):
    before = await samples()
    sender = await connect(room, viewer)
    reader = await connect(room, outsider)
    during = await samples()

    await sender.send({"type": "send", "body": "counted", "client_id": "m-1"})
    ack = await sender.wait_for(lambda e: e.get("type") == "ack" and e.get("client_id") == "m-1")
    await reader.wait_for(lambda e: e.get("type") == "message" and e["seq"] == ack["seq"])
    await sender.send({"type": "frobnicate", "client_id": "f-1"})
    await sender.wait_for(lambda e: e.get("type") == "error" and e.get("client_id") == "f-1")
    after = await samples()

    assert value(during, "chatsite_connections", transport="websocket") == (
        value(before, "chatsite_connections", transport="websocket") + 2
    )

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("chatsite_events_stored_total") == 1
    assert moved("chatsite_commands_total", type="send", outcome="ok") == 1
    # A frame that does not parse is counted under one label, whatever its type said.
    assert moved("chatsite_commands_total", type="invalid", outcome="unknown_type") == 1
    assert moved("chatsite_send_ack_seconds_count") == 1
    assert moved("chatsite_write_batch_sends_count") == 1
    # The message went to both viewers (and presence before it): counted per flush.
    assert moved("chatsite_deliveries_total") >= 2
    assert moved("chatsite_batch_events_count") >= 1
    # WebsocketCommunicator is not daphne: every frame took the ASGI path.
    assert moved("chatsite_socket_writes_total", path="asgi") >= 2
    assert moved("chatsite_socket_writes_total", path="fast") == 0

    await sender.disconnect()
    await reader.disconnect()
    gone = await samples()
    assert value(gone, "chatsite_connections", transport="websocket") == value(
        before, "chatsite_connections", transport="websocket"
    )


async def test_closes_are_counted_by_code(connect):
    before = await samples()

    missing = await connect("no-such-room", welcome=False)
    await missing.expect_close(4404)

    after = await samples()
    assert value(after, "chatsite_closes_total", code="4404") - value(before, "chatsite_closes_total", code="4404") == 1


async def test_a_command_over_budget_is_counted_as_shed(connect, room, viewer, settings):
    settings.CHAT_COMMANDS_BURST = 1
    settings.CHAT_COMMANDS_PER_SECOND = 1
    before = await samples()
    client = await connect(room, viewer)

    for n in range(3):
        await client.send({"type": "ping", "ts": n, "client_id": f"p-{n}"})
    await client.wait_for(lambda e: e.get("type") == "error" and e["code"] == "rate_limited")

    after = await samples()
    assert value(after, "chatsite_shed_total", reason="rate_limited") > value(
        before, "chatsite_shed_total", reason="rate_limited"
    )
    assert value(after, "chatsite_commands_total", type="ping", outcome="rate_limited") > value(
        before, "chatsite_commands_total", type="ping", outcome="rate_limited"
    )


def test_logged_redis_and_database_failures_are_counted():
    from django.db import OperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError

    counter = metrics.ErrorCounter()

    def record(exc: BaseException | None) -> logging.LogRecord:
        exc_info = (type(exc), exc, None) if exc is not None else None
        return logging.LogRecord("rooms.x", logging.WARNING, __file__, 1, "failed", None, exc_info)

    redis_before, database_before = metrics.REDIS_ERRORS._value.get(), metrics.DATABASE_ERRORS._value.get()
    wrapped = RuntimeError("publish failed")
    wrapped.__cause__ = RedisConnectionError("refused")
    for exc in (RedisConnectionError("refused"), wrapped, OperationalError("server closed"), ValueError("x"), None):
        assert counter.filter(record(exc)) is True

    assert metrics.REDIS_ERRORS._value.get() - redis_before == 2
    assert metrics.DATABASE_ERRORS._value.get() - database_before == 1
