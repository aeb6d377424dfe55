"""Who is what in a room, and what rank may act on whom."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

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


def actor_rank(user, room: Room) -> int:
    if not user.is_authenticated:
        return GUEST
    return rank(room_role(user, room), is_staff=is_site_staff(user))


def user_role_and_rank(user, room: Room) -> tuple[str, int]:
    role = room_role(user, room)
    return role, rank(role, is_staff=is_site_staff(user))
