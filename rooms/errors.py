"""Domain errors raised by services; each adapter maps them to its transport once.

A `detail` is a lazy translation (gettext_lazy, format_lazy): it becomes text in the
language active where the adapter builds its reply (the socket's, the request's), not
where it was raised, which may be another connection's task or a database thread.
"""

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


class ChatError(Exception):
    """A refused command. `code` is a protocol error code (PROTOCOL.md "Error codes")."""

    code = "bad_request"

    def __init__(self, detail: str | Promise, *, code: str | None = None, retry_after: float | None = None):
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.retry_after = retry_after


class BadRequest(ChatError):
    code = "bad_request"


class Unauthenticated(ChatError):
    code = "unauthenticated"


class Forbidden(ChatError):
    code = "forbidden"


class NotFound(ChatError):
    code = "not_found"


class RateLimited(ChatError):
    code = "rate_limited"


class NoSuchRoom(NotFound):
    """The one way to say a room does not exist, whoever asks."""

    def __init__(self) -> None:
        super().__init__(_("No such room."))


class Busy(ChatError):
    """The room or the process cannot take this now: nothing was stored, and the same
    command (with the same client_id) may be sent again after retry_after."""

    code = "busy"
