"""Bad input: property-based fuzzing of client frames against a live server.

Whatever a client sends, the server answers each frame once, with a well-formed reply
(an `error` for what it refuses), stores nothing for what it refused, and keeps the
connection up: a `ping` afterwards still gets its `pong`. Frames go over a real socket
to a real daphne process, so the text is encoded, framed and decoded the way it is in
production (an in-process communicator would never encode a reply to UTF-8).

Lone surrogates and non-finite numbers are kept out of the property's strategies (the
JSON encoder of the test client cannot send them all) and have tests of their own below.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from moderation.models import AuditEntry, Ban, Block, Mute
from rooms.models import LedgerEntry, Message, Notice, Room, RoomEvent, Tip, Wallet
from rooms.services import do_create_room, do_grant_coins
from tests.faults.resilient import strict_json
from tests.live.clients import session_cookie_for
from tests.support.schema import ERROR_CODES, validate_event

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

# The per-connection command budget would turn the fuzz into a flood test; it has its own.
UNLIMITED = {"CHAT_COMMANDS_PER_SECOND": "1000000", "CHAT_COMMANDS_BURST": "1000000"}
MAX_FRAME = 8192
REPLY_TYPES = frozenset({"ack", "error", "pong", "synced", "roster"})
COMMAND_TYPES = [
    "ping", "send", "delete", "mute", "unmute", "kick", "ban", "unban", "slow_mode",
    "announce", "room_status", "block", "unblock", "tip", "sync", "roster",
]  # fmt: skip
FIELDS = [
    "body", "reply_to", "id", "user", "seconds", "reason", "after", "offset", "limit",
    "level", "is_live", "title", "amount", "ts",
]  # fmt: skip

# Lone surrogates have their own test (test_a_client_id_with_a_lone_surrogate_...).
chars = st.characters(codec="utf-8")
edge_chars = st.sampled_from(
    [
        "\u202e",  # right-to-left override
        "\u200f",
        "\u200b",  # zero width space
        "\ufeff",
        "\u2028",
        "\u0000",
        "\x7f",
        "e\u0301",  # combining accent
        "\U0001f600",  # 4-byte UTF-8
        "\U0001f469\u200d\U0001f469\u200d\U0001f467",  # one emoji of several code points
        "\U0010ffff",
        " ",
        "\t",
        "@fz-target",
        "@fz-host",
        "<script>",
        '"',
        "\\",
    ]
)
texts = st.one_of(
    st.lists(st.one_of(chars, edge_chars), max_size=30).map("".join),
    st.text(chars, min_size=495, max_size=505),
    # Not the member's name: the host's kick or ban of it would end the member's probe
    # (moderation by name is the fuzz's to try on fz-target).
    st.sampled_from(["", " ", "fz-target", "fz-host", "nobody", "x" * 64, "x" * 65, "x" * 151]),
)
ints = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**63 - 1, 2**63, 120, 121, 1_209_600, 1_209_601, 100_000, 100_001, 10**12]),
)
# Non-finite numbers have their own test (test_replies_stay_json_when_a_frame_carries_a_huge_number).
floats = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.one_of(st.none(), st.booleans(), ints, floats, texts)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=10
)
client_ids = st.one_of(texts, json_values)


small_ints = st.integers(min_value=-2, max_value=60)
# Values a real client might send for each field, so that many frames get past parsing
# into the services; mixed with anything at all.
PLAUSIBLE = {
    "body": texts,
    "reply_to": st.none() | small_ints,
    "id": small_ints,
    "user": st.sampled_from(["fz-target", "fz-host", "nobody", " fz-target "]) | small_ints,
    "seconds": st.none() | st.integers(min_value=-5, max_value=130) | ints,
    "reason": texts,
    "after": small_ints | ints,
    "offset": small_ints,
    "limit": st.integers(min_value=-1, max_value=250),
    "level": st.sampled_from(["info", "warning", "error", "", "INFO"]),
    "is_live": st.booleans(),
    "title": texts,
    "amount": st.integers(min_value=-5, max_value=1200) | ints | floats | texts,
    "ts": json_values,
}
TYPE_FIELDS = {
    "ping": ["ts"],
    "send": ["body", "reply_to"],
    "delete": ["id"],
    "mute": ["user", "seconds", "reason"],
    "unmute": ["user"],
    "kick": ["user"],
    "ban": ["user", "seconds", "reason"],
    "unban": ["user"],
    "slow_mode": ["seconds"],
    "announce": ["body", "level"],
    "room_status": ["is_live", "title"],
    "block": ["user"],
    "unblock": ["user"],
    "tip": ["amount", "body"],
    "sync": ["after"],
    "roster": ["offset", "limit"],
}


@st.composite
def commands(draw) -> dict[str, Any]:
    kind = draw(st.sampled_from(COMMAND_TYPES) | st.sampled_from(COMMAND_TYPES) | texts | json_values)
    frame: dict[str, Any] = {"type": kind}
    if draw(st.integers(0, 9)) < 8:
        valid = draw(st.integers(0, 9)) < 8
        frame["client_id"] = draw(st.text(chars, min_size=1, max_size=64) if valid else client_ids)
    names = TYPE_FIELDS.get(kind, []) if isinstance(kind, str) else []
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=2, unique=True)) + names:
        if name in frame or (name in names and draw(st.integers(0, 9)) == 0):
            continue
        frame[name] = draw(PLAUSIBLE[name] if draw(st.integers(0, 4)) else json_values)
    return frame


def dumps(obj: Any) -> str:
    return json.dumps(obj, allow_nan=False)


def padded_ping(size: int) -> str:
    bare = dumps({"type": "ping", "ts": ""})
    return dumps({"type": "ping", "ts": "x" * (size - len(bare))})


frames = st.one_of(
    commands().map(dumps),
    commands().map(dumps),
    commands().map(dumps),
    json_values.map(dumps),
    st.text(chars, max_size=200),
    # Nesting deep enough to reach the JSON parser's recursion limit, bare or in a field.
    st.integers(min_value=1, max_value=4000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=1, max_value=1500).map(lambda n: '{"type":"ping","ts":' + "[" * n + "]" * n + "}"),
    st.sampled_from([MAX_FRAME - 1, MAX_FRAME, MAX_FRAME + 1, 3 * MAX_FRAME]).map(padded_ping),
    # The biggest body in the fewest characters: 500 four-byte characters, then one more.
    st.sampled_from([500, 501]).map(lambda n: dumps({"type": "send", "body": "\U0001f600" * n, "client_id": "big"})),
    st.sampled_from(["1e308", "-0", "1E-400", "123456789012345678901234567890", "-9223372036854775809"]).map(
        lambda number: '{"type":"sync","after":' + number + ',"client_id":"num"}'
    ),
    st.binary(max_size=300),
)


def fingerprint() -> tuple:
    """What a refused command must leave untouched."""
    return (
        RoomEvent.objects.count(),
        Message.objects.count(),
        Tip.objects.count(),
        Notice.objects.count(),
        Block.objects.count(),
        Mute.objects.count(),
        Ban.objects.count(),
        AuditEntry.objects.count(),
        LedgerEntry.objects.count(),
        tuple(Wallet.objects.order_by("user_id").values_list("balance", flat=True)),
        tuple(Room.objects.order_by("pk").values_list("title", "is_live", "slow_mode_seconds", "last_seq")),
    )


def expected_client_id(frame: str | bytes) -> str | None:
    """The client_id a reply must carry back: the frame's, when it could be read."""
    if isinstance(frame, bytes) or len(frame.encode("utf-8", "surrogatepass")) > MAX_FRAME:
        return None
    with contextlib.suppress(ValueError, RecursionError):
        obj = json.loads(frame)
        if isinstance(obj, dict):
            cid = obj.get("client_id")
            if isinstance(cid, str) and 0 < len(cid) <= 64:
                return cid
    return None


