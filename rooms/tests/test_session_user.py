"""A WebSocket's session and user: read in one hop, checked as Django checks a page's."""

import pytest
from channels.db import database_sync_to_async
from django.conf import settings

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
