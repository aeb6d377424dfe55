"""Coins: grants into wallets and tips to a room's host.

A tip is one transaction: a conditional debit that cannot go below zero (and a database
check constraint behind it), the credit, a ledger entry for each side, the Tip row and
the `tip` room event. The unique (room, sender, client_id) makes a retry harmless.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from rooms import extensions, realtime
from rooms.errors import BadRequest, ChatError, NoSuchRoom, NotFound, Unauthenticated
from rooms.models import LedgerEntry, Room, Tip, Wallet
from rooms.protocol import events
from rooms.selectors import user_in_room
from rooms.services.events import log_event, next_seq
from rooms.text import visible


class InvalidAmount(ChatError):
    code = "invalid_amount"


class InsufficientFunds(ChatError):
    code = "insufficient_funds"


def validate_amount(amount, *, maximum: int) -> int:
    if type(amount) is not int or amount < 1:
        raise InvalidAmount(_("The amount must be a whole number of coins, at least 1."))
    if amount > maximum:
        raise InvalidAmount(format_lazy(_("The amount is at most {n} coins."), n=maximum))
    return amount


def pin_seconds(amount: int) -> int:
    for threshold, seconds in settings.CHAT_TIP_PIN_TIERS:
        if amount >= threshold:
            return seconds
    return 0


def balance_of(user_id: int | None) -> int:
    if user_id is None:
        return 0
    return Wallet.objects.filter(user_id=user_id).values_list("balance", flat=True).first() or 0


def check_send_tip(actor, *, room_id: int, amount, body: str = "", client_id: str) -> Tip:
    if not actor.is_authenticated:
        raise Unauthenticated(_("Sign in to tip."))
    existing = Tip.objects.filter(room_id=room_id, sender=actor, client_id=client_id).first()
    if existing is not None:
        return existing
    amount = validate_amount(amount, maximum=settings.CHAT_TIP_MAX)
    body = visible(body or "")
    if len(body) > 200:
        raise BadRequest(_("A tip note is at most 200 characters."))
    room = Room.objects.filter(pk=room_id).first()
    if room is None:
        raise NoSuchRoom()
    if room.owner_id == actor.pk:
        raise BadRequest(_("You cannot tip your own room."))
    restricted = extensions.restrictions(room.pk, actor.pk)
    if restricted.banned:
        raise ChatError(_("You are banned from this room."), code="banned")
    if restricted.muted_until is not None and body:
        # A note is chat: a muted viewer may still tip, silently.
        raise ChatError(
            _("You are muted; tip without a note."),
            code="muted",
            retry_after=(restricted.muted_until - timezone.now()).total_seconds(),
        )
    try:
        return do_send_tip(actor, room_id=room.pk, amount=amount, body=body, client_id=client_id)
    except IntegrityError:
        existing = Tip.objects.filter(room_id=room_id, sender=actor, client_id=client_id).first()
        if existing is None:
            raise
        return existing


@transaction.atomic
def do_send_tip(actor, *, room_id: int, amount: int, body: str, client_id: str) -> Tip:
    """Move `amount` coins from the actor's wallet to the room owner's (the actor is
    required: a tip is always someone's)."""
    room = Room.objects.select_related("owner").get(pk=room_id)
    sender_id = actor.pk
    recipient_id = room.owner_id
    # Lock both wallets in id order so two opposite tips cannot deadlock.
    for user_id in sorted({sender_id, recipient_id}):
        Wallet.objects.get_or_create(user_id=user_id)
    list(Wallet.objects.select_for_update().filter(user_id__in=[sender_id, recipient_id]).order_by("user_id"))
    debited = Wallet.objects.filter(user_id=sender_id, balance__gte=amount).update(balance=F("balance") - amount)
    if not debited:
        raise InsufficientFunds(
            format_lazy(_("You need {amount} coins; you have {balance}."), amount=amount, balance=balance_of(sender_id))
        )
    Wallet.objects.filter(user_id=recipient_id).update(balance=F("balance") + amount)
    now = timezone.now()
    seconds = pin_seconds(amount)
    pinned_until = now + timedelta(seconds=seconds) if seconds else None
    seq = next_seq(room.pk)
    tip = Tip.objects.create(
        room=room,
        sender_id=sender_id,
        recipient_id=recipient_id,
        amount=amount,
        body=body,
        client_id=client_id,
        seq=seq,
        pinned_until=pinned_until,
        created_at=now,
    )
    LedgerEntry.objects.bulk_create(
        [
            LedgerEntry(user_id=sender_id, amount=-amount, kind=LedgerEntry.Kind.TIP_SENT, tip=tip, created_at=now),
            LedgerEntry(
                user_id=recipient_id, amount=amount, kind=LedgerEntry.Kind.TIP_RECEIVED, tip=tip, created_at=now
            ),
        ]
    )
    log_event(
        room.pk,
        seq=seq,
        event=events.tip(
            id=tip.pk,
            sender=user_in_room(actor, room),
            amount=amount,
            body=body,
            pinned_until=pinned_until,
            highlight=amount >= settings.CHAT_TIP_HIGHLIGHT_MIN,
            client_id=client_id,
        ),
        actor_id=sender_id,
        at=now,
    )
    _tell_wallets([sender_id, recipient_id])
    return tip


@transaction.atomic
def do_grant_coins(actor, *, user_id: int, amount: int, note: str = "") -> Wallet:
    """Credit a wallet: `actor` is the staff member granting (an admin action), or None
    from the shell (`manage.py grant_coins`)."""
    amount = validate_amount(amount, maximum=settings.CHAT_GRANT_MAX)
    if not get_user_model().objects.filter(pk=user_id).exists():
        raise NotFound(_("No such user."))
    Wallet.objects.get_or_create(user_id=user_id)
    Wallet.objects.filter(user_id=user_id).update(balance=F("balance") + amount)
    LedgerEntry.objects.create(
        user_id=user_id,
        amount=amount,
        kind=LedgerEntry.Kind.GRANT,
        by=actor,
        note=note[:200],
        created_at=timezone.now(),
    )
    _tell_wallets([user_id])
    return Wallet.objects.get(user_id=user_id)


def _tell_wallets(user_ids: list[int]) -> None:
    """After commit, every open connection of these users learns its new balance (a
    grant in the admin, a tip sent from another tab or received)."""
    balances = dict(Wallet.objects.filter(user_id__in=user_ids).values_list("user_id", "balance"))

    def publish() -> None:
        for user_id, balance in balances.items():
            realtime.publish_user_control(user_id, "wallet", balance=balance)

    transaction.on_commit(publish)
