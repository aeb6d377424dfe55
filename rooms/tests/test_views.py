"""HTTP: pages, sign-up and sign-in, the events API and the health check."""

import json

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import SESSION_KEY, get_user_model

from conftest import make_user
from moderation.models import Block
from moderation.services import do_delete_message
from rooms import presence
from rooms.services import do_create_room, do_send_message, do_update_room
from tests.support.schema import validate_event

pytestmark = pytest.mark.django_db

EVENTS_URL = "/api/rooms/{}/events"


def be_online(room, *keys):
    for key in keys:
        entry = presence.Entry(conn_id=f"conn-{key}", user_key=f"a{key}", user=None, is_team=False)
        async_to_sync(presence.get_presence().join)(room.pk, entry)


def events_of(client, room, **params):
    response = client.get(EVENTS_URL.format(room.slug), params)
    assert response.status_code == 200, response.content
    body = response.json()
    for event in body["events"]:
        validate_event(event)
    return body


# Pages.


def test_room_list_shows_live_rooms_first_then_the_busiest(client, host, room):
    quiet = do_create_room(None, slug="quiet", title="A quiet room", host_username=host.username)
    busy = do_create_room(None, slug="busy", title="Busy room", host_username=host.username)
    do_update_room(host, room_id=room.pk, is_live=True)
    be_online(busy, 1, 2)
    be_online(room, 3)

    response = client.get("/")

    assert response.status_code == 200
    listed = [(r.slug, r.is_live, r.online) for r in response.context["rooms"]]
    assert listed == [("main-stage", True, 1), ("busy", False, 2), ("quiet", False, 0)]
    html = response.content.decode()
    assert html.index("Main stage") < html.index("Busy room") < html.index("A quiet room")
    assert "2 online" in html
    assert quiet.slug in html


def test_room_list_with_no_rooms_still_renders(client, db):
    assert client.get("/").status_code == 200


