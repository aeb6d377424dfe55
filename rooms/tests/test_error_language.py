"""The server's error details speak the viewer's language: a socket's from its handshake
(the language switch's cookie, else Accept-Language), a JSON endpoint's from the request
(LocaleMiddleware). The machine-readable `code` is the same in every language.

These read the compiled catalogs (scripts/test builds the .mo files from the .po);
rooms/tests/test_catalogs.py checks that the catalogs hold every message."""

from __future__ import annotations

import pytest
from django.conf import settings

from rooms.consumers import language_of
from rooms.protocol import MAX_ID

CHINESE = [(b"accept-language", b"zh-CN,zh;q=0.9,en;q=0.5")]
ENGLISH = [(b"accept-language", b"en-US,en;q=0.9")]
EVENTS_URL = "/api/rooms/{}/events"


async def reply(client, kind: str, client_id: str):
    return await client.wait_for(lambda e: e["type"] == kind and e.get("client_id") == client_id, what=client_id)


@pytest.mark.django_db(transaction=True)
async def test_a_chinese_connection_gets_chinese_details_and_an_english_one_english_with_the_same_codes(
    connect, room, moderator, viewer
):
    mod = await connect(room, moderator)
    await mod.send({"type": "mute", "user": viewer.pk, "seconds": 600, "client_id": "m-1"})
    await reply(mod, "ack", "m-1")
    chinese = await connect(room, viewer, headers=CHINESE)
    english = await connect(room, viewer, headers=ENGLISH)

    # Sent together: the room's writer refuses both in one go, each in its own language.
    await chinese.send({"type": "send", "body": "你好", "client_id": "zh-1"})
    await english.send({"type": "send", "body": "hello", "client_id": "en-1"})
    await chinese.send({"type": "send", "body": "长" * 501, "client_id": "zh-2"})
    await chinese.send({"type": "tip", "amount": 0, "client_id": "zh-3"})

    zh_muted = await reply(chinese, "error", "zh-1")
    en_muted = await reply(english, "error", "en-1")
    assert (zh_muted["code"], zh_muted["detail"]) == ("muted", "你在这个房间被禁言了。")
    assert (en_muted["code"], en_muted["detail"]) == ("muted", "You are muted in this room.")
    assert zh_muted["retry_after"] > 0
    too_long = await reply(chinese, "error", "zh-2")
    assert (too_long["code"], too_long["detail"]) == ("bad_request", "消息最多 500 个字符。")
    amount = await reply(chinese, "error", "zh-3")
    assert (amount["code"], amount["detail"]) == ("invalid_amount", "金额必须是整数个金币，至少为 1。")


@pytest.mark.django_db(transaction=True)
async def test_the_language_switchs_cookie_wins_over_accept_language(connect, room, host):
    cookie = f"{settings.LANGUAGE_COOKIE_NAME}=zh-hans".encode()
    guest = await connect(room, headers=[(b"cookie", cookie), *ENGLISH])

    await guest.send_text("not json")
    assert await guest.expect("error") == {"type": "error", "code": "bad_request", "detail": "这一帧不是有效的 JSON。"}
    await guest.send({"type": "mute", "user": host.username, "seconds": 60, "client_id": "g-1"})
    refused = await reply(guest, "error", "g-1")
    assert (refused["code"], refused["detail"]) == ("unauthenticated", "请先登录。")


@pytest.mark.django_db(transaction=True)
async def test_a_refused_resume_point_is_explained_in_the_connections_language(connect, room):
    guest = await connect(room, query="after=soon", headers=CHINESE)

    error = await guest.expect("error")
    assert (error["code"], error["detail"]) == ("bad_request", "`after` 必须是非负整数；改为显示最新的历史记录。")


@pytest.mark.parametrize(
    ("headers", "language"),
    [
        ([], "en"),
        ([(b"accept-language", b"fr-FR,fr;q=0.9")], "en"),
        ([(b"accept-language", b"zh-CN")], "zh-hans"),
        ([(b"accept-language", b"zh-Hans-CN,zh;q=0.8")], "zh-hans"),
        ([(b"accept-language", b"fr,en;q=0.5,zh-CN;q=0.3")], "en"),
    ],
)
def test_a_handshake_picks_the_language_as_locale_middleware_does(headers, language):
    assert language_of({"headers": headers, "cookies": {}}) == language


def test_a_handshake_with_an_unknown_language_in_the_cookie_falls_back_to_accept_language():
    scope = {"headers": CHINESE, "cookies": {settings.LANGUAGE_COOKIE_NAME: "klingon"}}
    assert language_of(scope) == "zh-hans"


def test_json_api_errors_follow_accept_language_with_the_same_codes(client, room):
    missing_zh = client.get(EVENTS_URL.format("no-such-room"), HTTP_ACCEPT_LANGUAGE="zh-hans")
    missing_en = client.get(EVENTS_URL.format("no-such-room"), HTTP_ACCEPT_LANGUAGE="en")
    bad_zh = client.get(EVENTS_URL.format(room.slug), {"after": "x"}, HTTP_ACCEPT_LANGUAGE="zh-CN")
    card_zh = client.get(f"/api/rooms/{room.slug}/people/1", HTTP_ACCEPT_LANGUAGE="zh-hans")

    assert missing_zh.status_code == 404
    assert missing_zh.json() == {"error": {"code": "not_found", "detail": "没有这个房间。"}}
    assert missing_en.json() == {"error": {"code": "not_found", "detail": "No such room."}}
    assert (bad_zh.status_code, bad_zh.json()["error"]) == (
        400,
        {"code": "bad_request", "detail": f"`after` 必须是 0 到 {MAX_ID} 之间的整数。"},
    )
    assert (card_zh.status_code, card_zh.json()["error"]) == (401, {"code": "unauthenticated", "detail": "请先登录。"})


def test_a_bad_overlay_option_is_explained_in_the_streamers_language(client, room):
    url = f"/rooms/{room.slug}/overlay/"
    choice = client.get(url, {"mode": "ticker"}, HTTP_ACCEPT_LANGUAGE="zh-CN")
    number = client.get(url, {"font": "huge"}, HTTP_ACCEPT_LANGUAGE="zh-CN")

    assert (choice.status_code, choice.json()["error"]) == (
        400,
        {"code": "bad_request", "detail": "`mode` 只能是 list 或 danmaku，而不是 'ticker'。"},
    )
    detail = "`font` 必须是 12 到 96 之间的整数，而不是 'huge'。"
    assert number.json()["error"] == {"code": "bad_request", "detail": detail}
