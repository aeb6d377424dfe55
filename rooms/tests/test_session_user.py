"""A WebSocket's session and user: read in one hop, checked as Django checks a page's."""

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.backends import ModelBackend

from conftest import make_user
from rooms import middleware
from tests.support.fixtures import create_session

pytestmark = pytest.mark.django_db(transaction=True)


async def scope_seen(headers):
    seen = {}

    async def app(scope, receive, send):
        seen.update(scope)

    await middleware.SessionUserMiddleware(app)({"type": "websocket", "headers": headers}, None, None)
    return seen


def cookie(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"cookie", f"theme=dark; {settings.SESSION_COOKIE_NAME}={key}".encode())]


async def test_a_signed_in_visitor_is_their_user_with_their_session():
    user = await database_sync_to_async(make_user)("sam_session")
    key = await database_sync_to_async(create_session)(user)

    scope = await scope_seen(cookie(key))

    assert scope["user"].pk == user.pk
    assert scope["session"].session_key == key
    assert scope["cookies"]["theme"] == "dark"


async def test_without_a_session_cookie_nothing_is_read(monkeypatch):
    monkeypatch.setattr(middleware, "_session_and_user", None)  # would fail if called

    scope = await scope_seen([(b"cookie", b"theme=dark")])

    assert not scope["user"].is_authenticated
    assert scope["session"].session_key is None


async def test_an_unknown_session_is_anonymous():
    scope = await scope_seen(cookie("no-such-session"))

    assert not scope["user"].is_authenticated


async def test_a_session_ended_by_a_password_change_is_anonymous():
    user = await database_sync_to_async(make_user)("pat_password")
    key = await database_sync_to_async(create_session)(user)

    def change_password():
        user.set_password("a-new-password-1")
        user.save()

    await database_sync_to_async(change_password)()
    scope = await scope_seen(cookie(key))

    assert not scope["user"].is_authenticated


def queries_for(key):
    """The user `_session_and_user` finds for `key`, and the queries it made."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        _session, user = middleware._session_and_user(key)
    return user, len(captured)


@pytest.fixture
def known_sessions():
    middleware._known_sessions.clear()
    yield middleware._known_sessions
    middleware._known_sessions.clear()


def test_a_session_read_before_costs_one_query(known_sessions):
    user = make_user("kim_known")
    key = create_session(user)

    first, first_queries = queries_for(key)
    again, again_queries = queries_for(key)

    assert first.pk == again.pk == user.pk
    assert (first_queries, again_queries) == (2, 1)


def test_a_known_session_that_logged_out_is_anonymous_at_once(known_sessions):
    from django.contrib.sessions.models import Session

    key = create_session(make_user("lou_logout"))
    queries_for(key)
    Session.objects.filter(session_key=key).delete()

    user, _ = queries_for(key)

    assert not user.is_authenticated
    assert known_sessions.get(key) is None


def test_a_known_session_past_its_expiry_is_anonymous(known_sessions):
    from datetime import timedelta

    from django.contrib.sessions.models import Session
    from django.utils import timezone

    key = create_session(make_user("eve_expired"))
    queries_for(key)
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(seconds=1))

    user, _ = queries_for(key)

    assert not user.is_authenticated


def test_a_known_session_ended_by_a_password_change_or_deactivation_is_anonymous(known_sessions):
    changed = make_user("pia_changed")
    deactivated = make_user("dan_deactivated")
    keys = [create_session(changed), create_session(deactivated)]
    for key in keys:
        queries_for(key)

    changed.set_password("a-new-password-2")
    changed.save()
    deactivated.is_active = False
    deactivated.save()

    assert [queries_for(key)[0].is_authenticated for key in keys] == [False, False]


def test_a_known_session_carried_on_by_a_password_change_of_its_own_stays_signed_in(known_sessions):
    from django.contrib.auth import HASH_SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    user = make_user("cal_carried")
    key = create_session(user)
    queries_for(key)
    # What update_session_auth_hash does for the session that changed the password.
    user.set_password("a-new-password-3")
    user.save()
    session = SessionStore(key)
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()

    again, _ = queries_for(key)
    still, queries = queries_for(key)

    assert again.pk == still.pk == user.pk
    assert queries == 1


class StricterBackend(ModelBackend):
    """A backend that checks more when it reads a user: never the one-query path."""

    def get_user(self, user_id):
        return super().get_user(user_id)


def test_a_backend_with_its_own_user_reading_is_always_asked(known_sessions, settings):
    settings.AUTHENTICATION_BACKENDS = ["rooms.tests.test_session_user.StricterBackend"]
    key = create_session(make_user("sol_stricter"))

    first, first_queries = queries_for(key)
    again, again_queries = queries_for(key)

    assert first.pk == again.pk
    assert (first_queries, again_queries) == (2, 2)
