"""The deploy check for demo accounts: `manage.py seed_demo` (or `scripts/serve --demo`)
makes accounts whose password is published, superuser `admin` among them, so a site
with DEBUG off must not pass `check --deploy` while any of them keeps it."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from conftest import make_user
from rooms.checks import check_demo_accounts
from rooms.management.commands.seed_demo import DEMO_PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _production(settings):
    settings.DEBUG = False


def error_ids(messages):
    return [message.id for message in messages]


def test_the_check_fails_after_seed_demo():
    call_command("seed_demo", stdout=None)

    [error] = check_demo_accounts(None)

    assert error.id == "chatsite.E004"
    assert error.is_serious()
    assert "admin, alice, bob, mod, streamer" in error.msg


def test_the_check_names_only_the_accounts_still_on_the_demo_password():
    call_command("seed_demo", stdout=None)
    for user in get_user_model().objects.exclude(username="alice"):
        user.set_password("a-long-private-passphrase")
        user.save()

    [error] = check_demo_accounts(None)

    assert error.msg == "Demo accounts still have the published demo password: alice."


def test_the_check_passes_when_the_demo_accounts_have_new_passwords():
    call_command("seed_demo", stdout=None)
    for user in get_user_model().objects.all():
        user.set_password("a-long-private-passphrase")
        user.save()

    assert check_demo_accounts(None) == []


def test_the_check_passes_on_a_site_without_demo_accounts():
    # A real user who happens to pick the demo password is not a demo account.
    carol = make_user("carol")
    carol.set_password(DEMO_PASSWORD)
    carol.save()

    assert check_demo_accounts(None) == []


def test_the_check_is_quiet_with_debug_on(settings):
    call_command("seed_demo", stdout=None)
    settings.DEBUG = True

    assert check_demo_accounts(None) == []


def test_check_deploy_fails_on_demo_accounts():
    call_command("seed_demo", stdout=None)

    with pytest.raises(SystemCheckError, match="chatsite.E004"):
        call_command("check", deploy=True, fail_level="ERROR", stdout=None, stderr=None)
