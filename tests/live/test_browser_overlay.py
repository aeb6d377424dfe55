"""For streamers, in a real browser: the overlay shows what is said in the room (as a
list and as danmaku) and resumes after a drop without repeating a line, tips stand
out, room emotes render as images and hostile text stays text, the emoji picker offers
the room's emotes first, and the host finds the overlay's address in the Tools panel,
in English and Chinese.

Screenshots go to /tmp/chatsite-screens for a person to look at; they are not checked.
Each test writes its rows first and then starts the browser (see browser_helpers).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from rooms.services import do_create_room, do_grant_coins, do_send_message, do_send_tip, do_update_room
from rooms.services.emotes import check_create_emote, emote_url
from tests.live.browser_helpers import Viewer, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENS = Path("/tmp/chatsite-screens")
SCENE = {"width": 1280, "height": 720}
HOSTILE = "<img src=x onerror=alert(1)> <b>bold</b> :nope:"


def live_room(slug: str):
    host, fan = make_user(f"{slug}_host"), make_user(f"{slug}_fan")
    room = do_create_room(None, slug=slug, title="On stream", host_username=host.username)
    do_update_room(host, room_id=room.pk, is_live=True)
    return room, host, fan


def open_overlay(browser, server, room, query: str = "") -> Viewer:
    """The overlay as streaming software opens it: no cookie, a scene-sized window."""
    from playwright.sync_api import expect

    overlay = Viewer(browser, server, None, viewport=SCENE)
    overlay.page.goto(f"{server.http_url}/rooms/{room.slug}/overlay/{query}")
    expect(overlay.page.locator("#overlay")).to_have_attribute("data-state", "live")
    return overlay


def screenshot(viewer: Viewer, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    viewer.page.screenshot(path=str(SCREENS / f"{name}.png"))


def test_the_overlay_lists_what_is_said_in_the_room_with_tips_set_off(daphne_servers, login_cookie, launch_browser):
    from playwright.sync_api import expect

    room, host, fan = live_room("overlay-list")
    do_grant_coins(None, user_id=fan.pk, amount=500)
    do_send_tip(fan, room_id=room.pk, amount=100, body="for the stream", client_id="tip-1")
    (server,) = daphne_servers(1)
    cookie = login_cookie(fan)
    browser = launch_browser()

    overlay = open_overlay(browser, server, room, "?font=32")
    sender = Viewer(browser, server, cookie)
    sender.open_room(room.slug)
    sender.send("hello overlay")

    lines = overlay.page.locator("#overlay-lines")
    expect(lines.locator("li.msg .msg-body", has_text="hello overlay")).to_have_count(1)
    tip = lines.locator("li.tip")
    expect(tip).to_have_count(1)
    expect(tip).to_have_class("line tip tip-highlight overlay-line")
    expect(tip).to_contain_text("for the stream")
    # Transparent, so the stream shows through; no controls at all.
    assert overlay.page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgba(0, 0, 0, 0)"
    assert overlay.page.evaluate("getComputedStyle(document.documentElement).backgroundColor") == "rgba(0, 0, 0, 0)"
    assert overlay.page.locator("button, input, textarea, a.button").count() == 0
    assert overlay.page.evaluate("getComputedStyle(document.body).fontSize") == "32px"
    screenshot(overlay, "overlay-list")

    # A dropped connection resumes from the log: what was said meanwhile shows once.
    overlay.context.set_offline(True)
    expect(overlay.page.locator("#overlay")).not_to_have_attribute("data-state", "live")
    for text in ("while away 1", "while away 2"):
        sender.send(text)
        expect(sender.bodies(text)).to_have_count(1)
    overlay.context.set_offline(False)
    expect(overlay.page.locator("#overlay")).to_have_attribute("data-state", "live")
    sender.send("after the outage")
    for text in ("hello overlay", "while away 1", "while away 2", "after the outage"):
        expect(lines.locator("li.msg .msg-body", has_text=text)).to_have_count(1)
    assert lines.locator("li.msg").count() == 4
    assert "after=" in overlay.sockets[-1], overlay.sockets
    assert overlay.online_errors() == [] and sender.errors == []


def test_the_overlay_flies_messages_as_danmaku_in_lanes_that_never_collide(
    daphne_servers, login_cookie, launch_browser
):
    from playwright.sync_api import expect

    room, host, fan = live_room("overlay-danmaku")
    (server,) = daphne_servers(1)
    cookies = login_cookie(fan), login_cookie(host)
    browser = launch_browser()

    overlay = open_overlay(browser, server, room, "?mode=danmaku")
    sender = Viewer(browser, server, cookies[0])
    sender.open_room(room.slug)
    streamer = Viewer(browser, server, cookies[1])
    streamer.open_room(room.slug)
    texts = ["first of the burst", "second of the burst", "third of the burst"]
    for text in texts:
        sender.send(text)
    streamer.send("the host says hi")

    items = overlay.page.locator("#overlay-lines > li.danmaku-item")
    for text in [*texts, "the host says hi"]:
        expect(items.filter(has_text=text)).to_have_count(1)
    # However the lines were spread over the lanes, none overlaps another in its lane.
    overlaps = overlay.page.evaluate(
        """() => {
          const lanes = new Map();
          for (const item of document.querySelectorAll("#overlay-lines > li.danmaku-item")) {
            const box = item.getBoundingClientRect();
            const lane = lanes.get(item.dataset.lane) || [];
            lane.push(box);
            lanes.set(item.dataset.lane, lane);
          }
          let overlaps = 0;
          for (const boxes of lanes.values()) {
            for (const a of boxes) for (const b of boxes) {
              if (a !== b && a.left < b.right && b.left < a.right) overlaps += 1;
            }
          }
          return overlaps;
        }"""
    )
    assert overlaps == 0
    tops = overlay.page.evaluate(
        """() => [...document.querySelectorAll("#overlay-lines > li.danmaku-item")].map(
             (item) => [item.dataset.lane, item.style.top])"""
    )
    assert len({lane for lane, _ in tops}) == len({top for _, top in tops})
    screenshot(overlay, "overlay-danmaku")
    assert overlay.errors == [] and sender.errors == []


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def png(size=(32, 32), colour=(240, 80, 80, 255)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_emotes_render_as_images_and_hostile_text_as_text_on_the_page_and_the_overlay(
    daphne_servers, login_cookie, launch_browser, media
):
    from playwright.sync_api import expect

    room, host, fan = live_room("emotes")
    pog = check_create_emote(host, room_id=room.pk, code=":pog:", image=SimpleUploadedFile("pog.png", png()))
    check_create_emote(
        host, room_id=room.pk, code=":gg:", image=SimpleUploadedFile("gg.png", png(colour=(0, 200, 0, 255)))
    )
    do_send_message(fan, room_id=room.pk, body=f":pog: {HOSTILE} :pog:")
    (server,) = daphne_servers(1, env={"CHATSITE_MEDIA_ROOT": str(media)})
    cookies = login_cookie(fan), login_cookie(host)
    browser = launch_browser()

    overlay = open_overlay(browser, server, room)
    viewer = Viewer(browser, server, cookies[0])
    viewer.open_room(room.slug)

    for page, list_id in ((viewer.page, "#messages"), (overlay.page, "#overlay-lines")):
        body = page.locator(f"{list_id} li.msg .msg-body").first
        expect(body.locator("img.emote")).to_have_count(2)
        expect(body).to_contain_text(HOSTILE)
        images = body.locator("img.emote")
        for i in range(2):
            expect(images.nth(i)).to_have_attribute("alt", ":pog:")
            expect(images.nth(i)).to_have_attribute("src", emote_url(pog))
        # Loaded from the server, as an image.
        loaded = "(img) => img.complete && img.naturalWidth === 32"
        page.wait_for_function(f"() => [...document.querySelectorAll('{list_id} img.emote')].every({loaded})")
        assert page.locator("main img[src='x'], main b, main script").count() == 0

    # Codes are found as the server finds them; only the server's own paths become images.
    split = viewer.page.evaluate(
        """async () => {
          const { splitEmotes } = await import("/static/chat/emotes.js");
          const emotes = [{ code: ":gg:", url: "/e/gg.png" }, { code: ":pog:", url: "/e/pog.png" },
                          { code: ":evil:", url: "https://evil.example/x.png" }, { code: ":odd:", url: "//evil/x" }];
          const show = (text) => splitEmotes(text, emotes).map((p) => p.code || p.text);
          return [show(":gg::pog:"), show("a:gg:pog:b"), show(":nope: :evil: :odd:"), show("12:30:45 :gg")];
        }"""
    )
    assert split == [
        [":gg:", ":pog:"],
        ["a", ":gg:", ":pog:", "b"],
        [":nope: :evil: :odd:"],
        ["12:30:45 :gg"],
    ]

    # The picker offers the room's emotes before the emoji; one click writes the code.
    viewer.page.click("#emoji-open")
    picker = viewer.page.locator("#emoji-picker")
    first = picker.locator(".emoji-group").first
    expect(first.locator(".emoji-group-title")).to_have_text("This room's emotes")
    expect(first.locator("img.emote")).to_have_count(2)
    first.get_by_role("button", name=":gg:").click()
    viewer.page.keyboard.press("Escape")
    viewer.page.fill("#composer-body", viewer.page.input_value("#composer-body") + " good game")
    assert viewer.page.input_value("#composer-body") == ":gg: good game"
    viewer.page.press("#composer-body", "Enter")

    sent = overlay.page.locator("#overlay-lines li.msg .msg-body", has_text="good game")
    expect(sent.locator("img.emote[alt=':gg:']")).to_have_count(1)
    expect(viewer.page.locator("#messages li.msg:not(.pending) img.emote[alt=':gg:']")).to_have_count(1)
    screenshot(viewer, "emotes-room")
    screenshot(overlay, "emotes-overlay")
    assert viewer.dialogs == [] and overlay.dialogs == []
    assert viewer.errors == [] and overlay.errors == []


def test_the_host_copies_the_overlay_address_from_the_tools_panel_in_chinese(
    daphne_servers, login_cookie, launch_browser
):
    from playwright.sync_api import expect

    room, host, fan = live_room("tools")
    (server,) = daphne_servers(1)
    cookies = login_cookie(host), login_cookie(fan)
    browser = launch_browser()

    streamer = Viewer(browser, server, cookies[0])
    streamer.context.set_extra_http_headers({"Accept-Language": "zh-CN,zh;q=0.9"})
    streamer.context.grant_permissions(["clipboard-read", "clipboard-write"])
    streamer.open_room(room.slug)
    streamer.page.click("#tools-toggle")
    tool = streamer.page.locator("#tool-overlay")
    expect(tool).to_be_visible()
    expect(tool.locator(".tool-title")).to_have_text("直播叠加层")
    address = f"{server.http_url}/rooms/{room.slug}/overlay/"
    expect(streamer.page.locator("#overlay-url")).to_have_value(address)

    tool.get_by_text("弹幕").click()
    tool.get_by_text("仅显示打赏").click()
    expect(streamer.page.locator("#overlay-url")).to_have_value(f"{address}?mode=danmaku&tips=only")
    tool.get_by_role("button", name="复制").click()
    expect(streamer.toast("已复制叠加层地址。")).to_be_visible()
    assert streamer.page.evaluate("navigator.clipboard.readText()") == f"{address}?mode=danmaku&tips=only"
    expect(tool.get_by_role("link", name="弹出聊天窗口")).to_have_attribute("href", f"/rooms/{room.slug}/chat/")
    screenshot(streamer, "tools-overlay-zh")

    # A member has no such tool; the popout is the chat, working, without the site header.
    member = Viewer(browser, server, cookies[1])
    member.open_room(room.slug)
    expect(member.page.locator("#tool-overlay")).to_be_hidden()
    member.page.goto(f"{server.http_url}/rooms/{room.slug}/chat/")
    expect(member.page.locator("#conn-status")).to_have_attribute("data-state", "live")
    assert member.page.locator(".site-header").count() == 0
    member.send("from the second screen")
    expect(streamer.bodies("from the second screen")).to_have_count(1)
    screenshot(member, "popout")
    assert streamer.errors == [] and member.errors == []
