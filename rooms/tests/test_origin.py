"""The Origin check: a WebSocket handshake (and any state-changing request that asks)
is accepted only from the site's own origins, compared by scheme, host and port.

A browser attaches the victim's cookie to a socket that any page opens, so the Origin
header is all that tells a cross-site page from the site's own. "Same host name" is not
enough: another port of that host is another site (another user's dev server, a
service on :9), and http is not https.
"""

import pytest

from rooms.middleware import origin_allowed

pytestmark = pytest.mark.django_db(transaction=True)

SITE = {"host": "127.0.0.1:8000", "scheme": "http"}


@pytest.fixture(autouse=True)
def _site_hosts(settings):
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "chat.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = []
    settings.HTTPS = False


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", "http"),
        ("http://localhost:8000", "localhost:8000", "http"),
        ("https://chat.example.com", "chat.example.com", "https"),
        # Browsers leave the default port out; either spelling is the same origin.
        ("http://localhost", "localhost:80", "http"),
        ("https://chat.example.com:443", "chat.example.com", "https"),
        # Host names are case-insensitive.
        ("http://LOCALHOST:8000", "localhost:8000", "http"),
    ],
)
def test_the_sites_own_origin_is_allowed(origin, host, scheme):
    assert origin_allowed(origin, host=host, scheme=scheme) is True


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        # Same host name, another port: another site.
        ("http://127.0.0.1:9", "127.0.0.1:8000", "http"),
        ("http://localhost", "localhost:8000", "http"),
        # Same host name, another scheme (and so another default port).
        ("https://localhost", "localhost:8000", "http"),
        ("https://localhost:8000", "localhost:8000", "http"),
        ("http://chat.example.com", "chat.example.com", "https"),
        # Another host, or a look-alike of ours.
        ("http://evil.example", "127.0.0.1:8000", "http"),
        ("http://127.0.0.1.evil.example:8000", "127.0.0.1:8000", "http"),
        ("http://evil-localhost:8000", "localhost:8000", "http"),
        # No usable origin at all.
        (None, "127.0.0.1:8000", "http"),
        ("", "127.0.0.1:8000", "http"),
        ("null", "127.0.0.1:8000", "http"),
        ("127.0.0.1:8000", "127.0.0.1:8000", "http"),
        ("http://127.0.0.1:notaport", "127.0.0.1:8000", "http"),
        ("http://127.0.0.1:8000/path", "127.0.0.1:8000", "http"),
        ("http://user@127.0.0.1:8000", "127.0.0.1:8000", "http"),
        ("javascript://127.0.0.1:8000", "127.0.0.1:8000", "javascript"),
    ],
)
def test_a_foreign_or_malformed_origin_is_refused(origin, host, scheme):
    assert origin_allowed(origin, host=host, scheme=scheme) is False


def test_a_host_header_outside_allowed_hosts_is_never_our_origin():
    # DNS rebinding: evil.example resolves to our address, so the page's origin and the
    # Host header agree. ALLOWED_HOSTS is what tells them apart.
    assert origin_allowed("http://evil.example:8000", host="evil.example:8000", scheme="http") is False


def test_a_trusted_origin_is_allowed_on_any_allowed_host(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com", "http://localhost:3000"]

    assert origin_allowed("https://chat.example.com", host="127.0.0.1:8000", scheme="http") is True
    assert origin_allowed("http://localhost:3000", host="127.0.0.1:8000", scheme="http") is True
    # Scheme and port are part of a trusted origin too.
    assert origin_allowed("http://chat.example.com", host="127.0.0.1:8000", scheme="http") is False
    assert origin_allowed("https://chat.example.com:8443", host="127.0.0.1:8000", scheme="http") is False
    assert origin_allowed("http://localhost:3001", host="127.0.0.1:8000", scheme="http") is False


def test_a_trusted_origin_does_not_excuse_a_foreign_host_header(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com"]
    assert origin_allowed("https://chat.example.com", host="evil.example", scheme="https") is False


def test_a_wildcard_trusted_origin_matches_subdomains_as_django_csrf_does(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.com"]

    for origin in ("https://chat.example.com", "https://a.b.example.com", "https://example.com"):
        assert origin_allowed(origin, **SITE) is True, origin
    for origin in (
        "http://chat.example.com",
        "https://chat.example.com:8443",
        "https://evilexample.com",
        "https://example.com.evil.example",
    ):
        assert origin_allowed(origin, **SITE) is False, origin


def test_with_https_on_only_the_https_origin_is_the_sites_own(settings):
    # Behind a TLS proxy daphne sees plain ws; the site itself is served over https only.
    settings.HTTPS = True
    assert origin_allowed("https://chat.example.com", host="chat.example.com", scheme="http") is True
    assert origin_allowed("http://chat.example.com", host="chat.example.com", scheme="http") is False


# The handshake, through the whole ASGI application. A refusal is a close before accept,
# which daphne answers with HTTP 403 (tests/faults/test_security.py checks that part).


@pytest.mark.parametrize(
    "origin", ["http://127.0.0.1:9", "https://127.0.0.1", "http://127.0.0.1:8000", "http://localhost", "null"]
)
async def test_a_handshake_from_another_port_or_scheme_of_our_host_is_refused(connect, room, viewer, origin):
    # The test client's Host header is 127.0.0.1 (port 80).
    client = await connect(room, viewer, origin=origin, welcome=False)
    assert client.accepted is False


async def test_a_handshake_from_our_own_origin_is_accepted(connect, room, viewer):
    client = await connect(room, viewer, origin="http://127.0.0.1")
    assert client.welcome["you"]["name"] == viewer.username


async def test_a_handshake_without_origin_is_refused(connect, room, viewer):
    client = await connect(room, viewer, origin=None, welcome=False)
    assert client.accepted is False


async def test_a_handshake_for_a_host_outside_allowed_hosts_is_refused(room):
    from channels.testing import WebsocketCommunicator

    from chatsite.asgi import application

    communicator = WebsocketCommunicator(
        application,
        f"/ws/rooms/{room.slug}/",
        headers=[(b"host", b"evil.example"), (b"origin", b"http://evil.example")],
    )
    accepted, _ = await communicator.connect()
    await communicator.wait()
    assert accepted is False


async def test_with_https_on_a_handshake_needs_the_https_origin(connect, room, viewer, settings):
    settings.HTTPS = True
    refused = await connect(room, viewer, origin="http://127.0.0.1", welcome=False)
    accepted = await connect(room, viewer, origin="https://127.0.0.1")

    assert refused.accepted is False
    assert accepted.welcome["type"] == "welcome"


async def test_a_handshake_from_a_trusted_origin_is_accepted(connect, room, viewer, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.com"]
    client = await connect(room, viewer, origin="https://chat.example.com")
    assert client.welcome["type"] == "welcome"
