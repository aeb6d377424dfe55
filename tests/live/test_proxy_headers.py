"""Client addresses on a real daphne: X-Forwarded-For is trusted only when daphne is told
it runs behind a proxy (`--proxy-headers`), never because a client sent the header.

The per-address connection limit counts `scope["client"]`. Behind a proxy that is the
proxy's address unless daphne reads the proxy's header; without a proxy, a header the
client wrote must not let it pose as many addresses and slip past the limit.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model

from rooms.services import do_create_room

pytestmark = pytest.mark.django_db(transaction=True)

# Close code for a connection over a limit (rooms.consumers.CLOSE_FLOODING).
OVER_LIMIT = 4429
ONE_PER_ADDRESS = {"CHAT_MAX_CONNECTIONS_PER_IP": "1"}


@sync_to_async
def make_room(slug: str) -> None:
    host = get_user_model().objects.create_user(username=f"{slug}-host")
    do_create_room(None, slug=slug, title=f"Room {slug}", host_username=host.username)


def forwarded_for(address: str) -> list[tuple[str, str]]:
    return [("X-Forwarded-For", address)]


async def test_without_proxy_headers_a_clients_x_forwarded_for_is_ignored(daphne_servers, ws_connect):
    (server,) = daphne_servers(1, env=ONE_PER_ADDRESS)
    await make_room("direct")

    first = await ws_connect(server, "direct", headers=forwarded_for("198.51.100.1"))
    await first.expect_welcome()
    # Another claimed address, the same real one (127.0.0.1): over the limit of one.
    second = await ws_connect(server, "direct", headers=forwarded_for("198.51.100.2"))

    assert await second.wait_closed() == OVER_LIMIT
    assert not first.closed


async def test_with_proxy_headers_the_proxys_x_forwarded_for_is_the_client_address(daphne_servers, ws_connect):
    (server,) = daphne_servers(1, env=ONE_PER_ADDRESS, args=["--proxy-headers"])
    await make_room("proxied")

    # Every connection comes from 127.0.0.1 (the "proxy"); the header tells them apart.
    first = await ws_connect(server, "proxied", headers=forwarded_for("198.51.100.1"))
    other = await ws_connect(server, "proxied", headers=forwarded_for("198.51.100.2"))
    await first.expect_welcome()
    await other.expect_welcome()
    # The limit still holds per forwarded address.
    again = await ws_connect(server, "proxied", headers=forwarded_for("198.51.100.1"))

    assert await again.wait_closed() == OVER_LIMIT
    assert not first.closed and not other.closed


async def test_with_proxy_headers_daphne_takes_the_first_forwarded_address(daphne_servers, ws_connect):
    # Why the proxy must overwrite X-Forwarded-For ($remote_addr) rather than append to
    # it ($proxy_add_x_forwarded_for): daphne reads the first entry, which with appending
    # is whatever the client wrote. Here two clients claim the same first address.
    (server,) = daphne_servers(1, env=ONE_PER_ADDRESS, args=["--proxy-headers"])
    await make_room("chained")

    first = await ws_connect(server, "chained", headers=forwarded_for("198.51.100.7, 203.0.113.1"))
    await first.expect_welcome()
    second = await ws_connect(server, "chained", headers=forwarded_for("198.51.100.7, 203.0.113.2"))

    assert await second.wait_closed() == OVER_LIMIT
