"""Coins and tips: grants, the tip transaction, its refusals, pins, the leaderboard, and
the books always balancing, including under concurrent requests (PostgreSQL)."""

import threading
from datetime import timedelta
from io import StringIO

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Sum
from django.test import TestCase
from django.utils import timezone

from moderation.services import do_ban, do_mute
from rooms.errors import ChatError
from rooms.models import LedgerEntry, Room, RoomEvent, Tip, Wallet
from rooms.protocol import iso, parse_iso
from rooms.selectors import leaderboard, pinned_events
from rooms.services import (
    InsufficientFunds,
    InvalidAmount,
    balance_of,
    check_send_tip,
    do_create_room,
    do_grant_coins,
    do_update_room,
    pin_seconds,
)


def run(action, *args, **kwargs):
    """Call a service the way a request does: its on-commit publishing runs as it returns."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return action(*args, **kwargs)


def refused(action, *args, **kwargs) -> ChatError:
    with pytest.raises(ChatError) as info:
        run(action, *args, **kwargs)
    return info.value


def brief(user, role="member"):
    return {"id": user.pk, "name": user.get_username(), "role": role}


def without_ts(data):
    return {k: v for k, v in data.items() if k != "ts"}


def grant(user, amount):
    return do_grant_coins(None, user_id=user.pk, amount=amount, note="test coins")


def tip(user, room, amount, *, body="", client_id="t-1"):
    return run(check_send_tip, user, room_id=room.pk, amount=amount, body=body, client_id=client_id)


def books():
    """Each wallet's balance next to the sum of its ledger entries."""
    ledger = dict(LedgerEntry.objects.values("user_id").annotate(total=Sum("amount")).values_list("user_id", "total"))
    wallets = dict(Wallet.objects.values_list("user_id", "balance"))
    return wallets, ledger


def assert_books_balance():
    wallets, ledger = books()
    assert wallets == {user_id: ledger.get(user_id, 0) for user_id in wallets}
    assert set(ledger) <= set(wallets)
    assert all(balance >= 0 for balance in wallets.values())


def snapshot(room):
    room.refresh_from_db()
    return (
        room.last_seq,
        list(Tip.objects.values_list("pk", flat=True)),
        list(LedgerEntry.objects.order_by("pk").values_list("pk", "amount")),
        dict(Wallet.objects.values_list("user_id", "balance")),
    )


# Granting coins.


@pytest.mark.django_db
def test_grant_credits_the_wallet_with_a_ledger_entry(viewer, staff):
    wallet = do_grant_coins(staff, user_id=viewer.pk, amount=250, note="welcome gift")

    assert (wallet.user, wallet.balance) == (viewer, 250)
    entry = LedgerEntry.objects.get()
    assert (entry.user, entry.amount, entry.kind, entry.by, entry.note, entry.tip) == (
        viewer,
        250,
        "grant",
        staff,
        "welcome gift",
        None,
    )
    assert do_grant_coins(None, user_id=viewer.pk, amount=50).balance == 300
    assert_books_balance()


@pytest.mark.django_db
@pytest.mark.parametrize("amount", [0, -5, 1.5, "10", True, 10_000_001])
def test_grant_of_a_bad_amount_is_invalid_and_changes_nothing(viewer, amount):
    with pytest.raises(InvalidAmount):
        do_grant_coins(None, user_id=viewer.pk, amount=amount)

    assert not Wallet.objects.exists()
    assert not LedgerEntry.objects.exists()


@pytest.mark.django_db
def test_grant_to_an_unknown_user_is_not_found():
    with pytest.raises(ChatError) as info:
        do_grant_coins(None, user_id=987654, amount=10)

    assert info.value.code == "not_found"
    assert not Wallet.objects.exists() and not LedgerEntry.objects.exists()


