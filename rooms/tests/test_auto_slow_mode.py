"""Automatic slow mode: engaged by the server when a room's members send faster than it
can store for a few seconds running, lifted when the rush is over, and never in the way
of a moderator's own slow mode."""

import pytest

from rooms.models import Room
from rooms.services import do_auto_slow_mode
from rooms.writer import RoomLoad

pytestmark = pytest.mark.django_db


@pytest.fixture
def changes(monkeypatch):
    made: list[int] = []

    def change(self, seconds, now):
        made.append(seconds)
        self.engaged_at = now if seconds else None
        self.overloaded_seconds = self.calm_seconds = 0

    monkeypatch.setattr(RoomLoad, "_change", change)
    return made


def offer_second(load, second, *, sends, refused, capacity=100.0):
    for i in range(sends):
        load.offered(refused=i < refused, capacity=capacity, now=second + i / (sends + 1))


def test_three_seconds_of_busy_refusals_engage_it(settings, changes):
    settings.CHAT_AUTO_SLOW_MODE_SECONDS = 10
    settings.CHAT_AUTO_SLOW_MODE_AFTER_SECONDS = 3
    load = RoomLoad(1)
    load.second = 1000

    for second in range(1000, 1003):
        offer_second(load, second, sends=50, refused=10)
    assert changes == []
    offer_second(load, 1003, sends=1, refused=0)

    assert changes == [10]


def test_a_single_busy_second_does_not(settings, changes):
    settings.CHAT_AUTO_SLOW_MODE_AFTER_SECONDS = 3
    load = RoomLoad(1)
    load.second = 1000

    offer_second(load, 1000, sends=50, refused=10)
    offer_second(load, 1001, sends=50, refused=0)
    offer_second(load, 1002, sends=50, refused=10)
    offer_second(load, 1003, sends=50, refused=0)

    assert changes == []


def test_it_is_lifted_after_the_minimum_once_the_room_is_calm(settings, changes):
    settings.CHAT_AUTO_SLOW_MODE_SECONDS = 10
    settings.CHAT_AUTO_SLOW_MODE_AFTER_SECONDS = 3
    settings.CHAT_AUTO_SLOW_MODE_MIN_SECONDS = 60
    load = RoomLoad(1)
    load.second = 1000
    for second in range(1000, 1004):
        offer_second(load, second, sends=50, refused=10)
    assert changes == [10]

    # Calm (5 sends a second where 100 fit), but not for long enough yet.
    for second in range(1004, 1050):
        offer_second(load, second, sends=5, refused=0)
    assert changes == [10]
    for second in range(1050, 1070):
        offer_second(load, second, sends=5, refused=0)

    assert changes == [10, 0]


def test_turned_off_it_never_engages(settings, changes):
    settings.CHAT_AUTO_SLOW_MODE_SECONDS = 0
    load = RoomLoad(1)
    load.second = 1000
    for second in range(1000, 1010):
        offer_second(load, second, sends=50, refused=50)
    assert changes == []


def test_engaging_sets_slow_mode_and_tells_the_room(room, broadcasts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        event = do_auto_slow_mode(None, room_id=room.pk, seconds=10)

    room.refresh_from_db()
    assert (room.slow_mode_seconds, room.slow_mode_auto) == (10, True)
    assert event is not None
    [published] = broadcasts.of_type("room")
    assert (published["slow_mode_seconds"], published["slow_mode_auto"]) == (10, True)


def test_lifting_clears_it_and_tells_the_room(room, broadcasts, django_capture_on_commit_callbacks):
    do_auto_slow_mode(None, room_id=room.pk, seconds=10)
    with django_capture_on_commit_callbacks(execute=True):
        do_auto_slow_mode(None, room_id=room.pk, seconds=0)

    room.refresh_from_db()
    assert (room.slow_mode_seconds, room.slow_mode_auto) == (0, False)
    assert broadcasts.of_type("room")[-1]["slow_mode_auto"] is False


def test_a_moderators_slow_mode_is_never_changed_by_the_server(room, moderator):
    from moderation.services import check_set_slow_mode

    check_set_slow_mode(moderator, room_id=room.pk, seconds=30)

    assert do_auto_slow_mode(None, room_id=room.pk, seconds=10) is None
    assert do_auto_slow_mode(None, room_id=room.pk, seconds=0) is None
    room.refresh_from_db()
    assert (room.slow_mode_seconds, room.slow_mode_auto) == (30, False)


def test_a_moderator_overrides_the_automatic_slow_mode(room, moderator, broadcasts, django_capture_on_commit_callbacks):
    from moderation.services import check_set_slow_mode

    do_auto_slow_mode(None, room_id=room.pk, seconds=10)
    with django_capture_on_commit_callbacks(execute=True):
        check_set_slow_mode(moderator, room_id=room.pk, seconds=0)

    room = Room.objects.get(pk=room.pk)
    assert (room.slow_mode_seconds, room.slow_mode_auto) == (0, False)
    assert broadcasts.of_type("room")[-1]["slow_mode_auto"] is False
    assert broadcasts.of_type("moderation")[-1]["seconds"] == 0
    # Off now by the moderators' choice: the server's lifting has nothing to lift.
    assert do_auto_slow_mode(None, room_id=room.pk, seconds=0) is None
