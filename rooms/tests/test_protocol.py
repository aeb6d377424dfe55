"""Client frames in (parse_client_frame) and the connection frames the server builds."""

import json

import pytest

from rooms.protocol import (
    MAX_ID,
    Command,
    ProtocolError,
    batch_text,
    encode,
    events,
    frames,
    iso,
    parse_client_frame,
)
from tests.support.schema import validate_event, validate_frame


def parse(frame) -> Command:
    return parse_client_frame(frame if isinstance(frame, str) else json.dumps(frame))


def refused(frame) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse(frame)
    return info.value


# Every command type.


def test_ping_carries_any_ts_back():
    assert parse({"type": "ping", "ts": 1712345678901}) == Command("ping", None, {"ts": 1712345678901})
    assert parse({"type": "ping", "ts": {"any": ["thing"]}}).args == {"ts": {"any": ["thing"]}}
    assert parse({"type": "ping"}).args == {"ts": None}


def test_ping_keeps_its_client_id():
    assert parse({"type": "ping", "ts": 1, "client_id": "p-1"}).client_id == "p-1"


def test_send_parses_body_and_optional_reply_to():
    command = parse({"type": "send", "client_id": "c1", "body": "hello"})
    assert command == Command("send", "c1", {"body": "hello", "reply_to": None})
    assert parse({"type": "send", "client_id": "c1", "body": "re", "reply_to": 42}).args == {
        "body": "re",
        "reply_to": 42,
    }


def test_send_leaves_trimming_and_body_length_to_the_service():
    # The service trims before it counts, so a padded 500-character body must get there.
    body = "   " + "x" * 500 + "   "
    assert parse({"type": "send", "client_id": "c1", "body": body}).args["body"] == body


def test_send_without_client_id_is_bad_request():
    error = refused({"type": "send", "body": "hello"})
    assert (error.code, error.client_id) == ("bad_request", None)
    assert "client_id" in error.detail


@pytest.mark.parametrize(
    "fields",
    [{}, {"body": None}, {"body": 5}, {"body": ["hi"]}, {"body": "hi", "reply_to": "7"}, {"body": "hi", "reply_to": 0}],
)
def test_send_with_missing_or_mistyped_fields_is_bad_request_with_client_id(fields):
    error = refused({"type": "send", "client_id": "c1", **fields})
    assert (error.code, error.client_id) == ("bad_request", "c1")


def test_sync_needs_a_non_negative_integer_after():
    assert parse({"type": "sync", "after": 0}).args == {"after": 0}
    assert parse({"type": "sync", "after": MAX_ID, "client_id": "s"}) == Command("sync", "s", {"after": MAX_ID})
    for after in (None, -1, "3", 3.0, MAX_ID + 1):
        assert refused({"type": "sync", "after": after, "client_id": "s"}).code == "bad_request"
    assert refused({"type": "sync"}).code == "bad_request"


def test_roster_pages_default_and_limit_at_most_200():
    assert parse({"type": "roster"}).args == {"offset": 0, "limit": 50}
    assert parse({"type": "roster", "offset": 100, "limit": 200}).args == {"offset": 100, "limit": 200}
    for fields in ({"limit": 201}, {"limit": 0}, {"offset": -1}, {"offset": None}, {"limit": "10"}):
        assert refused({"type": "roster", **fields}).code == "bad_request"


def test_delete_needs_a_message_id():
    assert parse({"type": "delete", "id": 9}).args == {"id": 9}
    for value in (None, 0, -3, "9", 9.5):
        assert refused({"type": "delete", "id": value}).code == "bad_request"