@pytest.mark.django_db
def test_grant_coins_command_credits_and_reports_the_balance(viewer):
    out = StringIO()

    call_command("grant_coins", viewer.username, "250", "--note", "launch party", stdout=out)

    assert "vic_viewer now has 250 coins" in out.getvalue()
    assert balance_of(viewer.pk) == 250
    entry = LedgerEntry.objects.get()
    assert (entry.kind, entry.amount, entry.by, entry.note) == ("grant", 250, None, "launch party")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("username", "amount"),
    [("nobody_here", "10"), ("vic_viewer", "0"), ("vic_viewer", "-5"), ("vic_viewer", "1.5")],
    ids=["unknown-user", "zero", "negative", "fractional"],
)
def test_grant_coins_command_refuses_with_command_error_and_applies_nothing(viewer, username, amount):
    with pytest.raises(CommandError):
        call_command("grant_coins", username, amount, stdout=StringIO(), stderr=StringIO())

    assert not Wallet.objects.exists()
    assert not LedgerEntry.objects.exists()


# Tipping.


@pytest.mark.django_db
def test_tip_moves_coins_writes_both_ledger_sides_and_publishes_a_tip_event(room, host, viewer, broadcasts):
    grant(viewer, 1000)

    sent = tip(viewer, room, 100, body=" gg! ", client_id="t-1")

    assert (sent.room, sent.sender, sent.recipient, sent.amount, sent.body, sent.client_id, sent.seq) == (
        room,
        viewer,
        host,
        100,
        "gg!",
        "t-1",
        1,
    )
    assert (balance_of(viewer.pk), balance_of(host.pk)) == (900, 100)
    sides = sorted(LedgerEntry.objects.filter(tip=sent).values_list("user_id", "amount", "kind"))
    assert sides == sorted([(viewer.pk, -100, "tip_sent"), (host.pk, 100, "tip_received")])
    expected = {
        "type": "tip",
        "seq": 1,
        "id": sent.pk,
        "from": brief(viewer),
        "amount": 100,
        "body": "gg!",
        "pinned_until": iso(sent.pinned_until),
        "highlight": True,
        "client_id": "t-1",
    }
    logged = RoomEvent.objects.get(room=room, seq=1)
    assert (logged.type, logged.actor_id) == ("tip", viewer.pk)
    assert without_ts(logged.data) == expected
    assert [without_ts(e) for e in broadcasts] == [expected]
    room.refresh_from_db()
    assert room.last_seq == 1
    assert_books_balance()


@pytest.mark.django_db
def test_tip_without_enough_coins_is_insufficient_funds_and_changes_nothing(room, viewer, broadcasts):
    grant(viewer, 50)
    before = snapshot(room)

    error = refused(check_send_tip, viewer, room_id=room.pk, amount=100, body="", client_id="t-1")

    assert isinstance(error, InsufficientFunds)
    assert error.code == "insufficient_funds"
    assert snapshot(room) == before
    assert broadcasts == []


@pytest.mark.django_db
def test_tip_from_a_user_without_a_wallet_is_insufficient_funds(room, host, viewer):
    assert refused(check_send_tip, viewer, room_id=room.pk, amount=1, client_id="t-1").code == "insufficient_funds"
    assert not Tip.objects.exists()
    assert not LedgerEntry.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "amount",
    [0, -5, 1.5, "10", True, None, 100_001],
    ids=["zero", "negative", "float", "str", "bool", "none", "over-max"],
)
def test_tip_of_a_bad_amount_is_invalid_amount_and_changes_nothing(room, viewer, amount, broadcasts):
    grant(viewer, 200_000)
    before = snapshot(room)

    error = refused(check_send_tip, viewer, room_id=room.pk, amount=amount, client_id="t-1")

    assert error.code == "invalid_amount"
    assert snapshot(room) == before
    assert broadcasts == []


@pytest.mark.django_db
def test_tip_maximum_follows_the_setting(room, viewer, settings):
    settings.CHAT_TIP_MAX = 500
    grant(viewer, 1000)

    assert refused(check_send_tip, viewer, room_id=room.pk, amount=501, client_id="t-1").code == "invalid_amount"
    assert tip(viewer, room, 500, client_id="t-2").amount == 500


