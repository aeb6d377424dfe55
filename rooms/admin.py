"""Rooms in the Django admin. Every change goes through the services, so it is
authorized, logged and reaches live viewers like the same action from the room page."""

from django import forms
from django.contrib import admin
from django.db.models import Value
from django.utils.html import format_html

from rooms import services
from rooms.admin_scope import RoomScopedAdmin, StaffOnlyAdmin
from rooms.errors import ChatError
from rooms.models import Emote, LedgerEntry, Membership, Message, Notice, Room, RoomEvent, Tip, Wallet
from rooms.permissions import hosted_room_ids, is_site_staff
from rooms.presence import online_counts
from rooms.selectors import leaderboard
from rooms.services import emotes


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ("user", "role", "created_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return True


class RoomForm(forms.ModelForm):
    class Meta:
        model = Room
        fields = ("slug", "title", "owner", "is_live", "slow_mode_seconds")


@admin.register(Room)
class RoomAdmin(RoomScopedAdmin):
    room_field = "pk"
    hosts_may_change = True
    form = RoomForm
    list_display = ("slug", "title", "owner", "is_live", "slow_mode_seconds", "online", "last_seq")
    list_filter = ("is_live",)
    search_fields = ("slug", "title", "owner__username")
    inlines = [MembershipInline]
    readonly_fields = ("last_seq", "live_since", "top_tippers")

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            # Slug and owner are fixed once the room exists: clients and tips rely on them.
            fields += ["slug", "owner"]
        return fields

    @admin.display(description="online now")
    def online(self, room):
        return online_counts([room.pk]).get(room.pk, 0)

    @admin.display(description="top tippers (this stream / all time)")
    def top_tippers(self, room):
        board = leaderboard(room)

        def line(rows):
            return ", ".join(f"{r['name']} ({r['total']})" for r in rows) or "none yet"

        return f"This stream: {line(board['stream'])}. All time: {line(board['all_time'])}."

    def save_model(self, request, obj, form, change):
        if not change:
            room = self.run_service(
                request,
                services.do_create_room,
                request.user,
                slug=obj.slug,
                title=obj.title,
                host_username=obj.owner.get_username(),
                success=f"Room {obj.slug} created.",
            )
            if room is not None:
                obj.pk = room.pk
            return
        if {"title", "is_live"} & set(form.changed_data):
            self.run_service(
                request,
                services.check_update_room,
                request.user,
                room_id=obj.pk,
                title=obj.title if "title" in form.changed_data else None,
                is_live=obj.is_live if "is_live" in form.changed_data else None,
                success="Room updated.",
            )


class MembershipForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ("room", "user", "role")


@admin.register(Membership)
class MembershipAdmin(RoomScopedAdmin):
    hosts_may_add = True
    list_display = ("room", "user", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("room__slug", "user__username")
    form = MembershipForm
    actions = ["remove_from_team"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "room" and not is_site_staff(request.user):
            kwargs["queryset"] = Room.objects.filter(memberships__user=request.user, memberships__role="host")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        membership = self.run_service(
            request,
            services.check_set_role,
            request.user,
            room_id=obj.room_id,
            username=obj.user.get_username(),
            role=obj.role,
            success=f"{obj.user} is now {obj.role} of {obj.room}.",
        )
        if membership is not None:
            obj.pk = membership.pk

    @admin.action(description="Remove from the host team (back to member)")
    def remove_from_team(self, request, queryset):
        for membership in queryset.select_related("room", "user"):
            self.run_service(
                request,
                services.check_set_role,
                request.user,
                room_id=membership.room_id,
                username=membership.user.get_username(),
                role="member",
                success=f"{membership.user} is a member of {membership.room} again.",
            )


@admin.register(Message)
class MessageAdmin(RoomScopedAdmin):
    list_display = ("created_at", "room", "author", "shown_body", "deleted_at")
    list_filter = ("room", "deleted_at")
    search_fields = ("author__username",)
    list_select_related = ("room", "author")
    readonly_fields = (
        "room",
        "author",
        "shown_body",
        "reply_to",
        "client_id",
        "seq",
        "created_at",
        "deleted_at",
        "deleted_by",
    )
    fields = readonly_fields

    def get_queryset(self, request):
        # Whether this request may read deleted bodies travels with each row: the admin
        # instance is shared by every request and keeps no state of its own.
        return super().get_queryset(request).annotate(reader_is_staff=Value(is_site_staff(request.user)))

    @admin.display(description="body")
    def shown_body(self, message):
        # Hosts see what viewers see; site staff can still read what was deleted.
        if message.is_deleted and not getattr(message, "reader_is_staff", False):
            return "(deleted)"
        return message.body


@admin.register(RoomEvent)
class RoomEventAdmin(RoomScopedAdmin):
    list_display = ("room", "seq", "type", "actor", "created_at")
    list_filter = ("type",)
    list_select_related = ("room", "actor")
    readonly_fields = ("room", "seq", "type", "actor", "data", "created_at")
    fields = readonly_fields


@admin.register(Tip)
class TipAdmin(RoomScopedAdmin):
    list_display = ("created_at", "room", "sender", "recipient", "amount", "body", "pinned_until")
    list_filter = ("room",)
    list_select_related = ("room", "sender", "recipient")
    search_fields = ("sender__username",)
    readonly_fields = (
        "room",
        "sender",
        "recipient",
        "amount",
        "body",
        "client_id",
        "seq",
        "pinned_until",
        "created_at",
    )
    fields = readonly_fields


class NoticeForm(forms.ModelForm):
    class Meta:
        model = Notice
        fields = ("room", "level", "body")
        help_texts = {"room": "Leave empty for a site-wide notice to every room (staff only)."}


@admin.register(Notice)
class NoticeAdmin(RoomScopedAdmin):
    hosts_may_add = True
    form = NoticeForm
    list_display = ("created_at", "scope", "room", "level", "body", "by")
    list_filter = ("level",)

    def get_readonly_fields(self, request, obj=None):
        return ("room", "level", "body", "by", "created_at") if obj is not None else ()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "room" and not is_site_staff(request.user):
            kwargs["queryset"] = Room.objects.filter(memberships__user=request.user, memberships__role="host")
            kwargs["required"] = True
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if obj.room_id is None:
            if not is_site_staff(request.user):
                self.message_user(request, "Only staff post site-wide notices.", level="error")
                return
            notice = self.run_service(
                request,
                services.do_site_announce,
                request.user,
                body=obj.body,
                level=obj.level,
                success="Site notice posted to every room.",
            )
        else:
            event = self.run_service(
                request,
                services.check_announce,
                request.user,
                room_id=obj.room_id,
                body=obj.body,
                level=obj.level,
                success=f"Notice posted to {obj.room}.",
            )
            notice = Notice.objects.get(pk=event.data["id"]) if event is not None else None
        if notice is not None:
            obj.pk = notice.pk


@admin.register(Wallet)
class WalletAdmin(StaffOnlyAdmin):
    list_display = ("user", "balance")
    search_fields = ("user__username",)
    actions = ["grant_100", "grant_1000"]

    def _grant(self, request, queryset, amount):
        for wallet in queryset:
            services.do_grant_coins(request.user, user_id=wallet.user_id, amount=amount, note="granted in the admin")
        self.message_user(request, f"Granted {amount} coins to {queryset.count()} wallet(s).")

    @admin.action(description="Grant 100 coins")
    def grant_100(self, request, queryset):
        self._grant(request, queryset, 100)

    @admin.action(description="Grant 1000 coins")
    def grant_1000(self, request, queryset):
        self._grant(request, queryset, 1000)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(StaffOnlyAdmin):
    list_display = ("created_at", "user", "amount", "kind", "tip", "by", "note")
    list_filter = ("kind",)
    search_fields = ("user__username",)


class EmoteForm(forms.ModelForm):
    """An emote upload. The code and the file are checked by the same rules the service
    applies (rooms.services.emotes), so a bad file is a form error beside the field."""

    # Longer than a code may be: what is wrong with one is said by clean_code, in full.
    code = forms.CharField(
        max_length=100, help_text="What viewers type, such as :pog: (2 to 32 letters, digits or underscores)."
    )

    class Meta:
        model = Emote
        fields = ("room", "code", "image")
        help_texts = {"image": "PNG, GIF or WebP; other formats (SVG included) are refused."}

    def clean_code(self):
        return _as_form_error(emotes.clean_code, self.cleaned_data.get("code"))

    def clean_image(self):
        image = self.cleaned_data.get("image")
        if image is not None:
            _as_form_error(emotes.inspect_image, image)
        return image


def _as_form_error(check, value):
    try:
        return check(value)
    except ChatError as exc:
        raise forms.ValidationError(exc.detail) from None


@admin.register(Emote)
class EmoteAdmin(RoomScopedAdmin):
    hosts_may_add = True
    form = EmoteForm
    list_display = ("code", "room", "preview", "content_type", "size", "created_by", "created_at")
    list_filter = ("room",)
    search_fields = ("code", "room__slug")
    list_select_related = ("room", "created_by")

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("room", "code", "image")
        return ("room", "code", "preview", "content_type", "size", "created_by", "created_at")

    def get_readonly_fields(self, request, obj=None):
        # An emote is replaced by removing it and adding a new one: messages already
        # sent keep pointing at the image they showed.
        return self.get_fields(request, obj) if obj is not None else ()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "room" and not is_site_staff(request.user):
            kwargs["queryset"] = Room.objects.filter(pk__in=hosted_room_ids(request.user))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_delete_permission(self, request, obj=None):
        if is_site_staff(request.user):
            return True
        if not self._is_host(request):
            return False
        return obj is None or obj.room_id in hosted_room_ids(request.user)

    @admin.display(description="image")
    def preview(self, emote):
        return format_html('<img src="{}" alt="{}" height="28">', emotes.emote_url(emote), emote.code)

    @admin.display(description="size")
    def size(self, emote):
        return f"{emote.width}×{emote.height}"

    def save_model(self, request, obj, form, change):
        emote = self.run_service(
            request,
            emotes.check_create_emote,
            request.user,
            room_id=obj.room_id,
            code=obj.code,
            image=form.cleaned_data["image"],
            success=f"Emote {obj.code} added to {obj.room}.",
        )
        if emote is not None:
            obj.pk = emote.pk

    def delete_model(self, request, obj):
        self.run_service(
            request, emotes.check_delete_emote, request.user, emote_id=obj.pk, success=f"Emote {obj.code} removed."
        )

    def delete_queryset(self, request, queryset):
        for emote in queryset:
            self.delete_model(request, emote)
