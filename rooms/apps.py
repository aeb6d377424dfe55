from django.apps import AppConfig


class RoomsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "rooms"

    def ready(self):
        from rooms import checks, signals  # noqa: F401  (registers checks and receivers)