class Probe:
    """One fuzzed connection: sends a frame, then a ping, and collects what came between."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.n = 0

    def exchange(self, frame: str | bytes) -> list[dict]:
        self.n += 1
        probe_id = f"probe-{self.n}"
        self.ws.send(frame)
        self.ws.send(dumps({"type": "ping", "ts": self.n, "client_id": probe_id}))
        got: list[dict] = []
        deadline = time.monotonic() + 15
        while True:
            text = self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            assert isinstance(text, str), f"binary frame from the server: {text[:80]!r}"
            obj = strict_json(text)
            validate_event(obj)
            events = obj["events"] if obj["type"] == "batch" else [obj]
            for item in events:
                if item.get("client_id") == probe_id:
                    assert item["type"] == "pong", item
                    return got
                got.append(item)


@pytest.fixture
def fuzz_target(daphne_servers) -> Iterator[dict[str, Probe]]:
    (server,) = daphne_servers(1, env=UNLIMITED)
    users = get_user_model().objects
    host = users.create_user(username="fz-host")
    # The host may kick or ban `fz-target` (or any id it guesses) at will; the member's
    # own connection must not end that way, so its id is one nobody guesses.
    member = users.create_user(username="fz-member", id=1_000_000_007)
    users.create_user(username="fz-target")
    do_create_room(None, slug="fz", title="Fuzz", host_username=host.username)
    do_grant_coins(None, user_id=member.pk, amount=1000)
    probes = {}
    with contextlib.ExitStack() as stack:
        for name, user in (("host", host), ("member", member), ("guest", None)):
            headers = []
            if user is not None:
                cookie = session_cookie_for(user)
                headers.append(("Cookie", f"{cookie['name']}={cookie['value']}"))
            ws = stack.enter_context(
                connect(
                    f"{server.ws_url}/ws/rooms/fz/",
                    origin=server.origin,
                    additional_headers=headers,
                    max_size=None,
                    proxy=None,
                    open_timeout=10,
                )
            )
            assert json.loads(ws.recv(timeout=10))["type"] == "welcome"
            probes[name] = Probe(ws)
        yield probes


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(who=st.sampled_from(["host", "member", "guest"]), frame=frames)
def test_every_frame_gets_one_wellformed_reply_and_the_connection_stays_up(fuzz_target, who, frame):
    probe = fuzz_target[who]
    before = fingerprint()
    try:
        events = probe.exchange(frame)
    except ConnectionClosed as exc:
        raise AssertionError(f"the server closed the connection ({exc}) on {frame!r:.300}") from None
    replies = [e for e in events if e["type"] in REPLY_TYPES]
    assert len(replies) == 1, f"{len(replies)} replies to {frame!r:.300}: {replies}"
    (reply,) = replies
    event(f"{who}: {reply['type']} {reply.get('code', '')} {reply.get('detail', '')[:40]}".strip())
    if reply["type"] == "error":
        assert reply["code"] in ERROR_CODES
        assert fingerprint() == before, f"stored something for a refused frame {frame!r:.300}: {reply}"
    elif reply["type"] != "ack":
        assert fingerprint() == before, f"a read changed something: {frame!r:.300}: {reply}"
    cid = expected_client_id(frame)
    if cid is not None:
        assert reply.get("client_id") == cid, f"reply lost the client_id of {frame!r:.300}: {reply}"


# Known bugs, one frame each.


async def _open(server, slug: str):
    from websockets.asyncio.client import connect as aconnect

    ws = await aconnect(f"{server.ws_url}/ws/rooms/{slug}/", origin=server.origin, proxy=None, max_size=None)
    assert json.loads(await ws.recv())["type"] == "welcome"
    return ws


async def reply_to_command(ws) -> dict:
    """The next frame that is not a presence delta, read as strict JSON."""
    import asyncio

    while True:
        reply = strict_json(await asyncio.wait_for(ws.recv(), 5))
        if reply.get("type") != "presence":
            return reply


async def test_a_client_id_with_a_lone_surrogate_gets_bad_request_and_leaves_no_ghost(daphne_servers):
    import asyncio

    from tests.faults.harness import fresh_roster_count, make_cast

    (server,) = daphne_servers(1)
    await make_cast("surrogate", moderators=0, members=0)
    problems = []
    for attempt in range(3):
        ws = await _open(server, "surrogate")
        try:
            await ws.send('{"type":"ping","ts":1,"client_id":"\\ud800"}')
            try:
                reply = await reply_to_command(ws)
            except ConnectionClosed:
                reply = {"closed": ws.close_code}
            if reply.get("type") != "error" or reply.get("code") != "bad_request":
                problems.append(f"attempt {attempt}: {reply}")
        finally:
            await ws.close()
    await asyncio.sleep(1.0)
    # Nobody is here but the newcomer asking.
    count = await fresh_roster_count(server, "surrogate")
    if count != 1:
        problems.append(f"a newcomer is told {count} viewers are here, not 1")
    assert not problems, problems


async def test_replies_stay_json_when_a_frame_carries_a_huge_number(daphne_servers):
    from tests.faults.harness import make_cast

    (server,) = daphne_servers(1)
    await make_cast("huge", moderators=0, members=0)
    ws = await _open(server, "huge")
    try:
        # Valid JSON (RFC 8259 puts no bound on a number's size).
        await ws.send('{"type":"ping","ts":1e400,"client_id":"big"}')
        await reply_to_command(ws)
    finally:
        await ws.close()


async def test_a_body_the_database_cannot_store_fails_only_its_own_send(daphne_servers):
    import asyncio

    from tests.faults.harness import make_cast
    from tests.faults.resilient import ResilientClient

    (server,) = daphne_servers(1)
    cast = await make_cast("poison", moderators=2, members=0)
    honest = [
        await ResilientClient([server], "poison", user=cast.moderators[0], label=f"honest{n}", ping_every=60).start()
        for n in range(10)
    ]
    mallory = await ResilientClient([server], "poison", user=cast.moderators[1], label="mallory", ping_every=60).start()
    replies: list[dict] = []
    try:
        poisoning = True

        async def honest_stream(n: int, client: ResilientClient) -> None:
            # Keeps a few sends in flight for as long as the poison goes in, so the writer
            # always has a batch forming when a poisoned send reaches it.
            async def one(i: int) -> None:
                replies.append(await client.request({"type": "send", "body": f"fine {i}", "client_id": f"h{n}-{i}"}))

            i = 0
            while poisoning:
                await asyncio.gather(*(one(i + k) for k in range(6)))
                i += 6

        async def poison_stream() -> None:
            nonlocal poisoning
            await asyncio.sleep(0.1)
            try:
                for burst in range(4):
                    await asyncio.gather(
                        *(
                            mallory.request({"type": "send", "body": "x\ud800", "client_id": f"p{burst}-{i}"}, 20)
                            for i in range(5)
                        )
                    )
            finally:
                poisoning = False

        await asyncio.gather(*(honest_stream(n, c) for n, c in enumerate(honest)), poison_stream())
        failed = [r for r in replies if r["type"] != "ack"]
        assert not failed, f"{len(failed)} of {len(replies)} honest sends failed: {failed[:3]}"
    finally:
        for client in [*honest, mallory]:
            await client.stop()
