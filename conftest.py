"""Shared personas and fixtures. Each persona's comment says what it may do in `room`."""

from __future__ import annotations

import os
import uuid

import pytest
from django.contrib.auth import get_user_model

from rooms import presence

# The `broadcasts` fixture and the protocol schema checks live beside the other test support.
pytest_plugins = ["tests.support.fixtures"]


def pytest_configure(config):
    # Transactional tests empty every table afterwards. PostgreSQL's TRUNCATE makes new
    # files for each table and waits on the disk; for the handful of rows a test leaves,
    # DELETE (foreign keys are deferred to the commit) is many times faster.
    from django.db.backends.postgresql.operations import DatabaseOperations

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        return [f"DELETE FROM {self.quote_name(table)};" for table in tables]

    DatabaseOperations.sql_flush = sql_flush

    # Test data need not survive a crash of the database server: commits without the
    # wait for the disk.
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.postgresql":
        database.setdefault("OPTIONS", {})["options"] = "-c synchronous_commit=off"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Every persona is created with a password; the production hasher costs ~0.3 s each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_memory_presence():
    # The in-memory roster is per process; tests must not see each other's viewers.
    presence._memory.reset()
    yield
    presence._memory.reset()


def make_user(username: str, **extra):
    return get_user_model().objects.create_user(username=username, password="pw-" + username, **extra)


@pytest.fixture
def host(db):
    # Owns `room`: everything in it, including appointing moderators and banning.
    return make_user("hana_host")


@pytest.fixture
def room(host):
    from rooms.services import do_create_room

    return do_create_room(None, slug="main-stage", title="Main stage", host_username=host.username)


@pytest.fixture
def moderator(room):
    # Moderator of `room`: mute, kick, delete, slow mode, announcements; cannot ban.
    from rooms.services import do_set_role

    user = make_user("mo_mod")
    do_set_role(None, room_id=room.pk, username=user.username, role="moderator")
    return user


@pytest.fixture
def viewer(db):
    # A signed-in member: reads, chats, blocks, tips; moderates nobody.
    return make_user("vic_viewer")


@pytest.fixture
def outsider(db):
    # Another signed-in member, the usual target or bystander.
    return make_user("otto_outsider")


@pytest.fixture
def staff(db):
    # Site staff: every action in every room, outranks hosts.
    return make_user("sam_staff", is_staff=True, is_superuser=True)


def redis_url_for_tests() -> str | None:
    return os.environ.get("CHATSITE_TEST_REDIS_URL") or os.environ.get("REDIS_URL")


@pytest.fixture
def redis_layer(settings):
    """Switch this test to the scale-out mode: channels-redis and Redis presence, under
    a key prefix of its own."""
    url = redis_url_for_tests()
    if not url:
        pytest.skip("needs Redis: set REDIS_URL or CHATSITE_TEST_REDIS_URL")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {url} is not answering: {exc}")
    prefix = f"chatsite-test-{uuid.uuid4().hex[:10]}"
    settings.REDIS_URL = url
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [{"address": url, "socket_timeout": None, "max_connections": 10_000}],
                "prefix": prefix,
            },
        }
    }
    yield prefix
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()
