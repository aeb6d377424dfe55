"""What a server process publishes to the channel layer, and how (rooms.realtime)."""

from collections import deque

from rooms.realtime import _merged


def event(room_id, seq, close_user=None):
    message = {"type": "room.event", "room": room_id, "seq": seq, "actor": 7, "text": f'{{"seq":{seq}}}'}
    if close_user:
        message["close_user"] = list(close_user)
    return (f"room.{room_id}", message)


def test_a_burst_of_room_events_is_one_message_per_room_in_order():
    control = ("site", {"type": "user.control", "users": [1], "kind": "refresh", "payload": {}})
    outgoing = deque([event(1, 5), event(2, 9), event(1, 6), control, event(1, 7, (3, 4000))])

    merged = _merged(outgoing)

    assert not outgoing
    assert merged == [
        (
            "room.1",
            {
                "type": "room.events",
                "room": 1,
                "events": [
                    [5, 7, '{"seq":5}', None, False, ()],
                    [6, 7, '{"seq":6}', None, False, ()],
                    [7, 7, '{"seq":7}', [3, 4000], False, ()],
                ],
            },
        ),
        ("room.2", {"type": "room.events", "room": 2, "events": [[9, 7, '{"seq":9}', None, False, ()]]}),
        control,
    ]
