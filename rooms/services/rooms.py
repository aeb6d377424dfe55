"""Rooms, their host team, and their live state."""

from __future__ import annotations

import re

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from rooms.errors import BadRequest, NoSuchRoom, NotFound
from rooms.models import Membership, Role, Room, RoomEvent
from rooms.permissions import HOST, authorize
from rooms.protocol import events
from rooms.selectors import room_by_id
from rooms.services.events import append_event
from rooms.text import visible

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def do_create_room(actor, *, slug: str, title: str, host_username: str) -> Room:
    """Create a room owned by an existing user, who becomes its host. `actor`: the staff
    member creating it, or None from the shell."""
    slug = slug.strip().lower()
    title = visible(title)
    if not SLUG_RE.match(slug):
        raise BadRequest(
            _("A room slug is 1-64 lowercase letters, digits and hyphens, starting with a letter or digit.")
        )
    if not title or len(title) > 200:
        raise BadRequest(_("A room title is 1 to 200 characters."))
    User = get_user_model()
    owner = User.objects.filter(**{User.USERNAME_FIELD: host_username}).first()
    if owner is None:
        raise NotFound(format_lazy(_("No user named {name!r}."), name=host_username))
    with transaction.atomic():
        if Room.objects.filter(slug=slug).exists():
            raise BadRequest(format_lazy(_("A room with slug {slug!r} already exists."), slug=slug))
        room = Room.objects.create(slug=slug, title=title, owner=owner)
        Membership.objects.create(room=room, user=owner, role=Role.HOST)
        _open_admin_to(owner)
    return room


def _open_admin_to(user) -> None:
    # Hosts manage their own rooms in the Django admin, which needs is_staff to enter.
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])


def check_set_role(actor, *, room_id: int, username: str, role: str) -> Membership | None:
    """Appoint or remove a team member: the room's hosts and staff."""
    room = room_by_id(room_id)
    authorize(actor, room, min_rank=HOST, denied=_("Only the room's hosts and staff appoint its team."))
    return do_set_role(actor, room_id=room.pk, username=username, role=role)


def do_set_role(actor, *, room_id: int, username: str, role: str) -> Membership | None:
    """Appoint a host or moderator, or with role "member" take the seat away. `actor`:
    who appoints (None from the shell)."""
    if role not in ("host", "moderator", "member"):
        raise BadRequest(_("The role is one of host, moderator, member."))
    User = get_user_model()
    user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
    if user is None:
        raise NotFound(format_lazy(_("No user named {name!r}."), name=username))
    with transaction.atomic():
        room = Room.objects.select_for_update().filter(pk=room_id).first()
        if room is None:
            raise NoSuchRoom()
        if user.pk == room.owner_id and role != "host":
            raise BadRequest(_("The room's owner is always a host."))
        if role == "member":
            Membership.objects.filter(room=room, user=user).delete()
            return None
        membership, _created = Membership.objects.update_or_create(room=room, user=user, defaults={"role": role})
        if role == "host":
            _open_admin_to(user)
    return membership


def check_update_room(actor, *, room_id: int, title: str | None = None, is_live: bool | None = None) -> RoomEvent:
    """Go live, end the stream or retitle it: hosts and staff."""
    room = room_by_id(room_id)
    authorize(actor, room, min_rank=HOST, denied=_("Only hosts and staff can change the room."))
    return do_update_room(actor, room_id=room.pk, title=title, is_live=is_live)


def do_update_room(actor, *, room_id: int, title: str | None = None, is_live: bool | None = None) -> RoomEvent:
    """Change the title or live state and tell every viewer (a `room` event). `actor`:
    who changes it (None from the shell)."""
    with transaction.atomic():
        room = Room.objects.select_for_update().get(pk=room_id)
        if title is not None:
            title = visible(title)
            if not title or len(title) > 200:
                raise BadRequest(_("A room title is 1 to 200 characters."))
            room.title = title
        if is_live is not None:
            if is_live and not room.is_live:
                room.live_since = timezone.now()
            room.is_live = is_live
        room.save(update_fields=["title", "is_live", "live_since"])
        return append_event(
            room.pk,
            event=room_event(room),
            actor_id=None,
        )


def room_event(room: Room) -> events.RoomEventData:
    """The `room` event that says how the room is now."""
    return events.room(
        title=room.title,
        is_live=room.is_live,
        slow_mode_seconds=room.slow_mode_seconds,
        slow_mode_auto=room.slow_mode_auto,
    )


def do_auto_slow_mode(actor, *, room_id: int, seconds: int) -> RoomEvent | None:
    """Engage (seconds > 0) or lift (0) the slow mode the server sets by itself when members
    send faster than the room can store. It never overrides a slow mode a moderator set:
    engaging needs the room without slow mode, lifting needs it to be the server's own.
    None when there was nothing to change. `actor`: None, the server (kept for the
    services' one signature)."""
    with transaction.atomic():
        room = Room.objects.select_for_update().get(pk=room_id)
        if seconds and (room.slow_mode_seconds or room.slow_mode_auto):
            return None
        if not seconds and not room.slow_mode_auto:
            return None
        room.slow_mode_seconds, room.slow_mode_auto = seconds, bool(seconds)
        room.save(update_fields=["slow_mode_seconds", "slow_mode_auto"])
        return append_event(room.pk, event=room_event(room), actor_id=None)
