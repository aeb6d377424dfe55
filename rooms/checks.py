"""Deploy checks (`manage.py check --deploy`) for the ways chatsite is commonly misrun."""

from django.conf import settings
from django.core.checks import Error, Tags, register


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
                hint="List the site's host names: the WebSocket origin check trusts ALLOWED_HOSTS.",
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
