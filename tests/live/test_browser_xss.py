"""Whatever people type, every place the room page shows it renders it as text: no
script runs, no element appears, in the history, live, in pins and on the room list."""

from __future__ import annotations

import pytest

from rooms.services import (
    do_announce,
    do_create_room,
    do_grant_coins,
    do_send_message,
    do_send_tip,
    do_update_room,
)
from tests.live.browser_helpers import Viewer, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(2)</script>",
    '"><svg onload=alert(3)>',
    "<a href=javascript:alert(4)>click</a>",
    "<iframe srcdoc='<script>alert(5)</script>'></iframe>",
    "{{7*7}} ${alert(6)} </textarea><b>bold</b>",
]


def test_payloads_in_titles_messages_notices_and_tip_notes_render_as_text(daphne_servers, login_cookie, launch_browser):
    from playwright.sync_api import expect

    host, fan, reader = make_user("xss_host"), make_user("xss_fan"), make_user("xss_reader")
    title = PAYLOADS[1]
    room = do_create_room(None, slug="xss-room", title=title, host_username=host.username)
    do_update_room(host, room_id=room.pk, is_live=True)
    for payload in PAYLOADS:
        do_send_message(fan, room_id=room.pk, body=payload)
    do_announce(host, room_id=room.pk, body=PAYLOADS[2], level="warning")
    do_grant_coins(None, user_id=fan.pk, amount=1000)
    do_send_tip(fan, room_id=room.pk, amount=500, body=PAYLOADS[0], client_id="xss-tip")

    (server,) = daphne_servers(1)
    cookies = login_cookie(reader), login_cookie(fan)
    browser = launch_browser()
    viewer = Viewer(browser, server, cookies[0])
    sender = Viewer(browser, server, cookies[1])
    viewer.page.goto(f"{server.http_url}/")
    expect(viewer.page.get_by_text(title, exact=True).first).to_be_visible()
    viewer.open_room(room.slug)
    for payload in PAYLOADS:
        expect(viewer.bodies(payload)).to_have_count(1)
    expect(viewer.page.get_by_text(PAYLOADS[2]).first).to_be_visible()
    expect(viewer.page.get_by_text(PAYLOADS[0]).first).to_be_visible()

    # Live too: a payload sent from another page while this one is open.
    sender.open_room(room.slug)
    sender.send(PAYLOADS[3] + " live")
    expect(viewer.bodies(PAYLOADS[3] + " live")).to_have_count(1)

    injected = viewer.page.evaluate(
        """() => document.querySelectorAll(
            'main img[src="x"], main script:not([type="application/json"]), main svg[onload], '
            + 'main iframe, main a[href^="javascript"], main b'
        ).length"""
    )
    assert injected == 0
    assert viewer.dialogs == []
    assert viewer.errors == []
