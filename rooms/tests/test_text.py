"""Invisible text: a body of zero-width characters is empty, while emoji sequences and
marks inside text survive (rooms.text)."""

import pytest

from rooms.errors import BadRequest
from rooms.models import Message
from rooms.services import check_announce, check_send_message, check_send_tip, check_update_room, do_grant_coins
from rooms.text import visible

ZERO_WIDTH_ONLY = [
    "\u200b",
    "\u200b\u200c\u200d",
    "\ufeff",
    " \u200b \u2060 \u00ad ",
    "\u200e\u200f\u202a\u202c",
    "\u2062\u2063\u2064",
    "\U000e0001\U000e0020",  # language tags
]


@pytest.mark.parametrize("text", ZERO_WIDTH_ONLY)
def test_whitespace_and_format_characters_alone_are_nothing(text):
    assert visible(text) == ""


def test_format_characters_inside_text_stay():
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert visible(f"\u200b {family} \ufeff") == family
    assert visible("a\u200bb") == "a\u200bb"
    assert visible("\u200f\u05e9\u05dc\u05d5\u05dd\u200f") == "\u05e9\u05dc\u05d5\u05dd"


@pytest.mark.django_db
@pytest.mark.parametrize("body", ZERO_WIDTH_ONLY)
def test_a_message_of_zero_width_characters_is_bad_request(room, viewer, body, broadcasts):
    with pytest.raises(BadRequest, match="cannot be empty"):
        check_send_message(viewer, room_id=room.pk, body=body, client_id="zw")
    assert not Message.objects.exists()
    assert list(broadcasts) == []


@pytest.mark.django_db
def test_an_emoji_zwj_sequence_is_stored_whole(room, viewer, django_capture_on_commit_callbacks):
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    with django_capture_on_commit_callbacks(execute=True):
        message = check_send_message(viewer, room_id=room.pk, body=f"\u200b{family}\u200b", client_id="zwj")
    assert message.body == family


@pytest.mark.django_db
def test_a_notice_of_zero_width_characters_is_bad_request(room, host):
    with pytest.raises(BadRequest):
        check_announce(host, room_id=room.pk, body="\u200b\u200d\ufeff")


@pytest.mark.django_db
def test_a_room_title_of_zero_width_characters_is_bad_request(room, host):
    with pytest.raises(BadRequest):
        check_update_room(host, room_id=room.pk, title="\u200b \u200c")


@pytest.mark.django_db
def test_a_tip_note_of_zero_width_characters_is_stored_empty(room, viewer, django_capture_on_commit_callbacks):
    do_grant_coins(None, user_id=viewer.pk, amount=10)
    with django_capture_on_commit_callbacks(execute=True):
        tip = check_send_tip(viewer, room_id=room.pk, amount=5, body="\u200b\ufeff", client_id="t1")
    assert tip.body == ""


@pytest.mark.django_db(transaction=True)
async def test_a_zero_width_body_over_the_socket_gets_bad_request(connect, room, viewer):
    client = await connect(room, viewer)

    await client.send({"type": "send", "body": "\u200b\u200c\u200d\ufeff", "client_id": "zw-1"})

    error = await client.expect("error")
    assert (error["code"], error["client_id"]) == ("bad_request", "zw-1")