@pytest.mark.django_db
def test_retrying_a_tip_with_the_same_client_id_returns_it_and_debits_once(room, viewer, broadcasts):
    grant(viewer, 1000)
    first = tip(viewer, room, 100, client_id="t-1")

    again = tip(viewer, room, 100, client_id="t-1")

    assert again.pk == first.pk
    assert balance_of(viewer.pk) == 900
    assert Tip.objects.count() == 1
    assert LedgerEntry.objects.filter(kind="tip_sent").count() == 1
    assert len(broadcasts.of_type("tip")) == 1


@pytest.mark.django_db
def test_a_refused_tip_stores_nothing_so_its_client_id_can_be_tried_again(room, viewer):
    grant(viewer, 10)
    assert refused(check_send_tip, viewer, room_id=room.pk, amount=100, client_id="t-1").code == "insufficient_funds"
    grant(viewer, 100)

    sent = tip(viewer, room, 100, client_id="t-1")

    assert sent.amount == 100
    assert balance_of(viewer.pk) == 10


@pytest.mark.django_db
def test_the_same_client_id_in_another_room_is_another_tip(room, viewer, outsider):
    other = do_create_room(None, slug="side-stage", title="Side stage", host_username=outsider.username)
    grant(viewer, 100)

    tip(viewer, room, 10, client_id="t-1")
    tip(viewer, other, 10, client_id="t-1")

    assert Tip.objects.count() == 2
    assert balance_of(viewer.pk) == 80


@pytest.mark.django_db
def test_host_cannot_tip_their_own_room(room, host):
    grant(host, 100)

    error = refused(check_send_tip, host, room_id=room.pk, amount=10, client_id="t-1")

    assert error.code == "bad_request"
    assert balance_of(host.pk) == 100 and not Tip.objects.exists()


@pytest.mark.django_db
def test_banned_user_cannot_tip(room, viewer):
    grant(viewer, 100)
    do_ban(None, room_id=room.pk, target_id=viewer.pk)

    assert refused(check_send_tip, viewer, room_id=room.pk, amount=10, client_id="t-1").code == "banned"
    assert balance_of(viewer.pk) == 100 and not Tip.objects.exists()


@pytest.mark.django_db
def test_muted_user_cannot_tip_with_a_note(room, viewer):
    grant(viewer, 100)
    do_mute(None, room_id=room.pk, target_id=viewer.pk, seconds=300)

    error = refused(check_send_tip, viewer, room_id=room.pk, amount=10, body="listen to me", client_id="t-1")

    assert error.code == "muted"
    assert 0 < error.retry_after <= 300
    assert balance_of(viewer.pk) == 100 and not Tip.objects.exists()


@pytest.mark.django_db
def test_muted_user_may_still_tip_silently(room, viewer, broadcasts):
    grant(viewer, 100)
    do_mute(None, room_id=room.pk, target_id=viewer.pk, seconds=300)

    sent = tip(viewer, room, 10, body="", client_id="t-1")

    assert (sent.amount, sent.body) == (10, "")
    assert broadcasts.of_type("tip")[0]["body"] == ""


@pytest.mark.django_db
def test_tip_note_is_at_most_200_characters(room, viewer):
    grant(viewer, 100)

    assert (
        refused(check_send_tip, viewer, room_id=room.pk, amount=10, body="x" * 201, client_id="t-1").code
        == "bad_request"
    )
    assert tip(viewer, room, 10, body="x" * 200, client_id="t-2").body == "x" * 200


@pytest.mark.django_db
def test_anonymous_cannot_tip(room):
    assert (
        refused(check_send_tip, AnonymousUser(), room_id=room.pk, amount=10, client_id="t-1").code == "unauthenticated"
    )


@pytest.mark.django_db
def test_tip_to_an_unknown_room_is_not_found(viewer):
    grant(viewer, 100)

    assert refused(check_send_tip, viewer, room_id=424242, amount=10, client_id="t-1").code == "not_found"
    assert balance_of(viewer.pk) == 100


