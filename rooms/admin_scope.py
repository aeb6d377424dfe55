"""Admin scoping: site staff see everything; a host sees only their own rooms.

Hosts are `is_staff` so they can enter the admin, but hold no model permissions; these
mixins grant them view/change access to rows of the rooms they host, and nothing else.
"""

from __future__ import annotations

from django.contrib import admin, messages

from rooms.errors import ChatError
from rooms.permissions import hosted_room_ids, is_site_staff


class RoomScopedAdmin(admin.ModelAdmin):
    # The lookup from a row of this model to its room's id.
    room_field = "room"
    # Hosts may change rows (through the services); otherwise they only look.
    hosts_may_change = False
    hosts_may_add = False

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if is_site_staff(request.user):
            return queryset
        return queryset.filter(**{f"{self.room_field}__in": hosted_room_ids(request.user)})

    def _is_host(self, request) -> bool:
        return request.user.is_active and request.user.is_staff and bool(hosted_room_ids(request.user))

    def has_module_permission(self, request):
        return is_site_staff(request.user) or self._is_host(request)

    def has_view_permission(self, request, obj=None):
        return is_site_staff(request.user) or self._is_host(request)

    def has_change_permission(self, request, obj=None):
        if is_site_staff(request.user):
            return True
        return self.hosts_may_change and self._is_host(request)

    def has_add_permission(self, request):
        if is_site_staff(request.user):
            return True
        return self.hosts_may_add and self._is_host(request)

    def has_delete_permission(self, request, obj=None):
        # Rows are ended or redacted through the services, never deleted from here.
        return False

    def run_service(self, request, action, *args, success: str, **kwargs):
        """Call a service for the admin user and report the outcome as a message."""
        try:
            result = action(*args, **kwargs)
        except ChatError as exc:
            self.message_user(request, exc.detail, level=messages.ERROR)
            return None
        self.message_user(request, success, level=messages.SUCCESS)
        return result


class StaffOnlyAdmin(admin.ModelAdmin):
    """Read-only rows for site staff (wallets, ledger, blocks)."""

    def has_module_permission(self, request):
        return is_site_staff(request.user)

    def has_view_permission(self, request, obj=None):
        return is_site_staff(request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
