import pytest

from moderation import limits


@pytest.fixture(autouse=True)
def _channels_mode(request):
    # Embedded mode unless the test asks for Redis: with REDIS_URL in the environment the
    # app would otherwise talk to Redis from tests written for memory.
    if "redis_layer" not in request.fixturenames:
        request.getfixturevalue("in_memory_channels")


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    # Send limits are keyed by room and user id, and ids repeat across tests: each test
    # starts with none counted. On Redis, `redis_layer`'s key prefix keeps tests apart.
    limits._memory.reset()
    yield
    limits._memory.reset()


@pytest.fixture(autouse=True)
def _quick_presence(settings):
    # Presence deltas are coalesced for 250 ms by default; tests need not wait that long.
    settings.CHAT_PRESENCE_COALESCE_MS = 20


@pytest.fixture
def unlimited_sends(settings):
    """For tests about something else that send more than a member's 5 messages in 5 s."""
    settings.CHAT_SEND_RATE_BURST = (10_000, 5)
    settings.CHAT_SEND_RATE_SUSTAINED = (10_000, 30)