# Highlights and pins.


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("amount", "highlight", "pinned_seconds"),
    [
        (9, False, None),
        (10, True, None),
        (49, True, None),
        (50, True, 60),
        (99, True, 60),
        (100, True, 120),
        (500, True, 600),
        (999, True, 600),
        (1000, True, 1800),
        (5000, True, 1800),
    ],
)
def test_tip_tiers_decide_highlight_and_how_long_it_stays_pinned(room, viewer, amount, highlight, pinned_seconds):
    grant(viewer, 10_000)

    sent = tip(viewer, room, amount)

    event = RoomEvent.objects.get(room=room, seq=sent.seq).data
    assert event["highlight"] is highlight
    assert pin_seconds(amount) == (pinned_seconds or 0)
    if pinned_seconds is None:
        assert sent.pinned_until is None and event["pinned_until"] is None
    else:
        assert sent.pinned_until - sent.created_at == timedelta(seconds=pinned_seconds)
        assert event["pinned_until"] == iso(sent.pinned_until)


@pytest.mark.django_db
def test_pinned_tips_are_listed_until_their_pin_runs_out(room, viewer, outsider):
    grant(viewer, 1000)
    small = tip(viewer, room, 10, client_id="small")
    pinned = tip(viewer, room, 100, client_id="big")

    assert [e["id"] for e in pinned_events(room.pk, blocked=set())] == [pinned.pk]
    assert pinned_events(room.pk, blocked={viewer.pk}) == []

    # Time travel: the pin ran out a second ago.
    expire_pin(room, pinned, timezone.now() - timedelta(seconds=1))

    assert pinned_events(room.pk, blocked=set()) == []
    assert small.pinned_until is None


def expire_pin(room, sent, when):
    Tip.objects.filter(pk=sent.pk).update(pinned_until=when)
    event = RoomEvent.objects.get(room=room, seq=sent.seq)
    event.data["pinned_until"] = iso(when)
    event.save(update_fields=["data"])


@pytest.mark.django_db
def test_a_pin_ending_on_a_whole_second_is_gone_right_after(room, viewer, monkeypatch):
    grant(viewer, 1000)
    pinned = tip(viewer, room, 100)
    ended = timezone.now().replace(microsecond=0) - timedelta(seconds=5)
    expire_pin(room, pinned, ended)
    monkeypatch.setattr(timezone, "now", lambda: ended + timedelta(microseconds=500_000))

    assert pinned_events(room.pk, blocked=set()) == []


# The leaderboard.


@pytest.mark.django_db
def test_leaderboard_ranks_tippers_for_this_stream_and_all_time(room, host, viewer, outsider):
    grant(viewer, 1000)
    grant(outsider, 1000)
    tip(viewer, room, 100, client_id="v-early")
    tip(outsider, room, 50, client_id="o-early")
    assert leaderboard(room)["stream"] == []
    # Time travel: those tips came an hour before this stream went live.
    Tip.objects.update(created_at=timezone.now() - timedelta(hours=1))
    do_update_room(host, room_id=room.pk, is_live=True)
    tip(outsider, room, 200, client_id="o-live")
    tip(outsider, room, 5, client_id="o-live-2")

    board = leaderboard(Room.objects.get(pk=room.pk))

    assert board["stream"] == [{"id": outsider.pk, "name": outsider.username, "total": 205, "tips": 2}]
    assert board["all_time"] == [
        {"id": outsider.pk, "name": outsider.username, "total": 255, "tips": 3},
        {"id": viewer.pk, "name": viewer.username, "total": 100, "tips": 1},
    ]


