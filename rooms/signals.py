"""Open sockets follow the user's account as it changes, on every server process.

- They lose access when their session does: on logout (that session's sockets), and on
  a password change or deactivation (all of the user's sockets): `revoke`.
- They lose (or gain) powers when the user's standing changes: the superuser or staff
  flag, their groups, their own or their groups' permissions, a room role: `refresh`.
  A socket keeps the user object from connect time, with its permission cache, so
  without this a demoted moderator or staff member would keep moderating until they
  reconnected.

Publishing happens after commit: a rolled-back change tells nobody.
"""

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver

from rooms import realtime
from rooms.models import Membership
from rooms.services.retention import do_forget_user_names

User = get_user_model()

# Fields whose change ends the user's sessions, and fields that change what they may do.
_ACCESS_FIELDS = ("password", "is_active")
_STANDING_FIELDS = ("is_staff", "is_superuser")


@receiver(user_logged_out)
def revoke_session_sockets(sender, request, user, **kwargs):
    if user is None or request is None:
        return
    session_key = getattr(request.session, "session_key", None)
    realtime.publish_user_control(user.pk, "revoke", session=session_key)


@receiver(pre_save, sender=User)
def follow_account_changes(sender, instance, raw=False, update_fields=None, **kwargs):
    if raw or instance.pk is None:
        return
    watched = _ACCESS_FIELDS + _STANDING_FIELDS
    if update_fields is not None and not set(watched) & set(update_fields):
        return
    before = sender.objects.filter(pk=instance.pk).values(*watched).first()
    if before is None:
        return
    if before["password"] != instance.password or (before["is_active"] and not instance.is_active):
        instance._socket_control = "revoke"
    elif any(before[name] != getattr(instance, name) for name in _STANDING_FIELDS):
        instance._socket_control = "refresh"


@receiver(post_save, sender=User)
def publish_account_changes(sender, instance, raw=False, **kwargs):
    # After the row is written: outside a transaction on_commit runs at once, and a
    # socket that read the account again before the UPDATE would find nothing changed.
    kind = instance.__dict__.pop("_socket_control", None)
    if kind == "revoke":
        user_id = instance.pk
        transaction.on_commit(lambda: realtime.publish_user_control(user_id, "revoke", session=None))
    elif kind == "refresh":
        _refresh_on_commit([instance.pk])


def _refresh_on_commit(user_ids: Iterable[int]) -> None:
    ids = sorted(set(user_ids))
    if ids:
        transaction.on_commit(lambda: realtime.publish_users_control(ids, "refresh"))


def _members_of(group_ids: Iterable[int]) -> list[int]:
    return list(User.objects.filter(groups__in=list(group_ids)).values_list("pk", flat=True).distinct())


# Clearing and deleting name no one afterwards, so who is affected is read before (pre_*)
# and told after (post_*): told before, a socket could read its account again while
# the rows are still there. Outside a transaction on_commit runs at once.
def _affected_before(instance, user_ids: Iterable[int]) -> None:
    instance._socket_refresh = list(user_ids)


def _refresh_after(instance) -> None:
    _refresh_on_commit(instance.__dict__.pop("_socket_refresh", ()))


@receiver(m2m_changed, sender=User.groups.through)
def groups_changed(sender, instance, action, reverse, pk_set, **kwargs):
    if action in ("post_add", "post_remove"):
        _refresh_on_commit(pk_set if reverse else [instance.pk])
    elif action == "pre_clear":
        _affected_before(instance, _members_of([instance.pk]) if reverse else [instance.pk])
    elif action == "post_clear":
        _refresh_after(instance)


@receiver(m2m_changed, sender=User.user_permissions.through)
def user_permissions_changed(sender, instance, action, reverse, pk_set, **kwargs):
    if action in ("post_add", "post_remove"):
        # Reversed, the permission was granted to or taken from the users in pk_set.
        _refresh_on_commit(pk_set if reverse else [instance.pk])
    elif action == "pre_clear":
        _affected_before(instance, instance.user_set.values_list("pk", flat=True) if reverse else [instance.pk])
    elif action == "post_clear":
        _refresh_after(instance)


@receiver(m2m_changed, sender=Group.permissions.through)
def group_permissions_changed(sender, instance, action, reverse, pk_set, **kwargs):
    if action in ("post_add", "post_remove"):
        _refresh_on_commit(_members_of(pk_set if reverse else [instance.pk]))
    elif action == "pre_clear":
        groups = instance.group_set.values_list("pk", flat=True) if reverse else [instance.pk]
        _affected_before(instance, _members_of(groups))
    elif action == "post_clear":
        _refresh_after(instance)


@receiver(pre_delete, sender=Group)
def group_deleting(sender, instance, **kwargs):
    _affected_before(instance, _members_of([instance.pk]))


@receiver(pre_delete, sender=Permission)
def permission_deleting(sender, instance, **kwargs):
    direct = instance.user_set.values_list("pk", flat=True)
    _affected_before(instance, [*direct, *_members_of(instance.group_set.values_list("pk", flat=True))])


@receiver(post_delete, sender=Group)
@receiver(post_delete, sender=Permission)
def group_or_permission_deleted(sender, instance, **kwargs):
    _refresh_after(instance)


@receiver(post_save, sender=Membership)
@receiver(post_delete, sender=Membership)
def room_role_changed(sender, instance, raw=False, **kwargs):
    if not raw:
        _refresh_on_commit([instance.user_id])


@receiver(pre_delete, sender=User)
def forget_deleted_user(sender, instance, **kwargs):
    # In the deleting transaction: if the delete fails, the names come back with it.
    do_forget_user_names(None, user_id=instance.pk)
