import uuid
from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class Room(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    # The streamer: receives tips and always holds the host role.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_rooms")
    is_live = models.BooleanField(default=False)
    # When the current (or last) stream started: "this stream" on the tip leaderboard.
    live_since = models.DateTimeField(null=True, blank=True)
    slow_mode_seconds = models.PositiveSmallIntegerField(default=0)
    # Slow mode was engaged by the server itself, because members sent faster than the
    # room could store: it lifts it again when the rush is over. A moderator's own
    # slow mode setting clears this, and the server leaves that one alone.
    slow_mode_auto = models.BooleanField(default=False)
    # Highest seq handed out in this room's event log. Incremented under the row lock in
    # the same transaction as the event insert, which is what makes seq gapless.
    last_seq = models.BigIntegerField(default=0)
    # Every event up to this seq was deleted by retention (prune_events): a resume from
    # before it cannot be complete, and readers never show what is left of a pruning in
    # progress. Raised before anything is deleted; never lowered.
    pruned_through = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_live", "title"]
        permissions = [("moderate_all_rooms", "Can moderate and administer every room (site staff)")]
        constraints = [
            models.CheckConstraint(condition=Q(slow_mode_seconds__lte=120), name="room_slow_mode_at_most_120"),
            models.CheckConstraint(condition=Q(last_seq__gte=0), name="room_last_seq_non_negative"),
            models.CheckConstraint(
                condition=Q(pruned_through__gte=0, pruned_through__lte=F("last_seq")), name="room_pruned_within_log"
            ),
        ]

    def __str__(self) -> str:
        return self.slug


class Role(models.TextChoices):
    HOST = "host", "Host"
    MODERATOR = "moderator", "Moderator"


class Membership(models.Model):
    """A seat on a room's host team. Everyone else signed in is a plain member."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "user"], name="membership_one_per_user"),
            models.CheckConstraint(condition=Q(role__in=[Role.HOST, Role.MODERATOR]), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.room}"


class RoomEvent(models.Model):
    """One entry of a room's durable event log: exactly what viewers were sent.

    `data` is the protocol event without `seq` (which is the column). A deleted
    message's entry is redacted in place so no replay ever contains the body.
    """

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="events")
    seq = models.BigIntegerField()
    type = models.CharField(max_length=32)
    # The user the event is "from", for per-viewer blocking. Null for system events.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    data = models.JSONField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["room", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="room_event_seq_unique"),
            models.CheckConstraint(condition=Q(seq__gte=1), name="room_event_seq_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.room_id}#{self.seq} {self.type}"


class Message(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="messages")
    body = models.TextField()
    reply_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replies")
    # NULL, not "": a message from the admin has none, and the unique constraint on
    # (room, author, client_id) must not treat two of those as the same.
    client_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    seq = models.BigIntegerField()
    created_at = models.DateTimeField()
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["room", "seq"]
        indexes = [models.Index(fields=["room", "author", "created_at"])]
        constraints = [
            # What makes `send` idempotent: one stored message per (room, author, client_id).
            models.UniqueConstraint(
                fields=["room", "author", "client_id"],
                condition=Q(client_id__isnull=False),
                name="message_client_id_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.room_id}#{self.seq} by {self.author_id}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class Wallet(models.Model):
    """A user's coins. Changed only by rooms.services.tips, always with a ledger entry."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="wallet")
    balance = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(balance__gte=0), name="wallet_never_negative")]

    def __str__(self) -> str:
        return f"{self.user}: {self.balance} coins"


class Tip(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="tips")
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="tips_sent")
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="tips_received")
    amount = models.PositiveIntegerField()
    body = models.CharField(max_length=200, blank=True)
    client_id = models.CharField(max_length=64)
    seq = models.BigIntegerField()
    pinned_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # What makes `tip` idempotent: a retried client_id can never debit twice.
            models.UniqueConstraint(fields=["room", "sender", "client_id"], name="tip_client_id_once"),
            models.CheckConstraint(condition=Q(amount__gte=1), name="tip_amount_positive"),
        ]
        indexes = [models.Index(fields=["room", "created_at"])]

    def __str__(self) -> str:
        return f"{self.sender} tipped {self.amount} in {self.room}"


class LedgerEntry(models.Model):
    """One movement of coins. A wallet's balance is the sum of its entries."""

    class Kind(models.TextChoices):
        GRANT = "grant", "Granted"
        TIP_SENT = "tip_sent", "Tip sent"
        TIP_RECEIVED = "tip_received", "Tip received"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ledger")
    amount = models.BigIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    tip = models.ForeignKey(Tip, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger")
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="ledger_amount_nonzero")]

    def __str__(self) -> str:
        return f"{self.user} {self.amount:+d} ({self.kind})"


class Notice(models.Model):
    """A broadcast: one room's announcement, or a site-wide notice (room null) that is
    appended to every room's log."""

    class Level(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"

    room = models.ForeignKey(Room, null=True, blank=True, on_delete=models.CASCADE, related_name="notices")
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    body = models.CharField(max_length=500)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    pinned_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.scope} notice: {self.body[:40]}"

    @property
    def scope(self) -> str:
        return "room" if self.room_id else "site"


def _emote_path(emote: "Emote", filename: str) -> str:
    # The name is the server's, never the uploader's: a fresh random one (so a replaced
    # image gets a new URL that caches can keep forever), with the extension of the
    # format the bytes were sniffed as (rooms.emotes).
    return f"emotes/{emote.room_id}/{uuid.uuid4().hex}{Path(filename).suffix.lower()}"


class Emote(models.Model):
    """A small image a room's viewers write as `:code:` in their messages."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="emotes")
    # With its colons, as people type it: `:pog:` (rooms.emotes.CODE_RE).
    code = models.CharField(max_length=34)
    image = models.FileField(upload_to=_emote_path, max_length=200)
    # Sniffed from the bytes when uploaded; what the image is served as.
    content_type = models.CharField(max_length=32)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["room", "code"]
        constraints = [
            models.UniqueConstraint(fields=["room", "code"], name="emote_code_once_per_room"),
            models.CheckConstraint(
                condition=Q(content_type__in=["image/png", "image/gif", "image/webp"]), name="emote_type_allowed"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} in {self.room}"