@pytest.mark.django_db
def test_a_new_stream_starts_a_new_leaderboard(room, host, viewer):
    grant(viewer, 1000)
    do_update_room(host, room_id=room.pk, is_live=True)
    tip(viewer, room, 100)
    Tip.objects.update(created_at=timezone.now() - timedelta(hours=1))
    do_update_room(host, room_id=room.pk, is_live=False)

    do_update_room(host, room_id=room.pk, is_live=True)

    board = leaderboard(Room.objects.get(pk=room.pk))
    assert board["stream"] == []
    assert board["all_time"][0]["total"] == 100


@pytest.mark.django_db
def test_the_ledger_always_sums_to_the_wallet_balances(room, host, viewer, outsider, staff):
    other = do_create_room(None, slug="side-stage", title="Side stage", host_username=outsider.username)
    grant(viewer, 500)
    grant(outsider, 300)
    grant(staff, 50)
    tip(viewer, room, 120, client_id="a")
    tip(viewer, other, 80, client_id="b")
    tip(outsider, room, 300, client_id="c")
    tip(host, other, 100, client_id="d")
    refused(check_send_tip, staff, room_id=room.pk, amount=51, client_id="e")
    tip(staff, other, 50, client_id="f")

    assert_books_balance()
    assert dict(Wallet.objects.values_list("user_id", "balance")) == {
        viewer.pk: 300,
        outsider.pk: 80 + 100 + 50,
        staff.pk: 0,
        host.pk: 120 + 300 - 100,
    }
    assert LedgerEntry.objects.aggregate(total=Sum("amount"))["total"] == 500 + 300 + 50


# Concurrency (PostgreSQL: SQLite serializes every writer, so these prove nothing there).


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL")


def at_once(count, work):
    """Run work(i) in `count` threads released together; each result or exception."""
    barrier = threading.Barrier(count)
    results = [None] * count

    def worker(i):
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - the test inspects what each thread got
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a tip request hung"
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_identical_tip_requests_at_once_store_one_tip_and_debit_once(postgres_only, room, viewer):
    grant(viewer, 1000)

    results = at_once(50, lambda i: check_send_tip(viewer, room_id=room.pk, amount=10, client_id="same"))

    assert [r for r in results if not isinstance(r, Tip)] == []
    assert {r.pk for r in results} == {Tip.objects.get().pk}
    assert balance_of(viewer.pk) == 990
    assert LedgerEntry.objects.filter(kind="tip_sent").count() == 1
    assert Room.objects.get(pk=room.pk).last_seq == 1
    assert_books_balance()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_different_tips_beyond_the_balance_never_overdraw(postgres_only, room, host, viewer):
    grant(viewer, 1000)

    results = at_once(50, lambda i: check_send_tip(viewer, room_id=room.pk, amount=30, client_id=f"t-{i}"))

    tips = [r for r in results if isinstance(r, Tip)]
    refusals = [r for r in results if not isinstance(r, Tip)]
    assert len(tips) == 33
    assert all(isinstance(r, InsufficientFunds) for r in refusals) and len(refusals) == 17
    assert (balance_of(viewer.pk), balance_of(host.pk)) == (10, 990)
    assert Tip.objects.count() == 33
    assert_books_balance()
    # Every stored tip has its event, at gapless seqs.
    assert sorted(Tip.objects.values_list("seq", flat=True)) == list(range(1, 34))
    assert Room.objects.get(pk=room.pk).last_seq == 33


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_coins_cannot_be_spent_in_two_rooms_at_once(postgres_only, room, viewer, outsider):
    other = do_create_room(None, slug="side-stage", title="Side stage", host_username=outsider.username)
    rooms = [room, other]

    for attempt in range(5):
        grant(viewer, 100)
        results = at_once(
            2, lambda i, a=attempt: check_send_tip(viewer, room_id=rooms[i].pk, amount=100, client_id=f"r{a}")
        )

        assert sorted(type(r).__name__ for r in results) == ["InsufficientFunds", "Tip"]
        assert balance_of(viewer.pk) == 0
    assert Tip.objects.count() == 5
    assert_books_balance()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_retry_after_a_lost_ack_returns_the_stored_tip_without_a_second_debit(postgres_only, room, viewer):
    grant(viewer, 1000)
    # The first attempt commits on one connection; its ack never reaches the client.
    [first] = at_once(1, lambda i: check_send_tip(viewer, room_id=room.pk, amount=100, client_id="lost-ack"))

    retried = check_send_tip(viewer, room_id=room.pk, amount=100, client_id="lost-ack")

    assert isinstance(first, Tip) and retried.pk == first.pk
    assert balance_of(viewer.pk) == 900
    assert Tip.objects.count() == 1
    assert RoomEvent.objects.filter(room=room, type="tip").count() == 1
    assert_books_balance()


