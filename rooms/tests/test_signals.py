"""Which account changes reach the user's open sockets, and as what (rooms.signals)."""

import pytest
from django.contrib.auth.models import Group, Permission

from conftest import make_user
from rooms import realtime
from rooms.services import do_set_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def controls(monkeypatch):
    """(sorted user ids, kind) of every user control published."""
    sent: list[tuple[list[int], str]] = []
    monkeypatch.setattr(realtime, "publish_users_control", lambda ids, kind, **_: sent.append((sorted(ids), kind)))
    monkeypatch.setattr(realtime, "publish_user_control", lambda user_id, kind, **_: sent.append(([user_id], kind)))
    return sent


@pytest.fixture
def perm():
    return Permission.objects.get(codename="moderate_all_rooms", content_type__app_label="rooms")


def test_dropping_superuser_refreshes_the_users_sockets(staff, controls, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        staff.is_superuser = False
        staff.save()
    assert controls == [([staff.pk], "refresh")]


def test_dropping_staff_with_update_fields_refreshes(staff, controls, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        staff.is_staff = False
        staff.save(update_fields=["is_staff"])
    assert controls == [([staff.pk], "refresh")]


def test_unrelated_saves_tell_nobody(staff, controls, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        staff.first_name = "Sam"
        staff.save()
        staff.save(update_fields=["last_login"])
    assert controls == []


def test_a_password_change_still_revokes_rather_than_refreshes(viewer, controls, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        viewer.set_password("another-one")
        viewer.is_staff = True
        viewer.save()
    assert controls == [([viewer.pk], "revoke")]


def test_user_permission_changes_refresh_that_user(viewer, perm, controls, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        viewer.user_permissions.add(perm)
        viewer.user_permissions.remove(perm)
        viewer.user_permissions.add(perm)
        viewer.user_permissions.clear()
    assert controls == [([viewer.pk], "refresh")] * 4


def test_taking_a_permission_from_its_side_refreshes_its_holders(
    viewer, outsider, perm, controls, django_capture_on_commit_callbacks
):
    viewer.user_permissions.add(perm)
    outsider.user_permissions.add(perm)
    controls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        perm.user_set.remove(viewer)
        perm.user_set.clear()
    assert controls == [([viewer.pk], "refresh"), ([outsider.pk], "refresh")]


def test_group_changes_refresh_its_members(viewer, outsider, perm, controls, django_capture_on_commit_callbacks):
    group = Group.objects.create(name="site moderators")
    group.user_set.add(viewer, outsider)
    controls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        group.permissions.add(perm)
        group.permissions.remove(perm)
        perm.group_set.add(group)
        perm.group_set.clear()
    assert controls == [([viewer.pk, outsider.pk], "refresh")] * 4


def test_group_membership_changes_refresh_the_member(viewer, outsider, controls, django_capture_on_commit_callbacks):
    group = Group.objects.create(name="site moderators")
    with django_capture_on_commit_callbacks(execute=True):
        viewer.groups.add(group)
        group.user_set.add(outsider)
        group.user_set.clear()
    assert controls == [([viewer.pk], "refresh"), ([outsider.pk], "refresh"), ([viewer.pk, outsider.pk], "refresh")]


def test_deleting_a_group_refreshes_its_members(viewer, controls, django_capture_on_commit_callbacks):
    group = Group.objects.create(name="site moderators")
    viewer.groups.add(group)
    controls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        group.delete()
    assert ([viewer.pk], "refresh") in controls


def test_room_role_changes_refresh_the_member(room, viewer, controls, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        do_set_role(None, room_id=room.pk, username=viewer.username, role="moderator")
    assert controls[-1] == ([viewer.pk], "refresh")
    controls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        do_set_role(None, room_id=room.pk, username=viewer.username, role="member")
    assert controls == [([viewer.pk], "refresh")]


def test_rolled_back_changes_tell_nobody(staff, controls, django_capture_on_commit_callbacks):
    from django.db import transaction

    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            staff.is_superuser = False
            staff.save()
            transaction.set_rollback(True)
    assert controls == []


def test_new_users_tell_nobody(controls, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        make_user("newcomer", is_staff=True)
    assert controls == []
