"""Deploy checks (`manage.py check --deploy`) for the ways chatsite is commonly misrun."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import DatabaseError


@register(Tags.security, deploy=True)
def check_production_settings(app_configs, **kwargs):
    errors = []
    backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    if not settings.DEBUG and backend.endswith("InMemoryChannelLayer"):
        errors.append(
            Error(
                "The in-memory channel layer is in use with DEBUG off.",
                hint="Set REDIS_URL: without it messages reach only viewers on the same process.",
                id="chatsite.E001",
            )
        )
    if "*" in settings.ALLOWED_HOSTS:
        errors.append(
            Error(
                "ALLOWED_HOSTS contains '*'.",
                hint="List the site's host names: a WebSocket's Origin is the site's own only on a Host they name.",
                id="chatsite.E002",
            )
        )
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") and settings.REDIS_URL:
        errors.append(
            Error(
                "SQLite is in use with REDIS_URL set (the scale-out mode).",
                hint="Several processes need a shared database: set DATABASE_URL to PostgreSQL.",
                id="chatsite.E003",
            )
        )
    return errors


@register(Tags.security, deploy=True)
def check_demo_accounts(app_configs, **kwargs):
    """A demo account that still has the published demo password is a way in for anyone."""
    if settings.DEBUG:
        return []
    from django.contrib.auth import get_user_model

    from rooms.management.commands.seed_demo import DEMO_PASSWORD, DEMO_USERNAMES

    try:
        exposed = [
            user.get_username()
            for user in get_user_model().objects.filter(username__in=DEMO_USERNAMES).order_by("username")
            if user.check_password(DEMO_PASSWORD)
        ]
    except DatabaseError as exc:
        return [
            Warning(
                f"Could not look for demo accounts with the demo password: {exc}",
                hint="Run `manage.py check --deploy` against the migrated production database.",
                id="chatsite.W004",
            )
        ]
    if not exposed:
        return []
    return [
        Error(
            f"Demo accounts still have the published demo password: {', '.join(exposed)}.",
            hint="Delete them, or give them new passwords (`manage.py changepassword USERNAME`). "
            "They come from `manage.py seed_demo` or `scripts/serve --demo`.",
            id="chatsite.E004",
        )
    ]
