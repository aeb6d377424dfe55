from django.conf import settings
from django.db import models
from django.db.models import F, Q


class Block(models.Model):
    """A viewer's personal block: hides `blocked`'s messages from `blocker` only."""

    blocker = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="blocks")
    blocked = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="blocked_by")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["blocker", "blocked"], name="block_once"),
            models.CheckConstraint(condition=~Q(blocker=F("blocked")), name="block_not_self"),
        ]

    def __str__(self) -> str:
        return f"{self.blocker} blocks {self.blocked}"


class Restriction(models.Model):
    """A timed sanction on a user in a room. Rows are kept when they end (history)."""

    room = models.ForeignKey("rooms.Room", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()
    # None: until lifted (bans only; mutes always expire).
    until = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        abstract = True
        indexes = [models.Index(fields=["room", "user", "ended_at"])]

    @property
    def is_permanent(self) -> bool:
        return self.until is None


class Mute(Restriction):
    class Meta(Restriction.Meta):
        abstract = False
        indexes = [models.Index(fields=["room", "user", "ended_at"], name="mute_active_idx")]
        constraints = [models.CheckConstraint(condition=Q(until__isnull=False), name="mute_always_expires")]

    def __str__(self) -> str:
        return f"{self.user} muted in {self.room}" + (f" until {self.until:%Y-%m-%d %H:%M}" if self.until else "")


class Ban(Restriction):
    class Meta(Restriction.Meta):
        abstract = False
        indexes = [models.Index(fields=["room", "user", "ended_at"], name="ban_active_idx")]

    def __str__(self) -> str:
        return f"{self.user} banned from {self.room}"


class AuditEntry(models.Model):
    """Who did what to whom, when, why and until when: one row per moderation action."""

    room = models.ForeignKey("rooms.Room", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=32)
    target = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=200, blank=True)
    until = models.DateTimeField(null=True, blank=True)
    seconds = models.PositiveIntegerField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "audit log"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.target or ''}".strip()