# Over the socket.


async def until(client, kind, **fields):
    def matches(event):
        return event["type"] == kind and all(event.get(k) == v for k, v in fields.items())

    for event in client.events:
        if matches(event):
            return event
    event, _ = await client.receive_until(matches, what=f"a {kind!r} event with {fields}")
    return event


@pytest.mark.django_db(transaction=True)
async def test_tip_over_the_socket_is_acked_with_balance_and_reaches_the_room(connect, room, host, viewer):
    await database_sync_to_async(grant)(viewer, 500)
    hana = await connect(room, host)
    vic = await connect(room, viewer)
    assert vic.welcome["you"]["balance"] == 500

    await vic.send({"type": "tip", "amount": 100, "body": "love the stream", "client_id": "t-1"})

    ack = await until(vic, "ack", client_id="t-1")
    stored = await database_sync_to_async(Tip.objects.get)()
    assert (ack["id"], ack["seq"], ack["balance"]) == (stored.pk, stored.seq, 400)
    event = await until(hana, "tip", id=stored.pk)
    assert (event["seq"], event["amount"], event["body"], event["from"]) == (
        ack["seq"],
        100,
        "love the stream",
        brief(viewer),
    )
    assert event["pinned_until"] == iso(stored.pinned_until)
    assert await database_sync_to_async(balance_of)(host.pk) == 100

    await vic.send({"type": "tip", "amount": 100, "body": "love the stream", "client_id": "t-1"})

    again = await until(vic, "ack", client_id="t-1", balance=400)
    assert again["id"] == stored.pk
    assert await database_sync_to_async(Tip.objects.count)() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"amount": 1.5}, "invalid_amount"),
        ({"amount": "10"}, "invalid_amount"),
        ({"amount": 0}, "invalid_amount"),
        ({}, "invalid_amount"),
        ({"amount": 5000}, "insufficient_funds"),
    ],
    ids=["float", "str", "zero", "missing", "too-much"],
)
async def test_refused_tip_over_the_socket_gets_an_error_with_its_client_id(connect, room, viewer, frame, code):
    await database_sync_to_async(grant)(viewer, 100)
    vic = await connect(room, viewer)

    await vic.send({"type": "tip", "client_id": "t-1", **frame})

    error = await until(vic, "error", client_id="t-1")
    assert error["code"] == code
    assert await database_sync_to_async(balance_of)(viewer.pk) == 100
    assert not await database_sync_to_async(Tip.objects.exists)()


@pytest.mark.django_db(transaction=True)
async def test_welcome_lists_a_pinned_tip_until_its_pin_ends(connect, room, viewer, outsider, monkeypatch):
    def setup():
        grant(viewer, 1000)
        return run(check_send_tip, viewer, room_id=room.pk, amount=100, client_id="t-1")

    pinned = await database_sync_to_async(setup)()

    first = await connect(room, outsider)

    assert [(e["type"], e["id"]) for e in first.welcome["pinned"]] == [("tip", pinned.pk)]
    # The pin ends by the clock alone: no event tells the room's welcome snapshot.
    after_the_pin = parse_iso(first.welcome["pinned"][0]["pinned_until"]) + timedelta(seconds=1)
    monkeypatch.setattr(timezone, "now", lambda: after_the_pin)
    later = await connect(room, outsider)
    assert later.welcome["pinned"] == []
