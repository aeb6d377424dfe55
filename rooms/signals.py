"""Open sockets lose access when their session does: on logout (that session's sockets)
and on a password change (all of the user's sockets), on every server process."""

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import pre_save
from django.dispatch import receiver

from rooms import realtime


@receiver(user_logged_out)
def revoke_session_sockets(sender, request, user, **kwargs):
    if user is None or request is None:
        return
    session_key = getattr(request.session, "session_key", None)
    realtime.publish_user_control(user.pk, "revoke", session=session_key)


@receiver(pre_save, sender=get_user_model())
def revoke_sockets_on_credentials_change(sender, instance, raw=False, update_fields=None, **kwargs):
    if raw or instance.pk is None:
        return
    if update_fields is not None and not {"password", "is_active"} & set(update_fields):
        return
    before = sender.objects.filter(pk=instance.pk).values("password", "is_active").first()
    if before is None:
        return
    if before["password"] != instance.password or (before["is_active"] and not instance.is_active):
        user_id = instance.pk
        transaction.on_commit(lambda: realtime.publish_user_control(user_id, "revoke", session=None))
