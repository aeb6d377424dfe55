"""HTTP and ASGI middleware: the content security policy, the Origin check that keeps
other sites' pages from acting with a visitor's session, and a WebSocket's session and
user."""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from types import SimpleNamespace
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from django.conf import settings
from django.http.cookie import parse_cookie
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain
from django.utils.module_loading import import_string
from django.views.decorators.clickjacking import xframe_options_exempt

from rooms.dbpaths import reads


# Pages load only their own scripts and styles, and user text can never become markup
# that runs: a second line behind rendering text with textContent.
def policy(*, frame_ancestors: str = "'none'") -> str:
    """The site's content security policy; `frame_ancestors`: who may show the page in a
    frame (nobody, except for the pages that are made to be embedded)."""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' ws: wss:; frame-ancestors {frame_ancestors}; base-uri 'self'; form-action 'self'"
    )


POLICY = policy()


def embeddable(view):
    """A page other sites may show in a frame (the overlay in a streaming tool's browser
    source or a dashboard): frame-ancestors from CHAT_OVERLAY_FRAME_ANCESTORS and no
    X-Frame-Options, while every other page keeps both at "never"."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response.headers["Content-Security-Policy"] = policy(frame_ancestors=settings.CHAT_OVERLAY_FRAME_ANCESTORS)
        return response

    return xframe_options_exempt(wrapped)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith("/admin/"):
            response.headers.setdefault("Content-Security-Policy", getattr(settings, "CONTENT_SECURITY_POLICY", POLICY))
        return response


# The Origin check.
#
# A browser attaches the site's cookies to a WebSocket that any page opens, and to a form
# any page posts, so the Origin header is what tells the site's own pages from another
# site's. An origin is scheme, host and port: http://127.0.0.1:9 is another site than
# http://127.0.0.1:8000, and http:// another than https://.

DEFAULT_PORTS = {"http": 80, "https": 443}
# A WebSocket is opened by a page of the matching HTTP scheme.
PAGE_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}

Origin = tuple[str, str, int]


def _parse_origin(value: str) -> Origin | None:
    """(scheme, host, port) of a serialized origin (`scheme://host[:port]`), else None."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if (
        scheme not in DEFAULT_PORTS
        or not parts.hostname
        or "@" in parts.netloc
        or parts.path
        or parts.query
        or parts.fragment
    ):
        return None
    return scheme, parts.hostname, port if port is not None else DEFAULT_PORTS[scheme]


def _host_allowed(host: str) -> bool:
    """The Host header names this site: ALLOWED_HOSTS, as Django's request.get_host() checks it."""
    domain, _port = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return bool(domain) and validate_host(domain, allowed)


def _trusted(origin: Origin) -> bool:
    """CSRF_TRUSTED_ORIGINS, read as Django's CsrfViewMiddleware reads it: exact origins,
    and `scheme://*.domain[:port]` for a domain and all its subdomains."""
    scheme, host, port = origin
    for entry in settings.CSRF_TRUSTED_ORIGINS:
        if "*" in entry:
            pattern = _parse_origin(entry)
            # "*.example.com" -> ".example.com": the domain and every subdomain.
            if pattern is not None and pattern[1].startswith("*.") and (scheme, port) == (pattern[0], pattern[2]):
                if is_same_domain(host, pattern[1][1:]):
                    return True
        elif _parse_origin(entry) == origin:
            return True
    return False


def origin_allowed(origin: str | None, *, host: str, scheme: str) -> bool:
    """May a request with this Origin header act on the site with the visitor's session?

    `host` is the request's Host header (with its port, if any) and `scheme` the scheme
    the request came in on (`http`/`https`, or `ws`/`wss` for a WebSocket). Allowed are
    the site's own origin (that scheme and Host, when ALLOWED_HOSTS names the Host) and
    CSRF_TRUSTED_ORIGINS. A missing, `null` or malformed Origin is refused.

    A state-changing view that cannot rely on a CSRF token uses it as::

        origin_allowed(request.headers.get("Origin"), host=request.get_host(), scheme=request.scheme)
    """
    if not origin:
        return False
    parsed = _parse_origin(origin)
    # Without ALLOWED_HOSTS a page of any domain that resolves to this server (DNS
    # rebinding) would be "same origin": the Host header must name this site first.
    if parsed is None or not _host_allowed(host):
        return False
    # With DJANGO_HTTPS on, the site is served over https only (plain HTTP is redirected),
    # whatever the proxy's hop to daphne uses.
    page_scheme = "https" if getattr(settings, "HTTPS", False) else PAGE_SCHEMES.get(scheme.lower())
    if page_scheme is not None and parsed == _parse_origin(f"{page_scheme}://{host}"):
        return True
    return _trusted(parsed)


def _single_header(scope: dict[str, Any], name: bytes) -> str | None:
    """The header's value, or None when it is missing or sent more than once."""
    values = [value for key, value in scope.get("headers", ()) if key.lower() == name]
    if len(values) != 1:
        return None
    return values[0].decode("latin1")


