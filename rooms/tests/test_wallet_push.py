"""A user's open pages learn their new balance when it changes elsewhere: coins granted
in the admin, a tip sent from another tab, a tip received."""

import pytest
from channels.db import database_sync_to_async

from rooms.services import check_send_tip, do_grant_coins

pytestmark = pytest.mark.django_db(transaction=True)


async def you_frame(client) -> dict:
    return await client.wait_for(lambda e: e["type"] == "you", what="a you frame")


async def test_coins_granted_in_the_admin_reach_the_open_page(connect, room, viewer, staff):
    page = await connect(room, viewer)
    assert page.welcome["you"]["balance"] == 0

    await database_sync_to_async(do_grant_coins)(staff, user_id=viewer.pk, amount=250, note="welcome gift")

    you = await you_frame(page)
    assert (you["id"], you["balance"]) == (viewer.pk, 250)


async def test_a_tip_updates_the_senders_other_tabs_and_the_host(connect, room, viewer, host):
    await database_sync_to_async(do_grant_coins)(None, user_id=viewer.pk, amount=100)
    other_tab = await connect(room, viewer)
    host_page = await connect(room, host)

    await database_sync_to_async(check_send_tip)(viewer, room_id=room.pk, amount=30, body="", client_id="t1")

    assert (await you_frame(other_tab))["balance"] == 70
    assert (await you_frame(host_page))["balance"] == 30
