"""Moderation in the Django admin: mutes, bans, blocks and the audit log, scoped so a
host sees and acts on their own rooms only. Changes go through moderation.services."""

from django import forms
from django.contrib import admin
from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.contrib.admin.widgets import AutocompleteSelect
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from moderation import services
from moderation.models import AuditEntry, Ban, Block, Mute
from rooms import admin as rooms_admin
from rooms.admin_scope import RoomScopedAdmin, StaffOnlyAdmin
from rooms.models import Message, Room
from rooms.permissions import is_site_staff


class UsernameAutocompleteView(AutocompleteJsonView):
    """The user search behind the mute and ban forms' user field.

    Django's own search asks the User admin for view permission, which a host (staff,
    but with no model permissions) does not have, and searches what the User admin
    searches: names and e-mail addresses. Granting hosts view access to users would open
    the user list as well. Here, someone the User admin lets in gets Django's answer; a
    host who may add rows through the form gets active accounts whose username contains
    the term, as username and id only, and nothing without a term (no paging through
    every account). Any other field is refused.
    """

    usernames_only = False

    def process_request(self, request):
        term, model_admin, source_field, to_field_name = super().process_request(request)
        self.source_admin = self.admin_site.get_model_admin(source_field.model)
        return term, model_admin, source_field, to_field_name

    def has_perm(self, request, obj=None):
        if super().has_perm(request, obj=obj):
            return True
        source_admin = self.source_admin
        if not (isinstance(source_admin, RestrictionAdmin) and self.source_field.name == "user"):
            raise PermissionDenied
        self.usernames_only = source_admin.has_add_permission(request)
        return self.usernames_only

    def get_queryset(self):
        if not self.usernames_only:
            return super().get_queryset()
        User = get_user_model()
        if not self.term:
            return User.objects.none()
        lookup = {f"{User.USERNAME_FIELD}__icontains": self.term}
        return User.objects.filter(is_active=True, **lookup).order_by(User.USERNAME_FIELD)

    def serialize_result(self, obj, to_field_name):
        if not self.usernames_only:
            return super().serialize_result(obj, to_field_name)
        return {"id": str(getattr(obj, to_field_name)), "text": obj.get_username()}


class UsernameAutocompleteSelect(AutocompleteSelect):
    def get_url(self):
        return reverse("admin_username_autocomplete")


class RestrictionForm(forms.ModelForm):
    seconds = forms.IntegerField(min_value=1, required=False)

    class Meta:
        fields = ("room", "user", "reason")


class MuteForm(RestrictionForm):
    seconds = forms.IntegerField(min_value=1, help_text="How long the mute lasts, in seconds. A mute always ends.")


class BanForm(RestrictionForm):
    seconds = forms.IntegerField(
        min_value=1, required=False, help_text="How long the ban lasts, in seconds; leave empty for a permanent ban."
    )


class RestrictionAdmin(RoomScopedAdmin):
    hosts_may_add = True
    # A search by username: a select of every account on the site would be slow to
    # render and would hand every host the full list.
    autocomplete_fields = ("user",)
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
        if db_field.name == "user":
            kwargs["widget"] = UsernameAutocompleteSelect(db_field, self.admin_site, using=kwargs.get("using"))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        kwargs = {"user": obj.user_id, "reason": obj.reason}
        if form.cleaned_data.get("seconds") is not None or self.model is Mute:
            kwargs["seconds"] = form.cleaned_data.get("seconds")
        event = self.run_service(
            request,
            type(self).start_service,
            request.user,
            room_id=obj.room_id,
            success=f"{obj.user} {self.noun}.",
            **kwargs,
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
                room_id=row.room_id,
                user=row.user_id,
                success=f"Ended for {row.user}.",
            )

    actions = ["end_now"]


@admin.register(Mute)
class MuteAdmin(RestrictionAdmin):
    form = MuteForm
    start_service = staticmethod(services.check_mute)
    end_service = staticmethod(services.check_unmute)
    noun = "is muted"


@admin.register(Ban)
class BanAdmin(RestrictionAdmin):
    form = BanForm
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


# Moderation's actions on rooms' own admin pages. rooms knows nothing of moderation, so
# its Room and Message admins are extended here, as the moderation app is installed.


class ModeratedRoomAdmin(rooms_admin.RoomAdmin):
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "slow_mode_seconds" in form.changed_data:
            self.run_service(
                request,
                services.check_set_slow_mode,
                request.user,
                room_id=obj.pk,
                seconds=obj.slow_mode_seconds,
                success=f"Slow mode set to {obj.slow_mode_seconds} s.",
            )


class ModeratedMessageAdmin(rooms_admin.MessageAdmin):
    actions = ["delete_messages", "mute_authors_10_min", "ban_authors"]

    @admin.action(description="Delete selected messages (for everyone, live)")
    def delete_messages(self, request, queryset):
        for message in queryset.filter(deleted_at__isnull=True):
            self.run_service(
                request,
                services.check_delete_message,
                request.user,
                room_id=message.room_id,
                message_id=message.pk,
                success=f"Deleted message {message.pk}.",
            )

    @admin.action(description="Mute the authors for 10 minutes")
    def mute_authors_10_min(self, request, queryset):
        for room_id, author_id in set(queryset.values_list("room_id", "author_id")):
            self.run_service(
                request,
                services.check_mute,
                request.user,
                room_id=room_id,
                user=author_id,
                seconds=600,
                reason="muted from the admin",
                success=f"Muted user {author_id} for 10 minutes.",
            )

    @admin.action(description="Ban the authors from the room")
    def ban_authors(self, request, queryset):
        for room_id, author_id in set(queryset.values_list("room_id", "author_id")):
            self.run_service(
                request,
                services.check_ban,
                request.user,
                room_id=room_id,
                user=author_id,
                reason="banned from the admin",
                success=f"Banned user {author_id}.",
            )


for model, model_admin in ((Room, ModeratedRoomAdmin), (Message, ModeratedMessageAdmin)):
    admin.site.unregister(model)
    admin.site.register(model, model_admin)
