import pytest

from conftest import make_user
from moderation import limits


@pytest.fixture(autouse=True)
def _channels_mode(request):
    # Embedded mode unless the test asks for Redis: with REDIS_URL in the environment the
    # app would otherwise talk to Redis from tests written for memory.
    if "redis_layer" not in request.fixturenames:
        request.getfixturevalue("in_memory_channels")


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Send limits are keyed by room and user id, and ids repeat across tests (SQLite
    reuses them after a rollback): each test starts with none counted. On Redis, the
    `redis_layer` fixture's key prefix keeps each test's counts apart."""
    limits._memory.reset()
    yield
    limits._memory.reset()


@pytest.fixture
def cohost(room):
    # A second host of `room`: the host's equal.
    from rooms.services import do_set_role

    user = make_user("cora_cohost")
    do_set_role(None, room_id=room.pk, username=user.username, role="host")
    return user


@pytest.fixture
def comoderator(room):
    # A second moderator of `room`: the moderator's equal.
    from rooms.services import do_set_role

    user = make_user("milo_mod")
    do_set_role(None, room_id=room.pk, username=user.username, role="moderator")
    return user


@pytest.fixture
def staff2(db):
    # Site staff through the permission rather than superuser: staff's equal.
    from django.contrib.auth.models import Permission

    user = make_user("stella_staff", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="moderate_all_rooms", content_type__app_label="rooms"))
    return user