def test_mute_takes_a_user_by_id_or_name_seconds_and_reason():
    assert parse({"type": "mute", "user": 7, "seconds": 60, "reason": "spam"}).args == {
        "user": 7,
        "seconds": 60,
        "reason": "spam",
    }
    assert parse({"type": "mute", "user": "  vic  ", "seconds": 1_209_600}).args == {
        "user": "vic",
        "seconds": 1_209_600,
        "reason": "",
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"user": 7, "seconds": 0},
        {"user": 7, "seconds": 1_209_601},
        {"user": 7},
        {"user": "", "seconds": 60},
        {"user": "   ", "seconds": 60},
        {"user": 0, "seconds": 60},
        {"user": None, "seconds": 60},
        {"user": 7, "seconds": 60, "reason": "r" * 201},
        {"user": 7, "seconds": 60, "reason": 5},
    ],
)
def test_mute_out_of_range_or_mistyped_is_bad_request(fields):
    assert refused({"type": "mute", "client_id": "m", **fields}).code == "bad_request"


@pytest.mark.parametrize("kind", ["unmute", "kick", "unban", "block", "unblock"])
def test_user_only_commands_take_an_id_or_a_name(kind):
    assert parse({"type": kind, "user": 3}).args == {"user": 3}
    assert parse({"type": kind, "user": "otto"}).args == {"user": "otto"}
    assert refused({"type": kind}).code == "bad_request"
    assert refused({"type": kind, "user": "x" * 151}).code == "bad_request"


def test_ban_seconds_are_optional_for_a_permanent_ban():
    assert parse({"type": "ban", "user": 3}).args == {"user": 3, "seconds": None, "reason": ""}
    assert parse({"type": "ban", "user": 3, "seconds": 3600, "reason": "abuse"}).args == {
        "user": 3,
        "seconds": 3600,
        "reason": "abuse",
    }
    assert refused({"type": "ban", "user": 3, "seconds": 0}).code == "bad_request"


def test_slow_mode_is_0_to_120_seconds():
    assert parse({"type": "slow_mode", "seconds": 0}).args == {"seconds": 0}
    assert parse({"type": "slow_mode", "seconds": 120}).args == {"seconds": 120}
    for seconds in (121, -1, None, "5"):
        assert refused({"type": "slow_mode", "seconds": seconds}).code == "bad_request"


def test_announce_level_defaults_to_info_and_is_info_or_warning():
    assert parse({"type": "announce", "body": "Be nice"}).args == {"body": "Be nice", "level": "info"}
    assert parse({"type": "announce", "body": "Last call", "level": "warning"}).args["level"] == "warning"
    assert refused({"type": "announce", "body": "x", "level": "error"}).code == "bad_request"
    assert refused({"type": "announce"}).code == "bad_request"


def test_room_status_takes_is_live_title_or_both():
    assert parse({"type": "room_status", "is_live": True}).args == {"is_live": True}
    assert parse({"type": "room_status", "title": "New"}).args == {"title": "New"}
    assert parse({"type": "room_status", "is_live": False, "title": "Off"}).args == {"is_live": False, "title": "Off"}
    for fields in ({}, {"is_live": 1}, {"is_live": "true"}, {"title": None}, {"title": "t" * 201}):
        assert refused({"type": "room_status", **fields}).code == "bad_request"


def test_tip_passes_the_amount_through_for_the_service_to_judge():
    # invalid_amount is the service's answer for 0, -5, 1.5 and "10", so parsing keeps them.
    for amount in (10, 0, -5, 1.5, "10", None):
        assert parse({"type": "tip", "client_id": "t", "amount": amount}).args == {"amount": amount, "body": ""}
    assert parse({"type": "tip", "client_id": "t", "amount": 5, "body": "gg"}).args["body"] == "gg"
    assert refused({"type": "tip", "client_id": "t", "amount": 5, "body": "b" * 201}).code == "bad_request"


def test_tip_without_client_id_is_bad_request():
    assert refused({"type": "tip", "amount": 5}).code == "bad_request"


# Malformed frames.


@pytest.mark.parametrize("text", ["", "{", "not json", '{"type": "ping",}', "{'type': 'ping'}", "\x00"])
def test_text_that_is_not_json_is_bad_request_without_client_id(text):
    error = refused(text)
    assert (error.code, error.client_id) == ("bad_request", None)


