"""Who is what in a room, and what rank may act on whom."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from rooms.errors import Forbidden, Unauthenticated
from rooms.models import Membership, Room

GUEST, MEMBER, MODERATOR, HOST, STAFF = 0, 1, 2, 3, 4


def is_site_staff(user) -> bool:
    """Site staff run every room. Being `is_staff` alone only opens the admin: hosts
    have that too, to manage their own rooms there."""
    return bool(
        user.is_authenticated and user.is_active and (user.is_superuser or user.has_perm("rooms.moderate_all_rooms"))
    )


def room_role(user: AbstractBaseUser | AnonymousUser, room: Room) -> str:
    """The protocol role: host/moderator from membership, member if signed in, else guest."""
    if not user.is_authenticated:
        return "guest"
    role = Membership.objects.filter(room=room, user=user).values_list("role", flat=True).first()
    return role or "member"


def rank(role: str, *, is_staff: bool) -> int:
    if is_staff:
        return STAFF
    return {"guest": GUEST, "member": MEMBER, "moderator": MODERATOR, "host": HOST}[role]


def is_team(role: str) -> bool:
    return role in ("host", "moderator")


def hosted_room_ids(user) -> list[int]:
    return list(Membership.objects.filter(user=user, role="host").values_list("room_id", flat=True))


@dataclass(frozen=True)
class Standing:
    """Where one user stands in one room."""

    role: str
    is_staff: bool

    @property
    def rank(self) -> int:
        return rank(self.role, is_staff=self.is_staff)

    @property
    def exempt_from_limits(self) -> bool:
        # The host team and staff run the room: slow mode and rate limits are for members.
        return self.rank >= MODERATOR


def standing(user, room: Room) -> Standing:
    return Standing(role=room_role(user, room), is_staff=is_site_staff(user))


def actor_rank(user, room: Room) -> int:
    if not user.is_authenticated:
        return GUEST
    return standing(user, room).rank


def standings(users: Iterable, room: Room) -> dict[int, Standing]:
    """Standing of several users in two queries, whatever their number."""
    users = [u for u in users if u.is_authenticated]
    if not users:
        return {}
    ids = [u.pk for u in users]
    roles = dict(Membership.objects.filter(room=room, user_id__in=ids).values_list("user_id", "role"))
    staff = set(
        get_user_model()
        .objects.with_perm("rooms.moderate_all_rooms", include_superusers=True)
        .filter(pk__in=ids)
        .values_list("pk", flat=True)
    )
    return {u.pk: Standing(role=roles.get(u.pk, "member"), is_staff=u.pk in staff) for u in users}


def authorize(actor, room: Room, *, min_rank: int, target=None, denied: str | Promise | None = None) -> None:
    """Raise unless `actor` is signed in, holds `min_rank` in `room` and outranks
    `target`. `denied`: what to tell an actor below `min_rank`, if not the usual."""
    if not actor.is_authenticated:
        raise Unauthenticated(_("Sign in first."))
    rank = actor_rank(actor, room)
    if rank < min_rank:
        if denied is None:
            denied = (
                _("Only hosts and staff can do that.")
                if min_rank >= HOST
                else _("Only moderators, hosts and staff can do that.")
            )
        raise Forbidden(denied)
    if target is not None:
        if target.pk == actor.pk:
            raise Forbidden(_("You cannot do that to yourself."))
        if actor_rank(target, room) >= rank:
            raise Forbidden(_("You cannot moderate someone of equal or higher rank."))
