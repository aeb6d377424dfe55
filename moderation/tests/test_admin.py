"""The mute and ban forms in the admin, as a host uses them: the user is picked by
searching usernames (never a list of every account on the site), and the search answers
a host with usernames only, for the forms the host may use."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from conftest import make_user

pytestmark = pytest.mark.django_db

USERNAMES = "admin_username_autocomplete"


@pytest.fixture
def as_host(client, host, room):
    client.force_login(host)
    return client


@pytest.fixture
def as_staff(client, staff):
    client.force_login(staff)
    return client


def search(client, term, *, model="mute", field="user", app="moderation", url=USERNAMES):
    return client.get(reverse(url), {"app_label": app, "model_name": model, "field_name": field, "term": term})


def results(response):
    assert response.status_code == 200, response.content[:300]
    return response.json()["results"]


# The forms.


@pytest.mark.parametrize("name", ["moderation_mute_add", "moderation_ban_add"])
def test_the_add_form_picks_the_user_by_search_not_from_every_account(as_host, viewer, outsider, name):
    response = as_host.get(reverse(f"admin:{name}"))

    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-ajax--url="{reverse(USERNAMES)}"' in html
    # Not one option per account: only the empty choice is rendered.
    assert viewer.username not in html and outsider.username not in html


def test_the_add_mute_form_says_a_mute_always_ends(as_host):
    form = as_host.get(reverse("admin:moderation_mute_add")).context["adminform"].form
    seconds = form.fields["seconds"]

    assert "ban" not in seconds.help_text
    assert seconds.required is True


def test_the_add_ban_form_offers_a_permanent_ban(as_host):
    form = as_host.get(reverse("admin:moderation_ban_add")).context["adminform"].form
    seconds = form.fields["seconds"]

    assert "leave empty for a permanent ban" in seconds.help_text
    assert seconds.required is False


def test_a_mute_without_seconds_is_a_form_error_not_a_failed_service_call(as_host, room, viewer):
    from moderation.models import Mute

    response = as_host.post(reverse("admin:moderation_mute_add"), {"room": room.pk, "user": viewer.pk})

    assert response.status_code == 200
    assert "seconds" in response.context["adminform"].form.errors
    assert not Mute.objects.exists()


# The username search, as a host.


@pytest.mark.parametrize("model", ["mute", "ban"])
def test_a_host_finds_users_by_username(as_host, viewer, outsider, model):
    assert results(search(as_host, "vic", model=model)) == [{"id": str(viewer.pk), "text": viewer.username}]


def test_a_host_sees_usernames_only_and_cannot_search_other_fields(as_host):
    make_user("quiet_one", email="private.person@example.org", first_name="Private", last_name="Person")

    assert results(search(as_host, "quiet")) == [
        {"id": str(get_user_model().objects.get(username="quiet_one").pk), "text": "quiet_one"}
    ]
    # The User admin searches names and e-mail addresses; a host must not be able to probe them.
    assert results(search(as_host, "private.person@")) == []
    assert results(search(as_host, "Person")) == []


def test_a_host_gets_nothing_without_a_search_term(as_host, viewer, outsider):
    # No paging through every account on the site.
    response = search(as_host, "")
    assert results(response) == []
    assert response.json()["pagination"] == {"more": False}


def test_a_host_does_not_find_deactivated_accounts(as_host):
    make_user("vic_gone", is_active=False)
    assert results(search(as_host, "vic_gone")) == []


@pytest.mark.parametrize(
    ("app", "model", "field"),
    [
        ("moderation", "block", "blocker"),
        ("moderation", "auditentry", "target"),
        ("moderation", "mute", "by"),
        ("rooms", "membership", "user"),
        ("auth", "user", "groups"),
        ("moderation", "mute", "nosuchfield"),
    ],
)
def test_a_host_cannot_search_users_through_any_other_field(as_host, viewer, app, model, field):
    assert search(as_host, "vic", app=app, model=model, field=field).status_code == 403


def test_django_s_own_user_search_and_the_user_list_stay_closed_to_hosts(as_host):
    assert search(as_host, "vic", url="admin:autocomplete").status_code == 403
    assert as_host.get(reverse("admin:auth_user_changelist")).status_code == 403


def test_a_staff_member_who_hosts_nothing_cannot_search(client, viewer):
    client.force_login(make_user("idle_staff", is_staff=True))
    assert search(client, "vic").status_code == 403


def test_a_signed_in_non_staff_user_is_sent_to_the_admin_login(client, moderator, viewer):
    client.force_login(moderator)
    response = search(client, "vic")
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


# As site staff.


def test_site_staff_get_django_s_user_search(as_staff, viewer):
    make_user("quiet_one", email="private.person@example.org")
    found = results(search(as_staff, "private.person@"))
    assert [row["text"] for row in found] == ["quiet_one"]
    assert results(search(as_staff, "vic")) == [{"id": str(viewer.pk), "text": viewer.username}]
