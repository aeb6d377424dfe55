"""The handshake's Origin check on a real daphne: scheme, host and port must all be the
site's own, and a refusal is HTTP 403 before the socket opens."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from websockets.exceptions import InvalidStatus

from rooms.services import do_create_room

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def make_room(slug: str) -> None:
    host = get_user_model().objects.create_user(username=f"{slug}-host")
    do_create_room(None, slug=slug, title=f"Room {slug}", host_username=host.username)


async def test_another_port_or_scheme_of_the_same_host_is_refused_403(daphne_servers, ws_connect):
    (server,) = daphne_servers(1)
    await make_room("ports")
    for origin in (
        "http://127.0.0.1:9",
        "http://127.0.0.1",
        f"https://127.0.0.1:{server.port}",
        "https://localhost",
        f"http://localhost:{server.port}",  # the Host header says 127.0.0.1
    ):
        with pytest.raises(InvalidStatus) as refused:
            await ws_connect(server, "ports", origin=origin)
        assert refused.value.response.status_code == 403, origin
    await (await ws_connect(server, "ports", origin=f"http://127.0.0.1:{server.port}")).expect_welcome()


async def test_a_trusted_origin_from_settings_is_accepted(daphne_servers, ws_connect):
    (server,) = daphne_servers(1, env={"CSRF_TRUSTED_ORIGINS": "https://*.example.com"})
    await make_room("trusted")
    await (await ws_connect(server, "trusted", origin="https://chat.example.com")).expect_welcome()
    with pytest.raises(InvalidStatus) as refused:
        await ws_connect(server, "trusted", origin="http://chat.example.com")
    assert refused.value.response.status_code == 403
