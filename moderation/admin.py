"""Moderation in the Django admin: mutes, bans, blocks and the audit log, scoped so a
host sees and acts on their own rooms only. Changes go through moderation.services."""

from django import forms
from django.contrib import admin

from moderation import services
from moderation.models import AuditEntry, Ban, Block, Mute
from rooms.admin_scope import RoomScopedAdmin, StaffOnlyAdmin
from rooms.models import Room
from rooms.permissions import is_site_staff


class RestrictionForm(forms.ModelForm):
    seconds = forms.IntegerField(
        min_value=1, required=False, help_text="How long. Mutes need it; leave empty for a permanent ban."
    )

    class Meta:
        fields = ("room", "user", "reason")


class RestrictionAdmin(RoomScopedAdmin):
    hosts_may_add = True
    form = RestrictionForm
    list_display = ("room", "user", "by", "reason", "created_at", "until", "ended_at")
    list_filter = ("room",)
    list_select_related = ("room", "user", "by")
    search_fields = ("user__username",)
    start_service = None
    end_service = None
    noun = ""

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return ("room", "user", "by", "reason", "created_at", "until", "ended_at", "ended_by")
        return ()

    def get_fields(self, request, obj=None):
        if obj is not None:
            return self.get_readonly_fields(request, obj)
        return ("room", "user", "seconds", "reason")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "room" and not is_site_staff(request.user):
            kwargs["queryset"] = Room.objects.filter(memberships__user=request.user, memberships__role="host")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        kwargs = {"user": obj.user_id, "reason": obj.reason}
        if form.cleaned_data.get("seconds") is not None or self.model is Mute:
            kwargs["seconds"] = form.cleaned_data.get("seconds")
        event = self.run_service(
            request, type(self).start_service, request.user, obj.room_id, success=f"{obj.user} {self.noun}.", **kwargs
        )
        if event is not None:
            # The admin links to and logs the row the service created.
            row = self.model.objects.filter(room_id=obj.room_id, user_id=obj.user_id).order_by("-pk").first()
            obj.pk, obj.until, obj.created_at, obj.by = row.pk, row.until, row.created_at, row.by

    def response_add(self, request, obj, post_url_continue=None):
        return self.response_post_save_add(request, obj)

    @admin.action(description="End now")
    def end_now(self, request, queryset):
        for row in queryset.filter(ended_at__isnull=True):
            self.run_service(
                request,
                type(self).end_service,
                request.user,
                row.room_id,
                user=row.user_id,
                success=f"Ended for {row.user}.",
            )

    actions = ["end_now"]


@admin.register(Mute)
class MuteAdmin(RestrictionAdmin):
    start_service = staticmethod(services.check_mute)
    end_service = staticmethod(services.check_unmute)
    noun = "is muted"


@admin.register(Ban)
class BanAdmin(RestrictionAdmin):
    start_service = staticmethod(services.check_ban)
    end_service = staticmethod(services.check_unban)
    noun = "is banned"


@admin.register(Block)
class BlockAdmin(StaffOnlyAdmin):
    list_display = ("blocker", "blocked", "created_at")
    search_fields = ("blocker__username", "blocked__username")


@admin.register(AuditEntry)
class AuditEntryAdmin(RoomScopedAdmin):
    list_display = ("created_at", "room", "actor", "action", "target", "reason", "until", "seconds")
    list_filter = ("action",)
    list_select_related = ("room", "actor", "target")
    search_fields = ("actor__username", "target__username")
    readonly_fields = ("created_at", "room", "actor", "action", "target", "reason", "until", "seconds", "details")
    fields = readonly_fields