def test_room_page_renders_for_anyone(client, room):
    response = client.get(f"/rooms/{room.slug}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-ws-path="/ws/rooms/main-stage/"' in html
    assert 'data-events-api="/api/rooms/main-stage/events"' in html


def test_unknown_room_page_is_404(client, db):
    assert client.get("/rooms/no-such-room/").status_code == 404


def test_room_titles_are_rendered_as_text(client, host):
    do_create_room(None, slug="xss", title="<script>alert(1)</script>", host_username=host.username)

    for path in ("/", "/rooms/xss/"):
        html = client.get(path).content.decode()
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.parametrize("path", ["/", "/rooms/main-stage/", "/accounts/login/", "/accounts/signup/"])
def test_pages_carry_a_content_security_policy(client, room, path):
    response = client.get(path)

    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy


# Signing up, in and out.


def test_signup_creates_the_user_and_signs_them_in(client, db):
    response = client.post(
        "/accounts/signup/",
        {"username": "nina_new", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"},
    )

    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    user = get_user_model().objects.get(username="nina_new")
    assert user.check_password("a-long-pass-phrase")
    assert client.session[SESSION_KEY] == str(user.pk)


def test_signup_returns_to_a_safe_next_page_only(client, room):
    data = {"password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"}

    inside = client.post("/accounts/signup/", {**data, "username": "in_site", "next": "/rooms/main-stage/"})
    client.logout()
    outside = client.post("/accounts/signup/", {**data, "username": "off_site", "next": "https://evil.example/"})

    assert inside.headers["Location"] == "/rooms/main-stage/"
    assert outside.headers["Location"] == "/"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"username": "nina_new", "password1": "a-long-pass-phrase", "password2": "another-pass-phrase"}, "password2"),
        ({"username": "nina_new", "password1": "short", "password2": "short"}, "password2"),
        ({"username": "", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"}, "username"),
        ({"username": "vic_viewer", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"}, "username"),
        ({"username": "bad name!", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"}, "username"),
    ],
)
def test_signup_with_bad_input_shows_the_form_again_and_creates_nobody(client, viewer, data, field):
    response = client.post("/accounts/signup/", data)

    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert get_user_model().objects.count() == 1
    assert SESSION_KEY not in client.session


def test_signup_form_renders(client, db):
    response = client.get("/accounts/signup/")
    assert response.status_code == 200
    assert 'name="csrfmiddlewaretoken"' in response.content.decode()


def test_login_with_the_right_password_signs_in(client, viewer):
    response = client.post("/accounts/login/", {"username": viewer.username, "password": "pw-vic_viewer"})

    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert client.session[SESSION_KEY] == str(viewer.pk)


def test_login_with_a_wrong_password_shows_the_form_again(client, viewer):
    response = client.post("/accounts/login/", {"username": viewer.username, "password": "nope"})

    assert response.status_code == 200
    assert response.context["form"].errors
    assert SESSION_KEY not in client.session


def test_logout_signs_out(client, viewer):
    client.force_login(viewer)

    response = client.post("/accounts/logout/")

    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert SESSION_KEY not in client.session


def test_forms_need_a_csrf_token(viewer):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/accounts/login/", {"username": viewer.username, "password": "pw-vic_viewer"})

    assert response.status_code == 403


# The JavaScript catalog.

CATALOG_URL = "/jsi18n/"


@pytest.fixture
def catalog_builds(monkeypatch):
    """How many times a JavaScript catalog was built, from a cold start."""
    from django.views.i18n import JavaScriptCatalog

    from rooms import views

    monkeypatch.setattr(views, "_catalogs", {})
    builds = []
    build = JavaScriptCatalog.get_catalog

    def counted(self):
        builds.append(self.translation.language())
        return build(self)

    monkeypatch.setattr(JavaScriptCatalog, "get_catalog", counted)
    return builds


def test_the_javascript_catalog_is_built_once_and_answered_304_while_the_browser_has_it(client, catalog_builds):
    first = client.get(CATALOG_URL)
    again = client.get(CATALOG_URL)
    revalidated = client.get(CATALOG_URL, HTTP_IF_NONE_MATCH=first["ETag"])

    assert first.status_code == again.status_code == 200
    assert "django.gettext" in first.content.decode()
    assert first["Content-Type"].startswith("text/javascript")
    # The browser asks on every page, since the language may have been switched.
    assert "no-cache" in first["Cache-Control"]
    assert first["ETag"] and again["ETag"] == first["ETag"]
    assert again.content == first.content
    assert revalidated.status_code == 304
    assert revalidated.content == b""
    assert catalog_builds == ["en"]


def test_each_language_has_its_own_catalog_and_etag(client, catalog_builds, settings):
    english = client.get(CATALOG_URL, HTTP_ACCEPT_LANGUAGE="en")
    chinese = client.get(CATALOG_URL, HTTP_ACCEPT_LANGUAGE="zh-CN", HTTP_IF_NONE_MATCH=english["ETag"])
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    switched = client.get(CATALOG_URL, HTTP_ACCEPT_LANGUAGE="en", HTTP_IF_NONE_MATCH=english["ETag"])
    still = client.get(CATALOG_URL, HTTP_ACCEPT_LANGUAGE="en", HTTP_IF_NONE_MATCH=chinese["ETag"])

    # An English copy does not hold for a Chinese page, whether the browser says so or
    # the language switch's cookie does.
    assert chinese.status_code == switched.status_code == 200
    assert chinese["ETag"] != english["ETag"]
    host = json.dumps("主播")[1:-1]  # as the catalog's JSON writes it
    assert host in chinese.content.decode() and host not in english.content.decode()
    assert switched.content == chinese.content
    assert still.status_code == 304
    assert catalog_builds == ["en", "zh-hans"]


def test_the_javascript_catalog_is_read_only(client):
    assert client.post(CATALOG_URL).status_code == 405


# The events API.


def test_events_api_returns_the_log_after_n_oldest_first(client, room, host):
    for i in range(5):
        do_send_message(host, room_id=room.pk, body=f"line {i}")

    body = events_of(client, room, after=2)

    assert [e["seq"] for e in body["events"]] == [3, 4, 5]
    assert [e["body"] for e in body["events"]] == ["line 2", "line 3", "line 4"]
    assert (body["last_seq"], body["has_more"]) == (5, False)


def test_events_api_without_after_starts_at_the_beginning(client, room, host):
    do_send_message(host, room_id=room.pk, body="first")
    do_update_room(host, room_id=room.pk, is_live=True)

    body = events_of(client, room)

    assert [(e["seq"], e["type"]) for e in body["events"]] == [(1, "message"), (2, "room")]


def test_events_api_pages_with_limit(client, room, host):
    for i in range(5):
        do_send_message(host, room_id=room.pk, body=f"line {i}")

    first = events_of(client, room, limit=2)
    second = events_of(client, room, after=2, limit=2)
    last = events_of(client, room, after=4, limit=2)

    assert ([e["seq"] for e in first["events"]], first["has_more"]) == ([1, 2], True)
    assert ([e["seq"] for e in second["events"]], second["has_more"]) == ([3, 4], True)
    assert ([e["seq"] for e in last["events"]], last["has_more"]) == ([5], False)


def test_events_api_limit_defaults_to_100(client, room, host):
    for i in range(101):
        do_send_message(host, room_id=room.pk, body=f"line {i}")

    body = events_of(client, room)

    assert [e["seq"] for e in body["events"]] == list(range(1, 101))
    assert (body["last_seq"], body["has_more"]) == (101, True)


def test_events_api_accepts_a_limit_of_1000(client, room, host):
    do_send_message(host, room_id=room.pk, body="only")
    assert [e["seq"] for e in events_of(client, room, limit=1000)["events"]] == [1]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 1001},
        {"limit": 0},
        {"limit": -5},
        {"limit": "ten"},
        {"after": -1},
        {"after": "abc"},
        {"after": "1.5"},
        {"after": 2**63},
    ],
)
def test_events_api_with_bad_parameters_is_a_400_json_error(client, room, params):
    response = client.get(EVENTS_URL.format(room.slug), params)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "bad_request"
    assert error["detail"]


def test_events_api_for_an_unknown_room_is_a_404_json_error(client, db):
    response = client.get(EVENTS_URL.format("no-such-room"))

    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "detail": "No such room."}}


