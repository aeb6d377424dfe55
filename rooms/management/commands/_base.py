from contextlib import contextmanager

from django.core.management.base import CommandError

from rooms.errors import ChatError


@contextmanager
def chat_errors_as_command_errors():
    """Commands answer a refused action with its sentence, and nothing half-applied."""
    try:
        yield
    except ChatError as exc:
        raise CommandError(exc.detail) from None
