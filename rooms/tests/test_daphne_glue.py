"""What the consumer does to daphne's objects for a WebSocket it serves."""

from types import SimpleNamespace

from twisted.internet.testing import StringTransport
from twisted.web.http import HTTPChannel

from rooms.consumers import _release_handshake


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