@pytest.mark.parametrize("text", ["[]", '["ping"]', '"ping"', "42", "null", "true"])
def test_json_that_is_not_an_object_is_bad_request(text):
    assert refused(text).code == "bad_request"


def test_deeply_nested_json_is_bad_request_not_a_crash():
    assert refused("[" * 4000 + "]" * 4000).code == "bad_request"


@pytest.mark.parametrize("kind", [None, 5, ["ping"], {"a": 1}, True])
def test_missing_or_non_string_type_is_bad_request_with_client_id(kind):
    frame = {"client_id": "k"} if kind is None else {"type": kind, "client_id": "k"}
    error = refused(frame)
    assert (error.code, error.client_id) == ("bad_request", "k")


def test_unknown_type_is_unknown_type_and_keeps_the_client_id():
    error = refused({"type": "dance", "client_id": "d1"})
    assert (error.code, error.client_id) == ("unknown_type", "d1")
    assert "dance" in error.detail


def test_unknown_type_detail_quotes_at_most_40_characters():
    error = refused({"type": "z" * 1000})
    assert error.code == "unknown_type"
    assert "z" * 41 not in error.detail


@pytest.mark.parametrize("client_id", ["", "x" * 65, 5, True, ["a"], {"a": 1}])
def test_bad_client_id_is_bad_request_carrying_no_client_id(client_id):
    error = refused({"type": "ping", "client_id": client_id})
    assert (error.code, error.client_id) == ("bad_request", None)


def test_client_id_of_64_characters_is_accepted():
    assert parse({"type": "ping", "client_id": "x" * 64}).client_id == "x" * 64


@pytest.mark.parametrize("value", [True, False])
def test_bool_is_never_an_integer(value):
    assert refused({"type": "sync", "after": value}).code == "bad_request"
    assert refused({"type": "delete", "id": value}).code == "bad_request"
    assert refused({"type": "slow_mode", "seconds": value}).code == "bad_request"
    assert refused({"type": "roster", "limit": value}).code == "bad_request"
    assert refused({"type": "kick", "user": value}).code == "bad_request"


@pytest.mark.parametrize("text", [f'{{"type":"delete","id":{2**63}}}', '{"type":"delete","id":1' + "0" * 300 + "}"])
def test_integers_past_64_bits_are_bad_request(text):
    assert refused(text).code == "bad_request"


def test_float_spellings_of_integers_are_bad_request():
    for text in ('{"type":"delete","id":1e3}', '{"type":"sync","after":NaN}', '{"type":"sync","after":Infinity}'):
        assert refused(text).code == "bad_request"


def test_frame_over_8_kib_is_too_large():
    frame = json.dumps({"type": "send", "client_id": "c", "body": "x" * 8192})
    error = refused(frame)
    assert (error.code, error.client_id) == ("too_large", None)


def test_frame_over_8_kib_in_utf8_bytes_is_too_large_though_under_8192_characters():
    body = "é" * 4100  # 4100 characters, 8200 bytes
    frame = '{"type":"send","client_id":"c","body":"' + body + '"}'
    assert len(frame) < 8192 < len(frame.encode())
    assert refused(frame).code == "too_large"


def test_frame_of_exactly_8_kib_is_accepted():
    head = '{"type":"send","client_id":"c","body":"'
    frame = head + "x" * (8192 - len(head) - 2) + '"}'
    assert len(frame.encode()) == 8192
    assert parse_client_frame(frame).type == "send"


def test_binary_frame_is_bad_request():
    # The consumer hands over text_data, which is None for a binary frame.
    with pytest.raises(ProtocolError) as info:
        parse_client_frame(None)
    error = info.value
    assert (error.code, error.client_id) == ("bad_request", None)
    assert "binary" in error.detail


def test_frame_size_limit_follows_the_setting(settings):
    settings.CHAT_FRAME_MAX_BYTES = 300
    assert refused(json.dumps({"type": "ping", "ts": "x" * 300})).code == "too_large"


# Frames the server builds.