class OriginCheckMiddleware:
    """Refuses a WebSocket handshake whose Origin is not one of the site's own: the
    connection is closed before it is accepted, which the server answers with HTTP 403."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "websocket":
            host = _single_header(scope, b"host")
            origin = _single_header(scope, b"origin")
            if host is None or not origin_allowed(origin, host=host, scheme=scope.get("scheme", "ws")):
                message = await receive()
                if message["type"] == "websocket.connect":
                    await send({"type": "websocket.close"})
                return
        await self.app(scope, receive, send)


class SessionUserMiddleware:
    """`scope["session"]` and `scope["user"]` of a WebSocket handshake (and its
    `cookies`, as Channels' CookieMiddleware gives them), read together in
    one hop to a database read thread, and with no hop at all without a session cookie.

    Channels' SessionMiddleware and AuthMiddleware take a hop each (the first only to
    make the session object), on the one thread that also stores every chat line: in a
    join storm the welcomes queued behind the writes and the writes behind the joins.
    The user is checked as Django checks it for a page (auth.get_user: the session's
    backend and its password hash), so a session that a password change ended stays
    anonymous here too."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        from django.contrib.auth.models import AnonymousUser

        cookie = _single_header(scope, b"cookie")
        cookies = parse_cookie(cookie) if cookie else {}
        key = cookies.get(settings.SESSION_COOKIE_NAME)
        if key:
            session, user = await reads(_session_and_user)(key)
        else:
            session, user = _session_store()(None), AnonymousUser()
        await self.app(dict(scope, cookies=cookies, session=session, user=user), receive, send)


@functools.cache
def _session_store():
    return import_string(f"{settings.SESSION_ENGINE}.SessionStore")


def _session_and_user(session_key: str):
    """The session (not loaded: a connection needs only its key) and its user: one
    query for a session this process has read before, two the first time."""
    from django.contrib.auth import get_user

    session = _session_store()(session_key)
    known = _known_sessions.get(session_key)
    if known is not None:
        user = _known_user(session_key, known)
        if user is not None:
            return session, user
        # Ended, changed or no longer valid: read in full, as Django reads it.
        _known_sessions.forget(session_key)
    user = get_user(SimpleNamespace(session=session))
    if user.is_authenticated:
        _known_sessions.remember(session_key, session)
    return session, user


class _KnownSession(NamedTuple):
    user_id: Any
    backend: str
    session_hash: str


class _KnownSessions:
    """What the signed-in sessions this process has read say (user, backend, password
    hash), so that the next connection with one needs a single query: the user, on
    condition that the session row still exists and has not expired. Only the session's
    user is taken from here; the row is checked on every connection, so a logout or an
    expiry ends it at once, and a password change or a deactivation is seen in the
    user's row, and a session whose password hash changed reads in full again. Django
    gives a session a new key whenever its user changes (login, logout), so a key names
    one user for as long as it lives."""

    MAX = 10_000

    def __init__(self) -> None:
        self._by_key: OrderedDict[str, _KnownSession] = OrderedDict()
        self._lock = threading.Lock()  # the database read threads share it

    def get(self, key: str) -> _KnownSession | None:
        return self._by_key.get(key)

    def remember(self, key: str, session) -> None:
        from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model

        session_hash = session.get(HASH_SESSION_KEY)
        if not session_hash:
            return
        user_id = get_user_model()._meta.pk.to_python(session[SESSION_KEY])
        with self._lock:
            self._by_key[key] = _KnownSession(user_id, session[BACKEND_SESSION_KEY], session_hash)
            while len(self._by_key) > self.MAX:
                self._by_key.popitem(last=False)

    def forget(self, key: str) -> None:
        with self._lock:
            self._by_key.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._by_key.clear()


_known_sessions = _KnownSessions()


def _known_user(session_key: str, known: _KnownSession):
    """The user of a session read before, in one query, or None to read it in full:
    what django.contrib.auth.get_user decides, for the model backend and database
    sessions (anything else always reads in full)."""
    from django.contrib.auth import get_user_model, load_backend
    from django.contrib.auth.backends import ModelBackend
    from django.db.models import Exists
    from django.utils import timezone
    from django.utils.crypto import constant_time_compare

    store = _session_store()
    if known.backend not in settings.AUTHENTICATION_BACKENDS or not hasattr(store, "get_model_class"):
        return None
    backend = load_backend(known.backend)
    # The model backend's own get_user only: a subclass may check more when it reads one.
    if not isinstance(backend, ModelBackend) or type(backend).get_user is not ModelBackend.get_user:
        return None
    live = store.get_model_class().objects.filter(session_key=session_key, expire_date__gt=timezone.now())
    user = get_user_model()._default_manager.filter(Exists(live), pk=known.user_id).first()
    if user is None or not backend.user_can_authenticate(user):
        return None
    if not constant_time_compare(known.session_hash, user.get_session_auth_hash()):
        return None
    return user
