import copy
import uuid

import pytest


@pytest.fixture(autouse=True)
def _channels_mode(request):
    # Embedded mode unless the test asks for Redis: with REDIS_URL in the environment the
    # app would otherwise talk to Redis from tests written for memory.
    if "redis_layer" not in request.fixturenames:
        request.getfixturevalue("in_memory_channels")


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings):
    # Send-rate counters live in the cache, keyed by user id, and ids repeat across tests
    # (and, on Redis, across runs): each test counts in a namespace of its own. Never
    # cache.clear(): on a shared Redis that would flush keys that are not ours.
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["KEY_PREFIX"] = f"chatsite-test-{uuid.uuid4().hex[:10]}"
    if caches["default"]["BACKEND"].endswith("LocMemCache"):
        caches["default"]["LOCATION"] = caches["default"]["KEY_PREFIX"]
    settings.CACHES = caches


@pytest.fixture(autouse=True)
def _quick_presence(settings):
    # Presence deltas are coalesced for 250 ms by default; tests need not wait that long.
    settings.CHAT_PRESENCE_COALESCE_MS = 20


@pytest.fixture
def unlimited_sends(settings):
    """For tests about something else that send more than a member's 5 messages in 5 s."""
    settings.CHAT_SEND_RATE_BURST = (10_000, 5)
    settings.CHAT_SEND_RATE_SUSTAINED = (10_000, 30)