def test_error_frame_carries_code_detail_and_client_id():
    frame = json.loads(frames.error("forbidden", "Only hosts may do that.", client_id="c9"))
    assert frame == {"type": "error", "code": "forbidden", "detail": "Only hosts may do that.", "client_id": "c9"}
    validate_event(frame)


def test_error_frame_without_client_id_leaves_the_field_out():
    frame = json.loads(frames.error("bad_request", "The frame is not valid JSON."))
    assert "client_id" not in frame
    assert "retry_after" not in frame


def test_error_frame_retry_after_is_rounded_and_always_positive():
    assert json.loads(frames.error("muted", "Muted.", retry_after=12.34567))["retry_after"] == 12.346
    assert json.loads(frames.error("slow_mode", "Wait.", retry_after=0))["retry_after"] == 0.001
    assert json.loads(frames.error("rate_limited", "Slow down.", retry_after=-3))["retry_after"] == 0.001
    validate_event(json.loads(frames.error("rate_limited", "Slow down.", client_id="c", retry_after=0.0001)))


def test_ack_frame_reports_what_was_stored():
    frame = json.loads(frames.ack("c1", id=17, seq=4))
    assert frame == {"type": "ack", "client_id": "c1", "id": 17, "seq": 4}
    validate_event(frame)


def test_ack_frame_for_a_command_that_stored_nothing_has_no_id_or_seq():
    assert json.loads(frames.ack("b1")) == {"type": "ack", "client_id": "b1"}


def test_replies_carry_the_client_id_only_when_the_command_had_one():
    assert json.loads(frames.pong(ts=1, last_seq=2, client_id="p")) == {
        "type": "pong",
        "ts": 1,
        "last_seq": 2,
        "client_id": "p",
    }
    assert json.loads(frames.pong(ts=1, last_seq=2, client_id=None)) == {"type": "pong", "ts": 1, "last_seq": 2}


def test_every_frame_and_event_the_protocol_defines_has_a_schema_check():
    """The schema the tests hold the server to checks every type the protocol package
    defines, and each builder's output carries exactly the fields its definition names."""
    from tests.support import schema

    assert set(events.FIELDS) | set(frames.FIELDS) == set(schema._CHECKERS)


def test_room_event_builders_carry_their_defined_fields():
    from datetime import UTC, datetime

    user = {"id": 1, "name": "ann", "role": "member"}
    built = [
        events.message(id=1, author=user, body="hi", reply_to=None, mentions=[], client_id=None, emotes=[]),
        events.message_deleted(id=1, by=user),
        events.tip(id=1, sender=user, amount=5, body="", pinned_until=None, highlight=False, client_id="t"),
        events.notice(id=1, scope="room", level="info", body="hello", by=None, pinned_until=datetime.now(UTC)),
        events.moderation(action="kick", target=user, by=user),
        events.room(title="T", is_live=True, slow_mode_seconds=0, slow_mode_auto=False),
    ]
    assert {event.type for event in built} == set(events.FIELDS)
    for event in built:
        assert tuple(event.fields) == events.FIELDS[event.type]
        validate_event({"type": event.type, "seq": 1, "ts": "2026-01-01T00:00:00Z", **event.fields})


def test_batch_of_one_is_the_event_itself():
    text = encode({"type": "synced", "last_seq": 3})
    assert batch_text([text]) == text


def test_batch_keeps_the_encoded_events_in_order():
    texts = [encode({"type": "synced", "last_seq": n}) for n in (1, 2, 3)]
    frame = batch_text(texts)
    assert json.loads(frame) == {"type": "batch", "events": [json.loads(t) for t in texts]}
    assert [e["last_seq"] for e in validate_frame(frame)] == [1, 2, 3]


def test_encode_is_compact_and_keeps_unicode():
    assert encode({"body": "héllo 👋", "n": 1}) == '{"body":"héllo 👋","n":1}'


def test_iso_is_utc_with_z():
    from datetime import UTC, datetime

    assert iso(datetime(2024, 5, 1, 12, 30, 0, 250000, tzinfo=UTC)) == "2024-05-01T12:30:00.250000Z"
    assert iso(None) is None