def test_events_api_is_read_only(client, room):
    assert client.post(EVENTS_URL.format(room.slug)).status_code == 405


def test_events_api_is_readable_without_signing_in(client, room, host):
    do_send_message(host, room_id=room.pk, body="public")

    body = events_of(client, room)

    assert [e["body"] for e in body["events"]] == ["public"]


def test_events_api_leaves_out_authors_the_signed_in_reader_blocked(client, room, host, viewer, outsider):
    do_send_message(outsider, room_id=room.pk, body="noise")
    do_send_message(host, room_id=room.pk, body="signal")
    Block.objects.create(blocker=viewer, blocked=outsider)
    client.force_login(viewer)

    body = events_of(client, room)

    assert [e["body"] for e in body["events"]] == ["signal"]
    assert body["last_seq"] == 2


def test_events_api_never_contains_a_deleted_body(client, room, host, viewer):
    secret = "my phone number is 555-0100"
    message = do_send_message(viewer, room_id=room.pk, body=secret)
    reply = do_send_message(host, room_id=room.pk, body="please do not share that", reply_to_id=message.pk)
    do_delete_message(host, message_id=message.pk)

    response = client.get(EVENTS_URL.format(room.slug))
    body = response.json()

    assert "555-0100" not in response.content.decode()
    original, quoting, deletion = body["events"]
    assert (original["id"], original["body"], original["deleted"]) == (message.pk, "", True)
    assert quoting["id"] == reply.pk
    assert (quoting["reply_to"]["excerpt"], quoting["reply_to"]["deleted"]) == ("", True)
    assert (deletion["type"], deletion["id"], deletion["seq"]) == ("message_deleted", message.pk, 3)
    for event in body["events"]:
        validate_event(event)


# Health.


def test_healthz_is_ok_without_redis_in_the_embedded_mode(client, db):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "disabled"}
    assert "no-cache" in response.headers["Cache-Control"]


def test_healthz_is_503_degraded_when_redis_is_configured_but_down(client, db, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "degraded", "database": "ok", "redis": "error"}


@pytest.mark.redis
def test_healthz_reports_redis_ok_in_the_scale_out_mode(redis_layer, client, db):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


def test_healthz_needs_no_session(client, db):
    make_user("someone")
    assert client.get("/healthz").status_code == 200
