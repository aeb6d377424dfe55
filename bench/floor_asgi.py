"""The floor of a connect: daphne and Channels with nothing of the chat.

A WebSocket consumer that accepts every handshake on the room path and sends one fixed
`welcome` (a guest's, in an empty room), with no database, no Redis, no presence and no
room. What a connect costs here is what daphne (Twisted's HTTP parsing, Autobahn's
handshake) and Channels (routing, the consumer's tasks) cost before the chat server does
anything; the chat server's own connect is the difference.

    .venv/bin/python bench/run.py --preset idle-10000 -n 1000 --ramp 1000 -d 3 \\
        --asgi-app bench.floor_asgi:application

It runs under the same settings module and takes the same measures as chatsite/asgi.py
for what is daphne's rather than the chat's (Autobahn's handshake logging, the frozen
startup heap), so that those do not count against the floor.
"""

import gc
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from rooms.delivery.transport import defer_handshake_logging  # noqa: E402
from rooms.protocol import frames  # noqa: E402

WELCOME = frames.welcome(
    room='{"slug":"floor","title":"floor","is_live":true,"slow_mode_seconds":0,"hosts":[]}',
    you={"id": None, "name": None, "role": "guest", "muted_until": None, "balance": 0, "blocked": []},
    roster=frames.roster_fields(count=1, team=[], audience=[], offset=0),
    history=[],
    last_seq=0,
    history_truncated=False,
    pinned=[],
    limits={},
)


class FloorConsumer(AsyncWebsocketConsumer):
    # No channel of its own in the channel layer (a Redis subscription per connect), as
    # the chat's consumer has none.
    channel_layer_alias = "none"

    async def connect(self) -> None:
        await self.accept()
        await self.send(text_data=WELCOME)


application = ProtocolTypeRouter({"websocket": URLRouter([path("ws/rooms/<slug:slug>/", FloorConsumer.as_asgi())])})

defer_handshake_logging()
gc.freeze()
gc.set_threshold(50_000, 20, 100)
