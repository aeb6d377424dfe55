"""Powers taken away from a user reach their open sockets on every process: a room role
change or a lost superuser flag, made from a process of its own (an operator's shell)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model

from moderation.models import Mute
from tests.live.test_multiprocess import make_cast
from tests.live.test_multiprocess_moderation import command

pytestmark = [
    pytest.mark.multiprocess,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]


def manage(server, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        env={**os.environ, **server.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


async def test_a_demoted_moderator_is_refused_on_every_process(daphne_servers, ws_connect):
    a, b = daphne_servers(2)
    cast = await make_cast("demote")
    on_a = await ws_connect(a, "demote", user=cast.moderator)
    on_b = await ws_connect(b, "demote", user=cast.moderator)
    watcher = await ws_connect(a, "demote", user=cast.bob)
    for client in (on_a, on_b, watcher):
        await client.expect_welcome()

    manage(a, "set_role", "demote", cast.moderator.username, "member")

    for client in (on_a, on_b):
        you = await client.wait_for(lambda e: e["type"] == "you")
        assert you["role"] == "member"
        refused = await command(client, {"type": "mute", "user": cast.alice.username, "seconds": 60}, f"m-{id(client)}")
        assert refused["type"] == "error" and refused["code"] == "forbidden", refused
    delta = await watcher.wait_for(lambda e: e["type"] == "presence" and e.get("changed"))
    assert delta["changed"][0]["id"] == cast.moderator.pk and delta["changed"][0]["role"] == "member"
    assert not await sync_to_async(Mute.objects.exists)()


async def test_a_superuser_demoted_from_the_shell_is_refused_on_every_process(daphne_servers, ws_connect):
    a, b = daphne_servers(2)
    cast = await make_cast("unstaff")
    boss = await sync_to_async(get_user_model().objects.create_user)(
        username="unstaff-boss", is_staff=True, is_superuser=True
    )
    on_a = await ws_connect(a, "unstaff", user=boss)
    on_b = await ws_connect(b, "unstaff", user=boss)
    for client in (on_a, on_b):
        welcome = await client.expect_welcome()
        assert welcome["you"]["staff"] is True

    manage(
        b,
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model;"
        "u = get_user_model().objects.get(username='unstaff-boss'); u.is_superuser = False; u.save()",
    )

    for client in (on_a, on_b):
        you = await client.wait_for(lambda e: e["type"] == "you")
        assert "staff" not in you
        refused = await command(client, {"type": "ban", "user": cast.alice.username}, f"b-{id(client)}")
        assert refused["type"] == "error" and refused["code"] == "forbidden", refused
