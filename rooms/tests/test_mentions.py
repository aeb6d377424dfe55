"""Who a message mentions (PROTOCOL.md v1.1 "Mentions in any script").

The cases live in mention_cases.json, which the browser test of the page's
autocomplete and rendering (tests/live/test_browser_room_page.py) reads too: the
server and the page must agree on every one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from rooms.services import do_create_room
from rooms.services.messages import resolve_mentions

CASES = json.loads((Path(__file__).parent / "mention_cases.json").read_text(encoding="utf-8"))


@pytest.fixture
def room(db):
    User = get_user_model()
    for name in CASES["users"]:
        User.objects.create_user(username=name, password="x")
    User.objects.create_user(username="host_h", password="x")
    return do_create_room(None, slug="mentions", title="Mentions", host_username="host_h")


@pytest.mark.parametrize("case", CASES["cases"], ids=[c["text"] for c in CASES["cases"]])
def test_mentions_resolve_to_the_longest_username_after_each_at(room, case):
    assert [user["name"] for user in resolve_mentions(case["text"], room)] == case["mentions"]


def test_mentions_of_inactive_users_stay_text(room):
    get_user_model().objects.filter(username="小明").update(is_active=False)
    assert resolve_mentions("你好@小明", room) == []
