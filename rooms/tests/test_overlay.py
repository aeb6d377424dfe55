"""The overlay for streaming software and the popout chat: who may open them, their
options, and which pages other sites may frame."""

import pytest

from rooms.errors import BadRequest
from rooms.overlay import OverlayOptions, parse_overlay_options

pytestmark = pytest.mark.django_db


def overlay(client, room, **params):
    return client.get(f"/rooms/{room.slug}/overlay/", params)


def test_the_overlay_answers_an_anonymous_visitor(client, room):
    response = overlay(client, room)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-ws-path="/ws/rooms/main-stage/"' in html
    assert 'data-mode="list"' in html
    # No controls and no site chrome: nothing to sign in to, nothing to type in.
    for control in ("<form", "<button", "<input", "<textarea", "site-header"):
        assert control not in html


def test_the_overlay_of_an_unknown_room_is_404(client, db):
    assert client.get("/rooms/no-such-room/overlay/").status_code == 404


def test_the_overlay_takes_its_options_from_the_query(client, room):
    html = overlay(client, room, mode="danmaku", tips="only", font="40px", fade="12").content.decode()

    for attribute in ('data-mode="danmaku"', 'data-tips="only"', 'data-font="40"', 'data-fade="12"'):
        assert attribute in html
    assert 'class="danmaku"' in html


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"mode": "ticker"}, "`mode` is list or danmaku, not 'ticker'."),
        ({"tips": "some"}, "`tips` is all or only, not 'some'."),
        ({"font": "huge"}, "`font` is a whole number from 12 to 96, not 'huge'."),
        ({"font": "400"}, "`font` is a whole number from 12 to 96, not '400'."),
        ({"fade": "-3"}, "`fade` is a whole number from 0 to 3600, not '-3'."),
    ],
)
def test_bad_overlay_options_answer_400_saying_what_each_takes(client, room, params, says):
    response = overlay(client, room, **params)

    assert response.status_code == 400
    assert response.json() == {"error": {"code": "bad_request", "detail": says}}


def test_options_left_out_or_empty_take_their_defaults():
    assert parse_overlay_options({}) == OverlayOptions(mode="list", tips="all", font=28, fade=0)
    assert parse_overlay_options({"mode": "", "font": " "}) == OverlayOptions()
    assert parse_overlay_options({"mode": "DANMAKU", "fade": "10s"}) == OverlayOptions(mode="danmaku", fade=10)
    with pytest.raises(BadRequest):
        parse_overlay_options({"font": "２８"})


# Framing: the overlay is made to be embedded; nothing else may be.


def test_other_sites_may_frame_the_overlay(client, room):
    response = overlay(client, room)

    assert "X-Frame-Options" not in response
    csp = response["Content-Security-Policy"]
    assert "frame-ancestors *;" in csp
    # The rest of the policy stays as strict as on every page.
    assert "script-src 'self';" in csp and "default-src 'self';" in csp


def test_the_room_page_and_the_popout_may_not_be_framed(client, room):
    for path in (f"/rooms/{room.slug}/", f"/rooms/{room.slug}/chat/"):
        response = client.get(path)
        assert response["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


def test_the_sites_allowed_to_frame_the_overlay_are_a_setting(client, room, settings):
    settings.CHAT_OVERLAY_FRAME_ANCESTORS = "'self' https://studio.example.com"

    csp = overlay(client, room)["Content-Security-Policy"]

    assert "frame-ancestors 'self' https://studio.example.com;" in csp


def test_a_bad_option_answer_shows_in_the_browser_source_too(client, room):
    response = overlay(client, room, mode="nope")

    assert "frame-ancestors *" in response["Content-Security-Policy"]


# The popout chat and the host's links.


def test_the_popout_is_the_whole_chat_without_the_site_header(client, room, viewer):
    client.force_login(viewer)

    html = client.get(f"/rooms/{room.slug}/chat/").content.decode()

    assert 'id="composer"' in html and 'id="messages"' in html
    assert "site-header" not in html
    assert "page-popout" in html


def test_the_popout_of_an_unknown_room_is_404(client, db):
    assert client.get("/rooms/no-such-room/chat/").status_code == 404


def test_the_room_page_carries_the_overlay_and_popout_links_for_the_tools_panel(client, room, host):
    client.force_login(host)

    html = client.get(f"/rooms/{room.slug}/").content.decode()

    assert 'value="http://testserver/rooms/main-stage/overlay/"' in html
    assert 'href="/rooms/main-stage/chat/"' in html
    assert 'data-emotes-api="/api/rooms/main-stage/emotes"' in html
